"""`trpo-robot check-hw --robot dxl`: is this Dynamixel bus ready for learning?

Pings every servo, reads model and firmware, checks hardware errors and temperature,
writes (unless ``read_only``) and reads back the settings the backend needs from the
URDF, measures sync read + sync write cycles per second and the state age, and holds the
configured bus rate for a while counting overruns. Every failed check says what to fix.
Torque stays off throughout: nothing moves.
"""
from dataclasses import dataclass
import os
from pathlib import Path
import time

import numpy as np

from trpo_robot.hw import units
from trpo_robot.hw.backend import servo_settings
from trpo_robot.hw.bus import Bus, ServoFault
from trpo_robot.hw.config import DxlConfig
from trpo_robot.hw.control_table import (FAST_READ, hardware_error_names,
                                         MIN_WATCHDOG_FIRMWARE, MODELS, OPERATING_MODES, REG,
                                         UNIT_MODELS)
from trpo_robot.robot.rate import RateLoop


SLOW_ADAPTER_MS = 16.0
"""The FTDI default latency timer, ms: check-hw waits as long as it for replies."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ''
    warn: bool = False
    """Passed, but worth a look (shown as WARN)."""


def run_checks(config: DxlConfig, spec, read_only=False, seconds=1.0) -> list[Check]:
    """All checks in order; stops early only when the port or every servo is missing."""
    # A generous reply timeout (the SDK's 16 ms latency-timer assumption) so that a slow
    # adapter shows up as a slow loop, with its fix, rather than as silent servos.
    bus = Bus(config.port, config.baud, max(config.latency_timer_ms, SLOW_ADAPTER_MS),
              config.retries)
    try:
        bus.open()
    except ServoFault as e:
        return [Check('port', False, str(e), e.advice)]
    checks = [Check('port', True, f'opened {config.port} -> {os.path.realpath(config.port)} '
                    f'at {config.baud} bit/s')]
    try:
        alive = _servo_checks(bus, config, checks)
        if alive:
            _settings_checks(bus, config, spec, alive, read_only, checks)
            _timing_checks(bus, config, alive, seconds, checks)
    except ServoFault as e:
        checks.append(Check('bus', False, str(e), e.advice))
    finally:
        bus.close()
    return checks


# -- servos ------------------------------------------------------------------------------

def _servo_checks(bus, config, checks) -> list:
    alive = []
    for servo in config.servos:
        check = _servo_check(bus, servo.id)
        checks.append(check)
        if check.ok or 'hardware error' in check.detail:
            alive.append(servo)
    return alive


def _servo_check(bus, sid) -> Check:
    name = f'servo {sid}'
    try:
        model = bus.ping(sid)
    except ServoFault:
        return Check(name, False, 'no answer to ping', 'check its power, cable and ID, and '
                     'that it runs at this baud rate (scan with DYNAMIXEL Wizard)')
    firmware = bus.read(sid, REG['firmware_version'])
    error = bus.read(sid, REG['hardware_error_status'])
    temperature = bus.read(sid, REG['present_temperature'])
    limit = bus.read(sid, REG['temperature_limit'])
    detail = (f'{MODELS.get(model, "unknown model")} (model {model}), firmware v{firmware}, '
              f'{temperature} C (limit {limit})')
    if error:
        return Check(name, False, detail + ', hardware error: '
                     + ', '.join(hardware_error_names(error)),
                     'remove the cause (load, supply voltage, heat), then reboot the servo '
                     '(power-cycle or DYNAMIXEL Wizard)')
    if firmware < MIN_WATCHDOG_FIRMWARE:
        return Check(name, False, detail + ': no Bus Watchdog before v38',
                     'update the firmware with DYNAMIXEL Wizard')
    if temperature >= limit - 10:
        return Check(name, False, detail + ': too hot', 'let it cool; reduce the load')
    if model not in UNIT_MODELS:
        return Check(name, True, detail, 'units.py assumes XM430-W350 current units; check '
                     'the e-Manual of this model', warn=True)
    return Check(name, True, detail + ', no hardware error')


# -- settings ----------------------------------------------------------------------------

def _settings_checks(bus, config, spec, alive, read_only, checks) -> None:
    watchdog = units.watchdog_units(config.watchdog_s)
    for servo in alive:
        expected = servo_settings(servo, spec)
        if not read_only:
            _configure(bus, servo.id, expected, watchdog)
        got = {name: bus.read(servo.id, REG[name]) for name in expected}
        got_watchdog = bus.read(servo.id, REG['bus_watchdog'])
        checks.append(_settings_check(servo, spec, expected, got, watchdog, got_watchdog,
                                      read_only))


def _configure(bus, sid, expected, watchdog) -> None:
    """What the backend's bring-up writes, with torque off; only differing values."""
    bus.write(sid, REG['torque_enable'], 0)
    for name, value in expected.items():
        if bus.read(sid, REG[name]) != value:
            bus.write(sid, REG[name], value)
    bus.write(sid, REG['bus_watchdog'], 0)
    bus.write(sid, REG['bus_watchdog'], watchdog)


