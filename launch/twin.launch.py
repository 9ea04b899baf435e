"""The MuJoCo twin alone, behind the UR ROS 2 driver's interface.

    ros2 launch trpo_robot twin.launch.py robot:=ur5 real_time_factor:=1.0

Publishes joint_states and /clock and takes forward_velocity_controller/commands, which it
holds until replaced, as the real driver does (it never stops a stale command itself).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'trpo_robot'


def declare_arguments():
    return [
        DeclareLaunchArgument('robot', default_value='ur5', choices=['ur5', 'ur5e', 'dxl'],
                              description='Twin model: ur5 (125 Hz), ur5e (500 Hz) or dxl.'),
        DeclareLaunchArgument('config', default_value='',
                              description='Robot parameter YAML; empty: config/<robot>.yaml '
                              'of this package.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the twin, e.g. arm1.'),
        DeclareLaunchArgument('real_time_factor', default_value='1.0',
                              description='Sim seconds per wall second (1 = real time).'),
    ]


def _twin(context):
    robot = LaunchConfiguration('robot').perform(context)
    config = LaunchConfiguration('config').perform(context)
    robot_yaml = config or PathJoinSubstitution(
        [FindPackageShare(PACKAGE), 'config', f'{robot}.yaml']).perform(context)
    overrides = {'use_sim_time': True,
                 'real_time_factor': float(LaunchConfiguration('real_time_factor')
                                           .perform(context))}
    return [Node(package=PACKAGE, executable='twin_node', name='twin_node',
                 namespace=LaunchConfiguration('namespace').perform(context).strip('/'),
                 parameters=[robot_yaml, overrides], output='screen', emulate_tty=True)]


def generate_launch_description():
    return LaunchDescription(declare_arguments() + [OpaqueFunction(function=_twin)])
