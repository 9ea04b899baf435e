"""hw layer of trpo_robot (see docs/architecture.md): Dynamixel servos over a serial bus.

Imports dynamixel-sdk, pyserial and the robot layer, never rclpy (the UR5 is reached over
ROS 2 in ``trpo_robot/ros/``), nor MuJoCo or the twin: ``hw.emulator`` is given the physics
behind its servos (``trpo_robot.dxl_emulator`` gives it the twin's).
"""

__all__ = ['DynamixelBackend', 'DxlConfig', 'ServoFault', 'load_config']


def __getattr__(name):
    """Lazy exports, so that the CLI can register commands without loading the SDK."""
    if name == 'DynamixelBackend':
        from .backend import DynamixelBackend
        return DynamixelBackend
    if name == 'ServoFault':
        from .bus import ServoFault
        return ServoFault
    if name in ('DxlConfig', 'load_config'):
        from . import config
        return getattr(config, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
