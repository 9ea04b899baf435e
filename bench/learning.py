"""Learning, end-to-end speed and peak memory: ours beside sb3-contrib TRPO, one run.

Every run is its own subprocess (so its peak RSS is its own), one torch thread each.
Evaluation is deterministic (mean action) over 20 episodes with fixed seeds.

    python bench/learning.py --env Pendulum-v1 --preset pendulum --steps 100000 --seeds 0 1 2
    python bench/learning.py --env InvertedDoublePendulum-v5 --preset mujoco --seeds 0 1 2
    python bench/learning.py --speed   # steps/s and peak RSS on Pendulum-v1, same settings
    python bench/learning.py --quick   # ours, one seed, two batches

Results are written as JSON lines to bench/results/learning.jsonl, one per run.
"""
import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

EVAL_EPISODES, EVAL_SEED = 20, 10_000


def run_ours(env_id, preset_name, steps, seed, overrides):
    import gymnasium as gym
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset, resolve_preset
    from trpo_robot.trpo.rollout import evaluate
    from trpo_robot.trpo.trainer import train
    torch.set_num_threads(1)
    env = gym.make(env_id)
    cfg = preset(resolve_preset(preset_name, env.spec)).with_overrides(**overrides)
    agent = Agent(env.observation_space.shape[0], env.action_space.shape[0], cfg, seed)
    t0 = time.perf_counter()
    train(env, agent, steps, seed, printer=lambda line: None)
    wall = time.perf_counter() - t0
    agent.obs_norm.frozen = True
    returns = evaluate(gym.make(env_id), agent, EVAL_EPISODES, EVAL_SEED)
    return wall, returns.tolist()


def run_sb3(env_id, steps, seed, overrides):
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import TRPO
    torch.set_num_threads(1)
    model = TRPO('MlpPolicy', env_id, seed=seed, device='cpu', verbose=0, **overrides)
    t0 = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - t0
    env = gym.make(env_id)
    returns = []
    for k in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        total, done = 0.0, False
        while not done:
            act, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(np.asarray(act))
            total += float(r)
            done = term or trunc
        returns.append(total)
    return wall, returns


def worker(args):
    overrides = json.loads(args.overrides)
    if args.worker == 'ours':
        wall, returns = run_ours(args.env, args.preset, args.steps, args.seed, overrides)
    else:
        wall, returns = run_sb3(args.env, args.steps, args.seed, overrides)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'impl': args.worker, 'env': args.env, 'seed': args.seed,
                      'steps': args.steps, 'preset': args.preset, 'overrides': overrides,
                      'train_seconds': wall, 'steps_per_s': args.steps / wall,
                      'peak_rss_mb': peak_mb, 'mean_return': statistics.mean(returns),
                      'returns': returns}))


WRITING = threading.Lock()


def spawn(results, impl, env, steps, seed, preset='default', overrides=None):
    cmd = [sys.executable, __file__, '--worker', impl, '--env', env, '--steps', str(steps),
           '--seed', str(seed), '--preset', preset, '--overrides', json.dumps(overrides or {})]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    with WRITING:  # --jobs: one results line at a time
        results.write(result)
    print(f'  {impl:5s} {env} seed {seed}: return {result["mean_return"]:9.1f}  '
          f'{result["steps_per_s"]:6.0f} steps/s  peak RSS {result["peak_rss_mb"]:.0f} MB',
          flush=True)
    return result


def learning(args, results):
    """Every (learner, seed) run as its own process, ``--jobs`` at a time: the returns do
    not depend on it (one torch thread, a fixed seed), the train seconds do."""
    overrides = json.loads(args.overrides)
    runs = [('ours', seed, args.preset, overrides) for seed in args.seeds]
    runs += [('sb3', seed, 'default', None) for seed in args.seeds] if args.sb3 else []
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = list(pool.map(lambda run: spawn(results, run[0], args.env, args.steps,
                                               run[1], run[2], run[3]), runs))
    rows = {'ours': [], 'sb3': []}
    for (impl, *_), result in zip(runs, done):
        rows[impl].append(result)
    print(f'\n| {args.env}, {args.steps} steps | seeds | returns | median | train s |')
    print('|---|---|---|---|---|')
    for impl, rs in rows.items():
        if rs:
            vals = [r['mean_return'] for r in rs]
            name = impl if impl == 'sb3' or not overrides else f'{impl} {overrides}'
            print(f'| {name} | {args.seeds} | {", ".join(f"{v:.0f}" for v in vals)} | '
                  f'{statistics.median(vals):.0f} | '
                  f'{statistics.median(r["train_seconds"] for r in rs):.1f} |')


def speed(args, results):
    """Same batch (2048), CG iterations (10), damping (0.1) and value fit (10 epochs of
    minibatch 128) for both."""
    ours = spawn(results, 'ours', 'Pendulum-v1', args.steps, 0, 'default',
                 overrides={'cg_iters': 10, 'value_minibatch': 128})
    theirs = spawn(results, 'sb3', 'Pendulum-v1', args.steps, 0,
                   overrides={'cg_max_steps': 10})
    print('\n| Pendulum-v1, 100k steps | steps/s | peak RSS (MB) |')
    print('|---|---|---|')
    for name, r in (('ours', ours), ('sb3-contrib', theirs)):
        print(f'| {name} | {r["steps_per_s"]:.0f} | {r["peak_rss_mb"]:.0f} |')
    print(f'end_to_end_speedup={ours["steps_per_s"] / theirs["steps_per_s"]:.2f} '
          f'peak_rss_ratio={ours["peak_rss_mb"] / theirs["peak_rss_mb"]:.2f}')


QUICK = {'steps': 4096, 'seeds': [0]}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--env', default='Pendulum-v1')
    p.add_argument('--preset', default='auto',
                   help="ours: a TRPO preset, or auto (default), which picks it from the env's "
                        'family as `trpo-robot train` does without --preset')
    p.add_argument('--steps', type=int, default=100_000)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--sb3', action='store_true', help='also run sb3-contrib TRPO defaults')
    p.add_argument('--speed', action='store_true')
    p.add_argument('--worker', choices=['ours', 'sb3'])
    p.add_argument('--overrides', default='{}', help='JSON TRPOConfig overrides for ours')
    p.add_argument('--jobs', type=int, default=1,
                   help='runs at a time (their train seconds then share the cores)')
    return record.add_quick(p)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    if args.worker:
        return worker(args)
    results = record.Run('learning', args.quick, argv)
    if args.speed:
        speed(args, results)
    else:
        learning(args, results)


if __name__ == '__main__':
    main()
