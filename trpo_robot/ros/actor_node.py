"""actor_node: the arm under the current policy, one episode after another.

ArmEnv over a RosBackend (so every command passes the SafetyShield), driven by a control
thread of its own; the executor spins in another thread and only decodes, validates and
builds received policies, which the control thread swaps in by one reference at the next
episode boundary (or tick). Finished episodes leave on ~/episodes; /diagnostics says how
the timing, the safety shield and the learner are doing. If the learner goes quiet the
actor keeps acting on the last good policy and says so. Commands go to the command guard
(guard_node, its own process), which zeroes them when this process dies or hangs: the UR
driver would hold the last one forever. Every acting tick checks that the arm follows the
command (a protective stop, a stopped program or an inactive controller leave joint_states
flowing); an arm that does not is held and its episode aborted as arm_not_following.
"""
import json
from pathlib import Path
import threading

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, Float64, Float64MultiArray, String, UInt8MultiArray
from std_srvs.srv import Trigger

from trpo_robot import auth
from trpo_robot.atomic import atomic_write
from trpo_robot.paths import urdf_path
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.follow import FollowWatchdog
from trpo_robot.robot.keyboard import KEYBOARD_MAPPING
from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, LifecycleError
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.robot.teleop import joy_mapping
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.acting import Actor, PolicyInbox, TwinHoldRelease
from trpo_robot.ros.backend import GUARD_SLACK, guard_slack, RosBackend, SimRosBackend
from trpo_robot.ros.params import ParamError, RobotParams, task_dims
from trpo_robot.store import EpisodeStore
from trpo_robot.validation.gate import starting_policy
from trpo_robot.validation.record import GateError
from trpo_robot.validation.trust import TrustCheck, TrustLimits

LOG_EVERY = 5.0
QOS_JOY = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
QOS_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""The driver's robot_program_running is latched."""
"""Newest reading only; best effort matches joy drivers of either reliability."""
SWAP_FIELDS = ('version', 'previous', 'received', 'built', 'swapped', 'first_action',
               'step_in_episode', 'missed_ticks')
"""Layout of a ~/swaps message (Float64MultiArray); times are CLOCK_MONOTONIC seconds."""


