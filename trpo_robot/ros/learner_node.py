"""learner_node: asynchronous TRPO in its own process.

Subscribes the episode topics of every actor, updates once a batch of fresh episodes is in
(in a worker thread, so the executor keeps taking episodes during an update), publishes
each new policy version on the policy topic (reliable, transient_local: a late actor gets
the newest at once), writes checkpoints every checkpoint_every updates and on shutdown,
and reports progress on /diagnostics.
"""
import socket
import threading
import time

from rclpy.node import Node
from rclpy.subscription import Subscription
from std_msgs.msg import UInt8MultiArray
import torch

from trpo_robot.ros import node_utils as U
from trpo_robot.ros.learning import LearnerCore
from trpo_robot.ros.params import LearnerParams, RobotParams
from trpo_robot.store import EpisodeStore

INFO_CALLBACKS = hasattr(Subscription, 'CallbackType')
"""rclpy hands a callback the message's source timestamp (Iron on); Humble's does not,
and the episodes' transport time is then not measured."""
LOG_EVERY = 5.0
"""s between two log lines about refused episodes of one kind (bad, unsigned)."""


class LearnerNode(U.WorkerNode, Node):
    def __init__(self, stop: threading.Event, node_name='learner_node'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        self.rp, self.lp = U.read_params(self, RobotParams, LearnerParams)
        U.keep_own_time(self, 'the learner reads no graph time (its timer is steady)')
        self.core = LearnerCore(self.lp, self.rp, log=self.get_logger().info,
                                warn=U.ThrottledWarnings(self.get_logger(), LOG_EVERY))
        self.stop_event = stop
        self._wake = threading.Event()
        self.pub_policy = self.create_publisher(UInt8MultiArray, self.rp.policy_topic,
                                                U.QOS_POLICY)
        self.pub_diag = U.diag_publisher(self)
        qos = U.qos_episodes(self.rp.episode_queue_depth)
        on_episode = self._on_episode if INFO_CALLBACKS else \
            (lambda msg: self._on_episode(msg, {}))
        self.subs = [self.create_subscription(UInt8MultiArray, topic, on_episode, qos)
                     for topic in self.lp.episode_topics]
        self.create_timer(self.lp.progress_period, self._publish_progress,
                          clock=U.steady_clock())
        self.thread = U.Worker('learner', self._work, self.get_logger())
        self.realtime_priority = 0  # learning may wait; the control loops may not
        cfg = self.core.agent.config
        self.get_logger().info(
            f'learner for {self.core.task.name}: preset {self.lp.preset}, batch '
            f'{cfg.batch_steps} steps, max KL {cfg.max_kl}, max policy lag '
            f'{cfg.max_policy_lag}; episodes <- {[s.topic_name for s in self.subs]}, policy '
            f'-> {self.pub_policy.topic_name}, checkpoints -> {self.lp.checkpoint_dir}')

    # -- node lifecycle (run_node) -------------------------------------------------------

    def start(self):
        self._publish_policy()
        super().start()

    def shutdown(self):
        self.stop_event.set()
        self._wake.set()
        self.thread.join(timeout=60.0)  # lets a running update finish
        path = self.core.try_save() or 'not written'
        self.core.close()
        self._publish_progress()
        self.get_logger().info(f'learner stopped at version {self.core.agent.version}, '
                               f'{self.core.agent.total_steps} steps; checkpoint {path}')
        return 0

    # -- executor thread -----------------------------------------------------------------

    def _on_episode(self, msg, info):
        self.core.learner.post(msg.data)
        self._wake.set()
        sent = info.get('source_timestamp') or 0
        if sent > 0:
            self.core.note_latency((time.time_ns() - sent) * 1e-9)

    def _publish_progress(self):
        values = self.core.progress()
        level = U.WARN if values['rejected'] else U.OK
        message = f'version {values["version"]}, {values["steps"]} steps' + (
            f', done ({values["done"]})' if values['done'] else '')
        self.pub_diag.publish(U.diag_array(self, [U.status(
            f'{self.get_fully_qualified_name()}: progress', values, level, message,
            f'host:{socket.gethostname()}')]))

    # -- worker thread -------------------------------------------------------------------

    def _work(self):
        core = self.core
        core.store = EpisodeStore(self.rp.episode_dir)
        if self.lp.resume:
            fed = core.feed_stored(core.store)
            self.get_logger().info(f'fed {fed} recorded episodes the checkpoint had not '
                                   f'consumed, from {self.rp.episode_dir}')
        while not self.stop_event.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            core.learner.drain()
            if core.ready():
                row = core.update()
                if row is None:
                    continue
                self._publish_policy()
                self.get_logger().info(
                    f'v{row["version"]} {row["steps"]} steps, {row["episodes"]} episodes, '
                    f'return {row["mean_return"]:.2f}, distance {row["final_distance"]:.3f}, '
                    f'success {row["success_rate"]:.2f}, kl {row["kl"]:.4f}, update '
                    f'{row["update_s"]:.2f} s, stale {row["stale"]}')
                self._publish_progress()

    def _publish_policy(self):
        t0 = time.perf_counter()
        self.pub_policy.publish(U.blob_msg(self.core.policy_blob()))
        self.last_publish_s = time.perf_counter() - t0


def main(argv=None):
    torch.set_num_threads(1)  # process-wide: the learner shares the machine with the arms
    return U.run_node(lambda stop: LearnerNode(stop), argv, 'learner_node')


if __name__ == '__main__':
    raise SystemExit(main())
