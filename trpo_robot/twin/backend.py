"""The MuJoCo twin as a ``Backend``: the same five calls a real arm answers.

Everything above the backend (shield, rate loop, environment, ROS edge) is written once
against ``trpo_robot.robot.backend.Backend``; this class makes the simulator honour that
contract with the real arm's timing: commands take effect after the driver's latency, are
held for whole driver periods, and readings carry sensor noise. The arm itself is stepped
by an ``ArmStepper`` (stepping.py), the same as the Dynamixel emulator's.
"""
import math
import time

import mujoco
import numpy as np

from trpo_robot.robot.backend import Backend, Capabilities, JointState
from trpo_robot.twin.model import EE_SITE, TARGET_BODY
from trpo_robot.twin.randomization import episode_rng, noise_rng, Randomization
from trpo_robot.twin.settings import load_settings
from trpo_robot.twin.stepping import ArmStepper

MODES = ('fast', 'paced')


def _non_negative(value, what: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f'{what} must be finite and >= 0, got {value}')
    return value


def _noise_pair(noise_std, settings) -> tuple[float, float]:
    """(position std, velocity std) from None (robot default), one number, or a pair."""
    if noise_std is None:
        return settings.position_noise, settings.velocity_noise
    pair = np.broadcast_to(np.asarray(noise_std, dtype=float), (2,))
    return (_non_negative(pair[0], 'noise_std (position)'),
            _non_negative(pair[1], 'noise_std (velocity)'))


