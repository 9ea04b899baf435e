"""The asynchronous learner without any transport: episodes in, versioned policies out.

``AsyncLearner`` is the one owner of what happens to an episode blob from the moment a
transport hands it over: the inbox the transport's thread posts to, the one decode (size
cap, signature, validation: ``wire.read_episode``), the queue of episodes waiting for an
update, the counters that say what became of every blob (so nothing disappears
silently), duplicates and the per-actor sequences consumed (what a resume goes by), and
the staleness rules. Whoever runs it (the ROS learner's LearnerCore, a test) reads its
counters and hears of each outcome through ``on_offered``; nothing else edits them.
"""
from collections import deque
import logging
from dataclasses import dataclass, field

from trpo_robot import auth

from . import wire
from .agent import Agent, UpdateStats
from .episode import Episode

log = logging.getLogger(__name__)

INBOX_LIMIT = 1000
"""Blobs waiting for the worker; beyond this (a stuck worker) the oldest are dropped."""


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
    dropped: int = 0
    """Blobs the inbox overflowed with (INBOX_LIMIT) before the worker could read them."""
    reasons: dict = field(default_factory=dict)
    last_reject: str = ''


def _log_warning(kind, text):
    log.warning('learner: %s', text)


class AsyncLearner:
    def __init__(self, agent: Agent, *, robot='', task='', obs_dim=None, act_dim=None,
                 epoch=0, consumed=None, warn=None, keyring=None,
                 max_bytes=wire.MAX_BLOB_BYTES, on_offered=None):
        """``consumed``: {actor: highest sequence learned from}, from a checkpoint.
        ``warn(kind, text)``: where refusals are said ('auth' or 'episode' kind).
        ``keyring``: the fleet's keys; without one, blobs are read unsigned (tests, tools).
        ``on_offered(status, episode or None)``: after each blob, for the run's records."""
        self.agent = agent
        self.epoch = int(epoch)
        """Stamped on every policy blob (wire.encode_policy): orders this learner's
        versions after those of any learner that started before it."""
        self.robot, self.task = robot, task
        self.obs_dim = obs_dim or agent.obs_dim
        self.act_dim = act_dim or agent.act_dim
        self.warn = warn or _log_warning
        self.keyring, self.max_bytes = keyring, max_bytes
        self.on_offered = on_offered
        self._inbox = deque(maxlen=INBOX_LIMIT)
        self.pending: list[Episode] = []
        self.counters = LearnerCounters()
        self.consumed_ids = dict(consumed or {})
        """Highest episode sequence consumed per actor: what a checkpoint records."""
        self._seen = set()
        self.frozen = False
        """The run is over: episodes are still checked and counted, but none is kept."""
        self.last_learned = []
        """(actor, sequence) of the episodes the last update learned from."""
        self.last_stale = []
        """(actor, sequence) of the queued episodes the last update dropped as too old."""

    def post(self, blob):
        """From the transport's thread, while the worker may be draining: no decode here,
        one atomic append to a bounded deque, which drops the oldest blob when full (a
        check-then-pop could find the deque emptied in between and raise)."""
        if len(self._inbox) == self._inbox.maxlen:
            self.counters.dropped += 1
        self._inbox.append(bytes(blob))

    def waiting(self) -> int:
        return len(self._inbox)

    def drain(self) -> int:
        """From the worker's thread: offer every posted blob, oldest first."""
        offered = 0
        while self._inbox:
            self.offer(self._inbox.popleft())
            offered += 1
        return offered

    def offer(self, blob) -> str:
        """One episode blob (posted, stored, or a test's): 'queued', or why it was not."""
        episode = None
        try:
            episode = wire.read_episode(blob, self.obs_dim, self.act_dim,
                                        keyring=self.keyring, max_bytes=self.max_bytes)
        except auth.AuthError as e:
            status = self.refuse(f'not from an actor of this fleet: {e}',
                                 unauthenticated=True)
        except wire.WireError as e:
            status = self.refuse(str(e))
        else:
            status = self._task_refusal(episode) or self.take(episode)
        if self.on_offered is not None:
            self.on_offered(status, episode)
        return status

    def _task_refusal(self, episode):
        if self.task and episode.task and episode.task != self.task:
            return self.refuse(f'episode of task {episode.task!r}, learning {self.task!r}')
        return ''

    def take(self, episode: Episode) -> str:
        """One decoded episode: 'queued', or why it was not queued."""
        c = self.counters
        c.received += 1
        if episode.policy_version > self.agent.version:
            # Acted by a version this learner never had: published by a learner that died
            # after its last checkpoint. Its log-probabilities belong to lost weights.
            c.stale += 1
            return 'stale'
        actor, sequence = episode.key
        if episode.key in self._seen or sequence <= self.consumed_ids.get(actor, -1):
            # Heard before, or learned from before a --resume: a replay, or a stored copy.
            c.duplicates += 1
            return 'duplicate'
        self._seen.add(episode.key)
        if episode.aborted:
            c.aborted += 1
            return 'aborted'
        if self.robot and episode.robot and episode.robot != self.robot:
            return self._refused(f'episode from robot {episode.robot!r}, expected '
                                 f'{self.robot!r}')
        if self._too_old(episode.policy_version):
            c.stale += 1
            return 'stale'
        if not self.frozen:
            self.pending.append(episode)
        return 'queued'

    def refuse(self, reason, *, unauthenticated=False) -> str:
        """Count a blob that never became an Episode (too big, unsigned, malformed, of
        another task) as received and rejected, and say why."""
        return self._refused(reason, 'auth' if unauthenticated else 'episode', received=1)

    def _refused(self, reason, kind='episode', received=0):
        """The reason is kept before any count rises: a progress report read from another
        thread that shows the count then also says why."""
        c = self.counters
        c.last_reject = reason
        c.reasons[reason] = c.reasons.get(reason, 0) + 1
        c.received += received
        c.unauthenticated += kind == 'auth'
        c.rejected += 1
        self.warn(kind, f'rejected an episode blob: {reason} [{c.rejected} rejected so far, '
                  f'{c.unauthenticated} unsigned or wrongly signed]')
        return f'rejected: {reason}'

    def stop_keeping(self):
        """The run is done: drop the queue and keep nothing from now on."""
        self.frozen = True
        self.pending.clear()

    def _too_old(self, version):
        return self.agent.version - version > self.agent.config.max_policy_lag

    def pending_steps(self):
        return sum(len(e) for e in self.pending)

    def ready(self):
        return not self.frozen and self.pending_steps() >= self.agent.config.batch_steps

    def update(self) -> UpdateStats | None:
        """One TRPO update on the queued episodes that are still fresh enough."""
        fresh = [e for e in self.pending if not self._too_old(e.policy_version)]
        self.last_stale = [e.key for e in self.pending if self._too_old(e.policy_version)]
        self.last_learned = []
        self.counters.stale += len(self.pending) - len(fresh)
        self.pending = []
        if not fresh:
            return None
        stats = self.agent.update(fresh)
        self.counters.consumed += len(fresh)
        self.last_learned = [e.key for e in fresh]
        for actor, seq in self.last_learned:
            self.consumed_ids[actor] = max(seq, self.consumed_ids.get(actor, -1))
        return stats

    def policy_blob(self) -> bytes:
        return wire.encode_policy(self.agent.snapshot(), self.agent.obs_norm,
                                  self.agent.version, robot=self.robot, task=self.task,
                                  batch_steps=self.agent.config.batch_steps,
                                  epoch=self.epoch, max_kl=self.agent.config.max_kl)
