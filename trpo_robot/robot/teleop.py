"""Gamepad jogging for resets: one ``sensor_msgs/Joy`` reading -> a joint velocity command.

Pure Python (no rclpy): the actor's Joy callback hands ``axes``, ``buttons`` and a stamp to
``TeleopMapper.update`` and the episode lifecycle sends the result through the
``SafetyShield`` like every other command. The rules answer what goes wrong when a person
takes over a real arm:

- nothing moves unless the deadman button is held, and letting go zeroes the command at
  once (the shield then brakes at the acceleration limit);
- after the deadman is pressed, or another joint is selected, the stick must pass through
  its centre before it drives anything: a stick already pushed over never becomes a jump;
- a reading older than ``JoyMapping.timeout`` (a dead gamepad, a stalled driver, a lost
  wireless link) or a malformed one (short arrays, NaN) gives a zero command and a reason;
- confirm and e-stop are edges, not levels: holding confirm confirms once. The e-stop is
  the one exception to every other rule: a press in any well-formed reading counts, even
  the first reading, even a stale one.

Mappings for common gamepads live in ``config/joy_mappings.yaml`` (plain YAML); index
conventions differ between drivers (joy_linux, the SDL ``game_controller_node``, a
DirectInput switch), so each layout is named after the driver it was read from.
"""
from dataclasses import dataclass, fields
import enum
import math
from pathlib import Path
import time

import numpy as np
import yaml

from ..paths import share_file

DEFAULT_MAPPINGS = 'joy_mappings.yaml'
_AXIS_SLACK = 0.05  # drivers report slightly beyond +-1 after calibration; more is a fault


class JoyMappingError(ValueError):
    """A gamepad mapping (YAML or code) is unusable; the message names the field."""


class JoyEvent(enum.Enum):
    """One-shot operator requests found in the button edges of a Joy reading."""

    CONFIRM = 'confirm'
    """The confirm button went down: the reset is done."""
    ESTOP = 'estop'
    """The e-stop button went down (or was down in the first reading)."""
    SELECT = 'select'
    """Another joint was selected (next/previous or a per-joint button)."""


