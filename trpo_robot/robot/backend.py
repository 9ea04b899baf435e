"""The contract between the robot layer and whatever moves the joints.

A simulator, a Dynamixel bus and a UR driver all look the same from here, so the shield,
the rate loop and the environment are written and tested once, against this contract.
"""
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np


class BackendFault(RuntimeError):
    """The device behind a backend failed (lost link, servo fault) and the backend has
    already stopped the arm as well as it could.

    Backends raise a subclass (e.g. ``trpo_robot.hw.ServoFault``) whose message names the
    part and the fault; the environment and the actor catch this base class, mark the
    episode aborted, and never learn from it.
    """


@dataclass(frozen=True)
class JointState:
    """One reading of the actuated joints, in chain order.

    ``stamp`` is on the backend's own clock (sim time in a simulator, monotonic time on
    hardware) so that the shield can tell a stale reading from a fresh one.
    """

    position: np.ndarray
    """Joint angles, rad, shape (n,)."""
    velocity: np.ndarray
    """Joint velocities, rad/s, shape (n,)."""
    stamp: float
    """When the reading was taken, s, on the backend clock."""


@dataclass(frozen=True)
class Capabilities:
    """The optional parts of the contract a backend implements, declared by its class.

    Declared rather than discovered, so that a backend says once what it can do and the
    layers above never probe it; ``check_backend`` holds each flag to the members it names
    (``OPTIONAL_MEMBERS``), both ways, so a declaration cannot drift from the code. A
    capability left out keeps the ``Backend`` default documented with its member.
    """

    teleport: bool = False
    """``reset_state``: ArmEnv puts the arm at the start pose at once (a simulator) instead
    of driving it there through the shield."""
    freedrive: bool = False
    """``set_freedrive``, ``freedrive``: the lifecycle's freedrive reset hands the arm to the
    operator's hand; without it that reset has no hook and only commands zero."""
    seeded: bool = False
    """``redraw``, ``drawn``, ``reseed_noise``: a simulated arm and its sensor noise are
    drawn per episode, reproducibly from ``env.reset(seed)``, and ``drawn`` goes into
    ``info['twin']``."""
    target_marker: bool = False
    """``set_target``: a visible marker follows the task's target."""
    lateness: bool = False
    """``lateness``: how late the newest command left, into ``info['timing']``."""
    overruns: bool = False
    """``overruns``: driver periods that passed without a command, for the actor's swap
    figures."""
    driver_ticks: bool = False
    """``advance_untimed``, ``resync``, ``reset_ticks``, ``last_send_wall``: time is an
    external driver's ticks (ROS), which the actor keeps out of the agent's timing between
    episodes and after pauses."""


REQUIRED_MEMBERS = ('joint_names', 'period', 'now', 'read', 'send_velocity', 'stop',
                    'advance', 'close')
OPTIONAL_MEMBERS = {
    'teleport': ('reset_state',),
    'freedrive': ('set_freedrive', 'freedrive'),
    'seeded': ('redraw', 'drawn', 'reseed_noise'),
    'target_marker': ('set_target',),
    'lateness': ('lateness',),
    'overruns': ('overruns',),
    'driver_ticks': ('advance_untimed', 'resync', 'reset_ticks', 'last_send_wall'),
}
"""Capability flag -> the members it stands for."""


