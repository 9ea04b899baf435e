"""ArmEnv: any Backend (twin, Dynamixel, UR over ROS) as a gymnasium environment.

Shape after gymnasium's MuJoCo envs: act (through the shield) -> let time pass -> observe ->
reward terms. The policy acts every agent step (40 ms) and its command is held for the whole
step, as SenseAct does. The shield filters each command once, with its period set to the
agent step, so its braking and workspace guarantees cover the whole interval the command
is held. A backend that must show it is alive every driver period (the ROS backend, to the
command guard) re-sends that same filtered command; it never sends anything else.
"""
import dataclasses
import time

import gymnasium as gym
import numpy as np

from .backend import Backend, BackendFault, check_backend
from .lifecycle import auto_reset
from .shield import Intervention, SafetyShield, ShieldConfig
from .spec import RobotSpec
from .tasks import Task


def task_spec(spec: RobotSpec, task: Task) -> RobotSpec:
    """The URDF spec with the actuated joints' limits narrowed to the task's range."""
    lower, upper = spec.lower.copy(), spec.upper.copy()
    for name, lo, hi in zip(task.actuated, task.joint_low, task.joint_high):
        i = spec.joint_names.index(name)
        if not spec.lower[i] <= lo < hi <= spec.upper[i]:
            raise ValueError(f'task {task.name}: range [{lo}, {hi}] of {name} is not inside '
                             f'the URDF limits [{spec.lower[i]}, {spec.upper[i]}]')
        lower[i], upper[i] = lo, hi
    for a in (lower, upper):
        a.setflags(write=False)
    return dataclasses.replace(spec, lower=lower, upper=upper)


def workspace_box(spec: RobotSpec, task: Task, samples=4096, seed=0):
    """The box the end effector can reach within the task's joint range, plus a margin."""
    rng = np.random.default_rng(seed)
    qs = np.tile(np.asarray(task.home, float), (samples, 1))
    idx = [spec.joint_names.index(n) for n in task.actuated]
    qs[:, idx] = rng.uniform(spec.lower[idx], spec.upper[idx], (samples, len(idx)))
    pts = spec.fk_batch(qs)
    return (tuple(pts.min(0) - task.workspace_margin), tuple(pts.max(0) + task.workspace_margin))


def default_shield_config(spec: RobotSpec, task: Task) -> ShieldConfig:
    low, high = workspace_box(spec, task)
    # The shield runs once per agent step: a state two agent steps old (80 ms, ten UR
    # driver periods) is stale.
    return ShieldConfig(velocity_scale=1.0, max_velocity=task.max_velocity,
                        max_acceleration=task.max_acceleration, workspace_low=low,
                        workspace_high=high, stale_periods=2.0)


