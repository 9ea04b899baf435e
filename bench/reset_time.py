"""Time from episode end to READY on the twin: auto resets and a scripted teleop reset.

Each episode is acted by an untrained policy (uniform random actions, as early in
training), ended by its time limit, then reset by ``EpisodeLifecycle`` ticking once per
driver period exactly as the actor will: SAFE_STOP (braking at the task's acceleration
limit) -> RESET -> READY. 'sim s' is what the arm spends (on a real arm or a paced twin it
is also the wall time); 'wall s' is the compute cost on the fast twin. The lifecycle's own
cost per tick (shield included, physics excluded) is timed separately.

The teleop operator is a script that sees the joint errors to the task's home pose: it
grips the deadman with the stick centred, selects the joint farthest from home, pushes the
stick fully until 0.05 rad away and proportionally below, lets go of the stick within
0.02 rad, moves on to the next joint, and confirms. It is faster than a person (no
reaction time), so its row is a lower bound for a human operator at the same speed.

    python bench/reset_time.py [--episodes 10] [--seed 0] [--quick]
"""
import argparse
import dataclasses
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, Phase  # noqa: E402
from trpo_robot.robot.teleop import joy_mapping  # noqa: E402
from trpo_robot.twin.envs import make_twin_env  # noqa: E402

CASES = (  # label, task, reset mode, teleop velocity_scale
    ('UR5 reacher 2D', 'ur5_reacher_2d', 'auto', None),
    ('UR5 reacher 6D', 'ur5_reacher_6d', 'auto', None),
    ('DXL reacher', 'dxl_reacher', 'auto', None),
    ('UR5 reacher 2D', 'ur5_reacher_2d', 'teleop', 0.1),
    ('DXL reacher', 'dxl_reacher', 'teleop', 0.1),
)
PAD = joy_mapping('xbox')


class ScriptedOperator:
    """Jogs each actuated joint to home in turn, then confirms (see the module doc)."""

    def __init__(self, lifecycle, home, joints):
        self.lc, self.home, self.joints = lifecycle, np.asarray(home), list(joints)
        self.grip_ticks = 0
        self.previous_select = False

    def reading(self, state):
        buttons = [0] * 11
        axes = [0.0] * 8
        if self.lc.phase is not Phase.RESET:
            self.grip_ticks = 0  # hands off between resets: the next grip starts centred
            return axes, buttons
        error = self.home - np.asarray(state.position)
        left = [j for j in self.joints if abs(error[j]) > 0.02]
        if not left:
            buttons[PAD.confirm] = 1
            return axes, buttons
        buttons[PAD.deadman] = 1
        self.grip_ticks += 1
        target = max(left, key=lambda j: abs(error[j]))
        if self.lc.mapper.selected != target:
            # tap 'next joint' (press on one reading, release on the next); the mapper
            # wants the stick centred after a change of joint, as after a fresh grip
            self.previous_select = not self.previous_select
            buttons[PAD.next_joint] = int(self.previous_select)
            self.grip_ticks = 0
            return axes, buttons
        if self.grip_ticks > 2:  # centred for the first readings of a grip
            axes[PAD.axis] = float(np.clip(error[target] / 0.05, -1.0, 1.0))
        return axes, buttons


def run_case(task, mode, episodes, seed, scale=None):
    env = make_twin_env(task, seed=seed)
    env.reset(seed=seed)
    backend = env.backend
    config = LifecycleConfig(reset_mode=mode, reset_timeout=600.0, auto_timeout=60.0)
    pad = PAD if scale is None else dataclasses.replace(PAD, velocity_scale=scale)
    lc = EpisodeLifecycle.for_env(env, config, mapping=pad)
    operator = ScriptedOperator(lc, env.task.home, env.act_idx)
    tick_ns = []
    rng = np.random.default_rng(seed)

    def tick():
        state = backend.read()
        joy = operator.reading(state) if mode == 'teleop' else None
        start = time.perf_counter_ns()
        command = lc.tick(state, None if joy is None else (*joy, backend.now()))
        tick_ns.append(time.perf_counter_ns() - start)
        backend.send_velocity(command)
        backend.advance(backend.period)

    while lc.phase is not Phase.READY:  # startup
        tick()
    for _ in range(episodes):
        lc.start_episode()
        for _ in range(env.task.episode_steps):
            env.step(rng.uniform(-1.0, 1.0, env.action_space.shape))
        lc.end_episode('time limit')
        while lc.phase is not Phase.READY:
            tick()
    records = [r for r in lc.resets if r.reason == 'time limit']
    assert not any(r.held for r in records), 'a reset timed out'
    return records, np.array(tick_ns[len(tick_ns) // 10:]) / 1e3, env.task.episode_seconds


def row(label, mode, records, tick_us, episode_s):
    """One markdown row: medians over the resets, and the worst reset."""
    sim = np.array([r.seconds for r in records])
    stop = np.array([r.stop_seconds for r in records])
    wall = np.array([r.wall_seconds for r in records])
    share = np.median(sim) / (np.median(sim) + episode_s)
    return (f'| {label} | {mode} | {len(records)} | {np.median(sim):.2f} / {sim.max():.2f} '
            f'| {np.median(stop):.3f} | {np.median(wall) * 1e3:.0f} | {share:.0%} '
            f'| {np.median(tick_us):.0f} |')


QUICK = {'episodes': 2}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    return record.add_quick(parser)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    run = record.Run('reset_time', args.quick, argv)
    figures = []
    print('| task | reset | resets | episode end -> READY, sim s (median / max) '
          '| of which SAFE_STOP, s | wall ms, fast twin (median) '
          '| reset share of arm time | lifecycle tick, us |')
    print('|---|---|---|---|---|---|---|---|', flush=True)
    summary = {}
    for label, task, mode, scale in CASES:
        records, tick_us, episode_s = run_case(task, mode, args.episodes, args.seed, scale)
        name = mode if scale is None else f'{mode}, velocity_scale {scale:g}'
        print(row(label, name, records, tick_us, episode_s), flush=True)
        key = task + '_' + mode + ('' if scale is None else f'_{scale:g}')
        summary[key] = np.median([r.seconds for r in records])
        figures.append(figures_of(task, name, records, tick_us, episode_s))
    print(' '.join(f'reset_s_{k}={v:.2f}' for k, v in summary.items()))
    run.write(*figures)


def figures_of(task, mode, records, tick_us, episode_s):
    sim = [r.seconds for r in records]
    return dict(task=task, reset=mode, resets=len(records), sim_s_median=np.median(sim),
                sim_s_max=max(sim), safe_stop_s_median=np.median([r.stop_seconds
                                                                  for r in records]),
                wall_ms_median=1e3 * np.median([r.wall_seconds for r in records]),
                episode_s=episode_s, tick_us_median=np.median(tick_us))


if __name__ == '__main__':
    main()
