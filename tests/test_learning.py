"""A short fixed-seed run must really learn: the return rises well beyond noise."""
import gymnasium as gym
import numpy as np
import torch

from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import preset
from trpo_robot.trpo.rollout import evaluate
from trpo_robot.trpo.trainer import train


def test_short_pendulum_run_improves_its_return():
    torch.set_num_threads(1)
    env = gym.make('Pendulum-v1')
    agent = Agent(3, 1, preset('pendulum'), seed=0)
    before = evaluate(gym.make('Pendulum-v1'), agent, 10, seed=100).mean()
    lines = []
    train(env, agent, 40_960, seed=0, printer=lines.append)
    agent.obs_norm.frozen = True
    after = evaluate(gym.make('Pendulum-v1'), agent, 10, seed=100).mean()
    # An untrained policy scores about -1200; a learned swing-up about -150 to -600.
    assert after > before + 400, (before, after)
    assert after > -800, (before, after)
    assert len(lines) == 40 and 'ETA' in lines[-1] and 'kl' in lines[-1]
    assert np.isfinite(after)


def test_the_defaults_learn_pendulum_without_a_preset():
    """What a new user gets without --preset (issue #16): at seed 2 the defaults score about
    -154 (docs/benchmarks.md, "Defaults"); the defaults before 2026-11-30 (value minibatch
    256, 10 CG iterations) scored -619 here, sb3-contrib's defaults -142 to -845."""
    torch.set_num_threads(1)
    agent = Agent(3, 1, preset('default'), seed=2)
    train(gym.make('Pendulum-v1'), agent, 100_000, seed=2, printer=lambda line: None)
    agent.obs_norm.frozen = True
    score = evaluate(gym.make('Pendulum-v1'), agent, 20, seed=10_000).mean()
    assert score > -400, score
