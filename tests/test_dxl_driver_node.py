"""dxl_driver_node as a process on a real pty: dynamixel-sdk on one end, the emulated
servos (their own process, MuJoCo moving the joints) on the other, and a probe node
talking to the driver over DDS on a domain of its own."""
import contextlib
from pathlib import Path
import signal
import subprocess
import sys

from dxl_support import dxl_spec, LATENCY_TIMER_MS, running_emulator
import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from trpo_robot.hw import units
from trpo_robot.hw.emulator import EmulatorError
from trpo_robot.paths import share_file
from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.ros.learn import read_progress
from trpo_robot.ros.monitor import Probe
from trpo_robot.store import EpisodeStore

SENDER = Path(__file__).resolve().parent / 'command_sender.py'
IDS = (1, 2, 3)
NAMES = ['joint1', 'joint2', 'joint3']
TIMEOUT = 30.0
"""s: failure bound for anything to happen (start-up on a loaded machine included)."""


def bus_config(folder, retries=None, latency_timer_ms=LATENCY_TIMER_MS):
    """The package's bus file with the tests' reply timeout (tests/dxl_support.py) and,
    for runs of minutes, more patience: a pty moves its bytes through a kernel worker of
    normal priority, which a machine loaded as this one (four agents on two cores) now
    and then holds up for longer than three reply timeouts, whatever the priority of
    emulator and driver. A USB adapter on a quiet machine does not."""
    text = share_file('config', 'dxl_hw.yaml').read_text()
    text = text.replace('latency_timer_ms: 1\n', f'latency_timer_ms: {latency_timer_ms}\n')
    assert f'latency_timer_ms: {latency_timer_ms}\n' in text
    if retries is not None:
        text = text.replace('retries: 2\n', f'retries: {retries}\n')
        assert f'retries: {retries}\n' in text
    path = folder / 'dxl_hw.yaml'
    path.write_text(text)
    return path


class Driver:
    """The driver node, the emulator it drives and a probe, for one test."""

    def __init__(self, folder, emulator, params):
        self.emulator = emulator
        self.domain = G.free_domain_id()
        robot_yaml = share_file('config', 'dxl.yaml')
        self.proc = G.NodeProcess(
            'dxl_driver_node', [robot_yaml], G.ros_env(self.domain), folder / 'logs',
            params={'dxl_config': str(bus_config(folder)), 'port': str(emulator.link),
                    **params})
        self.probe = Probe(self.domain)
        self.probe.listen('js', JointState, '/joint_states', U.QOS_STATE_PUB)
        self.probe.watch('diag', 'dxl_driver_node')
        node = self.probe.node
        self.pub = node.create_publisher(Float64MultiArray,
                                         '/forward_velocity_controller/commands',
                                         U.QOS_COMMAND)
        self.freedrive = node.create_publisher(
            Bool, '/freedrive_mode_controller/enable_freedrive_mode', U.QOS_COMMAND)
        self.wait(lambda: len(self.probe.got('js')) >= 3, 'joint_states from the driver')
        self.wait(lambda: self.pub.get_subscription_count() > 0
                  and self.freedrive.get_subscription_count() > 0, 'the driver subscribing')

    def wait(self, predicate, what, timeout=TIMEOUT):
        try:
            return G.wait_for(predicate, timeout, 0.02, what)
        except TimeoutError as e:
            raise AssertionError(f'{e}\n--- driver (alive {self.proc.alive()}):\n'
                                 f'{self.proc.tail(30)}') from None

    def state(self):
        return self.probe.got('js')[-1][1]

    def command(self, values):
        msg = Float64MultiArray()
        msg.data = [float(v) for v in values]
        self.pub.publish(msg)

    def diag(self, key, cast=str, status='driver'):
        values = self.probe.diag('diag', status) or {}
        return cast(values[key]) if key in values else None

    def moving(self, v, atol=0.05):
        return np.allclose(self.state().velocity, v, atol=atol)

    def registers(self, name):
        return [self.emulator.peek(sid, name) for sid in IDS]

    def close(self):
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        return self.proc.stop(timeout=15.0)


@contextlib.contextmanager
def driver(tmp_path, emulator_kwargs=None, **params):
    with running_emulator(tmp_path / 'ttyDXL', **(emulator_kwargs or {})) as emulator:
        d = Driver(tmp_path, emulator, params)
        try:
            yield d
        finally:
            d.close()


