"""The UR twin is as unforgiving as the driver, and the command guard makes up for it.

Real processes on the UR5 twin. The twin holds the newest command forever, as the UR
driver's forward_velocity_controller does (ros2_controllers#95): a commander killed mid-
motion leaves the arm moving. The guard (its own process) zeroes the command when the
stream goes stale. A protective stop, a stopped program or an inactive controller leave
joint_states flowing; the actor notices that the arm does not follow, aborts the episode as
arm_not_following (recorded, never learned from) and holds.
"""
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ros_support import actor_state, call_trigger, CONFIG, Graph
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from trpo_robot.paths import urdf_path
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.ros.backend import guard_slack
from trpo_robot.ros.monitor import Probe
from trpo_robot.ros.params import task_dims
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import wire

pytestmark = pytest.mark.timeout(480)
SENDER = Path(__file__).resolve().parent / 'command_sender.py'
WRIST = 5          # wrist_3: turns the flange, free of collisions and gravity load
SPEED = 0.5        # rad/s, within the UR5's pi rad/s
RTF = 2.0
UR5_JOINTS = RobotSpec.from_urdf(urdf_path('ur5')).joint_names
FAST_LEARNER = {'trpo.batch_steps': 200}


@pytest.fixture
def graphs():
    made = []
    yield made
    for g in made:
        g.close()


def _graph(graphs, folder, nodes, **robot):
    g = Graph(folder, robot='ur5', nodes=nodes, learner_params=FAST_LEARNER,
              robot_params={'real_time_factor': RTF, **robot})
    graphs.append(g)
    g.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
    for key in ('twin_node', 'command_guard', 'actor_node'):
        g.probe.watch(key)
    g.wait(lambda: g.probe.got('joints'), 30, 'joint_states at the probe')
    return g


def _latest(g):
    msg = g.probe.got('joints')[-1][1]
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg


def _at(g, stamp):
    """The first joint_states at or after sim time `stamp` (waits for it)."""
    def find():
        for _, m in g.probe.got('joints'):
            if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 >= stamp:
                return m
        return None
    return g.wait(find, 60, f'joint_states at sim time {stamp:.2f}')


class _Sender:
    """tests/command_sender.py as a process, killed at the end of the test at the latest."""

    def __init__(self, g, topic, command, joints=None):
        stamped = [] if joints is None else ['--joints', ','.join(joints)]
        self.proc = subprocess.Popen(
            [sys.executable, str(SENDER), topic, '0.004', *map(str, command), *stamped],
            env=g.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self):
        if self.proc.poll() is None:
            self.kill()


def _sender(graphs, g, topic, command, joints=None):
    sender = _Sender(g, topic, command, joints)
    graphs.append(sender)
    return sender


def _moving(g):
    return abs(_latest(g)[1].velocity[WRIST] - SPEED) < 0.05


def _diag(g, node, status):
    return g.probe.diag(node, status) or {}


def _fault_said(g, text):
    """The actor's safety report once its last fault says ``text``: the state topic
    tells of a hold at once, the periodic report a little later."""
    return g.wait(lambda: text in _diag(g, 'actor_node', 'safety').get('last_fault', ''), 30,
                  f'the actor reporting a fault that says {text!r}')


def _command():
    command = np.zeros(6)
    command[WRIST] = SPEED
    return command


def test_a_killed_commander_leaves_the_ur_twin_moving_as_the_real_driver_would(graphs,
                                                                               tmp_path):
    g = _graph(graphs, tmp_path / 'g', ('twin_node',))
    sender = _sender(graphs, g, '/forward_velocity_controller/commands', _command())
    g.wait(lambda: _moving(g), 60, 'the wrist turning at the commanded speed')
    sender.kill()
    killed, msg = _latest(g)
    later = _at(g, killed + 1.0)
    assert later.velocity[WRIST] == pytest.approx(SPEED, abs=0.05), \
        'the twin stopped a stale command: the real UR driver never does'
    assert later.position[WRIST] - msg.position[WRIST] > 0.8 * SPEED
    seen = later.header.stamp.sec + later.header.stamp.nanosec * 1e-9
    report = g.wait(lambda: (d := _diag(g, 'twin_node', 'driver')) and
                    float(d['sim_time']) >= seen and d, 30,
                    'a report of the twin made after that state')  # it comes once a second
    assert report['watchdog_stops'] == '0'


