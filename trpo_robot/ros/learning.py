"""The learner node's work without rclpy: blobs in, updates, progress, checkpoints, the end.

``LearnerCore`` wraps the transport-free ``AsyncLearner`` with what a run needs around it:
per-episode returns and success for progress, the run's end (success rate or step budget),
a CSV row per update, the ledger, gaps filled from the episode store, and checkpoints.
One thread owns it (the node's worker thread), so it needs no locks. The intake itself
(inbox, the one decode, queue, counters, staleness) is AsyncLearner's; this class hears of
each outcome through AsyncLearner's ``on_offered``.
"""
from collections import deque
import csv
from dataclasses import asdict
import math
from pathlib import Path
import time

import numpy as np

from trpo_robot import auth
from trpo_robot.ros.params import env_id, LearnerParams, RobotParams, task_dims
from trpo_robot.trpo import checkpoint, scalars
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.learner import AsyncLearner

CSV_FIELDS = ('wall_s', 'steps', 'version', 'episodes', 'mean_return', 'final_distance',
              'success_rate', 'kl', 'accepted', 'update_s', 'stale', 'rejected',
              'episode_latency_ms')


class LearnerCore:
    def __init__(self, lp: LearnerParams, rp: RobotParams, log=print, *, warn=None,
                 keyring=None):
        """``warn(kind, text)``: where refusals go, rate-limited by kind in the node (one
        publisher flooding bad blobs must not flood the log). ``keyring``: default, the
        key file of ``rp``."""
        self.lp, self.rp, self.log = lp, rp, log
        self.warn = warn or (lambda kind, text: log(text))
        self.keyring = keyring or auth.Keyring.from_file(rp.key_file)
        self.task = rp.task_spec()
        self.obs_dim, self.act_dim = task_dims(self.task)
        consumed, episodes = {}, 0
        if lp.resume:
            agent, meta = checkpoint.load(lp.resume, expect_obs_dim=self.obs_dim,
                                          expect_act_dim=self.act_dim)
            consumed = _consumed_ids(meta.get('extra', {}).get('consumed', {}))
            episodes = _finite(meta.get('extra', {}).get('episodes'), 0)
            log(f'resumed from {lp.resume}: version {agent.version}, {agent.total_steps} '
                f'steps, consumed {consumed}')
        else:
            agent = Agent(self.obs_dim, self.act_dim, lp.trpo_config(), seed=rp.seed)
        self.learner = AsyncLearner(agent, robot=rp.robot, task=self.task.name,
                                    epoch=time.time_ns(), consumed=consumed, warn=self.warn,
                                    keyring=self.keyring, max_bytes=lp.max_episode_bytes,
                                    on_offered=self._offered)
        self.resumed_fed = 0
        """Stored episodes the checkpoint had not consumed, fed at start-up (feed_stored)."""
        self.store = None
        """The actors' EpisodeStore, when it is on this host: gaps are filled from it."""
        self.last_sequence = dict(consumed)
        """Highest sequence offered per actor, to notice an episode that never arrived."""
        self.gap_filled = 0
        self.missing = 0
        self.t0 = time.monotonic()
        self.episodes = int(episodes)
        self.acted_steps = 0
        self.window = deque(maxlen=rp.success_window)
        self._since_update = []  # (return, final distance) of full episodes since the update
        self._shield = [0, 0]  # [steps the shield changed, steps acted] since the update
        self.recent_returns = deque(maxlen=20)
        self._latencies = deque(maxlen=10_000)  # filled by the receiving thread
        self.last_latency_ms = math.nan
        self.last_stats = None
        self.updates = 0
        self.done = ''
        self.last_checkpoint = ''
        self._csv = None
        self.ledger = None
        self.checkpoint_failures = 0
        self.board = scalars.ScalarLog(lp.tensorboard_dir) if lp.tensorboard_dir else None
        if lp.log_dir:
            self.ledger = Ledger(Path(lp.log_dir) / 'ledger.csv', self.learner.epoch)
            self.ledger.start(agent.version, bool(lp.resume))
            path = Path(lp.log_dir) / 'progress.csv'
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists()
            self._csv_file = open(path, 'a', newline='')
            self._csv = csv.writer(self._csv_file)
            if new:
                self._csv.writerow(CSV_FIELDS)

    @property
    def agent(self):
        return self.learner.agent

    @property
    def counters(self):
        return self.learner.counters

    def offer(self, blob) -> str:
        """A stored episode blob (or a test's), through the same intake as a received one."""
        return self.learner.offer(blob)

    def _offered(self, status, episode):
        """What became of one blob: a ledger row unless queued, then for an episode that
        was not refused, the gap before it filled and the run's statistics."""
        if self.ledger is not None and status != 'queued':
            key = episode.key if episode is not None else ('', -1)
            self.ledger.key_row(status.partition(':')[0], self.agent.version, key)
        if episode is None or status.startswith('rejected'):
            return
        self._fill_gap(episode.actor, episode.sequence)
        lost_weights = episode.policy_version > self.agent.version
        if status == 'queued' or status == 'stale' and not lost_weights:
            self._count_episode(episode)

    def _count_episode(self, episode):
        """Run statistics of an episode that was acted by a version this learner had."""
        self.acted_steps += len(episode)
        extra = episode.extra
        self._count_shield(extra, len(episode))
        if not extra.get('partial', False):
            self._episode_done(_finite(extra.get('episode_return'), episode.episode_return),
                               extra)

    def _fill_gap(self, actor, sequence):
        """Episodes of a known actor that were skipped, read from the store.

        An actor writes an episode before it publishes it; one killed in between (or a
        lost message) leaves a recorded episode the learner never heard, and the next
        sequence it does hear would mark it consumed. Read from disk here, it is learned
        from like any other; one that is not on disk either is counted as missing."""
        last = self.last_sequence.get(actor)
        self.last_sequence[actor] = max(sequence, -1 if last is None else last)
        if last is None or sequence <= last + 1:
            return
        for skipped in range(last + 1, sequence):
            path = self.store.path(actor, skipped) if self.store is not None else None
            if path is None or not path.is_file():
                self.missing += 1
                self.log(f'episode {skipped} of {actor} never arrived and is not in the '
                         'episode store on this host')
                continue
            try:
                blob = self.store.read(path)
            except Exception as e:  # noqa: BLE001 - one damaged file must not stop the run
                self.missing += 1
                self.log(f'episode {skipped} of {actor} never arrived; its file: {e}')
                continue
            self.gap_filled += 1
            self.log(f'episode {skipped} of {actor} never arrived: learning from its file')
            self.offer(blob)

    def _count_shield(self, extra, steps):
        """Episodes of an actor that does not say (an older one) are left out of the
        fraction, not counted as steps the shield let through."""
        changed = _finite(extra.get('intervention_steps'), -1.0)
        if 0 <= changed <= steps:
            self._shield[0] += int(changed)
            self._shield[1] += steps

    def _episode_done(self, ret, extra):
        self.episodes += 1
        distance = _finite(extra.get('final_distance'), -1.0)
        self.window.append(self._success(extra, distance))
        self._since_update.append((ret, distance))
        self.recent_returns.append(ret)

    def _success(self, extra, distance) -> bool:
        if self.lp.success_distance > 0:
            return 0.0 <= distance < self.lp.success_distance
        return extra.get('success') is True

    def feed_stored(self, store) -> int:
        """Offer the episodes an EpisodeStore holds beyond what the checkpoint consumed:
        they were recorded by the actor but the previous learner died (or stopped) before
        learning from them. Each is offered once; the usual checks (aborted, stale) apply."""
        fed = 0
        for actor, seq, path in store.unconsumed(self.learner.consumed_ids):
            try:
                blob = store.read(path)
            except Exception as e:  # noqa: BLE001 - one damaged file must not stop the run
                self.learner.refuse(f'stored episode {path}: {e}')
                continue
            self.offer(blob)
            fed += 1
        self.resumed_fed += fed
        return fed

    def ready(self) -> bool:
        return self.learner.ready()  # frozen once done, with stop_when_done

    def update(self):
        """One TRPO update; returns the CSV row (a dict) or None if every episode was stale."""
        stats = self.learner.update()
        if self.ledger is not None:
            for key in self.learner.last_stale:
                self.ledger.key_row('stale', self.agent.version, key)
            for key in self.learner.last_learned:
                self.ledger.key_row('learned', self.agent.version, key)
            self.ledger.flush()
        if stats is None:
            return None
        self.updates += 1
        self.last_stats = stats
        done_eps, self._since_update = self._since_update, []
        returns = [r for r, _ in done_eps]
        distances = [d for _, d in done_eps if d >= 0]
        row = dict(wall_s=time.monotonic() - self.t0, steps=stats.steps,
                   version=stats.version, episodes=self.episodes,
                   mean_return=float(np.mean(returns)) if returns else math.nan,
                   final_distance=float(np.mean(distances)) if distances else math.nan,
                   success_rate=self.success_rate(), kl=stats.kl, accepted=stats.accepted,
                   update_s=stats.update_time, stale=self.counters.stale,
                   rejected=self.counters.rejected,
                   episode_latency_ms=self._latency_since_update())
        if self._csv:
            self._csv.writerow([row[k] for k in CSV_FIELDS])
            self._csv_file.flush()
        self._write_scalars(stats, row)
        self._check_done()
        if self.updates % self.lp.checkpoint_every == 0 or self.done:
            self.try_save()
        return row

    def note_latency(self, seconds: float):
        """An episode's transport time, its publication to its receipt (the node's DDS
        source timestamp against the host's clock; across hosts, only as good as their
        clock sync)."""
        self._latencies.append(seconds)

    def _latency_since_update(self) -> float:
        """Median ms of the episodes received since the previous update (nan: none, or a
        transport that tells no source time)."""
        taken = []
        while self._latencies:
            taken.append(self._latencies.popleft())
        self.last_latency_ms = float(np.median(taken)) * 1e3 if taken else math.nan
        return self.last_latency_ms

    def _write_scalars(self, stats, row):
        changed, acted = self._shield
        self._shield = [0, 0]
        if self.board is not None:
            self.board.write(stats.steps, {
                scalars.RETURN: row['mean_return'],
                scalars.SUCCESS: self.success_rate() if self.window else None,
                **scalars.update_values(stats),
                scalars.INTERVENTIONS: scalars.fraction(changed, acted)})

    def try_save(self) -> str:
        """save(), except that a full or failing disk costs a log line and a counter, not
        the run: the weights stay in memory and the next checkpoint tries again."""
        try:
            return self.save()
        except OSError as e:
            self.checkpoint_failures += 1
            self.warn('checkpoint', f'could not write a checkpoint to '
                      f'{self.lp.checkpoint_dir}: {e} [{self.checkpoint_failures} failed so '
                      'far; learning goes on]')
            return ''

    def success_rate(self) -> float:
        return float(np.mean(self.window)) if self.window else 0.0

    def _check_done(self):
        if self.done:
            return
        full = len(self.window) == self.window.maxlen
        if full and self.success_rate() >= self.rp.success_rate:
            self.done = 'success'
        elif self.agent.total_steps >= self.rp.budget_steps:
            self.done = 'budget'
        if self.done and self.lp.stop_when_done:
            self.learner.stop_keeping()  # count and check what still comes, but keep nothing
        if self.done:
            self.log(f'run done ({self.done}) at {self.agent.total_steps} steps, version '
                     f'{self.agent.version}, success rate {self.success_rate():.2f}')

    def policy_blob(self) -> bytes:
        return self.keyring.sign(self.learner.policy_blob(), auth.POLICY)

    def save(self) -> str:
        spaces = {'obs_dim': self.obs_dim, 'act_dim': self.act_dim,
                  'action_low': [-1.0] * self.act_dim, 'action_high': [1.0] * self.act_dim}
        extra = {'env_id': env_id(self.task.name), 'robot': self.rp.robot,
                 'task': self.task.name, 'seed': self.rp.seed, 'episodes': self.episodes,
                 'consumed': self.learner.consumed_ids,
                 'counters': {k: v for k, v in asdict(self.counters).items()
                              if k not in ('reasons', 'last_reject')},
                 'done': self.done}
        folder = checkpoint.save(self.agent, self.lp.checkpoint_dir, spaces=spaces,
                                 extra=extra)
        self.last_checkpoint = str(folder)
        return self.last_checkpoint

    def progress(self) -> dict:
        """Flat values for the progress message (and the CLI's display)."""
        s, c = self.last_stats, self.counters
        recent = list(self.recent_returns)
        return dict(
            version=self.agent.version, steps=self.agent.total_steps,
            acted_steps=self.acted_steps, episodes=self.episodes, updates=self.updates,
            pending_steps=self.learner.pending_steps(), inbox=self.learner.waiting(),
            dropped=c.dropped,
            batch_steps=self.agent.config.batch_steps, budget_steps=self.rp.budget_steps,
            mean_return=float(np.mean(recent)) if recent else math.nan,
            success_rate=self.success_rate(), success_window=len(self.window),
            kl=s.kl if s else math.nan, update_s=s.update_time if s else math.nan,
            received=c.received, rejected=c.rejected, unauthenticated=c.unauthenticated,
            stale=c.stale,
            duplicates=c.duplicates, aborted=c.aborted, consumed=c.consumed,
            resumed_fed=self.resumed_fed, gap_filled=self.gap_filled, missing=self.missing,
            checkpoint_failures=self.checkpoint_failures,
            episode_latency_ms=self.last_latency_ms,
            last_reject=c.last_reject,
            done=self.done, checkpoint=self.last_checkpoint,
            wall_s=time.monotonic() - self.t0)

    def close(self):
        if self._csv:
            self._csv_file.close()
            self._csv = None
        if self.board is not None:
            self.board.close()
            self.board = None
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None


