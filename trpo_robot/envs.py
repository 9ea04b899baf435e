"""Registers the project's arm environments with gymnasium (ids trpo_robot/...-v0).

Entry points are strings, so registering imports neither mujoco nor the twin.
"""
import gymnasium as gym

ARM_ENVS = {
    'trpo_robot/UR5Reacher2D-v0': 'ur5_reacher_2d',
    'trpo_robot/UR5Reacher6D-v0': 'ur5_reacher_6d',
    'trpo_robot/DXLReacher-v0': 'dxl_reacher',
    'trpo_robot/DXLTracker-v0': 'dxl_tracker',
}


def register_all():
    for env_id, task in ARM_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point='trpo_robot.twin.envs:make_twin_env',
                         kwargs={'task': task}, disable_env_checker=True)


register_all()