def _at_rest_for_good(g, after):
    """The arm at rest after sim time `after`, and no motion for 0.5 s after that."""
    rest = _at(g, after + 0.3)
    assert max(abs(v) for v in rest.velocity) < 0.01, 'the arm is still moving'
    t0 = rest.header.stamp.sec + rest.header.stamp.nanosec * 1e-9
    later = _at(g, t0 + 0.5)
    drift = np.abs(np.subtract(later.position, rest.position))
    assert np.max(drift) < 1e-3, (f'moved {drift} from {list(rest.position)} at rest; '
                                  f'guard {_diag(g, "command_guard", "guard")}; '
                                  f'twin {_diag(g, "twin_node", "driver")}')


def test_the_guard_stops_the_arm_when_its_commander_is_killed(graphs, tmp_path):
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node'))
    sender = _sender(graphs, g, '/command_guard/commands', _command(), UR5_JOINTS)
    g.wait(lambda: _moving(g), 60, 'the wrist turning through the guard')
    sender.kill()
    g.wait(lambda: _diag(g, 'command_guard', 'guard').get('stops', '0') != '0', 30,
           'the guard stopping the arm')
    guard = _diag(g, 'command_guard', 'guard')
    timeout, period = float(guard['timeout']), g.rp.driver_period
    assert timeout == pytest.approx(g.rp.agent_dt + g.rp.robot_receive_timeout)
    # The guard keeps only the newest joint state (a queue of depth 1), so it decides at
    # the first tick it handles past the timeout: within a period on an idle host, later by
    # as long as the host holds a guard that has no SCHED_FIFO here (tests/test_guard.py
    # holds the one-period bound tick by tick). Never before.
    age = float(guard['last_stop_age'])
    assert guard['last_stop_cause'].startswith('no command'), guard
    assert timeout - 1e-9 <= age <= timeout + period + guard_slack(g.rp.realtime) * RTF, guard
    _at_rest_for_good(g, float(guard['last_stop_time']))


def test_with_the_drivers_joint_states_gone_a_killed_commander_is_still_stopped(
        graphs, tmp_path):
    """The driver's joint_state_broadcaster switched off while forward_velocity_controller
    runs on: the guard's driver clock stops, so no check by driver time can fire, and a
    commander that dies then would leave a real UR moving for ever. The guard sends zero
    after CLOCK_LOST_AFTER of wall time, heard on the driver's topic while joint_states are
    still silent, and relays nothing until they return."""
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node'))
    g.probe.listen('driver', Float64MultiArray, '/forward_velocity_controller/commands',
                   U.QOS_COMMAND)
    sender = _sender(graphs, g, '/command_guard/commands', _command(), UR5_JOINTS)
    g.wait(lambda: _moving(g), 60, 'the wrist turning through the guard')
    g.wait(lambda: g.probe.got('driver'), 60, "the guard's relays heard on the driver's "
           'topic')  # matched: its zero cannot go by unheard (sent once, reliable)
    assert call_trigger(g, 'deactivate_joint_state_broadcaster', node='/twin_node').success
    sender.kill()
    before = len(g.probe.got('driver'))
    g.wait(lambda: any(not any(m.data) for _, m in g.probe.got('driver')[before:]), 60,
           lambda: "zero on the driver's command topic with joint_states silent (heard "
                   f"{len(g.probe.got('driver')) - before} commands since; guard "
                   f"{_diag(g, 'command_guard', 'guard')})")
    guard = g.wait(lambda: (d := _diag(g, 'command_guard', 'guard')).get(
        'driver_clock') == 'lost' and d, 30, 'the guard reporting its driver clock lost')
    assert guard['last_stop_cause'].startswith('no joint_states for'), guard
    assert guard['clock_lost'] == '1' and guard['state'] != 'relaying', guard
    g.wait(lambda: _diag(g, 'twin_node', 'driver').get('joint_states') == 'False', 30,
           'the twin reporting its joint_states off')  # and nobody has turned them on
    silent_since = _latest(g)[0]
    asked = time.monotonic()
    assert call_trigger(g, 'recover', node='/twin_node').success
    # The arm ran until the zero, which can come a few ms before the first state after
    # the recovery (seen: 11 ms, the arm still braking): rest is judged from that state.
    back = g.heard('joints', since=asked)[0][1]
    assert back.header.stamp.sec + back.header.stamp.nanosec * 1e-9 > silent_since
    _at_rest_for_good(g, back.header.stamp.sec + back.header.stamp.nanosec * 1e-9)


