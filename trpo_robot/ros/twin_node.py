"""twin_node: the MuJoCo twin behind the interface of the UR ROS 2 driver, as unforgiving.

Publishes sensor_msgs/JointState on joint_states every driver period and takes joint
velocities (std_msgs/Float64MultiArray) on forward_velocity_controller/commands. Like the
real driver's forward_velocity_controller it holds the newest command until another one
replaces it, with no staleness stop of its own (ros2_controllers#95): an actor that dies
leaves the arm moving, and only the command guard (guard_node) stops it. A
driver_command_timeout > 0 stands in for a driver that does stop stale commands
(dxl_driver_node's command_timeout). It is the graph's clock: /clock carries sim time.

The UR's ways of not moving while joint_states keep flowing can be switched on from a test
(std_srvs/Trigger services): ~/protective_stop, ~/stop_program, ~/deactivate_controller, and
~/recover (activates the controller, restarts the program, clears the stop). And the other
way round, ~/deactivate_joint_state_broadcaster: joint_states stop while the velocity
controller goes on executing (and holding) its command, as when that controller of the
driver is switched off or crashes; ~/recover activates it again. As on the real
robot, a recovered program goes on writing the command the controller holds, and an
inactive controller ignores commands (its subscription still exists, as the controller
manager's does) and forgets them. ~/speed_slider (std_msgs/Float64, 0..1) is the pendant's
speed slider; io_and_status_controller/robot_program_running (Bool, latched) and
speed_scaling_state_broadcaster/speed_scaling (Float64, percent) are published like the
driver's.

Sim only: a std_msgs/Float64MultiArray of joint positions on ~/reset_state teleports the
arm (a standard service type cannot carry the pose).

Freedrive as the UR driver's freedrive_mode_controller: std_msgs/Bool True on
freedrive_topic turns it on for 10 s of sim time (kept alive by repeated
Trues), False ends it. On a UR it is refused while the velocity controller is active, as
the driver refuses a second motion controller. Meanwhile the servos let go and gravity
compensation keeps the arm floating; afterwards the servos hold at zero velocity.

Twin conditions (the twin_* parameters: domain randomization, latency, sensor noise) are
drawn once at start; what was drawn is logged and latched on ~/conditions (std_msgs/String,
JSON) for the actor to record with every episode.
"""
import json
import math
import threading
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from trpo_robot.ros import node_utils as U
from trpo_robot.ros.params import ParamError, RobotParams
from trpo_robot.twin.backend import MujocoBackend

LOG_EVERY = 2.0
"""Wall seconds between repeated warnings of one kind (a bad stream must not flood logs)."""
SPEED_SCALING_PERIOD = 0.01
"""s of sim time between speed_scaling messages (the broadcaster's state_publish_rate,
100 Hz)."""
QOS_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""robot_program_running, as the driver's io_and_status_controller publishes it."""


