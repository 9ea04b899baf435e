"""What every node of the graph shares: QoS profiles, parameters, blobs, diagnostics, main().

Kept small and free of node logic so that each node file reads as its own behaviour.
"""
import faulthandler
import gc
import os
import signal
import sys
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import UInt8MultiArray

from trpo_robot.robot.backend import BackendFault
from trpo_robot.ros import params as P
from trpo_robot.stop_signals import StopSignals

# ---------------------------------------------------------------- QoS
# The driver side follows the UR driver: joint_states and commands are reliable streams
# (ros2_control's SystemDefaultsQoS); the actor reads joint_states best effort with depth 1
# because only the newest reading matters and a queue would only add latency.
QOS_STATE_PUB = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
QOS_STATE_SUB = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
QOS_COMMAND = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# As Gazebo's /clock and rclpy's own TimeSource subscription.
QOS_CLOCK = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
# Weights: a late joiner (an actor started after the learner) gets the newest at once.
QOS_POLICY = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL,
                        history=HistoryPolicy.KEEP_LAST)
QOS_DIAG = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def qos_episodes(depth: int) -> QoSProfile:
    """Finished episodes: reliable so none is lost while both ends live; volatile because
    an episode acted long ago is too off-policy to learn from anyway."""
    return QoSProfile(depth=int(depth), reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def steady_clock() -> Clock:
    """For timers that must keep firing when sim time stops (diagnostics of a stalled
    graph are the ones that matter most)."""
    return Clock(clock_type=ClockType.STEADY_TIME)


# ---------------------------------------------------------------- parameters

_BUILTIN = {'use_sim_time', 'start_type_description_service'}


def keep_own_time(node, where_time_comes_from: str):
    """Turn use_sim_time off in a node that reads no graph clock: none of ours does, yet
    launch files hand it to every node. Under it rclpy subscribes /clock, which a twin
    publishes on every driver tick (500 a second for a UR5 at 4x), and each message wakes
    the executor in Python and takes the GIL from the node's real work. Measured on a
    ur5_reacher_6d graph at 4x by turning it off live: the twin went from 58% of a core
    to 34%, the guard from 53% to 27%, and the learner's update, starved by them, from a
    median of 5.5 s (up to 69 s) to about 1 s."""
    if node.get_parameter('use_sim_time').value:
        node.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, False)])
        node.get_logger().info(f'use_sim_time off, no /clock: {where_time_comes_from}')


def read_params(node, *classes):
    """Declare every field of the params dataclasses that the parameter files did not
    (they are declared from the overrides already), then build each dataclass.

    Typing is dynamic and each value is coerced and checked by the dataclass, so that a
    `1` where `1.0` is expected is fine and a bad value fails with the parameter's name.
    Returns the dataclass instances, and logs keys that no class knows (likely typos).
    """
    descriptor = ParameterDescriptor(dynamic_typing=True)
    for cls in classes:
        for key, value in P.to_ros(cls()).items():
            if not node.has_parameter(key):
                node.declare_parameter(key, value, descriptor)
    values = {name: p.value for name, p in node.get_parameters_by_prefix('').items()}
    unknown = [k for k in P.unknown_keys(values, *classes) if k not in _BUILTIN]
    if unknown:
        node.get_logger().warning(f'parameters not used by this node: {unknown}')
    return tuple(P.build(cls, values) for cls in classes)


# ---------------------------------------------------------------- blobs

def blob_msg(blob: bytes) -> UInt8MultiArray:
    msg = UInt8MultiArray()
    msg.data = blob  # the generated setter copies bytes into an array('B') in C
    return msg


# ---------------------------------------------------------------- diagnostics

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)

DIAGNOSTICS = '/diagnostics'
"""Absolute: rqt_robot_monitor and the diagnostic aggregator read this one topic, so every
node of every arm shares it and tells its statuses apart by name (status())."""


def diag_publisher(node):
    return node.create_publisher(DiagnosticArray, DIAGNOSTICS, QOS_DIAG)


def status(name: str, values: dict, level, message: str, hardware_id: str):
    """name: '<node fully qualified name>: <part>', the prefix by which a reader of the
    shared /diagnostics topic finds one node, and one arm's node by its namespace.
    hardware_id: the device (or host) the status is about, which a reader needs to tell
    two arms' identical parts apart; required, since an empty one says nothing."""
    s = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    s.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return s


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value)


def diag_array(node, statuses) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.status = list(statuses)
    return msg


def diag_dict(msg: DiagnosticArray) -> dict:
    """{status name: {'level': int, 'message': str, key: value-string, ...}}."""
    out = {}
    for s in msg.status:
        d = {kv.key: kv.value for kv in s.values}
        d['level'] = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
        d['message'] = s.message
        out[s.name] = d
    return out


# ---------------------------------------------------------------- threads

SWITCH_INTERVAL = 2e-4
"""s: how long a Python thread may keep the GIL while another waits for it, in the
processes that run a control loop."""


def _realtime_process(priority: int, logger, what: str) -> bool:
    """SCHED_FIFO for every thread the process has now, as ros2_control gives its loop, and
    a short GIL switch interval; warns and carries on with normal scheduling when not
    permitted. Process-wide, so run_node (each node's main()) is its only caller.

    Every thread, not only the control loop: it waits on joint_states that the executor
    and the DDS receive threads deliver, so on a busy machine they need the priority as
    much as the loop itself (Linux applies a policy per thread, by thread id).
    """
    # A thread woken by a message still needs the GIL; whoever holds it gives it up only
    # after the switch interval (5 ms by default), which would be the lateness floor.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        for tid in [int(t) for t in os.listdir('/proc/self/task')]:
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            except ProcessLookupError:
                continue  # the thread ended since the listing
    except (AttributeError, OSError) as e:  # FileNotFoundError: no /proc (not Linux)
        logger.warning(f'{what}: SCHED_FIFO {priority} not available ({e}); running with '
                       'normal scheduling (run as root or grant CAP_SYS_NICE / rtprio)')
        return False
    return True


