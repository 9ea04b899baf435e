"""Dynamixel pieces without a bus: units, config, framing, and the servo's own rules."""
import ast
import math
from pathlib import Path

import dynamixel_sdk as sdk
from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from trpo_robot.hw import units
from trpo_robot.hw.config import config_from_dict, ConfigError, load_config
from trpo_robot.hw.control_table import ACCESS_ERROR, ALERT_BIT, RANGE_ERROR, REG
from trpo_robot.hw.emulator import protocol as p
from trpo_robot.hw.emulator.faults import apply_fault, FaultError, Faults
from trpo_robot.hw.emulator.servo import Servo


def test_units_match_the_datasheet():
    assert units.position_to_raw(0.0) == 2048
    assert units.position_to_raw(math.pi) == 2048 + 2048
    assert units.raw_to_position(2048 + 1024) == pytest.approx(math.pi / 2)
    assert math.degrees(units.POSITION_UNIT) == pytest.approx(0.088, abs=1e-3)
    # 0.229 rpm per count; the XM430-W350's no-load 46 rpm is the factory limit 200.
    assert units.raw_to_velocity(1) == pytest.approx(0.229 * 2 * math.pi / 60)
    assert units.velocity_limit_raw(46 * 2 * math.pi / 60) == 200
    assert units.velocity_to_raw([10.0, -10.0], limit_raw=200).tolist() == [200, -200]
    assert units.watchdog_units(0.1) == 5 and units.watchdog_units(0.101) == 6
    with pytest.raises(ValueError):
        units.watchdog_units(3.0)


def test_direction_and_zero_invert_consistently():
    raw = units.position_to_raw(0.5, zero=1000, direction=-1)
    assert units.raw_to_position(raw, zero=1000, direction=-1) == pytest.approx(0.5, abs=1e-3)
    lo, hi = units.position_limits_raw(-1.0, 0.5, zero=2048, direction=-1)
    assert units.raw_to_position(hi, 2048, -1) >= -1.0
    assert units.raw_to_position(lo, 2048, -1) <= 0.5
    assert lo < hi


@given(st.integers(-2**31, 2**31 - 1))
def test_signed_register_bytes_round_trip(value):
    assert units.from_bytes(units.to_bytes(value, 4), 4, signed=True) == value


@settings(max_examples=200)
@given(st.binary(min_size=0, max_size=64).map(lambda b: b.replace(b'\x01', b'\xfd')))
def test_crc_and_stuffing_agree_with_dynamixel_sdk(data):
    ph = sdk.PacketHandler(2.0)
    assert p.crc16(data) == ph.updateCRC(0, list(data), len(data))
    assert p.unstuff(p.stuff(data)) == data
    assert b'\xff\xff\xfd' not in p.stuff(data).replace(b'\xff\xff\xfd\xfd', b'')


def test_reader_finds_packets_in_noise_and_across_chunks():
    frame = p.encode(1, p.WRITE, bytes([104, 0, 0xFF, 0xFF, 0xFD, 0]))
    assert b'\xff\xff\xfd\xfd' in frame  # the parameters needed stuffing
    reader = p.PacketReader()
    stream = b'\x00\xff\x17' + frame + frame[:5]
    packets = reader.feed(stream) + reader.feed(frame[5:])
    assert [(q.id, q.instruction, q.crc_ok) for q in packets] == [(1, p.WRITE, True)] * 2
    assert packets[0].params == bytes([104, 0, 0xFF, 0xFF, 0xFD, 0])
    damaged = frame[:-1] + bytes([frame[-1] ^ 1])
    assert reader.feed(damaged)[0].crc_ok is False


def test_servo_refuses_eeprom_writes_with_torque_on():
    servo = Servo(1)
    assert servo.write(REG['velocity_limit'].address, bytes(units.to_bytes(150, 4)), 0.0) == 0
    assert servo.write(REG['torque_enable'].address, b'\x01', 0.0) == 0
    code = servo.write(REG['velocity_limit'].address, bytes(units.to_bytes(100, 4)), 0.0)
    assert code == ACCESS_ERROR and servo.get('velocity_limit') == 150
    assert servo.write(REG['present_position'].address, b'\x00' * 4, 0.0) == ACCESS_ERROR