def _acting(g):
    g.wait(lambda: _diag(g, 'actor_node', 'control').get('phase') == 'acting', 240,
           'the actor acting an episode')


def test_kill_9_of_the_actor_the_guard_brings_the_arm_to_rest(graphs, tmp_path):
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'actor_node',
                                        'learner_node'))
    _acting(g)
    g.kill('actor_node', signal.SIGKILL)
    # Waiting for a teleport the actor sends nothing, so the guard may have stopped the arm
    # before: the stop that counts is in a report made after the kill (its driver time is
    # well past that of a state heard once the actor was dead).
    dead = _latest(g)[0]

    def stopped_after_kill():
        guard = _diag(g, 'command_guard', 'guard')
        after = float(guard.get('driver_time', -1)) > dead + 0.2
        return guard if after and guard['state'] != 'relaying' else None
    guard = g.wait(stopped_after_kill, 30, 'the guard stopping the arm after the kill')
    assert guard['last_stop_cause'].startswith(('no command', 'the actor left'))
    _at_rest_for_good(g, float(guard['last_stop_time']))


def test_kill_9_of_the_guard_the_actor_stops_the_arm_itself_and_holds(graphs, tmp_path):
    """The UR driver holds the guard's last relay forever: the actor, hearing no relay,
    sends zero to the driver itself."""
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'actor_node',
                                        'learner_node'))
    g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
    _acting(g)
    g.kill('guard_node', signal.SIGKILL)
    dead = _latest(g)[0]
    control = g.wait(lambda: (c := _diag(g, 'actor_node', 'control')).get(
        'guard_losses', '0') != '0' and c, 60, 'the actor finding the guard silent')
    assert control['guard_losses'] == '1'
    g.wait(lambda: actor_state(g) == 'hold', 30, 'the actor holding the arm')
    _fault_said(g, 'command guard relayed nothing')
    noticed = 2 * g.rp.effective_guard_timeout() + guard_slack(g.rp.realtime) * RTF
    _at_rest_for_good(g, dead + noticed)
    # An operator's reset is served (the twin teleports the arm to its start pose), but
    # the first motion command behind the dead guard is refused: the arm is held again,
    # never acted unrelayed.
    holds = int(_diag(g, 'actor_node', 'lifecycle')['holds'])
    assert call_trigger(g, 'reset').success
    g.wait(lambda: int(_diag(g, 'actor_node', 'lifecycle').get('holds', 0)) > holds, 60,
           'the arm held again after the reset')
    _fault_said(g, 'has relayed nothing')
    _at_rest_for_good(g, _latest(g)[0])


