"""dxl_driver_node: a Dynamixel chain behind the interface of the UR ROS 2 driver.

The same topics as twin_node and the UR driver, so the actor cannot tell them apart:
sensor_msgs/JointState on joint_states once per bus cycle (stamped with the system clock
at the instant of the read), joint velocities (std_msgs/Float64MultiArray) on
forward_velocity_controller/commands, freedrive (std_msgs/Bool) on
freedrive_mode_controller/enable_freedrive_mode, and diagnostic_msgs/DiagnosticArray on
/diagnostics.

One thread owns the serial bus (DynamixelBackend): each cycle it takes the newest command,
writes it (a held command is written again every cycle, like the UR forward controller),
reads the servos and publishes the reading. Lines of defence, outermost first: the
command guard upstream; ``driver_command_timeout`` here (zero velocity when no command
came for that long; config/dxl.yaml: 0.25 s, 0 holds forever as the UR forward controller
does); the servos' Bus Watchdog, armed at bring-up, which stops them by itself when
this process dies or hangs. Torque goes off on every way out (SIGINT, SIGTERM, an
exception); a bus error stops the arm, is logged once, and ends the node with exit code 1
without another byte written.
"""
import threading
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from trpo_robot.hw.backend import DynamixelBackend
from trpo_robot.hw.bus import ServoFault
from trpo_robot.hw.config import load_config
from trpo_robot.hw.control_table import hardware_error_names
from trpo_robot.paths import urdf_path
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.params import DxlDriverParams, ParamError, RobotParams

LOG_EVERY = 2.0
"""Wall seconds between repeated warnings of one kind."""
REALTIME_PRIORITY = 50
"""SCHED_FIFO priority of the bus thread (ros2_control's loop priority)."""


