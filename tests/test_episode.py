"""The episode record: a blob is decoded and validated once (wire.read_episode) into an
immutable Episode, and that record is what the learner queues and the update learns from."""
import dataclasses
import json
import re

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from trpo_robot import auth
from trpo_robot.ros.learning import LearnerCore
from trpo_robot.ros.params import build, LearnerParams, RobotParams
from trpo_robot.trpo import wire
from trpo_robot.trpo.episode import Episode, Segment

OBS, ACT = 12, 2  # dxl_reacher
KEY = b'k' * 32
RING = auth.Keyring(KEY)


def _payload(sequence=0, n=50, version=0, extra=None):
    rng = np.random.default_rng(sequence)
    o = rng.standard_normal((n, OBS)).astype(np.float32)
    seg = Segment(o, o * 2, rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                  rng.standard_normal(n).astype(np.float32), np.full(n, -1.5, np.float32),
                  o[0], False, version)
    return wire.encode_episode(Episode.of(seg, robot='dxl', task='dxl_reacher', actor='/a',
                               sequence=sequence, extra=extra or {'partial': False}))


def _tampered(payload, name=None, value=None, meta=None):
    """The payload with one tensor or metadata entry replaced, re-serialized as a sender
    would: the signature is made over the bad content, so only validation can refuse it."""
    header = json.loads(payload[8:8 + int.from_bytes(payload[:8], 'little')])
    tensors = dict(st_load(payload))
    if name is not None:
        tensors[name] = value
    return st_save(tensors, metadata={**header['__metadata__'], **(meta or {})})


def test_a_signed_blob_decodes_once_into_a_frozen_validated_record():
    episode = wire.read_episode(RING.sign(_payload(7, version=3), auth.EPISODE), OBS, ACT,
                                keyring=RING)
    assert isinstance(episode, Episode)
    assert (episode.actor, episode.sequence, episode.policy_version) == ('/a', 7, 3)
    assert episode.key == ('/a', 7) and len(episode) == 50
    assert episode.obs.shape == (50, OBS) and episode.actions.shape == (50, ACT)
    assert episode.episode_return == pytest.approx(float(episode.rewards.sum()))
    assert not episode.aborted and episode.extra == {'partial': False}
    with pytest.raises(dataclasses.FrozenInstanceError):
        episode.sequence = 8
    with pytest.raises(ValueError):
        episode.rewards[0] = 1e9  # validated arrays stay as validated
    segment, info = wire.decode_episode(_payload(7, version=3), OBS, ACT)
    assert np.array_equal(segment.rewards, episode.rewards) and info == episode.info()


BAD = {
    'shape': (lambda p: _tampered(p, 'obs', np.zeros((50, OBS + 1), np.float32)),
              "tensor 'obs' has shape (50, 13), expected (50, 12)"),
    'NaN': (lambda p: _tampered(p, 'logp', np.full(50, np.nan, np.float32)),
            "tensor 'logp' holds NaN or inf"),
    'dtype': (lambda p: _tampered(p, 'actions', np.zeros((50, ACT), np.float64)),
              "tensor 'actions' has dtype float64, expected float32"),
    'missing': (lambda p: st_save({'rewards': np.zeros(3, np.float32)},
                                  metadata={'kind': wire.EPISODE_KIND, 'schema': '1'}),
                "tensor 'obs' is missing"),
    'sequence': (lambda p: _tampered(p, meta={'sequence': '-4'}),
                 "metadata 'sequence'=-4 is out of range"),
    'extra': (lambda p: _tampered(p, meta={'extra': '[1, 2]'}),
              'metadata extra is not a JSON object'),
    'oversize': (lambda p: p + b' ' * 100_000, 'exceeds the cap of 100000'),
}


