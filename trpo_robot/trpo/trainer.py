"""Synchronous TRPO on any gymnasium env with a Box action space: the core used alone."""
import csv
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, scalars
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
          checkpoint_every=10, printer=print, on_update=None, tensorboard=None):
    """Alternate collecting `batch_steps` and updating until `total_steps` (counted from the
    agent's own step count, so a resumed agent continues where it stopped).

    `tensorboard`: a folder for TensorBoard scalars, one point per update; the files are
    closed (flushed) on any exit, Ctrl-C included.

    Torch runs one thread meanwhile (small networks: more threads only add overhead) and
    gets its caller's number back at the end: a library call leaves no process-wide trace."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(env, agent, total_steps, seed, out, extra, checkpoint_every, printer,
                      on_update, tensorboard)
    finally:
        torch.set_num_threads(threads)


def _train(env, agent, total_steps, seed, out, extra, checkpoint_every, printer, on_update,
           tensorboard):
    sampler = Sampler(env, agent, seed + agent.version)
    progress = ProgressPrinter(total_steps, agent.total_steps, printer)
    logs = _UpdateLogs(out, tensorboard)
    spaces = env_spaces(env)
    try:
        while agent.total_steps < total_steps:
            n = min(agent.config.batch_steps, total_steps - agent.total_steps)
            stats = agent.update(sampler.collect(n))
            returns = sampler.pop_returns()
            progress(stats, returns, sampler.pop_distances())
            logs.write(stats, returns, sampler)
            if on_update:
                on_update(stats, returns)
            if out and stats.version % checkpoint_every == 0:
                checkpoint.save(agent, Path(out) / 'checkpoint', spaces=spaces, extra=extra)
    finally:
        logs.close()
    if out:
        checkpoint.save(agent, Path(out) / 'checkpoint', spaces=spaces, extra=extra)
    return agent


class _UpdateLogs:
    """progress.csv (with `out`) and TensorBoard scalars (with `tensorboard`), both from
    what the sampler saw since the previous update."""

    def __init__(self, out, tensorboard):
        self.t0 = time.monotonic()
        self.csv = _CsvLog(Path(out) / 'progress.csv') if out else None
        self.board = scalars.ScalarLog(tensorboard) if tensorboard else None

    def write(self, stats: UpdateStats, returns, sampler):
        successes = sampler.pop_successes()
        success = scalars.fraction(sum(successes), len(successes))
        changed, counted = sampler.pop_shield_counts()
        if self.csv:
            self.csv.write(stats, returns, success, time.monotonic() - self.t0)
        if self.board:
            self.board.write(stats.steps, {
                scalars.RETURN: float(np.mean(returns)) if returns else None,
                scalars.SUCCESS: success, **scalars.update_values(stats),
                scalars.INTERVENTIONS: scalars.fraction(changed, counted)})

    def close(self):
        for log in (self.csv, self.board):
            if log:
                log.close()


class _CsvLog:
    FIELDS = ('steps', 'version', 'mean_return', 'episodes', 'kl', 'accepted', 'reason',
              'value_loss', 'entropy', 'update_time', 'success_rate', 'wall_s')

    def __init__(self, path):
        """Appending to the progress.csv of a resumed run keeps that file's columns (an
        older run's file has fewer), so every row stays under its header."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = _header(path)
        self.f = open(path, 'a', newline='')
        self.w = csv.DictWriter(self.f, header or self.FIELDS, extrasaction='ignore')
        if not header:
            self.w.writeheader()

    def write(self, s: UpdateStats, returns, success, wall_s):
        d = asdict(s)
        mean = float(np.mean(returns)) if returns else ''
        self.w.writerow(dict(steps=s.steps, version=s.version, mean_return=mean,
                             episodes=len(returns), kl=d['kl'], accepted=d['accepted'],
                             reason=d['reason'], value_loss=d['value_loss'],
                             entropy=d['entropy'], update_time=s.update_time,
                             success_rate='' if success is None else success, wall_s=wall_s))
        self.f.flush()

    def close(self):
        self.f.close()


def _header(path):
    try:
        with open(path, newline='') as f:
            return next(csv.reader(f), None)
    except FileNotFoundError:
        return None