def test_joint_states_commands_bad_commands_and_sigint(tmp_path):
    with driver(tmp_path, driver_command_timeout=0.0) as d:
        msg = d.state()
        assert list(msg.name) == NAMES
        twin = [d.emulator.stats()['servos'][str(sid)]['position'] for sid in IDS]
        np.testing.assert_allclose(msg.position, twin, atol=0.01)
        stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec
                  for _, m in d.probe.got('js')[-3:]]
        assert stamps == sorted(stamps) and stamps[0] > 1e9  # system clock, not sim time

        v = [0.5, -0.3, 0.2]
        d.command(v)
        d.wait(lambda: d.moving(v), 'the servos turning at the commanded velocity')
        assert d.registers('goal_velocity') == units.velocity_to_raw(np.array(v)).tolist()
        assert d.registers('torque_enable') == [1, 1, 1]

        for bad, count in (([0.5, 0.5], 1), ([0.5, float('nan'), 0.0], 2)):
            d.command(bad)
            d.wait(lambda: d.registers('goal_velocity') == [0, 0, 0], f'{bad} stopping it')
            d.wait(lambda: d.moving([0, 0, 0]), 'the arm at rest')
            d.wait(lambda: d.diag('bad_commands', int) == count, 'the bad command counted')
            d.command(v)  # a good command after a bad one moves it again
            d.wait(lambda: d.moving(v), 'moving again')
        d.wait(lambda: d.diag('state') == 'commanded', 'the diagnostics saying so')

        code = d.close()
        assert code == 0, d.proc.tail(30)
        assert d.registers('torque_enable') == [0, 0, 0]
        assert d.registers('goal_velocity') == [0, 0, 0]
        assert 'torque off on every servo' in d.proc.log_path.read_text()


def test_freedrive_turns_the_torque_off_and_false_holds_again(tmp_path):
    with driver(tmp_path, driver_command_timeout=0.0) as d:
        d.freedrive.publish(Bool(data=True))
        d.wait(lambda: d.registers('torque_enable') == [0, 0, 0], 'torque off')
        d.wait(lambda: d.diag('freedrive') == 'True', 'freedrive in the diagnostics')
        d.command([0.5, 0.0, 0.0])  # ignored while the operator has the arm
        d.wait(lambda: d.diag('commands', int) == 1, 'the command heard')
        cycles = d.diag('cycles', int)
        d.wait(lambda: d.diag('cycles', int) > cycles + 2, 'more bus cycles')
        assert d.registers('torque_enable') == [0, 0, 0]
        assert d.registers('goal_velocity') == [0, 0, 0]

        d.emulator.hand({2: 0.4})  # the operator moves joint2 by hand
        d.wait(lambda: abs(d.state().position[1] - 0.4) < 0.01, 'the hand seen on joint_states')
        d.freedrive.publish(Bool(data=False))
        d.wait(lambda: d.registers('torque_enable') == [1, 1, 1], 'torque back on')
        assert d.registers('goal_velocity') == [0, 0, 0]
        d.wait(lambda: d.diag('state') == 'holding (freedrive ended)', 'holding')
        assert abs(d.state().position[1] - 0.4) < 0.02  # held where the hand left it
        with pytest.raises(EmulatorError, match='torque on'):
            d.emulator.hand({2: 0.0})


def test_the_command_timeout_stops_a_held_command(tmp_path):
    with driver(tmp_path) as d:  # driver_command_timeout 0.25 s of config/dxl.yaml
        d.wait(lambda: d.diag('command_timeout', float) == 0.25, 'the timeout in diagnostics')
        d.command([0.6, 0.0, 0.0])
        d.wait(lambda: d.moving([0.6, 0, 0]), 'moving')
        d.wait(lambda: d.diag('timeout_stops', int) == 1, 'the command timeout')
        d.wait(lambda: d.moving([0, 0, 0]), 'the arm at rest')
        assert d.registers('goal_velocity') == [0, 0, 0]
        assert d.registers('torque_enable') == [1, 1, 1]  # holding, not limp
        assert d.diag('state') == 'stopped (command timeout)'
        assert d.diag('last_stop_age', float) >= 0.25
        assert 'no command for' in d.proc.log_path.read_text()


