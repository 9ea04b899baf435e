"""twin layer of trpo_robot (see docs/architecture.md): the MuJoCo twin of each arm.

Imports mujoco and the robot layer, never rclpy. The names below are loaded on first use,
so that importing a light module of this package (``conditions``, ``randomization``,
``settings``: what the CLI and the ROS parameter checks need) does not load MuJoCo.
"""
import importlib

_WHERE = {
    'MujocoBackend': 'backend', 'ArmStepper': 'stepping', 'EmulatorPhysics': 'emulator_physics',
    'build_model': 'model', 'build_spec': 'model',
    'urdf_joint_limits': 'model', 'Randomization': 'randomization',
    'TwinConditions': 'conditions', 'load_settings': 'settings', 'robot_names': 'settings',
    'RobotSettings': 'settings', 'substeps': 'settings',
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)
