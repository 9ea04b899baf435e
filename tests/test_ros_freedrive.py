"""A freedrive reset over ROS with real processes: the actor on the Dynamixel twin (torque
off), speaking the freedrive_mode_controller interface (std_msgs/Bool keep-alives), the
twin's teleport topic standing in for the operator's hand. On the UR twin, as on the UR
driver, freedrive is refused while the velocity controller is active."""
import time

import numpy as np
import pytest
from ros_support import actor_state, call_trigger, Graph, wait_actor_state
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from trpo_robot.ros import node_utils as U

pytestmark = pytest.mark.timeout(600)
FREEDRIVE = '/freedrive_mode_controller/enable_freedrive_mode'


@pytest.fixture
def graph(tmp_path):
    g = Graph(tmp_path / 'graph', robot='dxl', nodes=('twin_node', 'guard_node', 'actor_node'),
              robot_params={'reset_mode': 'freedrive', 'diagnostics_period': 0.25})
    try:
        g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
        g.probe.listen('cmd', Float64MultiArray, '/forward_velocity_controller/commands',
                       U.QOS_STATE_SUB)
        g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        g.probe.listen('freedrive', Bool, FREEDRIVE, U.QOS_COMMAND)
        g.probe.watch('twin', 'twin_node')
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


def _stamp(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _after(g, sim_seconds):
    """Until joint_states stamped `sim_seconds` of robot time after the newest one now have
    arrived: the arm has been left alone that long. Their newest position."""
    t = _stamp(g.probe.got('joints')[-1][1]) + sim_seconds
    g.wait(lambda: _stamp(g.probe.got('joints')[-1][1]) >= t, 60,
           f'joint_states {sim_seconds} s of robot time later')
    return _position(g)


def _hand(g, target):
    """The operator moves the arm: teleport requests until the joints are there."""
    pub = g.probe.node.create_publisher(Float64MultiArray, '/twin_node/reset_state',
                                        U.QOS_COMMAND)
    g.wait(lambda: pub.get_subscription_count() > 0, 60, 'the twin matched on reset_state')

    def there():
        if np.max(np.abs(_position(g) - target)) <= 1e-3:
            return True
        pub.publish(Float64MultiArray(data=target.tolist()))
        return False
    g.wait(there, 60, lambda: f'the hand to move the arm (at {_position(g)})')


def test_freedrive_reset_hands_the_arm_to_the_operator_and_takes_it_back(graph):
    g = graph
    g.matched('cmd', 'joints', 'freedrive')
    g.heard('joints')
    wait_actor_state(g, 'reset', 120)
    g.wait(lambda: _twin_freedrive(g) == 'True', 60, 'the twin in freedrive')
    # From the second keep-alive on, any velocity command heard was sent in freedrive.
    t0 = g.heard('freedrive', 2)[1][0]
    alive = g.heard('freedrive', 3, since=t0)
    assert all(m.data for _, m in alive), 'a keep-alive said False during the reset'
    assert _since(g, 'cmd', t0) == [], 'a velocity command was published in freedrive'

    start = _position(g)
    moved = start + np.array([0.0, 0.0, 0.3])
    _hand(g, moved)
    # let go: the arm floats where the hand left it
    np.testing.assert_allclose(_after(g, 1.0), moved, atol=5e-3)
    assert actor_state(g) == 'reset' and _twin_freedrive(g) == 'True'

    assert call_trigger(g, 'reset_done').success
    wait_actor_state(g, 'ready', 60)
    g.wait(lambda: _twin_freedrive(g) == 'False', 60, 'the twin out of freedrive')
    assert g.probe.got('freedrive')[-1][1].data is False
    t1 = time.monotonic()
    held = [m for _, m in g.heard('cmd', 20, since=t1)]
    assert all(not any(m.data) for m in held), 'zero commands after READY'
    np.testing.assert_allclose(_position(g), moved, atol=5e-3)  # held where it was put


def _driver_history(g):
    """(sim_time, freedrive, message) of every twin diagnostics message heard."""
    out = []
    for _, msg in g.probe.got('twin'):
        for name, values in U.diag_dict(msg).items():
            if name.endswith(': driver'):
                out.append((float(values['sim_time']), values['freedrive'] == 'True',
                            values['message']))
    return out


def test_the_twin_leaves_freedrive_when_the_keepalive_stops(tmp_path):
    g = Graph(tmp_path / 'graph', robot='ur5', nodes=('twin_node',),
              robot_params={'real_time_factor': 4.0, 'diagnostics_period': 0.25})
    try:
        g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        g.probe.watch('twin', 'twin_node')
        enable = g.probe.node.create_publisher(Bool, FREEDRIVE, U.QOS_COMMAND)
        command = g.probe.node.create_publisher(
            Float64MultiArray, '/forward_velocity_controller/commands', U.QOS_COMMAND)
        g.wait(lambda: _twin_freedrive(g) == 'False' and g.probe.got('joints'), 120,
               'the twin up')
        g.wait(lambda: enable.get_subscription_count() > 0 and
               command.get_subscription_count() > 0, 60, 'the twin subscribed')
        # The driver runs one motion controller at a time: refused while the velocity
        # controller is active, accepted once an operator has switched it off.
        enable.publish(Bool(data=True))
        g.wait(lambda: g.probe.diag('twin', 'driver')['refused_freedrive'] != '0', 60,
               'the twin refusing freedrive')
        assert _twin_freedrive(g) == 'False'
        assert call_trigger(g, 'deactivate_controller', node='/twin_node').success
        before = float(g.probe.diag('twin', 'driver')['sim_time'])
        enable.publish(Bool(data=True))  # once: no keep-alive follows
        g.wait(lambda: _twin_freedrive(g) == 'True', 60, 'the twin in freedrive')
        on = float(g.probe.diag('twin', 'driver')['sim_time'])  # the True has arrived
        start = _position(g)
        ignored = int(g.probe.diag('twin', 'driver')['ignored_commands'])
        # a velocity command moves nothing: the arm is the operator's
        command.publish(Float64MultiArray(data=[0.5, 0, 0, 0, 0, 0]))
        g.wait(lambda: int(g.probe.diag('twin', 'driver')['ignored_commands']) > ignored, 60,
               'the twin to receive the velocity command')
        np.testing.assert_allclose(_after(g, 0.5), start, atol=5e-3)
        assert g.probe.diag('twin', 'driver')['message'] == 'freedrive'
        # 10 s of sim time after the only True (2.5 s of wall time at 4x): servos hold again
        g.wait(lambda: _twin_freedrive(g) == 'False', 60, 'freedrive timed out')
        values = g.probe.diag('twin', 'driver')
        assert values['message'] == 'holding (freedrive keep-alive timed out)', values
        # 10 s of sim time after the True, not before and not after: the last reading in
        # freedrive is at most 10 s after it arrived, the first one out at least 10 s after
        # it was sent (readings of the twin's own sim time, whenever they were delivered).
        history = _driver_history(g)
        last_on = max(t for t, free, _ in history if free)
        first_off = min(t for t, free, _ in history if not free and t > last_on)
        assert last_on - on <= 10.0 and first_off - before >= 10.0 - 0.05, \
            (before, on, last_on, first_off)
    finally:
        g.close()
