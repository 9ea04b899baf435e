"""Episodes on disk as MCAP: what is read back is exactly what was sent."""
import os

import numpy as np
import pytest
from mcap.reader import make_reader

from trpo_robot.store import DATATYPE, EpisodeStore, StoreError
from trpo_robot.trpo import wire
from trpo_robot.trpo.episode import Episode, Segment


def _blob(seq, n=20):
    rng = np.random.default_rng(seq)
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    seg = Segment(obs, obs, rng.standard_normal((n, 2)).astype(np.float32),
                  rng.standard_normal(n).astype(np.float32), np.zeros(n, np.float32),
                  obs[-1], False, 3)
    return wire.encode_episode(Episode.of(seg, robot='ur5', actor='/arm1', sequence=seq))


def test_files_read_back_equal_to_the_episodes_sent(tmp_path):
    store = EpisodeStore(tmp_path)
    blobs = {seq: _blob(seq) for seq in range(5)}
    for seq, blob in blobs.items():
        store.write(blob, actor='/arm1', sequence=seq)
    for folder, seq, path in store.episodes():
        assert folder == 'arm1'
        assert store.read(path) == blobs[seq]
        segment, info = wire.decode_episode(store.read(path), 4, 2)
        assert info['sequence'] == seq


def test_files_are_standard_ros2_mcap(tmp_path):
    path = EpisodeStore(tmp_path).write(_blob(0), actor='/arm1', sequence=0)
    with open(path, 'rb') as f:
        reader = make_reader(f)
        header = reader.get_header()
        summary = reader.get_summary()
    assert header.profile == 'ros2'
    (schema,) = summary.schemas.values()
    (channel,) = summary.channels.values()
    assert schema.name == DATATYPE and schema.encoding == 'ros2msg'
    assert channel.topic == '/arm1/episodes' and channel.message_encoding == 'cdr'


def test_an_episode_is_never_overwritten(tmp_path):
    store = EpisodeStore(tmp_path)
    first = _blob(1)
    store.write(first, actor='/arm1', sequence=1)
    with pytest.raises(StoreError, match='was written'):
        store.write(_blob(2), actor='/arm1', sequence=1)
    assert store.read(store.path('/arm1', 1)) == first


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = EpisodeStore(tmp_path)

    def broken_fsync(fd):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError):
        store.write(_blob(0), actor='/arm1', sequence=0)
    assert list((tmp_path / 'arm1').iterdir()) == []


def test_damaged_file_is_reported(tmp_path):
    store = EpisodeStore(tmp_path)
    path = store.write(_blob(0), actor='/arm1', sequence=0)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(StoreError, match='not a readable MCAP'):
        store.read(path)


def test_unconsumed_and_next_sequence(tmp_path):
    store = EpisodeStore(tmp_path)
    for seq in range(4):
        store.write(_blob(seq), actor='/arm1', sequence=seq)
    store.write(_blob(9), actor='/arm2', sequence=0)
    left = [(a, s) for a, s, _ in store.unconsumed({'/arm1': 1})]
    assert left == [('arm1', 2), ('arm1', 3), ('arm2', 0)]
    assert store.next_sequence('/arm1') == 4 and store.next_sequence('/arm3') == 0
