"""DynamixelBackend end to end: dynamixel-sdk and pyserial on a real pty, the emulator's
servos on the other end, the MuJoCo twin moving the joints."""
import re
from pathlib import Path
import signal
import subprocess
import sys

from dxl_support import connected_backend, dxl_spec, LATENCY_TIMER_MS, running_emulator
import numpy as np
import pytest

from trpo_robot.hw import units
from trpo_robot.hw.bus import Bus, ServoFault, WriteRefused
from trpo_robot.hw.control_table import ACCESS_ERROR, REG
from trpo_robot.paths import share_file
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.tasks import get_task
from trpo_robot.ros.graph import wait_for

IDS = (1, 2, 3)
TIMING_CHECKS = ('loop rate', 'state age', 'hold 100 Hz')


@pytest.fixture
def backend(emulator):
    with connected_backend(emulator) as be:
        yield be


def _servo(emulator, servo_id):
    return emulator.stats()['servos'][str(servo_id)]


def _watchdog_setting(emulator, servo_id):
    """The Bus Watchdog the host wrote, in 20 ms units. These reads are not bus traffic, so
    on a slow machine the watchdog may fire while the test reads (it then reads -1); the
    servo's trip deadline still tells the setting."""
    servo = _servo(emulator, servo_id)
    if servo['bus_watchdog'] != units.WATCHDOG_TRIPPED:
        return servo['bus_watchdog']
    return round((servo['tripped_at'] - servo['last_instruction']) / units.watchdog_seconds(1))


def _tripped(emulator, servo_id):
    """The servo's state once its bus watchdog has stopped it and the emulator has noted it
    at rest since the trip (its own velocity reading can pass before the emulator's stricter
    rest test does, and the stop time is then still unset)."""
    servo = _servo(emulator, servo_id)
    stopped = (servo['bus_watchdog'] == units.WATCHDOG_TRIPPED
               and servo['stopped_at'] is not None
               and servo['stopped_at'] >= servo['tripped_at'])
    return servo if stopped else None


def test_bring_up_writes_the_urdf_limits_with_torque_off_first(emulator):
    emulator.poke(2, 'torque_enable', 1)  # left on by an earlier session: EEPROM locked
    with connected_backend(emulator) as backend:
        spec = dxl_spec()
        for k, sid in enumerate(IDS):
            assert emulator.peek(sid, 'operating_mode') == 1
            assert emulator.peek(sid, 'return_delay_time') == 0
            assert emulator.peek(sid, 'velocity_limit') == 200
            lo, hi = units.position_limits_raw(spec.lower[k], spec.upper[k])
            assert emulator.peek(sid, 'min_position_limit') == lo
            assert emulator.peek(sid, 'max_position_limit') == hi
            assert _watchdog_setting(emulator, sid) == 5  # 100 ms
            assert emulator.peek(sid, 'torque_enable') == 1
        assert backend.health[1]['model'] == 1020
    assert [emulator.peek(sid, 'torque_enable') for sid in IDS] == [0, 0, 0]  # close()


def test_sync_write_and_sync_read_round_trip(emulator, backend):
    start = backend.read().position
    twin = [_servo(emulator, sid)['position'] for sid in IDS]
    np.testing.assert_allclose(start, twin, atol=units.POSITION_UNIT)
    v = np.array([0.5, -0.3, 0.2])
    backend.send_velocity(v)
    assert [emulator.peek(sid, 'goal_velocity') for sid in IDS] == \
        units.velocity_to_raw(v).tolist()
    backend.advance(0.3)
    state = backend.read()
    np.testing.assert_allclose(state.velocity, v, atol=0.05)
    np.testing.assert_allclose(state.position - start, v * 0.3, atol=0.05)
    stats = backend.stats()
    assert stats['cycles'] == 30  # retries are timing on a loaded pty: bench/dxl_bus.py
    assert emulator.stats()['counts']['sync_writes'] >= 31  # one per cycle, plus the send
    backend.stop()
    assert [emulator.peek(sid, 'goal_velocity') for sid in IDS] == [0, 0, 0]


