"""One emulated X-series servo: its control table and the rules a real one enforces.

Modelled: read-only registers, EEPROM writable only with torque off (Access error),
value ranges (Data Range / Data Limit errors), the Bus Watchdog (register 98: stop and
read -1 when no instruction arrives in time; goal registers read-only until 98 is set to
0), hardware error status with the shutdown mask (torque off, alert bit in every status
packet until a reboot), reboot and factory reset. Times are the emulator's sim time, s.
"""
from trpo_robot.hw import units
from trpo_robot.hw.control_table import (ACCESS_ERROR, ALERT_BIT, LIMIT_ERROR,
                                         OPERATING_MODES, RANGE_ERROR, REG, Register,
                                         RESULT_FAIL, TABLE_END)

_BY_ADDRESS = {}
for _reg in REG.values():
    for _a in range(_reg.address, _reg.end):
        _BY_ADDRESS[_a] = _reg

_FACTORY = {  # XM430-W350 factory values (e-Manual)
    'model_number': 1020, 'firmware_version': 46, 'baud_rate': 1, 'return_delay_time': 250,
    'operating_mode': 3, 'secondary_id': 255, 'protocol_type': 2, 'moving_threshold': 10,
    'temperature_limit': 80, 'max_voltage_limit': 160, 'min_voltage_limit': 95,
    'pwm_limit': 885, 'current_limit': 1193, 'velocity_limit': 200,
    'max_position_limit': 4095, 'min_position_limit': 0, 'shutdown': 52,
}
_RAM_DEFAULTS = {
    'status_return_level': 2, 'velocity_i_gain': 1920, 'velocity_p_gain': 100,
    'position_p_gain': 800, 'present_input_voltage': 120, 'present_temperature': 32,
}
_GOALS = ('goal_pwm', 'goal_current', 'goal_velocity', 'goal_position')
POSITION_GAIN = 10.0
"""Position modes: velocity count commanded per count of position error, 1/s."""


