"""twin layer of trpo_robot (see docs/architecture.md): the MuJoCo twin of each arm.

Imports mujoco and the robot layer, never rclpy.
"""
from trpo_robot.twin.backend import MujocoBackend
from trpo_robot.twin.model import build_model, build_spec, urdf_joint_limits
from trpo_robot.twin.randomization import Randomization
from trpo_robot.twin.settings import load_settings, robot_names, RobotSettings, substeps

__all__ = [
    'MujocoBackend', 'Randomization', 'RobotSettings', 'build_model', 'build_spec',
    'load_settings', 'robot_names', 'substeps', 'urdf_joint_limits',
]
