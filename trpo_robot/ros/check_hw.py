"""`trpo-robot check-hw --robot ur5|ur5e`: is the UR ROS 2 driver ready for learning?

Listens, never commands: joint_states arrive at the driver rate, carry the URDF's joints,
are fresh and inside the limits, and the velocity controller that the actor will command
(forward_velocity_controller) has a subscriber, i.e. is active. Prints a pass/fail report
with what to fix; exit 0 on pass, 1 on fail. Uses the ROS_DOMAIN_ID of the environment.
"""
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

from trpo_robot.hw.check import Check, format_checks
from trpo_robot.paths import share_file, urdf_path
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.ros import params as P

RATES = {'ur5': 125.0, 'ur5e': 500.0}
DRIVER = ('ros2 launch ur_robot_driver ur_control.launch.py ur_type:={robot} '
          'robot_ip:=<IP> initial_joint_controller:=forward_velocity_controller')
ACTIVATE = ('ros2 control switch_controllers --activate forward_velocity_controller '
            '--deactivate scaled_joint_trajectory_controller')


DISCOVERY_TIMEOUT = 10.0
"""s to wait for the first joint_states before reporting that none arrive."""


def run(args) -> int:
    params = P.build(P.RobotParams, P.node_parameters(
        [args.config or share_file('config', 'ur5.yaml')], 'actor_node'))
    spec = RobotSpec.from_urdf(urdf_path('ur5'))
    seconds = max(float(args.seconds), 1.0)
    rclpy.init()
    try:
        samples, subscribers, topic = _listen(params, seconds)
    finally:
        rclpy.try_shutdown()
    checks = _checks(args.robot, spec, samples, subscribers, seconds, params)
    header = (f'check-hw: {args.robot} over ROS 2, joint_states on {topic}, commands on '
              f'{params.command_topic}, expecting {RATES[args.robot]:.0f} Hz')
    print(format_checks(header, checks))
    return 0 if all(c.ok for c in checks) else 1


def _listen(params, seconds):
    """(receive time, stamp, names, positions) of every joint_states message in `seconds`."""
    node = rclpy.create_node('trpo_check_hw')
    samples = []

    def on_state(msg):
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        samples.append((time.time(), stamp, tuple(msg.name), np.asarray(msg.position)))
    node.create_subscription(JointState, params.joint_states_topic, on_state, 100)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    # A new DDS participant can take seconds to be matched with the driver's publisher on
    # a busy host (seen: 2-4 s): measure from the first reading, not from start-up.
    discover_by = time.monotonic() + DISCOVERY_TIMEOUT
    while not samples and time.monotonic() < discover_by:
        executor.spin_once(timeout_sec=0.05)
    deadline = time.monotonic() + seconds
    while samples and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    topic = node.resolve_topic_name(params.joint_states_topic)
    subscribers = node.count_subscribers(params.command_topic)
    node.destroy_node()
    return samples, subscribers, topic


def _checks(robot, spec, samples, subscribers, seconds, params):
    if not samples:
        return [Check('joint_states', False, 'no message received',
                      fix=f'start the UR driver: {DRIVER.format(robot=robot)}')]
    return [_names(spec, samples), _rate(robot, samples),
            _age(samples, params), _limits(spec, samples),
            Check('velocity controller', subscribers > 0,
                  f'{subscribers} subscriber(s) on {params.command_topic}',
                  fix=f'activate it: {ACTIVATE}')]


def _names(spec, samples):
    names = samples[-1][2]
    missing = [n for n in spec.joint_names if n not in names]
    return Check('joint names', not missing, f'{len(names)} joints'
                 + (f', missing {missing}' if missing else ', all six of the URDF present'),
                 fix="check the driver's tf_prefix / joint names against urdf/ur5.urdf")


def _rate(robot, samples):
    times = np.array([s[0] for s in samples])
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    want = RATES[robot]
    ok = abs(rate - want) < 0.1 * want
    return Check('state rate', ok, f'{rate:.1f} Hz (driver period {1e3 / want:.0f} ms)',
                 fix=f'the {robot} controller runs at {want:.0f} Hz; check ur_type and the '
                     'network (a wired, direct link; SenseAct: wired beats wireless)')


def _age(samples, params):
    ages = np.array([recv - stamp for recv, stamp, _, _ in samples])
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
