"""A fleet across real processes: two twin arms, each in its namespace with its own twin,
guard and actor, feeding one learner (the graph of trpo_robot/ros/plan.py with arms=2).
Episodes of the two arms are never confused, a dead arm does not stop the other or the
learning, and a learner killed with SIGKILL resumes every arm's sequence from its
checkpoint, learning no episode twice.
"""
import csv
from pathlib import Path
import signal

import pytest
from ros_support import fleet_files

from trpo_robot.ros import graph as G
from trpo_robot.ros import plan
from trpo_robot.ros.params import task_dims
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import checkpoint as ck
from trpo_robot.trpo import wire

pytestmark = pytest.mark.timeout(420)
ACTORS = ('/arm1/actor_node', '/arm2/actor_node')


class Fleet:
    """The planned processes, startable one by one (a supervisor's view)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.rp, self.lp, robot_yaml, learner_yaml = fleet_files(
            folder, episode_dir=str(self.folder / 'episodes'))
        self.specs = {s.fqn: s for s in plan.learning_graph(robot_yaml, learner_yaml, arms=2)}
        self.env = G.ros_env(G.free_domain_id())
        self.procs = {}
        try:
            for fqn in self.specs:
                self.start(fqn)
        except BaseException:
            self.close()
            raise

    def start(self, fqn, **params):
        s = self.specs[fqn]
        self.procs[fqn] = G.NodeProcess.from_spec(
            s, self.env, self.folder / 'logs' / (s.namespace or '.'), params=params)

    def wait(self, predicate, timeout, what):
        try:
            return G.wait_for(predicate, timeout, 0.2, what)
        except TimeoutError as e:
            tails = '\n'.join(f'--- {k} (alive {p.alive()}):\n{p.tail(12)}'
                              for k, p in self.procs.items())
            raise AssertionError(f'{e}; recorded {self.recorded()}, checkpoint '
                                 f'{self.checkpoint()}\n{tails}') from None

    def recorded(self):
        """Episodes in the store per actor folder."""
        counts = {}
        for folder, _, _ in EpisodeStore(self.rp.episode_dir).episodes():
            counts[folder] = counts.get(folder, 0) + 1
        return counts

    def checkpoint(self):
        try:
            meta = ck.read_meta(self.lp.checkpoint_dir)
        except ck.CheckpointError:
            return -1, {}
        return meta['policy_version'], meta.get('extra', {}).get('consumed', {})

    def close(self):
        G.stop_all(plan.stop_order(list(self.procs.values())), timeout=15.0)


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    yield f
    f.close()


def _count(fleet, arm):
    return fleet.recorded().get(f'arm{arm}__actor_node', 0)


def test_two_arms_feed_one_learner_and_survive_a_dead_arm_and_a_killed_learner(fleet):
    f = fleet
    f.wait(lambda: _count(f, 1) >= 2 and _count(f, 2) >= 2 and f.checkpoint()[0] >= 1, 240,
           'both arms recording and a first update')

    # A dead arm: its twin killed, the other arm and the learning go on.
    f.procs['/arm1/twin_node'].send(signal.SIGKILL)
    version, arm2 = f.checkpoint()[0], _count(f, 2)
    f.wait(lambda: _count(f, 2) >= arm2 + 3 and f.checkpoint()[0] > version, 180,
           'arm 2 recording and the learner updating without arm 1')
    assert f.procs['/arm1/actor_node'].alive() and f.procs['/arm2/actor_node'].alive()

    # A learner killed outright resumes both arms' sequences from its checkpoint.
    f.procs['/learner_node'].send(signal.SIGKILL)
    f.procs['/learner_node'].proc.wait(10)
    version, consumed = f.checkpoint()
    assert set(consumed) == set(ACTORS), consumed
    f.start('/learner_node', resume=f.lp.checkpoint_dir)
    f.wait(lambda: f.checkpoint()[0] > version, 180, 'an update after the restart')
    after = f.checkpoint()[1]
    assert after['/arm2/actor_node'] > consumed['/arm2/actor_node']
    assert after['/arm1/actor_node'] >= consumed['/arm1/actor_node']

    _each_episode_is_its_own_arms(f)
    _no_episode_learned_twice(f)


def _each_episode_is_its_own_arms(f):
    dims = task_dims(f.rp.task_spec())
    store = EpisodeStore(f.rp.episode_dir)
    seen = {}
    for folder, seq, path in store.episodes():
        info = wire.decode_episode(store.read(path), *dims)[1]
        assert folder == info['actor'].strip('/').replace('/', '__'), (folder, info)
        assert info['sequence'] == seq
        seen.setdefault(info['actor'], []).append(seq)
    assert set(seen) == set(ACTORS)
    for actor, seqs in seen.items():  # each arm numbers its own episodes from 0, no gaps
        assert seqs == list(range(len(seqs))), (actor, seqs)


def _no_episode_learned_twice(f):
    with open(Path(f.lp.log_dir) / 'ledger.csv', newline='') as file:
        rows = list(csv.DictReader(file))
    learned = [(r['actor'], int(r['sequence'])) for r in rows if r['event'] == 'learned']
    assert {a for a, _ in learned} == set(ACTORS)
    assert len(learned) == len(set(learned)), 'an episode learned twice'
    assert [r['event'] for r in rows].count('resumed') == 1
