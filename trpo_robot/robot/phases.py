"""The phase machine of the episode lifecycle: which event moves the arm's owner where.

Pure: no clock, no arm, no log, no lock. ``EpisodeLifecycle`` feeds it events (an
episode ends, the arm is at rest, the operator confirms, a timeout ran out ...) and does
what each change of phase entails (records, shield, freedrive, log lines) in the listener
it passes in. The rules live here alone, so they can be read and tested as plain calls.
"""
import enum

RESET_MODES = ('auto', 'teleop', 'freedrive')
"""How the arm gets back to a start pose: a driven move, a gamepad jog, or by hand."""
SERVICES = {'confirm': '~/reset_done', 'reset': '~/reset', 'pause': '~/pause',
            'resume': '~/resume', 'estop': '~/estop', 'release': '~/estop_release'}
"""The operator's requests as the ROS edge names its services (and refusals quote them)."""


class LifecycleError(RuntimeError):
    """A call that the current phase does not allow (e.g. start_episode outside READY)."""


class Phase(enum.Enum):
    RUN = 'run'
    SAFE_STOP = 'safe_stop'
    RESET = 'reset'
    READY = 'ready'
    HOLD = 'hold'
    ESTOP = 'estop'


def _ignore(source, target, reason):
    pass


class PhaseMachine:
    """RUN -> SAFE_STOP -> RESET -> READY -> RUN, with HOLD and ESTOP beside them.

    It starts in SAFE_STOP (bring the arm to rest at startup, then reset). Every change
    calls ``on_change(source, target, reason)`` after the phase has changed. Operator
    requests return ``(accepted, message)``; ``start_episode`` raises LifecycleError.
    """

    def __init__(self, on_change=_ignore):
        self.phase = Phase.SAFE_STOP
        self.paused = False
        """Acting is stopped until ``resume``: no episode starts, a HOLD stays."""
        self.confirmed = False
        """The reset in progress is done (goal reached or confirmed); READY once at rest."""
        self.after_stop = Phase.RESET
        """Where SAFE_STOP goes once the arm is at rest: RESET, or HOLD after a fault or
        a pause."""
        self.stop_cause = 'startup'
        """Why the arm is being stopped."""
        self._on_change = on_change

    @property
    def acting(self):
        return self.phase is Phase.RUN

    def _go(self, target, reason):
        source, self.phase, self.confirmed = self.phase, target, False
        self._on_change(source, target, reason)

    # -- the agent's side

    def start_episode(self, reason):
        """READY -> RUN, unless paused."""
        if self.phase is not Phase.READY:
            raise LifecycleError(f'start_episode needs READY, the phase is {self.phase.name}')
        if self.paused:
            raise LifecycleError('start_episode: acting is paused; call resume()')
        self._go(Phase.RUN, reason)

    def stop(self, reason, after=Phase.RESET):
        """Bring the arm to rest (SAFE_STOP), then go ``after``; a stop in progress only
        changes where it goes next."""
        self.after_stop, self.stop_cause = after, reason
        if self.phase is not Phase.SAFE_STOP:
            self._go(Phase.SAFE_STOP, reason)

    def fault(self, reason):
        """A backend fault: stop and hold (an e-stop stays an e-stop)."""
        if self.phase is not Phase.ESTOP:
            self.stop(reason, Phase.HOLD)

    def estop(self, reason):
        """The latched e-stop, from any phase."""
        if self.phase is not Phase.ESTOP:
            self._go(Phase.ESTOP, reason)

    # -- what the arm does

    def rested(self, mode):
        """The arm has been at rest for long enough: a stop ends, a done reset is READY.
        Returns whether the phase changed. ``mode`` is the reset's, for the reasons."""
        phase = self.phase
        if phase is Phase.SAFE_STOP:
            if self.after_stop is Phase.HOLD:
                self.hold(self.stop_cause)
            else:
                self._go(Phase.RESET, f'{mode} reset after: {self.stop_cause}')
            return True
        if phase in (Phase.RESET, Phase.HOLD) and self.confirmed:
            self._go(Phase.READY, 'start pose reached' if mode == 'auto' and
                     phase is Phase.RESET else 'reset confirmed')
            return True
        return False

    def goal_reached(self):
        """An auto reset is at its start pose."""
        if self.phase is Phase.RESET:
            self.confirmed = True

    def hold(self, reason):
        """Hold the arm still for the operator (a timeout, a fault, a pause)."""
        self._go(Phase.HOLD, reason)

    # -- the operator's requests

    def confirm(self, auto_reset):
        """The reset is done: accepted in a teleop or freedrive RESET and in HOLD."""
        if self.paused:
            return False, f'paused: call {SERVICES["resume"]} first'
        if self.phase is Phase.RESET and auto_reset:
            return False, 'auto reset in progress: it ends by itself'
        if self.phase not in (Phase.RESET, Phase.HOLD):
            return False, f'nothing to confirm in {self.phase.name}'
        if self.confirmed:
            return True, 'already confirmed: waiting for the arm to be at rest'
        self.confirmed = True
        return True, 'confirmed'

    def reset_refusal(self):
        """Why a reset cannot be requested now ('' if it can)."""
        if self.paused:
            return f'paused: call {SERVICES["resume"]}'
        if self.phase not in (Phase.HOLD, Phase.READY):
            return f'cannot reset from {self.phase.name}'
        return ''

    def request_reset(self, reason):
        """HOLD or READY -> RESET."""
        refusal = self.reset_refusal()
        if refusal:
            raise LifecycleError(refusal)
        self._go(Phase.RESET, reason)

    def pause(self, reason):
        """Stop acting: a running or resetting arm is stopped and held, a READY one held."""
        self.paused = True
        if self.phase in (Phase.RUN, Phase.RESET, Phase.SAFE_STOP):
            self.stop(reason, Phase.HOLD)
        elif self.phase is Phase.READY:
            self.hold(reason)
        return True, 'paused'

    def resume(self, mode):
        """Undo ``pause``: from HOLD a fresh reset starts (the arm may have been moved)."""
        if not self.paused:
            return False, 'not paused'
        self.paused = False
        if self.phase is Phase.HOLD:
            self._go(Phase.RESET, f'resumed: {mode} reset')
            return True, 'resumed: resetting'
        if self.phase is Phase.ESTOP:
            return True, f'resumed; the e-stop is still engaged: {SERVICES["release"]}'
        return True, 'resumed'

    def release(self):
        """ESTOP -> HOLD: released only ever explicitly, and then the arm is held."""
        if self.phase is not Phase.ESTOP:
            return False, 'the e-stop is not engaged'
        self.hold('e-stop released')
        return True, 'e-stop released: arm held'