def test_a_guard_that_dies_while_the_host_holds_the_actor_is_found_at_its_next_command(
        graphs, tmp_path):
    """The guard killed, and the actor held by the host (SIGSTOP) before it could notice:
    meanwhile the arm runs on at the guard's last relay. When the actor runs again it
    drains relays that the dead guard sent before it died; dated by their drain, they once
    gave the dead guard a new window (a fresh-clone `make test` beside a benchmark, the arm
    still moving at 0.22 rad/s when the test looked). Dated by their sending, they pay
    nothing the actor sent after the death, that debt is older than the window at the
    actor's first command, and that command sends zero to the driver."""
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'actor_node',
                                        'learner_node'))
    g.probe.listen('driver', Float64MultiArray, '/forward_velocity_controller/commands',
                   U.QOS_COMMAND)
    g.probe.listen('commands', JointState, '/command_guard/commands', U.QOS_COMMAND,
                   with_info=True)
    _acting(g)
    g.heard('driver')  # matched: the actor's zero cannot go by unheard
    actor = g.procs['actor_node']
    window = 2 * g.rp.effective_guard_timeout() + guard_slack(g.rp.realtime) * RTF
    try:
        g.kill('guard_node', signal.SIGKILL)
        dead = time.time_ns()
        # A command the actor sent after the guard's death: owed a relay for certain.
        g.wait(lambda: any(info['source_timestamp'] > dead
                           for _, _, info in g.probe.got('commands')), 60,
               'a command of the actor sent after the guard died')
        actor.send(signal.SIGSTOP)
        held_from = time.monotonic()
        _at(g, _latest(g)[0] + 2 * window)  # twice the watch's window, in driver time
        held_until = time.monotonic()
    finally:
        actor.send(signal.SIGCONT)
    control = g.wait(lambda: (c := _diag(g, 'actor_node', 'control')).get(
        'guard_losses', '0') != '0' and c, 60, 'the actor finding the guard silent')
    assert control['guard_losses'] == '1', control
    # Owed from before the actor was held, so at least as long as the hold; counted from
    # the drain, the debt would be one window (1.6 s) old, never the hold's 3 s and more.
    assert float(control['guard_lost_after_ms']) >= (held_until - held_from) * 1e3, control
    g.wait(lambda: any(t > held_until and not any(m.data) for t, m in g.probe.got('driver')),
           60, "the actor's zero on the driver's topic")
    _at_rest_for_good(g, _latest(g)[0])


def test_the_actor_commands_no_motion_before_the_guard_relays_its_zero(graphs, tmp_path):
    """A guard that the actor's publisher has matched but that relays nothing yet (held by
    the host, or its side of discovery late): a fresh-clone `ros2 launch` test began an
    episode into such a guard and held the arm as 'not following'. The actor sends zero
    until it hears the guard relay it, and only then commands motion."""
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'learner_node'))
    g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
    g.wait(lambda: _diag(g, 'command_guard', 'guard'), 60, "the guard's report")
    twin, guard = g.procs['twin_node'], g.procs['guard_node']
    try:
        twin.send(signal.SIGSTOP)  # the actor then waits for the driver, guard matched
        g.start('actor_node')
        _phase(g, 'waiting for the driver')
        guard.send(signal.SIGSTOP)
        twin.send(signal.SIGCONT)
        _phase(g, 'waiting for the command guard to relay')
        waited_from = _latest(g)[0]
        _at(g, waited_from + 1.0)  # driver time for a follow check to fire twice over
        assert _diag(g, 'actor_node', 'control')['phase'] == \
            'waiting for the command guard to relay'
        assert actor_state(g) in ('', 'starting')
        guard.send(signal.SIGCONT)
        _acting(g)
    finally:
        twin.send(signal.SIGCONT)
        guard.send(signal.SIGCONT)
    assert _diag(g, 'actor_node', 'lifecycle')['holds'] == '0'
    assert _diag(g, 'actor_node', 'control')['guard_losses'] == '0'


def _phase(g, phase):
    g.wait(lambda: _diag(g, 'actor_node', 'control').get('phase') == phase, 120,
           lambda: f"the actor's phase {phase!r} (now "
                   f"{_diag(g, 'actor_node', 'control').get('phase')!r})")


@pytest.mark.parametrize('fault', ['protective_stop', 'stop_program',
                                   'deactivate_controller'])