class Backend(ABC):
    """What ``ArmEnv``, the lifecycle and the actor need from an arm, simulated or real.

    A new arm implements every abstract member (Python refuses to build it otherwise,
    naming what is missing) and declares in ``capabilities`` which optional members it
    implements; the others keep the defaults below, so callers use them without asking
    first. ``ArmEnv`` runs ``check_backend`` on what it is given.
    """

    capabilities = Capabilities()

    # -- required ---------------------------------------------------------------------

    @property
    @abstractmethod
    def joint_names(self) -> tuple[str, ...]:
        """Actuated joints in chain order; every array this backend takes or gives uses it."""

    @property
    @abstractmethod
    def period(self) -> float:
        """Driver period, s: the cadence at which commands are expected."""

    @abstractmethod
    def now(self) -> float:
        """Backend clock, s: sim time in a simulator, monotonic time on hardware."""

    @abstractmethod
    def read(self) -> JointState:
        """Latest joint reading."""

    @abstractmethod
    def send_velocity(self, v: np.ndarray) -> None:
        """Command joint velocities, rad/s; the driver holds them until the next command."""

    @abstractmethod
    def stop(self) -> None:
        """Bring the joints to rest with the driver's own stopping behaviour."""

    @abstractmethod
    def advance(self, duration: float) -> None:
        """Let ``duration`` seconds pass holding the last command.

        A simulator steps its physics; a real arm simply waits.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or simulator; the arm must be stopped afterwards."""

    # -- optional: defaults for a backend that does not declare the capability --------

    freedrive = False
    """freedrive: the arm is limp for the operator's hand (never, by default)."""
    drawn = MappingProxyType({})
    """seeded: what the arm is now, JSON-able; empty (read-only) when nothing is drawn, so
    an episode's info has no 'twin'."""
    lateness = 0.0
    """lateness: s; a backend that does not measure it reports none."""
    overruns = 0
    """overruns: a backend that does not count them reports none missed."""
    reset_ticks = 0
    """driver_ticks: driver periods spent between episodes (advance_untimed)."""
    last_send_wall = None
    """driver_ticks: monotonic time the newest command left; None: not known, and the actor
    counts a swap's first action from the swap itself."""

    def reset_state(self, position, velocity=None) -> None:
        """teleport: a real arm cannot be put somewhere; it is reset by driving it."""
        raise NotImplementedError(f'{type(self).__name__} cannot teleport '
                                  '(capabilities.teleport is False): drive the arm instead')

    def set_freedrive(self, on: bool) -> None:
        """freedrive: refused, since nothing would let the arm go (the lifecycle is given
        no hook for a backend without the capability)."""
        raise NotImplementedError(f'{type(self).__name__} has no freedrive '
                                  '(capabilities.freedrive is False)')

    def redraw(self, seed: int | None = None) -> dict:
        """seeded: an arm that is not drawn stays what it is; returns ``drawn``."""
        return dict(self.drawn)

    def reseed_noise(self, seed: int) -> None:
        """seeded: no noise stream of its own to restart."""

    def set_target(self, xyz) -> None:
        """target_marker: nothing to show a target on."""

    def advance_untimed(self) -> None:
        """driver_ticks: one driver period between episodes; without a driver's ticks to
        keep apart, simply ``advance(period)``."""
        self.advance(self.period)

    def resync(self) -> None:
        """driver_ticks: no tick sequence to resynchronise after a pause."""


def check_backend(backend) -> None:
    """Refuse, naming the class and the member, a backend that breaks the contract, before
    anything drives an arm through it. TypeError: not a Backend (required members missing);
    ValueError: ``capabilities`` disagrees with what the class implements."""
    name = type(backend).__name__
    if not isinstance(backend, Backend):
        missing = [m for m in REQUIRED_MEMBERS if m not in dir(backend)]
        lacks = f'; it lacks the required {", ".join(missing)}' if missing else ''
        raise TypeError(f'{name} is not a trpo_robot.robot.backend.Backend: subclass it, '
                        f'so that its optional capabilities have their defaults{lacks}')
    caps = backend.capabilities
    if not isinstance(caps, Capabilities):
        raise TypeError(f'{name}.capabilities must be a Capabilities, got {caps!r}')
    for flag, declared in asdict(caps).items():
        _check_capability(backend, flag, declared)


def _check_capability(backend, flag, declared):
    members = OPTIONAL_MEMBERS[flag]
    own = [m for m in members if _implements(backend, m)]
    name = type(backend).__name__
    if declared and len(own) < len(members):
        missing = ', '.join(m for m in members if m not in own)
        raise ValueError(f'{name} declares capabilities.{flag} but does not implement '
                         f'{missing}')
    if own and not declared:
        raise ValueError(f'{name} implements {", ".join(own)} but does not declare '
                         f'capabilities.{flag}, so the layers above would not use it')


def _implements(backend, member) -> bool:
    """The member is the backend's own (set on the instance, or defined by a subclass),
    not the default Backend provides."""
    if member in vars(backend):
        return True
    owner = next(c for c in type(backend).__mro__ if member in vars(c))
    return owner is not Backend
