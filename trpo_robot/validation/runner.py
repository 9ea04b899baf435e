"""Episodes of one policy on the twin, under the conditions a real arm may bring, and the
figures a person deciding "may this drive hardware?" looks at.

The policy acts exactly as the actor node runs it (``LoadedPolicy.act``: the frozen
normaliser, a sampled action, the action bounds), through ArmEnv, whose every command
passes the SafetyShield built from the same URDF and task, and between episodes the
actor's EpisodeLifecycle stops the arm and drives it to the next start pose through the
same shield at the driver period (the auto reset a real arm gets: nothing teleports it).
The twin runs in fast mode: the figures are robot time, not wall time.
"""
from dataclasses import dataclass, field
import math
import time

import numpy as np

from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, Phase
from trpo_robot.robot.shield import Intervention
from trpo_robot.ros.acting import LoadedPolicy
from trpo_robot.twin.randomization import Randomization


@dataclass(frozen=True)
class Condition:
    name: str
    backend_kwargs: dict = field(default_factory=dict)
    """MujocoBackend arguments: latency, noise_std, randomization."""
    description: str = ''


def _widest(a, b):
    return (min(a[0], b[0]), max(a[1], b[1]))


def widened(randomization: Randomization | None) -> Randomization:
    """At least the config's ranges and at least the defaults: validation must not be
    easier than training was."""
    base = Randomization()
    if randomization is None:
        return base
    return Randomization(**{name: _widest(getattr(base, name), getattr(randomization, name))
                            for name in ('mass_scale', 'damping_scale', 'friction_scale',
                                         'latency_periods')})


def conditions(settings, configured=None, extra_latency_periods=2, noise_factor=2.0):
    """nominal, randomized, latency and noise conditions for a robot's twin settings.

    configured: the config's twin conditions (randomization ranges, latency, noise), whose
    values the harder conditions widen; None: the robot's defaults.
    """
    latency = settings.latency if configured is None or configured.latency is None \
        else configured.latency
    noise = (settings.position_noise, settings.velocity_noise) \
        if configured is None or configured.noise_std is None else tuple(configured.noise_std)
    wide = widened(None if configured is None else configured.randomization)
    late = latency + extra_latency_periods * settings.period
    loud = tuple(noise_factor * x for x in noise)
    return [
        Condition('nominal', {'latency': latency, 'noise_std': noise},
                  f'latency {latency * 1e3:.0f} ms, noise {noise[0]:.1e} rad'),
        Condition('randomized', {'latency': latency, 'noise_std': noise,
                                 'randomization': wide},
                  f'mass x{wide.mass_scale}, damping x{wide.damping_scale}, friction '
                  f'x{wide.friction_scale}, +{wide.latency_periods} periods'),
        Condition('latency', {'latency': late, 'noise_std': noise},
                  f'latency {late * 1e3:.0f} ms (+{extra_latency_periods} periods)'),
        Condition('noise', {'latency': latency, 'noise_std': loud},
                  f'noise x{noise_factor:g}: {loud[0]:.1e} rad, {loud[1]:.1e} rad/s'),
    ]


@dataclass
class EpisodeFigures:
    ret: float = 0.0
    success: bool = False
    final_distance: float = math.nan
    interventions: int = 0
    """Steps on which the shield kept the arm from a limit or refused the command (position
    limit, workspace, non-finite, bad shape, stale state): the policy pushed where it may
    not go."""
    smoothed: int = 0
    """Steps on which the shield only limited acceleration or speed: a jerky command, as a
    sampled exploring action usually is."""
    steps: int = 0
    at_limit_steps: int = 0
    peak_speed: float = 0.0
    """Largest measured actuated joint speed, as a multiple of the task's max_velocity."""
    peak_acceleration: float = 0.0
    """Largest change of the sent command per second, as a multiple of max_acceleration."""
    peak_joint_acceleration: float = 0.0
    """Largest measured change of an actuated joint's speed per second (readings one agent
    step apart, sensor noise included), as a multiple of max_acceleration."""
    reset_seconds: float = 0.0
    """Robot time the lifecycle took from the previous episode's end (or the start) to
    READY: stop, drive to the start pose, rest."""
    reset_holds: int = 0
    """Auto resets before this episode that ended in HOLD."""
    policy_ms: list = field(default_factory=list)
    """CPU time of each action (this thread's, so a loaded machine does not inflate it)."""
    step_ms: list = field(default_factory=list)
    """Wall time of each whole step: policy, shield and the twin's physics."""


def policy_from_agent(agent) -> LoadedPolicy:
    """The checkpoint's policy as the actor node holds one (frozen normaliser)."""
    norm = agent.obs_norm
    norm.frozen = True
    now = time.monotonic()
    return LoadedPolicy(agent.snapshot(), norm, agent.version, now, now)