def _index(value, name, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise JoyMappingError(f'JoyMapping.{name} must be a non-negative integer index'
                              f'{" or None" if optional else ""}, got {value!r}')
    return value


@dataclass(frozen=True)
class JoyMapping:
    """Which buttons and axes of one gamepad layout do what during a teleop reset.

    Indices are positions in ``sensor_msgs/Joy.buttons`` and ``.axes`` as the named driver
    publishes them; check a new pad with ``ros2 topic echo /joy`` and copy an entry.
    """

    name: str = 'xbox'
    """Layout name, as in config/joy_mappings.yaml."""
    deadman: int = 4
    """Button that must be held for any motion (a shoulder button: the hand rests on it)."""
    confirm: int = 7
    """Button that ends the reset (a deliberate one such as Start: the next episode starts
    moving the arm by itself right after it)."""
    estop: int = 1
    """Button that latches the e-stop (large and easy to hit)."""
    next_joint: int | None = 3
    """Selects the next joint (wraps around); None together with prev_joint: no cycling."""
    prev_joint: int | None = 2
    """Selects the previous joint (wraps around)."""
    joint_buttons: tuple[int, ...] = ()
    """Optional per-joint select buttons: the k-th selects the k-th jog-able joint."""
    axis: int = 1
    """Axis that drives the selected joint (a stick's up/down: up is positive)."""
    invert: bool = False
    """Reverse ``axis`` (for drivers that report up as negative)."""
    second_axis: int | None = 4
    """Optional axis that drives the joint after the selected one, None: unused."""
    second_invert: bool = False
    """Reverse ``second_axis``."""
    deadzone: float = 0.1
    """Stick deflection ignored around the centre, in [0, 1); beyond it the command ramps
    from zero, so leaving the deadzone never steps the velocity."""
    velocity_scale: float = 0.1
    """Full stick = this fraction of each joint's velocity limit (the task's cap), in
    (0, 1]. 0.1 of the UR5 reacher's 0.3 rad/s is 0.03 rad/s: raise it if the operator
    finds it slow; the shield's limits apply whatever is chosen."""
    timeout: float = 0.5
    """A reading older than this, s, gives a zero command. joy_linux / joy republish at
    ``autorepeat_rate`` (20 Hz by default) while a stick is held; keep that rate above
    1 / timeout or a steady stick will time out."""
    button_names: tuple[str, ...] = ()
    """Printed names of the buttons by index, for log lines ('press Start (button 7)')."""
    description: str = ''
    """Where the indices come from (driver, pad, mode switch)."""

    def __post_init__(self):
        for name in ('deadman', 'confirm', 'estop', 'axis'):
            _index(getattr(self, name), name)
        for name in ('next_joint', 'prev_joint', 'second_axis'):
            _index(getattr(self, name), name, optional=True)
        object.__setattr__(self, 'joint_buttons', tuple(self.joint_buttons))
        object.__setattr__(self, 'button_names', tuple(str(n) for n in self.button_names))
        for k, button in enumerate(self.joint_buttons):
            _index(button, f'joint_buttons[{k}]')
        if (self.next_joint is None) != (self.prev_joint is None):
            raise JoyMappingError('JoyMapping: give both next_joint and prev_joint, or neither')
        used = [b for b in self.buttons_used if b is not None]
        if len(set(used)) != len(used):
            raise JoyMappingError(f'JoyMapping {self.name!r}: a button index is used twice '
                                  f'({sorted(used)})')
        if self.second_axis is not None and self.second_axis == self.axis:
            raise JoyMappingError('JoyMapping: second_axis must differ from axis')
        if not (math.isfinite(self.deadzone) and 0.0 <= self.deadzone < 1.0):
            raise JoyMappingError(f'JoyMapping.deadzone must be in [0, 1), got {self.deadzone}')
        if not (math.isfinite(self.velocity_scale) and 0.0 < self.velocity_scale <= 1.0):
            raise JoyMappingError('JoyMapping.velocity_scale must be in (0, 1], '
                                  f'got {self.velocity_scale}')
        if not (math.isfinite(self.timeout) and self.timeout > 0.0):
            raise JoyMappingError(f'JoyMapping.timeout must be finite and > 0, '
                                  f'got {self.timeout}')

    @property
    def buttons_used(self):
        """Every button index the mapping reads (None for unused optional ones)."""
        return (self.deadman, self.confirm, self.estop, self.next_joint,
                self.prev_joint) + self.joint_buttons

    def label(self, button):
        """'Start (button 7)', or 'button 7' when the layout names no buttons."""
        if button < len(self.button_names):
            return f'{self.button_names[button]} (button {button})'
        return f'button {button}'

    @classmethod
    def from_dict(cls, name, values):
        """Build one layout from its YAML mapping; unknown keys are an error, not ignored."""
        if not isinstance(values, dict):
            raise JoyMappingError(f'joy mapping {name!r} must be a mapping of fields')
        known = {f.name for f in fields(cls)} - {'name'}
        unknown = sorted(set(values) - known)
        if unknown:
            raise JoyMappingError(f'joy mapping {name!r}: unknown field(s) {unknown}; '
                                  f'known: {sorted(known)}')
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(name=str(name), **values)
        except TypeError as error:
            raise JoyMappingError(f'joy mapping {name!r}: {error}') from None


def load_joy_mappings(path=None):
    """All layouts of a mappings YAML file (default ``config/joy_mappings.yaml``), by name."""
    path = Path(path) if path is not None else share_file('config', DEFAULT_MAPPINGS)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise JoyMappingError(f'{path}: not valid YAML ({error})') from None
    if not isinstance(data, dict) or not data:
        raise JoyMappingError(f'{path}: expected a mapping of layout name -> fields')
    return {str(name): JoyMapping.from_dict(name, values) for name, values in data.items()
            if not str(name).startswith('_')}  # '_...' keys hold YAML anchors only


def joy_mapping(name='xbox', path=None):
    """One named layout, with the known names in the error when it is missing."""
    mappings = load_joy_mappings(path)
    try:
        return mappings[name]
    except KeyError:
        raise JoyMappingError(f'unknown joy mapping {name!r}; choose from '
                              f'{sorted(mappings)}') from None


@dataclass(frozen=True)
class TeleopOutput:
    """What one Joy reading asks for."""

    velocity: np.ndarray
    """Joint velocity command, rad/s, all joints in chain order (zero on any doubt)."""
    events: tuple[JoyEvent, ...]
    """Edges found in this reading, in the order e-stop, select, confirm."""
    reason: str
    """Why the command is zero ('' while the operator is driving)."""
    selected: int
    """Chain index of the joint that the main axis drives."""


def _shape_axis(value, deadzone, invert):
    """Deadzone, then a ramp from zero at its edge to one at full deflection."""
    if invert:
        value = -value
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return math.copysign(min(1.0, (magnitude - deadzone) / (1.0 - deadzone)), value)


def _read_buttons(buttons, needed):
    """(pressed tuple, problem): each button must be 0 or 1 and the array long enough."""
    try:
        values = [int(b) for b in buttons]
        exact = all(float(b) == v for b, v in zip(buttons, values))
    except (TypeError, ValueError, OverflowError):
        return None, 'buttons are not integers'
    if len(values) < needed:
        return None, f'{len(values)} buttons, the mapping needs {needed}'
    if not exact or any(v not in (0, 1) for v in values):
        return None, 'a button is neither 0 nor 1'
    return tuple(v == 1 for v in values), ''


def _read_axes(axes, needed):
    """(values, problem): finite, within +-1 (with a little slack), long enough."""
    try:
        values = np.asarray(axes, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, 'axes are not numbers'
    if len(values) < needed:
        return None, f'{len(values)} axes, the mapping needs {needed}'
    if not np.all(np.isfinite(values)):
        return None, 'an axis is NaN or infinite'
    if np.any(np.abs(values) > 1.0 + _AXIS_SLACK):
        return None, 'an axis is outside [-1, 1]'
    return np.clip(values, -1.0, 1.0), ''


class TeleopMapper:
    """Turns Joy readings into joint velocities, with the safety rules of the module doc.

    ``max_velocity`` is the per-joint limit the command scales (the shield's velocity
    limit), ``joints`` the chain indices the operator may jog (default: all; a reacher
    task passes its actuated joints). ``clock`` must tell time on the clock of the stamps
    passed to ``update``: the ROS edge stamps each message on receipt with the actor's
    clock, which also makes a sender's clock offset irrelevant.

    ``stop_step`` (per joint, rad/s) caps the jog speed at the velocity change the shield
    allows in one driver period (its acceleration limit times the period). Letting go of
    the deadman must stop the arm within one driver period, and outside an e-stop the
    shield never brakes harder than its acceleration limit; so the jog is never faster
    than one period of braking removes, and the zero command after a release goes out
    whole, on the next tick.
    """

    def __init__(self, mapping: JoyMapping, max_velocity, joints=None, clock=time.monotonic,
                 joint_names=None, stop_step=None):
        limit = np.asarray(max_velocity, dtype=np.float64).reshape(-1)
        if not limit.size or not np.all(np.isfinite(limit) & (limit > 0)):
            raise ValueError(f'max_velocity must be finite and > 0 per joint, got {limit}')
        self.mapping = mapping
        self.joints = tuple(range(limit.size)) if joints is None else \
            tuple(int(j) for j in joints)
        if not self.joints or any(not 0 <= j < limit.size for j in self.joints):
            raise ValueError(f'joints {self.joints} must index the {limit.size} joints')
        self.joint_names = tuple(joint_names) if joint_names is not None else \
            tuple(f'joint {j}' for j in range(limit.size))
        self._scale = mapping.velocity_scale * limit
        if stop_step is not None:
            self._scale = np.minimum(self._scale, np.broadcast_to(stop_step, limit.shape))
        self._clock = clock
        used = [b for b in mapping.buttons_used if b is not None]
        self._buttons_needed = max(used) + 1
        self._axes_needed = max(mapping.axis, mapping.second_axis or 0) + 1
        self._zero = np.zeros(limit.size)
        self._previous = None
        self._slot = 0
        self.deadman_held = False
        self.rearm()

    # ------------------------------------------------------------------ state

    def rearm(self):
        """Drop the current command and require a centred stick before the next one.

        Called when a teleop reset begins. The button history is kept: it belongs to the
        pad, so a confirm held down across the start of a reset is still no new press.
        """
        self._armed = False
        self._velocity = self._zero.copy()
        self._reason = 'no Joy reading yet'
        self._stamp = None
        self._gripped = None  # stamp of the last fresh, well-formed reading with the deadman

    @property
    def selected(self):
        """Chain index of the joint the main axis drives."""
        return self.joints[self._slot]

    def describe_selection(self):
        """'elbow_joint (+ wrist_1_joint)': what the sticks drive now, for the operator."""
        second = self._second_joint()
        text = self.joint_names[self.selected]
        if second is not None:
            text += f' (+ {self.joint_names[second]})'
        return text

    def _second_joint(self):
        if self.mapping.second_axis is None or self._slot + 1 >= len(self.joints):
            return None
        return self.joints[self._slot + 1]

    # ------------------------------------------------------------------ readings

    def update(self, axes, buttons, stamp) -> TeleopOutput:
        """Process one Joy reading; return the command it asks for and its events."""
        pressed, problem = _read_buttons(buttons, self._buttons_needed)
        if problem:
            return self._refuse(f'malformed Joy message: {problem}', ())
        events = []
        if self._rose(pressed, self.mapping.estop, first_counts=True):
            events.append(JoyEvent.ESTOP)
        age = self._age(stamp)
        if age is None or abs(age) > self.mapping.timeout:
            self._previous = pressed
            return self._refuse(self._stale_reason(age), tuple(events))
        if self._select(pressed):
            events.append(JoyEvent.SELECT)
        if self._rose(pressed, self.mapping.confirm):
            events.append(JoyEvent.CONFIRM)
        deadman = pressed[self.mapping.deadman]
        if deadman and not self.deadman_held:
            self._armed = False  # a fresh grip: the stick must be centred first
        self.deadman_held = deadman
        self._previous = pressed
        self._stamp = float(stamp)
        self._gripped = self._stamp if deadman else None
        values, problem = _read_axes(axes, self._axes_needed)
        if problem:
            return self._refuse(f'malformed Joy message: {problem}', tuple(events))
        self._velocity, self._reason = self._command(deadman, values)
        return TeleopOutput(self._velocity.copy(), tuple(events), self._reason, self.selected)

    def engaged(self, now=None):
        """True while the operator holds the deadman in a fresh, well-formed reading: the
        activity that keeps a teleop reset from timing out."""
        now = self._clock() if now is None else now
        return self._gripped is not None and now - self._gripped <= self.mapping.timeout

    def velocity_at(self, now=None):
        """(velocity, reason) to send at ``now``: the last command while its reading is
        fresh, zero once it is older than the timeout."""
        now = self._clock() if now is None else now
        if self._stamp is None:
            return self._zero.copy(), self._reason
        age = now - self._stamp
        if age > self.mapping.timeout:
            return self._zero.copy(), f'no Joy message for {age:.2f} s'
        return self._velocity.copy(), self._reason

    # ------------------------------------------------------------------ pieces

    def _age(self, stamp):
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            return None
        return self._clock() - stamp if math.isfinite(stamp) else None

    @staticmethod
    def _stale_reason(age):
        if age is None:
            return 'malformed Joy message: stamp is not a finite number'
        if age < 0:
            return (f'Joy stamp {-age:.2f} s ahead of the actor clock: stamp messages on '
                    'receipt with the actor clock')
        return f'Joy message {age:.2f} s old'

    def _refuse(self, reason, events):
        """Zero command; the stick must be centred again before it drives anything."""
        self._armed = False
        self._velocity = self._zero.copy()
        self._reason = reason
        self._gripped = None
        self._stamp = None if reason.startswith('malformed') else self._stamp
        return TeleopOutput(self._velocity.copy(), events, reason, self.selected)

    def _rose(self, pressed, button, first_counts=False):
        if button is None or not pressed[button]:
            return False
        if self._previous is None:
            return first_counts
        return not self._previous[button]

    def _select(self, pressed):
        """Apply next/prev/per-joint buttons; True if the selection changed."""
        slot, m = self._slot, self.mapping
        count = len(self.joints)
        if self._rose(pressed, m.next_joint):
            slot = (slot + 1) % count
        if self._rose(pressed, m.prev_joint):
            slot = (slot - 1) % count
        for k, button in enumerate(m.joint_buttons[:count]):
            if self._rose(pressed, button):
                slot = k
        if slot == self._slot:
            return False
        self._slot, self._armed = slot, False
        return True

    def _command(self, deadman, values):
        m = self.mapping
        if not deadman:
            return self._zero.copy(), f'hold {m.label(m.deadman)} to jog'
        main = _shape_axis(values[m.axis], m.deadzone, m.invert)
        second = 0.0 if m.second_axis is None else \
            _shape_axis(values[m.second_axis], m.deadzone, m.second_invert)
        if not self._armed:
            if main or second:
                return self._zero.copy(), 'centre the stick first'
            self._armed = True
        velocity = self._zero.copy()
        velocity[self.selected] = main * self._scale[self.selected]
        other = self._second_joint()
        if other is not None:
            velocity[other] = second * self._scale[other]
        return velocity, ''
