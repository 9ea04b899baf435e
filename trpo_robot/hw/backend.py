"""DynamixelBackend: a chain of X-series servos on one serial bus behind the ``Backend``
protocol, in velocity mode.

Per bus cycle (``period``, paced by a RateLoop) it sends one Sync Write of Goal Velocity,
which also feeds every servo's Bus Watchdog, and one Sync Read of present current,
velocity and position (126..135, one contiguous block). Every ``health_period`` that read
is widened to 70..146 to also bring hardware error, watchdog, voltage and temperature.

Safety on the servo side, so that it holds when this process does not:
- bring-up happens with torque off (operating mode, limits from the URDF, Return Delay
  Time 0, Bus Watchdog), torque goes on only once everything has been written and read
  back, and goes off on every way out (close(), atexit, a fault);
- the Bus Watchdog stops a servo that hears nothing for ``watchdog_ms``;
- a failed transaction (after retries), a lost port or a hardware error stops the arm,
  turns the torque off, and raises ``ServoFault`` naming the servo and the fault. From
  then on nothing is written to the bus until ``reconnect()``.
"""
import atexit
import math
import time
import warnings

import numpy as np

from trpo_robot.hw import units
from trpo_robot.hw.bus import Bus, ServoFault, WriteRefused
from trpo_robot.hw.config import DxlConfig
from trpo_robot.hw.control_table import (ALERT_BIT, FAST_READ, hardware_error_names,
                                         HEALTH_READ, MIN_WATCHDOG_FIRMWARE, REG,
                                         VELOCITY_MODE)
from trpo_robot.paths import urdf_path
from trpo_robot.robot.backend import Backend, Capabilities, JointState
from trpo_robot.robot.rate import RateLoop
from trpo_robot.robot.spec import RobotSpec

REARM_FRACTION = 0.8
"""A gap between writes longer than this fraction of the watchdog may have tripped it:
re-arm before the next command (a tripped servo ignores goals until 98 is cleared)."""
_HW = HEALTH_READ[0]
_FAST = FAST_READ[0]


def servo_settings(servo, spec: RobotSpec) -> dict:
    """Register values a servo must hold, derived from the URDF and the config.

    Position limits only bind in position modes; they are written anyway so that the
    servos carry the URDF range if someone switches modes (in velocity mode the safety
    shield enforces it). A servo mapped to no joint gets only mode and return delay.
    """
    settings = {'operating_mode': VELOCITY_MODE, 'return_delay_time': 0}
    if servo.joint is None:
        return settings
    i = spec.joint_names.index(servo.joint)
    lo, hi = units.position_limits_raw(spec.lower[i], spec.upper[i], servo.zero,
                                       servo.direction)
    settings.update(velocity_limit=units.velocity_limit_raw(spec.velocity_limit[i]),
                    min_position_limit=lo, max_position_limit=hi)
    return settings


