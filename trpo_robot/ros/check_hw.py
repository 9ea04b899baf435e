"""`trpo-robot check-hw --robot ur5|ur5e`: is the UR ROS 2 driver ready for learning?

Listens first: joint_states arrive at the driver rate, carry the URDF's joints, are fresh
and inside the limits. Then proves that the arm follows a command, which counting
subscribers cannot: the driver spawns forward_velocity_controller inactive, and an inactive
controller still has its subscription, as does one behind a protective stop or a stopped
External Control program. It turns the last joint (the flange) by MOVE_RAD and back at
MOVE_SPEED through a SafetyShield, and fails, naming what to check, when the arm does not
follow. Zero is sent on every way out. Exit 0 on pass, 1 on fail. Uses the ROS_DOMAIN_ID of
the environment.
"""
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray

from trpo_robot.hw.check import Check, format_checks
from trpo_robot.paths import share_file, urdf_path
from trpo_robot.robot.backend import JointState as Reading
from trpo_robot.robot.shield import SafetyShield, ShieldConfig
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P

RATES = {'ur5': 125.0, 'ur5e': 500.0}
DRIVER = ('ros2 launch ur_robot_driver ur_control.launch.py ur_type:={robot} '
          'robot_ip:=<IP> initial_joint_controller:=forward_velocity_controller')
ACTIVATE = ('ros2 control switch_controllers --activate forward_velocity_controller '
            '--deactivate scaled_joint_trajectory_controller')
MOVE_RAD = 0.1
"""How far the flange (the last joint) turns out and back, rad."""
MOVE_SPEED = 0.1
"""rad/s: slow enough to be harmless with any tool, fast enough to tell from noise."""
MOVE_TIMEOUT = 3.0
"""s of driver time allowed for each way; an arm that follows needs 1 s + braking."""
FOLLOWED = 0.5
"""Share of MOVE_RAD the joint must reach for the arm to count as following."""
DISCOVERY = 10.0
"""s to wait for the first joint_states."""
QOS_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def run(args) -> int:
    params = P.build(P.RobotParams, P.node_parameters(
        [args.config or share_file('config', f'{args.robot}.yaml')], 'actor_node'))
    spec = RobotSpec.from_urdf(urdf_path('ur5'))
    seconds = max(float(args.seconds), 1.0)
    rclpy.init()
    try:
        link = DriverLink(params, spec)
        try:
            link.listen(seconds)
            checks = _checks(args.robot, spec, link.samples, seconds, params)
            if all(c.ok for c in checks):
                checks.append(link.move_check())
        finally:
            link.close()
    finally:
        rclpy.try_shutdown()
    header = (f'check-hw: {args.robot} over ROS 2, joint_states on {link.state_topic}, '
              f'commands on {link.command_topic}, expecting {RATES[args.robot]:.0f} Hz')
    print(format_checks(header, checks))
    return 0 if all(c.ok for c in checks) else 1