class MujocoBackend(Backend):
    """Simulated arm behind the ``Backend`` contract.

    ``mode='fast'`` steps as fast as the CPU allows (training, tests); ``mode='paced'`` also
    sleeps so that sim time follows wall time scaled by ``real_time_factor`` (a twin that a
    ROS graph or a person watches). The clock (``now``) is sim time in both modes.
    """

    capabilities = Capabilities(teleport=True, freedrive=True, seeded=True,
                                target_marker=True, overruns=True)

    def __init__(self, robot: str = 'ur5', mode: str = 'fast', latency: float | None = None,
                 noise_std=None, randomization: Randomization | None = None, seed: int = 0,
                 real_time_factor: float = 1.0, start_time: float = 0.0):
        """``start_time``: sim time of the first state; a restarted twin passes the time its
        graph had reached, so that stamps never go backwards. ``randomization`` is drawn
        with ``seed`` now and again at each ``redraw`` (ArmEnv.reset calls it)."""
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        real_time_factor = float(real_time_factor)
        if not (math.isfinite(real_time_factor) and real_time_factor > 0):
            raise ValueError(f'real_time_factor must be finite and > 0, got {real_time_factor}')
        self._settings = load_settings(robot)
        self.robot = robot
        self.mode = mode
        self.real_time_factor = real_time_factor
        self._arm = ArmStepper(robot)
        self.model, self.data = self._arm.model, self._arm.data
        self.randomization = randomization
        self._index_model()
        self._base_latency_steps = self._latency_in_steps(latency)
        self._position_std, self._velocity_std = _noise_pair(noise_std, self._settings)
        self._rng = noise_rng(seed)
        self.drawn = {}
        """What this arm is now, JSON-able, for each episode's record (``redraw``)."""
        self._owed = 0.0  # requested time not yet stepped: less than one driver period
        self._anchor = None  # (monotonic wall time, physics step) that paced mode follows
        self.overruns = 0
        self._closed = False
        self.redraw(seed)
        self._arm.home(_non_negative(start_time, 'start_time'))

    def _index_model(self) -> None:
        model, joints = self.model, self._arm.joints
        self._joint_names = tuple(model.joint(j).name for j in joints)
        self._qadr, self._dadr = self._arm.qadr, self._arm.dadr
        self._lower = model.jnt_range[joints, 0].copy()
        self._upper = model.jnt_range[joints, 1].copy()
        self._ee_site = model.site(EE_SITE).id
        self._target = int(model.body(TARGET_BODY).mocapid[0])
        chain = [int(model.body_parentid[model.jnt_bodyid[joints[0]]])]
        chain += [int(model.jnt_bodyid[j]) for j in joints]
        chain.append(model.body(self._settings.ee_link).id)
        self._chain = tuple(dict.fromkeys(chain))  # the ee link may be the last moving link
        self._n = len(joints)
        self._substeps = self._settings.n_substeps
        self.freedrive = False
        """The servos have let go (``set_freedrive``)."""

    def _latency_in_steps(self, latency) -> int:
        if latency is None:
            seconds = self._settings.latency
        else:
            seconds = _non_negative(latency, 'latency')
        return math.floor(seconds / self.model.opt.timestep + 0.5)  # half rounds up

    def redraw(self, seed: int | None = None) -> dict:
        """Draw the randomized masses, damping, friction and extra latency afresh, from
        the nominal model (nothing to draw for an unrandomized twin); returns ``drawn``.

        Domain randomization is per episode, and editing the compiled model costs
        microseconds. ``seed`` gives a reproducible draw and starts the sequence that
        later calls without one continue; the seed each draw used is in ``drawn``, and
        ``build_model(robot, randomization, seed)`` rebuilds that arm.
        """
        self._check_open()
        if seed is None:
            seed = int(self._seeds.integers(2**31))
        else:
            self._seeds = episode_rng(seed)
        factors, extra = self._arm.redraw(self.randomization, seed)
        self._arm.latency_steps = self._base_latency_steps + extra * self._substeps
        self.drawn = self._describe(int(seed), factors, extra)
        return self.drawn

    def _describe(self, seed, factors, extra) -> dict:
        return {'seed': seed, 'randomized': self.randomization is not None, **factors,
                'latency_s': self.latency, 'extra_latency_periods': extra,
                'latency_periods': round(self._arm.latency_steps / self._substeps, 6),
                'position_noise': self._position_std, 'velocity_noise': self._velocity_std}

    # --- Backend protocol -------------------------------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Actuated joints in chain order, as named in the URDF."""
        return self._joint_names

    @property
    def period(self) -> float:
        """Driver period, s."""
        return self._settings.period

    @property
    def latency(self) -> float:
        """Action latency actually modelled, s: whole physics steps."""
        return self._arm.latency_steps * self._arm.dt

    def now(self) -> float:
        """Sim time, s."""
        return float(self.data.time)

    def read(self) -> JointState:
        """Joint positions and velocities now, with the configured Gaussian noise."""
        self._check_open()
        position = self.data.qpos[self._qadr]
        velocity = self.data.qvel[self._dadr]
        if self._position_std:
            position += self._rng.normal(0.0, self._position_std, self._n)
        if self._velocity_std:
            velocity += self._rng.normal(0.0, self._velocity_std, self._n)
        return JointState(position=position, velocity=velocity, stamp=float(self.data.time))

    def send_velocity(self, v) -> None:
        """Queue joint velocities, rad/s; they reach the servos after the latency.

        Commands beyond the URDF velocity limit saturate at it, as the drive would.
        """
        self._check_open()
        self._arm.send(self._vector(v, 'velocity command'))

    def stop(self) -> None:
        """Drop commands still in flight and hold zero velocity, after the same latency."""
        self._check_open()
        self._arm.drop_pending()
        self._arm.send(np.zeros(self._n))

    def advance(self, duration: float) -> None:
        """Step physics for whole driver periods, holding the command between changes.

        Time that does not fill a period is carried to the next call, so many short calls
        add up to the same sim time as one long one.
        """
        self._check_open()
        self._owed += _non_negative(duration, 'duration')
        periods = math.floor(self._owed / self.period + 1e-9)
        self._owed = max(0.0, self._owed - periods * self.period)
        if self.mode == 'fast':
            self._arm.run(periods * self._substeps)
        else:
            self._run_paced(periods)

    def close(self) -> None:
        """Stop the servos at once and refuse further calls."""
        if not self._closed:
            self._arm.hold(np.zeros(self._n))
            self._closed = True

    # --- optional capabilities of a simulated backend -------------------------------

    def reset_state(self, position, velocity=None) -> None:
        """Teleport the joints; the servos then hold ``velocity`` (zero by default).

        Sim time keeps running forward, so stamps stay monotonic across episodes.
        """
        self._check_open()
        position = self._vector(position, 'position')
        if velocity is None:
            velocity = np.zeros(self._n)
        velocity = self._vector(velocity, 'velocity')
        outside = (position < self._lower - 1e-9) | (position > self._upper + 1e-9)
        if outside.any():
            names = [n for n, bad in zip(self._joint_names, outside) if bad]
            raise ValueError(f'position outside the joint range for {names}: {position}')
        self._arm.hold(velocity)
        self._arm.place(slice(None), position, velocity)
        self._anchor = None

    def set_freedrive(self, on: bool) -> None:
        """Freedrive as a UR does it: on, the velocity servos let go (no servo force) while
        gravity compensation keeps the arm floating, so a push or a teleport (the
        operator's hand in a twin) moves it and it stays there; off, they hold zero
        velocity again. Commands sent meanwhile move nothing."""
        self._check_open()
        self.freedrive = bool(on)
        self._arm.release(self.freedrive)
        self._arm.hold(np.zeros(self._n))

    def reseed_noise(self, seed: int) -> None:
        """Restart the sensor-noise stream, so that env.reset(seed=...) is reproducible."""
        self._rng = noise_rng(seed)

    def set_target(self, xyz) -> None:
        """Move the visual target marker (a mocap body: it never touches the arm).

        Drawn from the next physics step on (or at once by ``render_rgb``), which keeps
        this cheap enough to call every agent step.
        """
        self._check_open()
        xyz = np.asarray(xyz, dtype=float)
        if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
            raise ValueError(f'target must be 3 finite numbers, got {xyz!r}')
        self.data.mocap_pos[self._target] = xyz

    # --- helpers for tests and tools ---------------------------------------------------

    def ee_position(self) -> np.ndarray:
        """End-effector position in the base (= world) frame, noise-free, (3,)."""
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._ee_site].copy()

    def body_positions(self) -> dict[str, np.ndarray]:
        """Origins of the base, each moving link and the ee link, in chain order."""
        mujoco.mj_kinematics(self.model, self.data)
        return {self.model.body(b).name: self.data.xpos[b].copy() for b in self._chain}

    def held_command(self) -> np.ndarray:
        """The command the servos hold now (after latency and saturation), rad/s."""
        self._arm.apply_due()
        return np.clip(self.data.ctrl, self.model.actuator_ctrlrange[:, 0],
                       self.model.actuator_ctrlrange[:, 1])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError('this MujocoBackend is closed')

    def _vector(self, value, what: str) -> np.ndarray:
        try:
            array = np.array(value, dtype=float)
        except (TypeError, ValueError) as error:
            raise ValueError(f'{what} must be numbers, got {value!r}') from error
        if array.shape != (self._n,):
            raise ValueError(f'{what} must have shape ({self._n},) for joints '
                             f'{self._joint_names}, got shape {array.shape}')
        if not np.all(np.isfinite(array)):
            raise ValueError(f'{what} must be finite, got {array}')
        return array

    def _run_paced(self, periods: int) -> None:
        """One driver period at a time, each finished no earlier than its wall deadline.

        Deadlines are absolute (anchor + sim time / factor); after falling behind by more
        than a period the anchor moves to now instead of bursting to catch up.
        """
        scale = self.model.opt.timestep / self.real_time_factor
        for _ in range(periods):
            if self._anchor is None:
                self._anchor = (time.monotonic(), self._arm.steps)
            self._arm.run(self._substeps)
            wall0, step0 = self._anchor
            deadline = wall0 + (self._arm.steps - step0) * scale
            now = time.monotonic()
            if now < deadline:
                time.sleep(deadline - now)
            elif now - deadline > self.period / self.real_time_factor:
                self.overruns += 1
                self._anchor = (now, self._arm.steps)
