"""Generalized Advantage Estimation with explicit truncation vs termination."""
import numpy as np


def gae(rewards, values, next_values, terminated, episode_end, gamma, lam):
    """Advantages and value targets for a flat sequence of steps.

    next_values[t] is V(s_{t+1}) for the observation that followed step t. It is used
    (bootstrapped) unless step t terminated the episode: a time limit or the end of a batch
    truncates an episode, it does not end the task. episode_end[t] is True where the next
    step belongs to another episode (terminated or truncated), which stops the GAE sum.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    not_term = 1.0 - np.asarray(terminated, np.float64)
    not_end = 1.0 - np.asarray(episode_end, np.float64)
    deltas = rewards + gamma * not_term * np.asarray(next_values, np.float64) - values
    adv = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_end[t] * running
        adv[t] = running
    return adv, adv + values


def normalize_advantages(adv, eps=1e-8):
    """Zero mean, unit std; with a zero std (constant advantages) only the mean is removed,
    so nothing divides by zero."""
    adv = adv - adv.mean()
    std = adv.std()
    return adv / std if std > eps else adv