SMOOTHING = int(Intervention.ACCEL_LIMIT | Intervention.VELOCITY_CLIP)


class Resets:
    """The actor's lifecycle between episodes: SAFE_STOP, the auto RESET driven through the
    env's shield at the driver period, READY. An auto reset that ends in HOLD (start pose
    not reached in time) is counted and asked again, as an operator would."""

    def __init__(self, env, max_seconds=120.0):
        self.arm = env.unwrapped
        self.lc = EpisodeLifecycle.for_env(self.arm, LifecycleConfig(reset_mode='auto'))
        self.max_ticks = int(max_seconds / self.arm.backend.period)
        self.seconds, self.holds = [], 0

    def to_ready(self):
        backend, start = self.arm.backend, self.arm.backend.now()
        for _ in range(self.max_ticks):
            if self.lc.phase is Phase.READY:
                self.seconds.append(backend.now() - start)
                return
            if self.lc.phase is Phase.HOLD:
                self.holds += 1
                self.lc.request_reset()
            backend.send_velocity(self.lc.tick(backend.read()))
            backend.advance(backend.period)
        raise RuntimeError(f'the arm did not get READY in {self.max_ticks} driver periods '
                           f'(phase {self.lc.phase.name}): check the task and the shield')

    def end(self, terminated):
        self.lc.end_episode('terminated' if terminated else 'time limit')


def run_episode(env, policy, rng, seed, resets: Resets, limit_margin=0.02,
                sample=True) -> EpisodeFigures:
    """One episode as the actor acts it (sampled actions; ``sample=False``: the mean
    action), after the lifecycle has brought the arm to its start; the figures of what the
    arm did."""
    arm = env.unwrapped
    task, idx = arm.task, arm.act_idx
    low, high = arm.robot_spec.lower[idx], arm.robot_spec.upper[idx]
    margin = limit_margin * (high - low)
    resets.to_ready()
    resets.lc.start_episode()
    raw, _ = env.reset(seed=seed, options={'in_place': True})
    figures, last_sent, info = EpisodeFigures(), np.zeros(len(arm.backend.joint_names)), {}
    n = len(idx)
    last_qd = raw[n:2 * n]
    for _ in range(task.episode_steps):
        t0, c0 = time.perf_counter(), time.thread_time()
        act = policy.act(raw, rng)[1] if sample else policy.snapshot.mean(policy.norm(raw))
        c1 = time.thread_time()
        raw, reward, terminated, truncated, info = env.step(
            np.clip(act, env.action_space.low, env.action_space.high))
        figures.policy_ms.append((c1 - c0) * 1e3)
        figures.step_ms.append((time.perf_counter() - t0) * 1e3)
        figures.ret += reward
        figures.steps += 1
        flags = info['interventions']
        figures.interventions += bool(flags & ~SMOOTHING)
        figures.smoothed += bool(flags & SMOOTHING)
        q, qd = raw[:n], raw[n:2 * n]
        figures.at_limit_steps += bool(np.any((q < low + margin) | (q > high - margin)))
        figures.peak_speed = max(figures.peak_speed,
                                 float(np.max(np.abs(qd))) / task.max_velocity)
        measured = float(np.max(np.abs(qd - last_qd))) / arm.dt / task.max_acceleration
        figures.peak_joint_acceleration = max(figures.peak_joint_acceleration, measured)
        last_qd = qd
        sent = info['sent_command']
        accel = float(np.max(np.abs(sent - last_sent))) / arm.dt / task.max_acceleration
        figures.peak_acceleration = max(figures.peak_acceleration, accel)
        last_sent = sent
        if terminated or truncated:
            break
    resets.end(terminated)
    figures.success = bool(info.get('is_success', False))
    figures.final_distance = float(info.get('distance', math.nan))
    return figures


