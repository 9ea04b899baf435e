"""The emulator's bus and fault flags, shared by `trpo-robot dxl-emulator` and
`python -m trpo_robot.dxl_emulator` (kept light: no MuJoCo import). The flags of the
physics behind the servos are added by whoever gives it (``trpo_robot.dxl_emulator``)."""
import argparse

from trpo_robot.hw.emulator.faults import KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--link', required=True, metavar='PATH',
                        help='path to create as a symlink to the pty (the "device")')
    parser.add_argument('--ids', type=int, nargs='+', default=[1, 2, 3],
                        help='servo ids on the bus (the first three drive the dxl_arm twin)')
    parser.add_argument('--baud', type=int, default=1_000_000,
                        help='bus speed used to model wire time, bit/s')
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='sim seconds per wall second (tests run faster than real time)')
    parser.add_argument('--fault', action='append', default=[], metavar='KIND=VALUE',
                        help='inject a fault (repeatable); kinds are listed below')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of random faults and of the twin conditions\' draws')
    parser.add_argument('--priority', type=int, metavar='N',
                        help='run under SCHED_FIFO at priority N (needs CAP_SYS_NICE)')
    parser.add_argument('--control', action='store_true', help=argparse.SUPPRESS)


def fault_epilog() -> str:
    return 'faults:\n' + '\n'.join(f'  {k + "=...":<16} {v}' for k, v in KINDS.items())
