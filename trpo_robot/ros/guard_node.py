"""guard_node: the command guard, a process of its own between the actor and the driver.

The UR driver's forward_velocity_controller holds the last command forever
(ros2_controllers#95): an actor killed, hung or cut off from the network leaves a real arm
moving at its last velocity. This node relays the actor's commands (guard_topic, a
JointState whose stamp is the driver time of the state the command answers and whose
velocity is the command) to the driver (command_topic, the controller's Float64MultiArray)
and publishes zero when the actor's stream is older than
guard_timeout of driver time, when the actor's publisher leaves the graph, when the actor
says goodbye (an empty command) or sends a malformed one; a command decided before the
last stop is dropped (trpo_robot/robot/guard.py).
It keeps time by the driver's joint_states stamps, so it also works on a twin at any
real-time factor; when those stop for CLOCK_LOST_AFTER of wall time it sends zero and
relays nothing until they come back. Started next to the driver by learn.launch.py and
`trpo-robot learn`.
"""
import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from trpo_robot.paths import urdf_path
from trpo_robot.robot.guard import CommandGuard
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.params import RobotParams
from trpo_robot.ros.rclpy_internals import TakenSubscriptions

LOG_EVERY = 2.0
WAIT = 0.1
"""Longest wait for a message, s: the relay thread looks at its stop flag this often."""
PUBLISHER_CHECK_TICKS = 10
"""Driver periods between looks at the graph for the actor's publisher (a graph query per
tick would cost more than the relay itself)."""

STATES, COMMANDS = 0, 1
"""The guard's two streams, by their index in its TakenSubscriptions."""
CLOCK_LOST_AFTER = 2.0
"""s of wall time without joint_states after which the guard sends zero and relays nothing
until one comes. Twice the actor's own stall timeout (RosBackend, 1 s), so that a live actor
stops the arm first; what is left is an actor that is dead or hung while the driver's clock
is gone, which would otherwise leave a UR moving at its last command for ever. Counted from
the guard's start until the first state."""

GUARD_PRIORITY = 60
"""SCHED_FIFO priority, above the twin's and the actor's 50. At equal priority the two
busier processes held both cores for 71 ms once (bench/chaos.py at 8x), and the driver
ran on the guard's last relay, not on the shield's braking commands the guard had yet to
relay. The guard blocks between messages (about a third of a core at 8x), so it starves
nobody."""


class GuardNode(U.WorkerNode, Node):
    def __init__(self, stop: threading.Event, node_name='command_guard'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        (self.p,) = U.read_params(self, RobotParams)
        U.keep_own_time(self, 'the guard keeps time by the joint_states stamps')
        p = self.p
        spec = RobotSpec.from_urdf(urdf_path(p.task_spec().urdf))
        self.guard = CommandGuard(spec.velocity_limit, p.effective_guard_timeout(),
                                  spec.joint_names)
        self._warn = U.ThrottledWarnings(self.get_logger(), LOG_EVERY)
        self._lock = threading.Lock()
        self._now = None       # stamp of the newest joint_states: the driver's clock
        self._heard_at = time.monotonic()  # wall time of the newest joint_states
        self._ticks = 0
        self._had_publisher = False
        self.pub = self.create_publisher(Float64MultiArray, p.command_topic, U.QOS_COMMAND)
        # Both streams are taken by the relay thread itself, in order of arrival.
        self._rx = TakenSubscriptions(self, [
            (JointState, p.joint_states_topic, U.QOS_STATE_SUB),
            (JointState, p.guard_topic, U.QOS_COMMAND)])  # indices STATES, COMMANDS
        self.sub = self._rx.subscriptions[COMMANDS]
        self._stopping = threading.Event()
        self.thread = U.Worker('relay', self._relay, self.get_logger())
        self.realtime_priority = GUARD_PRIORITY if p.realtime else 0  # run_node applies it
        self.pub_diag = U.diag_publisher(self)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=U.steady_clock())
        self._msg = Float64MultiArray()
        self.get_logger().info(
            f'command guard: {self.sub.topic_name} -> {self.pub.topic_name}, zero after '
            f'{self.guard.timeout * 1e3:.0f} ms of driver time without a command')

    # -- node lifecycle (run_node) -------------------------------------------------------

    def shutdown(self):
        """Leaving: the arm must not keep the actor's last command after us."""
        self._stopping.set()
        self.thread.join(timeout=2.0)
        with self._lock:
            now = self._now or 0.0
            self._send(self.guard.on_command([], now, now))
        return 0

    # -- the relay (its own thread) -------------------------------------------------------

    def _relay(self):
        handlers = (self._on_state, self._on_command)
        while not self._stopping.is_set():
            self._rx.wait(WAIT)
            batch = self._rx.take_all()
            if any(kind == STATES for _, kind, _ in batch):
                self._heard_at = time.monotonic()  # a guard held by the host is not deaf
            self._watch_clock()  # before relaying: a command may come long after a state
            for _, kind, msg in batch:
                handlers[kind](msg)

    def _watch_clock(self):
        quiet = time.monotonic() - self._heard_at
        if quiet < CLOCK_LOST_AFTER:
            return
        with self._lock:
            was = self.guard.state
            out = self.guard.on_clock_lost(quiet, self._now or 0.0)
            if out is not None:
                self._send(out)
        self._report(was)

    def _on_command(self, msg):
        with self._lock:
            was = self.guard.state
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            out = self.guard.on_command(msg.velocity, stamp, self._now,
                                        msg.name if msg.velocity else None)
            if out is not None:
                self._send(out)
        self._report(was)

    def _on_state(self, msg):
        with self._lock:
            self._now = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self._ticks += 1
            was = self.guard.state
            out = self.guard.on_tick(self._now, self._publishers_gone())
            if out is not None:
                self._send(out)
        self._report(was)

    def _publishers_gone(self):
        """0 once a publisher that was seen has left the graph, else None (unknown).

        The graph cache can lag behind the data (discovery information travels on a topic
        of its own), so a count of 0 before any publisher was seen proves nothing."""
        if self._ticks % PUBLISHER_CHECK_TICKS:
            return None
        count = self.sub.get_publisher_count()
        if count > 0:
            self._had_publisher = True
            return None
        if self._had_publisher:
            self._had_publisher = False
            return 0
        return None

    def _send(self, command):
        self._msg.data = command.tolist()
        self.pub.publish(self._msg)

    def _report(self, was):
        state = self.guard.state
        if state == was:
            return
        if self.guard.relaying:
            self.get_logger().info('relaying the actor\'s commands')
        else:
            self._warn(state, f'zero velocity to the driver: {self.guard.last_stop_cause}')

    def _publish_diagnostics(self):
        g = self.guard
        values = dict(state=g.state, timeout=g.timeout, driver_time=self._now or -1.0,
                      driver_clock='lost' if g.clock_lost else 'ok',
                      last_command_time=g.last_command_time or -1.0,
                      last_stop_time=g.last_stop_time, last_stop_age=g.last_stop_age,
                      last_stop_cause=g.last_stop_cause, **g.counters)
        level = U.OK if g.relaying or g.counters['stops'] == 0 else U.WARN
        self.pub_diag.publish(U.diag_array(self, [U.status(
            f'{self.get_fully_qualified_name()}: guard', values, level, g.state,
            self.pub.topic_name)]))


def main(argv=None):
    return U.run_node(lambda stop: GuardNode(stop), argv, 'guard_node')


if __name__ == '__main__':
    raise SystemExit(main())
