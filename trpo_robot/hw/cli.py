"""Subcommands of the hardware layer: `check-hw` and `dxl-emulator`.

Registered through ``trpo_robot.commands.REGISTRARS``; heavy imports (dynamixel-sdk,
MuJoCo) happen inside the commands so that `trpo-robot --help` stays fast.
"""
import argparse
import importlib

from trpo_robot.errors import UsageError

ROS_ROBOTS = ('ur5', 'ur5e')
ROS_CHECK_MODULE = 'trpo_robot.ros.check_hw'
"""Where `check-hw --robot ur5` lives (the ROS edge): a ``run(args) -> int``."""


def register_check_hw(sub) -> None:
    p = sub.add_parser('check-hw', help='check a robot before learning on it: servos, '
                       'limits against the URDF, loop rate (exit 0 pass, 1 fail)',
                       description=(
                           'Dynamixel: pings every servo, reads model and firmware, checks '
                           'hardware errors, writes (unless --read-only) and reads back the '
                           'limits derived from the URDF with torque off, measures sync '
                           'read + write cycles/s, the state age and the overruns at the '
                           'bus rate, and says what to fix. Nothing moves.'))
    p.add_argument('--robot', choices=('dxl',) + ROS_ROBOTS, default='dxl')
    p.add_argument('--config', help='Dynamixel YAML (default: the package config/dxl_hw.yaml)')
    p.add_argument('--port', help='serial device (default: from the config)')
    p.add_argument('--baud', type=int, help='bus speed, bit/s (default: from the config)')
    p.add_argument('--ids', type=int, nargs='+', help='servo ids (default: from the config)')
    p.add_argument('--read-only', action='store_true',
                   help='only read the servos: do not write the URDF limits first')
    p.add_argument('--seconds', type=float, default=1.0,
                   help='length of each timing measurement, s')
    p.set_defaults(func=cmd_check_hw)


def cmd_check_hw(args) -> int:
    if args.robot in ROS_ROBOTS:
        return _ros_check(args)
    from trpo_robot.hw.check import format_report, run_checks
    config, spec = _dxl_config(args)
    if not args.seconds > 0:
        raise UsageError(f'--seconds must be > 0, got {args.seconds}')
    checks = run_checks(config, spec, read_only=args.read_only, seconds=args.seconds)
    print(format_report(config, checks))
    return 0 if all(c.ok for c in checks) else 1


def _dxl_config(args):
    from trpo_robot.hw.config import ConfigError, load_config
    from trpo_robot.paths import urdf_path
    from trpo_robot.robot.spec import RobotSpec
    try:
        config = load_config(args.config, port=args.port, baud=args.baud, ids=args.ids)
        spec = RobotSpec.from_urdf(urdf_path(config.urdf))
    except (ConfigError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    return config, spec


def _ros_check(args) -> int:
    try:
        module = importlib.import_module(ROS_CHECK_MODULE)
    except ModuleNotFoundError as e:
        if e.name not in (ROS_CHECK_MODULE, 'trpo_robot.ros', 'rclpy'):
            raise
        raise UsageError(f'check-hw --robot {args.robot} runs over ROS 2 '
                         f'({ROS_CHECK_MODULE}), which is not available here: {e}') from None
    return module.run(args)


def register_emulator(sub) -> None:
    from trpo_robot.hw.emulator.args import add_arguments, fault_epilog
    p = sub.add_parser('dxl-emulator', help='emulate Dynamixel servos on a pseudo-terminal '
                       '(Protocol 2.0, joints on the MuJoCo twin)',
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description='Opens a pty, links PATH to it, and answers like X-series '
                       'servos whose joints move the MuJoCo twin of dxl_arm.',
                       epilog=fault_epilog())
    add_arguments(p)
    p.set_defaults(func=cmd_emulator)


def cmd_emulator(args) -> int:
    from trpo_robot.hw.emulator.faults import FaultError
    from trpo_robot.hw.emulator.server import run
    if not args.real_time_factor > 0:
        raise UsageError(f'--real-time-factor must be > 0, got {args.real_time_factor}')
    if not all(0 <= i <= 252 for i in args.ids) or len(set(args.ids)) != len(args.ids):
        raise UsageError(f'--ids must be distinct numbers in 0..252, got {args.ids}')
    try:
        return run(args)
    except FaultError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f'cannot create the link {args.link}: {e}') from None


REGISTRARS = [register_check_hw, register_emulator]
