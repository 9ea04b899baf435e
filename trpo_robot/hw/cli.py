"""Subcommands of the hardware layer: `check-hw`.

Registered through ``trpo_robot.commands.REGISTRARS``; heavy imports (dynamixel-sdk)
happen inside the commands so that `trpo-robot --help` stays fast. `dxl-emulator` runs
the emulator with the MuJoCo twin behind it, so it is registered above both layers, by
``trpo_robot.dxl_emulator``.
"""
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


REGISTRARS = [register_check_hw]
