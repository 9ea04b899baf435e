"""Keyboard jogging for people without a gamepad: key presses -> a Joy-like reading.

``trpo-robot teleop-keyboard`` reads raw terminal bytes, decodes them here
(``decode_keys``), feeds them to ``KeyboardJoy.press`` and publishes ``KeyboardJoy.state``
as ``sensor_msgs/Joy`` at a steady rate; the actor reads it with ``KEYBOARD_MAPPING``
exactly as it reads a gamepad, with the same deadman, timeout and shield. Pure: no
terminal or ROS code here, so every rule is testable.

A terminal reports key presses, never releases, and an auto-repeating key only starts
repeating after a delay (typically 250-600 ms), so "held" has to be simulated:

=============  ==============================================================================
key            effect
=============  ==============================================================================
space          deadman on / off (toggle). It lets go by itself after ``deadman_timeout`` s
               without any key, so an operator who walks away leaves a stopped arm.
up / down      jog the selected joint + / - for ``jog_hold`` s; keep the key down (auto-repeat)
               to keep it moving. Releasing the key stops it within ``jog_hold`` s.
s              stop jogging now (the deadman stays on).
left / right   previous / next joint (stops the jog).
1 .. 9         select joint 1 .. 9 directly (stops the jog).
enter          confirm the reset (also lets go of the deadman).
e              e-stop (also lets go of the deadman); release it with the ~/estop_release
               service, never from the keyboard.
=============  ==============================================================================
"""
from dataclasses import dataclass
import math

from .teleop import JoyMapping

_DEADMAN, _CONFIRM, _ESTOP, _NEXT, _PREV = range(5)
_FIRST_JOINT = 5
_JOINT_KEYS = tuple(str(k) for k in range(1, 10))
_BUTTONS = _FIRST_JOINT + len(_JOINT_KEYS)

KEYBOARD_MAPPING = JoyMapping(
    name='keyboard', deadman=_DEADMAN, confirm=_CONFIRM, estop=_ESTOP, next_joint=_NEXT,
    prev_joint=_PREV, joint_buttons=tuple(range(_FIRST_JOINT, _BUTTONS)), axis=0,
    second_axis=None, deadzone=0.0, velocity_scale=0.1, timeout=0.5,
    button_names=('space', 'enter', 'e', 'right arrow', 'left arrow') + _JOINT_KEYS,
    description='trpo-robot teleop-keyboard (trpo_robot.robot.keyboard)')
"""How the actor reads the keyboard publisher's Joy messages (axis 0 jogs)."""

_ESCAPES = {b'[A': 'up', b'[B': 'down', b'[C': 'right', b'[D': 'left',
            b'OA': 'up', b'OB': 'down', b'OC': 'right', b'OD': 'left'}


def decode_keys(data: bytes):
    """Key names from raw terminal bytes: 'up', 'space', 'enter', 'ctrl-c', 'e', '1' ...

    Arrow keys arrive as escape sequences (ESC [ A, or ESC O A in application mode);
    unknown sequences are dropped rather than read as letters.
    """
    keys, i = [], 0
    while i < len(data):
        byte = data[i:i + 1]
        if byte == b'\x1b':
            name = _ESCAPES.get(data[i + 1:i + 3])
            if name is not None:
                keys.append(name)
                i += 3
                continue
            keys.append('escape')
        elif byte in (b'\r', b'\n'):
            keys.append('enter')
        elif byte == b' ':
            keys.append('space')
        elif byte == b'\x03':
            keys.append('ctrl-c')
        elif 32 < data[i] < 127:
            keys.append(byte.decode('ascii').lower())
        i += 1
    return keys


@dataclass(frozen=True)
class KeyboardConfig:
    """Timings that stand in for the key releases a terminal does not report."""

    deadman_timeout: float = 10.0
    """s without any key after which the deadman lets go by itself."""
    jog_hold: float = 0.6
    """s an arrow press keeps the axis deflected: longer than the terminal's auto-repeat
    delay so a held key moves smoothly; also how long the arm coasts after letting go."""
    tap: float = 0.15
    """s a momentary button (confirm, e-stop, joint select) reads pressed; at least one
    published reading shows it pressed whatever the publishing rate."""

    def __post_init__(self):
        for name in ('deadman_timeout', 'jog_hold', 'tap'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'KeyboardConfig.{name} must be finite and > 0, got {value}')


class KeyboardJoy:
    """The key state machine of the module doc; ``state(now)`` is the Joy reading."""

    def __init__(self, config: KeyboardConfig | None = None):
        self.config = config or KeyboardConfig()
        self.deadman = False
        self._last_key = -math.inf
        self._jog, self._jog_until = 0.0, -math.inf
        self._taps = {}  # button -> [pressed at, reported at least once]

    def press(self, key: str, now: float) -> str:
        """Apply one key; return a short line for the operator ('' for unknown keys)."""
        self._expire(now)
        self._last_key = now
        if key == 'space':
            self.deadman = not self.deadman
            self._jog_until = -math.inf
            return 'deadman ON' if self.deadman else 'deadman off'
        if key in ('up', 'down'):
            self._jog = 1.0 if key == 'up' else -1.0
            self._jog_until = now + self.config.jog_hold
            return f'jog {"+" if self._jog > 0 else "-"}' + \
                ('' if self.deadman else ' (deadman off: press space)')
        if key == 's':
            self._jog_until = -math.inf
            return 'jog stopped'
        return self._press_button(key, now)

    def _press_button(self, key, now):
        button = {'enter': _CONFIRM, 'e': _ESTOP, 'right': _NEXT, 'left': _PREV}.get(key)
        if button is None and key in _JOINT_KEYS:
            button = _FIRST_JOINT + _JOINT_KEYS.index(key)
        if button is None:
            return ''
        self._taps[button] = [now, False]
        self._jog_until = -math.inf
        if button in (_CONFIRM, _ESTOP):
            self.deadman = False
        return {_CONFIRM: 'confirm', _ESTOP: 'E-STOP', _NEXT: 'next joint',
                _PREV: 'previous joint'}.get(button, f'joint {key}')

    def _expire(self, now):
        if self.deadman and now - self._last_key > self.config.deadman_timeout:
            self.deadman = False

    def state(self, now: float):
        """(axes, buttons) to publish at ``now``: one axis, fourteen buttons."""
        self._expire(now)
        buttons = [0] * _BUTTONS
        buttons[_DEADMAN] = int(self.deadman)
        for button, tap in list(self._taps.items()):
            pressed_at, reported = tap
            if reported and now - pressed_at >= self.config.tap:
                del self._taps[button]  # shown at least once and for long enough
                continue
            buttons[button] = 1
            tap[1] = True
        axis = self._jog if now < self._jog_until else 0.0
        return (axis,), tuple(buttons)
