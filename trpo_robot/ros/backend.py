"""RosBackend: an arm behind a ROS 2 driver (the UR driver, or twin_node) as a ``Backend``.

Time is the driver's: the stamp of the newest joint_states, advanced by the wall time
since it arrived times ``rate`` (the twin's real-time factor; 1 on a real arm, whose driver
stamps with the system clock). The shield's stale-state check, the lifecycle and the
learner timeout therefore run on the clock the states are stamped with, at any speed of
the twin, without the actor subscribing to /clock: handling a /clock message per tick in
the executor thread held the GIL just as the control thread woke, and cost ~0.5 ms at p99.

The driver's cycle is the tick. Every joint_states message marks one driver period; while
the environment holds a command, ``advance`` answers each tick by re-publishing that same
filtered command, so the command guard's timeout (80 ms by default) never fires while the
actor is alive, and fires within that timeout when it is not (the UR driver itself holds
the last command forever). Locking to the driver's own
messages, rather than to a free-running timer, keeps the command phase-locked to the
driver cycle at any real-time factor.

The control thread takes joint_states from its own subscription (on a node no executor
serves) instead of being handed them by the executor thread: that hand-over, a thread
waking up and waiting for the GIL, was most of the per-tick latency.

Timing figures, per tick: ``lateness`` from the joint_states message entering this process
(the DDS reader's receive timestamp) to the command for that tick leaving it (what this
process adds), ``transport`` from the driver's publish (DDS source timestamp) to that
receipt, and ``overruns`` (driver periods that passed without a command from us).
"""
from dataclasses import replace
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Bool, Float64MultiArray

from trpo_robot.robot.backend import Backend, BackendFault, Capabilities, JointState
from trpo_robot.robot.follow import FollowWatchdog
from trpo_robot.robot.rate import LatenessHistogram, TimingStats
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.acting import TeleportUnavailable
from trpo_robot.ros.guard_watch import GuardWatch
from trpo_robot.ros.rclpy_internals import TakenSubscriptions

FREEDRIVE_KEEPALIVE = 0.5
"""s of the node's clock between freedrive keep-alives. The UR driver's
freedrive_mode_controller leaves freedrive after ``inactive_timeout`` (10 s by default)
without an enable message; 2 Hz is what its users publish."""


class BackendStalled(BackendFault):
    """No joint_states for stall_timeout wall seconds: the driver (or twin) is gone or its
    clock stopped. A zero command has been published; the driver's own timeout covers the
    case that it cannot arrive."""


class ArmNotFollowing(BackendFault):
    """The arm did not do what it was commanded (protective stop, stopped program, inactive
    controller, e-stop): the episode is aborted as arm_not_following and the arm held."""

    cause = 'arm_not_following'


class GuardSilent(BackendFault):
    """The command guard relayed nothing to the driver while this actor kept commanding:
    it is dead or hung, and the UR driver holds whatever it relayed last, forever. A zero
    has been published straight to the driver's command topic; the episode is aborted and
    the arm held, as after any fault."""


GUARD_SLACK = 0.05
"""Wall s added to two guard timeouts of driver time before a silent guard counts as lost,
for the host's delays when guard and actor run at SCHED_FIFO (a busy machine then holds a
relay for tens of ms; the chaos soak saw 71 ms at equal priorities). Too short, and a slow
guard costs an aborted episode and an operator's reset; too long, and a dead guard's last
command runs on."""
GUARD_SLACK_NORMAL = 1.5
"""The same without SCHED_FIFO (``realtime: false``, or not permitted): a normal-priority
process on a loaded 2-core machine is held for 100 ms and more. Seen: a guard silent for
92 ms at start-up beside a learner importing torch, and a fresh-clone `make test` where
commands went unrelayed for 542 ms while a restarted learner loaded torch and its
checkpoint. Both times the watch held the arm and cost a test its run. On a real arm run
realtime (50 ms)."""


def guard_slack(realtime: bool) -> float:
    return GUARD_SLACK if realtime else GUARD_SLACK_NORMAL