def test_the_watchdog_stops_a_servo_when_the_host_stalls(emulator, backend):
    backend.send_velocity([0.8, 0.0, 0.0])
    backend.advance(0.1)
    # The host hangs: it sends nothing until the servo has stopped on its own.
    servo = wait_for(lambda: _tripped(emulator, 1), 30, 0.01, 'the watchdog of servo 1')
    assert servo['goal_velocity'] == 0
    stall_to_stop = servo['stopped_at'] - servo['last_instruction']
    assert stall_to_stop >= 0.1, stall_to_stop  # never before its 100 ms (5 x 20 ms)
    backend.advance(0.05)  # the backend sees the gap, re-arms, and the command holds again
    assert backend.stats()['watchdog_rearms'] == 1
    assert emulator.peek(1, 'bus_watchdog') == 5 and emulator.peek(1, 'goal_velocity') > 0


def test_an_unplugged_port_mid_episode_aborts_it_and_nothing_is_sent_after(tmp_path):
    with running_emulator(tmp_path / 'ttyDXL', real_time_factor=4.0) as emulator, \
            connected_backend(emulator) as backend:
        env = ArmEnv(backend, get_task('dxl_reacher'), dxl_spec())
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.array([0.5, 0.5]))
        emulator.unplug()
        with pytest.raises(ServoFault, match='lost') as fault:
            env.step(np.array([0.5, 0.5]))
        assert fault.value.servo_id is None and 'unplugged' in str(fault.value)
        assert env.aborted is fault.value
        sent = backend.bus.stats.transactions
        with pytest.raises(ServoFault, match='stopped after'):
            env.step(np.array([0.5, 0.5]))
        with pytest.raises(ServoFault, match='reconnect'):
            env.reset()
        assert backend.bus.stats.transactions == sent
        for sid in IDS:  # the servos stop on their own watchdogs
            wait_for(lambda: _tripped(emulator, sid), 30, 0.01, f'the watchdog of {sid}')
        emulator.replug()  # plugged back in: the reconnect path brings the arm back
        backend.reconnect()
        env.reset(seed=1)
        env.step(np.array([0.5, 0.5]))
        assert env.aborted is None


def test_a_servo_that_stops_answering_is_named_and_the_others_are_stopped(emulator, backend):
    backend.send_velocity([0.3, 0.3, 0.3])
    backend.advance(0.05)
    emulator.inject('dead=2')
    with pytest.raises(ServoFault, match='servo 2: no valid reply') as fault:
        backend.advance(0.05)
    assert fault.value.servo_id == 2 and backend.fault is fault.value
    for sid in (1, 3):
        assert emulator.peek(sid, 'goal_velocity') == 0
        assert emulator.peek(sid, 'torque_enable') == 0
    heard = emulator.stats()['counts']['instructions']
    for call in (lambda: backend.send_velocity([0.1, 0.1, 0.1]), backend.read, backend.stop,
                 lambda: backend.advance(0.05)):
        with pytest.raises(ServoFault):
            call()
    assert emulator.stats()['counts']['instructions'] == heard


def test_corrupted_replies_are_retried_and_counted(emulator, backend):
    for _ in range(2):
        emulator.inject('corrupt=1')  # one damaged status packet: one failed attempt
        backend.advance(0.05)
    stats = backend.stats()
    assert stats['corrupt'] == 2 and stats['retries'] >= 2 and backend.fault is None
    assert emulator.stats()['counts']['corrupted'] == 2
    emulator.inject('corrupt=20')  # more than the retries can absorb
    with pytest.raises(ServoFault, match='servo 1: no valid reply.*corrupted reply'):
        backend.advance(0.05)
    assert emulator.peek(2, 'torque_enable') == 0


def test_a_stalled_reply_costs_a_retry_not_the_episode(emulator, backend):
    emulator.inject('stall=0.1')  # longer than the 34 ms reply timeout
    backend.advance(0.1)
    stats = backend.stats()
    assert stats['timeouts'] >= 1 and stats['retries'] >= 1
    assert backend.fault is None and emulator.stats()['counts']['stalled'] == 1


