"""Blobs that cross process boundaries: round trips, and every way a bad one is refused."""
import json

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from trpo_robot.trpo import wire
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.episode import Episode, Segment
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.trpo.learner import AsyncLearner

OBS, ACT = 5, 2


def _segment(n=30, version=0, seed=0, terminated=False):
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, OBS)).astype(np.float32)
    return Segment(obs, obs * 2, rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                   rng.standard_normal(n).astype(np.float32),
                   -rng.uniform(1, 3, n).astype(np.float32),
                   rng.standard_normal(OBS).astype(np.float32), terminated, version)


def test_episode_round_trip():
    seg = _segment(terminated=True, version=4)
    blob = wire.encode_episode(Episode.of(seg, robot='ur5', task='ur5_reacher_2d', actor='/a1',
                               sequence=17, extra={'reset_s': 1.5}))
    out, info = wire.decode_episode(blob, OBS, ACT)
    for name in ('obs', 'raw_obs', 'actions', 'rewards', 'logp', 'final_obs'):
        assert np.array_equal(getattr(out, name), getattr(seg, name))
    assert out.terminated and out.policy_version == 4
    assert info == {'policy_version': 4, 'sequence': 17, 'robot': 'ur5',
                    'task': 'ur5_reacher_2d', 'actor': '/a1', 'aborted': False,
                    'extra': {'reset_s': 1.5}}


def test_policy_round_trip_gives_the_same_actions():
    agent = Agent(OBS, ACT, TRPOConfig(policy_hidden=(16, 16)), seed=1)
    agent.obs_norm.update(np.random.default_rng(0).normal(3, 2, (50, OBS)))
    snap, norm, info = wire.decode_policy(
        wire.encode_policy(agent.snapshot(), agent.obs_norm, 9, robot='dxl'), OBS, ACT)
    x = np.random.default_rng(1).normal(size=OBS)
    assert np.allclose(snap.mean(norm(x)), agent.act_deterministic(x), atol=1e-6)
    assert info['policy_version'] == 9 and norm.frozen


def _tamper(blob, tensors=None, meta=None):
    """Rebuild a valid safetensors blob with some tensors or metadata changed."""
    from safetensors.numpy import load
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], 'little')])
    t = load(blob)
    t.update(tensors or {})
    m = dict(header['__metadata__'])
    m.update(meta or {})
    return st_save(t, metadata=m)


GOOD = wire.encode_episode(Episode.of(_segment(), robot='ur5'))
NAN_OBS = np.ones((30, OBS), np.float32)
NAN_OBS[3, 1] = np.nan


@pytest.mark.parametrize('blob,reason', [
    (b'', 'too short'),
    (b'\xff' * 64, 'header length'),
    (b'\x10\x00\x00\x00\x00\x00\x00\x00{not json at all', 'not a valid safetensors'),
    (b'x' * (wire.MAX_BLOB_BYTES + 1), 'exceeds the cap'),
    (_tamper(GOOD, meta={'schema': '99'}), 'schema version'),
    (_tamper(GOOD, meta={'kind': 'trpo_robot.policy'}), 'blob kind'),
    (_tamper(GOOD, tensors={'obs': NAN_OBS}), 'NaN or inf'),
    (_tamper(GOOD, tensors={'actions': np.zeros((30, ACT + 1), np.float32)}), 'shape'),
    (_tamper(GOOD, tensors={'rewards': np.zeros(30, np.float64)}), 'dtype'),
    (_tamper(GOOD, tensors={'logp': np.zeros(29, np.float32)}), 'shape'),
    (_tamper(GOOD, meta={'policy_version': 'seven'}), 'not an integer'),
    (_tamper(GOOD, meta={'terminated': 'maybe'}), 'terminated'),
])
def test_bad_episode_blobs_are_refused(blob, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_episode(blob, OBS, ACT)


def test_bad_policy_blobs_are_refused():
    agent = Agent(OBS, ACT, TRPOConfig(policy_hidden=(8,)), seed=0)
    good = wire.encode_policy(agent.snapshot(), agent.obs_norm, 1)
    with pytest.raises(wire.WireError, match='shape'):
        wire.decode_policy(good, OBS + 1, ACT)
    nan_w = np.full((OBS, 8), np.nan, np.float32)
    with pytest.raises(wire.WireError, match='NaN'):
        wire.decode_policy(_tamper(good, tensors={'layer0.weight': nan_w}), OBS, ACT)
    with pytest.raises(wire.WireError, match='unexpected tensors'):
        wire.decode_policy(_tamper(good, tensors={'extra': np.zeros(1, np.float32)}),
                           OBS, ACT)
    with pytest.raises(wire.WireError, match='variance is negative'):
        wire.decode_policy(_tamper(good, tensors={'norm_var': -np.ones(OBS)}), OBS, ACT)
    with pytest.raises(wire.WireError, match='blob kind'):
        wire.decode_policy(GOOD, OBS, ACT)
    with pytest.raises(wire.WireError, match='batch_steps'):
        wire.decode_policy(_tamper(good, meta={'batch_steps': '-5'}), OBS, ACT)


def test_a_policy_says_its_batch_and_an_older_blob_without_it_reads_as_unsaid():
    agent = Agent(OBS, ACT, TRPOConfig(policy_hidden=(8,)), seed=0)
    blob = wire.encode_policy(agent.snapshot(), agent.obs_norm, 1, batch_steps=2048)
    assert wire.decode_policy(blob, OBS, ACT)[2]['batch_steps'] == 2048
    from safetensors.numpy import load
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], 'little')])
    meta = {k: v for k, v in header['__metadata__'].items() if k != 'batch_steps'}
    older = st_save(load(blob), metadata=meta)
    assert wire.decode_policy(older, OBS, ACT)[2]['batch_steps'] == 0


def _blob(seed=0, **names):
    return wire.encode_episode(Episode.of(_segment(seed=seed), **names))


def test_learner_counts_every_blob_and_drops_stale_episodes():
    agent = Agent(OBS, ACT, TRPOConfig(batch_steps=60, max_policy_lag=1), seed=0)
    learner = AsyncLearner(agent, robot='ur5')
    assert learner.offer(b'garbage').startswith('rejected')
    assert learner.offer(wire.encode_episode(Episode.of(_segment(), robot='dxl', sequence=1))) \
        .startswith('rejected')
    assert learner.offer(_blob(robot='ur5', sequence=2)) == 'queued'
    assert learner.offer(wire.encode_episode(Episode.of(_segment(), robot='ur5', sequence=2))) \
        == 'duplicate'
    assert learner.offer(wire.encode_episode(Episode.of(_segment(), robot='ur5', sequence=3,
                                             aborted=True))) == 'aborted'
    assert not learner.ready()
    assert learner.offer(wire.encode_episode(Episode.of(_segment(seed=1), robot='ur5',
                                             sequence=4))) == 'queued'
    assert learner.ready()
    stats = learner.update()
    assert stats.version == 1 and stats.samples == 60
    agent.version = 5  # the learner moved on: version-0 episodes are now too old
    assert learner.offer(_blob(robot='ur5', sequence=5)) == 'stale'
    c = learner.counters
    assert (c.received, c.rejected, c.duplicates, c.aborted, c.stale, c.consumed) == \
        (7, 2, 1, 1, 1, 2)
    assert learner.consumed_ids == {'': 4}
    snap, _, info = wire.decode_policy(learner.policy_blob(), OBS, ACT)
    assert info['policy_version'] == 5