def run_condition(make_env, condition: Condition, policy, seeds, episodes, progress=None,
                  sample=True):
    """``episodes`` episodes spread over ``seeds`` (each seed its own twin: its own draw of
    the randomized model)."""
    per_seed = -(-episodes // len(seeds))
    out = []
    for seed in seeds:
        env = make_env(seed=seed, **condition.backend_kwargs)
        env.reset(seed=seed)
        rng = np.random.default_rng([seed, 7])
        resets = Resets(env)
        try:
            for k in range(min(per_seed, episodes - len(out))):
                holds = resets.holds
                out.append(run_episode(env, policy, rng, seed=seed * 100_003 + k,
                                       resets=resets, sample=sample))
                out[-1].reset_seconds = resets.seconds[-1]
                out[-1].reset_holds = resets.holds - holds
                if progress:
                    progress(condition.name, len(out), episodes, out[-1])
        finally:
            env.close()
    return out


def summarize(episodes) -> dict:
    """The figures of one condition (what the thresholds judge)."""
    steps = sum(e.steps for e in episodes)
    distances = np.array([e.final_distance for e in episodes])
    policy_ms = np.concatenate([e.policy_ms for e in episodes])
    step_ms = np.concatenate([e.step_ms for e in episodes])
    return {
        'episodes': len(episodes),
        'success_rate': float(np.mean([e.success for e in episodes])),
        'final_distance_median': float(np.median(distances)),
        'final_distance_p90': float(np.percentile(distances, 90)),
        'return_mean': float(np.mean([e.ret for e in episodes])),
        'interventions_per_episode': float(np.mean([e.interventions for e in episodes])),
        'smoothed_share': float(sum(e.smoothed for e in episodes) / max(steps, 1)),
        'peak_joint_speed': float(max(e.peak_speed for e in episodes)),
        'peak_command_acceleration': float(max(e.peak_acceleration for e in episodes)),
        'peak_joint_acceleration': float(max(e.peak_joint_acceleration for e in episodes)),
        'time_at_limit': float(sum(e.at_limit_steps for e in episodes) / max(steps, 1)),
        'reset_seconds_median': float(np.median([e.reset_seconds for e in episodes])),
        'reset_holds': int(sum(e.reset_holds for e in episodes)),
        'policy_cpu_p99_ms': float(np.percentile(policy_ms, 99)),
        'step_p99_ms': float(np.percentile(step_ms, 99)),
    }


# ---------------------------------------------------------------- shield fuzz

FUZZ_KINDS = ('nan', 'inf', 'huge', 'uniform', 'bang_bang', 'wrong_shape')


def fuzz_action(kind, rng, n):
    """Inputs a broken policy or a corrupted message could hand the shield."""
    if kind == 'nan':
        return np.where(rng.random(n) < 0.5, np.nan, rng.uniform(-1, 1, n))
    if kind == 'inf':
        return rng.choice([np.inf, -np.inf], n)
    if kind == 'huge':
        return rng.choice([-1e6, 1e6], n)
    if kind == 'uniform':
        return rng.uniform(-10, 10, n)
    if kind == 'bang_bang':
        return rng.choice([-1.0, 1.0], n)
    return rng.uniform(-1, 1, n + 1)  # wrong_shape


@dataclass
class FuzzFigures:
    steps: int = 0
    interventions: int = 0
    command_over_speed: int = 0
    command_over_acceleration: int = 0
    joint_outside_range: int = 0
    outside_workspace: int = 0
    non_finite_command: int = 0
    kinds: dict = field(default_factory=dict)

    @property
    def violations(self) -> int:
        return (self.command_over_speed + self.command_over_acceleration +
                self.joint_outside_range + self.outside_workspace + self.non_finite_command)


def shield_fuzz(env, steps, seed, tolerance=1e-6) -> FuzzFigures:
    """Hostile actions straight into the env (no action-space clip, as a bug would send
    them); every command the shield lets out is checked against the config's limits."""
    arm = env.unwrapped
    task, cfg = arm.task, arm.shield.config
    rng = np.random.default_rng([seed, 11])
    n, figures = len(arm.act_idx), FuzzFigures()
    last = np.zeros(len(arm.backend.joint_names))
    low, high = arm.robot_spec.lower, arm.robot_spec.upper
    box_low, box_high = np.asarray(cfg.workspace_low), np.asarray(cfg.workspace_high)
    kinematics = arm.robot_spec.kinematics()
    env.reset(seed=seed)
    for k in range(steps):
        kind = FUZZ_KINDS[(k // 25) % len(FUZZ_KINDS)]
        _, _, _, truncated, info = env.step(fuzz_action(kind, rng, n))
        sent = info['sent_command']
        figures.steps += 1
        figures.kinds[kind] = figures.kinds.get(kind, 0) + 1
        figures.interventions += bool(info['interventions'])
        figures.non_finite_command += not np.all(np.isfinite(sent))
        figures.command_over_speed += bool(np.any(np.abs(sent) > task.max_velocity + tolerance))
        step_accel = np.abs(sent - last) / arm.dt
        figures.command_over_acceleration += bool(
            np.any(step_accel > task.max_acceleration * (1 + 1e-6) + tolerance))
        last = sent
        state = arm.backend.read()
        q = np.asarray(state.position)
        figures.joint_outside_range += bool(np.any((q < low - 0.01) | (q > high + 0.01)))
        ee = kinematics.position(q)
        figures.outside_workspace += bool(np.any((ee < box_low - 0.01) | (ee > box_high + 0.01)))
        if truncated:
            env.reset()
            last = np.zeros_like(last)
    return figures
