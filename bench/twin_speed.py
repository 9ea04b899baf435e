"""Twin speed: agent steps per second of each arm task in fast mode, as a multiple of real
time (the agent step is 40 ms). Random actions, resets excluded.

    python bench/twin_speed.py [--episodes 30] [--quick]
"""
import argparse
from pathlib import Path
import sys
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
import trpo_robot.envs  # noqa: F401,E402
from trpo_robot.envs import ARM_ENVS  # noqa: E402


def measure(env_id, episodes, seed=0):
    env = gym.make(env_id).unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    total, steps = 0.0, 0
    for _ in range(episodes):
        env.reset()
        actions = rng.uniform(-1, 1, (env.task.episode_steps, env.action_space.shape[0]))
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        total += time.perf_counter() - t0
        steps += len(actions)
    t0 = time.perf_counter()
    for _ in range(episodes):
        env.reset()
    reset_ms = 1e3 * (time.perf_counter() - t0) / episodes
    return steps / total, steps / total * env.dt, reset_ms


QUICK = {'episodes': 2}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--episodes', type=int, default=30)
    return record.add_quick(p)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    run = record.Run('twin_speed', args.quick, argv)
    figures = []
    print('| task | agent steps/s | x real time | reset (ms) |')
    print('|---|---|---|---|')
    for env_id in ARM_ENVS:
        rate, factor, reset_ms = measure(env_id, args.episodes)
        print(f'| {env_id} | {rate:.0f} | {factor:.0f}x | {reset_ms:.2f} |')
        figures.append(dict(task=env_id, episodes=args.episodes, steps_per_s=rate,
                            real_time_factor=factor, reset_ms=reset_ms))
    run.write(*figures)


if __name__ == '__main__':
    main()
