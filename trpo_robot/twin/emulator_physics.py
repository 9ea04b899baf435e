"""The joints behind the Dynamixel emulator's servos: the twin of dxl_arm, stepped by the
same ``ArmStepper`` as ``MujocoBackend``.

The emulator (``trpo_robot.hw.emulator``) imports no MuJoCo: it drives whatever physics it
is given through its ``ArmPhysics`` protocol, which ``EmulatorPhysics`` implements, and
``trpo_robot.dxl_emulator`` puts the two together.
"""
import math

import numpy as np

from trpo_robot.twin.conditions import NOMINAL, TwinConditions
from trpo_robot.twin.randomization import noise_rng
from trpo_robot.twin.settings import load_settings
from trpo_robot.twin.stepping import ArmStepper

ROBOT = 'dxl'


class EmulatorPhysics:
    """The emulated joints: the first ones on the MuJoCo twin of dxl_arm, any further
    ones as ideal velocity servos (a six-servo bench needs more servos than the arm has)."""

    def __init__(self, n: int, conditions: TwinConditions = NOMINAL, seed: int = 0):
        self.arm = ArmStepper(ROBOT)
        self.model, self.data = self.arm.model, self.arm.data
        self.n_twin = min(n, self.arm.n)
        self._qadr, self._dadr = self.arm.qadr[:self.n_twin], self.arm.dadr[:self.n_twin]
        self._extra_q = np.zeros(n - self.n_twin)
        self._extra_v = np.zeros(n - self.n_twin)
        self.dt = self.arm.dt
        self._limp = (False,) * self.n_twin
        self.arm.hold(np.zeros(n))
        self.drawn = self._apply_conditions(conditions or NOMINAL, int(seed))
        """What this emulated arm drew, JSON-able (the control channel's stats say it)."""

    @property
    def time(self) -> float:
        """Sim time, s (MuJoCo's clock, which each step moves on by ``dt``)."""
        return float(self.data.time)

    def _apply_conditions(self, conditions: TwinConditions, seed: int) -> dict:
        """Randomize the model, delay commands on their way to the motors, add reading
        noise. Unset latency and noise add nothing here, unlike on the twin: the bus
        already delays every command by its cycle and the encoder quantises every
        reading, which is what the twin's defaults stand for."""
        rand = conditions.randomization
        factors, extra = self.arm.redraw(rand, seed)
        period = load_settings(ROBOT).period
        seconds = (conditions.latency or 0.0) + extra * period
        self.arm.latency_steps = math.floor(seconds / self.dt + 0.5)
        self._noise = conditions.noise_std or (0.0, 0.0)
        self._rng = noise_rng(seed)
        latency = self.arm.latency_steps * self.dt
        return {'seed': seed, 'randomized': rand is not None, **factors,
                'latency_s': latency, 'extra_latency_periods': extra,
                'latency_periods': round(latency / period, 6),
                'position_noise': self._noise[0], 'velocity_noise': self._noise[1]}

    def set_limp(self, limp) -> None:
        """Joints whose servo has torque off: their velocity servo exerts no force, so a
        push moves them. Gravity compensation stays on: on a real arm the operator's hand
        carries the weight of a limp arm. Called every physics step; the model changes
        only when a servo's torque did."""
        limp = tuple(bool(x) for x in limp[:self.n_twin])
        if limp != self._limp:
            self._limp = limp
            self.arm.release(limp + (False,) * (self.arm.n - self.n_twin))

    def move(self, index: int, position: float) -> None:
        """Put joint ``index`` at ``position``, rad, at rest (the hand has let go)."""
        if index < self.n_twin:
            self.arm.place([index], position, 0.0)
        else:
            self._extra_q[index - self.n_twin] = position
            self._extra_v[index - self.n_twin] = 0.0

    def step(self, command: np.ndarray) -> None:
        """One physics step with joint velocity commands, rad/s, applied after the
        latency (whole physics steps; the motors hold the previous one meanwhile)."""
        self.arm.send(command)
        self.arm.run(1)
        self._extra_v[:] = self.arm.held[self.n_twin:]
        self._extra_q += self._extra_v * self.dt

    def positions(self) -> np.ndarray:
        return np.concatenate([self.arm.positions()[:self.n_twin], self._extra_q])

    def velocities(self) -> np.ndarray:
        return np.concatenate([self.arm.velocities()[:self.n_twin], self._extra_v])

    def readings(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities as the servos report them: with the configured
        noise (the truth stays in positions() and velocities())."""
        q, v = self.positions(), self.velocities()
        position_std, velocity_std = self._noise
        if position_std:
            q = q + self._rng.normal(0.0, position_std, q.shape)
        if velocity_std:
            v = v + self._rng.normal(0.0, velocity_std, v.shape)
        return q, v

    def efforts(self) -> np.ndarray:
        return np.concatenate([self.arm.efforts()[:self.n_twin],
                               np.zeros_like(self._extra_v)])