class Servo:
    """Control table and rules of one servo; the emulator moves it and fills 'present'."""

    def __init__(self, servo_id: int, firmware: int = 46):
        self.mem = bytearray(TABLE_END)
        self.persistent_error = 0
        """Hardware error bits that a reboot does not clear (a cause still present)."""
        self.last_instruction = 0.0
        self.tripped_at = None
        """Sim time the Bus Watchdog last stopped this servo."""
        self.refused_writes = 0
        self._factory(keep=())
        self.set('id', servo_id)
        self.set('firmware_version', firmware)
        self.reset_ram(0.0)

    # -- registers ----------------------------------------------------------------------

    def get(self, name: str) -> int:
        reg = REG[name]
        return units.from_bytes(self.mem[reg.address:reg.end], reg.size, reg.signed)

    def set(self, name: str, value: int) -> None:  # noqa: A003 - register access
        reg = REG[name]
        self.mem[reg.address:reg.end] = bytes(units.to_bytes(value, reg.size))

    @property
    def id(self) -> int:  # noqa: A003 - the protocol's name
        return self.mem[REG['id'].address]

    @property
    def torque(self) -> bool:
        return bool(self.mem[REG['torque_enable'].address])

    @property
    def hardware_error(self) -> int:
        return self.mem[REG['hardware_error_status'].address]

    def status_error(self, code: int = 0) -> int:
        """Error byte of a status packet: ``code`` plus the alert bit on a hardware error."""
        return code | (ALERT_BIT if self.hardware_error else 0)

    def read(self, address: int, length: int):
        """(error code, data) for a Read / Sync Read."""
        if length < 1 or address + length > TABLE_END:
            return RANGE_ERROR, b''
        return 0, bytes(self.mem[address:address + length])

    def write(self, address: int, data: bytes, now: float) -> int:
        """Apply a Write / Sync Write; 0 or the error code (nothing is written on error)."""
        regs = self._touched(address, len(data))
        if regs is None or any(not r.writable for r in regs):
            return ACCESS_ERROR
        if self.torque and any(r.eeprom for r in regs):
            return ACCESS_ERROR
        staged = bytearray(self.mem)
        staged[address:address + len(data)] = data
        for reg in regs:
            code = self._check_value(reg, staged, now)
            if code:
                return code
        self._commit(regs, staged, now)
        return 0

    # -- time-driven behaviour ------------------------------------------------------------

    def heard(self, now: float) -> None:
        """Any instruction packet this servo processed feeds its Bus Watchdog."""
        self.last_instruction = now

    def watchdog_deadline(self):
        """Sim time at which the Bus Watchdog fires, or None when it is not armed."""
        timeout = units.watchdog_seconds(self.get('bus_watchdog'))
        if not (self.torque and timeout):
            return None
        return self.last_instruction + timeout

    def check_watchdog(self, now: float) -> bool:
        """Fire the watchdog if it is due: stop where it is in any mode (torque stays on),
        and Bus Watchdog reads -1."""
        deadline = self.watchdog_deadline()
        if deadline is None or now <= deadline:
            return False
        self.mem[REG['bus_watchdog'].address] = units.WATCHDOG_TRIPPED
        self.set('goal_velocity', 0)
        self.set('goal_position', self.get('present_position'))  # position modes hold here
        self.tripped_at = deadline
        return True

    def raise_hardware_error(self, bits: int, persistent: bool = True) -> None:
        """Set hardware error bits; those in the Shutdown mask turn the torque off."""
        self.mem[REG['hardware_error_status'].address] |= bits
        if persistent:
            self.persistent_error |= bits
        if bits & self.get('shutdown'):
            self.set('torque_enable', 0)
            self.set('goal_velocity', 0)

    def reboot(self, now: float) -> None:
        """Clear what a power cycle clears: RAM, torque, watchdog; keep EEPROM."""
        self.reset_ram(now)
        self.set('hardware_error_status', self.persistent_error)

    def factory_reset(self, option: int, now: float) -> None:
        """0xFF: everything; 0x01: all but ID; 0x02: all but ID and baud rate."""
        keep = {0xFF: (), 0x01: ('id',), 0x02: ('id', 'baud_rate')}.get(option, ('id',))
        self._factory(keep)
        self.reset_ram(now)

    def reset_ram(self, now: float) -> None:
        start = REG['torque_enable'].address
        present = {n: self.get(n) for n in ('present_position', 'present_velocity',
                                            'present_current')}
        self.mem[start:] = bytes(TABLE_END - start)
        for name, value in {**_RAM_DEFAULTS, **present}.items():
            self.set(name, value)
        self.last_instruction = now

    def velocity_command(self) -> int:
        """What the motor is asked to turn at now, velocity counts (0 with torque off)."""
        if not self.torque:
            return 0
        mode = self.get('operating_mode')
        limit = self.get('velocity_limit')
        if mode == 1:
            return max(-limit, min(limit, self.get('goal_velocity')))
        if mode in (3, 4, 5):
            error = self.get('goal_position') - self.get('present_position')
            return int(max(-limit, min(limit, POSITION_GAIN * error * units.POSITION_UNIT
                                       / units.VELOCITY_UNIT)))
        return 0  # current and PWM modes are not modelled: the servo holds

    # -- internals ---------------------------------------------------------------------

    def _factory(self, keep):
        kept = {name: self.get(name) for name in keep}
        self.mem[:REG['torque_enable'].address] = bytes(REG['torque_enable'].address)
        for name, value in {**_FACTORY, 'id': 1, **kept}.items():
            self.set(name, value)

    def _touched(self, address, length):
        regs = []
        for a in range(address, address + length):
            reg = _BY_ADDRESS.get(a)
            if reg is None:
                return None
            if not regs or regs[-1] is not reg:
                regs.append(reg)
        return regs

    def _check_value(self, reg: Register, staged, now) -> int:
        value = units.from_bytes(staged[reg.address:reg.end], reg.size, reg.signed)
        if reg.name in _GOALS and self.mem[REG['bus_watchdog'].address] == 0xFF:
            return RANGE_ERROR  # goals are read-only until the watchdog error is cleared
        if reg.name == 'bus_watchdog':
            tripped = self.mem[reg.address] == units.WATCHDOG_TRIPPED
            return RANGE_ERROR if (value > 127 or (tripped and value != 0)) else 0
        if reg.name == 'goal_velocity' and abs(value) > self.get('velocity_limit'):
            return LIMIT_ERROR
        if reg.name == 'torque_enable':
            if value > 1:
                return RANGE_ERROR
            return RESULT_FAIL if value and self.hardware_error else 0
        return _range_error(reg.name, value)

    def _commit(self, regs, staged, now):
        torque_before = self.torque
        for reg in regs:
            self.mem[reg.address:reg.end] = staged[reg.address:reg.end]
        if self.torque and not torque_before:
            self.last_instruction = now
            self.set('goal_position', self.get('present_position'))


_RANGES = {'operating_mode': set(OPERATING_MODES), 'id': range(0, 253),
           'baud_rate': range(0, 8), 'return_delay_time': range(0, 255),
           'velocity_limit': range(0, 1024), 'max_position_limit': range(0, 4096),
           'min_position_limit': range(0, 4096), 'status_return_level': range(0, 3),
           'drive_mode': range(0, 16), 'temperature_limit': range(0, 101)}


def _range_error(name, value) -> int:
    allowed = _RANGES.get(name)
    return RANGE_ERROR if allowed is not None and value not in allowed else 0
