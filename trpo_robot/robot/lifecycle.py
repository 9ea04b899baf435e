"""The actor's episode lifecycle: RUN -> SAFE_STOP -> RESET -> READY -> RUN.

Most of a real arm's wall-clock goes to resets, and resets are where people get hurt and
data gets lost, so the time between episodes is a state machine of its own rather than a
loop hidden in ``env.reset()``. It owns no thread and never sleeps: the actor's control
loop calls ``tick(state)`` once per driver period whenever the agent is not acting, sends
the command it returns, and lets one period pass. Service handlers (another thread) call
``confirm``, ``pause``, ``engage_estop`` ...; those take a lock, change state at once and
return ``(success, message)`` for a ``std_srvs/Trigger`` response.

Phases:

- ``RUN``: the agent acts (``ArmEnv.step`` sends the commands); ``tick`` returns None.
- ``SAFE_STOP``: zero command through the shield, i.e. braking at the acceleration limit
  from the last command the agent sent, until the arm is at rest.
- ``RESET``: ``auto`` (a proportional move to a start pose through the shield),
  ``teleop`` (an operator jogs joints with a gamepad, see ``teleop.py``) or ``freedrive``
  (the operator moves the arm by hand; commands stay zero). Teleop and freedrive end on a
  confirm (a gamepad button or ``confirm()``); any reset ends in HOLD on a timeout.
- ``READY``: at rest at the start of the next episode; ``start_episode()`` enters RUN.
- ``HOLD``: arm held still waiting for the operator (timeout, pause, fault, after an
  e-stop is released); it never moves again by itself.
- ``ESTOP``: the shield's latched e-stop; left only by an explicit ``release_estop()``.

Every command, in every phase, goes through the ``SafetyShield``. Reset time is measured
on the lifecycle clock (sim time on the twin) and on the wall clock, apart from the
agent's timing.
"""
from collections import deque
from dataclasses import dataclass, replace
import enum
import logging
import math
import threading
import time

import numpy as np

from .backend import JointState
from .shield import Intervention, SafetyShield
from .teleop import JoyEvent, TeleopMapper

RESET_MODES = ('auto', 'teleop', 'freedrive')
SERVICES = {'confirm': '~/reset_done', 'reset': '~/reset', 'pause': '~/pause',
            'resume': '~/resume', 'estop': '~/estop', 'release': '~/estop_release'}
"""Service names the operator is told about in log lines; the ROS edge creates these."""


class LifecycleError(RuntimeError):
    """A call that the current phase does not allow (e.g. start_episode outside READY)."""


class Phase(enum.Enum):
    RUN = 'run'
    SAFE_STOP = 'safe_stop'
    RESET = 'reset'
    READY = 'ready'
    HOLD = 'hold'
    ESTOP = 'estop'


@dataclass(frozen=True)
class LifecycleConfig:
    """How resets run; one per robot in YAML, overridable at launch."""

    reset_mode: str = 'auto'
    """'auto', 'teleop' or 'freedrive'; ``set_reset_mode`` changes it at run time."""
    rest_velocity: float = 0.03
    """Every joint slower than this, rad/s, counts as at rest. Above the sensor noise: one
    Dynamixel velocity count is 0.024 rad/s, UR joint speed noise ~1e-3 rad/s."""
    rest_ticks: int = 3
    """Consecutive ticks at rest (zero command sent, slow joints) before the arm is at
    rest; guards against a noisy reading passing for rest."""
    stop_timeout: float = 3.0
    """s allowed for SAFE_STOP; an arm still moving after it is held and reported
    (something pushes it, or its readings are wrong)."""
    reset_timeout: float = 120.0
    """teleop and freedrive: s without operator activity (deadman held, a confirm) before
    the reset ends in HOLD. Measured from the last activity so a slow, careful jog never
    times out while the operator is at it."""
    auto_timeout: float = 30.0
    """auto: s to reach the start pose before the reset ends in HOLD (e.g. the workspace
    box blocks the straight joint-space path)."""
    auto_tolerance: float = 0.02
    """auto: largest joint error, rad, at which the start pose counts as reached."""
    auto_gain: float = 2.0
    """auto: proportional gain, 1/s; the shield's velocity and acceleration limits shape
    the motion, the gain only its final approach (time constant 1 / gain)."""
    history: int = 1000
    """Transitions, episodes and resets kept in memory for inspection."""

    def __post_init__(self):
        if self.reset_mode not in RESET_MODES:
            raise ValueError(f'LifecycleConfig.reset_mode must be one of {RESET_MODES}, '
                             f'got {self.reset_mode!r}')
        for name in ('rest_velocity', 'stop_timeout', 'reset_timeout', 'auto_timeout',
                     'auto_tolerance', 'auto_gain'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'LifecycleConfig.{name} must be finite and > 0, '
                                 f'got {value}')
        if self.rest_ticks < 1 or self.history < 1:
            raise ValueError('LifecycleConfig.rest_ticks and history must be >= 1')


