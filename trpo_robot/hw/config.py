"""The Dynamixel bus configuration: a frozen dataclass filled from ``config/dxl_hw.yaml``.

Only the edges (YAML, CLI flags) fill it; the backend and check-hw take it whole, so a
value is validated once, here, with a message that names the field.
"""
from dataclasses import dataclass, field, replace
import math

import yaml

from trpo_robot.paths import share_file

DEFAULT_CONFIG = 'dxl_hw.yaml'


class ConfigError(ValueError):
    """The YAML or a flag gives an unusable value; the message names the field."""


@dataclass(frozen=True)
class ServoConfig:
    id: int  # noqa: A003 - the Dynamixel name for it
    """Bus ID, 0..252."""
    joint: str | None = None
    """URDF joint the servo drives; None for a servo only exercised (check-hw, benches)."""
    zero: int = 2048
    """Position count at joint angle zero."""
    direction: int = 1
    """+1 when the horn turns with the URDF axis, -1 against it."""


@dataclass(frozen=True)
class DxlConfig:
    port: str = '/dev/ttyUSB0'
    """Serial device path (a pty from the emulator works as well)."""
    baud: int = 1_000_000
    """Bus speed, bit/s."""
    urdf: str = 'dxl_arm'
    """URDF whose joint limits are written to the servos."""
    period: float = 0.01
    """Bus cycle, s."""
    watchdog_ms: float = 100.0
    """Bus Watchdog timeout, ms (20 ms units, 20..2540)."""
    latency_timer_ms: float = 16.0
    """USB adapter latency timer, ms: sets the reply timeout as dynamixel-sdk does."""
    retries: int = 2
    """Extra attempts after a lost or corrupted reply."""
    health_period: float = 1.0
    """s between health reads."""
    temperature_margin: float = 10.0
    """Warn within this many deg C of the Temperature Limit."""
    realtime: bool = False
    """Ask for SCHED_FIFO in the bus loop."""
    servos: tuple[ServoConfig, ...] = field(default_factory=lambda: tuple(
        ServoConfig(i, f'joint{i}') for i in (1, 2, 3)))

    def __post_init__(self):
        _check(self.baud > 0, 'baud', self.baud)
        _check(math.isfinite(self.period) and self.period > 0, 'period', self.period)
        _check(20 <= self.watchdog_ms <= 2540, 'watchdog_ms', self.watchdog_ms,
               '20..2540 (register 98 counts 20 ms units, 1..127)')
        _check(self.watchdog_ms / 1000 > 2 * self.period, 'watchdog_ms', self.watchdog_ms,
               'more than two bus periods (else it trips in normal operation)')
        _check(self.latency_timer_ms >= 0, 'latency_timer_ms', self.latency_timer_ms)
        _check(self.retries >= 0, 'retries', self.retries)
        _check(self.health_period > 0, 'health_period', self.health_period)
        _check(len(self.servos) > 0, 'servos', self.servos, 'at least one servo')
        ids = [s.id for s in self.servos]
        _check(len(set(ids)) == len(ids), 'servos', ids, 'distinct ids')
        for s in self.servos:
            _check(0 <= s.id <= 252, 'servos.id', s.id, '0..252')
            _check(s.direction in (1, -1), 'servos.direction', s.direction, '+1 or -1')
            _check(0 <= s.zero < 4096, 'servos.zero', s.zero, '0..4095')
        joints = [s.joint for s in self.servos if s.joint]
        _check(len(set(joints)) == len(joints), 'servos.joint', joints, 'distinct joints')

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.servos)

    @property
    def watchdog_s(self) -> float:
        return self.watchdog_ms / 1000.0

    def with_ids(self, ids) -> 'DxlConfig':
        """The same bus with exactly these ids; known ids keep their joint mapping."""
        known = {s.id: s for s in self.servos}
        return replace(self, servos=tuple(known.get(i, ServoConfig(int(i))) for i in ids))


def _check(ok, name, value, expected='a positive number'):
    if not ok:
        raise ConfigError(f'Dynamixel config: {name} = {value!r}; expected {expected}')


def load_config(path=None, **overrides) -> DxlConfig:
    """Read the YAML (default: the package's config/dxl_hw.yaml) and apply overrides
    (``port``, ``baud``, ``ids``, or any other field; None means keep the file's)."""
    path = path or share_file('config', DEFAULT_CONFIG)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f'cannot read Dynamixel config {path}: {e}') from None
    if not isinstance(raw, dict):
        raise ConfigError(f'Dynamixel config {path}: expected a mapping at the top level')
    return config_from_dict(raw, **overrides)


def config_from_dict(raw: dict, **overrides) -> DxlConfig:
    raw = dict(raw)
    ids = overrides.pop('ids', None)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    names = set(DxlConfig.__dataclass_fields__)
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f'Dynamixel config: unknown keys {sorted(unknown)}; '
                          f'known: {sorted(names)}')
    if 'servos' in raw:
        raw['servos'] = tuple(_servo(s) for s in raw['servos'])
    try:
        config = DxlConfig(**raw)
    except TypeError as e:
        raise ConfigError(f'Dynamixel config: {e}') from None
    return config.with_ids(ids) if ids else config


def _servo(entry) -> ServoConfig:
    if not isinstance(entry, dict) or 'id' not in entry:
        raise ConfigError(f'Dynamixel config: each servo needs at least an id, got {entry!r}')
    unknown = set(entry) - set(ServoConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f'Dynamixel config: servo {entry["id"]}: unknown keys '
                          f'{sorted(unknown)}')
    return ServoConfig(**entry)
