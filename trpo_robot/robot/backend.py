"""The contract between the robot layer and whatever moves the joints.

A simulator, a Dynamixel bus and a UR driver all look the same from here, so the shield,
the rate loop and the environment are written and tested once, against this protocol.
"""
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Backend(Protocol):
    """What ``ArmEnv`` and the ROS edge need from an arm, simulated or real.

    Optional capabilities of simulated backends are discovered with ``hasattr``:
    ``reset_state(position, velocity=None)`` (teleport) and ``set_target(xyz)`` (moves the
    visual target marker).
    """

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Actuated joints in chain order; every array this backend takes or gives uses it."""

    @property
    def period(self) -> float:
        """Driver period, s: the cadence at which commands are expected."""

    def now(self) -> float:
        """Backend clock, s: sim time in a simulator, monotonic time on hardware."""

    def read(self) -> JointState:
        """Latest joint reading."""

    def send_velocity(self, v: np.ndarray) -> None:
        """Command joint velocities, rad/s; the driver holds them until the next command."""

    def stop(self) -> None:
        """Bring the joints to rest with the driver's own stopping behaviour."""

    def advance(self, duration: float) -> None:
        """Let ``duration`` seconds pass holding the last command.

        A simulator steps its physics; a real arm simply waits.
        """

    def close(self) -> None:
        """Release the device or simulator; the arm must be stopped afterwards."""
