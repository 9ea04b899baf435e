"""An intruder on the ROS domain, across real processes: forged, unsigned and replayed
blobs on /policy and on the episode topic are refused and counted, and the graph goes on
learning as if they had never been sent.
"""
import pytest
from ros_support import Graph
from std_msgs.msg import UInt8MultiArray

from trpo_robot import auth
from trpo_robot.ros import node_utils as U
from trpo_robot.trpo import wire

pytestmark = pytest.mark.timeout(360)
OBS, ACT = 12, 2
INTRUDER_KEY = b'not the fleet key, but 32 bytes.'


@pytest.fixture
def graph(tmp_path):
    g = Graph(tmp_path, robot_params={'real_time_factor': 2.0},
              learner_params={'trpo.batch_steps': 150})
    yield g
    g.close()


def _value(g, key, status, field):
    values = g.probe.diag(key, status)
    return int(float(values[field])) if values and field in values else -1


def _version(blob):
    return wire.decode_policy(blob, OBS, ACT)[2]['policy_version']


def test_forged_unsigned_and_replayed_blobs_are_refused_and_the_graph_goes_on(graph):
    g = graph
    g.probe.listen('policies', UInt8MultiArray, '/policy', U.QOS_POLICY)
    g.probe.listen('episodes', UInt8MultiArray, '/actor_node/episodes', U.qos_episodes(32))
    for key in ('actor', 'learner'):
        g.probe.watch(key, f'{key}_node')
    g.wait(lambda: g.probe.got('policies') and g.probe.got('episodes'), 150,
           'a policy and an episode on the topics')
    old = bytes(g.probe.got('policies')[0][1].data)
    g.wait(lambda: _value(g, 'actor', 'policy', 'version') > _version(old), 90,
           f'the actor on a version after {_version(old)}')
    to_actor = g.probe.node.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)
    to_learner = g.probe.node.create_publisher(UInt8MultiArray, '/actor_node/episodes',
                                               U.qos_episodes(32))
    g.wait(lambda: to_actor.get_subscription_count() and to_learner.get_subscription_count(),
           20, 'the intruder publishers to match')

    payload = auth.payload(old)  # a real policy of this run, without its signature
    forged = auth.Keyring(INTRUDER_KEY).sign(payload, auth.POLICY)
    for n, blob in enumerate((payload, forged), 1):
        to_actor.publish(U.blob_msg(blob))  # one at a time: the reader keeps depth 1
        g.wait(lambda: _value(g, 'actor', 'policy', 'unauthenticated') == n, 30,
               f'the actor to refuse intruder policy {n}')
    to_actor.publish(U.blob_msg(old))  # signed by the learner, but superseded
    g.wait(lambda: _value(g, 'actor', 'policy', 'replays') == 1, 30,
           'the actor to refuse the replayed version')
    assert _value(g, 'actor', 'policy', 'version') > _version(old)

    episode = bytes(g.probe.got('episodes')[0][1].data)
    duplicates = _value(g, 'learner', 'progress', 'duplicates')
    for blob in (auth.payload(episode), auth.Keyring(INTRUDER_KEY).sign(
            auth.payload(episode), auth.EPISODE), episode):
        to_learner.publish(U.blob_msg(blob))
    g.wait(lambda: _value(g, 'learner', 'progress', 'unauthenticated') == 2, 30,
           'the learner to refuse the unsigned and the forged episode')
    g.wait(lambda: _value(g, 'learner', 'progress', 'duplicates') > duplicates, 30,
           'the learner to drop the replayed episode as a duplicate')

    # ... and learning goes on: a newer version reaches the actor, which acts on it.
    version = _value(g, 'learner', 'progress', 'version')
    episodes = _value(g, 'actor', 'control', 'episodes')
    g.wait(lambda: _value(g, 'actor', 'policy', 'version') > version, 90,
           'a version after the intruder reaching the actor')
    g.wait(lambda: _value(g, 'actor', 'control', 'episodes') >= episodes + 2, 30,
           'more episodes after the intruder')
    assert _value(g, 'actor', 'policy', 'rejected') == 3  # nothing of the learner's refused
    assert _value(g, 'actor', 'control', 'aborted') == 0
    assert all(p.alive() for p in g.procs.values())
