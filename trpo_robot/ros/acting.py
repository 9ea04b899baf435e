"""The actor's episode loop and its policy inbox, without rclpy.

actor_node wires these to topics; tests drive them over an in-process twin. Two threads
meet here and share exactly one reference: the subscription thread decodes, validates and
builds each received policy and leaves it in ``PolicyInbox``; the control thread picks the
newest one up at an episode boundary (or before a tick) by reading that reference. Nothing
the control thread waits for is ever slower than an attribute read.
"""
from collections import Counter, deque
from dataclasses import dataclass, field
import math
import queue
import threading
import time

import numpy as np

from trpo_robot import auth
from trpo_robot.robot.backend import BackendFault
from trpo_robot.robot.lifecycle import LifecycleError, Phase
from trpo_robot.ros.params import SWAP_AT
from trpo_robot.trpo import wire
from trpo_robot.trpo.episode import Episode, EpisodeRecorder


TELEPORT_ATTEMPTS = 3
"""Auto resets in a row whose teleport failed before the actor drives every reset: one
failure can be a request lost in DDS discovery at start-up (the driven reset then costs
~2 s of robot time, not every reset of the run)."""
UNRECORDED_LIMIT = 1000
"""Episodes kept in memory while the disk refuses them (about 20 MB at 100 UR steps)."""


class TeleportUnavailable(RuntimeError):
    """A backend's reset_state cannot be served (no twin on the topic, or it did not move);
    the actor then resets by driving the arm."""


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy ready to act: numpy weights, its frozen normalizer, and when it arrived."""

    snapshot: object
    norm: object
    version: int
    received: float
    """time.monotonic() when the blob entered the subscription callback."""
    built: float
    """time.monotonic() when it was decoded, validated and ready."""
    received_graph: float = 0.0
    """The graph clock (sim time under use_sim_time) at arrival: learner liveness."""
    batch_steps: int = 0
    """The learner's batch (0: not said): how long a synchronous actor acts on it."""
    epoch: int = 0
    """When its learner started (wire.encode_policy): policies are ordered by (epoch,
    version)."""

    def act(self, raw_obs, rng):
        obs = self.norm(raw_obs)
        act, logp = self.snapshot.sample(obs, rng)
        return obs, act, logp


