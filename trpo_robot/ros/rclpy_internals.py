"""Every use of rclpy internals in this package, and why there is no public way.

Three threads take their messages themselves instead of being called back by an executor:
the actor's control thread (joint_states), its guard watch (the driver's command topic) and
the command guard's relay (joint_states and the actor's commands). rclpy's public API hands
a message to Python only through an executor's callback, and that costs what the control
loop cannot spare. With the executor's thread handing each joint_states over, the actor's
lateness was 0.50 / 1.04 ms (p50 / p99) against 0.29 / 0.81 ms taken here
(docs/benchmarks.md, "ROS graph"). With a private executor run by the taking thread
itself (a second node, the public way), bench/ros_timing.py measured p50 lateness 1.9-2.1
ms against 0.8-0.9 ms, and 33-36 % CPU for the actor and 23-25 % for the guard against
20-25 % and 9-13 % (docs/ros.md, "rclpy internals: one module").

What is used, none of it documented API (rclpy 9.1, Kilted), all of it what rclpy's own
executors and ``wait_for_message`` call:
- ``rclpy.impl.implementation_singleton.rclpy_implementation.WaitSet`` with
  ``clear_entities``, ``add_subscription`` and ``wait(timeout_ns)``, made on
  ``Context.handle``;
- ``Subscription.handle.take_message(msg_type, raw)`` -> (message, MessageInfo) or None,
  MessageInfo carrying ``received_timestamp`` and ``source_timestamp`` (ns), which the
  timing figures are measured from.

The subscriptions themselves are public API: created on the node they belong to (the graph
shows them there, not on a second node) in a callback group that no executor may run.
``missing()`` names whatever of the above an rclpy lacks; tests/test_rclpy_internals.py
fails with that list, so an upgrade that moves one shows there, not as an actor that never
hears the arm.
"""
from rclpy.callback_groups import CallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.subscription import Subscription

WAIT_SET_METHODS = ('clear_entities', 'add_subscription', 'wait')
INFO_KEYS = ('received_timestamp', 'source_timestamp')


def missing() -> list:
    """The internals this module needs that this rclpy does not have (by name)."""
    wait_set = getattr(_rclpy, 'WaitSet', None)
    if wait_set is None:
        return ['rclpy_implementation.WaitSet']
    gone = [f'WaitSet.{m}' for m in WAIT_SET_METHODS if not hasattr(wait_set, m)]
    handle = getattr(_rclpy, 'Subscription', None)
    if handle is None or not hasattr(handle, 'take_message'):
        gone.append('rclpy_implementation.Subscription.take_message')
    if not isinstance(getattr(Subscription, 'handle', None), property):
        gone.append('Subscription.handle')
    return gone


class _Unserved(CallbackGroup):
    """Executors leave its entities alone: their owner's thread takes the messages."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


def _never_called(msg):
    raise AssertionError('an executor ran a subscription that its own thread takes')


class TakenSubscriptions:
    """Subscriptions of ``node`` whose messages one thread waits for and takes itself.

    topics: [(message type, topic, QoS)], named as ``node`` resolves them (namespace,
    remappings). Not thread-safe: one taking thread.
    """

    def __init__(self, node, topics):
        group = _Unserved()
        self.subscriptions = [
            node.create_subscription(msg_type, topic, _never_called, qos, callback_group=group)
            for msg_type, topic, qos in topics]
        self._wait_set = _rclpy.WaitSet(len(self.subscriptions), 0, 0, 0, 0, 0,
                                        node.context.handle)

    def wait(self, timeout: float) -> None:
        """Until any of them has a message queued, or ``timeout`` s."""
        ws = self._wait_set
        ws.clear_entities()
        for sub in self.subscriptions:
            ws.add_subscription(sub.handle)
        ws.wait(max(0, int(timeout * 1e9)))

    def take(self, index=0):
        """The oldest message queued on subscription ``index`` and its MessageInfo (a dict
        with ``received_timestamp`` and ``source_timestamp``, ns), or None."""
        sub = self.subscriptions[index]
        return sub.handle.take_message(sub.msg_type, sub.raw)

    def take_all(self) -> list:
        """Every queued message as (DDS receipt time ns, subscription index, message), in
        order of arrival."""
        arrived = []
        for k in range(len(self.subscriptions)):
            while (taken := self.take(k)) is not None:
                msg, info = taken
                arrived.append((info.get('received_timestamp', 0), k, msg))
        arrived.sort(key=lambda item: item[:2])
        return arrived
