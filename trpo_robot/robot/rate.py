"""Fixed-rate loop timing for the driver and agent loops.

Deadlines sit on an absolute grid ``t0 + k * period`` so that sleep jitter never
accumulates into drift; a late tick skips to the next grid point rather than bursting to
catch up (a burst would send several commands back to back, which a velocity-driven arm
turns into a jerk). Lateness is kept per tick because the tail, not the mean, is what
makes a real arm protective-stop.
"""
from dataclasses import dataclass
import math
import os
import time
import warnings

import numpy as np


@dataclass(frozen=True)
class TimingStats:
    """Lateness of the loop's ticks (actual wake-up minus deadline), seconds."""

    ticks: int
    """Ticks since the last reset_stats."""
    overruns: int
    """Calls of wait() that found their deadline already past and skipped ahead."""
    p50: float
    """Median lateness over the last ``history`` ticks."""
    p99: float
    """99th percentile lateness over the last ``history`` ticks."""
    max: float  # noqa: A003 - the name the architecture and diagnostics use
    """Largest lateness since the last reset_stats."""


class RateLoop:
    """Wakes the calling thread once per ``period`` on an absolute deadline grid.

    ``wait()`` sleeps until ``spin`` seconds before the deadline, then busy-waits to it:
    OS sleeps overshoot by 50 us to several ms, the spin absorbs the common part of that.
    The grid is anchored by the first ``wait()`` (or ``start()``), which is also when
    ``realtime=True`` asks the kernel for SCHED_FIFO at ``priority`` for the calling thread
    (Linux applies ``sched_setscheduler(0, ...)`` to the calling thread only; ros2_control
    runs its loop at priority 50). Without the permission it warns and runs normally;
    ``realtime_active`` tells which. Not thread-safe: one loop per thread.
    """

    def __init__(self, period, clock=time.monotonic, sleep=time.sleep, spin=0.0002,
                 realtime=True, priority=50, history=10000):
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f'period must be finite and > 0, got {period}')
        if not (math.isfinite(spin) and 0 <= spin < period):
            raise ValueError(f'spin must be in [0, period), got {spin}')
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        self.period = float(period)
        self.spin = float(spin)
        self.realtime = realtime
        self.priority = int(priority)
        self.realtime_active = False
        self._clock = clock
        self._sleep = sleep
        self._ring = np.zeros(int(history))
        self._saved_policy = None
        self._t0 = None
        self._k = 0
        self.reset_stats()

    # ------------------------------------------------------------------ scheduling

    def start(self):
        """Anchor the grid at now (the first deadline is one period later).

        Called by the first ``wait()``; call it again to re-anchor after a pause (e.g.
        between episodes) without counting the pause as an overrun.
        """
        if self.realtime and self._saved_policy is None:
            self._enter_realtime()
        self._t0 = self._clock()
        self._k = 0

    def _enter_realtime(self):
        try:
            saved = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
        except (AttributeError, OSError) as err:  # PermissionError, or not Linux
            self._saved_policy = False  # tried once; do not retry every start()
            warnings.warn(f'RateLoop: SCHED_FIFO priority {self.priority} not available '
                          f'({err}); timing falls back to normal scheduling. Run as root, '
                          'grant CAP_SYS_NICE, or set an rtprio limit for this user.',
                          RuntimeWarning, stacklevel=3)
            return
        self._saved_policy = saved
        self.realtime_active = True

    def release_realtime(self):
        """Give the calling thread back the scheduling it had before ``start()``."""
        if self.realtime_active:
            policy, param = self._saved_policy
            os.sched_setscheduler(0, policy, param)
        self.realtime_active = False
        self._saved_policy = None

    def wait(self):
        """Block until the next deadline on the grid; return that deadline (clock time).

        If the deadline has already passed, counts an overrun and waits for the first
        deadline still in the future instead.
        """
        if self._t0 is None:
            self.start()
        self._k += 1
        deadline = self._t0 + self._k * self.period
        now = self._clock()
        if now > deadline:
            self._overruns += 1
            deadline = self._skip_ahead(now)
        remaining = deadline - self.spin - now
        if remaining > 0.0:
            self._sleep(remaining)
        now = self._clock()
        while now < deadline:
            now = self._clock()
        self._record(now - deadline)
        return deadline

    def _skip_ahead(self, now):
        self._k = int((now - self._t0) // self.period) + 1
        deadline = self._t0 + self._k * self.period
        if deadline <= now:  # rounding put it on the wrong side of now
            self._k += 1
            deadline = self._t0 + self._k * self.period
        return deadline

    # ------------------------------------------------------------------ statistics

    def _record(self, lateness):
        self._ring[self._ticks % len(self._ring)] = lateness
        self._ticks += 1
        if lateness > self._max:
            self._max = lateness

    def reset_stats(self):
        """Forget recorded lateness and overruns; the deadline grid is kept."""
        self._ticks = 0
        self._overruns = 0
        self._max = 0.0

    def stats(self):
        """Lateness percentiles over the last ``history`` ticks, and counters."""
        filled = self._ring[:min(self._ticks, len(self._ring))]
        if not len(filled):
            return TimingStats(0, self._overruns, 0.0, 0.0, 0.0)
        p50, p99 = np.percentile(filled, [50.0, 99.0])
        return TimingStats(self._ticks, self._overruns, float(p50), float(p99), self._max)


class LatenessHistogram:
    """Lateness counts in fixed log-spaced bins, for a picture of the whole run.

    Percentiles over a ring forget all but the last ticks; these counts keep every tick
    since the last reset at O(1) and no allocation per tick, so a control loop can add to
    them at any rate. Bins run from ``low`` to ``high`` seconds, ``per_decade`` to a factor
    of ten; anything below ``low`` (or negative) counts as underflow, anything from ``high``
    up as overflow.
    """

    def __init__(self, low=1e-5, high=1.0, per_decade=10):
        decades = math.log10(high / low)
        if not (low > 0 and decades > 0 and per_decade >= 1):
            raise ValueError(f'need 0 < low < high and per_decade >= 1, got {low}, {high}, '
                             f'{per_decade}')
        self.low, self.high, self.per_decade = float(low), float(high), int(per_decade)
        self.bins = int(round(decades * self.per_decade))
        self.reset()

    def reset(self):
        self._counts = [0] * (self.bins + 2)  # [underflow, bins..., overflow]

    def add(self, lateness):
        if lateness < self.low:
            index = 0
        elif lateness >= self.high:
            index = self.bins + 1
        else:  # min(): rounding in log10 just under `high`
            index = min(self.bins, 1 + int(math.log10(lateness / self.low) * self.per_decade))
        self._counts[index] += 1

    @property
    def total(self) -> int:
        return sum(self._counts)

    def edges(self) -> list:
        """The bins + 1 bin edges, seconds."""
        return [self.low * 10 ** (k / self.per_decade) for k in range(self.bins + 1)]

    def to_dict(self) -> dict:
        """Plain JSON: edges (s), counts per bin, underflow, overflow, total."""
        return {'edges_s': self.edges(), 'counts': self._counts[1:-1],
                'underflow': self._counts[0], 'overflow': self._counts[-1],
                'total': self.total}
