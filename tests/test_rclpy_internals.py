"""The rclpy internals the control threads depend on (trpo_robot/ros/rclpy_internals.py),
checked on this rclpy: present by name, and doing on real DDS subscriptions, fed by another
process, what the actor, its guard watch and the command guard rely on. An rclpy that moves
one fails here, naming it, instead of leaving an actor that never hears its arm."""
from pathlib import Path
import subprocess
import sys

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64MultiArray

from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import rclpy_internals as RI
from trpo_robot.ros.guard_watch import _gid, GuardWatch
from trpo_robot.ros.monitor import _localhost_discovery

pytestmark = pytest.mark.timeout(120)
SENDER = Path(__file__).resolve().parent / 'command_sender.py'
MSG = Float64MultiArray


def test_this_rclpy_has_every_internal_used():
    gone = RI.missing()
    assert not gone, (f'rclpy lacks {gone}, which trpo_robot/ros/rclpy_internals.py needs '
                      '(its docstring says what each is for)')


@pytest.fixture
def graph():
    """A node in this process and senders in others: (node, start_sender)."""
    domain = G.free_domain_id()
    context = Context()
    with _localhost_discovery():
        rclpy.init(context=context, domain_id=domain,
                   signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node('internals_test', context=context)
    senders = []

    def start_sender(topic, value):
        """Publishes [value] on topic every 10 ms until the test ends."""
        senders.append(subprocess.Popen(
            [sys.executable, str(SENDER), topic, '0.01', str(value)], env=G.ros_env(domain),
            stdin=subprocess.DEVNULL, start_new_session=True))
    yield node, start_sender
    for proc in senders:
        proc.kill()
        proc.wait(10)
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def _until(rx, predicate, what):
    """Take (in the caller's thread, as the control threads do) until predicate(all taken)."""
    arrived = []
    for _ in range(3000):  # each wait returns as soon as a message is queued
        rx.wait(10.0)
        arrived += rx.take_all()
        if predicate(arrived):
            return arrived
    raise AssertionError(f'no {what}; taken {len(arrived)}')


def test_messages_are_taken_in_order_of_arrival_with_dds_receipt_times(graph):
    node, start_sender = graph
    rx = RI.TakenSubscriptions(node, [(MSG, 'a', U.QOS_COMMAND), (MSG, 'b', U.QOS_COMMAND)])
    rx.wait(0.0)
    assert rx.take(0) is None and rx.take_all() == []
    start_sender('/a', 1.0)
    start_sender('/b', 2.0)
    arrived = _until(rx, lambda got: {k for _, k, _ in got} == {0, 1},
                     'messages on both topics')
    assert all(list(m.data) == [1.0 + k] for _, k, m in arrived)  # each from its own topic
    receipts = [r for r, _, _ in arrived]
    assert all(r > 0 for r in receipts) and receipts == sorted(receipts)


def test_take_gives_the_message_info_the_timing_figures_need(graph):
    node, start_sender = graph
    rx = RI.TakenSubscriptions(node, [(MSG, 'c', U.QOS_STATE_SUB)])
    start_sender('/c', 7.0)
    taken = None
    while taken is None:  # bounded by the test's timeout
        rx.wait(10.0)
        taken = rx.take()
    msg, info = taken
    assert list(msg.data) == [7.0]
    for key in RI.INFO_KEYS:
        assert info.get(key, 0) > 0, f'MessageInfo has no {key}: {info}'
    assert rx.subscriptions[0].topic_name == '/c'


def test_the_node_holds_them_and_its_executor_leaves_them_alone(graph):
    """Spun as run_node spins it, the node serves its ordinary subscription and leaves
    the taken one's messages to the taking thread (an executor that ran it would raise)."""
    node, start_sender = graph
    rx = RI.TakenSubscriptions(node, [(MSG, 'd', U.QOS_COMMAND)])
    assert all(sub in node.subscriptions for sub in rx.subscriptions)
    served = []
    node.create_subscription(MSG, 'd', served.append, U.QOS_COMMAND)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    start_sender('/d', 3.0)
    try:
        while len(served) < 5:  # bounded by the test's timeout
            executor.spin_once(timeout_sec=10.0)
    finally:
        executor.shutdown()
    taken = _until(rx, bool, 'message left for the taking thread')
    assert list(taken[-1][2].data) == [3.0]


def test_the_guard_watch_tells_its_own_zero_from_another_process_by_publisher_gid(graph):
    """The watch reads its own publisher's gid from the graph; what DDS reports with each
    message must be the same bytes, or the actor's zero, echoed back, would pass for the
    guard relaying again and the arm would be acted into a dead guard."""
    node, start_sender = graph
    watch = GuardWatch(node, 'e', 1, silence=1.0)
    rx = RI.TakenSubscriptions(node, [(MSG, 'e', U.QOS_COMMAND)])
    start_sender('/e', 5.0)
    senders = set()
    while not senders:  # bounded by the test's timeout
        rx.wait(10.0)
        while (taken := rx.take()) is not None:
            senders.add(_gid(taken[1]['publisher_gid']))
    watch._direct.publish(MSG(data=[0.0]))
    ours = set()
    while not ours:
        rx.wait(10.0)
        while (taken := rx.take()) is not None:
            if list(taken[0].data) == [0.0]:
                ours.add(_gid(taken[1]['publisher_gid']))
    assert ours == {watch._own} and watch._own not in senders and watch._own
