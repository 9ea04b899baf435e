"""The actor's episode loop, policy inbox and the learner core, over an in-process twin.

No rclpy here: these are the pure pieces the nodes wire to topics, so their rules (swap
only at a boundary, one version per segment, every bad blob counted) are tested fast.
"""
import math
import threading

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from trpo_robot import auth
from trpo_robot.robot.backend import BackendFault
from trpo_robot.robot.lifecycle import Phase
from trpo_robot.ros.acting import Actor, PolicyInbox, TeleportUnavailable, TwinHoldRelease
from trpo_robot.ros.learning import LearnerCore
from trpo_robot.ros.params import build, LearnerParams, RobotParams
from trpo_robot.trpo import checkpoint, wire
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.episode import Episode
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.twin.envs import make_twin_env

TASK, ROBOT = 'dxl_reacher', 'dxl'
OBS, ACT = 12, 2
KEYRING = auth.Keyring(b'test fleet key, 32 bytes long...')


def _policy(version, seed=0, scale=1.0, obs=OBS, act=ACT, robot=ROBOT, task=TASK,
            nan=False, batch_steps=0):
    agent = Agent(obs, act, TRPOConfig(policy_hidden=(16, 16)), seed=seed)
    snap = agent.snapshot()
    snap.layers = [(w * scale, b) for w, b in snap.layers]
    if nan:
        snap.layers[1][0][3, 4] = np.nan
    return KEYRING.sign(wire.encode_policy(snap, agent.obs_norm, version, robot=robot,
                                           task=task, batch_steps=batch_steps), auth.POLICY)


def _signed(payload):
    return KEYRING.sign(payload, auth.EPISODE)


@pytest.fixture
def env():
    e = make_twin_env(TASK)
    yield e
    e.close()


def _actor(env, swap_at='episode'):
    inbox = PolicyInbox(OBS, ACT, keyring=KEYRING, robot=ROBOT, task=TASK,
                        max_bytes=200_000)
    sent, swaps = [], []
    actor = Actor(env, inbox, sent.append, robot=ROBOT, task=TASK, actor_id='/t#1', seed=3,
                  swap_at=swap_at, on_swap=swaps.append)
    return actor, inbox, sent, swaps


def _offer_at_step(env, inbox, blob, at):
    """Deliver `blob` to the inbox while the env takes its `at`-th step (as the
    subscription thread would, in the middle of an episode)."""
    step, calls = env.step, [0]

    def stepping(action):
        calls[0] += 1
        if calls[0] == at:
            assert inbox.offer(blob) == 'accepted'
        return step(action)
    env.step = stepping


def _decode(blob):
    return wire.decode_episode(blob, OBS, ACT)