def is_realtime(thread: threading.Thread) -> bool:
    """Whether ``thread`` runs at SCHED_FIFO now (False before it started or after it
    ended)."""
    if not thread.is_alive():
        return False
    try:
        return os.sched_getscheduler(thread.native_id) == os.SCHED_FIFO
    except (AttributeError, OSError):
        return False


class Worker(threading.Thread):
    """A daemon thread that records its exception instead of dying silently."""

    def __init__(self, name, target, logger):
        super().__init__(name=name, daemon=True)
        self._target_fn, self._logger = target, logger
        self.error = None

    def run(self):
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - reported, and the node then exits
            self.error = e
            self._logger.error(f'{self.name} thread failed: {e!r}\n{traceback.format_exc()}')


class WorkerNode:
    """What run_node asks of a node, written once: one ``Worker`` in ``self.thread`` does
    the node's work, and the node has failed when that thread has. A node with more to
    start or more ways to fail extends these; ``shutdown`` stays each node's own, because
    what leaving safely means differs (stop the arm, write a checkpoint)."""

    realtime_priority = 0
    """SCHED_FIFO priority run_node gives the node's threads; 0: none."""

    def start(self):
        self.thread.start()

    def failed(self):
        return self.thread.error is not None


# ---------------------------------------------------------------- main

SHUTDOWN_STACKS_AFTER = 10.0
"""s into a node's shutdown after which every thread's stack goes to stderr: a third of
the grace its supervisor leaves it (plan.STOP_GRACE_S); an update of a 4-arm fleet takes
about a second here."""


def run_node(make_node, argv=None, name='node'):
    """The body of every node's main(): rclpy.init, build the node, spin its executor in a
    thread, wait for SIGINT/SIGTERM or a failed worker, then let the node stop itself
    (stop the arm, write a checkpoint) before the context goes down. Returns the process
    exit code.

    The one place that changes process-wide settings (docs/ros.md, "Process-wide
    settings"): signal handlers, gc.freeze(), and for a node whose ``realtime_priority`` is
    not 0 the switch interval and SCHED_FIFO for all its threads, so that nothing a test
    or another program imports from here changes its host process.
    make_node(stop) returns a WorkerNode (start(), failed(), shutdown() -> exit code,
    realtime_priority).

    rclpy's own signal handlers are off: they would shut the context down at once, and the
    node could no longer publish the final stop command.
    """
    args = sys.argv if argv is None else argv
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signals = StopSignals(stop).install()
    node = None
    try:
        try:
            node = make_node(stop)
        except (P.ParamError, ValueError, FileNotFoundError) as e:
            print(f'{name}: error: {e}', file=sys.stderr)
            return 2
        except BackendFault as e:  # a device that cannot be brought up (it is left safe)
            print(f'{name}: error: {e}', file=sys.stderr)
            return 1
        # Everything built so far (torch, mujoco, numpy, the node) lives for the whole run:
        # moved out of the collector's reach, a full collection no longer walks it, which
        # would otherwise pause every thread for milliseconds now and then.
        gc.freeze()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name='executor', daemon=True)
        spinner.start()
        node.start()
        if node.realtime_priority:  # after start(): its threads are among those raised
            _realtime_process(node.realtime_priority, node.get_logger(), name)
        while not signals.wait(0.2):
            if node.failed():
                break
        # A shutdown this slow is a hang or close to one: every thread's stack goes to
        # stderr (the node's log, ros2 launch's screen) before a supervisor's SIGKILL.
        faulthandler.dump_traceback_later(SHUTDOWN_STACKS_AFTER, exit=False)
        code = node.shutdown()
        faulthandler.cancel_dump_traceback_later()
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        return 1 if node.failed() else code
    finally:
        # Stopped: a further SIGINT (a terminal's Ctrl-C reaches the whole process group and
        # ros2 launch forwards its own) would meet Python's default handler during
        # interpreter teardown and turn a clean exit into death by signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def command_problem(command, names) -> str | None:
    """Why a joint-velocity command cannot be applied (the driver then stops the arm), or
    None."""
    if command.shape != (len(names),):
        return f'{command.size} values for {len(names)} joints {list(names)}'
    if not np.all(np.isfinite(command)):
        return f'non-finite values {command.tolist()}'
    return None


FREEDRIVE_TIMEOUT = 10.0
"""s after the last True on the freedrive topic at which freedrive ends by itself (the UR
freedrive_mode_controller's default inactive_timeout)."""


def switch_freedrive(backend, at, now, logger, on_state='freedrive'):
    """The driver side of freedrive_mode_controller's interface: servos let go while True
    messages keep coming (``at``: the time of the newest, None after a False), and hold
    again on False or FREEDRIVE_TIMEOUT of silence. Returns the driver's new state text
    when it switched (and logs it), else None."""
    on = at is not None and now - at < FREEDRIVE_TIMEOUT
    if on == backend.freedrive:
        return None
    backend.set_freedrive(on)
    state = on_state if on else 'holding (freedrive ended)' if at is None else \
        'holding (freedrive keep-alive timed out)'
    logger.info(f'freedrive {"on" if on else "off"}: {state}')
    return state


class ThrottledWarnings:
    """At most one warning of each kind per `every` seconds: a fault that repeats on every
    tick (a bad command stream, a missing driver) must not flood the log."""

    def __init__(self, logger, every: float):
        self.logger, self.every = logger, every
        self._last = {}

    def __call__(self, kind: str, text: str):
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) >= self.every:
            self._last[kind] = now
            self.logger.warning(text)
