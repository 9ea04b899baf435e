"""A fleet across real processes: two twin arms, each in its namespace with its own twin,
guard and actor, feeding one learner (the graph of trpo_robot/ros/plan.py with arms=2).
Episodes of the two arms are never confused, nor are their reports on the one /diagnostics
topic; a dead arm does not stop the other or the learning, and a learner killed with
SIGKILL resumes every arm's sequence from its checkpoint, learning no episode twice.
"""
import csv
from pathlib import Path
import signal

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from ros_support import fleet_files

from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import plan
from trpo_robot.ros.monitor import Probe
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
        domain = G.free_domain_id()
        self.env = G.ros_env(domain)
        self.procs = {}
        self.probe = Probe(domain)
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
        self.probe.close()
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
    f.probe.listen('all', DiagnosticArray, U.DIAGNOSTICS, U.QOS_DIAG)
    for arm in ACTORS:
        f.probe.watch(arm)
    f.wait(lambda: _count(f, 1) >= 2 and _count(f, 2) >= 2 and f.checkpoint()[0] >= 1, 240,
           'both arms recording and a first update')
    _every_node_reports_on_one_topic_by_name(f)

    # A dead arm: its twin killed, the other arm and the learning go on.
    f.procs['/arm1/twin_node'].send(signal.SIGKILL)
    version, arm2 = f.checkpoint()[0], _count(f, 2)
    f.wait(lambda: _count(f, 2) >= arm2 + 3 and f.checkpoint()[0] > version, 180,
           'arm 2 recording and the learner updating without arm 1')
    assert f.procs['/arm1/actor_node'].alive() and f.procs['/arm2/actor_node'].alive()
    _only_the_dead_arm_says_so(f, int(_control(f, ACTORS[1])['episodes']))

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


def _control(f, actor):
    return f.probe.diag(actor, 'control') or {}


def _every_node_reports_on_one_topic_by_name(f):
    """Each node's statuses reach /diagnostics named '<its fully qualified name>: <part>'
    and about a device of its own arm (hardware_id)."""
    def names():
        return {s.name: s.hardware_id for _, m in f.probe.got('all') for s in m.status}
    nodes = set(f.specs)  # /arm1/twin_node, /arm1/command_guard, ..., /learner_node
    f.wait(lambda: nodes <= {n.split(': ')[0] for n in names()}, 60,
           f'a status from each of {sorted(nodes)} on /diagnostics')
    heard = names()
    assert all(': ' in name and heard[name] for name in heard), heard
    for arm in ('arm1', 'arm2'):
        other = 'arm2' if arm == 'arm1' else 'arm1'
        ids = {heard[n] for n in heard if n.startswith(f'/{arm}/')}
        assert ids and not any(other in i for i in ids), (arm, ids)


def _only_the_dead_arm_says_so(f, arm2_episodes):
    """Told apart by namespace on the shared topic: arm 1's actor reports its twin's
    silence and takes no step more (none can be taken without joint_states), while arm
    2's reports episode after episode."""
    f.wait(lambda: int(_control(f, ACTORS[0]).get('stalls', 0)) >= 1, 60,
           "arm 1's actor reporting its stalled driver")
    steps = _control(f, ACTORS[0])['steps']
    heard = len(f.probe.got(ACTORS[0]))
    f.wait(lambda: int(_control(f, ACTORS[1]).get('episodes', 0)) > arm2_episodes + 1, 60,
           "arm 2's actor reporting new episodes")
    f.wait(lambda: len(f.probe.got(ACTORS[0])) > heard, 30, "arm 1's actor still reporting")
    assert _control(f, ACTORS[0])['steps'] == steps


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