def test_eeprom_writes_with_torque_on_are_refused_and_reported(emulator, backend):
    with pytest.raises(WriteRefused, match='servo 2: write of velocity_limit .* access error'
                       ) as refused:
        backend.bus.write(2, REG['velocity_limit'], 100)
    assert refused.value.error & 0x7F == ACCESS_ERROR
    assert emulator.peek(2, 'velocity_limit') == 200
    assert emulator.stats()['counts']['refused'] == 1


def test_a_hardware_error_stops_the_arm_and_names_the_servo(emulator, backend):
    backend.send_velocity([0.3, 0.3, 0.3])
    backend.advance(0.03)
    emulator.inject('hw-error=3:overheating')
    with pytest.raises(ServoFault, match='servo 3: hardware error: overheating'):
        backend.advance(0.05)
    assert [emulator.peek(sid, 'torque_enable') for sid in IDS] == [0, 0, 0]
    with pytest.raises(ServoFault, match='servo 3: hardware error'):
        backend.reconnect()  # still faulty: it stays down
    emulator.clear_faults()  # the cause is gone (it has cooled down)
    backend.reboot(3)
    backend.reconnect()
    backend.advance(0.03)
    assert backend.fault is None and emulator.peek(3, 'torque_enable') == 1


def test_torque_goes_off_when_the_loop_is_interrupted(emulator, backend):
    def interrupted():
        raise KeyboardInterrupt
    backend.send_velocity([0.3, 0.0, 0.0])
    backend._loop.wait = interrupted
    with pytest.raises(KeyboardInterrupt):
        backend.advance(0.05)
    assert [emulator.peek(sid, 'torque_enable') for sid in IDS] == [0, 0, 0]
    assert isinstance(backend.fault, ServoFault) and 'interrupted' in str(backend.fault)


def test_torque_goes_off_when_the_process_exits_without_close(emulator, cli_env):
    script = ('from dxl_support import connected_backend, dxl_config; '
              'from trpo_robot.hw.backend import DynamixelBackend; '
              f'b = DynamixelBackend(dxl_config({str(emulator.link)!r})); '
              'b.send_velocity([0.2, 0.0, 0.0]); print(b.health[1]["model"])')
    env = dict(cli_env, PYTHONPATH=f'{Path(__file__).parent}:{cli_env["PYTHONPATH"]}')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == '1020', result.stderr
    assert [emulator.peek(sid, 'torque_enable') for sid in IDS] == [0, 0, 0]
    assert emulator.peek(1, 'goal_velocity') == 0


def _check_hw(cmd, env, link, *extra):
    return subprocess.run(cmd + ['check-hw', '--robot', 'dxl', '--port', str(link),
                                 '--seconds', '0.3', *extra],
                          capture_output=True, text=True, env=env, timeout=60)


def _test_config(tmp_path):
    """The package config, with the test reply timeout and a real-time bus loop: a loaded
    2-core test machine must not fail a timing check that a quiet one passes."""
    text = share_file('config', 'dxl_hw.yaml').read_text()
    text = text.replace('latency_timer_ms: 1\n', f'latency_timer_ms: {LATENCY_TIMER_MS}\n')
    text = text.replace('realtime: false\n', 'realtime: true\n')
    assert 'realtime: true' in text and f'latency_timer_ms: {LATENCY_TIMER_MS}' in text
    path = tmp_path / 'dxl_hw.yaml'
    path.write_text(text)
    return str(path)


