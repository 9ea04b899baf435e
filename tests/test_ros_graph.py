"""The ROS graph across real processes on loopback: twin_node, actor_node, learner_node.

Each test brings up its own graph on a fresh ROS domain (localhost-only discovery) on the
Dynamixel twin, which has the shortest episodes (2 s), sped up by the real-time factor.
"""
import signal

import numpy as np
import pytest
from ros_support import Graph
from std_msgs.msg import Float64MultiArray, UInt8MultiArray

from trpo_robot import auth
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.actor_node import SWAP_FIELDS
from trpo_robot.trpo import wire
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.episode import Episode, Segment
from trpo_robot.trpo.config import TRPOConfig

pytestmark = pytest.mark.timeout(900)
OBS, ACT = 12, 2
FAST_LEARNER = {'trpo.batch_steps': 150}  # three 50-step episodes per update


@pytest.fixture
def make_graph(tmp_path):
    graphs = []

    def make(**kwargs):
        graphs.append(Graph(tmp_path / f'graph{len(graphs)}', **kwargs))
        return graphs[-1]
    yield make
    for g in graphs:
        g.close()


def _watch(g, *keys):
    for key in keys:
        g.probe.watch(key, f'{key}_node')


def _value(g, key, status, field, cast=float, default=-1):
    values = g.probe.diag(key, status)
    return cast(values[field]) if values and field in values else default


def _episodes_then(g, n):
    return g.wait(lambda: _value(g, 'actor', 'control', 'episodes', int) >= n, 120,
                  f'{n} episodes from the actor')


def test_weights_reach_the_actor_and_swap_between_episodes(make_graph):
    """Where and in what order swaps happen; how late the loop ran around them (missed
    ticks) is timing, measured by bench/ros_swap.py."""
    g = make_graph(robot_params={'real_time_factor': 2.0}, learner_params=FAST_LEARNER)
    g.probe.listen('swaps', Float64MultiArray, '/actor_node/swaps', U.QOS_DIAG)
    g.probe.listen('episodes', UInt8MultiArray, '/actor_node/episodes', U.qos_episodes(32))
    _watch(g, 'actor')

    def swaps():
        return [dict(zip(SWAP_FIELDS, m.data)) for _, m in g.probe.got('swaps')]
    g.wait(lambda: [s for s in swaps() if s['version'] >= 3], 300, 'policy version 3 swapped in')
    events = swaps()  # the probe may have joined after the swap to version 0
    assert [(s['previous'], s['version']) for s in events] == [
        (v - 1, v) for v in range(int(events[0]['version']), int(events[-1]['version']) + 1)]
    assert all(s['step_in_episode'] == 0 for s in events), 'swapped inside an episode'
    for s in events:  # built in the subscription thread, before the control thread took it
        assert s['received'] <= s['built'] <= s['swapped'] <= s['first_action']
    versions = [wire.decode_episode(bytes(m.data), OBS, ACT)[0].policy_version
                for _, m in g.probe.got('episodes')]
    # Episodes come from the version in place when the probe joined, or from a swapped one.
    acted = {int(events[0]['previous'])} | {int(s['version']) for s in events}
    assert versions == sorted(versions) and set(versions) <= acted, (versions, acted)


NODE_READS = {'twin_node': '/forward_velocity_controller/commands',
              'command_guard': '/joint_states', 'actor_node': '/joint_states',
              'learner_node': '/actor_node/episodes'}
"""A topic each node subscribes once it is up: when the probe lists it, the node's newest
entity list has been heard, and a /clock subscription would be listed beside it."""


def test_no_node_subscribes_the_twins_clock_it_is_handed_use_sim_time_for(make_graph):
    """The graph hands every node use_sim_time, as launch files do, yet none reads /clock:
    the twin publishes it on every driver tick, and a subscription there is a Python
    wake-up and the GIL per tick (at 4x on a UR5 twin, half a core of twin and guard)."""
    g = make_graph()
    assert g.rp.sim_clock  # so every node is handed use_sim_time true
    node = g.probe.node

    def subscriptions():
        return {name: {t for t, _ in node.get_subscriber_names_and_types_by_node(name, '/')}
                for name, ns in node.get_node_names_and_namespaces() if name in NODE_READS}

    def every_node_up():
        subs = subscriptions()
        return subs if all(NODE_READS[n] in subs.get(n, ()) for n in NODE_READS) else None
    subs = g.wait(every_node_up, 120, lambda: f'every node up; subscriptions {subscriptions()}')
    assert node.count_publishers('/clock') == 1  # the twin keeps sim time for the others
    assert {n for n, topics in subs.items() if '/clock' in topics} == set(), subs


