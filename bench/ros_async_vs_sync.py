"""Asynchronous (the ROS graph) against synchronous (SenseAct-style) TRPO on ur5_reacher_2d.

Asynchronous: `trpo-robot learn` (twin, actor and learner processes; the learner updates
while the arm keeps acting). Synchronous: the same TRPO in one process on the same twin,
paced at the same real-time factor, collecting a batch and then updating while the arm
waits, as SenseAct ran it; its resets cost what the actor's do (a stop at the acceleration
limit, a teleport, rest), so that only the updates differ. Both learn the same number of
steps from the same seed (the success-rate stop of `trpo-robot learn` is switched off, so
the budget is the run); each final policy is evaluated deterministically on the in-process
twin (mean final distance over 50 episodes), and each run's wall-clock time of robot use
is the time from the first step to the last, and compared from the first update to the
last (the same steps, without the graph's start-up). One seed is one sample of a noisy
learning outcome, so the comparison is over several seeds: the mean final distance of each
mode over the seeds. Curves (final distance of training episodes against wall-clock) go to
bench/results/async_vs_sync.png.

    python bench/ros_async_vs_sync.py --steps 120000 --seeds 0 1 2

--async-run reuses a finished `trpo-robot learn` folder instead of running it again (its
steps, seed and real-time factor then set the synchronous run's).
"""
import argparse
import json
from pathlib import Path
import subprocess
import sys
import time

import numpy as np

from record import append_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'bench' / 'results' / 'async_vs_sync.jsonl'
PLOT = ROOT / 'bench' / 'results' / 'async_vs_sync.png'
CURVES = ROOT / 'bench' / 'results' / 'async_vs_sync_curves.jsonl'
TASK = 'ur5_reacher_2d'
EVAL_EPISODES, EVAL_SEED = 50, 70_000


def evaluate(agent):
    from trpo_robot.twin.envs import make_twin_env
    env = make_twin_env(TASK)
    agent.obs_norm.frozen = True
    dists = []
    for k in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(np.clip(agent.act_deterministic(obs), -1, 1))
            done = term or trunc
        dists.append(info['distance'])
    return float(np.mean(dists))


def run_async(steps, rtf, seed, out):
    """`trpo-robot learn` for exactly ``steps``: a copy of config/ur5.yaml whose success
    window can never fill turns the early stop off."""
    import yaml
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / 'config' / 'ur5.yaml').read_text())
    config['/**']['ros__parameters']['success_window'] = 10 ** 9
    config_file = out.parent / f'{out.name}_ur5.yaml'
    config_file.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--task',
           'reacher_2d', '--steps', str(steps), '--rtf', str(rtf), '--seed', str(seed),
           '--out', str(out), '--config', str(config_file)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def async_curve(out):
    from trpo_robot.ros.learn import read_progress
    rows = read_progress(Path(out) / 'progress.csv')
    return [(r['wall_s'], r['steps'], r['final_distance']) for r in rows]


def run_sync(steps, rtf, seed, mode='paced'):
    """Collect a batch on the paced twin, then update while it waits; returns the agent,
    the curve, the wall-clock of robot use, the part of it spent idle in updates, and the
    robot (sim) time of the resets. mode='fast' replays the same run unpaced (the twin's
    physics does not depend on pacing) to count its resets quickly."""
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    from trpo_robot.trpo.rollout import Sampler
    from trpo_robot.twin.envs import make_twin_env
    torch.set_num_threads(1)
    env = make_twin_env(TASK, mode=mode, real_time_factor=rtf, seed=seed)
    resets = reset_like_the_actor(env)
    agent = Agent(12, 2, preset('reacher').with_overrides(max_kl=0.02), seed=seed)
    sampler = Sampler(env, agent, seed)
    finals = []
    step = env.step

    def recording(action):
        out = step(action)
        if out[2] or out[3]:
            finals.append(out[4]['distance'])
        return out
    env.step = recording
    curve, t0, idle = [], time.monotonic(), 0.0
    while agent.total_steps < steps:
        finals.clear()
        segments = sampler.collect(agent.config.batch_steps)
        t_update = time.monotonic()
        agent.update(segments)
        idle += time.monotonic() - t_update
        curve.append((time.monotonic() - t0, agent.total_steps,
                      float(np.mean(finals)) if finals else float('nan')))
    return agent, curve, time.monotonic() - t0, idle, resets[0]


def reset_like_the_actor(env):
    """Make env.reset() spend the robot time the actor's resets spend: the lifecycle
    brakes the arm to rest at the acceleration limit (SAFE_STOP), the twin is teleported
    to the start pose the lifecycle drew, and READY waits for rest, one driver period per
    tick on the paced twin, as actor_node does with ``teleport: true``. A bare reset
    would teleport a moving arm at no cost, which no real arm (nor the graph) can do."""
    from trpo_robot.robot.lifecycle import EpisodeLifecycle, Phase
    base = env.unwrapped
    backend, reset = base.backend, env.reset
    lifecycle = EpisodeLifecycle.for_env(base, logger=_quiet_logger())
    spent = [0.0]  # robot time of the resets after the first one (startup)

    def reset_after_a_stop(*, seed=None, options=None):
        start = backend.now() if lifecycle.acting else None
        if lifecycle.acting:
            lifecycle.end_episode()
        teleported = None
        while lifecycle.phase is not Phase.READY:
            goal = lifecycle.goal
            if goal is not None and (teleported is None or not np.array_equal(goal,
                                                                              teleported)):
                backend.reset_state(goal)
                teleported = goal
            backend.send_velocity(lifecycle.tick(backend.read()))
            backend.advance(backend.period)
        lifecycle.start_episode()
        if start is not None:
            spent[0] += backend.now() - start
        return reset(seed=seed, options={'in_place': True})
    env.reset = reset_after_a_stop
    return spent