def test_bad_policy_blobs_are_rejected_and_counted():
    inbox = PolicyInbox(OBS, ACT, keyring=KEYRING, robot=ROBOT, task=TASK,
                        max_bytes=200_000)
    good = _policy(3)
    bad = {
        'garbage': b'\x00' * 64,
        'truncated': good[:len(good) // 2],
        'nan': _policy(1, nan=True),
        'dims': _policy(1, obs=OBS + 1),
        'robot': _policy(1, robot='ur5'),
        'oversized': good + b' ' * 200_000,
        'episode kind': KEYRING.sign(wire.encode_episode(Episode.of(
            *[_episode_segment()], robot=ROBOT, task=TASK)), auth.POLICY),
        'episode signature': _signed(wire.encode_episode(Episode.of(_episode_segment()))),
        'unsigned': auth.payload(good),
        'inf output': _policy(1, scale=np.inf),
    }
    reasons = {name: inbox.offer(blob) for name, blob in bad.items()}
    assert 'NaN' in reasons['nan'] and 'exceeds' in reasons['oversized']
    assert 'robot' in reasons['robot'] and 'NaN or inf' in reasons['inf output']
    assert 'blob kind' in reasons['episode kind'] and 'unsigned' in reasons['unsigned']
    assert "kind b'E'" in reasons['episode signature'] and inbox.unauthenticated == 4
    for name, status in reasons.items():
        assert status.startswith('rejected'), name
    assert inbox.rejected == len(bad) and inbox.latest() is None
    assert inbox.offer(good) == 'accepted' and inbox.latest().version == 3
    assert inbox.offer(good) == 'repeat'
    assert inbox.received == len(bad) + 2 and inbox.accepted == 1
    # the report's last_reject is the newest refusal, not the most frequent one
    assert inbox.offer(bad['garbage']) == reasons['garbage']
    inbox.offer(bad['robot'])
    assert 'rejected: ' + inbox.last_reject == reasons['robot'][:len('rejected: ') + 120]


def _episode_segment():
    from trpo_robot.trpo.episode import Segment
    z = np.zeros((5, OBS), np.float32)
    return Segment(z, z, np.zeros((5, ACT), np.float32), np.zeros(5, np.float32),
                   np.zeros(5, np.float32), z[0], False, 0)


def test_swap_at_episode_waits_for_the_boundary(env):
    actor, inbox, sent, swaps = _actor(env)
    inbox.offer(_policy(0))
    _offer_at_step(env, inbox, _policy(1, seed=1), at=10)
    stop = threading.Event()
    actor.episode(stop)
    actor.episode(stop)
    (seg0, info0), (seg1, info1) = [_decode(b) for b in sent]
    assert (seg0.policy_version, seg1.policy_version) == (0, 1)
    assert len(seg0) == len(seg1) == env.task.episode_steps
    assert not info0['extra']['partial'] and info0['sequence'] == 0 and info1['sequence'] == 1
    assert [(s.version, s.step_in_episode, s.missed_ticks) for s in swaps] == [
        (0, 0, 0), (1, 0, 0)]
    assert swaps[1].received <= swaps[1].built <= swaps[1].swapped <= swaps[1].first_action


def test_swap_at_tick_cuts_the_episode_into_one_version_per_segment(env):
    actor, inbox, sent, swaps = _actor(env, swap_at='tick')
    inbox.offer(_policy(0))
    _offer_at_step(env, inbox, _policy(1, seed=1), at=10)
    actor.episode(threading.Event())
    (seg0, info0), (seg1, info1) = [_decode(b) for b in sent]
    assert (seg0.policy_version, len(seg0)) == (0, 10)
    assert (seg1.policy_version, len(seg1)) == (1, env.task.episode_steps - 10)
    assert info0['extra']['partial'] and not info1['extra']['partial']
    assert not seg0.terminated
    total = float(seg0.rewards.sum() + seg1.rewards.sum())
    assert info1['extra']['episode_return'] == pytest.approx(total, rel=1e-5)
    assert swaps[-1].step_in_episode == 10 and swaps[-1].version == 1


def test_recorded_steps_are_what_the_policy_saw_and_did(env):
    actor, inbox, sent, _ = _actor(env)
    inbox.offer(_policy(0))
    actor.episode(threading.Event())
    seg, info = _decode(sent[0])
    pol = inbox.latest()
    np.testing.assert_allclose(seg.obs, np.stack([pol.norm(r) for r in seg.raw_obs]),
                               atol=1e-6)
    mean = np.stack([pol.snapshot.mean(o) for o in seg.obs])
    z = (seg.actions - mean) / pol.snapshot.std
    logp = -0.5 * (z ** 2).sum(1) - pol.snapshot.log_std.sum() - ACT * 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(seg.logp, logp, rtol=1e-4, atol=1e-4)
    assert info['robot'] == ROBOT and info['task'] == TASK and info['actor'] == '/t#1'
    assert 0 <= info['extra']['final_distance'] < 1


class _FailingAfter:
    """Wraps a backend; raises BackendFault on the n-th advance (a lost driver)."""

    def __init__(self, backend, n):
        self._b, self._n, self.stops = backend, n, 0

    def __getattr__(self, name):
        return getattr(self._b, name)

    def advance(self, duration):
        self._n -= 1
        if self._n == 0:
            raise BackendFault('driver lost')
        self._b.advance(duration)

    def stop(self):
        self.stops += 1
        self._b.stop()


def test_a_backend_fault_aborts_the_episode_sends_it_marked_aborted_and_stops_the_arm(env):
    env.backend = _FailingAfter(env.backend, 5)
    actor, inbox, sent, _ = _actor(env)
    inbox.offer(_policy(0))
    stop = threading.Event()
    idle_calls = []
    actor.run(stop, idle=lambda: (idle_calls.append(1), stop.set()))
    assert actor.stats.aborted == 1 and idle_calls
    # The four steps acted before the fault, sent and marked aborted: never silently lost.
    assert [(_decode(b)[1]['aborted'], len(_decode(b)[0])) for b in sent] == [(True, 4)]
    assert env.backend.stops >= 2  # the env's reset stop, and the actor's own


def test_no_teleport_falls_back_to_driving(env):
    def refuse(position, velocity=None):
        raise TeleportUnavailable('nobody serves it')
    env.backend.reset_state = refuse
    actor, inbox, sent, _ = _actor(env)
    inbox.offer(_policy(0))
    actor.episode(threading.Event())
    assert env.drive_resets and actor.stats.teleport_fallbacks == 1 and len(sent) == 1


def _lifecycle_actor(env, **kwargs):
    """An actor whose lifecycle owns the arm between episodes, as in actor_node."""
    import logging
    from trpo_robot.robot.lifecycle import EpisodeLifecycle
    inbox = PolicyInbox(OBS, ACT, keyring=KEYRING, robot=ROBOT, task=TASK,
                        max_bytes=200_000)
    sent = []
    lifecycle = EpisodeLifecycle.for_env(env, logger=logging.getLogger('test.sync'))
    actor = Actor(env, inbox, sent.append, robot=ROBOT, task=TASK, actor_id='/t#1', seed=3,
                  lifecycle=lifecycle, teleport=True, **kwargs)
    return actor, inbox, sent


def _cycle_until(actor, done, limit=20_000):
    stop = threading.Event()
    for _ in range(limit):
        if done():
            return
        actor._cycle(stop, None)
    raise AssertionError('condition not reached')


@pytest.mark.parametrize('synchronous', [True, False])
def test_a_synchronous_actor_holds_the_arm_after_a_batch_until_the_next_version(
        env, synchronous):
    steps = env.task.episode_steps
    actor, inbox, sent = _lifecycle_actor(env, synchronous=synchronous)
    inbox.offer(_policy(0, batch_steps=steps + 1))  # two episodes make a batch
    _cycle_until(actor, lambda: len(sent) == 2)
    t_hold = env.backend.now()
    _cycle_until(actor, lambda: env.backend.now() - t_hold > 3.0 or len(sent) > 2)
    if not synchronous:  # asynchronous: acting goes on with the version it has
        assert [_decode(b)[0].policy_version for b in sent] == [0, 0, 0]
        assert actor.stats.held_for_updates == 0
        return
    assert len(sent) == 2 and actor.stats.held_for_updates == 1
    assert actor.stats.phase == 'holding for the learner (synchronous)'
    assert np.abs(env.backend.read().velocity).max() < 0.01  # at rest (sensor noise ~1e-3)
    inbox.offer(_policy(1, seed=1, batch_steps=steps + 1))
    _cycle_until(actor, lambda: actor.stats.held_for_updates == 2)
    assert [_decode(b)[0].policy_version for b in sent] == [0, 0, 1, 1]
    held = [_decode(b)[1]['extra']['held_seconds'] for b in sent]
    assert held[:2] == [0.0, 0.0] and held[2] > 2.0 and held[3] == 0.0  # robot time
    assert actor.stats.held_seconds == pytest.approx(held[2])


def test_a_synchronous_actor_gives_up_waiting_after_the_hold_timeout(env):
    steps = env.task.episode_steps
    logs = []
    actor, inbox, sent = _lifecycle_actor(env, synchronous=True, hold_timeout=2.0,
                                          log=logs.append)
    inbox.offer(_policy(0, batch_steps=steps))
    _cycle_until(actor, lambda: actor.stats.held_for_updates == 2)
    assert [_decode(b)[0].policy_version for b in sent] == [0, 0]
    assert any('no policy after version 0 within 2 s' in text for text in logs)


@pytest.mark.parametrize('failures, teleport_after', [(1, True), (99, False)])
def test_a_failed_teleport_drives_that_reset_and_gives_up_only_when_it_keeps_failing(
        env, failures, teleport_after):
    teleport, calls = env.backend.reset_state, []

    def lost_at_first(position, velocity=None):
        calls.append(1)
        if len(calls) <= failures:
            raise TeleportUnavailable('the twin did not teleport within 50 driver periods')
        teleport(position, velocity)
    env.backend.reset_state = lost_at_first
    actor, inbox, sent = _lifecycle_actor(env)
    inbox.offer(_policy(0))
    _cycle_until(actor, lambda: len(sent) == 5)
    assert actor.teleport is teleport_after
    if teleport_after:  # the start-up reset drove, the next four teleported
        assert (actor.stats.teleport_fallbacks, actor.stats.teleports) == (1, 4)
    else:
        assert (actor.stats.teleport_fallbacks, actor.stats.teleports) == (3, 0)


def test_the_learners_policy_says_its_batch():
    agent = Agent(OBS, ACT, TRPOConfig(policy_hidden=(16, 16), batch_steps=777), seed=0)
    from trpo_robot.trpo.learner import AsyncLearner
    inbox = PolicyInbox(OBS, ACT, keyring=KEYRING, robot=ROBOT, task=TASK,
                        max_bytes=200_000)
    blob = AsyncLearner(agent, robot=ROBOT, task=TASK).policy_blob()
    assert inbox.offer(KEYRING.sign(blob, auth.POLICY)) == 'accepted'
    assert inbox.latest().batch_steps == 777


# ---------------------------------------------------------------- learner core

def _core(tmp_path, learner=None, **robot):
    rp = build(RobotParams, {'robot': ROBOT, 'task': TASK, 'driver_period': 0.01,
                             'budget_steps': 200, 'success_window': 4, **robot})
    lp = build(LearnerParams, {'trpo.batch_steps': 100, 'trpo.policy_hidden': [16, 16],
                               'trpo.value_hidden': [16, 16], 'max_episode_bytes': 100_000,
                               'checkpoint_dir': str(tmp_path / 'ck'),
                               'log_dir': str(tmp_path), 'checkpoint_every': 1,
                               **(learner or {})})
    return LearnerCore(lp, rp, log=lambda text: None, keyring=KEYRING)


def _blobs(env, n, version=0, success=None):
    actor, inbox, sent, _ = _actor(env)
    inbox.offer(_policy(version))
    for _ in range(n):
        actor.episode(threading.Event())
    if success is not None:
        out = []
        for blob in sent:
            seg, info = _decode(blob)
            out.append(_signed(wire.encode_episode(Episode.of(
                seg, robot=ROBOT, task=TASK, actor='/s', sequence=info['sequence'],
                extra={**info['extra'], 'success': success}))))
        return out
    return sent


def test_learner_core_updates_checkpoints_and_stops_at_the_budget(tmp_path, env):
    core = _core(tmp_path)
    blobs = _blobs(env, 5)
    for blob in blobs[:2]:
        assert core.offer(blob) == 'queued'
    assert core.ready()
    row = core.update()
    assert row['version'] == 1 and row['steps'] == 100 and row['episodes'] == 2
    assert math.isnan(row['episode_latency_ms'])  # offered, not received: no transport
    assert core.done == '' and (tmp_path / 'ck' / 'meta.json').exists()
    for blob, latency in zip(blobs[2:4], (0.002, 0.004)):
        core.offer(blob)
        core.note_latency(latency)
    row = core.update()
    assert row['episode_latency_ms'] == pytest.approx(3.0)
    assert core.progress()['episode_latency_ms'] == pytest.approx(3.0)
    assert core.done == 'budget' and not core.ready()
    agent, meta = checkpoint.load(tmp_path / 'ck')
    assert agent.version == 2 and meta['extra']['env_id'] == 'trpo_robot/DXLReacher-v0'
    lines = (tmp_path / 'progress.csv').read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith('wall_s,steps,version')
    core.close()


def test_learner_core_writes_its_scalars_once_per_update_from_what_the_actor_counted(
        tmp_path, env):
    """The shield's share is the actor's own count of changed steps, carried in each
    episode's extra; the actor has no control loop here, so no control/* tags."""
    from board_support import read_scalars
    from trpo_robot.trpo import scalars as S
    core = _core(tmp_path, learner={'tensorboard_dir': str(tmp_path / 'tb')})
    actor, inbox, sent, _ = _actor(env)
    inbox.offer(_policy(0))
    for _ in range(4):
        actor.episode(threading.Event())
    episodes = [_decode(blob) for blob in sent]
    changed = [info['extra']['intervention_steps'] for _, info in episodes]
    assert sum(changed) == actor.stats.intervention_steps > 0
    for batch in (sent[:2], sent[2:]):
        for blob in batch:
            assert core.offer(blob) == 'queued'
        assert core.update() is not None
    core.close()
    got = read_scalars(tmp_path / 'tb')
    assert set(got) == {S.RETURN, S.SUCCESS, S.KL, S.ACCEPTED, S.BACKTRACKS, S.UPDATE_TIME,
                        S.INTERVENTIONS}
    assert all([step for step, _ in points] == [100, 200] for points in got.values()), got
    for k, half in enumerate((episodes[:2], episodes[2:])):
        returns = [info['extra']['episode_return'] for _, info in half]
        assert got[S.RETURN][k][1] == pytest.approx(np.mean(returns), rel=1e-6)
        share = sum(changed[2 * k:2 * k + 2]) / sum(len(seg) for seg, _ in half)
        assert got[S.INTERVENTIONS][k][1] == pytest.approx(share, rel=1e-6)


def test_learner_core_stops_at_the_success_rate(tmp_path, env):
    core = _core(tmp_path, budget_steps=10_000)
    for blob in _blobs(env, 4, success=True):
        core.offer(blob)
    core.update()
    assert core.done == 'success' and core.success_rate() == 1.0


def test_learner_core_counts_every_bad_episode(tmp_path, env):
    core = _core(tmp_path)
    good = _blobs(env, 1)[0]
    seg, info = _decode(good)
    seg.rewards[3] = np.nan  # decode_episode's Segment is a writable copy
    bad = [b'nonsense', good + b'x' * 100_000,
           _signed(wire.encode_episode(Episode.of(seg, robot=ROBOT))),
           _signed(st_save({'x': np.zeros(3, np.float32)},
                           metadata={'kind': 'trpo_robot.episode'})),
           _policy(0)]
    seg = _decode(good)[0]  # the episode above made its arrays read-only
    bad.append(_signed(wire.encode_episode(
        Episode.of(seg, robot=ROBOT, task='dxl_tracker', actor='/o'))))
    statuses = [core.offer(b) for b in bad]
    assert all(s.startswith('rejected') for s in statuses), statuses
    assert 'dxl_tracker' in statuses[-1]
    assert core.counters.rejected == len(bad) and core.counters.received == len(bad)
    assert core.offer(good) == 'queued' and core.offer(good) == 'duplicate'
    assert core.progress()['rejected'] == len(bad)


def test_learner_core_feeds_the_unconsumed_stored_episodes_once(tmp_path, env):
    from trpo_robot.store import EpisodeStore
    store = EpisodeStore(tmp_path / 'episodes')
    blobs = _blobs(env, 3)
    for blob in blobs:
        info = _decode(blob)[1]
        store.write(blob, actor=info['actor'], sequence=info['sequence'])
    core = _core(tmp_path)
    core.learner.consumed_ids['/t#1'] = 0  # as a checkpoint that learned episode 0
    assert core.feed_stored(store) == 2 and core.resumed_fed == 2
    assert core.counters.received == 2 and core.learner.pending_steps() == 100
    assert [core.offer(b) for b in blobs[1:]] == ['duplicate', 'duplicate']


def test_learner_core_learns_a_skipped_episode_from_the_store(tmp_path, env):
    """An actor killed between writing episode 2 and publishing it, restarted: the learner
    hears 0, 1 and then 3; episode 2 is read from the store, not silently passed over."""
    from trpo_robot.store import EpisodeStore
    store = EpisodeStore(tmp_path / 'episodes')
    blobs = _blobs(env, 5)
    for blob in blobs[:4]:  # episode 4 was never written (the actor died acting it)
        info = _decode(blob)[1]
        store.write(blob, actor=info['actor'], sequence=info['sequence'])
    core = _core(tmp_path)
    core.store = store
    assert [core.offer(b) for b in (blobs[0], blobs[1], blobs[3])] == ['queued'] * 3
    assert core.gap_filled == 1 and core.missing == 0
    assert core.counters.received == 4 and core.learner.pending_steps() == 200
    assert core.offer(blobs[2]) == 'duplicate'  # the late original, if it comes
    # Not on disk either (another host's actor): counted and said, never guessed.
    other = _core(tmp_path / 'other')
    logged = []
    other.log = logged.append
    other.offer(blobs[0])
    other.offer(blobs[4])
    assert other.missing == 3 and other.gap_filled == 0
    assert other.progress()['missing'] == 3 and 'never arrived' in logged[0]


def test_learner_core_drops_episodes_of_a_version_it_never_had(tmp_path, env):
    core = _core(tmp_path)
    seg, info = _decode(_blobs(env, 1, version=4)[0])
    assert seg.policy_version == 4 and core.agent.version == 0
    assert core.offer(_blobs(env, 1, version=4)[0]) == 'stale'
    assert core.counters.stale == 1 and core.learner.pending_steps() == 0


def test_the_ledger_says_what_became_of_every_episode_and_a_full_disk_stops_nothing(
        tmp_path, env, monkeypatch):
    core = _core(tmp_path)
    blobs = _blobs(env, 3)
    assert [core.offer(b) for b in blobs[:2]] == ['queued', 'queued']
    assert core.offer(blobs[0]) == 'duplicate'

    def full(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(checkpoint, 'save', full)
    row = core.update()  # the checkpoint cannot be written: counted, learning goes on
    assert row['version'] == 1 and core.checkpoint_failures == 1
    assert core.progress()['checkpoint_failures'] == 1
    core.close()
    rows = [line.split(',') for line in (tmp_path / 'ledger.csv').read_text().splitlines()]
    assert rows[0] == ['wall', 'epoch', 'event', 'version', 'actor', 'sequence']
    assert [r[2:] for r in rows[1:]] == [
        ['fresh', '0', '', '-1'], ['duplicate', '0', '/t#1', '0'],
        ['learned', '1', '/t#1', '0'], ['learned', '1', '/t#1', '1']]


def test_an_episode_the_disk_refused_is_recorded_once_the_disk_takes_it_again(env):
    import tempfile

    from trpo_robot.store import EpisodeStore, StoreError

    class FullThenFine(EpisodeStore):
        full = True

        def write(self, blob, **kwargs):
            if self.full:
                raise StoreError('No space left on device')
            return super().write(blob, **kwargs)
    with tempfile.TemporaryDirectory() as folder:
        store = FullThenFine(folder)
        inbox = PolicyInbox(OBS, ACT, keyring=KEYRING, robot=ROBOT, task=TASK)
        sent = []
        actor = Actor(env, inbox, sent.append, robot=ROBOT, task=TASK, actor_id='/t#1',
                      seed=3, store=store)
        inbox.offer(_policy(0))
        actor.episode(threading.Event())  # no outbox: recorded and sent in this thread
        assert len(sent) == 1 and actor.stats.store_failures == 1 and not store.episodes()
        store.full = False
        actor.episode(threading.Event())
        assert len(sent) == 2 and actor.stats.stored == 2
        assert [s for _, s, _ in store.episodes()] == [0, 1]


def test_on_a_twin_the_actor_ends_each_hold_up_to_its_limit_but_never_a_pause():
    """Each fault holds the arm; the actor of a twin resets it as an operator would, up
    to the limit a run, and says so. A pause is the operator's (it stays held until
    resumed), and the first hold past the limit waits for a person."""
    env = make_twin_env(TASK)
    logs = []
    release = TwinHoldRelease(2, logs.append, clock=env.backend.now)  # twin time: no waiting
    actor, inbox, sent = _lifecycle_actor(env, hold_release=release)
    actor.twin_heard = {}  # the twin's conditions: this arm is a twin
    lc = actor.lifecycle
    inbox.offer(_policy(0))
    _cycle_until(actor, lambda: len(sent) == 1)
    lc.fault('test: first')
    _cycle_until(actor, lambda: lc.phase is Phase.HOLD)
    held = env.backend.now()
    _cycle_until(actor, lambda: lc.phase is not Phase.HOLD)
    assert env.backend.now() - held >= TwinHoldRelease.SETTLE_S  # a look before the reset
    assert logs[-1] == 'twin: the actor ends hold 1 of 2 a run: auto reset started', logs
    _cycle_until(actor, lambda: len(sent) == 2)  # learning went on
    lc.pause('test')
    _cycle_until(actor, lambda: lc.phase is Phase.HOLD)
    _wait(actor, 3 * TwinHoldRelease.SETTLE_S)
    assert lc.phase is Phase.HOLD and lc.holds == 2 and not any('hold 2' in t for t in logs)
    lc.resume()
    _cycle_until(actor, lambda: len(sent) == 3)
    lc.fault('test: past the limit')
    faulted = env.backend.now()
    past = ('twin: hold 3 is past the 2 a run the actor ends itself: the arm waits for the '
            'operator')
    _cycle_until(actor, lambda: past in logs)  # said at once: no reset to settle for
    assert env.backend.now() - faulted < TwinHoldRelease.SETTLE_S, logs
    _wait(actor, 3 * TwinHoldRelease.SETTLE_S)
    assert lc.phase is Phase.HOLD and lc.holds == 3 and len(sent) == 3
    assert logs.count(past) == 1 and logs[-1] == past, logs
    env.close()


def test_an_actor_that_heard_no_twin_never_ends_a_hold(env):
    """A real arm publishes no twin conditions: whatever the limit, a hold waits for the
    operator."""
    logs = []
    release = TwinHoldRelease(3, logs.append, clock=env.backend.now)  # twin time: no waiting
    actor, inbox, sent = _lifecycle_actor(env, hold_release=release)
    lc = actor.lifecycle
    inbox.offer(_policy(0))
    _cycle_until(actor, lambda: len(sent) == 1)
    lc.fault('test')
    _cycle_until(actor, lambda: lc.phase is Phase.HOLD)
    _wait(actor, 3 * TwinHoldRelease.SETTLE_S)
    assert lc.phase is Phase.HOLD and lc.holds == 1 and logs == [] and len(sent) == 1


def _wait(actor, seconds):
    """Lifecycle ticks for ``seconds`` of twin time: several times what a release waits."""
    until = actor.backend.now() + seconds
    _cycle_until(actor, lambda: actor.backend.now() >= until)