class ActorNode(U.WorkerNode, Node):
    def __init__(self, stop: threading.Event, node_name='actor_node'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        (self.p,) = U.read_params(self, RobotParams)
        p = self.p
        self.stop_event = stop
        self.task = p.task_spec()
        spec = RobotSpec.from_urdf(urdf_path(self.task.urdf), ee_link=self.task.ee_link)
        _check_freedrive(p)
        U.keep_own_time(self, 'the actor keeps time from the joint_states stamps (a twin '
                        'stamps them with sim time)')
        # On a twin the tolerances are the host's, in wall time: at 8x a 25 ms hiccup of
        # this process is 0.2 s of sim time in which the arm seems not to follow. Without
        # SCHED_FIFO the host holds this process, the guard or the twin for hundreds of ms
        # (GUARD_SLACK_NORMAL), and the window allows that as the guard watch does: seen,
        # a fleet test's guard held 0.35 s at start-up, an arm 'not following' and held.
        host = p.real_time_factor if p.sim_clock else 1.0
        held_host = guard_slack(p.realtime) - GUARD_SLACK
        follow = (FollowWatchdog(p.driver_period, lag=p.follow_lag * host,
                                 window=(p.follow_window + held_host) * host)
                  if p.follow_check else None)
        common = dict(state_topic=p.joint_states_topic,
                      command_topic=p.guard_topic if p.require_guard else p.command_topic,
                      stamped=p.require_guard,
                      freedrive_topic=p.freedrive_topic, stall_timeout=p.stall_timeout,
                      rate=p.real_time_factor if p.sim_clock else 1.0, follow=follow,
                      driver_topic=p.command_topic if p.require_guard else None,
                      guard_timeout=p.effective_guard_timeout(),
                      guard_slack=guard_slack(p.realtime))
        if p.teleport:
            self.backend = SimRosBackend(self, spec.joint_names, p.driver_period,
                                         teleport_topic=p.teleport_topic, **common)
        else:
            self.backend = RosBackend(self, spec.joint_names, p.driver_period, **common)
        self.env = ArmEnv(self.backend, self.task, spec)
        obs_dim, act_dim = task_dims(self.task)
        if (obs_dim,) != self.env.observation_space.shape or \
                (act_dim,) != self.env.action_space.shape:
            raise ValueError('task_dims disagrees with ArmEnv; update params.task_dims')
        self._warn = U.ThrottledWarnings(self.get_logger(), LOG_EVERY)
        self.inbox = PolicyInbox(obs_dim, act_dim, keyring=auth.Keyring.from_file(p.key_file),
                                 robot=p.robot, task=self.task.name,
                                 max_bytes=p.max_policy_bytes,
                                 log=lambda text: self._warn('policy', text))
        if p.require_validation:
            self._gate(obs_dim, act_dim)
        # The node's name is the actor's identity: stable across restarts, so the episode
        # store (one folder per actor) continues its sequence and a resumed learner knows
        # which episodes it consumed.
        self.actor_id = self.get_fully_qualified_name()
        self.store = EpisodeStore(p.episode_dir)
        self.pub_state = self.create_publisher(String, '~/state', U.QOS_POLICY)
        self._mapping = joy_mapping(p.joy_mapping) if p.joy_mapping else KEYBOARD_MAPPING
        self.lifecycle = None
        """Built by the control thread once the driver (and, in sim, the clock) runs: the
        lifecycle's timeouts count from its construction on the graph clock."""
        self.actor = Actor(self.env, self.inbox, self._publish_episode, robot=p.robot,
                           task=self.task.name, actor_id=self.actor_id, seed=p.seed,
                           swap_at=p.swap_at, on_swap=self._on_swap,
                           log=lambda text: self._warn('actor', text), store=self.store,
                           teleport=p.teleport, synchronous=p.synchronous,
                           hold_timeout=p.learner_timeout,
                           hold_release=None if p.require_validation else TwinHoldRelease(
                               p.twin_hold_releases, self.get_logger().warning))
        self.actor.outbox.start()  # record and publish off the control thread
        self.realtime_priority = 50 if p.realtime else 0  # run_node applies it
        self.last_swap = None

        self.pub_episodes = self.create_publisher(UInt8MultiArray, p.episodes_topic,
                                                  U.qos_episodes(p.episode_queue_depth))
        self.pub_diag = U.diag_publisher(self)
        self.pub_swaps = self.create_publisher(Float64MultiArray, '~/swaps', U.QOS_DIAG)
        self.sub_policy = self.create_subscription(UInt8MultiArray, p.policy_topic,
                                                   self._on_policy, U.QOS_POLICY)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=U.steady_clock())
        self.create_service(Trigger, '~/reset_timing', self._reset_timing)
        for name, call in (('~/reset_done', lambda lc: lc.confirm('service')),
                           ('~/reset', lambda lc: lc.request_reset()),
                           ('~/pause', lambda lc: lc.pause('service')),
                           ('~/resume', lambda lc: lc.resume()),
                           ('~/estop', lambda lc: lc.engage_estop('service')),
                           ('~/estop_release', lambda lc: lc.release_estop())):
            self.create_service(Trigger, name, self._trigger(call))
        self.sub_joy = self.create_subscription(Joy, p.joy_topic, self._on_joy, QOS_JOY)
        self.create_subscription(Bool, p.program_running_topic, self._on_program, QOS_LATCHED)
        self.create_subscription(Float64, p.speed_scaling_topic, self._on_speed_scaling,
                                 U.QOS_COMMAND)
        self.create_subscription(String, p.twin_conditions_topic, self._on_twin_conditions,
                                 QOS_LATCHED)
        self._publish_state()
        self.thread = U.Worker('control', self._control, self.get_logger())
        self.get_logger().info(
            f'actor {self.actor_id}: task {self.task.name}, agent step '
            f'{self.env.dt * 1e3:.0f} ms = {self.env.periods_per_step} driver periods, '
            f'swap at {p.swap_at}, reset by {p.reset_mode}, '
            f'{"synchronous" if p.synchronous else "asynchronous"}, episodes -> {p.episode_dir} '
            f'(from sequence {self.actor.sequence}) and '
            f'{self.pub_episodes.topic_name}, policy <- {self.sub_policy.topic_name}, '
            f'use_sim_time {self.get_parameter("use_sim_time").value}')

    # -- node lifecycle (run_node) -------------------------------------------------------

    def _gate(self, obs_dim, act_dim):
        """A real arm: a validated starting policy, and a trust check on every new one."""
        self.inbox.trust = TrustCheck(obs_dim, TrustLimits(kl_slack=self.p.trust_kl_slack))
        logger = self.get_logger()
        blob = starting_policy(self.p, obs_dim, act_dim, self.inbox.keyring, logger.info,
                               logger.warning)
        if blob:
            status = self.inbox.offer(blob)
            if status != 'accepted':
                raise GateError(f'policy_checkpoint {self.p.policy_checkpoint}: {status}')

    def shutdown(self):
        self.stop_event.set()
        self.thread.join(timeout=5.0)
        self.actor.outbox.close()  # every finished episode recorded (and sent) before exit
        for _ in range(3):  # reliable depth 1; repeated so a late joiner hears it too
            self.backend.stop()
        self._write_timing()
        s = self.actor.stats
        self.get_logger().info(f'actor stopped the arm: {s.episodes} episodes, {s.steps} '
                               f'steps, {s.swaps} policy swaps, {s.aborted} aborted')
        return 0

    def _write_timing(self):
        """Every answered tick's lateness, once the control thread is done with them: the
        diagnostics carry percentiles of the last ticks only (trpo-robot learn draws
        timing_histogram.png from this file)."""
        if not self.p.timing_dir:
            return
        path = Path(self.p.timing_dir) / self.get_namespace().strip('/') / 'timing.json'
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(self.backend.timing_record()).encode())
        except OSError as e:
            self.get_logger().warning(f'could not write {path}: {e}')

    # -- control thread ------------------------------------------------------------------

    def _control(self):
        self._wait_driver()
        self.lifecycle = EpisodeLifecycle.for_env(
            self.env, LifecycleConfig(reset_mode=self.p.reset_mode,
                                      reset_timeout=self.p.reset_timeout),
            mapping=self._mapping, logger=self.get_logger(),
            on_transition=self._publish_state)
        self.actor.lifecycle = self.lifecycle
        try:
            self.actor.run(self.stop_event, idle=self._wait_driver)
        finally:
            self.backend.stop()

    def _wait_driver(self):
        """Until joint_states flow (and, under use_sim_time, the clock runs) and, unless
        require_guard is off, the command guard relays: without one, a dead actor would
        leave the arm moving. Zero goes to the guard meanwhile: its relay to the driver,
        heard back, proves the whole path before the first motion command."""
        while not self.stop_event.is_set():
            waiting = self._waiting_for()
            if not waiting:
                self.backend.resync()
                return
            self.actor.stats.phase = waiting
            self._warn('driver', f'{waiting}: joint_states on {self.backend.state_topic}, '
                       f'a running clock and a command guard on {self.p.guard_topic} '
                       '(guard_node) relaying to the driver')
            self.backend.wait_for_state(0.2)
            self.stop_event.wait(0.05)

    def _waiting_for(self) -> str:
        """What the actor still waits for before it may command motion ('' for nothing)."""
        b = self.backend
        if self.p.require_guard and b.command_listeners() == 0:
            return 'waiting for the command guard'
        if not (b.driver_alive() and b.now() > 0.0):
            return 'waiting for the driver'
        if b.guard_relays():
            return ''
        b.stop()
        return 'waiting for the command guard to relay'

    def _publish_episode(self, blob):
        self.pub_episodes.publish(U.blob_msg(blob))

    def _on_swap(self, event):
        self.last_swap = event
        msg = Float64MultiArray()
        msg.data = [float(getattr(event, f)) for f in SWAP_FIELDS]
        self.pub_swaps.publish(msg)

    # -- executor thread -----------------------------------------------------------------

    def _on_policy(self, msg):
        status = self.inbox.offer(bytes(msg.data), graph_time=self.backend.now())
        if status == 'accepted':
            self.get_logger().info(f'policy version {self.inbox.latest().version} built; '
                                   f'swapping at the next {self.p.swap_at}')

    def _on_program(self, msg):
        self.backend.program_running = bool(msg.data)
        self.get_logger().info(f'driver: robot program {"running" if msg.data else "STOPPED"}')

    def _on_speed_scaling(self, msg):
        """The UR reports percent; a value outside 0..100 is ignored, not trusted."""
        value = float(msg.data)
        if self.backend.follow is not None and 0.0 <= value <= 100.0:
            self.backend.follow.speed_scaling = value / 100.0

    def _on_twin_conditions(self, msg):
        """The twin's draw, recorded with every episode from the next one on; anything
        but a JSON object is logged and ignored (it would poison every record)."""
        try:
            conditions = json.loads(msg.data)
        except ValueError:
            conditions = None
        if not isinstance(conditions, dict):
            self._warn('twin_conditions', f'ignored twin conditions that are not a JSON '
                       f'object: {msg.data[:80]!r}')
            return
        self.actor.twin_heard = conditions
        self.get_logger().info(f'twin conditions heard: {msg.data}')

    def _trigger(self, call):
        """A std_srvs/Trigger handler around one lifecycle request (executor thread; the
        lifecycle takes its own lock and never blocks on the control thread)."""
        def handle(request, response):
            lc = self.lifecycle
            if lc is None:
                response.success, response.message = False, 'waiting for the driver'
                return response
            try:
                response.success, response.message = call(lc)
            except LifecycleError as e:
                response.success, response.message = False, str(e)
            self._publish_state()
            return response
        return handle

    def _on_joy(self, msg):
        """One gamepad (or teleop-keyboard) reading; the mapper validates every field and
        answers anything odd with a zero command."""
        if self.lifecycle is None:
            return
        try:
            self.lifecycle.joy(list(msg.axes), list(msg.buttons), self.backend.now())
        except (LifecycleError, ValueError, TypeError) as e:
            self._warn('joy', f'ignored a Joy message: {e}')

    def _publish_state(self, transition=None):
        """The lifecycle phase on ~/state (latched: a late operator display gets it)."""
        phase = 'starting' if self.lifecycle is None else self.lifecycle.phase.value
        self.pub_state.publish(String(data=phase))

    def _reset_timing(self, request, response):
        """Start the timing figures afresh (after a warm-up, or to measure one phase)."""
        self.backend.reset_timing()
        response.success, response.message = True, 'timing statistics reset'
        return response

    def _publish_diagnostics(self):
        s, b = self.actor.stats, self.backend
        timing, transport = b.timing(), b.transport_timing()
        recent = s.returns[-10:]
        control = dict(
            phase=s.phase, episodes=s.episodes, segments=s.segments, steps=s.steps,
            aborted=s.aborted, last_return=s.last_return,
            mean_return_10=float(np.mean(recent)) if recent else float('nan'),
            last_distance=s.last_distance, ticks=timing.ticks, overruns=timing.overruns,
            lateness_p50_ms=timing.p50 * 1e3, lateness_p99_ms=timing.p99 * 1e3,
            lateness_max_ms=timing.max * 1e3, transport_p50_ms=transport.p50 * 1e3,
            transport_p99_ms=transport.p99 * 1e3, transport_max_ms=transport.max * 1e3,
            realtime=U.is_realtime(self.thread), bad_joint_states=b.bad_states, stalls=b.stalls,
            guard_losses=b.guard_losses, guard_lost_after_ms=b.guard_lost_after * 1e3,
            teleport_fallbacks=s.teleport_fallbacks, publish_failures=s.publish_failures,
            stored=s.stored, store_failures=s.store_failures, sequence=self.actor.sequence,
            reset_ticks=b.reset_ticks, teleports=s.teleports,
            freedrive=b.freedrive, synchronous=self.actor.synchronous,
            held_for_updates=s.held_for_updates, held_s=s.held_seconds)
        level = U.OK if s.aborted == 0 and b.stalls == 0 and s.store_failures == 0 else U.WARN
        learner_text, learner_level, policy = self._learner_state()
        swap = self.last_swap
        policy.update(
            swaps=s.swaps, received=self.inbox.received, accepted=self.inbox.accepted,
            rejected=self.inbox.rejected, repeats=self.inbox.repeats,
            unauthenticated=self.inbox.unauthenticated, replays=self.inbox.replays,
            untrusted=self.inbox.untrusted, gated=self.inbox.trust is not None,
            last_reject=self.inbox.last_reject,
            last_swap_latency_ms=(swap.first_action - swap.received) * 1e3 if swap else -1.0,
            last_swap_missed_ticks=swap.missed_ticks if swap else 0)
        safety = dict(intervention_steps=s.intervention_steps, **dict(s.interventions),
                      **{f'aborted_{k}': v for k, v in s.abort_causes.items()},
                      last_fault=s.last_fault,
                      program_running=b.program_running,
                      speed_scaling=b.follow.speed_scaling if b.follow else -1.0)
        lc = self.lifecycle
        lifecycle = lc.status() if lc is not None else {'phase': 'starting',
                                                        'instructions': ''}
        if lc is not None:
            lifecycle.update({f'{k}_s': v for k, v in lc.phase_seconds().items()})
        fqn = self.get_fully_qualified_name()
        self.pub_diag.publish(U.diag_array(self, [
            U.status(f'{fqn}: control', control, level, s.phase, self.actor_id),
            U.status(f'{fqn}: policy', policy, learner_level, learner_text, self.actor_id),
            U.status(f'{fqn}: safety', safety, U.OK,
                     f'{s.intervention_steps} steps changed by the shield', self.actor_id),
            U.status(f'{fqn}: lifecycle', lifecycle,
                     U.WARN if lifecycle['phase'] in ('hold', 'estop') else U.OK,
                     f'{lifecycle["phase"]}: {lifecycle["instructions"]}'.rstrip(': '),
                     self.actor_id)]))

    def _learner_state(self):
        latest = self.inbox.latest()
        publishers = self.sub_policy.get_publisher_count()
        values = dict(version=-1 if latest is None else latest.version,
                      learner_publishers=publishers)
        if latest is None:
            values.update(learner='waiting', policy_age=-1.0)
            return 'waiting for the first policy', U.WARN, values
        age = self.backend.now() - latest.received_graph
        values['policy_age'] = age
        if age > self.p.learner_timeout or publishers == 0:
            values['learner'] = 'stale'
            return (f'learner stale: no policy for {age:.1f} s ({publishers} publishers); '
                    f'acting on version {latest.version}'), U.WARN, values
        values['learner'] = 'alive'
        return f'acting on version {latest.version}', U.OK, values


def _check_freedrive(p):
    """Refuse at start what would fail at the first reset: on a UR, freedrive needs the
    velocity controller switched off (the driver refuses freedrive_mode_controller while a
    motion controller is active), which takes controller_manager's services."""
    if p.reset_mode != 'freedrive' or not p.is_ur:
        return
    try:
        import controller_manager_msgs.srv  # noqa: F401 - a ROS 2 machine has it
    except ImportError:
        raise ParamError(
            'reset_mode freedrive on a UR needs controller switching '
            '(forward_velocity_controller off, freedrive_mode_controller on) and '
            'controller_manager_msgs is not importable here: use reset_mode auto or teleop, '
            'or run on a ROS 2 machine with controller_manager_msgs') from None
    raise ParamError('reset_mode freedrive on a UR: controller switching is not built yet; '
                     'use reset_mode auto or teleop')


def main(argv=None):
    return U.run_node(lambda stop: ActorNode(stop), argv, 'actor_node')


if __name__ == '__main__':
    raise SystemExit(main())