def test_an_arm_that_does_not_follow_aborts_the_episode_and_holds(graphs, tmp_path, fault):
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'actor_node',
                                        'learner_node'))
    g.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
    _acting(g)
    assert call_trigger(g, fault, node='/twin_node').success
    g.wait(lambda: _diag(g, 'actor_node', 'safety').get('aborted_arm_not_following'), 60,
           'the actor aborting the episode as arm_not_following')
    g.wait(lambda: actor_state(g) == 'hold', 30, 'the actor holding the arm')
    _fault_said(g, 'program is not running' if fault == 'stop_program' else 'did not follow')
    store = EpisodeStore(g.rp.episode_dir)
    dims = task_dims(g.rp.task_spec())
    aborted = [wire.decode_episode(store.read(path), *dims)[1]
               for _, _, path in store.episodes()]
    aborted = [i for i in aborted if i['aborted']]
    if fault != 'stop_program':  # a stopped program is caught on the first tick
        assert any(i['extra'].get('abort_reason') == 'arm_not_following' for i in aborted)


def test_a_reduced_speed_scaling_never_fires_the_follow_check(graphs, tmp_path):
    g = _graph(graphs, tmp_path / 'g', ('twin_node', 'guard_node', 'actor_node',
                                        'learner_node'))
    slider = g.probe.node.create_publisher(Float64, '/twin_node/speed_slider', U.QOS_COMMAND)
    g.wait(lambda: slider.get_subscription_count() > 0, 30, 'the twin hearing the slider')
    slider.publish(Float64(data=0.4))
    g.wait(lambda: _diag(g, 'twin_node', 'driver').get('speed_scaling') == '0.4', 30,
           'the twin at 40 % speed')
    _acting(g)
    episodes = int(_diag(g, 'actor_node', 'control')['episodes'])
    g.wait(lambda: int(_diag(g, 'actor_node', 'control').get('episodes', 0)) >= episodes + 3,
           120, 'three more episodes at 40 % speed')
    safety = _diag(g, 'actor_node', 'safety')
    assert 'aborted_arm_not_following' not in safety
    assert float(safety['speed_scaling']) == pytest.approx(0.4)


def test_freedrive_resets_on_a_ur_are_refused_at_start_with_what_to_do(tmp_path):
    values = P.node_parameters([CONFIG / 'ur5.yaml'], 'actor_node')
    values.update(reset_mode='freedrive', episode_dir=str(tmp_path / 'episodes'))
    robot_yaml = P.write_param_file(tmp_path / 'ur5.yaml',
                                    P.to_ros(P.build(P.RobotParams, values)))
    proc = G.NodeProcess('actor_node', [robot_yaml], G.ros_env(G.free_domain_id()),
                         tmp_path / 'logs')
    assert proc.proc.wait(120) == 2
    proc.stop()
    text = proc.log_path.read_text()
    assert 'reset_mode freedrive on a UR' in text and 'use reset_mode auto or teleop' in text


def test_a_node_process_in_a_namespace_publishes_under_it(tmp_path):
    """graph.NodeProcess(namespace='arm1') once died on 'Couldn't parse remap rule'."""
    domain = G.free_domain_id()
    probe = Probe(domain)
    probe.listen('joints', JointState, '/arm1/joint_states', U.QOS_STATE_SUB)
    values = P.node_parameters([CONFIG / 'dxl.yaml'], 'twin_node')
    values.update(realtime=False, clock_topic='clock')
    robot_yaml = P.write_param_file(tmp_path / 'dxl.yaml',
                                    P.to_ros(P.build(P.RobotParams, values)))
    twin = G.NodeProcess('twin_node', [robot_yaml], G.ros_env(domain), tmp_path / 'logs',
                         namespace='arm1')
    try:
        G.wait_for(lambda: probe.got('joints') or not twin.alive(), 120, 0.05,
                   '/arm1/joint_states')
        assert twin.alive(), twin.tail()
    finally:
        probe.close()
        twin.stop()
