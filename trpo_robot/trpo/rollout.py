"""Collecting on-policy segments from a gymnasium environment."""
import numpy as np

from .episode import EpisodeRecorder


class Sampler:
    """Steps one env with the current policy snapshot until a batch is full.

    Acting runs on a numpy copy of the policy (a few microseconds per step instead of a
    torch call); episodes in progress carry over from one batch to the next.
    """

    def __init__(self, env, agent, seed):
        self.env, self.agent = env, agent
        self.rng = np.random.default_rng(seed)
        self.low = env.action_space.low.astype(np.float64)
        self.high = env.action_space.high.astype(np.float64)
        self.raw, _ = env.reset(seed=seed)
        self.recorder = EpisodeRecorder()
        self.episode_return, self.episode_len = 0.0, 0
        self.finished_returns = []
        self.finished_distances = []
        """Final end-effector distance of each finished episode, for envs that report it."""
        self.finished_successes = []
        """is_success of each finished episode, for envs that report it."""
        self.shield_counts = [0, 0]
        """[steps whose command the safety shield changed, steps that say either way]
        since the last pop, for envs that report 'interventions' (trpo_robot's ArmEnv)."""

    def collect(self, n_steps):
        snapshot, norm, version = self.agent.snapshot(), self.agent.obs_norm, self.agent.version
        segments = []
        for _ in range(n_steps):
            obs = norm(self.raw)
            act, logp = snapshot.sample(obs, self.rng)
            next_raw, reward, terminated, truncated, info = self.env.step(
                np.clip(act, self.low, self.high))
            self.recorder.add(obs, self.raw, act, reward, logp)
            self.episode_return += float(reward)
            if 'interventions' in info:
                self.shield_counts[0] += bool(info['interventions'])
                self.shield_counts[1] += 1
            if terminated or truncated:
                segments.append(self.recorder.cut(norm(next_raw), terminated, version))
                self.finished_returns.append(self.episode_return)
                if 'distance' in info:
                    self.finished_distances.append(float(info['distance']))
                if 'is_success' in info:
                    self.finished_successes.append(bool(info['is_success']))
                self.episode_return = 0.0
                next_raw, _ = self.env.reset()
            self.raw = next_raw
        if len(self.recorder):
            segments.append(self.recorder.cut(norm(self.raw), False, version))
        return segments

    def pop_returns(self):
        out, self.finished_returns = self.finished_returns, []
        return out

    def pop_distances(self):
        out, self.finished_distances = self.finished_distances, []
        return out

    def pop_successes(self):
        out, self.finished_successes = self.finished_successes, []
        return out

    def pop_shield_counts(self):
        """(changed, counted) steps since the last pop; (0, 0) when the env never says."""
        out, self.shield_counts = tuple(self.shield_counts), [0, 0]
        return out


def evaluate(env, agent, episodes, seed):
    """Deterministic (mean action) returns over `episodes` episodes."""
    low, high = env.action_space.low, env.action_space.high
    returns = []
    for k in range(episodes):
        raw, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            act = np.clip(agent.act_deterministic(raw), low, high)
            raw, reward, terminated, truncated, _ = env.step(act)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns)