@dataclass(frozen=True)
class Transition:
    """One change of phase, as logged and published."""

    stamp: float
    """Lifecycle clock, s (sim time on the twin, monotonic on hardware)."""
    wall: float
    """Wall clock (time.monotonic), s."""
    source: Phase
    target: Phase
    reason: str


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode as the lifecycle saw it; ``aborted`` ones are never learned from."""

    index: int
    start: float
    end: float
    reason: str
    aborted: bool

    @property
    def seconds(self):
        return self.end - self.start


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


class EpisodeLifecycle:
    """The phase machine of the module doc, driven by the control loop's ticks.

    ``shield`` is the lifecycle's own SafetyShield with its period equal to the tick
    period (the driver period): braking, teleop and the e-stop then act within one driver
    period, not one agent step. ``linked_shields`` (the agent's, e.g. ``env.shield``) are
    latched and released together with it, so an e-stop also brakes an agent step in
    flight. ``handover()`` returns the agent's last sent command: braking starts from it,
    so SAFE_STOP never steps the velocity. ``start_pose()`` draws the auto reset's goal.
    ``freedrive(on)`` is the backend's torque-off / freedrive switch, if it has one.
    """

    def __init__(self, shield: SafetyShield, config: LifecycleConfig | None = None, *,
                 clock, start_pose, mapper: TeleopMapper | None = None, freedrive=None,
                 linked_shields=(), handover=None, wall_clock=time.monotonic,
                 on_transition=None, logger=None):
        self.config = config or LifecycleConfig()
        self.shield = shield
        self.mapper = mapper
        self._clock, self._wall = clock, wall_clock
        self._start_pose = start_pose if callable(start_pose) else \
            (lambda pose=np.asarray(start_pose, float): pose.copy())
        self._freedrive = freedrive
        self._linked = tuple(linked_shields)
        self._handover = handover
        self._on_transition = on_transition
        self._log = logger or logging.getLogger('trpo_robot.lifecycle')
        self._lock = threading.RLock()
        self._n = shield.spec.dof
        self._zero = np.zeros(self._n)
        self._mode = self.config.reset_mode
        self._check_mode(self._mode)
        self._init_state()

    @classmethod
    def for_env(cls, env, config=None, mapping=None, **kwargs):
        """A lifecycle for an ``ArmEnv``: its task limits, its clock, its start poses.

        The lifecycle's shield has the env shield's limits at the driver period; its
        staleness allowance stays the same in seconds. ``mapping`` (a ``JoyMapping``)
        enables teleop on the task's actuated joints.
        """
        env = getattr(env, 'unwrapped', env)  # gymnasium wrappers hide the attributes
        backend = env.backend
        agent = env.shield
        stale = agent.config.stale_periods * env.periods_per_step
        shield = SafetyShield(env.robot_spec, replace(agent.config, stale_periods=stale),
                              backend.period, clock=backend.now)
        mapper = None
        if mapping is not None:
            mapper = TeleopMapper(mapping, shield.velocity_limit, joints=env.act_idx,
                                  clock=backend.now, joint_names=backend.joint_names,
                                  stop_step=shield.acceleration_limit * shield.period)
        kwargs.setdefault('freedrive', backend.set_freedrive
                          if backend.capabilities.freedrive else None)
        return cls(shield, config, clock=backend.now, start_pose=env.start_pose,
                   mapper=mapper, linked_shields=(agent,),
                   handover=lambda: agent.last_sent, **kwargs)

    def _init_state(self):
        keep = self.config.history
        self._transitions = deque(maxlen=keep)
        self._episodes = deque(maxlen=keep)
        self._resets = deque(maxlen=keep)
        self._phase_total = {phase: 0.0 for phase in Phase}
        now = self._clock()
        self._phase, self._entered = Phase.SAFE_STOP, now
        self._after_stop, self._stop_cause = Phase.RESET, 'startup'
        self._restart_reset_clock(now, 'startup')
        self._seed = 'state'  # seed the shield from the first measured velocity
        self._rest_count = 0
        self._pending_ready = False
        self._episode = None  # (index, start) of the open episode
        self._next_index = 0
        self._paused = False
        self._goal = None
        self._activity = now
        self._teleop_reason = ''
        self.last_interventions = Intervention.NONE
        self.instructions = ''
        self.aborted_count = 0
        self._log.info('SAFE_STOP (startup): bringing the arm to rest, then a '
                       f'{self._mode} reset')

    # ------------------------------------------------------------------ read-only view

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def acting(self):
        """True while the agent owns the arm (call ``env.step``, not ``tick``)."""
        return self._phase is Phase.RUN

    @property
    def reset_mode(self):
        return self._mode

    @property
    def paused(self):
        return self._paused

    @property
    def estopped(self):
        return self._phase is Phase.ESTOP

    @property
    def transitions(self):
        return tuple(self._transitions)

    @property
    def episodes(self):
        return tuple(self._episodes)

    @property
    def last_episode(self) -> EpisodeRecord | None:
        return self._episodes[-1] if self._episodes else None

    @property
    def resets(self):
        return tuple(self._resets)

    @property
    def goal(self):
        """The auto reset's target pose (a copy), None outside an auto reset."""
        return None if self._goal is None else self._goal.copy()

    def phase_seconds(self):
        """Lifecycle-clock seconds spent in each phase so far (acting vs resetting)."""
        with self._lock:
            totals = {p.value: t for p, t in self._phase_total.items()}
            totals[self._phase.value] += self._clock() - self._entered
            return totals

    def status(self):
        """A plain snapshot for diagnostics and the operator's display."""
        with self._lock:
            last = self._resets[-1] if self._resets else None
            return {
                'phase': self._phase.value, 'reset_mode': self._mode,
                'paused': self._paused, 'estop_reason': self.shield.estop_reason,
                'instructions': self.instructions, 'teleop': self._teleop_reason,
                'selected_joint': self.mapper.describe_selection() if self.mapper else '',
                'episodes': len(self._episodes), 'aborted': self.aborted_count,
                'last_reset_s': last.seconds if last else float('nan'),
                'last_reset_wall_s': last.wall_seconds if last else float('nan'),
            }

    # ------------------------------------------------------------------ control loop

    def tick(self, state: JointState, joy=None):
        """One driver period outside RUN: the command to send now (already shielded).

        ``joy`` optionally passes the latest ``(axes, buttons, stamp)`` (see ``joy``).
        Returns None in RUN: the agent's ``env.step`` commands the arm then.
        """
        with self._lock:
            if joy is not None:
                self.joy(*joy)
            self._sync_estop()
            if self._phase is Phase.RUN:
                return None
            now = self._clock()
            self._apply_seed(state)
            wanted = self._wanted(state, now)
            sent, self.last_interventions = self.shield.filter(state, wanted)
            self._count_rest(state, sent)
            self._advance(state, now)
            return sent

    def joy(self, axes, buttons, stamp):
        """Feed one Joy reading (any thread): e-stop and confirm act at once, the jog
        command is used by the next ``tick``. Returns the ``TeleopOutput``."""
        with self._lock:
            if self.mapper is None:
                raise LifecycleError('no gamepad mapping configured: pass mapping= to for_env')
            out = self.mapper.update(axes, buttons, stamp)
            label = self.mapper.mapping.label
            for event in out.events:
                if event is JoyEvent.ESTOP:
                    self.engage_estop(f'gamepad {label(self.mapper.mapping.estop)}')
                elif event is JoyEvent.CONFIRM:
                    self.confirm(f'gamepad {label(self.mapper.mapping.confirm)}')
                elif event is JoyEvent.SELECT:
                    self._log.info(f'teleop: jogging {self.mapper.describe_selection()}')
            return out

    def _wanted(self, state, now):
        """The command this phase asks for, before the shield."""
        if self._phase is not Phase.RESET or self._pending_ready:
            return self._zero
        if self._mode == 'auto':
            return self._auto_command(state)
        if self._mode == 'teleop':
            velocity, self._teleop_reason = self.mapper.velocity_at(now)
            if self.mapper.engaged(now):
                self._activity = now
            return velocity
        return self._zero  # freedrive: the operator moves the arm, the servos do not

    def _auto_command(self, state):
        error = self._goal - np.asarray(state.position, dtype=np.float64)
        if np.max(np.abs(error)) < self.config.auto_tolerance:
            self._pending_ready = True
            return self._zero
        return self.config.auto_gain * error

    def _count_rest(self, state, sent):
        velocity = np.asarray(state.velocity, dtype=np.float64)
        still = not np.any(sent) and bool(np.all(np.abs(velocity) < self.config.rest_velocity))
        self._rest_count = self._rest_count + 1 if still else 0

    @property
    def _at_rest(self):
        return self._rest_count >= self.config.rest_ticks

    def _advance(self, state, now):
        """Phase changes that follow from this tick: rest reached, goals, timeouts."""
        phase, age = self._phase, now - self._entered
        if phase is Phase.SAFE_STOP:
            if self._at_rest:
                self._finish_stop(now)
            elif age > self.config.stop_timeout:
                self._stop_end = now
                self._hold(f'arm not at rest {self.config.stop_timeout:g} s after the stop '
                           f'(fastest joint {np.max(np.abs(state.velocity)):.3f} rad/s)')
        elif phase in (Phase.RESET, Phase.HOLD) and self._pending_ready and self._at_rest:
            self._enter(Phase.READY, 'start pose reached' if self._mode == 'auto'
                        and phase is Phase.RESET else 'reset confirmed', now)
        elif phase is Phase.RESET:
            self._check_reset_timeout(state, now)

    def _finish_stop(self, now):
        self._stop_end = now
        if self._after_stop is Phase.HOLD:
            self._hold(self._stop_cause)
        else:
            self._enter(Phase.RESET, f'{self._mode} reset after: {self._stop_cause}', now)

    def _check_reset_timeout(self, state, now):
        cfg = self.config
        if self._mode == 'auto':
            if now - self._entered > cfg.auto_timeout:
                error = np.abs(self._goal - np.asarray(state.position))
                self._hold(f'auto reset did not reach the start pose in {cfg.auto_timeout:g} s '
                           f'(largest joint error {error.max():.3f} rad)')
        elif now - self._activity > cfg.reset_timeout:
            self._hold(f'{self._mode} reset not confirmed within {cfg.reset_timeout:g} s')

    # ------------------------------------------------------------------ episodes

    def start_episode(self):
        """READY -> RUN; returns the episode index. The caller then resets the env in
        place (the arm is already at its start pose) and steps it."""
        with self._lock:
            self._sync_estop()
            if self._phase is not Phase.READY:
                raise LifecycleError(f'start_episode needs READY, the phase is '
                                     f'{self._phase.name}')
            if self._paused:
                raise LifecycleError('start_episode: acting is paused; call resume()')
            now = self._clock()
            index = self._next_index
            self._next_index += 1
            self._episode = (index, now)
            self._enter(Phase.RUN, f'episode {index}', now)
            return index

    def end_episode(self, reason='time limit', last_command=None):
        """RUN -> SAFE_STOP at a normal episode end; returns the episode's record.

        Outside RUN (the episode was already cut by an e-stop, a fault or a pause) it
        returns that record, so the caller can always call this when its step loop exits
        and check ``.aborted``. ``last_command`` (default: ``handover()``) is where
        braking starts.
        """
        with self._lock:
            self._sync_estop()
            if self._phase is Phase.RUN:
                return self._leave_run(reason, False, Phase.RESET, last_command)
            if self.last_episode is None:
                raise LifecycleError('end_episode: no episode has started')
            return self.last_episode

    def fault(self, reason):
        """A backend fault: the episode (if any) is aborted; stop, then HOLD."""
        with self._lock:
            reason = f'fault: {reason}'
            if self._phase is Phase.RUN:
                self._leave_run(reason, True, Phase.HOLD)
            elif self._phase is not Phase.ESTOP:
                self._stop(reason, Phase.HOLD)
            return True, reason

    def _leave_run(self, reason, aborted, after, last_command=None, target=Phase.SAFE_STOP):
        now = self._clock()
        index, start = self._episode
        record = EpisodeRecord(index, start, now, reason, aborted)
        self._episodes.append(record)
        self._episode = None
        self.aborted_count += int(aborted)
        command = last_command if last_command is not None else \
            (self._handover() if self._handover is not None else None)
        self._seed = 'state' if command is None else np.asarray(command, np.float64).copy()
        self._restart_reset_clock(now, reason)
        if target is Phase.SAFE_STOP:
            self._stop(reason, after, now)
        else:
            self._enter(target, reason, now)
        return record

    def _stop(self, reason, after, now=None):
        now = self._clock() if now is None else now
        self._after_stop, self._stop_cause = after, reason
        if self._reset_start is None:
            self._restart_reset_clock(now, reason)
        if self._phase is not Phase.SAFE_STOP:
            self._enter(Phase.SAFE_STOP, reason, now)

    # ------------------------------------------------------------------ operator requests

    def confirm(self, source='service'):
        """The reset is done (``~/reset_done`` or the gamepad's confirm button).

        Accepted in a teleop or freedrive RESET and in HOLD (the operator vouches for the
        pose); READY follows once the arm is at rest.
        """
        with self._lock:
            refusal = self._confirm_refusal()
            if refusal:
                return False, refusal
            if self._pending_ready:
                return True, 'already confirmed: waiting for the arm to be at rest'
            self._pending_ready = True
            self._log.info(f'reset confirmed by {source}; READY once the arm is at rest')
            return True, 'confirmed'

    def _confirm_refusal(self):
        phase = self._phase
        if self._paused:
            return f'paused: call {SERVICES["resume"]} first'
        if phase is Phase.RESET and self._mode == 'auto':
            return 'auto reset in progress: it ends by itself'
        if phase not in (Phase.RESET, Phase.HOLD):
            return f'nothing to confirm in {phase.name}'
        return ''

    def request_reset(self, mode=None):
        """HOLD or READY -> RESET (``~/reset``), in ``mode`` for this reset only."""
        with self._lock:
            mode = self._mode if mode is None else mode
            problem = self._mode_problem(mode)
            if problem:
                return False, problem
            if self._paused:
                return False, f'paused: call {SERVICES["resume"]}'
            if self._phase not in (Phase.HOLD, Phase.READY):
                return False, f'cannot reset from {self._phase.name}'
            self._mode = mode
            self._begin_reset_clock(f'{mode} reset requested')
            self._enter(Phase.RESET, f'{mode} reset requested')
            return True, f'{mode} reset started'

    def set_reset_mode(self, mode):
        """Change the mode of the resets that start from now on."""
        with self._lock:
            problem = self._mode_problem(mode)
            if problem:
                return False, problem
            self.config = replace(self.config, reset_mode=mode)
            if self._phase is not Phase.RESET:
                self._mode = mode
            return True, f'reset mode {mode}'

    def pause(self, reason='operator'):
        """Stop acting: the episode (kept, not aborted) ends, the arm stops and is held."""
        with self._lock:
            self._paused = True
            phase = self._phase
            if phase is Phase.RUN:
                self._leave_run(f'paused ({reason})', False, Phase.HOLD)
            elif phase in (Phase.RESET, Phase.SAFE_STOP):
                self._stop(f'paused ({reason})', Phase.HOLD)
            elif phase is Phase.READY:
                self._begin_reset_clock(f'paused ({reason})')
                self._hold(f'paused ({reason})')
            return True, 'paused'

    def resume(self):
        """Undo ``pause``: from HOLD a fresh reset starts (the arm may have been moved)."""
        with self._lock:
            if not self._paused:
                return False, 'not paused'
            self._paused = False
            if self._phase is Phase.HOLD:
                self._enter(Phase.RESET, f'resumed: {self._mode} reset')
                return True, 'resumed: resetting'
            if self._phase is Phase.ESTOP:
                return True, f'resumed; the e-stop is still engaged: {SERVICES["release"]}'
            return True, 'resumed'

    def engage_estop(self, reason='operator'):
        """Latch the e-stop now (any thread): every command brakes to rest until
        ``release_estop``; an episode in RUN is aborted."""
        with self._lock:
            for shield in (self.shield,) + self._linked:
                shield.engage_estop(reason)
            self._enter_estop(f'e-stop: {self.shield.estop_reason}')
            return True, f'e-stop engaged: {self.shield.estop_reason}'

    def release_estop(self):
        """Unlatch (only ever explicitly); the arm is then held until the operator acts."""
        with self._lock:
            if self._phase is not Phase.ESTOP:
                return False, 'the e-stop is not engaged'
            for shield in (self.shield,) + self._linked:
                shield.release_estop()
            self._hold('e-stop released')
            return True, 'e-stop released: arm held'

    # ------------------------------------------------------------------ internals

    def _mode_problem(self, mode):
        if mode not in RESET_MODES:
            return f'reset mode must be one of {RESET_MODES}, got {mode!r}'
        if mode == 'teleop' and self.mapper is None:
            return 'teleop resets need a gamepad mapping (mapper=)'
        return ''

    def _check_mode(self, mode):
        problem = self._mode_problem(mode)
        if problem:
            raise ValueError(problem)

    def _sync_estop(self):
        """An e-stop latched directly on a shield (e.g. by another node) counts too."""
        if self._phase is Phase.ESTOP:
            return
        for shield in (self.shield,) + self._linked:
            if shield.estopped:
                self.engage_estop(shield.estop_reason)
                return

    def _enter_estop(self, reason):
        if self._phase is Phase.ESTOP:
            return
        if self._phase is Phase.RUN:
            self._leave_run(reason, True, Phase.HOLD, target=Phase.ESTOP)
            return
        self._begin_reset_clock(reason)
        self._enter(Phase.ESTOP, reason)

    def _begin_reset_clock(self, reason='operator'):
        if self._reset_start is None:
            self._restart_reset_clock(self._clock(), reason)

    def _restart_reset_clock(self, now, reason=None):
        """Acting stopped at ``now``: the time to READY is counted from here."""
        self._reset_start = (now, self._wall())
        self._held = False
        self._stop_end = None
        self._reset_used = None
        if reason is not None:
            self._stop_reason = reason

    def _apply_seed(self, state):
        """Start the shield's acceleration limit from the agent's last command, or from the
        measured velocity when there is none (startup)."""
        seed, self._seed = self._seed, None
        if seed is None:
            return
        velocity = np.asarray(state.velocity, np.float64) if isinstance(seed, str) else seed
        self.shield.reset(JointState(np.asarray(state.position), velocity, state.stamp))

    def _hold(self, reason):
        self._held = True
        self._enter(Phase.HOLD, reason)

    def _enter(self, target, reason, now=None):
        now = self._clock() if now is None else now
        source = self._phase
        self._phase_total[source] += now - self._entered
        if source is Phase.RESET and self._mode == 'freedrive':
            self._set_freedrive(False)
        if source is Phase.RESET:
            self._goal = None
            self._mode = self.config.reset_mode  # a one-shot mode lasts one reset
        self._phase, self._entered = target, now
        self._rest_count, self._pending_ready = 0, False
        record = Transition(now, self._wall(), source, target, reason)
        self._transitions.append(record)
        self._on_enter(target, reason, now)
        if self._on_transition is not None:
            self._on_transition(record)

    def _on_enter(self, target, reason, now):
        if target is Phase.RESET:
            self._start_reset(now)
        elif target is Phase.READY:
            self._record_reset(now)
        self.instructions = self._instructions(target, reason)
        line = f'{target.name} ({reason}). {self.instructions}'.strip()
        if target in (Phase.HOLD, Phase.ESTOP):
            self._log.warning(line)
        else:
            self._log.info(line)

    def _start_reset(self, now):
        self._activity = now
        self._reset_used = self._mode
        if self._mode == 'auto':
            self._goal = np.asarray(self._start_pose(), dtype=np.float64).copy()
            if self._goal.shape != (self._n,) or not np.all(np.isfinite(self._goal)):
                raise LifecycleError(f'start_pose() gave {self._goal}, expected {self._n} '
                                     'finite joint angles')
        elif self._mode == 'teleop':
            self.mapper.rearm()
            # Said at once, not at the next tick: an operator (or a test) reading '' here
            # would take the previous reset's armed stick for this one's.
            self._teleop_reason = self.mapper.velocity_at(now)[1]
        else:
            self._set_freedrive(True)

    def _set_freedrive(self, on):
        if self._freedrive is not None:
            self._freedrive(on)

    def _record_reset(self, now):
        start, wall = self._reset_start
        stop_end = self._stop_end if self._stop_end is not None else start
        self._resets.append(ResetRecord(
            mode=self._reset_used or 'none', reason=self._stop_reason,
            stop_seconds=stop_end - start,
            seconds=now - start, wall_seconds=self._wall() - wall, held=self._held))
        self._reset_start = None

    def _instructions(self, target, reason):
        """What the operator should do now, in words for the log line and the display."""
        confirm = f'call {SERVICES["confirm"]}'
        if self.mapper is not None:
            mapping = self.mapper.mapping
            confirm = f'press {mapping.label(mapping.confirm)} or {confirm}'
        if target is Phase.ESTOP:
            return f'When the area is safe, call {SERVICES["release"]}.'
        if target is Phase.HOLD and self._paused:
            return f'Arm held. Call {SERVICES["resume"]} to reset and go on.'
        if target is Phase.HOLD:
            return (f'Arm held. To accept the current pose {confirm}; to reset again call '
                    f'{SERVICES["reset"]}.')
        if target is Phase.RESET and self._mode == 'teleop':
            mapping = self.mapper.mapping
            return (f'Hold {mapping.label(mapping.deadman)} and move the stick to jog; '
                    f'when done {confirm}.')
        if target is Phase.RESET and self._mode == 'freedrive':
            return f'Move the arm by hand; when done {confirm}.'
        return ''
