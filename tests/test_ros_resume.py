"""Nothing lost: kill -9 the learner (or the actor) mid-run and account for every episode.

Real processes on the Dynamixel twin. The actor writes every episode to its MCAP store
before it publishes it; the learner's checkpoints record what they consumed; a resumed
learner continues the policy version and step count and learns from the recorded episodes
its checkpoint had not consumed, each once.
"""
import signal

import pytest
from ros_support import Graph
from std_msgs.msg import UInt8MultiArray

from trpo_robot.ros import node_utils as U
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import checkpoint, wire

pytestmark = pytest.mark.timeout(1200)
OBS, ACT = 12, 2
ACTOR = '/actor_node'


def _value(g, key, status, field, default=-1):
    values = g.probe.diag(key, status)
    return int(float(values[field])) if values and field in values else default


def _start(folder, store_dir, ck_dir, **learner):
    g = Graph(folder, robot_params={'real_time_factor': 4.0, 'episode_dir': str(store_dir)},
              learner_params={'trpo.batch_steps': 150, 'checkpoint_every': 1,
                              'checkpoint_dir': str(ck_dir), **learner})
    g.probe.listen('episodes', UInt8MultiArray, '/actor_node/episodes', U.qos_episodes(32))
    g.probe.watch('actor', 'actor_node')
    g.probe.watch('learner', 'learner_node')
    return g


def _sent(g):
    return [bytes(m.data) for _, m in g.probe.got('episodes')]


def test_kill_9_the_learner_then_resume_loses_nothing_and_uses_nothing_twice(tmp_path):
    store_dir, ck_dir = tmp_path / 'episodes', tmp_path / 'checkpoint'
    store = EpisodeStore(store_dir)
    g = _start(tmp_path / 'run1', store_dir, ck_dir)
    try:
        g.wait(lambda: _value(g, 'learner', 'progress', 'version') >= 3, 300,
               'learner version 3')
        g.kill('learner_node', signal.SIGKILL)
        episodes = _value(g, 'actor', 'control', 'episodes')
        g.wait(lambda: _value(g, 'actor', 'control', 'episodes') >= episodes + 3, 120,
               'episodes acted after the learner died')
        sent1 = _sent(g)
    finally:
        g.close()
    meta = checkpoint.read_meta(ck_dir)
    version1, steps1 = meta['policy_version'], meta['total_steps']
    consumed1 = meta['extra']['consumed'][ACTOR]
    seqs1 = [s for _, s, _ in store.episodes()]
    assert seqs1 == list(range(len(seqs1))), 'a sequence number was not recorded'
    pending = [s for _, s, _ in store.unconsumed(meta['extra']['consumed'])]
    assert len(pending) >= 3 and pending[0] == consumed1 + 1

    g = _start(tmp_path / 'run2', store_dir, ck_dir, resume=str(ck_dir))
    try:
        g.wait(lambda: _value(g, 'learner', 'progress', 'version') >= version1 + 2, 300,
               'two updates after the resume')
        progress = g.probe.diag('learner', 'progress')
        assert int(progress['resumed_fed']) == len(pending)
        assert int(progress['duplicates']) == 0
        seen = [int(float(v['version'])) for v in _diag_history(g, 'learner', 'progress')]
        assert min(seen) >= version1, 'the policy version went back'
        g.heard('episodes')  # at least one, to compare with its file below
        sent2 = _sent(g)
        started = g.procs['actor_node'].log_path.read_text()
    finally:
        g.close()
    # The actor went on from the store's next sequence (its start-up log says where), and
    # everything the probe heard after the resume is past the first run's.
    assert f'(from sequence {len(seqs1)})' in started, started
    infos2 = [wire.decode_episode(b, OBS, ACT)[1] for b in sent2]
    assert min(i['sequence'] for i in infos2) >= len(seqs1), 'the episode sequence restarted'
    assert {i['actor'] for i in infos2} == {ACTOR}

    # Every stored episode once, in sequence; each one the probe heard equals its file.
    stored = store.episodes()
    assert [s for _, s, _ in stored] == list(range(len(stored)))
    for blob in sent1 + sent2:
        info = wire.decode_episode(blob, OBS, ACT)[1]
        assert store.read(store.path(info['actor'], info['sequence'])) == blob
    final = checkpoint.read_meta(ck_dir)
    assert final['policy_version'] > version1 and final['total_steps'] > steps1
    consumed2 = final['extra']['consumed'][ACTOR]
    assert consumed2 > pending[-1], 'the recorded episodes were not learned from'
    # Steps learned after the resume are exactly those of the episodes consumed after it.
    learned = 0
    for _, seq, path in stored:
        if consumed1 < seq <= consumed2:
            segment, info = wire.decode_episode(store.read(path), OBS, ACT)
            learned += 0 if info['aborted'] else len(segment)
    if final['extra']['counters']['stale'] == 0:
        assert final['total_steps'] - steps1 == learned
    else:
        assert final['total_steps'] - steps1 <= learned


def test_kill_9_the_actor_the_guard_stops_the_arm_and_a_new_actor_continues(tmp_path):
    store_dir, ck_dir = tmp_path / 'episodes', tmp_path / 'checkpoint'
    store = EpisodeStore(store_dir)
    g = _start(tmp_path / 'run', store_dir, ck_dir)
    g.probe.watch('guard', 'command_guard')
    try:
        g.wait(lambda: _value(g, 'learner', 'progress', 'version') >= 2, 300,
               'learner version 2')
        stops = g.wait(lambda: _value(g, 'guard', 'guard', 'stops') + 1, 30,
                       "the guard's diagnostics") - 1
        g.kill('actor_node', signal.SIGKILL)
        g.wait(lambda: _value(g, 'guard', 'guard', 'stops') > stops, 60,
               'the command guard stopping the arm')
        before = [s for _, s, _ in store.episodes()]
        version = _value(g, 'learner', 'progress', 'version')
        g.start('actor_node')
        g.wait(lambda: _value(g, 'learner', 'progress', 'version') >= version + 2, 300,
               'two updates from the new actor')
        progress = g.probe.diag('learner', 'progress')
        sent = _sent(g)
        started = g.procs['actor_node'].log_path.read_text()
    finally:
        g.close()
    # The new actor's first episodes go out before the probe (a new participant to it) is
    # matched with its publisher, so what it acted is read from the store, where every
    # episode is written before it is sent; the probe's share is checked against its file.
    stored = [s for _, s, _ in store.episodes()]
    assert stored == list(range(len(stored))), 'a sequence number was skipped'
    first = max(before, default=-1) + 1
    assert f'(from sequence {first})' in started, started
    assert [s for s in stored if s >= first], 'the new actor recorded nothing'
    for blob in sent:
        info = wire.decode_episode(blob, OBS, ACT)[1]
        assert store.read(store.path(info['actor'], info['sequence'])) == blob
    # Whatever the dead actor recorded but never sent was read from the store.
    assert int(progress['missing']) == 0 and int(progress['duplicates']) == 0


def _diag_history(g, key, status):
    out = []
    for item in g.probe.got(key):
        for name, values in U.diag_dict(item[1]).items():
            if name.endswith(': ' + status):
                out.append(values)
    return out
