"""Does the arm do what it is told? The arm-follows-command watchdog.

A protective stop, a stopped External Control program, an inactive velocity controller or
a released e-stop button on the pendant all leave a UR's joint_states flowing while the arm
stands still. Without this check the actor would record, and the learner learn from,
episodes of an arm that never moved. It compares the speed commanded ``lag`` driver
periods ago (the arm's response time) with the speed measured now; an arm that reaches less
than ``min_ratio`` of it for ``window`` periods in a row is standing still against its
command. Speeds, not directions: an arm that lags the command by more than ``lag`` (a twin
at a high real-time factor on a busy machine, a slow network) still moves, and must not
be taken for a stopped one; every failure this is for leaves the arm at rest.

Speed scaling (the pendant's slider, a reduced-mode safety plane) slows a UR on purpose:
the expected share scales with the reported factor, so a slider at 50 % never fires the
watchdog. A factor near zero is treated as a halted arm (a protective stop may read so).
"""
from collections import deque

import numpy as np

HALTED_SCALING = 0.05
"""Speed scaling at or below this counts as an arm brought to a halt."""


class FollowWatchdog:
    def __init__(self, period: float, *, lag: float = 0.05, window: float = 0.2,
                 min_speed: float = 0.05, min_ratio: float = 0.25):
        if not (period > 0 and lag >= 0 and window > 0):
            raise ValueError('period and window must be > 0 s, lag >= 0 s')
        self.lag_ticks = int(round(lag / period))
        self.window_ticks = max(1, int(round(window / period)))
        self.min_speed, self.min_ratio = float(min_speed), float(min_ratio)
        self.speed_scaling = 1.0
        """The driver's reported factor in [0, 1] (UR: speed_scaling / 100)."""
        self._commands = deque(maxlen=self.lag_ticks + 1)
        self._misses = 0
        self.last_ratio = float('nan')

    def reset(self):
        """Forget the history: after a stop, a reset or a teleport."""
        self._commands.clear()
        self._misses = 0

    def tick(self, command, velocity) -> bool:
        """The command in force this period and the velocity measured; True when the arm
        has not followed for the whole window."""
        self._commands.append(np.asarray(command, dtype=float).copy())
        if len(self._commands) <= self.lag_ticks:
            return False
        expected = self._commands[0]
        speed = float(np.linalg.norm(expected))
        if speed < self.min_speed:
            self._misses = 0
            return False
        ratio = float(np.linalg.norm(velocity)) / speed
        self.last_ratio = ratio
        scaling = self.speed_scaling
        halted = scaling <= HALTED_SCALING
        if halted or ratio < self.min_ratio * min(1.0, scaling):
            self._misses += 1
        else:
            self._misses = 0
        return self._misses >= self.window_ticks

    def explain(self) -> str:
        """What a person checks when it fires."""
        scaling = ('' if self.speed_scaling > HALTED_SCALING else
                   f' (speed scaling {100 * self.speed_scaling:.0f} %)')
        return (f'the arm did not follow the command for {self.window_ticks} driver periods'
                f'{scaling}: reached {self.last_ratio:.0%} of the commanded speed. Check '
                'for a protective stop or e-stop on the pendant, that the External Control '
                'program is running, and that forward_velocity_controller is active '
                '(ros2 control list_controllers)')