def test_a_killed_driver_leaves_the_servos_to_their_bus_watchdog(tmp_path):
    with driver(tmp_path, driver_command_timeout=0.0) as d:
        d.command([0.6, 0.0, 0.0])
        d.wait(lambda: d.moving([0.6, 0, 0]), 'moving')
        d.proc.send(signal.SIGKILL)  # no torque off, no last write: only the servos act
        assert d.proc.proc.wait(10) == -signal.SIGKILL
        servos = d.wait(lambda: (s := d.emulator.stats()['servos']) and all(
            _stopped_by_watchdog(s[str(i)]) for i in IDS) and s, 'the watchdogs firing')
        for sid in IDS:
            servo = servos[str(sid)]
            assert servo['bus_watchdog'] == units.WATCHDOG_TRIPPED
            assert servo['goal_velocity'] == 0 and servo['torque']  # stopped, still holding
            assert abs(servo['velocity']) < units.VELOCITY_UNIT
        for sid in IDS:  # emulated time: the 100 ms of config/dxl_hw.yaml, then braking
            servo = servos[str(sid)]
            assert 0.1 <= servo['stopped_at'] - servo['last_instruction'] < 0.15, servo


def test_the_guard_stops_the_servos_when_the_commander_is_killed(tmp_path):
    """The Dynamixel path's first line after a dead actor: the command guard (the
    driver's own timeout is off here, so nothing else could stop the servos)."""
    with driver(tmp_path, driver_command_timeout=0.0) as d:
        env = G.ros_env(d.domain)
        guard = G.NodeProcess('guard_node', [share_file('config', 'dxl.yaml')], env,
                              tmp_path / 'logs')
        sender = subprocess.Popen(
            [sys.executable, str(SENDER), '/command_guard/commands', '0.01', '0.6', '0',
             '0', '--joints', ','.join(dxl_spec().joint_names)], env=env,
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            d.probe.watch('guard', 'command_guard')
            d.wait(lambda: d.moving([0.6, 0, 0]), 'moving through the guard', 60)
            sender.send_signal(signal.SIGKILL)
            sender.wait(10)
            d.wait(lambda: int((d.probe.diag('guard', 'guard') or {}).get('stops', 0)) >= 1,
                   'the guard stopping the servos')
            d.wait(lambda: d.moving([0, 0, 0], atol=0.01), 'the arm at rest')
            assert d.registers('goal_velocity') == [0, 0, 0]
            assert d.registers('torque_enable') == [1, 1, 1]
            assert d.diag('timeout_stops', int) == 0
        finally:
            if sender.poll() is None:
                sender.kill()
            guard.stop()


def _stopped_by_watchdog(servo):
    """Tripped, and at rest since (a trip before, e.g. between bring-up and the first bus
    cycle, was re-armed by the driver and does not count)."""
    return servo['bus_watchdog'] == units.WATCHDOG_TRIPPED and \
        servo['stopped_at'] is not None and servo['stopped_at'] >= servo['tripped_at']


def test_an_unplugged_bus_stops_the_node_with_an_error_and_nothing_written(tmp_path):
    with driver(tmp_path, driver_command_timeout=0.0) as d:
        d.command([0.4, 0.0, 0.0])
        d.wait(lambda: d.moving([0.4, 0, 0]), 'moving')
        d.emulator.unplug()
        d.emulator.replug()  # a new device at the same path: the node must not use it
        heard = d.emulator.stats()['counts']['instructions']
        assert d.proc.proc.wait(TIMEOUT) == 1, d.proc.tail(30)
        log = d.proc.log_path.read_text()
        assert 'Dynamixel bus' in log and 'nothing more is written' in log, log
        assert 'Traceback' not in log, log
        assert d.emulator.stats()['counts']['instructions'] == heard


def test_a_missing_port_is_one_clear_error(tmp_path):
    domain = G.free_domain_id()
    proc = G.NodeProcess('dxl_driver_node', [share_file('config', 'dxl.yaml')],
                         G.ros_env(domain), tmp_path / 'logs',
                         params={'dxl_config': str(bus_config(tmp_path)),
                                 'port': str(tmp_path / 'nothing')})
    try:
        assert proc.proc.wait(TIMEOUT) == 1
    finally:
        proc.stop()
    log = proc.log_path.read_text()
    assert 'dxl_driver_node: error: Dynamixel bus: cannot open' in log, log
    assert 'Traceback' not in log, log


def test_no_sim_finds_a_running_driver(tmp_path):
    """`learn --no-sim`'s check passes for a driver that publishes and subscribes."""
    from trpo_robot.ros.learn import check_external_driver
    values = P.node_parameters([share_file('config', 'dxl.yaml')], 'actor_node')
    with driver(tmp_path) as d:
        check_external_driver(d.domain, P.build(P.RobotParams, values), wait=TIMEOUT)


def _learn(cmd, env, *args, timeout=60):
    return subprocess.run(cmd + ['learn', *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_learn_on_an_arm_refuses_what_a_real_arm_cannot_do(tmp_path, trpo_robot_cmd, cli_env):
    out = str(tmp_path / 'run')
    for args, why in ((['--robot', 'ur5', '--port', '/dev/null'], '--port is for --robot dxl'),
                      (['--robot', 'dxl', '--port', '/dev/null', '--rtf', '8'], 'real time'),
                      (['--robot', 'dxl', '--dxl-config', 'x.yaml'], 'goes with --port'),
                      (['--robot', 'dxl', '--port', '/dev/null'], 'validated policy'),
                      (['--robot', 'ur5', '--policy', out], 'is for a real arm')):
        result = _learn(trpo_robot_cmd, cli_env, *args, '--out', out)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count('\n') == 1 and why in result.stderr, result.stderr
    domain = str(G.free_domain_id())  # nobody there: the actor must not be started
    result = _learn(trpo_robot_cmd, cli_env, '--robot', 'ur5e', '--no-sim', '--domain-id',
                    domain, '--out', out, '--validation-override')
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (f'trpo-robot: error: --no-sim: no driver on '
                                     f'ROS_DOMAIN_ID {domain} after 10 s: no joint_states '
                                     'on /joint_states'), result.stderr
    assert not (tmp_path / 'run' / 'logs').exists()  # no node was started


@pytest.mark.timeout(900)
def test_learn_drives_the_emulated_arm_through_the_driver_node(tmp_path, trpo_robot_cmd,
                                                               cli_env):
    """The whole graph in real time on the emulated bus learns dxl_reacher: six learner
    batches of 400 steps (about three minutes), the return of the last two above the first
    (the in-process run of test_dxl_learning.py, with the same settings, gains 1 or more;
    bench/dxl_graph.py runs the graph for 10,000 steps)."""
    values = P.node_parameters([share_file('config', 'learner.yaml')], 'learner_node')
    values.update({'trpo.batch_steps': 400, 'trpo.max_kl': 0.05, 'trpo.gamma': 0.95,
                   'trpo.gae_lambda': 0.95})
    learner_yaml = P.write_param_file(tmp_path / 'learner.yaml', values)
    robot = P.node_parameters([share_file('config', 'dxl.yaml')], 'actor_node')
    robot['stall_timeout'] = 3.0  # see bus_config: a held-up pty must not park the actor
    robot_yaml = P.write_param_file(tmp_path / 'robot.yaml', robot)
    out = tmp_path / 'run'
    with running_emulator(tmp_path / 'ttyDXL') as emulator:
        result = _learn(trpo_robot_cmd, cli_env, '--robot', 'dxl', '--port',
                        str(emulator.link), '--dxl-config',
                        str(bus_config(tmp_path, retries=10, latency_timer_ms=50)),
                        '--config', str(robot_yaml), '--steps', '2400', '--seed', '0',
                        '--out', str(out), '--learner-config', str(learner_yaml),
                        '--validation-override', timeout=840)
        torque = [emulator.peek(sid, 'torque_enable') for sid in IDS]
        gap = emulator.stats()['loop_gap_max']
    text = f'{result.stdout}{result.stderr}\nemulator held up for at most {gap:.3f} s'
    assert result.returncode == 0, text
    assert 'done: budget' in result.stdout and 'dxl_driver_node 0' in result.stdout, text
    assert torque == [0, 0, 0]  # the driver turned it off on its way out
    rows = read_progress(out / 'progress.csv')
    assert [int(r['version']) for r in rows][-1] >= 6, text
    returns = [float(r['mean_return']) for r in rows]
    assert np.mean(returns[-2:]) > returns[0] + 0.5, returns
    assert len(EpisodeStore(out / 'episodes').episodes()) >= 24
    robot = P.node_parameters([out / 'params' / 'robot.yaml'], 'actor_node')
    assert robot['sim_clock'] is False and robot['real_time_factor'] == 1.0
    assert robot['teleport'] is False
    log = (out / 'logs' / 'dxl_driver_node.log').read_text()
    assert f'Dynamixel arm on {emulator.link}' in log
    # A real arm learning from scratch has no validated policy: the gate was overridden,
    # and the actor says so (test_ros_gate.py: the gate itself).
    actor_log = (out / 'logs' / 'actor_node.log').read_text()
    assert 'UNVALIDATED' in actor_log, actor_log