def test_servo_watchdog_stops_it_and_locks_the_goals():
    servo = Servo(1)
    servo.write(REG['operating_mode'].address, b'\x01', 0.0)
    servo.write(REG['torque_enable'].address, b'\x01', 0.0)
    servo.write(REG['bus_watchdog'].address, b'\x05', 0.0)  # 100 ms
    servo.write(REG['goal_velocity'].address, bytes(units.to_bytes(50, 4)), 0.0)
    assert not servo.check_watchdog(0.09) and servo.velocity_command() == 50
    assert servo.check_watchdog(0.11)
    assert servo.get('bus_watchdog') == units.WATCHDOG_TRIPPED and servo.velocity_command() == 0
    goal = bytes(units.to_bytes(50, 4))
    assert servo.write(REG['goal_velocity'].address, goal, 0.2) == RANGE_ERROR
    assert servo.write(REG['bus_watchdog'].address, b'\x00', 0.2) == 0
    assert servo.write(REG['goal_velocity'].address, goal, 0.2) == 0


def test_servo_watchdog_stops_a_servo_in_position_mode_where_it_is():
    servo = Servo(1)  # factory: position mode
    servo.write(REG['torque_enable'].address, b'\x01', 0.0)
    servo.write(REG['bus_watchdog'].address, b'\x01', 0.0)  # 20 ms
    servo.write(REG['goal_position'].address, bytes(units.to_bytes(3000, 4)), 0.0)
    assert servo.velocity_command() > 0
    assert servo.check_watchdog(0.03)
    assert servo.velocity_command() == 0 and servo.torque  # stopped, still holding
    assert servo.get('goal_position') == servo.get('present_position')


def test_servo_hardware_error_shuts_down_until_reboot():
    servo = Servo(1)
    servo.write(REG['torque_enable'].address, b'\x01', 0.0)
    servo.raise_hardware_error(1 << 5, persistent=False)  # overload is in the shutdown mask
    assert not servo.torque and servo.status_error() & ALERT_BIT
    assert servo.write(REG['torque_enable'].address, b'\x01', 0.0) != 0
    servo.reboot(0.0)
    assert servo.hardware_error == 0 and servo.status_error() == 0


def test_fault_text():
    faults = Faults()
    for text in ('drop=2', 'corrupt-rate=0.5', 'dead=3,4', 'hw-error=2:overload',
                 'firmware=1:37', 'latency-ms=16'):
        apply_fault(faults, text)
    assert faults.drop == 2 and faults.dead == {3, 4} and faults.hw_errors == {2: 32}
    assert faults.firmware == {1: 37} and faults.latency_ms == 16
    for bad in ('explode=1', 'drop', 'corrupt-rate=2', 'hw-error=2:melted'):
        with pytest.raises(FaultError):
            apply_fault(faults, bad)


def test_config_file_and_overrides():
    config = load_config(port='/dev/null', ids=[1, 2, 3, 4])
    assert config.ids == (1, 2, 3, 4) and config.servos[3].joint is None
    assert config.servos[0].joint == 'joint1' and config.port == '/dev/null'
    assert units.watchdog_units(config.watchdog_s) * 20 == config.watchdog_ms
    with pytest.raises(ConfigError, match='watchdog_ms'):
        config_from_dict({'watchdog_ms': 10})
    with pytest.raises(ConfigError, match='unknown keys'):
        config_from_dict({'prot': 'x'})
    with pytest.raises(ConfigError, match='distinct'):
        config_from_dict({'servos': [{'id': 1}, {'id': 1}]})
    assert np.isfinite(config.period)


def test_only_the_emulator_imports_the_twin():
    """The hardware layer runs on a machine without MuJoCo; only its emulator (a test tool)
    and the command that starts it (cli.py, imported lazily) may use the twin."""
    root = Path(__file__).resolve().parent.parent / 'trpo_robot' / 'hw'
    offenders = []
    for path in root.rglob('*.py'):
        if 'emulator' in path.relative_to(root).parts or path.name == 'cli.py':
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f'{path.name}: {n}' for n in names
                          if n.split('.')[0] == 'mujoco' or n.startswith('trpo_robot.twin')
                          or 'emulator' in n]
    assert offenders == []
