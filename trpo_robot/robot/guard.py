"""What the command guard lets through to the driver: the actor's newest command, or zero.

The UR ROS 2 driver's forward_velocity_controller has no stale-command timeout
(ros2_controllers#95): when the process that commands it dies, hangs or loses its network,
the driver keeps writing the last velocity to the robot every cycle and the arm keeps
moving. The guard runs in a process of its own next to the driver, relays the actor's
commands, and sends zero as soon as the actor's stream goes stale, its publisher leaves the
graph, the actor says goodbye (an empty command) or a command is malformed. It never makes
up a command: what reaches the driver is the actor's last valid command or zero.

The driver holds the command it was given until it gets another (the UR's controller
forever, a Dynamixel driver node for its own command timeout), so a command equal to the
one the driver holds is not sent again, except once per guard timeout: the actor repeats
its command every driver period as a heartbeat, and relaying each repeat cost the
driver and the guard as much CPU as the rest of the graph on a 2-core machine.

Every check above keeps the driver's time, read from joint_states. When they stop coming
(the driver's joint_state_broadcaster deactivated while forward_velocity_controller runs
on, a guard cut off from them), that clock stops with them and no check can fire: the node
then tells the guard how long it has heard none (``on_clock_lost``), and the guard sends
zero and relays nothing until a joint state comes again.

Each command carries the driver time of the joint state it answers. A command decided
before the guard's last stop is dropped, not relayed: a dead actor's last command can
still sit in the guard's queue when its stop fires (a busy machine, a healed network link),
and relaying it would restart the arm that the stop had just brought to rest.

Pure numpy, so the decisions are tested without ROS; trpo_robot/ros/guard_node.py is the
thin ROS edge around it.
"""
import numpy as np

RELAYING = 'relaying'
WAITING = 'waiting for the actor'


class CommandGuard:
    """Decides, per received command and per driver tick, what the driver gets.

    Time is the driver's (the joint_states stamps), so the timeout keeps its meaning at
    any real-time factor of a twin and is immune to the guard's own scheduling delays.
    """

    def __init__(self, velocity_limits, timeout: float, joint_names=None):
        self.limits = np.asarray(velocity_limits, dtype=float)
        self.n = len(self.limits)
        self.joint_names = None if joint_names is None else tuple(joint_names)
        if not timeout > 0:
            raise ValueError(f'guard timeout must be > 0 s, got {timeout}')
        self.timeout = float(timeout)
        self.state = WAITING
        self.last_command_time = None
        self.counters = dict(relayed=0, stops=0, bad_commands=0, goodbyes=0, stale=0,
                             publisher_gone=0, late=0, sent=0, clock_lost=0, clockless=0)
        self.clock_lost = False
        """No joint state for too long (``on_clock_lost``); cleared by the next one."""
        self.last_stop_time = float('nan')
        self.last_stop_age = float('nan')
        self.last_stop_cause = ''
        self._sent = (None, 0.0)  # (the command the driver holds, driver time it was sent)

    @property
    def relaying(self) -> bool:
        return self.state == RELAYING

    def on_command(self, values, stamp: float, now: float | None, names=None):
        """A message from the actor, answering the joint state of driver time ``stamp``,
        received at driver time ``now``; the array to publish now, or None (dropped).
        ``names``, when given, must be the arm's joints in chain order: a command in another
        order would drive the wrong joints.

        ``now`` None: the guard has heard no joint state yet (its subscription can match
        a second after the actor's on a loaded host). The command's stamp, the driver time
        the actor read, stands for it: with a clock frozen at 0 the guard sent repeats
        never again, the actor took the missing relays for a dead guard and held the arm,
        and the first tick then found the command seconds old."""
        if now is None:
            now = 0.0 if self._invalid_stamp(stamp) else float(stamp)
        command = np.asarray(values, dtype=float).ravel()
        if command.size == 0:
            self.counters['goodbyes'] += 1
            return self._stop('the actor said it is stopping', now)
        reason = (self._invalid(command) or self._invalid_stamp(stamp)
                  or self._wrong_names(names))
        if reason:
            self.counters['bad_commands'] += 1
            return self._stop(f'bad command: {reason}', now)
        if self.clock_lost:  # nothing to time the actor by
            self.counters['clockless'] += 1
            return None
        if stamp <= self.last_stop_time:  # False while never stopped (nan)
            self.counters['late'] += 1
            return None
        self.state = RELAYING
        self.last_command_time = now
        self.counters['relayed'] += 1
        return self._send(command, now)

    def on_tick(self, now: float, publishers: int | None = None):
        """One driver period (a joint_states stamp); zero to publish, or None.

        Zero is sent once per stop, not repeated: a reliable stream delivers it, a driver
        that restarts starts without a command, and a guard that kept publishing would
        fight an operator's hand in freedrive, where the actor sends nothing on purpose."""
        self.clock_lost = False
        if self.relaying:
            if publishers == 0:
                self.counters['publisher_gone'] += 1
                return self._stop('the actor left the graph', now)
            age = now - self.last_command_time
            if age >= self.timeout - 1e-9:
                self.counters['stale'] += 1
                return self._stop(f'no command for {age:.3f} s (timeout {self.timeout:g} s)',
                                  now, age)
        return None

    def on_clock_lost(self, quiet: float, now: float):
        """No joint state for ``quiet`` s of wall time (the node decides how long is too
        long): zero to publish if relaying, else None; either way no command is relayed
        until ``on_tick``. ``now``: the driver time of the last state heard."""
        self.clock_lost = True
        if not self.relaying:
            return None
        self.counters['clock_lost'] += 1
        return self._stop(f'no joint_states for {quiet:.1f} s of wall time: no driver clock '
                          'to time the actor by', now)

    def _invalid(self, command) -> str:
        if command.shape != (self.n,):
            return f'{command.size} values for {self.n} joints'
        if not np.all(np.isfinite(command)):
            return 'non-finite values'
        over = np.abs(command) > self.limits * (1 + 1e-9)
        if np.any(over):
            return (f'joint {int(np.argmax(over))} at {command[over][0]:.3f} rad/s beyond the '
                    f'URDF limit {self.limits[over][0]:.3f}')
        return ''

    def _wrong_names(self, names) -> str:
        if names is None or self.joint_names is None or tuple(names) == self.joint_names:
            return ''
        return f'joints {list(names)} are not {list(self.joint_names)}'

    @staticmethod
    def _invalid_stamp(stamp) -> str:
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            return 'no stamp'
        return '' if np.isfinite(stamp) else 'non-finite stamp'

    def _send(self, command, now):
        """The command to publish, or None when the driver holds it already (sent again
        once per timeout, for a driver whose own command timeout is longer)."""
        held, sent_at = self._sent
        if held is not None and np.array_equal(held, command) and \
                now - sent_at < self.timeout - 1e-9:
            return None
        self._sent = (command, now)
        self.counters['sent'] += 1
        return command

    def _stop(self, cause, now, age=None):
        self.state = f'stopped: {cause}'
        self.counters['stops'] += 1
        self.last_stop_time = now
        self.last_stop_cause = cause
        self.last_stop_age = float('nan') if age is None else age
        self._sent = (np.zeros(self.n), now)
        return np.zeros(self.n)
