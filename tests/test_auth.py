"""Signed blobs (trpo_robot/auth.py): the envelope, the key file, and who refuses what.

The actor must act only on policies from its learner, newest first; the learner must learn
only from episodes of its actors, each once. No rclpy here (test_ros_auth.py does that
across processes).
"""
import os
import re
import stat
import threading

import numpy as np
import pytest

from trpo_robot import auth
from trpo_robot.ros.acting import PolicyInbox
from trpo_robot.ros.learning import LearnerCore
from trpo_robot.ros.params import build, LearnerParams, RobotParams
from trpo_robot.trpo import wire
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.episode import Episode, Segment
from trpo_robot.trpo.config import TRPOConfig

OBS, ACT = 12, 2
KEY, OTHER = b'k' * 32, b'o' * 32


def _policy_payload(version=0, epoch=0, seed=0):
    agent = Agent(OBS, ACT, TRPOConfig(policy_hidden=(8,)), seed=seed)
    return wire.encode_policy(agent.snapshot(), agent.obs_norm, version, robot='dxl',
                              task='dxl_reacher', epoch=epoch)


def _episode_payload(sequence=0, actor='/a', n=50, version=0):
    rng = np.random.default_rng(sequence)
    o = rng.standard_normal((n, OBS)).astype(np.float32)
    seg = Segment(o, o, np.zeros((n, ACT), np.float32), np.zeros(n, np.float32),
                  np.zeros(n, np.float32), o[0], False, version)
    return wire.encode_episode(Episode.of(seg, robot='dxl', task='dxl_reacher', actor=actor,
                               sequence=sequence, extra={'final_distance': 0.1}))


# ---------------------------------------------------------------- the envelope

def test_a_signed_blob_opens_to_its_payload_with_the_key_and_is_readable_offline():
    ring = auth.Keyring(KEY)
    payload = _episode_payload()
    blob = ring.sign(payload, auth.EPISODE)
    assert len(blob) == len(payload) + auth.ENVELOPE_BYTES
    assert ring.open(blob, auth.EPISODE) == payload
    assert auth.payload(blob) == payload == auth.payload(payload)
    assert wire.decode_episode(blob, OBS, ACT)[1]['sequence'] == 0  # analysis tools


def test_every_altered_byte_is_refused():
    """Header (magic, kind, format, key id), tag and payload: no byte is outside the MAC."""
    ring = auth.Keyring(KEY)
    blob = ring.sign(_policy_payload(), auth.POLICY)
    for i in range(len(blob)):
        for flip in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= flip
            with pytest.raises(auth.AuthError):
                ring.open(bytes(bad), auth.POLICY)


@pytest.mark.parametrize('make, reason', [
    (lambda p: auth.Keyring(OTHER).sign(p, auth.POLICY), 'does not hold'),
    (lambda p: _forged_key_id(p), 'bad signature'),
    (lambda p: p, 'unsigned'),
    (lambda p: auth.Keyring(KEY).sign(p, auth.POLICY)[:auth.ENVELOPE_BYTES - 1], 'unsigned'),
    (lambda p: auth.Keyring(KEY).sign(p, auth.POLICY)[:-1], 'bad signature'),
    (lambda p: auth.Keyring(KEY).sign(p, auth.POLICY)[:auth.ENVELOPE_BYTES], 'bad signature'),
    (lambda p: auth.Keyring(KEY).sign(p, auth.POLICY) + b'\0', 'bad signature'),
    (lambda p: auth.Keyring(KEY).sign(p, auth.EPISODE), "kind b'E'"),
    (lambda p: b'', 'unsigned'),
])
def test_wrong_key_missing_tag_truncation_and_kind_are_refused(make, reason):
    with pytest.raises(auth.AuthError, match=reason):
        auth.Keyring(KEY).open(make(_policy_payload()), auth.POLICY)