def _settings_check(servo, spec, expected, got, watchdog, got_watchdog, read_only) -> Check:
    name = f'limits {servo.id}'
    wrong = [f'{k} is {got[k]}, expected {v}' for k, v in expected.items() if got[k] != v]
    if got_watchdog != watchdog:
        wrong.append(f'bus_watchdog is {got_watchdog}, expected {watchdog} '
                     f'({watchdog * 20} ms)')
    if wrong:
        how = ('run without --read-only to write them (torque off)' if read_only else
               'the servo did not keep them: check the EEPROM lock (torque must be off) and '
               'the servo firmware')
        return Check(name, False, '; '.join(wrong), how)
    detail = [f'mode {OPERATING_MODES[got["operating_mode"]]}',
              f'return delay {got["return_delay_time"]}', f'watchdog {watchdog * 20} ms']
    if servo.joint is not None:
        i = spec.joint_names.index(servo.joint)
        detail.insert(1, f'{servo.joint}: velocity limit {got["velocity_limit"]} '
                      f'({got["velocity_limit"] * units.VELOCITY_UNIT:.3f} <= URDF '
                      f'{spec.velocity_limit[i]:.3f} rad/s), position '
                      f'{got["min_position_limit"]}..{got["max_position_limit"]} '
                      f'(URDF {spec.lower[i]:+.3f}..{spec.upper[i]:+.3f} rad)')
    return Check(name, True, ', '.join(detail) + (' (read only)' if read_only else
                                                  ' (written and read back)'))


# -- timing ------------------------------------------------------------------------------

def _timing_checks(bus, config, alive, seconds, checks) -> None:
    ids = tuple(s.id for s in alive)
    cycles, ages = _free_run(bus, ids, seconds)
    med, p99 = np.percentile(cycles, [50, 99])
    rate = 1.0 / med
    need = 1.0 / config.period
    ok = p99 < 0.8 * config.period
    checks.append(Check('loop rate', ok, f'sync read + write of {len(ids)} servos: median '
                        f'{med * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms -> {rate:.0f} cycles/s '
                        f'(need {need:.0f}/s with p99 under 80% of the '
                        f'{config.period * 1e3:.0f} ms period)',
                        '' if ok else _slow_fix(config, med)))
    a50, a99 = np.percentile(ages, [50, 99])
    timeout = _reply_timeout(config, len(ids))
    ok = a99 < min(config.period, timeout)
    checks.append(Check('state age', ok, f'request to last reply: median {a50 * 1e3:.2f} ms, '
                        f'p99 {a99 * 1e3:.2f} ms (backend reply timeout '
                        f'{timeout * 1e3:.1f} ms)', '' if ok else _slow_fix(config, a50)))
    overruns, late = _hold(bus, ids, config.period, seconds, config.realtime)
    cycles_held = max(1, round(seconds / config.period))
    # A single late cycle is a scheduling hiccup worth a warning; a steady share of them
    # (over 2%) means the loop cannot hold its rate here.
    ok = overruns <= 0.02 * cycles_held
    fix = _slow_fix(config, med)
    if med < 0.5 * config.period:  # the cycle fits: the overruns are scheduling delays
        fix = ('cycles fit the period, so the overruns are scheduling delays: '
               + ('set realtime: true in the config (SCHED_FIFO for the bus loop), or '
                  if not config.realtime else '') + 'move other load off this machine')
    checks.append(Check(f'hold {need:.0f} Hz', ok, f'{seconds:.1f} s of bus cycles at '
                        f'{need:.0f} Hz: {overruns} overruns, lateness p99 {late * 1e3:.2f} ms'
                        + (' (SCHED_FIFO)' if config.realtime else ''),
                        fix if overruns else '', warn=ok and overruns > 0))
    timer = _latency_timer(config.port)
    if timer is not None and timer > 1:
        checks.append(Check('latency timer', True, f'USB latency timer is {timer} ms',
                            f'echo 1 > {_timer_path(config.port)}', warn=True))


