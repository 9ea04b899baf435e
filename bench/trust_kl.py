"""How far honest TRPO versions move, as a gated actor measures it (docs/validation.md).

For every update of a run from scratch: the mean KL from the old version to the new one,
and to the one after (two versions apart), on the last 512 states the old version visited,
both networks through the old version's normaliser (what TRPO bounds), as a multiple of
max_kl x gap^2. `trust_kl_slack` must sit above the largest of these with margin.

    python bench/trust_kl.py --env trpo_robot/UR5Reacher2D-v0 --preset reacher \
        --steps 80000 --seeds 0 1
    python bench/trust_kl.py --quick   # two updates of one seed
"""
import argparse
import copy
import json
from pathlib import Path
import sys

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
import trpo_robot  # noqa: F401,E402 - registers the arm tasks
from trpo_robot.trpo.agent import Agent  # noqa: E402
from trpo_robot.trpo.config import preset  # noqa: E402
from trpo_robot.trpo.rollout import Sampler  # noqa: E402
from trpo_robot.validation.trust import mean_kl  # noqa: E402


def ratios(env_id, preset_name, steps, seed, window=512):
    env = gym.make(env_id)
    agent = Agent(env.observation_space.shape[0], env.action_space.shape[0],
                  preset(preset_name), seed)
    sampler = Sampler(env, agent, seed)
    seen, out = [], {1: [], 2: []}
    while agent.total_steps < steps:
        segments = sampler.collect(agent.config.batch_steps)
        states = np.concatenate([s.raw_obs for s in segments]).astype(np.float64)[-window:]
        seen.append((agent.snapshot(), copy.deepcopy(agent.obs_norm), states))
        agent.update(segments)
        new = agent.snapshot()
        for gap, found in out.items():
            if len(seen) >= gap:
                old, norm, visited = seen[-gap]
                x = norm(visited).astype(np.float64)
                kl = mean_kl(old.mean(x), old.std, new.mean(x), new.std)
                found.append(kl / (agent.config.max_kl * gap ** 2))
    return out


QUICK = {'steps': 4096, 'seeds': [0]}
"""Two updates of the reacher preset: gaps of one and of two versions both measured."""


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--env', default='trpo_robot/UR5Reacher2D-v0')
    parser.add_argument('--preset', default='reacher')
    parser.add_argument('--steps', type=int, default=80_000)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    return record.add_quick(parser)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    run = record.Run('trust_kl', args.quick, argv)
    rows = []
    for seed in args.seeds:
        for gap, r in ratios(args.env, args.preset, args.steps, seed).items():
            r = np.asarray(r)
            rows.append({'env': args.env, 'preset': args.preset, 'seed': seed,
                         'gap': gap, 'versions': len(r),
                         'p50': round(float(np.median(r)), 3),
                         'p90': round(float(np.percentile(r, 90)), 3),
                         'max': round(float(r.max()), 3)})
            print(json.dumps(rows[-1]), flush=True)
    run.write(*rows)


if __name__ == '__main__':
    main()