class DxlDriverNode(U.WorkerNode, Node):
    def __init__(self, stop: threading.Event, node_name='dxl_driver_node'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        self.p, self.d = U.read_params(self, RobotParams, DxlDriverParams)
        p, d = self.p, self.d
        if p.robot != 'dxl':
            raise ParamError(f'robot is {p.robot!r}; dxl_driver_node drives a Dynamixel arm '
                             '(give it config/dxl.yaml)')
        config = load_config(d.dxl_config or None, port=d.port or None)
        if abs(config.period - p.driver_period) > 1e-9:
            raise ParamError(f'driver_period {p.driver_period} s differs from the bus period '
                             f'{config.period} s of {d.dxl_config or "config/dxl_hw.yaml"}')
        spec = RobotSpec.from_urdf(urdf_path(config.urdf))
        self._lock = threading.Lock()
        self._command = None      # (velocities, monotonic time of arrival) or None: hold 0
        self._fresh = False       # a command (or a bad one) arrived since the bus looked
        self._freedrive_at = None  # monotonic time of the newest True on freedrive_topic
        self._stopping = threading.Event()
        self._warn = U.ThrottledWarnings(self.get_logger(), LOG_EVERY)
        self.counters = dict(commands=0, bad_commands=0, timeout_stops=0,
                             freedrive_messages=0)
        self.state = 'idle'
        self.fault = None
        self.last_stop_age = float('nan')
        self._cycle = dict(n=0, total=0.0, max=0.0)
        self._system = Clock(clock_type=ClockType.SYSTEM_TIME)

        self.backend = DynamixelBackend(config, spec)  # bring-up: torque on, watchdog armed
        self.names = list(self.backend.joint_names)
        self.n = len(self.names)
        self.pub_state = self.create_publisher(JointState, p.joint_states_topic,
                                               U.QOS_STATE_PUB)
        self.pub_diag = U.diag_publisher(self)
        self.create_subscription(Float64MultiArray, p.command_topic, self._on_command,
                                 U.QOS_COMMAND)
        self.create_subscription(Bool, p.freedrive_topic, self._on_freedrive, U.QOS_COMMAND)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=U.steady_clock())
        self._msg = JointState()
        self._msg.name = self.names
        self.thread = U.Worker('bus', self._run, self.get_logger())
        # run_node applies it to every thread: one holding the GIL must not be preempted
        self.realtime_priority = REALTIME_PRIORITY if p.realtime else 0
        timeout = p.driver_command_timeout
        self.get_logger().info(
            f'Dynamixel arm on {config.port}: servos {list(self.backend.ids)} for joints '
            f'{self.names}, bus period {config.period * 1e3:.0f} ms, Bus Watchdog '
            f'{config.watchdog_ms:.0f} ms, command timeout '
            f'{f"{timeout:g} s" if timeout else "off (hold forever)"}')

    # -- node lifecycle (run_node) -------------------------------------------------------

    def failed(self):
        return self.fault is not None or super().failed()

    def shutdown(self):
        """Torque off whatever happened (close() is a no-op for a bus that already
        faulted: the fault path turned the torque off and nothing more is written)."""
        self._stopping.set()
        self.thread.join(timeout=5.0)
        self.backend.close()
        if self.fault is None:
            self.get_logger().info('stopped: torque off on every servo')
        return 0

    # -- subscriptions (executor thread) -------------------------------------------------

    def _on_command(self, msg):
        command = np.asarray(msg.data, dtype=float)
        reason = U.command_problem(command, self.names)
        with self._lock:
            if reason is None:
                self.counters['commands'] += 1
                self._command = (command, time.monotonic())
            else:
                self.counters['bad_commands'] += 1
                self._command = None  # a bad stream is no stream: stop
            self._fresh = True
        if reason is not None:
            self._warn('bad_command', f'rejected a command ({reason}); stopping the arm '
                       f'[{self.counters["bad_commands"]} so far]')

    def _on_freedrive(self, msg):
        with self._lock:
            self.counters['freedrive_messages'] += 1
            self._freedrive_at = time.monotonic() if msg.data else None

    # -- the bus loop (bus thread) -------------------------------------------------------

    def _run(self):
        try:
            self._publish_state()
            stopped = True
            while not self._stopping.is_set():
                stopped = self._apply_inputs(stopped)
                self.backend.advance(self.backend.period)
                self._note_cycle()
                self._publish_state()
        except ServoFault as fault:
            self.fault = fault
            self.state = 'fault'
            self.get_logger().error(
                f'{fault}. The arm was stopped (goal velocity 0, torque off where the bus '
                'still answered; the Bus Watchdog stops the servos otherwise) and nothing '
                'more is written. Fix the cause, then restart this node.')

    def _apply_inputs(self, stopped):
        """Freedrive, then the newest command or its absence; whether the arm is held at
        zero velocity afterwards."""
        with self._lock:
            command, fresh = self._command, self._fresh
            self._fresh = False
        now = time.monotonic()
        if self._update_freedrive(now):
            with self._lock:  # the arm holds where the hand left it until a new command
                self._command, self._fresh = None, False
            return True
        if self.backend.freedrive:
            return True  # the operator's: commands and the timeout do not apply
        timeout = self.p.driver_command_timeout
        if command is None:
            if fresh or not stopped:
                self.backend.stop()
                self.state = 'stopped (bad command)' if fresh else 'holding'
            return True
        if timeout and now - command[1] >= timeout:
            if not stopped:
                self.backend.stop()
                self.counters['timeout_stops'] += 1
                self.last_stop_age = now - command[1]
                self.state = 'stopped (command timeout)'
                self._warn('timeout', f'no command for {self.last_stop_age:.3f} s (driver_'
                           f'command_timeout {timeout:g} s): wrote zero velocity, holding')
            return True
        if fresh:
            self.backend.send_velocity(command[0], at_once=False)
            self.state = 'commanded'
            return not np.any(command[0])  # a held zero has nothing to time out
        return stopped

    def _update_freedrive(self, now):
        """True when freedrive started or ended (the arm is then not commanded)."""
        state = U.switch_freedrive(self.backend, self._freedrive_at, now, self.get_logger(),
                                   'freedrive (torque off)')
        if state is not None:
            self.state = state
        return state is not None

    def _note_cycle(self):
        c = self._cycle
        c['n'] += 1
        c['total'] += self.backend.cycle_time
        c['max'] = max(c['max'], self.backend.cycle_time)

    def _publish_state(self):
        reading = self.backend.read()
        age_ns = int(max(0.0, self.backend.now() - reading.stamp) * 1e9)
        msg = self._msg
        msg.header.stamp = (self._system.now() - Duration(nanoseconds=age_ns)).to_msg()
        msg.position = reading.position.tolist()
        msg.velocity = reading.velocity.tolist()
        self.pub_state.publish(msg)

    # -- diagnostics (executor thread) ---------------------------------------------------

    def _publish_diagnostics(self):
        name = self.get_fully_qualified_name()
        statuses = [self._driver_status(name)]
        statuses += [self._servo_status(name, sid, dict(h))
                     for sid, h in sorted(list(self.backend.health.items()))]
        self.pub_diag.publish(U.diag_array(self, statuses))

    def _driver_status(self, name):
        be, c = self.backend, self._cycle
        self._cycle = dict(n=0, total=0.0, max=0.0)
        stats = be.stats()
        with self._lock:
            command = self._command
        values = dict(state=self.state, port=be.config.port, torque=be.torque_enabled,
                      freedrive=be.freedrive,
                      command_timeout=self.p.driver_command_timeout,
                      last_command_age=(time.monotonic() - command[1]) if command
                      else float('nan'), last_stop_age=self.last_stop_age,
                      cycles=stats['cycles'],
                      cycle_time_ms=1e3 * c['total'] / c['n'] if c['n'] else float('nan'),
                      cycle_time_max_ms=1e3 * c['max'], overruns=stats['overruns'],
                      lateness_p99_ms=1e3 * stats['lateness_p99'],
                      lateness_max_ms=1e3 * stats['lateness_max'],
                      transactions=stats['transactions'], retries=stats['retries'],
                      timeouts=stats['timeouts'], corrupt=stats['corrupt'],
                      watchdog_ms=be.config.watchdog_ms,
                      watchdog_rearms=stats['watchdog_rearms'],
                      watchdog_trips=stats['watchdog_trips'], **self.counters,
                      fault=str(self.fault or ''))
        if self.fault is not None:
            level, message = U.ERROR, str(self.fault)
        elif self.counters['bad_commands'] or stats['watchdog_trips']:
            level, message = U.WARN, self.state
        else:
            level, message = U.OK, self.state
        return U.status(f'{name}: driver', values, level, message, be.config.port)

    def _servo_status(self, name, sid, health):
        bits = int(health.get('hardware_error', 0))
        temperature = health.get('temperature', float('nan'))
        limit = health.get('temperature_limit', 80)
        hot = temperature >= limit - self.backend.config.temperature_margin
        values = dict(hardware_error=', '.join(hardware_error_names(bits)) or 'none',
                      temperature=temperature, temperature_limit=limit,
                      voltage=health.get('voltage', float('nan')),
                      bus_watchdog=health.get('bus_watchdog', ''),
                      model=health.get('model', ''), firmware=health.get('firmware', ''))
        level = U.ERROR if bits else U.WARN if hot else U.OK
        message = ('hardware error' if bits else f'{temperature} deg C, near its limit'
                   if hot else 'ok')
        return U.status(f'{name}: servo {sid}', values, level, message,
                        f'{self.backend.config.port}:dynamixel:{sid}')


def main(argv=None):
    return U.run_node(lambda stop: DxlDriverNode(stop), argv, 'dxl_driver_node')


if __name__ == '__main__':
    raise SystemExit(main())
