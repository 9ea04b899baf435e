"""Reset statistics: the time between episodes the agent did not act, reset by reset.

A reset is timed from the moment acting stopped (an episode's end, a pause, an e-stop) to
READY, on the lifecycle clock (sim time on the twin) and on the wall clock, so a run can
say what its resets cost apart from the agent's time.
"""
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ResetRecord:
    """One reset, from the moment acting stopped to READY: time the agent did not act."""

    mode: str
    reason: str
    """Why acting stopped ('time limit', 'startup', 'e-stop: ...')."""
    stop_seconds: float
    """SAFE_STOP part, lifecycle clock s."""
    seconds: float
    """Episode end to READY, lifecycle clock s (what the arm spends)."""
    wall_seconds: float
    """Episode end to READY, wall s (equal to ``seconds`` on a real arm or a paced twin;
    on a fast twin, the compute cost)."""
    held: bool
    """The reset passed through HOLD (a timeout, a pause, a fault, an e-stop)."""


class ResetClock:
    """Times the reset in progress and keeps the records of the finished ones."""

    def __init__(self, clock, wall_clock, history):
        self.records = deque(maxlen=history)
        self._clock, self._wall = clock, wall_clock
        self._start = None
        """(lifecycle s, wall s) when acting stopped; None between READY and the next stop."""
        self._stop_end = None
        self._mode = None
        self._reason = ''
        self._held = False

    def restart(self, reason):
        """Acting stopped now: the time to READY counts from here."""
        self._start = (self._clock(), self._wall())
        self._stop_end, self._mode, self._reason, self._held = None, None, reason, False

    def begin(self, reason):
        """As ``restart``, unless a reset is already being timed."""
        if self._start is None:
            self.restart(reason)

    def stopped(self):
        """SAFE_STOP ended (at rest, or given up on)."""
        self._stop_end = self._clock()

    def started(self, mode):
        """The reset proper began, in ``mode``."""
        self._mode = mode

    def held(self):
        self._held = True

    def finish(self):
        """READY: the reset's record, kept in ``records``."""
        start, wall = self._start
        now = self._clock()
        stop_end = self._stop_end if self._stop_end is not None else start
        record = ResetRecord(mode=self._mode or 'none', reason=self._reason,
                             stop_seconds=stop_end - start, seconds=now - start,
                             wall_seconds=self._wall() - wall, held=self._held)
        self.records.append(record)
        self._start = None
        return record