def _forged_key_id(payload):
    """Signed with another key but claiming the fleet key's id."""
    blob = bytearray(auth.Keyring(OTHER).sign(payload, auth.POLICY))
    blob[auth.HEADER_BYTES - auth.KEY_ID_BYTES:auth.HEADER_BYTES] = auth.key_id(KEY)
    return bytes(blob)


def test_a_keyring_accepts_its_extra_keys_and_signs_with_its_own():
    ring = auth.Keyring(KEY, accept=[OTHER])
    other = auth.Keyring(OTHER).sign(b'payload', auth.EPISODE)
    assert ring.open(other, auth.EPISODE) == b'payload'
    with pytest.raises(auth.AuthError, match='does not hold'):
        auth.Keyring(OTHER).open(ring.sign(b'x', auth.EPISODE), auth.EPISODE)


# ---------------------------------------------------------------- the key file

def test_the_key_file_is_made_owner_only_and_read_back(tmp_path):
    path = tmp_path / 'conf' / 'fleet.key'
    key = auth.load_or_create_key(path)
    assert len(key) == auth.KEY_BYTES and auth.load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ['fleet.key']  # no temporary left
    assert auth.load_or_create_key(tmp_path / 'other.key') != key


def test_a_key_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path):
    path = tmp_path / 'fleet.key'
    auth.load_or_create_key(path)
    for mode in (0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(auth.KeyFileError, match=re.escape(f'run chmod 600 {path}')):
            auth.load_or_create_key(path)
    path.chmod(0o600)
    auth.load_or_create_key(path)


def test_a_key_file_without_a_key_is_refused(tmp_path):
    path = tmp_path / 'fleet.key'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'not hex\n')
    os.close(fd)
    with pytest.raises(auth.KeyFileError, match='does not hold 32 bytes'):
        auth.load_or_create_key(path)
    with pytest.raises(auth.KeyFileError, match='Is a directory'):
        auth.load_or_create_key(tmp_path)


def test_processes_starting_together_end_up_with_one_key(tmp_path):
    path = tmp_path / 'config' / 'trpo_robot' / 'fleet.key'  # no folder yet either
    start, keys = threading.Barrier(8), []

    def load():
        start.wait()
        keys.append(auth.load_or_create_key(path))
    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_the_default_key_lives_under_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path))
    assert auth.key_path('') == tmp_path / 'trpo_robot' / 'fleet.key'
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert auth.key_path('~/k') == tmp_path / 'home' / 'k'
    auth.Keyring.from_file()
    assert (tmp_path / 'trpo_robot' / 'fleet.key').is_file()


# ---------------------------------------------------------------- the actor's inbox

def _inbox():
    return PolicyInbox(OBS, ACT, keyring=auth.Keyring(KEY), robot='dxl', task='dxl_reacher',
                       max_bytes=100_000)


def _signed_policy(version, epoch=1, key=KEY):
    return auth.Keyring(key).sign(_policy_payload(version, epoch), auth.POLICY)


def test_the_actor_refuses_unsigned_and_wrongly_signed_policies():
    inbox = _inbox()
    assert inbox.offer(_policy_payload(5)).startswith('rejected: not from the learner')
    assert 'does not hold' in inbox.offer(_signed_policy(5, key=OTHER))
    assert inbox.latest() is None and (inbox.unauthenticated, inbox.rejected) == (2, 2)
    assert inbox.offer(_signed_policy(5)) == 'accepted' and inbox.latest().version == 5


def test_the_actor_refuses_replayed_versions_and_follows_a_restarted_learner():
    inbox, logs = _inbox(), []
    inbox._log = logs.append
    old_run = [_signed_policy(v, epoch=100) for v in range(4)]
    for blob in old_run[:3]:
        assert inbox.offer(blob) == 'accepted'
    assert inbox.offer(old_run[2]) == 'repeat'  # transient_local hands it over again
    assert inbox.offer(old_run[0]).startswith('replay: replayed policy: version 0')
    assert inbox.latest().version == 2 and inbox.replays == 1
    # A learner resumed from the checkpoint of version 2 publishes version 2 again, newer.
    assert inbox.offer(_signed_policy(2, epoch=200)) == 'accepted'
    assert inbox.offer(old_run[3]).startswith('replay')  # the old run's newer version
    # A fresh learner (version 0) started later still supersedes.
    assert inbox.offer(_signed_policy(0, epoch=300)) == 'accepted'
    assert (inbox.latest().version, inbox.latest().epoch) == (0, 300)
    assert inbox.replays == 2 and inbox.rejected == 2 and inbox.unauthenticated == 0
    assert any('a new learner' in text for text in logs)
    assert any('replays so far' in text for text in logs)


