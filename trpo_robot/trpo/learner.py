"""The asynchronous learner without any transport: episodes in, versioned policies out.

A ROS node (or anything else) hands it received blobs; it validates them, drops episodes
acted by a policy more than `max_policy_lag` versions old, and updates once a batch is full.
Counters say what happened to every blob, so nothing disappears silently.
"""
import logging
from dataclasses import dataclass, field

from . import wire
from .agent import Agent, UpdateStats

log = logging.getLogger(__name__)


@dataclass
class LearnerCounters:
    received: int = 0
    rejected: int = 0
    unauthenticated: int = 0
    """Part of rejected: unsigned, or signed with a key this learner does not hold."""
    stale: int = 0
    aborted: int = 0
    duplicates: int = 0
    consumed: int = 0
    reasons: dict = field(default_factory=dict)


class AsyncLearner:
    def __init__(self, agent: Agent, *, robot='', task='', obs_dim=None, act_dim=None,
                 epoch=0):
        self.agent = agent
        self.epoch = int(epoch)
        """Stamped on every policy blob (wire.encode_policy): orders this learner's
        versions after those of any learner that started before it."""
        self.robot, self.task = robot, task
        self.obs_dim = obs_dim or agent.obs_dim
        self.act_dim = act_dim or agent.act_dim
        self.pending = []
        self.counters = LearnerCounters()
        self.consumed_ids = {}
        """Highest episode sequence consumed per actor: what a checkpoint records."""
        self._seen = set()
        self.last_learned = []
        """(actor, sequence) of the episodes the last update learned from."""
        self.last_stale = []
        """(actor, sequence) of the queued episodes the last update dropped as too old."""

    def offer(self, blob) -> str:
        """Take one episode blob; return 'queued' or why it was not queued."""
        c = self.counters
        c.received += 1
        try:
            segment, info = wire.decode_episode(blob, self.obs_dim, self.act_dim)
        except wire.WireError as e:
            return self._reject(str(e))
        key = (info['actor'], info['sequence'])
        if key in self._seen or info['sequence'] <= self.consumed_ids.get(key[0], -1):
            # Heard before, or learned from before a --resume: a replay, or a stored copy.
            c.duplicates += 1
            return 'duplicate'
        self._seen.add(key)
        if info['aborted']:
            c.aborted += 1
            return 'aborted'
        if self.robot and info['robot'] and info['robot'] != self.robot:
            return self._reject(f'episode from robot {info["robot"]!r}, expected {self.robot!r}')
        if self._too_old(segment.policy_version):
            c.stale += 1
            return 'stale'
        self.pending.append((segment, key))
        return 'queued'

    def _reject(self, reason):
        self.counters.rejected += 1
        self.counters.reasons[reason] = self.counters.reasons.get(reason, 0) + 1
        log.warning('learner: rejected an episode blob: %s', reason)
        return f'rejected: {reason}'

    def _too_old(self, version):
        return self.agent.version - version > self.agent.config.max_policy_lag

    def pending_steps(self):
        return sum(len(s) for s, _ in self.pending)

    def ready(self):
        return self.pending_steps() >= self.agent.config.batch_steps

    def update(self) -> UpdateStats | None:
        """One TRPO update on the queued episodes that are still fresh enough."""
        fresh = [(s, k) for s, k in self.pending if not self._too_old(s.policy_version)]
        self.last_stale = [k for s, k in self.pending if self._too_old(s.policy_version)]
        self.last_learned = []
        self.counters.stale += len(self.pending) - len(fresh)
        self.pending = []
        if not fresh:
            return None
        stats = self.agent.update([s for s, _ in fresh])
        self.counters.consumed += len(fresh)
        self.last_learned = [k for _, k in fresh]
        for _, (actor, seq) in fresh:
            self.consumed_ids[actor] = max(seq, self.consumed_ids.get(actor, -1))
        return stats

    def policy_blob(self) -> bytes:
        return wire.encode_policy(self.agent.snapshot(), self.agent.obs_norm,
                                  self.agent.version, robot=self.robot, task=self.task,
                                  batch_steps=self.agent.config.batch_steps,
                                  epoch=self.epoch, max_kl=self.agent.config.max_kl)
