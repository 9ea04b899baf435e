"""The Dynamixel emulator with the MuJoCo twin of dxl_arm behind its servos.

The emulator (``trpo_robot.hw.emulator``: protocol, servos, faults, the pty) imports no
MuJoCo and the twin imports no hardware, so the two meet here, above both layers: the
twin's ``EmulatorPhysics`` (stepped by the same ``ArmStepper`` as ``MujocoBackend``) is
given to the emulator's server. Entry points: ``trpo-robot dxl-emulator``, ``python -m
trpo_robot.dxl_emulator`` (what ``Emulator`` starts as its child) and ``Emulator``.

Twin conditions (``--randomize``, ``--latency``, ``--noise``; see
trpo_robot/twin/conditions.py) apply to its physics: a randomized model, commands reaching
the motors that much later, noise on the positions and velocities the servos report.
MuJoCo is imported only when an emulator is built, so that `trpo-robot --help` stays fast.
"""
import argparse
import json
import sys

from trpo_robot.errors import UsageError
from trpo_robot.hw.emulator import Emulator as EmulatorHandle
from trpo_robot.hw.emulator.args import add_arguments as add_bus_arguments, fault_epilog
from trpo_robot.hw.emulator.faults import apply_fault, FaultError, Faults
from trpo_robot.twin import conditions
from trpo_robot.twin.conditions import NOMINAL, TwinConditions

DESCRIPTION = ('Opens a pty, links PATH to it, and answers like X-series servos whose joints '
               'move the MuJoCo twin of dxl_arm.')


class Emulator(EmulatorHandle):
    """``trpo_robot.hw.emulator.Emulator`` with the twin of dxl_arm behind its servos."""

    entry = 'trpo_robot.dxl_emulator'

    def __init__(self, link, ids=(1, 2, 3), baud=1_000_000, faults=(), real_time_factor=1.0,
                 seed=0, priority=None, thread=False, conditions: TwinConditions | None = None):
        """``conditions``: for its physics (drawn with ``seed``); what was drawn is in
        ``stats()['twin']``."""
        super().__init__(link, ids, baud, faults, real_time_factor, seed, priority, thread)
        self.conditions = conditions

    def entry_flags(self) -> list[str]:
        if self.conditions is None:
            return []
        return ['--conditions-json', json.dumps(self.conditions.as_dict())]

    def physics(self):
        return twin_physics(len(set(self.ids)), self.conditions, self.seed)


def twin_physics(n: int, twin_conditions: TwinConditions | None, seed: int):
    """The joints of ``n`` servos on the MuJoCo twin of dxl_arm."""
    from trpo_robot.twin.emulator_physics import EmulatorPhysics
    return EmulatorPhysics(n, twin_conditions, seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's bus and fault flags, then its twin's."""
    add_bus_arguments(parser)
    # The whole TwinConditions as JSON (TwinConditions.as_dict), from the Emulator handle:
    # the flags below cannot say custom randomization ranges. The flags apply on top.
    parser.add_argument('--conditions-json', default=None, help=argparse.SUPPRESS)
    conditions.add_arguments(parser)


def conditions_from_args(args) -> TwinConditions:
    """The Emulator handle's JSON (if any), with the flags on top; UsageError if bad."""
    base = NOMINAL
    if getattr(args, 'conditions_json', None):
        try:
            base = TwinConditions.from_dict(json.loads(args.conditions_json))
        except (ValueError, TypeError, AttributeError) as e:
            raise UsageError(f'--conditions-json: {e}') from None
    return conditions.from_arguments(args, base)


def server_from_args(args):
    """The emulator server the flags describe, with its twin built."""
    from trpo_robot.hw.emulator.server import EmulatorServer
    faults = Faults()
    for text in args.fault:
        apply_fault(faults, text)
    physics = twin_physics(len(set(args.ids)), conditions_from_args(args), args.seed)
    control = (sys.stdin.fileno(), sys.stdout.fileno()) if args.control else None
    return EmulatorServer(args.link, physics, args.ids, args.baud, faults,
                          args.real_time_factor, control=control, seed=args.seed)


def run(args, announce=print) -> int:
    """Serve until interrupted; ``--control`` speaks JSON lines on stdin/stdout instead."""
    from trpo_robot.hw.emulator.server import run as serve
    return serve(server_from_args(args), args.priority, announce)


# -- trpo-robot dxl-emulator ------------------------------------------------------------

def register(sub) -> None:
    p = sub.add_parser('dxl-emulator', help='emulate Dynamixel servos on a pseudo-terminal '
                       '(Protocol 2.0, joints on the MuJoCo twin)',
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=DESCRIPTION, epilog=fault_epilog())
    add_arguments(p)
    p.set_defaults(func=cmd_emulator)


def cmd_emulator(args) -> int:
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


# -- python -m trpo_robot.dxl_emulator (the Emulator handle's child) --------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m trpo_robot.dxl_emulator',
                                     description=DESCRIPTION, epilog=fault_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FaultError as e:
        parser.error(str(e))
    except UsageError as e:
        print(f'{parser.prog}: error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
