"""Domain randomization: the ranges, and the seeded draws that apply them.

A policy trained on one exact model learns that model's quirks; drawing masses, damping,
friction and latency from plausible ranges makes it rely only on what all of them share,
which is what the real arm shares with them too.
"""
from dataclasses import dataclass

import numpy as np


def _check_range(name: str, bounds: tuple, low_min: float) -> None:
    low, high = bounds
    if not (np.isfinite(low) and np.isfinite(high) and low_min <= low <= high):
        raise ValueError(f'Randomization.{name} must be finite with {low_min} <= low <= high, '
                         f'got {bounds}')


@dataclass(frozen=True)
class Randomization:
    """Uniform ranges, each factor drawn once per draw: every episode of an arm env
    (``MujocoBackend.redraw`` at each reset), once per twin_node or emulator start.

    ``None`` in place of a Randomization means the nominal model. The defaults are the
    spread between the URDF's estimated inertias and what a real arm with cables and a tool
    weighs, and between a cold and a warm gearbox.
    """

    mass_scale: tuple[float, float] = (0.8, 1.2)
    """Factor on each moving link's mass and inertia (one draw per link)."""
    damping_scale: tuple[float, float] = (0.5, 2.0)
    """Factor on each joint's viscous damping (one draw per joint)."""
    friction_scale: tuple[float, float] = (0.5, 1.5)
    """Factor on each joint's dry friction (frictionloss) and each geom's sliding friction."""
    latency_periods: tuple[int, int] = (0, 2)
    """Extra action latency, whole driver periods, drawn inclusively and added to the robot's
    default: the real delay depends on the host, the network and the driver cycle phase."""

    def __post_init__(self):
        _check_range('mass_scale', self.mass_scale, 1e-3)
        _check_range('damping_scale', self.damping_scale, 0.0)
        _check_range('friction_scale', self.friction_scale, 0.0)
        _check_range('latency_periods', self.latency_periods, 0)
        if not all(float(x).is_integer() for x in self.latency_periods):
            raise ValueError(f'Randomization.latency_periods must be whole numbers, '
                             f'got {self.latency_periods}')

    def draw_latency_periods(self, rng: np.random.Generator) -> int:
        """Extra latency for one draw, in driver periods."""
        low, high = (int(x) for x in self.latency_periods)
        return int(rng.integers(low, high + 1))


def model_rng(seed: int) -> np.random.Generator:
    """Stream for model parameters; separate from latency and noise so that changing one
    randomized quantity does not reshuffle the others."""
    return np.random.default_rng([int(seed), 0])


def latency_rng(seed: int) -> np.random.Generator:
    """Stream for the latency draw."""
    return np.random.default_rng([int(seed), 1])


def noise_rng(seed: int) -> np.random.Generator:
    """Stream for sensor noise."""
    return np.random.default_rng([int(seed), 2])


def episode_rng(seed: int) -> np.random.Generator:
    """Stream of the seeds of later draws: an env seeded once (``reset(seed=...)``) still
    gets a new arm every episode, and the same sequence of arms every run."""
    return np.random.default_rng([int(seed), 3])