class PolicyInbox:
    """Validated policies from the learner, newest first; counters for every blob.

    Only blobs signed with the fleet key are decoded at all, and only a policy newer than
    the newest accepted one is taken: newer is a later learner start (epoch), then a higher
    version, so a restarted learner (fresh, or --resume continuing its versions) is followed
    and a recorded old blob played back on the topic is not."""

    def __init__(self, obs_dim, act_dim, *, keyring: auth.Keyring, robot='', task='',
                 max_bytes=wire.MAX_BLOB_BYTES, log=None):
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.keyring = keyring
        self.robot, self.task = robot, task
        self.max_bytes = int(max_bytes)
        self._latest = None
        self.received = self.accepted = self.rejected = self.repeats = 0
        self.unauthenticated = self.replays = self.untrusted = 0
        """Parts of ``rejected``: bad or missing signature; an older signed policy; a
        version the hardware trust check refused."""
        self.trust = None
        """A validation.trust.TrustCheck on hardware: each new version is judged against the
        running one before it may act (None on the twin)."""
        self.reasons = Counter()
        self.last_reject = ''
        self._log = log or (lambda text: None)

    def latest(self):
        return self._latest

    def offer(self, blob, graph_time=0.0) -> str:
        """Check, decode, validate and build one blob (subscription thread); 'accepted' or
        why not."""
        received = time.monotonic()
        self.received += 1
        signed = True
        try:
            if len(blob) > self.max_bytes:
                raise wire.WireError(f'blob of {len(blob)} bytes exceeds the cap of '
                                     f'{self.max_bytes}')
            try:
                blob = self.keyring.open(blob, auth.POLICY)
            except auth.AuthError as e:
                signed = False
                raise wire.WireError(f'not from the learner: {e}') from None
            snapshot, norm, info = wire.decode_policy(blob, self.obs_dim, self.act_dim,
                                                      max_bytes=self.max_bytes)
            for key, want in (('robot', self.robot), ('task', self.task)):
                if want and info[key] and info[key] != want:
                    raise wire.WireError(f'policy for {key} {info[key]!r}, this actor runs '
                                         f'{want!r}')
            probe = snapshot.mean(norm(np.zeros(self.obs_dim)))
            if not np.all(np.isfinite(probe)) or not np.all(np.isfinite(snapshot.std)):
                raise wire.WireError('policy gives non-finite actions')
        except wire.WireError as e:
            self._refused(str(e), () if signed else ('unauthenticated',))
            self._log(f'rejected a policy blob: {e} [{self.rejected} rejected so far]')
            return f'rejected: {e}'
        current = self._latest
        version, epoch = info['policy_version'], info['epoch']
        if current is not None and (epoch, version) <= (current.epoch, current.version):
            if (epoch, version) == (current.epoch, current.version):
                self.repeats += 1
                return 'repeat'
            return self._replay(current, epoch, version)
        refusal = self.trust.reason_to_refuse(current, snapshot, norm, info) \
            if self.trust is not None else None
        if refusal:
            return self._untrusted(version, refusal)
        if current is not None and epoch != current.epoch:
            self._log(f'a new learner (started {_stamp(epoch)}): taking its version '
                      f'{version} after version {current.version}')
        self._latest = LoadedPolicy(snapshot, norm, version, received, time.monotonic(),
                                    graph_time, info['batch_steps'], epoch)
        self.accepted += 1
        return 'accepted'

    def _refused(self, reason, kinds=()):
        """The reason is kept before any count rises: a report read from another thread
        that shows the count then also says why."""
        self.last_reject = reason[:120]
        self.reasons[self.last_reject] += 1
        for kind in kinds:
            setattr(self, kind, getattr(self, kind) + 1)
        self.rejected += 1

    def _untrusted(self, version, refusal):
        self._refused(f'untrusted: {refusal}', ('untrusted',))
        self._log(f'refused policy version {version} on hardware: {refusal} '
                  f'[{self.untrusted} refused so far]')
        return f'untrusted: {refusal}'

    def _replay(self, current, epoch, version):
        older = 'a learner started earlier' if epoch < current.epoch else 'this learner'
        reason = (f'replayed policy: version {version} of {older}, after version '
                  f'{current.version}')
        self._refused(reason, ('replays',))
        self._log(f'refused a {reason} [{self.replays} replays so far]')
        return f'replay: {reason}'


def _stamp(epoch_ns):
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(epoch_ns / 1e9))


@dataclass
class ActorStats:
    episodes: int = 0
    segments: int = 0
    steps: int = 0
    aborted: int = 0
    swaps: int = 0
    teleport_fallbacks: int = 0
    publish_failures: int = 0
    stored: int = 0
    store_failures: int = 0
    teleports: int = 0
    held_for_updates: int = 0
    held_seconds: float = 0.0
    """Synchronous runs: robot (graph) time the arm stood at rest waiting for the learner;
    each episode's extra says the part before it (held_seconds), as reset_seconds."""
    last_return: float = float('nan')
    last_distance: float = float('nan')
    returns: list = field(default_factory=list)
    interventions: Counter = field(default_factory=Counter)
    intervention_steps: int = 0
    abort_causes: Counter = field(default_factory=Counter)
    """Aborted episodes by cause (arm_not_following, backend_fault, stopped, lifecycle)."""
    last_fault: str = ''
    phase: str = 'starting'


