"""Twin speed: agent steps per second of each arm task in fast mode, as a multiple of real
time (the agent step is 40 ms). Random actions, resets excluded.

    python bench/twin_speed.py [--episodes 30]
"""
import argparse
import time

import gymnasium as gym
import numpy as np

import trpo_robot.envs  # noqa: F401
from trpo_robot.envs import ARM_ENVS


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--episodes', type=int, default=30)
    args = p.parse_args()
    print('| task | agent steps/s | x real time | reset (ms) |')
    print('|---|---|---|---|')
    for env_id in ARM_ENVS:
        rate, factor, reset_ms = measure(env_id, args.episodes)
        print(f'| {env_id} | {rate:.0f} | {factor:.0f}x | {reset_ms:.2f} |')


if __name__ == '__main__':
    main()
