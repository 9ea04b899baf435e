"""A small rclpy node that watches (and pokes) a running graph from outside it.

`trpo-robot learn`, the graph tests and the benchmarks read the nodes' state the way an
operator would: from their topics and ~/diagnostics, never from their logs. The probe runs
in its own rclpy context and executor thread, so the caller's main thread stays free for
signals and polling.
"""
from collections import defaultdict
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
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        os.environ.pop('ROS_LOCALHOST_ONLY', None)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self._lock = threading.Lock()
        self._keep = keep
        self._messages = defaultdict(list)
        self._subscriptions = {}
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

    def listen(self, key, msg_type, topic, qos, with_info=False):
        """Keep (monotonic receipt time, message[, message info]) of a topic under `key`."""
        def keep(item):
            with self._lock:
                box = self._messages[key]
                box.append(item)
                if len(box) > self._keep:
                    del box[:len(box) - self._keep]

        def with_message_info(msg, info):  # rclpy passes MessageInfo to 2-argument callbacks
            keep((time.monotonic(), msg, info))

        def message_only(msg):
            keep((time.monotonic(), msg))
        callback = with_message_info if with_info else message_only
        sub = self.node.create_subscription(msg_type, topic, callback, qos)
        self._subscriptions[key] = sub
        return sub

    def watch(self, key, topic):
        """Diagnostics of one node under `key` (see diag())."""
        return self.listen(key, DiagnosticArray, topic, U.QOS_DIAG)

    def publishers(self, key) -> int:
        """How many publishers the subscription under `key` is matched with: until a
        node's publisher is matched, the probe hears nothing of it, and a test that has not
        waited for this would read silence as a result."""
        return self._subscriptions[key].get_publisher_count()

    def got(self, key):
        with self._lock:
            return list(self._messages[key])

    def diag(self, key, status):
        """Newest values of the status whose name ends with ': <status>', or None."""
        with self._lock:
            items = list(self._messages[key][-20:])
        for item in reversed(items):
            for name, values in U.diag_dict(item[1]).items():
                if name.endswith(': ' + status):
                    return values
        return None

    def close(self):
        self._closing.set()
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