class TwinNode(U.WorkerNode, Node):
    def __init__(self, stop: threading.Event, node_name='twin_node'):
        super().__init__(node_name, automatically_declare_parameters_from_overrides=True)
        (self.p,) = U.read_params(self, RobotParams)
        U.keep_own_time(self, 'the twin is the clock: it stamps with its own sim time')
        p = self.p
        self.backend = MujocoBackend(p.robot, mode='paced', seed=p.seed,
                                     real_time_factor=p.real_time_factor,
                                     start_time=p.clock_start,
                                     **p.twin_conditions().backend_kwargs())
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
                             bad_teleports=0, freedrive_messages=0, ignored_commands=0,
                             refused_freedrive=0)
        self.state = 'idle'
        self.ur = p.is_ur
        self.controller_active = True
        """forward_velocity_controller active (the driver launched with it as
        initial_joint_controller); inactive: commands ignored and forgotten."""
        self.program_running = True
        self.broadcasting = True
        """joint_state_broadcaster active: joint_states published every period."""
        self.protective_stop = False
        self.speed_scaling = 1.0
        self._scaling_sent = -1.0
        self._halt_said = ''
        self.last_command_sim = float('nan')
        self.last_stop_sim = float('nan')
        self.last_stop_age = float('nan')
        self._stopping = threading.Event()
        self._stop = stop
        self._applied = np.zeros(self.n)
        self.command_log = CommandLog(p.command_log, self.n) if p.command_log else None

        self.pub_state = self.create_publisher(JointState, p.joint_states_topic,
                                               U.QOS_STATE_PUB)
        self.pub_clock = (self.create_publisher(Clock, p.clock_topic, U.QOS_CLOCK)
                          if p.sim_clock else None)
        self.pub_diag = U.diag_publisher(self)
        self.create_subscription(Float64MultiArray, p.command_topic, self._on_command,
                                 U.QOS_COMMAND)
        self.create_subscription(Float64MultiArray, '~/reset_state', self._on_teleport,
                                 U.QOS_COMMAND)
        self.create_subscription(Bool, p.freedrive_topic, self._on_freedrive, U.QOS_COMMAND)
        if self.ur:
            self._make_ur_interfaces()
        self._announce_conditions()
        self._diag_wall = (time.monotonic(), self._sim_now)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                          clock=U.steady_clock())
        self.thread = U.Worker('physics', self._run, self.get_logger())
        self.realtime_priority = 50 if p.realtime else 0  # run_node applies it
        self._msg = JointState()
        self._msg.name = self.names
        self._next_scaling = 0.0
        stale = (f'stopped after {p.driver_command_timeout:g} s' if p.driver_command_timeout
                 else 'held forever, as the UR driver does')
        self.get_logger().info(
            f'twin {p.robot}: {self.n} joints, driver period {p.driver_period * 1e3:.0f} ms, '
            f'real-time factor {p.real_time_factor:g}, stale commands {stale}, clock '
            f'{p.clock_topic if p.sim_clock else "system (no /clock)"}')

    def _announce_conditions(self):
        """Say what this twin drew, once: latched, so an actor that starts later (or
        restarts) still hears it and records it with every episode."""
        text = json.dumps(self.backend.drawn)
        self.pub_conditions = self.create_publisher(String, '~/conditions', QOS_LATCHED)
        self.pub_conditions.publish(String(data=text))
        self.get_logger().info(f'twin conditions: {text}')

    def _make_ur_interfaces(self):
        p = self.p
        self.pub_program = self.create_publisher(Bool, p.program_running_topic, QOS_LATCHED)
        self.pub_program.publish(Bool(data=True))
        self.pub_scaling = self.create_publisher(Float64, p.speed_scaling_topic,
                                                 U.QOS_STATE_PUB)
        self.create_subscription(Float64, '~/speed_slider', self._on_slider, U.QOS_COMMAND)
        for name, change in (('protective_stop', self._protective_stop),
                             ('stop_program', self._stop_program),
                             ('deactivate_controller', self._deactivate_controller),
                             ('deactivate_joint_state_broadcaster', self._silence_states),
                             ('recover', self._recover)):
            self.create_service(Trigger, f'~/{name}', self._trigger(change))

    # -- node lifecycle (run_node) -------------------------------------------------------

    def shutdown(self):
        self._stopping.set()
        self.thread.join(timeout=5.0)
        self.backend.close()
        if self.command_log is not None:
            self.command_log.close()
        return 0

    # -- subscriptions (executor thread) -------------------------------------------------

    def _on_command(self, msg):
        if not self.controller_active:
            with self._lock:
                self.counters['ignored_commands'] += 1
            self._warn('inactive', 'forward_velocity_controller is inactive: command ignored')
            return
        command = np.asarray(msg.data, dtype=float)
        reason = U.command_problem(command, self.names)
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
        if msg.data and self.ur and self.controller_active:
            with self._lock:
                self.counters['refused_freedrive'] += 1
            self._warn('freedrive', 'freedrive refused: forward_velocity_controller is '
                       'active (the driver runs one motion controller at a time; switch '
                       'controllers first)')
            return
        with self._lock:
            self.counters['freedrive_messages'] += 1
            self._freedrive_at = self._sim_now if msg.data else None

    # -- the UR's ways of not moving (test services) -------------------------------------

    def _trigger(self, change):
        def handle(request, response):
            with self._lock:
                response.message = change()
            response.success = True
            self.get_logger().warning(f'driver: {response.message}')
            return response
        return handle

    def _protective_stop(self):
        self.protective_stop = True
        return 'protective stop: the arm brakes and ignores commands until recovered'

    def _stop_program(self):
        self.program_running = False
        self.pub_program.publish(Bool(data=False))
        return 'External Control program stopped: commands are not written to the robot'

    def _deactivate_controller(self):
        self.controller_active = False
        self._command, self._fresh = None, True
        return 'forward_velocity_controller inactive: commands ignored'

    def _silence_states(self):
        self.broadcasting = False
        return 'joint_state_broadcaster inactive: no joint_states; commands still executed'

    def _recover(self):
        self.protective_stop = False
        self.controller_active = True
        self.broadcasting = True
        if not self.program_running:
            self.program_running = True
            self.pub_program.publish(Bool(data=True))
        return 'recovered: controller active, program running, no protective stop'

    def _on_slider(self, msg):
        value = float(msg.data)
        if not 0.0 <= value <= 1.0:
            self._warn('slider', f'speed slider {value} outside [0, 1] ignored')
            return
        with self._lock:
            self.speed_scaling = value

    def _halted(self):
        """Why the robot does not move whatever is commanded, or ''."""
        if self.protective_stop:
            return 'protective stop'
        if not self.program_running:
            return 'program stopped'
        if not self.controller_active:
            return 'controller inactive'
        return ''

    # -- the driver loop (physics thread) ------------------------------------------------

    def _run(self):
        stopped = True
        self._publish_state()
        while not self._stopping.is_set():
            with self._lock:
                command, fresh, teleport = self._command, self._fresh, self._teleport
                self._fresh, self._teleport = False, None
                if teleport is not None:
                    self._command = command = None
                halted, scaling = self._halted(), self.speed_scaling
            if not halted:
                self._halt_said = ''
            now = self.backend.now()
            if self._update_freedrive(now):
                self._applied = np.zeros(self.n)
                stopped = True
            if teleport is not None:
                self._do_teleport(teleport)
                self._applied = np.zeros(self.n)
                stopped = True
            elif self.backend.freedrive:
                # The operator's: no command, no receive timeout. A halt met here is not
                # news when freedrive ends: the end's own state must stay readable, and a
                # halt this loop happened not to see before freedrive began (a host
                # hiccup) overwrote it (a fresh-clone `make test`).
                self._halt_said = halted
            elif halted:
                if not stopped:
                    self._halt()
                    stopped = True
                if self._halt_said != halted:  # said once: a later state stays readable
                    self._halt_said, self.state = halted, f'halted ({halted})'
            elif command is None:
                if not stopped or fresh:
                    self._halt()
                    stopped = True
                    self.state = 'stopped (bad command)' if fresh else 'idle'
            elif self._stale(command, now):
                if not stopped:
                    self._watchdog_stop(command, now)
                    stopped = True
            elif fresh or stopped or scaling != self._scaling_sent:
                # The controller holds its command: after a recovery, the arm goes on.
                self._applied = command[0] * scaling
                self.backend.send_velocity(self._applied)
                self._scaling_sent = scaling
                stopped = False
                self.last_command_sim = command[1]
                self.state = 'commanded'
            self.backend.advance(self.p.driver_period)
            self._publish_state()

    def _stale(self, command, now):
        timeout = self.p.driver_command_timeout
        return timeout > 0 and now - command[1] >= timeout - 1e-9

    def _halt(self):
        self.backend.stop()
        self._applied = np.zeros(self.n)

    def _watchdog_stop(self, command, now):
        self._halt()
        self.counters['watchdog_stops'] += 1
        self.last_stop_sim, self.last_stop_age = now, now - command[1]
        self.state = 'stopped (command timeout)'
        self._warn('watchdog', f'no command for {now - command[1]:.3f} s of sim time '
                   f'(driver_command_timeout {self.p.driver_command_timeout} s): arm stopped')

    def _update_freedrive(self, now):
        """True when freedrive started or ended (the arm is then not commanded)."""
        state = U.switch_freedrive(self.backend, self._freedrive_at, now, self.get_logger(),
                                   'freedrive')
        if state is not None:
            self.state = state
        return state is not None

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
        if self.broadcasting:
            self.pub_state.publish(msg)
        if self.command_log is not None:
            self.command_log.add(reading.stamp, self._applied, reading)
        if self.pub_clock is not None:
            clock = Clock()
            clock.clock = msg.header.stamp
            self.pub_clock.publish(clock)
        if self.ur and reading.stamp >= self._next_scaling:
            self._next_scaling = reading.stamp + SPEED_SCALING_PERIOD - 1e-9
            self.pub_scaling.publish(Float64(data=100.0 * self.speed_scaling))

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
                      controller_active=self.controller_active,
                      program_running=self.program_running,
                      protective_stop=self.protective_stop, speed_scaling=self.speed_scaling,
                      joint_states=self.broadcasting,
                      **self.counters)
        level = U.WARN if self.counters['bad_commands'] or self.counters['bad_teleports'] \
            else U.OK
        fqn = self.get_fully_qualified_name()
        self.pub_diag.publish(U.diag_array(self, [U.status(
            f'{fqn}: driver', values, level, self.state, f'mujoco:{self.p.robot}:{fqn}')]))


