"""The learner's batch: Segments (trpo/episode.py) turned into advantages and returns."""
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from .episode import Segment
from .gae import gae, normalize_advantages


@dataclass
class Batch:
    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    raw_obs: np.ndarray

    def __len__(self):
        return self.obs.shape[0]


def build_batch(segments, value_net, gamma, lam, normalize=True) -> Batch:
    """Values in one forward pass over all observations and bootstrap states, then GAE."""
    obs = np.concatenate([s.obs for s in segments]).astype(np.float32)
    finals = np.stack([s.final_obs for s in segments]).astype(np.float32)
    with torch.no_grad():
        values = value_net(torch.from_numpy(obs)).numpy()
        final_values = value_net(torch.from_numpy(finals)).numpy()
    ends = np.cumsum([len(s) for s in segments]) - 1
    next_values = np.empty_like(values)
    next_values[:-1] = values[1:]
    next_values[ends] = final_values
    terminated = np.zeros(len(obs), bool)
    terminated[ends] = [s.terminated for s in segments]
    episode_end = np.zeros(len(obs), bool)
    episode_end[ends] = True
    rewards = np.concatenate([s.rewards for s in segments])
    adv, returns = gae(rewards, values, next_values, terminated, episode_end, gamma, lam)
    if normalize:
        adv = normalize_advantages(adv)
    return Batch(
        obs=torch.from_numpy(obs),
        actions=torch.from_numpy(np.concatenate([s.actions for s in segments]).astype(
            np.float32)),
        logp=torch.from_numpy(np.concatenate([s.logp for s in segments]).astype(np.float32)),
        advantages=torch.from_numpy(adv.astype(np.float32)),
        returns=torch.from_numpy(returns.astype(np.float32)),
        raw_obs=np.concatenate([s.raw_obs for s in segments]),
    )


class EarlierBatches:
    """The last `keep` batches, which the next updates learn from again
    (TRPOConfig.reuse_batches).

    A kept step keeps the log-probability of the version that acted it, so the surrogate
    importance-weights it exactly as it does an asynchronous actor's lagging episodes. Its
    observations are kept raw and normalized again at each replay: the policy and the value
    network then see every sample with the statistics they act with now."""

    def __init__(self, keep):
        self.kept = deque(maxlen=keep)

    def remember(self, segments, norm):
        """Call before `norm` absorbs the batch: final_obs is normalized with its statistics."""
        self.kept.append([(s, norm.denormalize(s.final_obs)) for s in segments])

    def replay(self, norm) -> list:
        return [Segment(norm(s.raw_obs), s.raw_obs, s.actions, s.rewards, s.logp,
                        norm(final_raw), s.terminated, s.policy_version)
                for batch in self.kept for s, final_raw in batch]