def _quiet_logger():
    import logging
    logger = logging.getLogger('bench.sync_lifecycle')
    logger.setLevel(logging.WARNING)
    return logger


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=120_000)
    ap.add_argument('--rtf', type=float, default=8.0)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--async-run', default=None)
    args = ap.parse_args()
    runs = []
    for seed in args.seeds:
        runs.append(compare(args, seed))
        print(json.dumps(runs[-1]['result']), flush=True)
    summary = summarize([r['result'] for r in runs])
    print(json.dumps(summary))
    append_results(RESULTS, *[run['result'] for run in runs], summary)
    append_results(CURVES, *runs)
    plot(runs, args)


def compare(args, seed):
    """One seed: the graph's run (or a reused one), then the synchronous run of as many
    steps; both final policies evaluated the same way."""
    from trpo_robot.trpo import checkpoint
    out = Path(args.async_run or ROOT / 'runs' / f'bench_async_seed{seed}')
    rtf = args.rtf
    if args.async_run:
        params = __import__('yaml').safe_load(
            (out / 'params' / 'robot.yaml').read_text())['/**']['ros__parameters']
        rtf, seed = float(params['real_time_factor']), int(params['seed'])
    else:
        run_async(args.steps, rtf, seed, out)
    a_agent, _ = checkpoint.load(out / 'checkpoint')
    a_curve = async_curve(out)
    steps = a_agent.total_steps
    s_agent, s_curve, s_wall, s_idle, s_resets = run_sync(steps, rtf, seed)
    result = {'task': TASK, 'steps': steps, 'rtf': rtf, 'seed': seed,
              'async': {'wall_s': a_curve[-1][0], 'span_s': _span(a_curve),
                        'span_steps': a_curve[-1][1] - a_curve[0][1],
                        'reset_robot_s': stored_reset_seconds(out),
                        'eval_final_distance': evaluate(a_agent)},
              'sync': {'wall_s': s_wall, 'span_s': _span(s_curve), 'idle_s': s_idle,
                       'span_steps': s_curve[-1][1] - s_curve[0][1],
                       'reset_robot_s': s_resets, 'eval_final_distance': evaluate(s_agent)}}
    return {'result': result, 'async_curve': a_curve, 'sync_curve': s_curve}


def stored_reset_seconds(out):
    """Robot time of the graph's resets, from the episodes it recorded."""
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import wire
    store = EpisodeStore(Path(out) / 'episodes')
    seconds = [wire.decode_episode(store.read(path), 12, 2)[1]['extra'].get('reset_seconds', 0)
               for _, _, path in store.episodes()]
    return float(sum(seconds[1:]))  # the first is the start-up's


def _span(curve):
    """Wall clock from the first update to the last: the same steps in both modes, without
    the graph's start-up (processes, discovery, the first policy)."""
    return curve[-1][0] - curve[0][0]


def without_resets(run, mode):
    """The span's wall clock less the resets in it (their robot time over the real-time
    factor, pro rata of the steps in the span): acting plus, in sync, the idle updates.
    Resets differ between this in-process twin (instant teleport) and the graph's (a
    teleport through DDS), not between synchronous and asynchronous learning."""
    r = run[mode]
    in_span = r['span_steps'] / run['steps']
    return r['span_s'] - r['reset_robot_s'] * in_span / run['rtf']


def summarize(results):
    """Means over the seeds; the distance ratio async/sync and the wall-clock saving."""
    def mean(mode, key):
        return float(np.mean([r[mode][key] for r in results]))

    def mean_without_resets(mode):
        return float(np.mean([without_resets(r, mode) for r in results]))
    a_dist, s_dist = mean('async', 'eval_final_distance'), mean('sync', 'eval_final_distance')
    a_wall, s_wall = mean('async', 'span_s'), mean('sync', 'span_s')
    return {'summary': True, 'seeds': [r['seed'] for r in results],
            'steps': [r['steps'] for r in results],
            'async_mean_final_distance': a_dist, 'sync_mean_final_distance': s_dist,
            'distance_ratio': a_dist / s_dist,
            'async_mean_span_s': a_wall, 'sync_mean_span_s': s_wall,
            'sync_mean_idle_s': mean('sync', 'idle_s'),
            'wall_saving': 1.0 - a_wall / s_wall,
            'async_mean_without_resets_s': mean_without_resets('async'),
            'sync_mean_without_resets_s': mean_without_resets('sync'),
            'saving_without_resets': 1.0 - mean_without_resets('async') /
            mean_without_resets('sync')}


def plot(runs, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(runs):
        for key, label, color in (('async_curve', 'asynchronous (ROS graph)', 'tab:blue'),
                                  ('sync_curve', 'synchronous', 'tab:orange')):
            curve = run[key]
            ax.plot([c[0] / 60 for c in curve], [c[2] for c in curve], color=color,
                    alpha=0.8, lw=1, label=f'{label}' if i == 0 else None,
                    linestyle=('-', '--', ':', '-.')[i % 4])
    ax.set_xlabel('wall-clock time of robot use, min')
    ax.set_ylabel('final distance of training episodes, m')
    ax.set_yscale('log')
    ax.set_title(f'{TASK}, twin at {args.rtf:g}x real time, seeds {args.seeds}')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


if __name__ == '__main__':
    main()