COMMAND_LOG_BLOCK = 128
"""Rows per write of the command log: about one wall second at 8x, a fraction of a
millisecond of the physics thread's time."""


class CommandLog:
    """What the arm was told and did, every driver period (RobotParams.command_log)."""

    def __init__(self, path, dof):
        self._file = open(path, 'ab')
        self._rows = np.zeros((COMMAND_LOG_BLOCK, 2 + 3 * dof))
        self._used = 0
        self._dof = dof

    def add(self, sim_time, applied, reading):
        row, n = self._rows[self._used], self._dof
        row[0], row[1] = time.monotonic(), sim_time
        row[2:2 + n] = applied
        row[2 + n:2 + 2 * n] = reading.position
        row[2 + 2 * n:] = reading.velocity
        self._used += 1
        if self._used == COMMAND_LOG_BLOCK:
            self.flush()

    def flush(self):
        self._file.write(self._rows[:self._used].tobytes())
        self._file.flush()
        self._used = 0

    def close(self):
        self.flush()
        self._file.close()


def read_command_log(path, dof) -> np.ndarray:
    """The rows of a command log (a torn last row of a killed twin is dropped)."""
    width = 2 + 3 * dof
    data = np.fromfile(path, dtype=np.float64)
    return data[:len(data) // width * width].reshape(-1, width)


def main(argv=None):
    return U.run_node(lambda stop: TwinNode(stop), argv, 'twin_node')


if __name__ == '__main__':
    raise SystemExit(main())