# ---------------------------------------------------------------- the learner

def _core(tmp_path, resume=''):
    rp = build(RobotParams, {'robot': 'dxl', 'task': 'dxl_reacher', 'driver_period': 0.01})
    lp = build(LearnerParams, {'trpo.batch_steps': 100, 'trpo.policy_hidden': [8],
                               'trpo.value_hidden': [8], 'resume': resume,
                               'checkpoint_dir': str(tmp_path / 'ck')})
    warned = []
    core = LearnerCore(lp, rp, log=lambda text: None, keyring=auth.Keyring(KEY),
                       warn=lambda kind, text: warned.append((kind, text)))
    return core, warned


def test_the_learner_refuses_unsigned_and_wrongly_signed_episodes(tmp_path):
    core, warned = _core(tmp_path)
    payload = _episode_payload()
    bad = [payload, auth.Keyring(OTHER).sign(payload, auth.EPISODE),
           auth.Keyring(KEY).sign(payload, auth.POLICY),
           auth.Keyring(KEY).sign(payload, auth.EPISODE)[:-3]]
    assert all(core.offer(b).startswith('rejected: not from an actor') for b in bad)
    c = core.counters
    assert (c.received, c.rejected, c.unauthenticated) == (4, 4, 4)
    assert core.progress()['unauthenticated'] == 4 and core.learner.pending == []
    assert [kind for kind, _ in warned] == ['auth'] * 4  # throttled by kind in the node
    assert core.offer(auth.Keyring(KEY).sign(payload, auth.EPISODE)) == 'queued'


def test_the_learners_policies_are_signed_and_stamped_with_its_start(tmp_path):
    core, _ = _core(tmp_path)
    blob = core.policy_blob()
    payload = auth.Keyring(KEY).open(blob, auth.POLICY)
    info = wire.decode_policy(payload, OBS, ACT)[2]
    assert info['epoch'] == core.learner.epoch > 0


def test_replayed_episodes_are_learned_once_even_across_a_resume(tmp_path):
    ring = auth.Keyring(KEY)
    blobs = [ring.sign(_episode_payload(s), auth.EPISODE) for s in range(3)]
    core, _ = _core(tmp_path)
    assert [core.offer(b) for b in blobs[:2]] == ['queued', 'queued']
    assert core.offer(blobs[0]) == 'duplicate'  # the same session
    core.update()
    core.save()
    resumed, _ = _core(tmp_path, resume=str(tmp_path / 'ck'))
    assert resumed.agent.version == 1  # version-0 episodes are fresh enough to learn from
    assert [resumed.offer(b) for b in blobs] == ['duplicate', 'duplicate', 'queued']
    assert resumed.counters.duplicates == 2


def test_a_stored_episode_altered_on_disk_is_refused(tmp_path):
    from trpo_robot.store import EpisodeStore
    store = EpisodeStore(tmp_path / 'episodes')
    ring = auth.Keyring(KEY)
    good = ring.sign(_episode_payload(0), auth.EPISODE)
    forged = bytearray(ring.sign(_episode_payload(1), auth.EPISODE))
    forged[-10] ^= 0x40
    store.write(good, actor='/a', sequence=0)
    store.write(bytes(forged), actor='/a', sequence=1)
    core, _ = _core(tmp_path)
    assert core.feed_stored(store) == 2
    assert core.counters.unauthenticated == 1 and len(core.learner.pending) == 1
