"""Every conversion between Dynamixel register values and SI units, in one place.

The backend, the emulator and check-hw all convert through these functions, so a joint
angle means the same count everywhere; the factors are the X-series ones from
``reference/hardware.md`` (XM430-W350: 0.088 deg and 0.229 rpm per count, 2.69 mA per
count of Present Current). A servo whose model uses other factors needs its own entry
here, not a constant elsewhere.
"""
import math
import struct

import numpy as np

COUNTS_PER_REV = 4096
CENTER_COUNT = 2048
"""Position count of the horn's middle: joint angle zero unless the config says otherwise."""
POSITION_UNIT = 2.0 * math.pi / COUNTS_PER_REV
"""rad per position count (0.088 deg)."""
VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0
"""rad/s per velocity count (0.229 rpm)."""
CURRENT_UNIT = 2.69e-3
"""A per Present Current count (XM430-W350)."""
VOLTAGE_UNIT = 0.1
"""V per Present Input Voltage count."""
WATCHDOG_UNIT = 0.020
"""s per Bus Watchdog count; 1..127 arms it, 0 disarms (and clears its error)."""
RETURN_DELAY_UNIT = 2e-6
"""s per Return Delay Time count."""
WATCHDOG_TRIPPED = 0xFF
"""What Bus Watchdog reads (-1 as one unsigned byte) after it has stopped the servo."""

_FORMATS = {(1, False): '<B', (1, True): '<b', (2, False): '<H', (2, True): '<h',
            (4, False): '<I', (4, True): '<i'}


def to_bytes(value: int, size: int) -> list[int]:
    """Little-endian bytes of a register value; negative values wrap as two's complement."""
    return list(struct.pack(_FORMATS[(size, False)], int(value) & ((1 << (8 * size)) - 1)))


def from_bytes(data, size: int, signed: bool = False, offset: int = 0) -> int:
    """A register value from little-endian bytes (signed registers: velocity, current...)."""
    return struct.unpack_from(_FORMATS[(size, signed)], bytes(data), offset)[0]


def position_to_raw(q, zero=CENTER_COUNT, direction=1):
    """Joint angle(s), rad -> position count(s) (int64, unclipped: multi-turn is legal)."""
    return np.rint(np.asarray(zero) + np.asarray(direction) * np.asarray(q) / POSITION_UNIT
                   ).astype(np.int64)


def raw_to_position(raw, zero=CENTER_COUNT, direction=1):
    """Position count(s) -> joint angle(s), rad."""
    return (np.asarray(raw, float) - zero) * POSITION_UNIT * np.asarray(direction, float)


def velocity_to_raw(v, direction=1, limit_raw=None):
    """Joint velocity(ies), rad/s -> Goal Velocity count(s), saturated at ``limit_raw``.

    The servo refuses a Goal Velocity beyond its Velocity Limit (the write fails and the
    old goal stays), so saturating here is what keeps a fast command from becoming a
    stale one.
    """
    raw = np.rint(np.asarray(direction) * np.asarray(v, float) / VELOCITY_UNIT)
    if limit_raw is not None:
        raw = np.clip(raw, -np.asarray(limit_raw), np.asarray(limit_raw))
    return raw.astype(np.int64)


def raw_to_velocity(raw, direction=1):
    """Velocity count(s) -> joint velocity(ies), rad/s."""
    return np.asarray(raw, float) * VELOCITY_UNIT * np.asarray(direction, float)


def raw_to_current(raw):
    """Present Current count(s) -> A."""
    return np.asarray(raw, float) * CURRENT_UNIT


def velocity_limit_raw(rad_s: float) -> int:
    """The Velocity Limit count for a URDF speed: rounded down, so the servo never exceeds
    the URDF (XM430-W350: 4.817 rad/s -> 200, the factory value)."""
    return int(math.floor(rad_s / VELOCITY_UNIT + 1e-9))


def position_limits_raw(lower: float, upper: float, zero=CENTER_COUNT, direction=1):
    """(Min, Max) Position Limit counts for a URDF range, inside 0..4095 and rounded
    inward so that the servo's range never exceeds the URDF's."""
    a = zero + direction * lower / POSITION_UNIT
    b = zero + direction * upper / POSITION_UNIT
    lo, hi = min(a, b), max(a, b)
    lo_raw = max(0, int(math.ceil(lo - 1e-9)))
    hi_raw = min(COUNTS_PER_REV - 1, int(math.floor(hi + 1e-9)))
    return lo_raw, hi_raw


def watchdog_units(seconds: float) -> int:
    """Bus Watchdog count for a timeout: rounded up (never trips earlier than asked)."""
    units = int(math.ceil(seconds / WATCHDOG_UNIT - 1e-9))
    if not 1 <= units <= 127:
        raise ValueError(f'bus watchdog {seconds * 1000:.0f} ms is outside 20..2540 ms')
    return units


def watchdog_seconds(units: int) -> float:
    """The timeout a Bus Watchdog count stands for, s (0 and 0xFF: none)."""
    return units * WATCHDOG_UNIT if 1 <= units <= 127 else 0.0


def wire_seconds(n_bytes: int, baud: int) -> float:
    """Time ``n_bytes`` take on the bus: 10 bits per byte (start, 8 data, stop)."""
    return n_bytes * 10.0 / baud
