"""The operator's side of the lifecycle: what the pad's buttons ask, and what to do now.

Kept apart from the phase machine (``phases.py``), which decides, and from the lifecycle,
which moves the arm: words and button meanings change without touching either.
"""
from .phases import Phase, SERVICES
from .teleop import JoyEvent


def instructions(target, mode, paused, mapping=None):
    """What the operator should do on entering ``target``, in words for the log line and
    the display; ``mapping`` (a JoyMapping) names the pad's buttons, if there is a pad."""
    confirm = f'call {SERVICES["confirm"]}'
    if mapping is not None:
        confirm = f'press {mapping.label(mapping.confirm)} or {confirm}'
    if target is Phase.ESTOP:
        return f'When the area is safe, call {SERVICES["release"]}.'
    if target is Phase.HOLD and paused:
        return f'Arm held. Call {SERVICES["resume"]} to reset and go on.'
    if target is Phase.HOLD:
        return (f'Arm held. To accept the current pose {confirm}; to reset again call '
                f'{SERVICES["reset"]}.')
    if target is Phase.RESET and mode == 'teleop':
        return (f'Hold {mapping.label(mapping.deadman)} and move the stick to jog; '
                f'when done {confirm}.')
    if target is Phase.RESET and mode == 'freedrive':
        return f'Move the arm by hand; when done {confirm}.'
    return ''


class PadRequests:
    """The gamepad's buttons as operator requests: e-stop and confirm go to the lifecycle
    at once, a new joint selection is only said (the jog itself is the mapper's)."""

    def __init__(self, mapper, lifecycle, log):
        self.mapper, self._lifecycle, self._log = mapper, lifecycle, log

    def feed(self, axes, buttons, stamp):
        """One Joy reading; returns the mapper's ``TeleopOutput``."""
        out = self.mapper.update(axes, buttons, stamp)
        label, mapping = self.mapper.mapping.label, self.mapper.mapping
        for event in out.events:
            if event is JoyEvent.ESTOP:
                self._lifecycle.engage_estop(f'gamepad {label(mapping.estop)}')
            elif event is JoyEvent.CONFIRM:
                self._lifecycle.confirm(f'gamepad {label(mapping.confirm)}')
            elif event is JoyEvent.SELECT:
                self._log.info(f'teleop: jogging {self.mapper.describe_selection()}')
        return out