class DynamixelBackend(Backend):
    """Velocity-controlled Dynamixel arm (see the module docstring)."""

    capabilities = Capabilities(freedrive=True, lateness=True)

    def __init__(self, config: DxlConfig, spec: RobotSpec | None = None, *, connect=True,
                 time_scale: float = 1.0):
        """``time_scale``: backend seconds per wall second. 1 on hardware; an emulator run
        faster than real time needs the same factor here so that both agree on time."""
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f'time_scale must be finite and > 0, got {time_scale}')
        self.config = config
        self.spec = spec or RobotSpec.from_urdf(urdf_path(config.urdf))
        self._servos = self._chain_servos(config)
        self.ids = tuple(s.id for s in self._servos)
        self._zero = np.array([s.zero for s in self._servos], float)
        self._dir = np.array([s.direction for s in self._servos], float)
        joint_index = [self.spec.joint_names.index(s.joint) for s in self._servos]
        self._limit_raw = np.array([units.velocity_limit_raw(self.spec.velocity_limit[i])
                                    for i in joint_index])
        self.time_scale = float(time_scale)
        self.bus = Bus(config.port, config.baud, config.latency_timer_ms, config.retries)
        self._loop = RateLoop(config.period / self.time_scale, realtime=config.realtime)
        self._goal = np.zeros(len(self.ids), np.int64)
        self._state = None
        self._fault = None
        self._torque = False
        self._freedrive = False
        self._owed = 0.0
        self._last_write = None
        self._last_cycle = None
        self._next_health = 0.0
        self.health = {}
        """servo id -> dict(hardware_error, temperature, temperature_limit, voltage,
        bus_watchdog, model, firmware), refreshed at bring-up and every health read."""
        self.current = np.zeros(len(self.ids))
        """Present Current of each servo at the last read, A."""
        self.lateness = 0.0
        self.cycle_time = 0.0
        """s the last bus cycle spent on the wire (its write and read, not its wait)."""
        self.counters = {'cycles': 0, 'watchdog_rearms': 0, 'watchdog_trips': 0,
                         'pauses': 0, 'health_reads': 0, 'freedrive_ignored': 0}
        if connect:
            self.connect()

    def _chain_servos(self, config):
        """Servos that drive URDF joints, in the URDF's chain order."""
        mapped = [s for s in config.servos if s.joint]
        unknown = [s.joint for s in mapped if s.joint not in self.spec.joint_names]
        if unknown or not mapped:
            raise ValueError(f'Dynamixel config maps joints {unknown or "none"} that are not '
                             f'in the URDF chain {self.spec.joint_names}')
        return sorted(mapped, key=lambda s: self.spec.joint_names.index(s.joint))

    # --- Backend protocol -------------------------------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(s.joint for s in self._servos)

    @property
    def period(self) -> float:
        return self.config.period

    def now(self) -> float:
        """Monotonic time (scaled by ``time_scale``), s."""
        return time.monotonic() * self.time_scale

    def read(self) -> JointState:
        """The last reading if it is less than one bus period old, else a fresh one."""
        self._check_usable()
        if self._state is None or self.now() - self._state.stamp >= self.period:
            self._guarded(self._read_state)
        return self._state

    def send_velocity(self, v, at_once: bool = True) -> None:
        """Command joint velocities, rad/s (saturated at the URDF limit); sent at once and
        re-sent every bus cycle until the next command. ``at_once=False`` leaves the first
        write to the next cycle, as a driver whose loop owns the bus does (one write per
        cycle, a command waits at most one period)."""
        self._check_usable()
        v = np.asarray(v, float)
        if v.shape != (len(self.ids),) or not np.all(np.isfinite(v)):
            self.stop()
            raise ValueError(f'velocity command must be {len(self.ids)} finite numbers for '
                             f'{self.joint_names}, got {v!r}; the arm was stopped')
        if self._freedrive:  # the operator moves the arm: torque stays off, goal zero
            self.counters['freedrive_ignored'] += bool(np.any(v))
            return
        self._goal = units.velocity_to_raw(v, self._dir, self._limit_raw)
        if at_once:
            self._guarded(self._write_goal)

    def set_freedrive(self, on: bool) -> None:
        """Freedrive reset (the lifecycle's hook): ``on`` makes the arm limp so that the
        operator can move it by hand; ``off`` makes the servos hold it again.

        On: goal velocity 0, then Torque Enable 0 on every servo. A limp arm sags under
        gravity: the operator must support it before switching this on. Readings keep
        coming (the bus cycle still reads), velocity commands are ignored and never turn
        the torque back on. Off: goal velocity 0 and torque on through the same checked
        path as bring-up (a servo with a hardware error refuses and faults), then a fresh
        reading, so the shield starts from where the hand left the arm. After a fault
        nothing is written (the fault path already turned the torque off): ``off`` then
        only ends freedrive, and ``reconnect()`` turns the torque on.
        """
        if not on and (self._fault is not None or not self.bus.is_open):
            self._freedrive = False
            return
        self._check_usable()
        self._guarded(self._release if on else self._take_over)

    @property
    def freedrive(self) -> bool:
        """Whether the arm is limp for a freedrive reset (see ``set_freedrive``)."""
        return self._freedrive

    def stop(self) -> None:
        """Zero velocity on every servo (they hold position, torque stays as it is)."""
        self._check_usable()
        self._goal = np.zeros(len(self.ids), np.int64)
        self._guarded(self._write_goal)

    def advance(self, duration: float) -> None:
        """Run whole bus cycles for ``duration`` s (a remainder is carried to the next
        call), re-sending the held command every cycle."""
        self._check_usable()
        self._owed += float(duration)
        cycles = math.floor(self._owed / self.period + 1e-9)
        self._owed = max(0.0, self._owed - cycles * self.period)
        for _ in range(cycles):
            self._guarded(self._cycle)

    def close(self) -> None:
        """Stop, torque off, close the port. Safe to call twice; never raises."""
        atexit.unregister(self.close)
        if self.bus.is_open:
            if self._fault is None:  # after a fault the fault path already did this
                self._torque_off_quietly()
            self.bus.close()
        self._loop.release_realtime()

    # --- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        """Open the port, bring every servo up with torque off, then enable torque."""
        self.bus.open()
        atexit.register(self.close)
        try:
            self._freedrive = False
            for servo in self._servos:
                self._bring_up(servo)
            self._torque_on()
            self._read_state()
        except BaseException:
            self._torque_off_quietly()
            self.bus.close()
            raise
        self._fault = None

    def reconnect(self) -> None:
        """After a fault: close, reopen the port and bring the servos up again.

        A servo that still reports a hardware error refuses torque and makes this raise
        again; clear its cause, then ``reboot(servo_id)`` (or power-cycle it).
        """
        self.close()
        self._state, self._last_write, self._last_cycle = None, None, None
        self.connect()

    def reboot(self, servo_id: int) -> None:
        """Reboot one servo (clears a hardware error whose cause has gone); torque is off
        afterwards, so reconnect() before moving."""
        if not self.bus.is_open:
            self.bus.open()
        self.bus.reboot(servo_id)
        time.sleep(0.05)

    @property
    def torque_enabled(self) -> bool:
        """Whether this backend has turned the servos' torque on (and not off since)."""
        return self._torque

    @property
    def fault(self) -> ServoFault | None:
        """The fault that stopped the backend, until reconnect()."""
        return self._fault

    def stats(self) -> dict:
        """Counters for diagnostics: bus retries and errors, cycles, watchdog, timing."""
        timing = self._loop.stats()
        return {**self.counters, **{k: v for k, v in vars(self.bus.stats).items()},
                'overruns': timing.overruns, 'lateness_p99': timing.p99,
                'lateness_max': timing.max}

    # --- bring-up -----------------------------------------------------------------------

    def _bring_up(self, servo) -> None:
        sid = servo.id
        model = self.bus.ping(sid)
        firmware = self.bus.read(sid, REG['firmware_version'])
        error = self.bus.read(sid, REG['hardware_error_status'])
        if error:
            raise ServoFault(sid, 'hardware error: ' + ', '.join(hardware_error_names(error)),
                             'remove the cause (load, supply, temperature), then reboot the '
                             'servo or power-cycle it')
        if firmware < MIN_WATCHDOG_FIRMWARE:
            raise ServoFault(sid, f'firmware v{firmware} has no Bus Watchdog (needs '
                             f'v{MIN_WATCHDOG_FIRMWARE}+)', 'update it with DYNAMIXEL Wizard')
        self.bus.write(sid, REG['torque_enable'], 0)
        for name, value in self._settings(servo).items():
            self._ensure(sid, REG[name], value)
        self.bus.write(sid, REG['bus_watchdog'], 0)  # clears a tripped watchdog too
        self.bus.write(sid, REG['bus_watchdog'], units.watchdog_units(self.config.watchdog_s))
        self.health[sid] = {'model': model, 'firmware': firmware, 'hardware_error': 0,
                            'temperature': self.bus.read(sid, REG['present_temperature']),
                            'temperature_limit': self.bus.read(sid, REG['temperature_limit']),
                            'bus_watchdog': units.watchdog_units(self.config.watchdog_s)}

    def _settings(self, servo) -> dict:
        return servo_settings(servo, self.spec)

    def _ensure(self, sid, reg, value) -> None:
        """Write only what differs (EEPROM wears out), then read it back."""
        if self.bus.read(sid, reg) == value:
            return
        self.bus.write(sid, reg, value, advice='EEPROM registers are writable only with '
                       'torque off' if reg.eeprom else '')
        got = self.bus.read(sid, reg)
        if got != value:
            raise ServoFault(sid, f'{reg.name} reads {got} after writing {value}')

    def _torque_on(self) -> None:
        self._goal[:] = 0
        self.bus.sync_write(REG['goal_velocity'], self._goal_values())
        for sid in self.ids:
            try:
                self.bus.write(sid, REG['torque_enable'], 1)
            except WriteRefused as e:
                raise ServoFault(sid, f'torque refused ({e.fault})', 'read its hardware error '
                                 'status; reboot it once the cause is gone') from None
        self._torque = True
        self._last_write = self.now()

    def _release(self) -> None:
        """Freedrive on: stop, then torque off servo by servo, each write acknowledged
        (a servo that stayed on would fight the hand)."""
        self._goal[:] = 0
        self._write_goal()
        self._freedrive = True
        for sid in self.ids:
            self.bus.write(sid, REG['torque_enable'], 0)
        self._torque = False

    def _take_over(self) -> None:
        """Freedrive off: hold at zero velocity where the hand left the arm."""
        self._freedrive = False
        self._torque_on()
        self._read_state()

    def _torque_off_quietly(self) -> None:
        """Zero velocity then torque off, by broadcast (no reply needed from a servo that
        may be the failing one); errors are swallowed: this runs on the way out."""
        if not self.bus.is_open:
            return
        for reg, value in ((REG['goal_velocity'], 0), (REG['torque_enable'], 0)):
            try:
                self.bus.broadcast_write(reg, value)
            except ServoFault:
                break
        self._torque = False

    # --- cycle ----------------------------------------------------------------------------

    def _cycle(self) -> None:
        if self._last_cycle is None or self.now() - self._last_cycle > 2 * self.period:
            self.counters['pauses'] += self._last_cycle is not None
            self._loop.start()  # a pause of the caller (an update, a reset): not an overrun
        deadline = self._loop.wait()
        woke = time.monotonic()
        self.lateness = (woke - deadline) * self.time_scale
        self._write_goal()
        if self.now() >= self._next_health:
            self._health_read()
        else:
            self._read_state()
        self.cycle_time = (time.monotonic() - woke) * self.time_scale
        self.counters['cycles'] += 1
        self._last_cycle = self.now()

    def _write_goal(self) -> None:
        now = self.now()
        if self._last_write is not None and \
                now - self._last_write > REARM_FRACTION * self.config.watchdog_s:
            self._rearm_watchdog()
        self.bus.sync_write(REG['goal_velocity'], self._goal_values())
        self._last_write = self.now()

    def _goal_values(self) -> dict:
        return {sid: int(g) for sid, g in zip(self.ids, self._goal)}

    def _rearm_watchdog(self) -> None:
        """Clear a possibly tripped Bus Watchdog and arm it again (two sync writes)."""
        self.counters['watchdog_rearms'] += 1
        self.bus.sync_write(REG['bus_watchdog'], {sid: 0 for sid in self.ids})
        units_ = units.watchdog_units(self.config.watchdog_s)
        self.bus.sync_write(REG['bus_watchdog'], {sid: units_ for sid in self.ids})

    def _read_state(self) -> None:
        stamp = self.now()
        replies = self.bus.sync_read(*FAST_READ, self.ids)
        self._decode_state(replies, 0, stamp)
        self._check_alerts(replies)

    def _health_read(self) -> None:
        stamp = self.now()
        replies = self.bus.sync_read(*HEALTH_READ, self.ids)
        self._decode_state(replies, _FAST - _HW, stamp)
        self.counters['health_reads'] += 1
        self._next_health = stamp + self.config.health_period
        for sid, (data, _) in replies.items():
            self._note_health(sid, data)

    def _decode_state(self, replies, offset, stamp) -> None:
        """Current, velocity, position from each reply, ``offset`` bytes in."""
        raw = np.array([[units.from_bytes(replies[sid][0], 2, True, offset),
                         units.from_bytes(replies[sid][0], 4, True, offset + 2),
                         units.from_bytes(replies[sid][0], 4, True, offset + 6)]
                        for sid in self.ids], float)
        self.current = units.raw_to_current(raw[:, 0])
        self._state = JointState(
            position=units.raw_to_position(raw[:, 2], self._zero, self._dir),
            velocity=units.raw_to_velocity(raw[:, 1], self._dir), stamp=stamp)

    def _note_health(self, sid, data) -> None:
        health = self.health.setdefault(sid, {})
        health.update(hardware_error=_field(data, 'hardware_error_status'),
                      temperature=_field(data, 'present_temperature'),
                      voltage=_field(data, 'present_input_voltage') * units.VOLTAGE_UNIT,
                      bus_watchdog=_field(data, 'bus_watchdog'))
        if health['hardware_error']:
            self._raise_hardware_error(sid, health['hardware_error'])
        if health['bus_watchdog'] == units.WATCHDOG_TRIPPED:
            self.counters['watchdog_trips'] += 1
            self._rearm_watchdog()
        limit = health.get('temperature_limit', 80)
        if health['temperature'] >= limit - self.config.temperature_margin:
            warnings.warn(f'Dynamixel servo {sid}: {health["temperature"]} deg C, within '
                          f'{self.config.temperature_margin} of its limit {limit}',
                          RuntimeWarning, stacklevel=2)

    def _check_alerts(self, replies) -> None:
        for sid, (_, error) in replies.items():
            if error & ALERT_BIT:
                bits = self.bus.read(sid, REG['hardware_error_status'])
                self.health.setdefault(sid, {})['hardware_error'] = bits
                self._raise_hardware_error(sid, bits)

    def _raise_hardware_error(self, sid, bits):
        raise ServoFault(sid, 'hardware error: ' + ', '.join(hardware_error_names(bits)),
                         'the servo has shut down; remove the cause, then reboot it and '
                         'reconnect')

    # --- fault handling -----------------------------------------------------------------

    def _guarded(self, action) -> None:
        """Run a bus action; on any failure stop the arm, torque off, remember the fault."""
        try:
            action()
        except ServoFault as fault:
            self._fail(fault)
            raise
        except BaseException:
            self._fail(None)
            raise

    def _fail(self, fault) -> None:
        self._torque_off_quietly()
        self._fault = fault or ServoFault(None, 'interrupted; the arm was stopped and its '
                                          'torque turned off')

    def _check_usable(self) -> None:
        if self._fault is not None:
            raise ServoFault(self._fault.servo_id, f'stopped after: {self._fault.fault}',
                             'nothing is sent until reconnect()')
        if not self.bus.is_open:
            raise ServoFault(None, f'port {self.config.port} is closed', 'call connect()')


def _field(health_block, name) -> int:
    """A register's value out of a HEALTH_READ reply."""
    reg = REG[name]
    return units.from_bytes(health_block, reg.size, reg.signed, reg.address - _HW)
