"""Faults the emulator can inject, and the ``--fault KIND=VALUE`` text that names them.

Each is a failure seen on real Dynamixel buses: a servo that lost power (dead), a noisy
cable (corrupt, drop), a servo stuck in a long operation (stall), an adapter left at the
16 ms FTDI latency timer (latency-ms), a pulled USB plug (unplug-after), a servo that has
shut itself down (hw-error), old firmware without the Bus Watchdog (firmware).
"""
from dataclasses import dataclass, field

KINDS = {
    'drop': 'ignore the next N instruction packets (no reply, no effect)',
    'drop-rate': 'ignore each instruction packet with probability P',
    'corrupt': 'damage the CRC of the next N status packets',
    'corrupt-rate': 'damage each status packet with probability P',
    'stall': 'hold the next status packet back for S seconds',
    'latency-ms': 'deliver every status packet M ms late (a USB latency timer)',
    'dead': 'servo ID never answers (comma-separated ids allowed)',
    'unplug-after': 'close the port S seconds after start',
    'hw-error': 'ID:NAME sets a hardware error (NAME: overload, overheating, '
                'input-voltage, encoder, electrical-shock, or a bit mask)',
    'firmware': 'ID:VERSION reports this firmware version',
}
_ERROR_NAMES = {'input-voltage': 1 << 0, 'overheating': 1 << 2, 'encoder': 1 << 3,
                'electrical-shock': 1 << 4, 'overload': 1 << 5}
"""Hardware Error Status bits by name (control_table.HARDWARE_ERRORS)."""


class FaultError(ValueError):
    """A fault description that cannot be parsed; the message says what is accepted."""


@dataclass
class Faults:
    drop: int = 0
    drop_rate: float = 0.0
    corrupt: int = 0
    corrupt_rate: float = 0.0
    stall: float = 0.0
    latency_ms: float = 0.0
    dead: set = field(default_factory=set)
    unplug_after: float | None = None
    hw_errors: dict = field(default_factory=dict)
    firmware: dict = field(default_factory=dict)


def apply_fault(faults: Faults, text: str) -> Faults:
    """Add one ``KIND=VALUE`` fault to ``faults`` (in place) and return it."""
    kind, sep, value = text.partition('=')
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise FaultError(f'fault {text!r}: expected KIND=VALUE with KIND one of '
                         f'{", ".join(KINDS)}')
    try:
        _APPLY[kind](faults, value.strip())
    except (ValueError, KeyError) as e:
        raise FaultError(f'fault {text!r}: {KINDS[kind]} ({e})') from None
    return faults


def _rate(value):
    p = float(value)
    if not 0.0 <= p <= 1.0:
        raise ValueError('probability must be in [0, 1]')
    return p


def _id_pair(value, convert):
    servo_id, sep, rest = value.partition(':')
    if not sep:
        raise ValueError('expected ID:VALUE')
    return int(servo_id), convert(rest)


def _error_bits(name):
    if name in _ERROR_NAMES:
        return _ERROR_NAMES[name]
    bits = int(name, 0)
    if not 0 < bits < 256:
        raise ValueError(f'unknown error {name!r}; names: {", ".join(sorted(_ERROR_NAMES))}')
    return bits


def _set(name, convert):
    def apply(faults, value):
        setattr(faults, name, convert(value))
    return apply


def _add_hw_error(faults, value):
    servo_id, bits = _id_pair(value, _error_bits)
    faults.hw_errors[servo_id] = faults.hw_errors.get(servo_id, 0) | bits


def _set_firmware(faults, value):
    servo_id, version = _id_pair(value, int)
    faults.firmware[servo_id] = version


_APPLY = {
    'drop': _set('drop', int),
    'drop-rate': _set('drop_rate', _rate),
    'corrupt': _set('corrupt', int),
    'corrupt-rate': _set('corrupt_rate', _rate),
    'stall': _set('stall', float),
    'latency-ms': _set('latency_ms', float),
    'dead': lambda f, v: f.dead.update(int(x) for x in v.split(',')),
    'unplug-after': _set('unplug_after', float),
    'hw-error': _add_hw_error,
    'firmware': _set_firmware,
}
