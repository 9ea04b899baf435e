"""Learning on the MuJoCo twin: UR5Reacher2D, ours beside sb3-contrib TRPO.

Three seeds each, 150k steps (SenseAct's budget on the real UR5). The learning curve is the
final end-effector distance of each training episode; the score is the mean final
distance over 100 deterministic evaluation episodes. Each run is its own subprocess.

    python bench/twin_learning.py [--steps 150000] [--seeds 0 1 2]
    python bench/twin_learning.py --quick   # one seed, one batch each; no picture in docs/

Writes bench/results/twin_learning.jsonl and docs/img/ur5_reacher_2d_learning.png.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / 'docs' / 'img' / 'ur5_reacher_2d_learning.png'
ENV_ID = 'trpo_robot/UR5Reacher2D-v0'
EVAL_EPISODES, EVAL_SEED = 100, 50_000


class FinalDistance:
    """Records (step, final distance) of every finished training episode."""

    def __init__(self, env):
        import gymnasium as gym

        class Wrapper(gym.Wrapper):
            def step(inner, action):
                out = inner.env.step(action)
                self.steps += 1
                if out[2] or out[3]:
                    self.curve.append((self.steps, float(out[4]['distance'])))
                return out
        self.steps, self.curve = 0, []
        self.env = Wrapper(env)


def evaluate(act, make):
    env, dists = make(), []
    for k in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(act(obs))
            done = term or trunc
        dists.append(info['distance'])
    return dists


def run_ours(steps, seed):
    import gymnasium as gym
    import torch
    import trpo_robot.envs  # noqa: F401
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    from trpo_robot.trpo.trainer import train
    torch.set_num_threads(1)
    rec = FinalDistance(gym.make(ENV_ID))
    agent = Agent(rec.env.observation_space.shape[0], rec.env.action_space.shape[0],
                  preset('reacher'), seed)
    t0 = time.perf_counter()
    train(rec.env, agent, steps, seed, printer=lambda line: None)
    wall = time.perf_counter() - t0
    agent.obs_norm.frozen = True
    dists = evaluate(lambda o: np.clip(agent.act_deterministic(o), -1, 1),
                     lambda: gym.make(ENV_ID))
    return wall, rec.curve, dists


def run_sb3(steps, seed):
    import gymnasium as gym
    import torch
    import trpo_robot.envs  # noqa: F401
    from sb3_contrib import TRPO
    torch.set_num_threads(1)
    rec = FinalDistance(gym.make(ENV_ID))
    model = TRPO('MlpPolicy', rec.env, seed=seed, device='cpu', verbose=0)
    t0 = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - t0
    dists = evaluate(lambda o: model.predict(o, deterministic=True)[0],
                     lambda: gym.make(ENV_ID))
    return wall, rec.curve, dists


def worker(impl, steps, seed):
    wall, curve, dists = (run_ours if impl == 'ours' else run_sb3)(steps, seed)
    print(json.dumps({'impl': impl, 'seed': seed, 'steps': steps, 'train_seconds': wall,
                      'final_distance': float(np.mean(dists)),
                      'success_rate': float(np.mean(np.asarray(dists) < 0.05)),
                      'curve': curve}))


def spawn(results, impl, steps, seed):
    cmd = [sys.executable, __file__, '--worker', impl, '--steps', str(steps), '--seed',
           str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    results.write(result)
    print(f'  {impl:5s} seed {seed}: final distance {100 * result["final_distance"]:.2f} cm, '
          f'success {100 * result["success_rate"]:.0f}%, {result["train_seconds"]:.0f} s',
          flush=True)
    return result


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {'ours': 'tab:blue', 'sb3': 'tab:orange'}
    for r in results:
        steps, dist = np.array(r['curve']).T
        k = 10
        smooth = np.convolve(dist, np.ones(k) / k, mode='valid')
        ax.plot(steps[k - 1:], 100 * smooth, color=colors[r['impl']], alpha=0.8,
                label=f'{r["impl"]}' if r['seed'] == 0 else None)
    ax.axhline(5, color='gray', ls='--', lw=1, label='5 cm target')
    ax.set_yscale('log')
    ax.set_xlabel('environment steps')
    ax.set_ylabel('final distance to target (cm)')
    ax.set_title('UR5Reacher2D on the MuJoCo twin: trpo_robot vs sb3-contrib TRPO (3 seeds)')
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


QUICK = {'steps': 2048, 'seeds': [0]}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=150_000)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--seed', type=int)
    p.add_argument('--worker', choices=['ours', 'sb3'])
    return record.add_quick(p)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    if args.worker:
        return worker(args.worker, args.steps, args.seed)
    run = record.Run('twin_learning', args.quick, argv)
    results = []
    for seed in args.seeds:
        for impl in ('ours', 'sb3'):
            results.append(spawn(run, impl, args.steps, seed))
    # a quick run's curves are too short to show: its picture stays out of docs/
    plot(results, Path(tempfile.gettempdir()) / 'twin_learning_quick.png' if args.quick
         else PLOT)
    print(f'\n| UR5Reacher2D, {args.steps} steps | final distance (cm) per seed | median | '
          'success rate (< 5 cm) | train time (s) |')
    print('|---|---|---|---|---|')
    for impl in ('ours', 'sb3'):
        rs = [r for r in results if r['impl'] == impl]
        d = [100 * r['final_distance'] for r in rs]
        print(f'| {impl} | {", ".join(f"{x:.2f}" for x in d)} | {statistics.median(d):.2f} | '
              f'{statistics.median(r["success_rate"] for r in rs):.0%} | '
              f'{statistics.median(r["train_seconds"] for r in rs):.0f} |')


if __name__ == '__main__':
    main()