def _reply_timeout(config, n_servos) -> float:
    """The sync read timeout the backend will use (as bus._Port computes it), s."""
    n_bytes = (11 + FAST_READ[1]) * n_servos
    return (units.wire_seconds(n_bytes, config.baud) + 2 * config.latency_timer_ms / 1e3
            + 0.002)


def _free_run(bus, ids, seconds):
    """Back-to-back cycles: (cycle times, sync read round trips), s."""
    goal = {sid: 0 for sid in ids}
    cycles, ages = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(cycles) < 20:
        t0 = time.perf_counter()
        bus.sync_write(REG['goal_velocity'], goal)
        t1 = time.perf_counter()
        bus.sync_read(*FAST_READ, ids)
        t2 = time.perf_counter()
        cycles.append(t2 - t0)
        ages.append(t2 - t1)
    return np.array(cycles), np.array(ages)


def _hold(bus, ids, period, seconds, realtime):
    """Cycles on a RateLoop at the bus period: (overruns, lateness p99 s)."""
    loop = RateLoop(period, realtime=realtime)
    goal = {sid: 0 for sid in ids}
    try:
        for _ in range(max(10, int(seconds / period))):
            loop.wait()
            bus.sync_write(REG['goal_velocity'], goal)
            bus.sync_read(*FAST_READ, ids)
    finally:
        loop.release_realtime()
    stats = loop.stats()
    return stats.overruns, stats.p99


def _slow_fix(config, median) -> str:
    tips = []
    timer = _latency_timer(config.port)
    if timer is not None and timer > 1:
        tips.append(f'USB latency timer is {timer} ms: echo 1 > {_timer_path(config.port)}')
    elif median > 0.012:
        tips.append("a cycle near 16 ms or more is the USB adapter's latency timer: set it "
                    'to 1 ms (echo 1 > /sys/bus/usb-serial/devices/ttyUSBn/latency_timer)')
    if config.baud < 1_000_000:
        tips.append(f'raise the bus from {config.baud} to 1 Mbps or more (Baud Rate, 8)')
    tips.append('set Return Delay Time (9) to 0 (this check does that unless --read-only)')
    tips.append('or lengthen the bus period')
    return '; '.join(tips)


def _timer_path(port) -> Path:
    name = Path(os.path.realpath(port)).name
    return Path('/sys/bus/usb-serial/devices') / name / 'latency_timer'


def _latency_timer(port):
    """The adapter's latency timer in ms, or None when it is not a USB serial adapter."""
    try:
        return int(_timer_path(port).read_text().strip())
    except (OSError, ValueError):
        return None


def format_report(config: DxlConfig, checks: list[Check]) -> str:
    ids = ' '.join(str(i) for i in config.ids)
    return format_checks(f'check-hw: Dynamixel bus {config.port} at {config.baud} bit/s, '
                         f'ids {ids}, URDF {config.urdf}, period {config.period * 1e3:.0f} ms',
                         checks)


def format_checks(header: str, checks: list[Check]) -> str:
    """One line per check (PASS / WARN / FAIL), the fix under each that needs one, a verdict."""
    lines = [header]
    width = max(len(c.name) for c in checks)
    for c in checks:
        tag = 'FAIL' if not c.ok else 'WARN' if c.warn else 'PASS'
        lines.append(f'  {tag}  {c.name:<{width}}  {c.detail}')
        if c.fix and (not c.ok or c.warn):
            lines.append(f'        {"":<{width}}  fix: {c.fix}')
    failed = [c.name for c in checks if not c.ok]
    lines.append(f'result: FAIL ({", ".join(failed)})' if failed else
                 f'result: PASS ({len(checks)} checks)')
    return '\n'.join(lines)
