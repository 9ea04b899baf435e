"""A freedrive reset over ROS with real processes: the actor on the UR5 twin, speaking the
UR driver's freedrive_mode_controller interface (std_msgs/Bool keep-alives), the twin's
teleport topic standing in for the operator's hand."""
import time

import numpy as np
import pytest
from ros_support import actor_state, call_trigger, Graph, wait_actor_state
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from trpo_robot.ros import node_utils as U

pytestmark = pytest.mark.timeout(180)
FREEDRIVE = '/freedrive_mode_controller/enable_freedrive_mode'


@pytest.fixture
def graph(tmp_path):
    g = Graph(tmp_path / 'graph', robot='ur5', nodes=('twin_node', 'guard_node', 'actor_node'),
              robot_params={'reset_mode': 'freedrive', 'diagnostics_period': 0.25})
    try:
        g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
        g.probe.listen('cmd', Float64MultiArray, '/forward_velocity_controller/commands',
                       U.QOS_STATE_SUB)
        g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        g.probe.listen('freedrive', Bool, FREEDRIVE, U.QOS_COMMAND)
        g.probe.watch('twin', '/twin_node/diagnostics')
        yield g
    finally:
        g.close()


def _twin_freedrive(g):
    values = g.probe.diag('twin', 'driver')
    return None if values is None else values['freedrive']


def _since(g, key, t):
    return [m for w, m in g.probe.got(key) if w >= t]


def _position(g):
    return np.array(g.probe.got('joints')[-1][1].position)


def _hand(g, target):
    """The operator moves the arm: teleport requests until the joints are there."""
    pub = g.probe.node.create_publisher(Float64MultiArray, '/twin_node/reset_state',
                                        U.QOS_COMMAND)
    deadline = time.monotonic() + 10
    while np.max(np.abs(_position(g) - target)) > 1e-3:
        assert time.monotonic() < deadline, f'the hand did not move the arm: {_position(g)}'
        pub.publish(Float64MultiArray(data=target.tolist()))
        time.sleep(0.3)


def test_freedrive_reset_hands_the_arm_to_the_operator_and_takes_it_back(graph):
    g = graph
    wait_actor_state(g, 'reset', 60)
    g.wait(lambda: _twin_freedrive(g) == 'True', 10, 'the twin in freedrive')
    t0 = time.monotonic() + 0.2  # a command already in flight may still land
    time.sleep(2.0)
    assert _since(g, 'cmd', t0) == [], 'a velocity command was published in freedrive'
    alive = _since(g, 'freedrive', t0)
    assert len(alive) >= 3 and all(m.data for m in alive), 'no 2 Hz keep-alive'

    start = _position(g)
    moved = start + np.array([0.0, 0.0, 0.3, 0.0, 0.0, 0.0])
    _hand(g, moved)
    time.sleep(1.0)  # let go: the arm floats where the hand left it
    np.testing.assert_allclose(_position(g), moved, atol=5e-3)
    assert actor_state(g) == 'reset' and _twin_freedrive(g) == 'True'

    assert call_trigger(g, 'reset_done').success
    wait_actor_state(g, 'ready', 15)
    g.wait(lambda: _twin_freedrive(g) == 'False', 10, 'the twin out of freedrive')
    assert g.probe.got('freedrive')[-1][1].data is False
    t1 = time.monotonic()
    time.sleep(1.0)
    held = _since(g, 'cmd', t1)
    assert held and all(not any(m.data) for m in held), 'zero commands after READY'
    np.testing.assert_allclose(_position(g), moved, atol=5e-3)  # held where it was put


def test_the_twin_leaves_freedrive_when_the_keepalive_stops(tmp_path):
    g = Graph(tmp_path / 'graph', robot='ur5', nodes=('twin_node',),
              robot_params={'real_time_factor': 4.0, 'diagnostics_period': 0.25})
    try:
        g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        g.probe.watch('twin', '/twin_node/diagnostics')
        enable = g.probe.node.create_publisher(Bool, FREEDRIVE, U.QOS_COMMAND)
        command = g.probe.node.create_publisher(
            Float64MultiArray, '/forward_velocity_controller/commands', U.QOS_COMMAND)
        g.wait(lambda: _twin_freedrive(g) == 'False' and g.probe.got('joints'), 30,
               'the twin up')
        g.wait(lambda: enable.get_subscription_count() > 0, 10, 'the twin subscribed')
        before = float(g.probe.diag('twin', 'driver')['sim_time'])
        enable.publish(Bool(data=True))  # once: no keep-alive follows
        g.wait(lambda: _twin_freedrive(g) == 'True', 10, 'the twin in freedrive')
        start = _position(g)
        for _ in range(10):  # a velocity command moves nothing: the arm is the operator's
            command.publish(Float64MultiArray(data=[0.5, 0, 0, 0, 0, 0]))
            time.sleep(0.05)
        np.testing.assert_allclose(_position(g), start, atol=5e-3)
        assert g.probe.diag('twin', 'driver')['message'] == 'freedrive'
        # 10 s of sim time after the only True (2.5 s of wall time at 4x): servos hold again
        g.wait(lambda: _twin_freedrive(g) == 'False', 20, 'freedrive timed out')
        values = g.probe.diag('twin', 'driver')
        assert values['message'] == 'holding (freedrive keep-alive timed out)', values
        # 10 s of sim time after the True, not before, give or take a diagnostics period
        assert 10.0 <= float(values['sim_time']) - before < 13.0, (before, values)
    finally:
        g.close()
