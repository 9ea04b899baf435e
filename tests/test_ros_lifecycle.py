"""The actor's episode lifecycle over ROS, with real processes on the Dynamixel twin.

No learner: without a policy the actor never acts, so its startup stop and reset are the
lifecycle under test. A scripted Joy publisher (the keyboard layout, which the actor uses
when no gamepad layout is configured) jogs through the shield; services latch and release
the e-stop.
"""
import threading
import time

import pytest
from ros_support import actor_state, call_trigger, Graph, wait_actor_state
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float64MultiArray, String

from trpo_robot.robot.keyboard import KEYBOARD_MAPPING as KB
from trpo_robot.ros import node_utils as U

pytestmark = pytest.mark.timeout(600)
N_BUTTONS = max(KB.joint_buttons) + 1


@pytest.fixture
def make_graph(tmp_path):
    graphs = []

    def make(**robot):
        g = Graph(tmp_path / f'graph{len(graphs)}',
                  nodes=('twin_node', 'guard_node', 'actor_node'),
                  robot_params={'reset_mode': 'teleop', 'diagnostics_period': 0.25, **robot})
        graphs.append(g)
        g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
        g.probe.listen('cmd', Float64MultiArray, '/forward_velocity_controller/commands',
                       U.QOS_STATE_SUB)
        g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        g.probe.watch('actor', 'actor_node')
        # Both volatile streams flowing to the probe before any test acts on the arm.
        g.matched('cmd', 'joints', 'actor')
        g.heard('joints')
        return g
    yield make
    for g in graphs:
        g.close()


class JoyScript:
    """Publishes one Joy reading at 50 Hz (a pad's autorepeat) until changed or closed."""

    def __init__(self, g):
        self.g = g
        self.pub = g.probe.node.create_publisher(Joy, '/joy', 10)
        g.wait(lambda: self.pub.get_subscription_count() > 0, 120, 'the actor matched on /joy')
        self.reading = None  # (axes, buttons), replaced whole: the thread reads it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def set(self, axis=0.0, *pressed):
        """Change the reading and publish it at once, as a pad does on a change."""
        self.reading = ([float(axis)], [int(i in pressed) for i in range(N_BUTTONS)])
        self.pub.publish(Joy(axes=self.reading[0], buttons=self.reading[1]))

    def grip_and_push(self, armed=True):
        """Deadman with the stick centred (a fresh grip never drives), then full up.

        armed: wait until the actor reports the grip taken (its teleop reason clears in a
        teleop reset); the actor reads Joy best effort, newest only, so pushing at once
        could reach it before the centred grip ever did."""
        gripped = time.monotonic()
        self.set(0.0, KB.deadman)
        if armed:  # a report sent after the grip: one from before may still say ''
            def taken():
                report = _lifecycle(self.g, since=gripped)
                return report.get('phase') == 'reset' and report.get('teleop') == ''
            self.g.wait(taken, 30,
                        lambda: f'the actor to take the centred grip ({_lifecycle(self.g)})')
        self.set(1.0, KB.deadman)

    def _run(self):
        while not self._stop.wait(0.02):
            reading = self.reading
            if reading is not None:
                self.pub.publish(Joy(axes=reading[0], buttons=reading[1]))

    def close(self):
        self._stop.set()
        self._thread.join(2)


def _commands_since(g, t):
    return [(w, list(m.data)) for w, m in g.probe.got('cmd') if w >= t]


def _lifecycle(g, since=None):
    """The actor's newest lifecycle report, or only one heard after `since` (wall)."""
    if since is not None and not any(w >= since for w, _ in g.probe.got('actor')):
        return {}
    return g.probe.diag('actor', 'lifecycle') or {}


def _moved(g, start, t):
    """Has a joint_states reading received since t left `start` by more than 0.01 rad?"""
    return any(max(abs(a - b) for a, b in zip(m.position, start)) > 0.01
               for w, m in g.probe.got('joints') if w >= t)


