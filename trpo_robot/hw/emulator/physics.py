"""What the emulator needs of the physics behind its servos: ``ArmPhysics``.

The emulator is given its physics (``EmulatorServer(link, physics, ...)``) rather than
building it, so that this package imports no MuJoCo and no twin: a machine that drives
real servos needs neither. ``trpo_robot.dxl_emulator`` gives it the MuJoCo twin of
dxl_arm (``trpo_robot.twin.emulator_physics.EmulatorPhysics``), the same stepping that
``MujocoBackend`` uses.
"""
from typing import Protocol

import numpy as np


class ArmPhysics(Protocol):
    """The joints of one servo each, in bus order; joint angles in rad, sim time in s."""

    dt: float
    """One physics step, s: the emulator advances in whole steps."""
    drawn: dict
    """What this arm drew (randomization, latency, noise), JSON-able, for its stats."""

    @property
    def time(self) -> float:
        """Sim time of the state now, s."""

    def set_limp(self, limp) -> None:
        """Joints whose servo has torque off (one bool each): their servo lets go."""

    def move(self, index: int, position: float) -> None:
        """Put joint ``index`` at ``position`` at rest: the operator's hand."""

    def step(self, command: np.ndarray) -> None:
        """Advance one step ``dt`` with joint velocity commands, rad/s, one a servo."""

    def positions(self) -> np.ndarray:
        """Joint angles now, the truth."""

    def velocities(self) -> np.ndarray:
        """Joint velocities now, rad/s, the truth."""

    def readings(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) as the servos' sensors report them."""

    def efforts(self) -> np.ndarray:
        """Torque each servo exerts, N m."""