class Outbox:
    """Encodes and signs each episode, writes it to the store, then publishes it: the
    actor's whole hand-over, given the signing key, the store and the publish callable.

    Encoding and signing cost the control thread nothing this way, and writing is durable
    (fsync), which takes about a millisecond and sometimes several: more than a driver
    period on a fast twin, and the arm must be commanded every period while the lifecycle
    brakes it. So a node ``start``s it: a thread of its own and a FIFO keep
    the order (write before send, sequence by sequence), and ``close`` drains what is
    queued, so a clean shutdown records everything. An episode still queued when the
    process is killed is neither on disk nor sent: it shows as a gap in the stored
    sequence (counted as lost). Not started (the bare loop's tests), ``put`` does the work
    at once, in the caller's thread.
    """

    def __init__(self, keyring: auth.Keyring, publish, *, store=None, actor_id='',
                 stats: ActorStats, log):
        """``stats``: the actor's, where stored, store_failures and publish_failures are
        counted (once started, the outbox thread is their only writer)."""
        self.keyring, self.publish, self.store = keyring, publish, store
        self.actor_id, self.stats, self._log = actor_id, stats, log
        self._unrecorded = deque(maxlen=UNRECORDED_LIMIT)
        """(signed blob, sequence) the store has not taken yet (_record_waiting)."""
        self._queue = None
        self._thread = None

    def start(self):
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='episode-outbox', daemon=True)
        self._thread.start()

    def put(self, episode: Episode):
        if self._queue is None:
            self.send(episode)
        else:
            self._queue.put(episode)

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _run(self):
        while True:
            episode = self._queue.get()
            if episode is None:
                return
            self.send(episode)

    def close(self, timeout=10.0):
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def send(self, episode: Episode):
        """Encode and sign one episode, write it to the store (if any), then publish it."""
        blob = wire.encode_episode(episode, keyring=self.keyring)
        if self.store is not None:
            self._unrecorded.append((blob, episode.sequence))
            self._record_waiting()
        try:
            self.publish(blob)
        except Exception as e:  # noqa: BLE001 - a transport hiccup must not stop the arm loop
            self.stats.publish_failures += 1
            self._log(f'could not publish an episode: {e!r}')

    def _record_waiting(self):
        """Write the episodes not yet on disk, oldest first. One the disk refused (full,
        failing) stays waiting and is tried again with the next episode, so a disk that
        fills and empties loses no record; beyond UNRECORDED_LIMIT the oldest are given
        up (they were still published)."""
        while self._unrecorded:
            blob, sequence = self._unrecorded[0]
            try:
                self.store.write(blob, actor=self.actor_id, sequence=sequence)
            except Exception as e:  # noqa: BLE001 - a full disk must not stop the arm loop
                self.stats.store_failures += 1
                self._log(f'could not record episode {sequence} ({len(self._unrecorded)} '
                          f'waiting): {e!r}')
                return
            self._unrecorded.popleft()
            self.stats.stored += 1


@dataclass(frozen=True)
class SwapEvent:
    """One policy swap, for diagnostics and the hot-swap benchmark (monotonic seconds)."""

    version: int
    previous: int
    received: float
    built: float
    swapped: float
    first_action: float
    step_in_episode: int
    missed_ticks: int


class TwinHoldRelease:
    """On a twin nobody stands by the arm, so the actor is the operator a hold waits for: it
    ends each hold with a reset, up to ``limit`` holds a run, whichever entry point started
    the graph (`ros2 launch` has no `trpo-robot learn` to do it). A host's hiccup is enough
    to hold a twin: at 4x, a guard held 92 ms at start-up is 368 ms of the twin's time on
    the last command. Each fault still aborted its episode, stopped the arm and is logged;
    past the limit the arm stays held for a person to see what keeps failing. Never on a
    real arm: only an actor that heard the twin's conditions releases, and a paused or
    e-stopped arm is the operator's."""

    SETTLE_S = 1.0
    """Seconds a hold lasts before the reset, as an operator would look first: a cause
    still there (a guard not yet relaying again) holds a reset's first motion at once, and
    without the wait a run's releases were spent in half a second (three, 170 ms apart)."""

    def __init__(self, limit: int, log, clock=time.monotonic):
        self.limit = limit
        self._log, self._clock = log, clock
        self._ended = 0
        """The lifecycle's hold count when this last acted on a hold."""
        self._seen = (0, 0.0)
        """(hold count, clock time) when the current hold was first seen."""

    def step(self, lc, on_twin: bool):
        """Called every lifecycle tick: a reset for a new hold within the limit, once it
        has lasted SETTLE_S; a hold past the limit is named on the tick it is seen."""
        holds = lc.holds
        if not on_twin or lc.phase is not Phase.HOLD or lc.paused or holds <= self._ended:
            return
        if holds > self.limit:  # nothing to settle for: said at once, as learn says it
            self._ended = holds
            self._log(f'twin: hold {holds} is past the {self.limit} a run the actor ends '
                      'itself: the arm waits for the operator')
            return
        if self._seen[0] != holds:
            self._seen = (holds, self._clock())
        if self._clock() - self._seen[1] < self.SETTLE_S:
            return
        self._ended = holds
        ok, message = lc.request_reset()
        self._log(f'twin: the actor ends hold {holds} of {self.limit} a run: {message}'
                  if ok else f'twin: hold {holds} not ended: {message}')


