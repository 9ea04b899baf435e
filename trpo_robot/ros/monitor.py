"""A small rclpy node that watches a running graph from outside it.

`trpo-robot learn`, the graph tests and the benchmarks read the nodes' state the way an
operator would: from their topics and /diagnostics, never from their logs. The probe runs
in its own rclpy context and executor thread, so the caller's main thread stays free for
signals and polling.
"""
from collections import defaultdict
import contextlib
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from trpo_robot.ros import node_utils as U


class Probe:
    def __init__(self, domain: int, name='trpo_probe', keep=100_000):
        self.context = Context()
        with _localhost_discovery():
            rclpy.init(context=self.context, domain_id=domain,
                       signal_handler_options=SignalHandlerOptions.NO)
            self.node = rclpy.create_node(name, context=self.context)
        self._lock = threading.Lock()
        self._keep = keep
        self._messages = defaultdict(list)
        self._subscriptions = {}
        self._nodes = {}  # key -> fully qualified name of the node watched under it
        self._diagnostics = None
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True, name='probe')
        self._thread.start()

    def _spin(self):
        """spin_once with a timeout rather than spin(): subscriptions are added from another
        thread while this one waits, and a wait that began before one was added and missed
        its wake-up would otherwise never see it (seen: a probe that heard nothing for
        30 s). The timeout rebuilds the wait set at least every 0.1 s."""
        while not self._closing.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutdown races end the loop
                if self._closing.is_set() or not self.context.ok():
                    return
                raise

    def _store(self, key, item):
        with self._lock:
            box = self._messages[key]
            box.append(item)
            if len(box) > self._keep:
                del box[:len(box) - self._keep]

    def listen(self, key, msg_type, topic, qos, with_info=False):
        """Keep (monotonic receipt time, message[, message info]) of a topic under `key`."""
        def with_message_info(msg, info):  # rclpy passes MessageInfo to 2-argument callbacks
            self._store(key, (time.monotonic(), msg, info))

        def message_only(msg):
            self._store(key, (time.monotonic(), msg))
        callback = with_message_info if with_info else message_only
        sub = self.node.create_subscription(msg_type, topic, callback, qos)
        self._subscriptions[key] = sub
        return sub

    def watch(self, key, node=None):
        """Keep one node's diagnostics under `key` (see diag()), as DiagnosticArrays that
        hold only its statuses.

        All nodes share /diagnostics and prefix each status with their fully qualified
        name, so that prefix is what tells one node from another, and one arm's actor
        from the next (node '/arm2/actor_node'). node: a fully qualified name, or a name in
        the root namespace ('actor_node'); None: `key` is the node's name."""
        with self._lock:
            self._nodes[key] = fully_qualified(node or key)
            if self._diagnostics is None:
                self._diagnostics = self.node.create_subscription(
                    DiagnosticArray, U.DIAGNOSTICS, self._on_diagnostics, U.QOS_DIAG)

    def _on_diagnostics(self, msg):
        now = time.monotonic()
        with self._lock:
            watched = list(self._nodes.items())
        for key, fqn in watched:
            mine = [s for s in msg.status if s.name.startswith(f'{fqn}: ')]
            if mine:
                self._store(key, (now, DiagnosticArray(header=msg.header, status=mine)))

    def publishers(self, key) -> int:
        """How many publishers the subscription under `key` is matched with: until a
        node's publisher is matched, the probe hears nothing of it, and a test that has not
        waited for this would read silence as a result."""
        if key in self._nodes:
            return self._diagnostics_publishers(self._nodes[key])
        return self._subscriptions[key].get_publisher_count()

    def _diagnostics_publishers(self, fqn) -> int:
        """The watched node's publishers on the shared topic, once matched. The graph says
        whose each publisher is but not whether it is matched, the subscription only how
        many are; so all of the node's count as matched once the subscription is matched
        with as many publishers as the graph lists."""
        listed = self.node.get_publishers_info_by_topic(U.DIAGNOSTICS)
        if self._diagnostics.get_publisher_count() < len(listed):
            return 0
        return sum(fully_qualified(i.node_name, i.node_namespace) == fqn for i in listed)

    def got(self, key):
        with self._lock:
            return list(self._messages[key])

    def diag(self, key, status):
        """Newest values of the status '<node>: <status>' of the node watched under `key`,
        or None while none was heard."""
        name = f'{self._nodes[key]}: {status}'
        with self._lock:
            items = list(self._messages[key][-20:])
        for item in reversed(items):
            values = U.diag_dict(item[1]).get(name)
            if values is not None:
                return values
        return None

    def close(self):
        self._closing.set()
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def fully_qualified(name, namespace='/'):
    """'/arm2/actor_node' as it is; 'actor_node' in `namespace`."""
    if name.startswith('/'):
        return name
    return f'{namespace.rstrip("/")}/{name}'


@contextlib.contextmanager
def _localhost_discovery():
    """The graph's discovery range (graph.ros_env) for the context and node being made:
    rclpy takes no discovery option but the environment, which rcl reads at init. Restored
    after, as the probe lives inside programs (tests, trpo-robot learn) it must not change."""
    keys = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY')
    saved = {k: os.environ.get(k) for k in keys}
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