class DriverLink:
    """One node that hears the driver (joint_states, program state, speed scaling) and
    commands its velocity controller."""

    def __init__(self, params, spec):
        self.params, self.spec = params, spec
        self.node = rclpy.create_node('trpo_check_hw')
        self.samples = []
        self.program_running = None
        self.speed_scaling = None
        self.node.create_subscription(JointState, params.joint_states_topic, self._on_state,
                                      100)
        self.node.create_subscription(Bool, params.program_running_topic, self._on_program,
                                      QOS_LATCHED)
        self.node.create_subscription(Float64, params.speed_scaling_topic, self._on_scaling,
                                      10)
        self.pub = self.node.create_publisher(Float64MultiArray, params.command_topic,
                                              U.QOS_COMMAND)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.state_topic = self.node.resolve_topic_name(params.joint_states_topic)
        self.command_topic = self.pub.topic_name

    def _on_state(self, msg):
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        self.samples.append((time.time(), stamp, tuple(msg.name), np.asarray(msg.position),
                             np.asarray(msg.velocity)))

    def _on_program(self, msg):
        self.program_running = bool(msg.data)

    def _on_scaling(self, msg):
        self.speed_scaling = float(msg.data)

    def listen(self, seconds):
        """Collect `seconds` of joint_states from the first one heard. DDS discovery of a
        driver takes up to a few seconds (participant announcements), so the window starts
        at the first message, which may take up to DISCOVERY s."""
        deadline = time.monotonic() + DISCOVERY
        while not self.samples and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        deadline = time.monotonic() + seconds
        while self.samples and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self):
        self.stop()
        self.node.destroy_node()

    def stop(self):
        self.pub.publish(Float64MultiArray(data=[0.0] * self.spec.dof))

    # -- the arm follows a command --------------------------------------------------------

    def move_check(self) -> Check:
        """Turn the last joint out by MOVE_RAD and back, through a shield."""
        joint = self.spec.dof - 1
        name = self.spec.joint_names[joint]
        try:
            start = self._reading().position[joint]
            out = self._drive(joint, start + MOVE_RAD)
            back = self._drive(joint, start)
        finally:
            self.stop()
        reached = out - start
        error = abs(back - start)
        ok = reached >= FOLLOWED * MOVE_RAD and error <= (1 - FOLLOWED) * MOVE_RAD
        detail = (f'{name} commanded {MOVE_RAD:g} rad out and back at {MOVE_SPEED:g} rad/s: '
                  f'reached {reached:+.3f} rad, came back to {error:.3f} rad of the start')
        return Check('arm follows a command', ok, detail, fix='' if ok else self._cause())

    def _cause(self) -> str:
        if self.program_running is False:
            return ('the External Control program is not running (robot_program_running is '
                    'false): press play on the pendant, or load and play it with the '
                    'dashboard client')
        scaling = '' if self.speed_scaling is None else \
            f' The driver reports speed scaling {self.speed_scaling:.0f} %.'
        return ('the arm did not follow: check for a protective stop or an e-stop on the '
                f'pendant, and that forward_velocity_controller is active ({ACTIVATE}); an '
                f'inactive controller still subscribes to its topic.{scaling}')

    def _reading(self, after=None) -> Reading:
        """The next joint_states (after stamp `after`) as a robot-layer reading."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if self.samples and (after is None or self.samples[-1][1] > after):
                _, stamp, names, q, v = self.samples[-1]
                order = [names.index(j) for j in self.spec.joint_names]
                return Reading(position=q[order], velocity=v[order], stamp=stamp)
            self.executor.spin_once(timeout_sec=0.05)
        raise RuntimeError('joint_states stopped during the motion check')

    def _drive(self, joint, goal) -> float:
        """Command the joint toward `goal` until there, or MOVE_TIMEOUT; the position
        reached."""
        p = self.params
        config = ShieldConfig(max_velocity=MOVE_SPEED, max_acceleration=0.5,
                              position_margin=0.05)
        state = self._reading()
        shield = SafetyShield(self.spec, config, p.driver_period, clock=lambda: state.stamp)
        shield.reset(state)
        t0 = state.stamp
        while state.stamp - t0 < MOVE_TIMEOUT:
            error = goal - state.position[joint]
            if abs(error) < 0.005:
                break
            command = np.zeros(self.spec.dof)
            command[joint] = np.clip(2.0 * error, -MOVE_SPEED, MOVE_SPEED)
            sent, _ = shield.filter(state, command)
            self.pub.publish(Float64MultiArray(data=sent.tolist()))
            state = self._reading(after=state.stamp)
        self.stop()
        return float(state.position[joint])


def _checks(robot, spec, samples, seconds, params):
    if not samples:
        return [Check('joint_states', False, 'no message received',
                      fix=f'start the UR driver: {DRIVER.format(robot=robot)}')]
    return [_names(spec, samples), _rate(robot, samples),
            _age(samples, params), _limits(spec, samples)]


def _names(spec, samples):
    names = samples[-1][2]
    missing = [n for n in spec.joint_names if n not in names]
    return Check('joint names', not missing, f'{len(names)} joints'
                 + (f', missing {missing}' if missing else ', all six of the URDF present'),
                 fix="check the driver's tf_prefix / joint names against urdf/ur5.urdf")


def _rate(robot, samples):
    """The driver's cycle, from its own stamps: receipt times on a busy host arrive in
    bursts and would measure this machine, not the controller (state age does that)."""
    stamps = np.array([s[1] for s in samples])
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    rate = (len(stamps) - 1) / span if span > 0 else 0.0
    want = RATES[robot]
    ok = abs(rate - want) < 0.1 * want
    return Check('state rate', ok, f'{rate:.1f} Hz (driver period {1e3 / want:.0f} ms)',
                 fix=f'the {robot} controller runs at {want:.0f} Hz; check ur_type and the '
                     'network (a wired, direct link; SenseAct: wired beats wireless)')


def _age(samples, params):
    ages = np.array([sample[0] - sample[1] for sample in samples])
    median = float(np.median(ages))
    limit = 2 * params.driver_period
    if median > 1e6 or median < -1.0:
        return Check('state age', True, 'stamps are not on the system clock (sim time?)',
                     warn=True, fix='on a real arm the driver stamps with the system clock')
    return Check('state age', median < limit, f'median {1e3 * median:.2f} ms, p99 '
                 f'{1e3 * np.percentile(ages, 99):.2f} ms (limit {1e3 * limit:.0f} ms)',
                 fix='synchronise clocks (chrony) and use a wired link to the controller')


def _limits(spec, samples):
    names, position = samples[-1][2], samples[-1][3]
    index = [names.index(n) for n in spec.joint_names if n in names]
    q = position[index] if len(index) == spec.dof else None
    if q is None:
        return Check('joint limits', False, 'joint names missing, cannot check')
    inside = bool(np.all((q >= spec.lower) & (q <= spec.upper)))
    return Check('joint limits', inside, 'all joints inside the URDF limits' if inside
                 else f'outside the URDF limits at {np.round(q, 3).tolist()}',
                 fix='move the arm inside its limits with the teach pendant')