@pytest.mark.parametrize('fault', sorted(BAD))
def test_each_invalid_field_is_refused_with_its_reason(fault):
    make, reason = BAD[fault]
    with pytest.raises(wire.WireError, match=re.escape(reason)):
        wire.read_episode(RING.sign(make(_payload()), auth.EPISODE), OBS, ACT, keyring=RING,
                          max_bytes=100_000)


def test_a_bad_signature_is_refused_before_anything_is_parsed():
    signed = bytearray(RING.sign(_payload(), auth.EPISODE))
    signed[-5] ^= 0x01
    with pytest.raises(auth.AuthError, match='bad signature'):
        wire.read_episode(bytes(signed), OBS, ACT, keyring=RING)
    # Not safetensors at all, but the envelope is checked first: one hash, no parse.
    junk = RING.sign(b'\xff' * 64, auth.EPISODE)[:-1] + b'\x00'
    with pytest.raises(auth.AuthError):
        wire.read_episode(junk, OBS, ACT, keyring=RING)
    with pytest.raises(auth.AuthError, match='unsigned'):
        wire.read_episode(_payload(), OBS, ACT, keyring=RING)


def test_the_learner_decodes_each_blob_once_and_learns_from_the_records(
        tmp_path, monkeypatch):
    rp = build(RobotParams, {'robot': 'dxl', 'task': 'dxl_reacher', 'driver_period': 0.01})
    lp = build(LearnerParams, {'trpo.batch_steps': 100, 'trpo.policy_hidden': [8],
                               'trpo.value_hidden': [8],
                               'checkpoint_dir': str(tmp_path / 'ck')})
    core = LearnerCore(lp, rp, log=lambda text: None, keyring=RING)
    decoded = []
    read_episode = wire.read_episode

    def counting(blob, *args, **kwargs):
        decoded.append(len(blob))
        return read_episode(blob, *args, **kwargs)
    monkeypatch.setattr(wire, 'read_episode', counting)
    blobs = [RING.sign(_payload(s, extra={'partial': False, 'episode_return': -75.0}),
                       auth.EPISODE) for s in range(2)]
    assert [core.offer(b) for b in blobs] == ['queued', 'queued']
    assert len(decoded) == 2  # the size cap, signature and checks: one decode per blob
    assert all(isinstance(e, Episode) for e in core.learner.pending)
    assert core.ready()
    row = core.update()
    assert row['version'] == 1 and row['steps'] == 100 and row['mean_return'] == -75.0
    assert len(decoded) == 2 and core.learner.last_learned == [('/a', 0), ('/a', 1)]
    assert core.learner.consumed_ids == {'/a': 1}


def _core(tmp_path, **params):
    rp = build(RobotParams, {'robot': 'dxl', 'task': 'dxl_reacher', 'driver_period': 0.01})
    lp = build(LearnerParams, {'trpo.batch_steps': 100, 'trpo.policy_hidden': [8],
                               'trpo.value_hidden': [8],
                               'checkpoint_dir': str(tmp_path / 'ck'), **params})
    return LearnerCore(lp, rp, log=lambda text: None, keyring=RING)


@pytest.mark.parametrize('success_distance,expected', [(0.0, [True, True, False]),
                                                       (0.01, [False, True, False])])
def test_a_stricter_success_distance_decides_the_success_window(
        tmp_path, success_distance, expected):
    """The actor reports success at the task's 2 cm; the learner's own bar, when set,
    judges the episode's final distance instead (a missing distance is never a success)."""
    core = _core(tmp_path, success_distance=success_distance)
    reports = [(0.015, True), (0.004, True), (None, False)]
    for sequence, (distance, success) in enumerate(reports):
        extra = {'partial': False, 'success': success}
        if distance is not None:
            extra['final_distance'] = distance
        assert core.offer(RING.sign(_payload(sequence, extra=extra), auth.EPISODE)) == 'queued'
    assert list(core.window) == expected


