"""Per-robot twin settings, read from ``sim/robots.yaml``.

The numbers live in YAML beside the scene so that a new arm, or a latency measured on the
real one, is a data change; this module only types and checks them, once, at load time.
"""
from dataclasses import dataclass, fields
import functools
import math

import yaml

from trpo_robot.paths import share_file

_VECTOR_FIELDS = ('kv', 'damping', 'armature', 'frictionloss', 'home')


def substeps(period: float, timestep: float) -> int:
    """Physics steps per driver period; refuses a period that is not a whole multiple.

    A command is held for whole physics steps, so a period of 8 ms on a 3 ms timestep
    would silently run the driver at 9 ms; better to fail when the model is built.
    """
    if not (period > 0 and timestep > 0):
        raise ValueError(f'period ({period}) and timestep ({timestep}) must be positive')
    ratio = period / timestep
    n = round(ratio)
    if n < 1 or not math.isclose(ratio, n, rel_tol=0.0, abs_tol=1e-6):
        raise ValueError(
            f'driver period {period} s is not a whole multiple of the physics timestep '
            f'{timestep} s (ratio {ratio:.6g}); pick a timestep that divides the period')
    return n


@dataclass(frozen=True)
class RobotSettings:
    """Everything the twin adds around one URDF; field meanings are in sim/robots.yaml."""

    name: str
    urdf: str
    """Short URDF name for ``trpo_robot.paths.urdf_path``."""
    ee_link: str
    period: float
    """Driver period, s."""
    timestep: float
    """Physics step, s; divides ``period`` exactly."""
    latency: float
    """Default action latency, s."""
    position_noise: float
    velocity_noise: float
    kv: tuple[float, ...]
    damping: tuple[float, ...]
    armature: tuple[float, ...]
    frictionloss: tuple[float, ...]
    home: tuple[float, ...]
    floor_height: float
    pedestal_radius: float
    self_collision: bool

    def __post_init__(self):
        lengths = {name: len(getattr(self, name)) for name in _VECTOR_FIELDS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'{self.name}: per-joint lists differ in length: {lengths}')
        if self.latency < 0 or self.position_noise < 0 or self.velocity_noise < 0:
            raise ValueError(f'{self.name}: latency and noise must be non-negative')
        if min(self.kv) <= 0:
            raise ValueError(f'{self.name}: every kv must be positive')
        substeps(self.period, self.timestep)

    @property
    def n_substeps(self) -> int:
        """Physics steps per driver period."""
        return substeps(self.period, self.timestep)


@functools.lru_cache(maxsize=None)
def _table() -> dict:
    with open(share_file('sim', 'robots.yaml'), encoding='utf-8') as stream:
        return yaml.safe_load(stream)


def robot_names() -> tuple[str, ...]:
    """Robots the twin knows, in the order of sim/robots.yaml."""
    return tuple(_table())


def load_settings(robot: str) -> RobotSettings:
    """Typed settings of one robot; a clear error for an unknown name or a missing key."""
    table = _table()
    if robot not in table:
        raise ValueError(f'unknown robot {robot!r}; known: {", ".join(table)}')
    raw = dict(table[robot])
    wanted = {f.name for f in fields(RobotSettings)} - {'name'}
    missing, extra = wanted - set(raw), set(raw) - wanted
    if missing or extra:
        raise ValueError(f'sim/robots.yaml, {robot}: missing {sorted(missing)}, '
                         f'unknown {sorted(extra)}')
    for key in _VECTOR_FIELDS:
        raw[key] = tuple(float(x) for x in raw[key])
    for key in ('period', 'timestep', 'latency', 'position_noise', 'velocity_noise',
                'floor_height', 'pedestal_radius'):
        raw[key] = float(raw[key])
    return RobotSettings(name=robot, **raw)
