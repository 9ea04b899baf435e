"""twin_node: the MuJoCo twin behind the interface of the UR ROS 2 driver.

Publishes sensor_msgs/JointState on joint_states every driver period, takes joint
velocities (std_msgs/Float64MultiArray) on forward_velocity_controller/commands, and stops
the arm itself when the newest command is older than robot_receive_timeout, as the real
arm does (the forward controllers have no timeout of their own, so the arm's is the last
line). It is the graph's clock: /clock carries sim time, so with use_sim_time every timeout
and episode length keeps its meaning at any real-time factor.

Sim only: a std_msgs/Float64MultiArray of joint positions on ~/reset_state teleports the
arm (a standard service type cannot carry the pose); the actor falls back to driving the
arm home where nobody serves it.

Freedrive as the UR driver's freedrive_mode_controller: std_msgs/Bool True on
freedrive_topic turns it on for FREEDRIVE_TIMEOUT s of sim time (kept alive by repeated
Trues), False ends it. Meanwhile the servos let go and gravity compensation keeps the arm
floating, velocity commands and the receive timeout do not apply, and ~/reset_state is the
operator's hand; afterwards the servos hold at zero velocity.
"""
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from trpo_robot.ros import node_utils as U
from trpo_robot.ros.params import ParamError, RobotParams
from trpo_robot.twin.backend import MujocoBackend

LOG_EVERY = 2.0
"""Wall seconds between repeated warnings of one kind (a bad stream must not flood logs)."""
FREEDRIVE_TIMEOUT = 10.0
"""Sim s after the last True on freedrive_topic at which freedrive ends by itself (the UR
freedrive_mode_controller's default inactive_timeout)."""


