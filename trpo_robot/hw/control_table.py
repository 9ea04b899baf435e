"""The X-series (Protocol 2.0) control table: addresses, sizes and access, once.

Source: ``reference/hardware.md`` and the ROBOTIS e-Manual for the XM430-W350. The
backend, check-hw and the emulator all read addresses from here, so the emulator cannot
drift from what the backend expects without a test noticing.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    writable: bool = True
    signed: bool = False

    @property
    def eeprom(self) -> bool:
        """EEPROM registers (below 64) are writable only while torque is off."""
        return self.address < 64

    @property
    def end(self) -> int:
        return self.address + self.size


_TABLE = (
    Register('model_number', 0, 2, writable=False),
    Register('model_information', 2, 4, writable=False),
    Register('firmware_version', 6, 1, writable=False),
    Register('id', 7, 1),
    Register('baud_rate', 8, 1),
    Register('return_delay_time', 9, 1),
    Register('drive_mode', 10, 1),
    Register('operating_mode', 11, 1),
    Register('secondary_id', 12, 1),
    Register('protocol_type', 13, 1),
    Register('homing_offset', 20, 4, signed=True),
    Register('moving_threshold', 24, 4),
    Register('temperature_limit', 31, 1),
    Register('max_voltage_limit', 32, 2),
    Register('min_voltage_limit', 34, 2),
    Register('pwm_limit', 36, 2),
    Register('current_limit', 38, 2),
    Register('velocity_limit', 44, 4),
    Register('max_position_limit', 48, 4),
    Register('min_position_limit', 52, 4),
    Register('shutdown', 63, 1),
    Register('torque_enable', 64, 1),
    Register('led', 65, 1),
    Register('status_return_level', 68, 1),
    Register('registered_instruction', 69, 1, writable=False),
    Register('hardware_error_status', 70, 1, writable=False),
    Register('velocity_i_gain', 76, 2),
    Register('velocity_p_gain', 78, 2),
    Register('position_d_gain', 80, 2),
    Register('position_i_gain', 82, 2),
    Register('position_p_gain', 84, 2),
    Register('bus_watchdog', 98, 1),
    Register('goal_pwm', 100, 2, signed=True),
    Register('goal_current', 102, 2, signed=True),
    Register('goal_velocity', 104, 4, signed=True),
    Register('profile_acceleration', 108, 4),
    Register('profile_velocity', 112, 4),
    Register('goal_position', 116, 4, signed=True),
    Register('realtime_tick', 120, 2, writable=False),
    Register('moving', 122, 1, writable=False),
    Register('moving_status', 123, 1, writable=False),
    Register('present_pwm', 124, 2, writable=False, signed=True),
    Register('present_current', 126, 2, writable=False, signed=True),
    Register('present_velocity', 128, 4, writable=False, signed=True),
    Register('present_position', 132, 4, writable=False, signed=True),
    Register('velocity_trajectory', 136, 4, writable=False, signed=True),
    Register('position_trajectory', 140, 4, writable=False, signed=True),
    Register('present_input_voltage', 144, 2, writable=False),
    Register('present_temperature', 146, 1, writable=False),
)
REG = {r.name: r for r in _TABLE}
TABLE_END = 147
"""One past the last address modelled (Present Temperature)."""

FAST_READ = (REG['present_current'].address, 10)
"""The per-cycle sync read: Present Current, Velocity, Position (126..135), contiguous."""
HEALTH_READ = (REG['hardware_error_status'].address,
               TABLE_END - REG['hardware_error_status'].address)
"""The periodic sync read 70..146: hardware error, Bus Watchdog, goal, present state,
voltage and temperature in one block (it contains FAST_READ, so it replaces that cycle's)."""

VELOCITY_MODE = 1
OPERATING_MODES = {0: 'current', 1: 'velocity', 3: 'position', 4: 'extended position',
                   5: 'current-based position', 16: 'PWM'}

HARDWARE_ERRORS = {0: 'input voltage error', 2: 'overheating', 3: 'motor encoder error',
                   4: 'electrical shock', 5: 'overload'}
"""Bits of Hardware Error Status (70)."""
ALERT_BIT = 0x80
"""Set in a status packet's error byte while Hardware Error Status is non-zero."""
STATUS_ERRORS = {1: 'result fail', 2: 'instruction error', 3: 'CRC error',
                 4: 'data range error', 5: 'data length error', 6: 'data limit error',
                 7: 'access error'}
"""Codes of a status packet's error byte (bits 0..6)."""
ACCESS_ERROR, RANGE_ERROR, LIMIT_ERROR, CRC_ERROR = 7, 4, 6, 3
INSTRUCTION_ERROR, LENGTH_ERROR, RESULT_FAIL = 2, 5, 1

MODELS = {1000: 'XH430-W210', 1010: 'XH430-W350', 1020: 'XM430-W350', 1030: 'XM430-W210',
          1060: 'XL430-W250', 1120: 'XM540-W270', 1130: 'XM540-W150'}
"""Model numbers (Model Number register / ping reply) of common X-series servos."""
UNIT_MODELS = frozenset({1020})
"""Models whose units are those in units.py (position/velocity are X-series wide; the
current unit is the XM430-W350's)."""
MIN_WATCHDOG_FIRMWARE = 38
"""Bus Watchdog exists from firmware v38 (e-Manual)."""


def hardware_error_names(bits: int) -> list[str]:
    """Names of the set bits of Hardware Error Status."""
    names = [name for bit, name in HARDWARE_ERRORS.items() if bits & (1 << bit)]
    unknown = bits & ~sum(1 << b for b in HARDWARE_ERRORS)
    if unknown:
        names.append(f'unknown bits 0x{unknown:02x}')
    return names


def status_error_text(error: int) -> str:
    """A status packet's error byte in words ('' when clean)."""
    parts = []
    code = error & 0x7F
    if code:
        parts.append(STATUS_ERRORS.get(code, f'error code {code}'))
    if error & ALERT_BIT:
        parts.append('hardware alert')
    return ', '.join(parts)
