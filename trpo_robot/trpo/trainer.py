"""Synchronous TRPO on any gymnasium env with a Box action space: the core used alone."""
import csv
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .agent import Agent, UpdateStats
from .rollout import Sampler


def env_spaces(env) -> dict:
    obs_space, act_space = env.observation_space, env.action_space
    return {'obs_dim': int(np.prod(obs_space.shape)), 'act_dim': int(act_space.shape[0]),
            'action_low': act_space.low.tolist(), 'action_high': act_space.high.tolist()}


class ProgressPrinter:
    """One line per update: where we are, how well it goes, what the update did, and ETA."""

    def __init__(self, total_steps, start_steps, out=print):
        self.total, self.start, self.out = total_steps, start_steps, out
        self.t0 = time.monotonic()
        self.recent, self.recent_dist = [], []

    def __call__(self, stats: UpdateStats, returns, distances=()):
        self.recent = (self.recent + list(returns))[-20:]
        self.recent_dist = (self.recent_dist + list(distances))[-20:]
        done = stats.steps - self.start
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        eta = (self.total - stats.steps) / rate if rate > 0 else float('inf')
        ret = f'{np.mean(self.recent):9.1f}' if self.recent else '      n/a'
        ls = 'accepted' if stats.accepted else stats.reason
        if stats.accepted:
            ls += f'@{stats.backtracks}'
        dist = (f'  final dist {100 * np.mean(self.recent_dist):5.1f} cm'
                if self.recent_dist else '')
        self.out(f'[{stats.steps:>8d}/{self.total} {100 * stats.steps / self.total:3.0f}%] '
                 f'v{stats.version:<4d} return {ret}{dist}  kl {stats.kl:.4f}  {ls:<20s} '
                 f'update {stats.update_time:5.2f}s  {rate:6.0f} steps/s  '
                 f'ETA {_fmt_time(eta)}')


def _fmt_time(seconds):
    if not np.isfinite(seconds):
        return '--'
    seconds = int(seconds)
    return f'{seconds // 60}m{seconds % 60:02d}s'


def train(env, agent: Agent, total_steps: int, seed: int, out=None, *, extra=None,
          checkpoint_every=10, printer=print, on_update=None):
    """Alternate collecting `batch_steps` and updating until `total_steps` (counted from the
    agent's own step count, so a resumed agent continues where it stopped)."""
    torch.set_num_threads(1)
    sampler = Sampler(env, agent, seed + agent.version)
    progress = ProgressPrinter(total_steps, agent.total_steps, printer)
    log = _CsvLog(Path(out) / 'progress.csv') if out else None
    spaces = env_spaces(env)
    while agent.total_steps < total_steps:
        n = min(agent.config.batch_steps, total_steps - agent.total_steps)
        stats = agent.update(sampler.collect(n))
        returns = sampler.pop_returns()
        progress(stats, returns, sampler.pop_distances())
        if log:
            log.write(stats, returns)
        if on_update:
            on_update(stats, returns)
        if out and stats.version % checkpoint_every == 0:
            checkpoint.save(agent, Path(out) / 'checkpoint', spaces=spaces, extra=extra)
    if out:
        checkpoint.save(agent, Path(out) / 'checkpoint', spaces=spaces, extra=extra)
    return agent


class _CsvLog:
    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.f = open(path, 'a', newline='')
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(['steps', 'version', 'mean_return', 'episodes', 'kl', 'accepted',
                             'reason', 'value_loss', 'entropy', 'update_time'])

    def write(self, s: UpdateStats, returns):
        d = asdict(s)
        mean = float(np.mean(returns)) if returns else ''
        self.w.writerow([s.steps, s.version, mean, len(returns), d['kl'], d['accepted'],
                         d['reason'], d['value_loss'], d['entropy'], s.update_time])
        self.f.flush()
