"""Asynchronous (the ROS graph) against synchronous (SenseAct-style) TRPO on ur5_reacher_2d.

Asynchronous: `trpo-robot learn` (twin, actor and learner processes; the learner updates
while the arm keeps acting). Synchronous: the same TRPO in one process on the same twin,
paced at the same real-time factor, collecting a batch and then updating while the arm
waits, as SenseAct ran it. Both learn the same number of steps from the same seed; each
final policy is evaluated deterministically on the in-process twin (mean final distance
over 50 episodes), and each run's wall-clock time of robot use is the time from the first
step to the last. Curves (final distance of training episodes against wall-clock) go to
bench/results/async_vs_sync.png.

    python bench/ros_async_vs_sync.py --steps 100000 [--async-run runs/learn_ur5_reacher_2d]

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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'bench' / 'results' / 'async_vs_sync.jsonl'
PLOT = ROOT / 'bench' / 'results' / 'async_vs_sync.png'
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
    cmd = [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--task',
           'reacher_2d', '--steps', str(steps), '--rtf', str(rtf), '--seed', str(seed),
           '--out', str(out)]
    subprocess.run(cmd, check=True)


def async_curve(out):
    from trpo_robot.ros.learn import read_progress
    rows = read_progress(Path(out) / 'progress.csv')
    return [(r['wall_s'], r['steps'], r['final_distance']) for r in rows]


def run_sync(steps, rtf, seed):
    """Collect a batch on the paced twin, then update while it waits; returns the agent,
    the curve and the wall-clock of robot use."""
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    from trpo_robot.trpo.rollout import Sampler
    from trpo_robot.twin.envs import make_twin_env
    torch.set_num_threads(1)
    env = make_twin_env(TASK, mode='paced', real_time_factor=rtf, seed=seed)
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
    return agent, curve, time.monotonic() - t0, idle


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=100_000)
    ap.add_argument('--rtf', type=float, default=8.0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--async-run', default=None)
    args = ap.parse_args()
    from trpo_robot.trpo import checkpoint
    out = Path(args.async_run or ROOT / 'runs' / 'bench_async')
    if args.async_run:
        params = json.loads(json.dumps(__import__('yaml').safe_load(
            (out / 'params' / 'robot.yaml').read_text())))['/**']['ros__parameters']
        args.rtf, args.seed = float(params['real_time_factor']), int(params['seed'])
    else:
        run_async(args.steps, args.rtf, args.seed, out)
    a_agent, _ = checkpoint.load(out / 'checkpoint')
    a_curve = async_curve(out)
    steps = a_agent.total_steps
    a_wall = a_curve[-1][0]
    s_agent, s_curve, s_wall, s_idle = run_sync(steps, args.rtf, args.seed)
    result = {'task': TASK, 'steps': steps, 'rtf': args.rtf, 'seed': args.seed,
              'async': {'wall_s': a_wall, 'eval_final_distance': evaluate(a_agent)},
              'sync': {'wall_s': s_wall, 'idle_s': s_idle,
                       'eval_final_distance': evaluate(s_agent)}}
    print(json.dumps(result))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, 'a') as fh:
        fh.write(json.dumps(result) + '\n')
    plot(a_curve, s_curve, args)


def plot(a_curve, s_curve, args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for curve, label in ((a_curve, 'asynchronous (ROS graph)'), (s_curve, 'synchronous')):
        ax.plot([c[0] / 60 for c in curve], [c[2] for c in curve], marker='.', label=label)
    ax.set_xlabel('wall-clock time of robot use, min')
    ax.set_ylabel('final distance of training episodes, m')
    ax.set_title(f'{TASK}, twin at {args.rtf:g}x real time')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)


if __name__ == '__main__':
    main()