def _policy_blob(version, obs=OBS, nan=False):
    agent = Agent(obs, ACT, TRPOConfig(), seed=5)
    snap = agent.snapshot()
    if nan:
        snap.layers[0][0][0, 0] = np.nan
    # Signed with the fleet key (the session's, tests/conftest.py): the nodes' own checks
    # behind the signature are what this exercises; test_ros_auth.py the signature.
    return auth.Keyring.from_file().sign(
        wire.encode_policy(snap, agent.obs_norm, version, robot='dxl', task='dxl_reacher'),
        auth.POLICY)


def _episode_blob(obs=OBS, nan=False, seq=0):
    n = 50
    rng = np.random.default_rng(seq)
    o = rng.standard_normal((n, obs)).astype(np.float32)
    rewards = np.zeros(n, np.float32)
    if nan:
        rewards[7] = np.nan
    seg = Segment(o, o, np.zeros((n, ACT), np.float32), rewards, np.zeros(n, np.float32),
                  o[0], False, 0)
    return auth.Keyring.from_file().sign(
        wire.encode_episode(Episode.of(seg, robot='dxl', task='dxl_reacher', actor='/intruder',
                            sequence=seq)), auth.EPISODE)


def test_bad_blobs_on_both_topics_are_rejected_counted_and_survived(make_graph):
    cap = 64 * 1024
    g = make_graph(robot_params={'real_time_factor': 2.0, 'max_policy_bytes': cap},
                   learner_params={**FAST_LEARNER, 'max_episode_bytes': cap})
    _watch(g, 'actor', 'learner')
    _episodes_then(g, 1)
    to_actor = g.probe.node.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)
    to_learner = g.probe.node.create_publisher(UInt8MultiArray, '/actor_node/episodes',
                                               U.qos_episodes(32))
    g.wait(lambda: to_actor.get_subscription_count() and to_learner.get_subscription_count(),
           60, 'the probe publishers to match')
    good = _policy_blob(0)
    bad_policies = [b'\x01\x02garbage', good[:len(good) // 2], _policy_blob(7, nan=True),
                    _policy_blob(7, obs=OBS + 3), bytes(cap + 1), _episode_blob()]
    bad_episodes = [b'\x00' * 100, _episode_blob(nan=True, seq=1),
                    _episode_blob(obs=OBS + 1, seq=2), bytes(cap + 1), good]
    for blob in bad_episodes:
        to_learner.publish(U.blob_msg(blob))
    for n, blob in enumerate(bad_policies, 1):
        # One at a time: a depth-1 topic keeps only the newest sample for a reader.
        to_actor.publish(U.blob_msg(blob))
        g.wait(lambda: _value(g, 'actor', 'policy', 'rejected', int) == n, 60,
               f'the actor to reject bad policy {n}')
    g.wait(lambda: _value(g, 'learner', 'progress', 'rejected', int) == len(bad_episodes), 60,
           'the learner to reject every bad episode')
    version = _value(g, 'actor', 'policy', 'version', int)
    episodes = _value(g, 'actor', 'control', 'episodes', int)
    # ... and both keep working: the learner updates, the actor acts on its policies.
    g.wait(lambda: _value(g, 'learner', 'progress', 'version', int) >= version + 1, 300,
           'a learner update after the bad blobs')
    g.wait(lambda: _value(g, 'actor', 'control', 'episodes', int) >= episodes + 2, 120,
           'more episodes after the bad blobs')
    assert all(p.alive() for p in g.procs.values())
    assert _value(g, 'actor', 'policy', 'accepted', int) >= 1
    assert _value(g, 'actor', 'control', 'aborted', int) == 0


def test_killed_learner_leaves_the_actor_acting_on_the_last_policy(make_graph):
    g = make_graph(robot_params={'real_time_factor': 4.0, 'learner_timeout': 60.0},
                   learner_params=FAST_LEARNER)
    _watch(g, 'actor')
    g.wait(lambda: _value(g, 'actor', 'policy', 'version', int) >= 2, 300, 'policy version 2')
    g.wait(lambda: g.probe.diag('actor', 'policy')['learner'] == 'alive', 120,
           'the actor to call the learner alive')
    g.kill('learner_node', signal.SIGKILL)
    g.wait(lambda: (g.probe.diag('actor', 'policy') or {}).get('learner') == 'stale', 120,
           'the actor to call the learner stale')
    policy = g.probe.diag('actor', 'policy')
    version = int(policy['version'])
    assert f'acting on version {version}' in policy['message']
    assert policy['level'] == U.WARN[0]
    episodes = _value(g, 'actor', 'control', 'episodes', int)
    g.wait(lambda: _value(g, 'actor', 'control', 'episodes', int) >= episodes + 3, 120,
           'episodes after the learner died')
    assert _value(g, 'actor', 'policy', 'version', int) == version
    assert g.procs['actor_node'].alive() and g.procs['twin_node'].alive()