class _Ring:
    """Last ``size`` samples for percentiles, plus the all-time maximum."""

    def __init__(self, size=10000):
        self.values = np.zeros(size)
        self.count = 0
        self.max = 0.0

    def add(self, x):
        self.values[self.count % len(self.values)] = x
        self.count += 1
        if x > self.max:
            self.max = x

    def percentiles(self):
        filled = self.values[:min(self.count, len(self.values))].copy()
        if not len(filled):
            return 0.0, 0.0
        p50, p99 = np.percentile(filled, [50.0, 99.0])
        return float(p50), float(p99)


class RosBackend(Backend):
    """``Backend`` over joint_states in and velocity commands out: Float64MultiArray
    straight to the driver's controller, or, through a command guard (``stamped=True``),
    a JointState stamped with the driver time of the state each command answers, so that
    the guard can tell a command decided before it stopped the arm from a new one."""

    capabilities = Capabilities(freedrive=True, lateness=True, overruns=True,
                                driver_ticks=True)

    def __init__(self, node: Node, joint_names, period: float, *, state_topic: str,
                 command_topic: str, stamped: bool = False, stall_timeout: float = 1.0,
                 freedrive_topic: str = 'freedrive_mode_controller/enable_freedrive_mode',
                 rate: float = 1.0, follow: FollowWatchdog | None = None,
                 driver_topic: str | None = None, guard_timeout: float = 0.0,
                 guard_slack: float = GUARD_SLACK):
        """``driver_topic`` (with ``stamped``): the driver's command topic behind the
        guard. The backend listens there for the guard's relays and, when the guard owes
        one for two ``guard_timeout`` of driver time (plus ``guard_slack`` of wall time,
        see guard_slack() and GuardWatch), publishes zero there itself and raises
        GuardSilent."""
        self.node = node
        self.follow = follow
        """Checks every acting tick that the arm follows the command (None: no check)."""
        self.program_running = None
        """The driver's robot_program_running (None: not reported); set by the node."""
        self._rate = float(rate)
        self._last_now = 0.0
        self._names = tuple(joint_names)
        self._n = len(self._names)
        self._period = float(period)
        self._stall = float(stall_timeout)
        self._state = None
        self._state_seq = 0
        self._state_wall = 0.0
        self._order = (None, None)
        self._tick_seq = 0
        self._tick_stamp = None
        self._unanswered = None  # monotonic receipt time of a tick no command answered yet
        self._held = np.zeros(self._n)
        self._asked = self._held.copy()  # the caller's command; _held is what is sent
        self._stamped = bool(stamped)
        self._msg = JointStateMsg(name=list(self._names)) if stamped else Float64MultiArray()
        self.last_send_wall = 0.0
        """Monotonic time of the last new command (send_velocity), for swap latency."""
        self.bad_states = 0
        self.bad_reason = ''
        self.stalls = 0
        self._lateness, self._transport = _Ring(), _Ring()
        self.lateness_histogram = LatenessHistogram()
        """Every answered tick's lateness since reset_timing (the ring keeps the last)."""
        self.ticks = 0
        self.overruns = 0
        self.reset_ticks = 0
        self._pub = node.create_publisher(type(self._msg), command_topic, U.QOS_COMMAND)
        self._rx = TakenSubscriptions(node, [(JointStateMsg, state_topic, U.QOS_STATE_SUB)])
        self._freedrive_pub = node.create_publisher(Bool, freedrive_topic, U.QOS_COMMAND)
        self.freedrive = False
        """A freedrive reset is on: no velocity command is published (see set_freedrive)."""
        self._freedrive_sent = None  # node-clock time of the last keep-alive
        self.freedrive_messages = 0
        self.guard_losses = 0
        self._watch = None
        if stamped and driver_topic:
            self._watch = GuardWatch(node, driver_topic, self._n,
                                     2 * guard_timeout / self._rate + guard_slack)

    # -- Backend protocol ------------------------------------------------------------------

    @property
    def joint_names(self):
        return self._names

    @property
    def period(self):
        return self._period

    def now(self) -> float:
        """The driver's clock (see the module doc); 0 before the first joint_states. Never
        goes back: the next stamp can be a little behind the extrapolation."""
        state = self._state
        if state is None:
            return 0.0
        now = state.stamp + (time.monotonic() - self._state_wall) * self._rate
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    def read(self) -> JointState:
        state = self._state
        if state is None:
            raise BackendStalled('no joint_states received yet')
        return state

    def send_velocity(self, v) -> None:
        v = np.asarray(v, dtype=float)
        if v.shape != (self._n,) or not np.all(np.isfinite(v)):
            raise ValueError(f'command must be {self._n} finite values, got {v!r}')
        self._asked = v.copy()
        if self._watch is not None and self._watch.lost:
            v = np.zeros(self._n)  # toward a guard found silent goes nothing but zero
        self._held = v.copy()
        self._publish(self._held)
        self.last_send_wall = time.monotonic()
        if self._watch is not None and self._watch.fault:
            fault, self._watch.fault = self._watch.fault, ''
            raise GuardSilent(fault)

    def stop(self) -> None:
        """Zero command now. Not a tick answer: stopping ends the acting, and the gap to
        the next command (a reset) is not control-loop lateness."""
        self._held = np.zeros(self._n)
        self._asked = self._held.copy()
        self._unanswered = None
        self._publish(self._held)
        if self.follow is not None:
            self.follow.reset()

    def advance(self, duration: float) -> None:
        """Let ``duration`` pass on the driver's cycle, re-sending the held command once per
        tick. The last tick is left for the caller's next command to answer (one command
        per driver period, not two)."""
        if self._watch is not None and self._watch.lost and np.any(self._asked != 0.0):
            # Acting (an operator reset the arm) while the guard is still silent: the
            # driver holds our direct zero, and the episode would only look acted.
            fault, self._watch.fault = self._watch.fault or self._watch.still_lost(), ''
            self.stop()
            raise GuardSilent(fault)
        n = max(1, int(round(duration / self._period)))
        elapsed = 0
        while elapsed < n:
            elapsed += self._next_tick()
            if elapsed < n:
                self._publish(self._held)

    def close(self) -> None:
        self.stop()

    def advance_untimed(self) -> None:
        """One driver period between episodes (the lifecycle's stop and reset ticks): the
        caller has sent this period's command; the tick is counted in ``reset_ticks``, not
        in the agent's timing figures, so reset time never dilutes or inflates them."""
        self._next_tick(acting=False)
        self.reset_ticks += 1
        self._freedrive_keepalive()

    def set_freedrive(self, on: bool) -> None:
        """The lifecycle's freedrive hook: hand the arm to the operator, or take it back.

        On: Bool True on ``freedrive_topic``, re-sent every FREEDRIVE_KEEPALIVE s from the
        control thread's ticks (``advance_untimed``); while on, no velocity command is
        published, so neither the driver nor a twin fights the hand (the lifecycle's zero
        commands are dropped here). Off: False once; commands flow again, starting at zero.
        """
        self._held = np.zeros(self._n)
        self.freedrive = bool(on)
        self._send_freedrive(self.freedrive)

    def _send_freedrive(self, on):
        self._freedrive_pub.publish(Bool(data=on))
        self._freedrive_sent = self.now() if on else None
        self.freedrive_messages += 1

    def _freedrive_keepalive(self):
        """Re-send True when FREEDRIVE_KEEPALIVE has passed (or the clock went back)."""
        if self.freedrive and not 0 <= self.now() - self._freedrive_sent < FREEDRIVE_KEEPALIVE:
            self._send_freedrive(True)

    # -- for the actor ---------------------------------------------------------------------

    @property
    def lateness(self) -> float:
        """Lateness of the newest answered tick, s (ArmEnv puts it in info['timing'])."""
        ring = self._lateness
        return float(ring.values[(ring.count - 1) % len(ring.values)]) if ring.count else 0.0

    @property
    def state_topic(self) -> str:
        return self._rx.subscriptions[0].topic_name

    def command_listeners(self) -> int:
        """Subscribers matched to the command topic (the guard, or the driver)."""
        return self._pub.get_subscription_count()

    @property
    def guard_lost_after(self) -> float:
        """Wall s the guard had owed a relay when it was last found lost (0: never)."""
        return 0.0 if self._watch is None else self._watch.lost_after

    def guard_relays(self) -> bool:
        """The guard has relayed a command of ours to the driver (True without a guard
        watch). A matched subscription proves less: the guard's side of discovery, or the
        guard itself, can lag the actor's by a second on a loaded host, and an episode
        started then went unrelayed and ended with the arm held as 'not following'."""
        return self._watch is None or self._watch.relayed_once

    def wait_for_state(self, timeout: float) -> bool:
        """Block until a joint_states has arrived (True) or ``timeout`` wall seconds pass."""
        deadline = time.monotonic() + timeout
        self._receive(0.0)
        while self._state is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._receive(remaining)
        return True

    def driver_alive(self, within: float | None = None) -> bool:
        """A joint_states arrived within the last ``within`` wall seconds."""
        within = self._stall if within is None else within
        return self._state is not None and time.monotonic() - self._state_wall < within

    def resync(self) -> None:
        """Take the newest reading as the current tick without counting the gap as
        overruns: after a pause that was not acting (waiting for a policy, a stall)."""
        self._tick_seq = self._state_seq
        self._tick_stamp = None if self._state is None else self._state.stamp
        self._unanswered = None
        if self.follow is not None:
            self.follow.reset()

    def timing(self) -> TimingStats:
        p50, p99 = self._lateness.percentiles()
        return TimingStats(self.ticks, self.overruns, p50, p99, self._lateness.max)

    def transport_timing(self) -> TimingStats:
        p50, p99 = self._transport.percentiles()
        return TimingStats(self._transport.count, 0, p50, p99, self._transport.max)

    def reset_timing(self) -> None:
        self._lateness, self._transport = _Ring(), _Ring()
        self.lateness_histogram.reset()
        self.ticks = self.overruns = 0

    def timing_record(self) -> dict:
        """The lateness histogram with the counters it must agree with (``answered``: the
        ticks a command answered, each one in the histogram once), as plain JSON.
        ``period_s`` is the driver period in wall time, as lateness is (on a twin at 8x
        real time a 10 ms period passes in 1.25 ms)."""
        return {**self.lateness_histogram.to_dict(), 'answered': self._lateness.count,
                'ticks': self.ticks, 'overruns': self.overruns,
                'period_s': self._period / self._rate}

    # -- internals ---------------------------------------------------------------------

    def _publish(self, command):
        if not self.freedrive:  # in freedrive the arm is the operator's (set_freedrive)
            self._pub.publish(self._command_message(command))
            if self._watch is not None and self._watch.published():
                self.guard_losses += 1
        tick = self._unanswered
        if tick is not None:
            self._unanswered = None
            lateness = time.monotonic() - tick
            self._lateness.add(lateness)
            self.lateness_histogram.add(lateness)

    def _command_message(self, command):
        msg = self._msg
        if not self._stamped:
            msg.data = command.tolist()
            return msg
        answered = 0.0 if self._state is None else self._state.stamp
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
            int(round(answered * 1e9)), 1_000_000_000)
        msg.velocity = command.tolist()
        return msg

    def _next_tick(self, acting=True) -> int:
        """Wait for the next joint_states; return how many driver periods it advanced.

        acting=False (waiting for a teleport, the arm stopped): the tick is neither timed
        nor counted, since no command was due."""
        deadline = time.monotonic() + self._stall
        self._receive(0.0)
        while self._state_seq == self._tick_seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._receive(remaining)
        else:
            state, self._tick_seq = self._state, self._state_seq
            receipt = self._state_wall
            previous, self._tick_stamp = self._tick_stamp, state.stamp
            periods = 1
            if previous is not None and state.stamp > previous:
                periods = max(1, int(round((state.stamp - previous) / self._period)))
            if acting:
                self.ticks += periods
                self.overruns += periods - 1
                if self._unanswered is not None:
                    self.overruns += 1  # the previous tick got no command at all
                self._unanswered = receipt
                self._check_following(state)
            return periods
        self.stalls += 1
        self._held = np.zeros(self._n)
        self._publish(self._held)
        raise BackendStalled(f'no joint_states for {self._stall} s of wall time: the driver '
                             'or twin is gone or paused; arm stopped')

    def _check_following(self, state):
        """Raise ArmNotFollowing (after a zero command) when the robot cannot or does not
        move as commanded."""
        if self.program_running is False:
            why = ('the External Control program is not running (robot_program_running is '
                   'false): press play on the pendant or restart it with the dashboard')
        elif self.follow is not None and self.follow.tick(self._held, state.velocity):
            why = self.follow.explain()
        else:
            return
        self.stop()
        raise ArmNotFollowing(why)

    def _receive(self, timeout):
        """Wait up to ``timeout`` s for joint_states, then take every queued one (the
        newest wins). The control thread takes them itself, so no other thread has to
        hand a reading over: waking a thread that needs the GIL cost ~0.2 ms per tick."""
        self._rx.wait(timeout)
        while (taken := self._rx.take()) is not None:
            self._on_state(*taken)

    def _on_state(self, msg, info):
        """Validate and reorder one reading (control thread); the newest one wins.

        Its receipt is when DDS received it (the reader's timestamp), not when this thread
        took it, so lateness counts the wait for the control thread too."""
        now = time.monotonic()
        received = info.get('received_timestamp', 0)
        wall = now - min(max(0.0, time.time() - received * 1e-9), 1.0) if received else now
        names = tuple(msg.name)
        order = self._order[1] if self._order[0] == names else self._index(names)
        if order is None:
            return
        pos = np.asarray(msg.position, dtype=float)
        vel = np.asarray(msg.velocity, dtype=float)
        if pos.shape != (len(names),) or vel.shape != (len(names),):
            return self._bad(f'{pos.size} positions and {vel.size} velocities for '
                             f'{len(names)} names')
        pos, vel = pos[order], vel[order]
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(vel))):
            return self._bad('non-finite joint readings')
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        source = info.get('source_timestamp', 0)  # ns, the publisher's system clock
        if source:
            arrived = received if received else time.time_ns()
            self._transport.add(max(0.0, (arrived - source) * 1e-9))
        state = JointState(position=pos, velocity=vel, stamp=stamp)
        self._state_wall, self._state = wall, state  # the state last: now() reads it first
        self._state_seq += 1

    def _index(self, names):
        try:
            order = np.array([names.index(j) for j in self._names])
        except ValueError:
            missing = [j for j in self._names if j not in names]
            self._bad(f'joint_states lacks {missing}')
            return None
        self._order = (names, order)
        return order

    def _bad(self, reason):
        self.bad_states += 1
        self.bad_reason = reason