def test_the_learner_owns_its_inbox_and_counts_what_overflows(tmp_path, monkeypatch):
    """The transport's thread only posts; the worker drains, oldest first; a stuck worker
    costs the oldest blobs, counted, never an unbounded queue."""
    from trpo_robot.trpo import learner as learner_module
    monkeypatch.setattr(learner_module, 'INBOX_LIMIT', 3)
    core = _core(tmp_path)
    heard = []
    core.learner.on_offered = lambda status, episode: heard.append(episode.sequence)
    for sequence in range(5):
        core.learner.post(bytearray(RING.sign(_payload(sequence), auth.EPISODE)))
    assert core.learner.waiting() == 3 and core.counters.dropped == 2
    assert core.counters.received == 0  # nothing decoded in the posting thread
    assert core.learner.drain() == 3 and heard == [2, 3, 4]
    progress = core.progress()
    assert (progress['inbox'], progress['dropped'], progress['received']) == (0, 2, 3)


def test_a_refused_episode_of_another_task_is_on_the_ledger_with_its_key(tmp_path):
    core = _core(tmp_path)
    o = np.zeros((5, OBS), np.float32)
    seg = Segment(o, o, np.zeros((5, ACT), np.float32), np.zeros(5, np.float32),
                  np.zeros(5, np.float32), o[0], False)
    blob = wire.encode_episode(Episode.of(seg, task='dxl_tracker', actor='/b', sequence=4),
                               keyring=RING)
    heard = []
    core.learner.on_offered = lambda status, episode: heard.append((status, episode.key))
    status = core.offer(blob)
    assert status.startswith('rejected: episode of task') and heard == [(status, ('/b', 4))]
    assert core.learner.pending == []


def test_the_actor_hands_a_named_episode_to_the_outbox_thread_which_encodes_and_signs(
        tmp_path):
    """The recorder's segment becomes an Episode in the control thread; the encoding, the
    signature, the store and the publish happen in the outbox's own thread, in order."""
    import threading
    from trpo_robot.ros.acting import ActorStats, Outbox
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo.episode import EpisodeRecorder
    sent = []

    def publish(blob):
        sent.append((threading.current_thread().name, blob))
    store = EpisodeStore(tmp_path / 'episodes')
    outbox = Outbox(RING, publish, store=store, actor_id='/a', stats=ActorStats(),
                    log=lambda text: None)
    outbox.start()
    recorder = EpisodeRecorder()
    for sequence in range(3):
        for step in range(4):
            recorder.add(np.full(OBS, step, np.float32), np.zeros(OBS, np.float32),
                         np.zeros(ACT, np.float32), float(sequence), -1.0)
        episode = Episode.of(recorder.cut(np.zeros(OBS), True, 2), actor='/a',
                             sequence=sequence, robot='dxl', task='dxl_reacher')
        assert not episode.obs.flags.writeable and len(recorder) == 0
        outbox.put(episode)
    outbox.close()
    assert [name for name, _ in sent] == ['episode-outbox'] * 3
    read = [wire.read_episode(blob, OBS, ACT, keyring=RING) for _, blob in sent]
    assert [e.sequence for e in read] == [0, 1, 2]
    assert [e.episode_return for e in read] == [0.0, 4.0, 8.0]
    assert all(e.terminated and e.policy_version == 2 for e in read)
    assert np.array_equal(read[2].obs[:, 0], [0, 1, 2, 3])
    stored = [wire.read_episode(store.read(store.path('/a', s)), OBS, ACT, keyring=RING)
              for s in range(3)]
    assert [e.sequence for e in stored] == [0, 1, 2]


def test_naming_a_cut_segment_freezes_nothing_the_caller_still_holds():
    from trpo_robot.trpo.episode import EpisodeRecorder
    recorder = EpisodeRecorder()
    observation = np.zeros(OBS, np.float32)
    recorder.add(observation, observation, np.zeros(ACT, np.float32), 0.0, -1.0)
    Episode.of(recorder.cut(observation, False, 0), actor='/a')
    observation[0] = 1.0  # still the caller's to write (an identity normaliser returns it)