def test_check_hw_passes_on_a_healthy_bus(tmp_path, trpo_robot_cmd, cli_env):
    with running_emulator(tmp_path / 'ttyDXL') as emulator:
        result = _check_hw(trpo_robot_cmd, cli_env, emulator.link, '--config',
                           _test_config(tmp_path))
    out = result.stdout
    tags = {m.group(2).strip(): m.group(1)
            for m in re.finditer(r'^  (PASS|WARN|FAIL)  (\S+(?: \S+)*?)  ', out, re.M)}
    assert {'port', 'servo 1', 'servo 2', 'servo 3', 'limits 1', 'limits 2', 'limits 3',
            *TIMING_CHECKS} <= set(tags), out
    healthy = {name: tag for name, tag in tags.items() if name not in TIMING_CHECKS}
    assert set(healthy.values()) == {'PASS'}, out + result.stderr
    # The timing checks measure this machine as much as the bus: on a loaded one they may
    # fail, which is theirs to say (bench/dxl_bus.py has the figures); the verdict follows.
    failed = [name for name in TIMING_CHECKS if tags[name] == 'FAIL']
    verdict = out.strip().splitlines()[-1]
    assert result.returncode == (1 if failed else 0), out + result.stderr
    assert verdict == (f'result: FAIL ({", ".join(failed)})' if failed else
                       f'result: PASS ({len(tags)} checks)'), out


def test_check_hw_fails_with_the_reason_on_a_broken_bus(tmp_path, trpo_robot_cmd, cli_env):
    faults = ('dead=3', 'firmware=1:37', 'latency-ms=16')
    with running_emulator(tmp_path / 'ttyDXL', faults=faults) as emulator:
        result = _check_hw(trpo_robot_cmd, cli_env, emulator.link)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert 'FAIL  servo 3' in out and 'no answer to ping' in out
    assert 'firmware v37' in out and 'DYNAMIXEL Wizard' in out
    assert 'FAIL  loop rate' in out and 'latency_timer' in out
    assert out.strip().splitlines()[-1].startswith('result: FAIL')


def test_check_hw_usage_errors(tmp_path, trpo_robot_cmd, cli_env):
    result = _check_hw(trpo_robot_cmd, cli_env, tmp_path / 'none', '--ids', '300')
    assert result.returncode == 2 and 'servos.id' in result.stderr
    result = _check_hw(trpo_robot_cmd, cli_env, tmp_path / 'none')
    assert result.returncode == 1 and 'cannot open' in result.stdout


def test_dxl_emulator_command_serves_until_interrupted(tmp_path, trpo_robot_cmd, cli_env):
    link = tmp_path / 'ttyDXL'
    # Started as a script's background job is: with SIGINT ignored, which a child inherits
    # (Python then raises no KeyboardInterrupt); Ctrl-C must still stop it.
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(trpo_robot_cmd + ['dxl-emulator', '--link', str(link),
                                                  '--ids', '4', '7'], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=cli_env)
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        assert 'linked at' in proc.stdout.readline()
        bus = Bus(str(link), 1_000_000, latency_timer_ms=LATENCY_TIMER_MS)
        bus.open()
        assert [bus.ping(4), bus.ping(7)] == [1020, 1020]
        bus.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:  # seen once under a 2-core hog: still running 10 s after Ctrl-C; say where
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            try:
                proc.communicate(timeout=2)  # the dump, then EOF (it is still running)
            except subprocess.TimeoutExpired:
                pass
            proc.kill()
            pytest.fail(f'no exit 30 s after SIGINT; its stacks:\n{proc.communicate()[1]}')
        assert code == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert not link.exists()
    bad = subprocess.run(trpo_robot_cmd + ['dxl-emulator', '--link', str(link), '--fault',
                                           'explode=1'], capture_output=True, text=True,
                         env=cli_env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1 and 'explode' in bad.stderr


def test_the_emulator_also_runs_in_a_thread_of_the_test(tmp_path):
    with running_emulator(tmp_path / 'ttyDXL', thread=True) as emulator:
        bus = Bus(str(emulator.link), 1_000_000, latency_timer_ms=LATENCY_TIMER_MS)
        bus.open()
        try:
            bus.write(1, REG['goal_velocity'], 0)  # position mode at the factory: allowed
            assert bus.ping(2) == 1020
            replies = bus.sync_read(REG['present_position'].address, 4, IDS)
        finally:
            bus.close()
        assert emulator.peek(3, 'present_position') == \
            int.from_bytes(replies[3][0], 'little', signed=True)
    assert not emulator.running and not emulator.link.exists()
