"""Twin conditions: randomization, latency and sensor noise, as one value every entry point
fills the same way.

The same three settings reach the twin from Python (``gym.make(..., **backend_kwargs())``),
from the command line (``add_arguments`` / ``from_arguments``, shared by train, learn,
validate and the Dynamixel emulator) and from a ROS parameter file (``RobotParams``'s
``twin_*`` keys). Keeping them in one frozen value means a run's record can say exactly
what the policy was trained or checked under. No MuJoCo here: the CLI and the ROS
parameter checks import this module, and they must stay cheap to start.
"""
from dataclasses import asdict, dataclass
import math

from trpo_robot.errors import UsageError
from trpo_robot.twin.randomization import Randomization

FLAGS = ('--randomize', '--latency', '--noise')


@dataclass(frozen=True)
class TwinConditions:
    """What the twin adds to the nominal arm; every ``None`` means the robot's default in
    sim/robots.yaml (the Dynamixel emulator adds nothing for ``None``: its bus and encoder
    already make the delay and the quantisation those defaults stand for)."""

    randomization: Randomization | None = None
    """Ranges for masses, damping, friction and extra latency; None: the nominal model."""
    latency: float | None = None
    """Action latency, s, before any randomized extra periods."""
    noise_std: tuple[float, float] | None = None
    """Gaussian std of the joint readings: (position rad, velocity rad/s)."""

    def __post_init__(self):
        if self.randomization is not None and not isinstance(self.randomization,
                                                             Randomization):
            raise ValueError(f'randomization must be a Randomization or None, got '
                             f'{self.randomization!r}')
        if self.latency is not None:
            object.__setattr__(self, 'latency', _non_negative(self.latency, 'latency'))
        if self.noise_std is not None:
            pair = tuple(self.noise_std)
            if len(pair) != 2:
                raise ValueError(f'noise_std must be (position, velocity), got {pair!r}')
            object.__setattr__(self, 'noise_std', (
                _non_negative(pair[0], 'noise_std (position)'),
                _non_negative(pair[1], 'noise_std (velocity)')))

    def backend_kwargs(self) -> dict:
        """Keyword arguments of MujocoBackend (and of gym.make of an arm env); the unset
        ones are left out, so the backend's own defaults apply."""
        kwargs = {'randomization': self.randomization, 'latency': self.latency,
                  'noise_std': self.noise_std}
        return {k: v for k, v in kwargs.items() if v is not None}

    def as_dict(self) -> dict:
        """JSON-able, for records and logs; ``from_dict`` reads it back."""
        rand = None if self.randomization is None else {
            k: list(v) for k, v in asdict(self.randomization).items()}
        return {'randomization': rand, 'latency': self.latency,
                'noise_std': None if self.noise_std is None else list(self.noise_std)}

    @classmethod
    def from_dict(cls, values: dict) -> 'TwinConditions':
        """The inverse of ``as_dict`` (how the emulator's child process gets them)."""
        rand = values.get('randomization')
        noise = values.get('noise_std')
        return cls(randomization=None if rand is None else Randomization(
                       **{k: tuple(v) for k, v in rand.items()}),
                   latency=values.get('latency'),
                   noise_std=None if noise is None else tuple(noise))


NOMINAL = TwinConditions()


def _non_negative(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be a number, got {value!r}') from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f'{what} must be finite and >= 0, got {value!r}')
    return number


def add_arguments(parser) -> None:
    """The twin's flags, for every command that runs a twin (train, learn, validate, the
    Dynamixel emulator). Values are parsed in ``from_arguments``, not by argparse, so that
    a bad one is the CLI's one line."""
    group = parser.add_argument_group('twin conditions (the MuJoCo twin only)')
    group.add_argument('--randomize', action='store_true', default=False,
                       help='domain randomization: masses, damping, friction and extra '
                       'latency drawn per episode (the config\'s twin_* ranges, else '
                       'Randomization\'s defaults)')
    group.add_argument('--latency', metavar='SECONDS', default=None,
                       help='action latency, s (default: the robot\'s, sim/robots.yaml)')
    group.add_argument('--noise', metavar='POS_STD[,VEL_STD]', default=None,
                       help='joint reading noise std, rad[,rad/s]; one number sets both '
                       '(--noise 0: none); default: the robot\'s')


def from_arguments(args, base: TwinConditions = NOMINAL) -> TwinConditions:
    """The conditions the flags ask for, on top of ``base`` (a config file's): a flag
    given replaces that setting, one not given keeps the base's. Raises UsageError."""
    randomization = base.randomization
    if getattr(args, 'randomize', False) and randomization is None:
        randomization = Randomization()
    latency = base.latency
    text = getattr(args, 'latency', None)
    if text is not None:
        latency = _flag_number('--latency', text, str(text))
    noise = base.noise_std
    text = getattr(args, 'noise', None)
    if text is not None:
        noise = _noise_flag(str(text))
    return TwinConditions(randomization, latency, noise)


def _flag_number(flag: str, part: str, text: str) -> float:
    try:
        return _non_negative(part.strip(), flag)
    except ValueError:
        raise UsageError(f'{flag} {text}: expected a finite number >= 0') from None


def _noise_flag(text: str) -> tuple[float, float]:
    parts = text.split(',')
    if len(parts) not in (1, 2):
        raise UsageError(f'--noise {text}: expected POS_STD or POS_STD,VEL_STD')
    values = [_flag_number('--noise', part, text) for part in parts]
    return (values[0], values[-1])