class TwinNode(Node):
    def __init__(self, stop: threading.Event, node_name='twin_node'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        (self.p,) = U.read_params(self, RobotParams)
        p = self.p
        self.backend = MujocoBackend(p.robot, mode='paced', seed=p.seed,
                                     real_time_factor=p.real_time_factor)
        if not math.isclose(self.backend.period, p.driver_period, abs_tol=1e-9):
            raise ParamError(f'driver_period {p.driver_period} s differs from the twin model '
                             f'{p.robot!r} ({self.backend.period} s, sim/robots.yaml)')
        self.names = list(self.backend.joint_names)
        self.n = len(self.names)
        self._lock = threading.Lock()
        self._command = None     # (command, sim time of the last state before it arrived)
        self._fresh = False      # a command arrived since the physics thread last looked
        self._teleport = None
        self._freedrive_at = None  # sim time of the newest True on freedrive_topic
        self._sim_now = self.backend.now()
        self._warn = U.ThrottledWarnings(self.get_logger(), LOG_EVERY)
        self.counters = dict(commands=0, bad_commands=0, watchdog_stops=0, teleports=0,
                             bad_teleports=0, freedrive_messages=0)
        self.state = 'idle'
        self.last_command_sim = float('nan')
        self.last_stop_sim = float('nan')
        self.last_stop_age = float('nan')
        self._stopping = threading.Event()
        self._stop = stop

        self.pub_state = self.create_publisher(JointState, p.joint_states_topic,
                                               U.QOS_STATE_PUB)
        self.pub_clock = (self.create_publisher(Clock, p.clock_topic, U.QOS_CLOCK)
                          if p.sim_clock else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, '~/diagnostics', U.QOS_DIAG)
        self.create_subscription(Float64MultiArray, p.command_topic, self._on_command,
                                 U.QOS_COMMAND)
        self.create_subscription(Float64MultiArray, '~/reset_state', self._on_teleport,
                                 U.QOS_COMMAND)
        self.create_subscription(Bool, p.freedrive_topic, self._on_freedrive, U.QOS_COMMAND)
        self._diag_wall = (time.monotonic(), self._sim_now)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=U.steady_clock())
        self.thread = U.Worker('physics', self._run, self.get_logger())
        self._msg = JointState()
        self._msg.name = self.names
        self.get_logger().info(
            f'twin {p.robot}: {self.n} joints, driver period {p.driver_period * 1e3:.0f} ms, '
            f'real-time factor {p.real_time_factor:g}, receive timeout '
            f'{p.robot_receive_timeout * 1e3:.0f} ms, clock '
            f'{p.clock_topic if p.sim_clock else "system (no /clock)"}')

    # -- node lifecycle (run_node) -------------------------------------------------------

    def start(self):
        self.thread.start()

    def failed(self):
        return self.thread.error is not None

    def shutdown(self):
        self._stopping.set()
        self.thread.join(timeout=5.0)
        self.backend.close()
        return 0

    # -- subscriptions (executor thread) -------------------------------------------------

    def _on_command(self, msg):
        command = np.asarray(msg.data, dtype=float)
        reason = None
        if command.shape != (self.n,):
            reason = f'{command.size} values for {self.n} joints {self.names}'
        elif not np.all(np.isfinite(command)):
            reason = f'non-finite values {command.tolist()}'
        with self._lock:
            if reason is None:
                self.counters['commands'] += 1
                self._command = (command, self._sim_now)
            else:
                self.counters['bad_commands'] += 1
                self._command = None  # stop: a bad stream is no stream
            self._fresh = True
        if reason is not None:
            self._warn('bad_command', f'rejected a command ({reason}); stopping the arm '
                       f'[{self.counters["bad_commands"]} so far]')

    def _on_teleport(self, msg):
        target = np.asarray(msg.data, dtype=float)
        if target.shape != (self.n,) or not np.all(np.isfinite(target)):
            self.counters['bad_teleports'] += 1
            self._warn('bad_teleport', f'rejected a teleport request of {target.size} values '
                       f'(need {self.n} finite joint positions)')
            return
        with self._lock:
            self._teleport = target

    def _on_freedrive(self, msg):
        with self._lock:
            self.counters['freedrive_messages'] += 1
            self._freedrive_at = self._sim_now if msg.data else None

    # -- the driver loop (physics thread) ------------------------------------------------

    def _run(self):
        p = self.p
        if p.realtime:
            U.request_realtime(50, self.get_logger(), 'twin physics thread',
                               all_threads=True)
        stopped = True
        self._publish_state()
        while not self._stopping.is_set():
            with self._lock:
                command, fresh, teleport = self._command, self._fresh, self._teleport
                self._fresh, self._teleport = False, None
                if teleport is not None:
                    self._command = command = None
            now = self.backend.now()
            if self._update_freedrive(now):
                stopped = True
            if teleport is not None:
                self._do_teleport(teleport)
                stopped = True
            elif self.backend.freedrive:
                pass  # the operator's: no command, no receive timeout
            elif command is None:
                if not stopped or fresh:
                    self.backend.stop()
                    stopped = True
                    self.state = 'stopped (bad command)' if fresh else 'idle'
            elif now - command[1] >= p.robot_receive_timeout - 1e-9:
                if not stopped:
                    self.backend.stop()
                    stopped = True
                    self.counters['watchdog_stops'] += 1
                    self.last_stop_sim, self.last_stop_age = now, now - command[1]
                    self.state = 'stopped (receive timeout)'
                    self._warn('watchdog', f'no command for {now - command[1]:.3f} s of sim '
                               f'time (timeout {p.robot_receive_timeout} s): arm stopped')
            elif fresh:
                self.backend.send_velocity(command[0])
                stopped = False
                self.last_command_sim = command[1]
                self.state = 'commanded'
            self.backend.advance(p.driver_period)
            self._publish_state()

    def _update_freedrive(self, now):
        """Switch the servos when freedrive starts or ends (False, or no True for
        FREEDRIVE_TIMEOUT); True when it did (the arm is then not commanded)."""
        at = self._freedrive_at
        on = at is not None and now - at < FREEDRIVE_TIMEOUT
        if on == self.backend.freedrive:
            return False
        self.backend.set_freedrive(on)
        if on:
            self.state = 'freedrive'
        else:
            self.state = 'holding (freedrive ended)' if at is None else \
                'holding (freedrive keep-alive timed out)'
        self.get_logger().info(f'freedrive {"on" if on else "off"}: {self.state}')
        return True

    def _do_teleport(self, target):
        try:
            self.backend.reset_state(target)
        except ValueError as e:
            self.counters['bad_teleports'] += 1
            self._warn('bad_teleport', f'teleport refused: {e}')
            return
        self.counters['teleports'] += 1
        self.state = 'teleported'

    def _publish_state(self):
        reading = self.backend.read()
        self._sim_now = reading.stamp
        msg = self._msg
        if self.p.sim_clock:
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
                int(round(reading.stamp * 1e9)), 1_000_000_000)
        else:
            msg.header.stamp = self.get_clock().now().to_msg()
        msg.position = reading.position.tolist()
        msg.velocity = reading.velocity.tolist()
        self.pub_state.publish(msg)
        if self.pub_clock is not None:
            clock = Clock()
            clock.clock = msg.header.stamp
            self.pub_clock.publish(clock)

    # -- diagnostics ---------------------------------------------------------------------

    def _publish_diagnostics(self):
        wall, sim = time.monotonic(), self._sim_now
        w0, s0 = self._diag_wall
        self._diag_wall = (wall, sim)
        values = dict(state=self.state, sim_time=sim,
                      real_time_factor=self.p.real_time_factor,
                      measured_rtf=(sim - s0) / max(wall - w0, 1e-9),
                      last_command_sim=self.last_command_sim, last_stop_sim=self.last_stop_sim,
                      last_stop_age=self.last_stop_age, overruns=self.backend.overruns,
                      freedrive=self.backend.freedrive,
                      **self.counters)
        level = U.WARN if self.counters['bad_commands'] or self.counters['bad_teleports'] \
            else U.OK
        self.pub_diag.publish(U.diag_array(self, [U.status(
            f'{self.get_fully_qualified_name()}: driver', values, level, self.state)]))


def main(argv=None):
    return U.run_node(lambda stop: TwinNode(stop), argv, 'twin_node')


if __name__ == '__main__':
    raise SystemExit(main())