def test_teleop_reset_through_the_shield_and_the_deadman_stops_the_arm(make_graph):
    g = make_graph(real_time_factor=1.0)
    wait_actor_state(g, 'reset')
    joy = JoyScript(g)
    try:
        start = g.probe.got('joints')[-1][1].position
        t0 = time.monotonic()
        joy.grip_and_push()  # hold the deadman, stick full up: jog the selected joint

        def steady():  # ten equal jog commands in a row: the jog at its full speed
            last = [c for _, c in _commands_since(g, t0)][-10:]
            return (len(last) == 10 and all(c == last[0] for c in last)
                    and max(abs(v) for v in last[0]) > 0.01)
        # A starved twin's late joint_states make the shield brake (stale state) until
        # they are fresh again: that is the shield's to do, so the bound is generous.
        g.wait(steady, 120, lambda: 'a steady jog command (heard: '
               f'{[c for _, c in _commands_since(g, t0)][-12:]}; actor safety '
               f'{g.probe.diag("actor", "safety")}, lifecycle {_lifecycle(g)})')
        g.wait(lambda: _moved(g, start, t0), 120, 'the arm to move')
        jog = max(abs(v) for v in _commands_since(g, t0)[-1][1])
        released = time.monotonic()
        joy.set(1.0)  # deadman let go, stick still pushed

        def stopped():  # a zero command, and ten more after it
            after = [c for _, c in _commands_since(g, released)]
            zero = next((i for i, c in enumerate(after) if not any(c)), None)
            return after if zero is not None and len(after) > zero + 10 else None
        after = g.wait(stopped, 30, 'zero commands after the deadman was let go')
        first_zero = next(i for i, c in enumerate(after) if not any(c))
        # Until the release reaches the actor the jog goes on at full speed; then one whole
        # step to zero, no ramp, and nothing moves again while the deadman is up.
        assert all(max(abs(v) for v in c) == pytest.approx(jog) for c in after[:first_zero])
        assert all(not any(c) for c in after[first_zero:]), 'moved again without deadman'
        joy.set(0.0, KB.confirm)
        wait_actor_state(g, 'ready', 30)
    finally:
        joy.close()
    assert actor_state(g) == 'ready'


def test_reset_timeout_holds_and_the_estop_latches_until_released(make_graph):
    g = make_graph(real_time_factor=2.0, reset_timeout=1.0)
    # nobody touched the pad for 1 s of robot time (0.5 s: RESET may be over before the
    # probe is ready, so the log says that it came first)
    wait_actor_state(g, 'hold', 60)
    log = g.procs['actor_node'].tail(30)
    assert 'not confirmed within 1 s' in log and '~/reset_done' in log, log
    assert call_trigger(g, 'reset').success
    wait_actor_state(g, 'reset')
    assert call_trigger(g, 'estop').success
    wait_actor_state(g, 'estop', 10)
    joy = JoyScript(g)
    try:
        t0 = time.monotonic()
        start = g.probe.got('joints')[-1][1].position
        joy.grip_and_push(armed=False)  # an operator tries to jog: nothing may move
        refused = [call_trigger(g, s) for s in ('reset_done', 'reset', 'resume')]
        assert not any(r.success for r in refused), [r.message for r in refused]
        # The push goes out at 50 Hz while the actor commands 50 more driver periods.
        blocked = g.heard('cmd', 50, since=t0, timeout=60)
        assert all(not any(m.data) for _, m in blocked), 'a command got through'
        assert not _moved(g, start, t0), 'the arm moved under the e-stop'
        assert actor_state(g) == 'estop'
        assert call_trigger(g, 'estop_release').success
        wait_actor_state(g, 'hold', 10)  # released, but the arm is held, not moved
        assert call_trigger(g, 'reset').success
        wait_actor_state(g, 'reset')
        t1 = time.monotonic()
        joy.grip_and_push()
        g.wait(lambda: any(any(c) for _, c in _commands_since(g, t1)), 120,
               lambda: f'jogging after the release (actor safety '
               f'{g.probe.diag("actor", "safety")})')
    finally:
        joy.close()