class SimRosBackend(RosBackend):
    """RosBackend plus ``reset_state`` through the twin's teleport topic, so ArmEnv resets
    the twin in one driver period instead of driving there (1-2 s of robot time)."""

    capabilities = replace(RosBackend.capabilities, teleport=True)
    RESEND_TICKS = 10
    """Driver periods without effect before a teleport request is sent again."""
    SETTLE_TICKS = 3
    """Driver periods a repeated request is given to land before the pose counts."""

    def __init__(self, node, joint_names, period, *, teleport_topic, tolerance=5e-3,
                 max_ticks=50, **kwargs):
        super().__init__(node, joint_names, period, **kwargs)
        self.teleport_requests = 0
        self._teleport = node.create_publisher(Float64MultiArray, teleport_topic,
                                               U.QOS_COMMAND)
        self._topic = teleport_topic
        self._tolerance, self._max_ticks = tolerance, max_ticks

    def reset_state(self, position, velocity=None) -> None:
        if velocity is not None and np.any(np.asarray(velocity) != 0):
            raise ValueError('the twin teleports to rest only')
        if self._teleport.get_subscription_count() == 0:
            raise TeleportUnavailable(f'nobody serves {self._teleport.topic_name}')
        target = np.asarray(position, dtype=float)
        self.stop()
        asked = self.read().stamp
        msg = Float64MultiArray()
        msg.data = target.tolist()
        since_send = None
        for tick in range(self._max_ticks):
            # Asked again when a request shows no effect: a publisher can see the twin's
            # subscription before the twin has matched it back, and a request sent in that
            # window is lost (seen at startup). After a repeat, success must outlast the
            # repeat's delivery, so that a late duplicate cannot land in the episode.
            if since_send is None or since_send >= self.RESEND_TICKS:
                self._teleport.publish(msg)
                since_send = 0
                self.teleport_requests += 1
            self._next_tick(acting=False)
            since_send += 1
            state = self.read()
            self._publish(self._held)
            arrived = state.stamp > asked and \
                np.max(np.abs(state.position - target)) < self._tolerance
            if arrived and (tick < self.RESEND_TICKS or since_send > self.SETTLE_TICKS):
                self.resync()
                return
        raise TeleportUnavailable(f'the twin did not teleport within {self._max_ticks} '
                                  f'driver periods')