class Actor:
    """Runs episodes on an ArmEnv with the newest policy and hands each one over as a blob.

    swap_at='episode': a new policy is taken between episodes, so every episode is acted by
    one version. swap_at='tick': before any agent step; the episode is cut at the swap into
    segments, each carrying its own version, so the learner's importance ratios stay right.

    synchronous=True is the baseline asynchrony is measured against (SenseAct's way): after
    a learner batch of steps on one version, the arm waits at rest, READY, until the learner
    has updated and the next version has arrived. A wait longer than ``hold_timeout`` (graph
    seconds) gives up and acts on, saying so, so a learner that dropped an episode (or
    died) never parks the arm for good.
    """

    def __init__(self, env, inbox: PolicyInbox, publish, *, robot, task, actor_id, seed=0,
                 swap_at='episode', on_swap=None, log=None, store=None, lifecycle=None,
                 teleport=False, synchronous=False, hold_timeout=300.0, hold_release=None):
        if swap_at not in SWAP_AT:
            raise ValueError(f"swap_at must be 'episode' or 'tick', got {swap_at!r}")
        self.env, self.inbox = env, inbox
        self.keyring = inbox.keyring
        """Signs every episode with the key its inbox checks policies against."""
        self.robot, self.task, self.actor_id = robot, task, actor_id
        self.swap_at = swap_at
        self.on_swap = on_swap or (lambda event: None)
        self._log = log or (lambda text: None)
        self.rng = np.random.default_rng(seed)
        self._seed = seed
        self.policy = None
        self._warm = False
        self.store = store
        """An EpisodeStore: every segment is written there before it is published, and a
        restarted actor continues the sequence of its stored episodes."""
        self.sequence = store.next_sequence(actor_id) if store is not None else 0
        self.lifecycle = lifecycle
        """An EpisodeLifecycle: it owns the arm between episodes (stop, reset, READY) and
        can cut an episode (e-stop, pause). None (the bare loop of the tests): env.reset()
        teleports the twin, or drives the arm by a lifecycle auto reset of its own
        (lifecycle.auto_reset), so an arm is driven to its start one way only."""
        self.teleport = teleport
        """An auto reset teleports the twin to the lifecycle's goal instead of driving."""
        self._teleported = None
        self._teleport_failures = 0
        self.synchronous, self.hold_timeout = synchronous, hold_timeout
        self._steps_on_policy = 0
        self._held_since = None
        """Graph time when the current hold began; None while not holding."""
        self._held_before_episode = 0.0
        self.twin_heard = None
        """What the twin said it drew (its latched ~/conditions, set by the node); None
        on a real arm, which says nothing of the kind."""
        self._twin = None
        """The conditions of the episode being acted, for its extra as twin."""
        self.hold_release = hold_release
        """A TwinHoldRelease, or None: every hold waits for the operator."""
        self.stats = ActorStats()
        self.outbox = Outbox(self.keyring, publish, store=store, actor_id=actor_id,
                             stats=self.stats, log=self._log)
        """Signs, records and publishes each episode; a node starts its thread."""
        self._segment_interventions = 0
        """Steps of the segment being acted whose command the shield changed: its extra
        carries them, so the learner can tell how often the shield stepped in per batch."""
        self.backend = env.unwrapped.backend if hasattr(env, 'unwrapped') else env.backend
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, idle=None):
        """Episodes until ``stop``; waits (calling ``idle``) while there is no policy."""
        while not stop.is_set():
            if self.lifecycle is not None:
                self._cycle(stop, idle)
                continue
            if self.inbox.latest() is None or self._holding():
                self.stats.phase = 'waiting for a policy'
                if idle:
                    idle()
                stop.wait(0.05)
                continue
            try:
                self.episode(stop)
            except BackendFault as fault:
                self._after_fault(f'aborted: {fault}', f'episode aborted: {fault}', stop, idle)

    def _cycle(self, stop, idle):
        """One step of the lifecycle loop: an episode when READY with a policy, else one
        driver period of the lifecycle's own (shielded) command."""
        lc = self.lifecycle
        if lc.phase is Phase.READY and not lc.paused and self.inbox.latest() is not None \
                and not self._holding():
            try:
                lc.start_episode()
            except LifecycleError:
                pass  # an e-stop or pause got in between: tick instead
            else:
                try:
                    self.episode(stop)
                except BackendFault as fault:
                    self._fault(fault, stop, idle)
                return
        try:
            self.stats.phase = lc.phase.value if self._held_since is None else \
                'holding for the learner (synchronous)'
            if self.hold_release is not None:
                self.hold_release.step(lc, on_twin=self.twin_heard is not None)
            self._maybe_teleport(lc)
            command = lc.tick(self.backend.read())
            if command is not None:
                self.backend.send_velocity(command)
            self.backend.advance_untimed()
        except BackendFault as fault:
            self._fault(fault, stop, idle)

    def _holding(self) -> bool:
        """Synchronous runs: True while the arm must wait for the learner's next version."""
        if not self.synchronous or self.policy is None:
            return False
        batch = self.policy.batch_steps
        due = batch > 0 and self._steps_on_policy >= batch
        if not due or self.inbox.latest() is not self.policy:
            self._end_hold()
            return False
        now = self.backend.now()
        if self._held_since is None:
            self._held_since = now
            self.stats.held_for_updates += 1
        elif now - self._held_since > self.hold_timeout:
            self._log(f'synchronous: no policy after version {self.policy.version} within '
                      f'{self.hold_timeout:g} s; acting another batch on it')
            self._steps_on_policy = 0
            self._end_hold()
            return False
        return True

    def _end_hold(self):
        if self._held_since is not None:
            held = self.backend.now() - self._held_since
            self.stats.held_seconds += held
            self._held_before_episode += held
            self._held_since = None

    def _fault(self, fault, stop, idle):
        """The fault's text is set before the lifecycle holds: a report that shows the
        hold (or its count) then also says why."""
        message = f'backend fault: {fault}; arm held: ~/reset to go on'
        self.stats.last_fault = message
        lc = self.lifecycle
        lc.fault(str(fault))
        if lc.last_episode is not None:
            lc.end_episode()
        self._after_fault(f'fault: {fault}', message, stop, idle)

    def _after_fault(self, phase, message, stop, idle):
        """After a backend fault: count it, say so, stop the arm, pause before going on."""
        self.stats.aborted += 1
        self.stats.phase = phase
        self.stats.last_fault = message
        self._log(message)
        self._safe_stop()
        if idle:
            idle()
        stop.wait(0.1)

    def _maybe_teleport(self, lc):
        """Twin: place the arm at an auto reset's goal at once; the lifecycle then finds it
        there and at rest, and goes READY as after a driven reset."""
        if not self.teleport or lc.phase is not Phase.RESET or lc.reset_mode != 'auto':
            return
        goal = lc.goal
        if goal is None or (self._teleported is not None and
                            np.array_equal(goal, self._teleported)):
            return
        self._teleported = goal
        try:
            self.backend.reset_state(goal)
            self.stats.teleports += 1
            self._teleport_failures = 0
        except TeleportUnavailable as e:
            self.stats.teleport_fallbacks += 1
            self._teleport_failures += 1
            if self._teleport_failures < TELEPORT_ATTEMPTS:
                self._log(f'{e}: this reset drives the arm, the next one teleports again')
                return
            self.teleport = False
            self._log(f'{e} ({TELEPORT_ATTEMPTS} resets in a row): auto resets drive the '
                      'arm from now on')

    def episode(self, stop: threading.Event):
        """Reset, act one episode, publish it. A stop request or a backend fault ends it
        early: what was acted is recorded and sent marked aborted (never learned from)."""
        env = self.env.unwrapped if hasattr(self.env, 'unwrapped') else self.env
        if not self._warm:
            self._warm_up(env)
        pending_event = self._swap(step_in_episode=0)
        self.stats.phase = 'resetting'
        if self.lifecycle is not None:  # the lifecycle has put the arm at its start pose
            seed, self._seed = self._seed, None
            raw, info = env.reset(seed=seed, options={'in_place': True})
        else:
            raw, info = self._reset(env)
        # An in-process twin says what it drew for this episode; in the graph, the twin's.
        self._twin = info.get('twin', self.twin_heard)
        self.backend.resync()
        self.stats.phase = 'acting'
        recorder = EpisodeRecorder()
        policy, ret, info = self.policy, 0.0, {}
        terminated = False
        try:
            raw, terminated, info, ret, policy = self._act(
                env, stop, recorder, raw, policy, pending_event)
        except BackendFault as fault:
            self._abort(recorder, raw, self.policy, info,
                        getattr(fault, 'cause', 'backend_fault'))
            raise
        if stop.is_set():
            self._safe_stop()
            self._abort(recorder, raw, self.policy, info, 'stopped')
            return
        lc = self.lifecycle
        if lc is not None:
            record = lc.end_episode('time limit' if not terminated else 'terminated') \
                if lc.acting else lc.end_episode()
            if record.aborted:  # e-stop or fault: recorded, never learned from
                self._abort(recorder, raw, self.policy, info, 'lifecycle')
                return
        segment = recorder.cut(policy.norm(raw), terminated, policy.version)
        self._emit(segment, partial=False, info=info, episode_return=ret)
        self.stats.episodes += 1
        self.stats.last_return = ret
        self.stats.returns = (self.stats.returns + [ret])[-100:]
        self.stats.last_distance = float(info.get('distance', math.nan))

    def _act(self, env, stop, recorder, raw, policy, pending_event):
        """The agent steps of one episode, until its end or a stop request."""
        ret, info, terminated = 0.0, {}, False
        lc = self.lifecycle
        for step in range(env.task.episode_steps):
            if stop.is_set() or (lc is not None and not lc.acting):
                break
            if self.swap_at == 'tick' and self.inbox.latest() is not policy:
                if len(recorder):
                    self._emit(recorder.cut(policy.norm(raw), False, policy.version),
                               partial=True, info=info)
                pending_event = self._swap(step_in_episode=step)
                policy = self.policy
            obs, act, logp = policy.act(raw, self.rng)
            overruns = self.backend.overruns
            next_raw, reward, terminated, truncated, info = env.step(
                np.clip(act, self._low, self._high))
            if pending_event is not None:
                self._report_swap(pending_event, overruns)
                pending_event = None
            recorder.add(obs, raw, act, reward, logp)
            if self.inbox.trust is not None:
                self.inbox.trust.window.add(raw)
            ret += reward
            self._count(info)
            raw = next_raw
            if terminated or truncated:
                break
        return raw, terminated, info, ret, policy

    def _abort(self, recorder, raw, policy, info, cause):
        """Record and send what an interrupted episode acted, marked aborted with its
        cause (in the episode's extra as abort_reason)."""
        self.stats.abort_causes[cause] += 1
        if len(recorder):
            self._emit(recorder.cut(policy.norm(raw), False, policy.version), partial=False,
                       info=info, aborted=True, abort_reason=cause)

    # -- pieces --------------------------------------------------------------------------

    def _warm_up(self, env):
        """Run the per-step code once before the first episode: first calls into numpy
        paths cost milliseconds, and a millisecond is a driver period at high real-time
        factors. The shield is reset by env.reset() right after."""
        self._warm = True
        state = self.backend.read()
        env.shield.filter(state, np.zeros(len(state.position)))
        self.inbox.latest().act(np.zeros(env.observation_space.shape), np.random.default_rng())

    def _reset(self, env):
        seed, self._seed = self._seed, None  # seed the first episode only
        try:
            return env.reset(seed=seed)
        except TeleportUnavailable as e:
            self.stats.teleport_fallbacks += 1
            self._log(f'{e}: resetting by driving the arm from now on')
            env.drive_resets = True
            return env.reset()

    def _swap(self, step_in_episode):
        """Take the newest policy if there is one: a single reference read and write."""
        new = self.inbox.latest()
        if new is None or new is self.policy:
            return None
        previous = self.policy.version if self.policy is not None else -1
        self.policy = new
        self._steps_on_policy = 0
        self.stats.swaps += 1
        return new, previous, time.monotonic(), step_in_episode

    def _report_swap(self, event, overruns_before):
        new, previous, swapped, step = event
        missed = self.backend.overruns - overruns_before
        sent = self.backend.last_send_wall
        first = swapped if sent is None else sent  # None: the backend does not know
        self.on_swap(SwapEvent(new.version, previous, new.received, new.built, swapped, first,
                               step, missed))

    def _emit(self, segment, *, partial, info, episode_return=None, aborted=False,
              abort_reason=''):
        """Write one segment to the store, then publish it. The last (or only) segment of
        an episode carries the episode's outcome; earlier ones, cut at a tick swap, say
        partial. Written first, so a learner that dies before it learns from the segment
        finds it on disk when it resumes. ``end_stamp`` is the driver time at its end: a
        fleet's episodes from several arms fall in one order by it (bench/fleet.py)."""
        extra = {'final_distance': float(info.get('distance', math.nan)),
                 'success': bool(info.get('is_success', False)), 'partial': partial,
                 'reset_seconds': self._reset_seconds(),
                 'end_stamp': float(self.backend.now()),
                 'held_seconds': self._held_before_episode,
                 'intervention_steps': self._segment_interventions}
        self._held_before_episode = 0.0
        self._segment_interventions = 0
        if abort_reason:
            extra['abort_reason'] = abort_reason
        if episode_return is not None:
            extra['episode_return'] = float(episode_return)
        if self._twin is not None:
            extra['twin'] = self._twin
        if not math.isfinite(extra['final_distance']):
            extra['final_distance'] = -1.0
        episode = Episode.of(segment, robot=self.robot, task=self.task,
                             actor=self.actor_id, sequence=self.sequence, aborted=aborted,
                             extra=extra)
        self.sequence += 1
        self.stats.segments += 1
        self.stats.steps += len(segment)
        if not aborted:
            self._steps_on_policy += len(segment)
        self.outbox.put(episode)

    def _reset_seconds(self):
        """Robot time of the reset before this episode, apart from the agent's time."""
        lc = self.lifecycle
        if lc is not None:
            resets = lc.resets
            return float(resets[-1].seconds) if resets else 0.0
        return float(getattr(self.env.unwrapped, 'reset_seconds', 0.0))

    def _count(self, info):
        names = info.get('intervention_names', ())
        if names:
            self.stats.intervention_steps += 1
            self._segment_interventions += 1
            self.stats.interventions.update(names)

    def _safe_stop(self):
        try:
            self.backend.stop()
        except Exception as e:  # noqa: BLE001 - best effort; the driver timeout backs it up
            self._log(f'stop command failed: {e!r}')