class Ledger:
    """ledger.csv: what became of every episode this learner heard of, one row each.

    ``learned`` rows carry the version their update made; each learner process begins
    with a ``fresh`` row, or a ``resumed`` row naming its checkpoint's version.
    With the store and the checkpoints this is the record an audit needs to say that no
    episode was lost or learned twice across crashes (bench/chaos.py reads it). Rows are
    flushed at every update and start, not fsynced: a killed learner loses at most the
    rows of its unfinished batch, whose episodes it had not learned from.
    """

    FIELDS = ('wall', 'epoch', 'event', 'version', 'actor', 'sequence')

    def __init__(self, path, epoch):
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self._file = open(path, 'a', newline='')
        self._csv = csv.writer(self._file)
        self._epoch = epoch
        if new:
            self._csv.writerow(self.FIELDS)

    def start(self, version, resumed):
        self._csv.writerow((time.time(), self._epoch, 'resumed' if resumed else 'fresh',
                            version, '', -1))
        self.flush()

    def key_row(self, event, version, key):
        self._csv.writerow((time.time(), self._epoch, event, version, key[0], key[1]))

    def flush(self):
        try:
            self._file.flush()
        except OSError:
            pass  # a full disk: the rows wait in the buffer for the next flush

    def close(self):
        self.flush()
        try:
            self._file.close()
        except OSError:
            pass


def _consumed_ids(value) -> dict:
    """The checkpoint's {actor: highest consumed sequence}, checked (it is JSON from disk)."""
    if not isinstance(value, dict):
        raise checkpoint.CheckpointError('checkpoint extra.consumed is not a mapping')
    out = {}
    for actor, seq in value.items():
        if not isinstance(actor, str) or isinstance(seq, bool) or not isinstance(seq, int) \
                or seq < -1:
            raise checkpoint.CheckpointError(f'checkpoint extra.consumed has a bad entry '
                                             f'{actor!r}: {seq!r}')
        out[actor] = seq
    return out


def _finite(value, default):
    """A number from an episode's JSON metadata, or the default if it is not a finite one
    (the metadata is outside the wire format's tensor checks)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value) if math.isfinite(value) else default