class ArmEnv(gym.Env):
    metadata = {'render_modes': ['rgb_array'], 'render_fps': 25}

    def __init__(self, backend: Backend, task: Task, spec: RobotSpec,
                 shield_config: ShieldConfig | None = None, render_mode: str | None = None,
                 renderer=None):
        """renderer: a function that draws the backend's current state as an RGB array; the
        twin layer passes one (this layer imports no mujoco), a real arm has none."""
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode {render_mode!r}: only 'rgb_array' (or None)")
        if render_mode and renderer is None:
            raise ValueError("render_mode 'rgb_array' needs a backend that can draw itself "
                             '(the MuJoCo twin); a real arm has no picture to give')
        self.render_mode, self._renderer = render_mode, renderer
        check_backend(backend)
        self.backend, self.task = backend, task
        if tuple(backend.joint_names) != tuple(spec.joint_names):
            raise ValueError(f'backend joints {backend.joint_names} differ from the URDF '
                             f'chain {spec.joint_names}')
        self.robot_spec = task_spec(spec, task)
        config = shield_config or default_shield_config(self.robot_spec, task)
        self.act_idx = np.array([spec.joint_names.index(n) for n in task.actuated])
        self.periods_per_step = _whole_periods(task.agent_dt, backend.period)
        self.shield = SafetyShield(self.robot_spec, config, self.dt, clock=backend.now)
        self.home = np.asarray(task.home, float)
        n = len(self.act_idx)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3 * n + 6,), np.float32)
        self._kin = self.robot_spec.kinematics()
        self._command = np.zeros(spec.dof)
        self._prev_action = np.zeros(n)
        self._target = np.zeros(3)
        self._steps = 0
        self._phase = 0.0
        self._state = None
        self.step_wall_s = 0.0
        """Wall-clock cost of the last step (kept out of info, which must be deterministic)."""
        self.drive_resets = not backend.capabilities.teleport
        """Reset by moving the arm (a real arm, a ROS twin) instead of teleporting it (a
        simulator in this process). The move is the lifecycle's auto reset, through this
        env's shield: the one way an arm is driven to a start pose."""
        self.reset_seconds = 0.0
        """Backend-clock time the last driven reset took (0 after a teleport)."""
        self.aborted = None
        """The BackendFault that ended the current episode, None while it runs normally.
        The fault propagates to the caller (gymnasium has no 'aborted' outcome); the actor
        reads this to discard the episode instead of learning from it."""

    @property
    def dt(self):
        return self.periods_per_step * self.backend.period

    def reset(self, *, seed=None, options=None):
        """Start an episode. options={'in_place': True} starts it where the arm is: the
        actor's lifecycle (auto / teleop / freedrive reset) has already moved it.

        A simulated backend that randomizes draws a new arm for each episode (seeded by
        ``seed``, or continuing the sequence of the last seed); info['twin'] says what was
        drawn, so each episode's record holds the conditions it ran under. A real arm
        has no such thing to say.
        """
        super().reset(seed=seed)
        self.aborted = None
        if seed is not None:
            self.backend.reseed_noise(seed)
        self.backend.redraw(seed)
        if not (options or {}).get('in_place', False):
            self._move_to_start()
        self.shield.reset()
        self._steps, self._prev_action[:] = 0, 0.0
        self._center, self._amplitude = self._draw_target_motion()
        self._phase = self.np_random.uniform(0, 2 * np.pi)
        self._update_target()
        state = self._state = self.backend.read()
        ee = self._kin.position(np.asarray(state.position, float)).copy()
        info = {'target': self._target.copy()}
        if self.backend.drawn:
            info['twin'] = self.backend.drawn
        return self._observe(state, ee), info

    def step(self, action):
        t0 = time.perf_counter()
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        self._command[:] = 0.0
        if action.shape == self._prev_action.shape:
            with np.errstate(over='ignore', invalid='ignore'):  # inf and NaN go to the shield
                self._command[self.act_idx] = action * self.task.max_velocity
        else:
            self._command[:] = np.nan  # wrong shape: the shield brakes and reports it
        try:
            sent, flags = self.shield.filter(self._fresh_state(), self._command)
            self.backend.send_velocity(sent)
            self.backend.advance(self.dt)
            state = self._state = self.backend.read()
        except BackendFault as fault:
            self.aborted = fault  # the backend has stopped the arm already
            raise
        self._steps += 1
        if self.task.moving_target:
            self._update_target()
        ee = self._kin.position(np.asarray(state.position, float)).copy()
        clean = _clean_action(action, self._prev_action.shape)
        terms, distance = self._reward_terms(ee, clean)
        self._prev_action[:] = clean
        truncated = self._steps >= self.task.episode_steps
        info = {'reward_terms': terms, 'distance': distance,
                'is_success': bool(distance < self.task.success_distance),
                'interventions': int(flags), 'intervention_names': _names(flags),
                'sent_command': sent.copy(),
                'timing': {'episode_time': self._steps * self.dt, 'dt': self.dt,
                           'lateness': float(self.backend.lateness)},
                'target': self._target.copy()}
        self.step_wall_s = time.perf_counter() - t0
        return self._observe(state, ee), float(sum(terms.values())), False, truncated, info

    def _fresh_state(self):
        """The last reading if no time has passed since (a simulator between steps), else a
        new one: the shield must judge the newest state, and reading twice costs time."""
        state = self._state
        if state is None or state.stamp != self.backend.now():
            state = self.backend.read()
        return state

    def render(self):
        """The current frame, with the target marker where the episode put it (None unless
        made with render_mode='rgb_array', as gymnasium has it)."""
        return self._renderer() if self.render_mode == 'rgb_array' else None

    def close(self):
        try:
            self.backend.stop()
        except BackendFault:
            pass  # the fault already stopped the arm; closing must not raise again

    # -- pieces ---------------------------------------------------------------------------

    def _move_to_start(self):
        self.backend.stop()
        start = self.start_pose()
        if self.backend.capabilities.teleport and not self.drive_resets:
            self.backend.reset_state(start)
        else:
            self.reset_seconds = auto_reset(self, start)

    def start_pose(self):
        """A start configuration for the next episode: home plus seeded noise on the
        actuated joints, inside the task's joint range."""
        q = self.home.copy()
        idx = self.act_idx
        low, high = self.robot_spec.lower[idx] + 0.1, self.robot_spec.upper[idx] - 0.1
        noise = self.np_random.uniform(-1, 1, len(idx)) * self.task.start_noise
        q[idx] = np.clip(q[idx] + noise, low, high)
        return q

    def _draw_target_motion(self):
        idx = self.act_idx
        low = self.robot_spec.lower[idx] + self.task.target_margin
        high = self.robot_spec.upper[idx] - self.task.target_margin
        center = self.np_random.uniform(low, high)
        if not self.task.moving_target:
            return center, np.zeros_like(center)
        amplitude = np.minimum(center - low, high - center)
        return center, amplitude

    def _update_target(self):
        t = self._steps * self.dt
        q = self.home.copy()
        q[self.act_idx] = self._center + self._amplitude * np.sin(
            self.task.target_speed * t + self._phase)
        self._target = self._kin.position(q).copy()
        self.backend.set_target(self._target)

    def _reward_terms(self, ee, action):
        diff = ee - self._target
        d = float(np.sqrt(diff @ diff))
        t = self.task
        terms = {'distance': -d,
                 'action': -t.action_cost * float(action @ action),
                 'precision': t.precision_bonus * float(np.exp(-(d / t.precision_scale) ** 2))}
        return terms, d

    def _observe(self, state, ee):
        q = np.asarray(state.position, float)
        return np.concatenate([q[self.act_idx], np.asarray(state.velocity)[self.act_idx],
                               self._target, ee - self._target,
                               self._prev_action]).astype(np.float32)


def _whole_periods(agent_dt, period):
    """The agent step must be a whole number of driver periods (as dm_control checks)."""
    n = agent_dt / period
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise ValueError(f'agent step {agent_dt} s is not a whole multiple of the driver '
                         f'period {period} s')
    return int(round(n))


def _clean_action(action, shape):
    """The action as it entered the reward and the next observation: finite, in [-1, 1]."""
    if action.shape != shape:
        return np.zeros(shape)
    if not np.isfinite(action).all():
        action = np.nan_to_num(action, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(action, -1.0, 1.0)


_SINGLE_FLAGS = tuple(f for f in Intervention if f)


def _names(flags):
    if not flags:
        return []
    return [f.name for f in _SINGLE_FLAGS if f & flags]
