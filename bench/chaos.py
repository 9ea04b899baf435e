"""Chaos soak: the whole graph learning at 8x while faults are thrown at it, then an audit.

Runs twin_node, guard_node, actor_node and learner_node (the `trpo-robot learn` graph) and,
at random times, one fault at a time (a deck of every class, shuffled, dealt again when
empty, so each class comes up as often as the others):

  kill_twin, kill_guard, kill_actor, kill_learner   SIGKILL, then a restart after 0.5-3 s
                                                    as a supervisor would (the learner
                                                    resumes from its checkpoint, the twin
                                                    continues the graph's clock)
  drop_episode, corrupt_episode                     the episode topic passes through this
  drop_policy, corrupt_policy, replay_policy        process (the network): a blob is lost,
                                                    bytes flipped, or an old signed policy
                                                    sent again
  stall_states                                      the twin frozen (SIGSTOP) 0.3-3 s: no
                                                    joint_states, no clock
  bad_commands                                      NaN, inf, huge, short and misnamed
                                                    commands on the guard's input
  bad_joy                                           Joy with NaN, huge and missing axes
  disk_full                                         (once; root) the run's folder, a tmpfs
                                                    with a quota, filled for 5-15 s

After a fault the actor holds the arm for a person (HOLD, or ESTOP after a Joy e-stop);
this soak's operator sends it on after OPERATOR_DELAY (~/estop_release, ~/resume,
~/reset), as the person at the cell would. Then it checks invariants from records it
keeps itself, not from what the nodes say:
  - the twin's command log (every driver period: the command applied, positions and
    velocities): no command outside the actor shield's velocity limits, no joint beyond
    the task's joint range;
  - after every actor or guard death the arm was at rest (every joint below REST rad/s,
    command zero) within the guard timeout plus allowances, in driver time;
  - the episode store, the learner's ledger.csv and the checkpoints: every recorded
    episode accounted for once (learned, or dropped as aborted/stale with a counter) in
    the lineage of the final weights, none learned twice;
  - learning continued: a new policy version after every fault.

Prints `faults=F survived=S lost=L learned_twice=T unsafe_commands=U ...`, one line per
fault class, and exits 0 only if every invariant holds.

    python bench/chaos.py --minutes 30 [--rtf 8] [--seed 0] [--gap 20] [--out DIR]
    python bench/chaos.py --quick   # 2.25 min at 2x: a few cheap faults, the quiet end

Appends a JSON line to bench/results/chaos.jsonl.
"""
import argparse
from collections import Counter, defaultdict
import csv
import json
import math
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench` as a script too

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import JointState, Joy  # noqa: E402
from std_msgs.msg import String, UInt8MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from bench import record  # noqa: E402
from trpo_robot.robot.env import default_shield_config, task_spec  # noqa: E402
from trpo_robot.robot.shield import SafetyShield  # noqa: E402
from trpo_robot.robot.spec import RobotSpec  # noqa: E402
from trpo_robot.paths import urdf_path  # noqa: E402
from trpo_robot.ros import graph as G  # noqa: E402
from trpo_robot.ros import learn  # noqa: E402
from trpo_robot.ros import node_utils as U  # noqa: E402
from trpo_robot.ros.backend import guard_slack  # noqa: E402
from trpo_robot.ros.twin_node import read_command_log  # noqa: E402
from trpo_robot.store import _actor_dir as actor_dir, EpisodeStore  # noqa: E402
from trpo_robot.trpo import checkpoint as ck  # noqa: E402

KILLS = ('kill_twin', 'kill_guard', 'kill_actor', 'kill_learner')
NETWORK = ('drop_episode', 'corrupt_episode', 'drop_policy', 'corrupt_policy',
           'replay_policy')
INPUTS = ('stall_states', 'bad_commands', 'bad_joy')
FAULTS = KILLS + NETWORK + INPUTS + ('disk_full',)
REST = 0.01
"""rad/s: every joint below this is at rest (the twin's velocity noise is far below)."""
REST_ALLOWANCE = 0.5
"""s of driver time, beyond the guard timeout, for the zero to travel and the arm to brake
(0.12-0.15 s measured by bench/guard_stop.py at real time)."""
RECOVERY = 240.0
"""Wall s after a fault within which a new policy version must come (an update on a busy
machine takes seconds; a learner restart replays the store first)."""
QUIET = 120.0
"""Wall s without faults at the end, so the last fault's recovery can be seen."""
OPERATOR_DELAY = 2.0
"""Wall s the arm sits in HOLD or ESTOP before this soak's operator sends it on (after a
fault the actor holds the arm for a person, as it should)."""
DISK_MB = 64
DIAG_KEYS = {'/learner_node': 'learner', '/actor_node': 'actor', '/command_guard': 'guard',
             '/twin_node': 'twin'}
"""The watched nodes' statuses on /diagnostics, by their names' prefix."""


# ---------------------------------------------------------------------------- the network

class Network:
    """This process's rclpy node: the relay the blobs pass through, the fault publishers,
    and the diagnostics it watches."""

    def __init__(self, domain, depth, joint_names, rng):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('chaos', context=self.context)
        self.rng, self.names = rng, list(joint_names)
        self.lock = threading.Lock()
        self.plan = Counter()   # faults waiting for their blob: drop_episode, ...
        self.done = Counter()   # faults that hit a blob
        self.policies = []      # the last few signed policy blobs, for a replay
        self.diag = {}
        self.versions = []      # (wall, version) whenever the learner's version changed
        n = self.node
        qos_ep = U.qos_episodes(depth)
        self.pub_episodes = n.create_publisher(UInt8MultiArray, '/chaos/episodes', qos_ep)
        self.pub_policy = n.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)
        n.create_subscription(UInt8MultiArray, '/actor_node/episodes', self._on_episode, qos_ep)
        n.create_subscription(UInt8MultiArray, '/chaos/policy_raw', self._on_policy,
                              U.QOS_POLICY)
        self.pub_command = n.create_publisher(JointState, '/command_guard/commands',
                                              U.QOS_COMMAND)
        self.pub_joy = n.create_publisher(Joy, '/joy', U.QOS_COMMAND)
        self.phase = ('starting', time.monotonic())
        n.create_subscription(String, '/actor_node/state', self._on_state, U.QOS_POLICY)
        self.services = {name: n.create_client(Trigger, f'/actor_node/{name}')
                         for name in ('estop_release', 'resume', 'reset')}
        self.operator = Counter()
        n.create_subscription(DiagnosticArray, U.DIAGNOSTICS, self._on_diag, U.QOS_DIAG)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._closing.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutdown
                if self._closing.is_set():
                    return
                raise

    def _on_state(self, msg):
        with self.lock:
            if msg.data != self.phase[0]:
                self.phase = (msg.data, time.monotonic())

    def operate(self):
        """The operator: an arm held (HOLD) or e-stopped for OPERATOR_DELAY is sent on, as
        the person at the cell would after a look: release, resume, reset."""
        with self.lock:
            phase, since = self.phase
        if phase not in ('hold', 'estop') or time.monotonic() - since < OPERATOR_DELAY:
            return
        for name in ('estop_release', 'resume', 'reset'):
            if self.services[name].service_is_ready():
                self.services[name].call_async(Trigger.Request())
        self.operator[phase] += 1
        with self.lock:
            self.phase = (phase, time.monotonic())  # again only after another delay

    def _take(self, kind):
        with self.lock:
            if self.plan[kind] > 0:
                self.plan[kind] -= 1
                self.done[kind] += 1
                return True
            return False

    def _on_episode(self, msg):
        blob = bytes(msg.data)
        if self._take('drop_episode'):
            return
        if self._take('corrupt_episode'):
            blob = self._corrupt(blob)
        self.pub_episodes.publish(U.blob_msg(blob))

    def _on_policy(self, msg):
        blob = bytes(msg.data)
        with self.lock:
            self.policies = (self.policies + [blob])[-5:]
        if self._take('drop_policy'):
            return
        if self._take('corrupt_policy'):
            self.pub_policy.publish(U.blob_msg(self._corrupt(blob)))
            return
        self.pub_policy.publish(U.blob_msg(blob))

    def _corrupt(self, blob):
        data = bytearray(blob)
        if self.rng.random() < 0.3:
            return bytes(data[:self.rng.randrange(1, len(data))])
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(data))
            data[i] ^= 1 << self.rng.randrange(8)
        return bytes(data)

    def replay_policy(self) -> bool:
        """An old signed version sent again, then the newest, so the latched (transient
        local) policy a late actor gets stays the newest."""
        with self.lock:
            old = self.policies[:-1]
            newest = self.policies[-1] if self.policies else None
        if not old:
            return False
        self.pub_policy.publish(U.blob_msg(self.rng.choice(old)))
        self.pub_policy.publish(U.blob_msg(newest))
        with self.lock:
            self.done['replay_policy'] += 1
        return True

    def _on_diag(self, msg):
        """Every node shares /diagnostics: a status is filed under the node its name
        begins with."""
        values = U.diag_dict(msg)
        with self.lock:
            for name, v in values.items():
                node, _, part = name.partition(': ')
                key = DIAG_KEYS.get(node)
                if key is not None:
                    self.diag[(key, part)] = v
            progress = self.diag.get(('learner', 'progress'))
        if progress:
            version = int(progress.get('version', -1))
            if not self.versions or self.versions[-1][1] != version:
                self.versions.append((time.monotonic(), version))

    def get(self, key, status):
        with self.lock:
            return dict(self.diag.get((key, status)) or {})

    def bad_commands(self, stamp):
        bad = [[math.nan] * len(self.names), [math.inf] * len(self.names),
               [1e3] * len(self.names), [0.1], [-1e6] * len(self.names)]
        for values in bad:
            msg = JointState(name=self.names, velocity=values)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp * 1e9), 10**9)
            self.pub_command.publish(msg)
        wrong = JointState(name=list(reversed(self.names)), velocity=[0.5] * len(self.names))
        self.pub_command.publish(wrong)

    def bad_joy(self):
        for axes, buttons in (([math.nan] * 8, [1] * 12), ([1e9, -1e9, math.inf] * 3, [255]),
                              ([], []), ([0.5] * 64, [1] * 64)):
            self.pub_joy.publish(Joy(axes=axes, buttons=buttons))

    def close(self):
        self._closing.set()
        self.thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# ---------------------------------------------------------------------------- the graph

class Graph:
    """The four node processes, restartable one at a time."""

    def __init__(self, out, rtf, seed, realtime=True):
        self.out, self.realtime = out, realtime
        self.disk = out / 'disk'
        self.disk.mkdir(parents=True, exist_ok=True)
        self.quota = _mount_quota(self.disk)
        args = argparse.Namespace(robot='ur5', task=None, steps=10_000_000, out=str(self.disk),
                                  rtf=rtf, port=None, dxl_config=None, no_sim=False,
                                  config=None, learner_config=None, seed=seed,
                                  synchronous=False, resume=None, domain_id=None)
        self.rp, self.lp, _, (self.robot_yaml, self.learner_yaml) = learn.prepare(args)
        self.domain = G.free_domain_id()
        self.env = G.ros_env(self.domain)
        self.command_log = out / 'twin_commands.bin'
        self.logs = out / 'logs'
        self.starts = Counter()
        self.procs = {}
        for node in ('twin_node', 'guard_node', 'learner_node', 'actor_node'):
            self.start(node)

    def start(self, node):
        self.starts[node] += 1
        logs = self.logs / f'{node}.{self.starts[node]}'
        files, params = [self.robot_yaml], {}
        if node == 'twin_node':
            params = {'command_log': str(self.command_log), 'clock_start': self.clock()}
        elif node == 'learner_node':
            files.append(self.learner_yaml)
            # stop_when_done off: a soak must see learning go on after the success rate
            # is reached (a done learner freezes), or every later fault would look fatal.
            params = {'policy_topic': '/chaos/policy_raw', 'stop_when_done': False,
                      'episode_topics': ['/chaos/episodes'], 'log_dir': str(self.out)}
            if (Path(self.lp.checkpoint_dir) / 'meta.json').is_file():
                params['resume'] = self.lp.checkpoint_dir
        elif node == 'actor_node':
            params = {'use_sim_time': True}
        if not self.realtime:
            params['realtime'] = False
        self.procs[node] = G.NodeProcess(node, files, self.env, logs, params=params)

    def clock(self):
        """Sim time to start a twin at: past the last row its predecessor logged (a killed
        twin loses at most one block of rows, about one sim second)."""
        if not self.command_log.exists():
            return 0.0
        rows = read_command_log(self.command_log, 6)
        return float(rows[-1, 1]) + 2.0 if len(rows) else 0.0

    def kill(self, node):
        proc = self.procs[node]
        killed = time.monotonic()
        proc.proc.kill()
        proc.proc.wait(10)
        proc.stop()  # closes its log
        return killed

    def dead(self):
        return [n for n, p in self.procs.items() if not p.alive()]

    def stop(self):
        return G.stop_all([self.procs.get(n) for n in
                           ('actor_node', 'learner_node', 'guard_node', 'twin_node')],
                          timeout=60.0)

    def close(self):
        """Unmount the quota disk, keeping its contents (store, checkpoint) beside it."""
        if self.quota:
            shutil.copytree(self.disk, self.out / 'disk_kept', dirs_exist_ok=True)
            subprocess.run(['umount', '-l', str(self.disk)], check=False)


def _mount_quota(folder):
    """A tmpfs of DISK_MB on the run's folder (root only): the disk a fault can fill."""
    if os.geteuid() != 0:
        return False
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={DISK_MB}m', 'chaos',
                           str(folder)], capture_output=True)
    return done.returncode == 0


def fill_disk(folder):
    """Write until the disk refuses; the file to delete afterwards."""
    path = folder / 'filler.bin'
    block = b'\0' * (1 << 20)
    with open(path, 'wb') as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass
    return path


# ---------------------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args, results):
        self.args = args
        self.results = results
        self.rng = random.Random(args.seed)
        self.out = Path(args.out or tempfile.mkdtemp(prefix='chaos_'))
        self.graph = Graph(self.out, args.rtf, args.seed, not args.no_realtime)
        rp = self.graph.rp
        self.net = Network(self.graph.domain, rp.episode_queue_depth,
                           _joint_names(rp), self.rng)
        self.events = []
        self.crashes = []
        self.deck = []

    def deal(self):
        if not self.deck:
            self.deck = [f for f in self.args.faults
                         if f != 'disk_full' or self._disk_left()]
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def _disk_left(self):
        return self.graph.quota and not any(e['fault'] == 'disk_full' for e in self.events)

    def run(self):
        a = self.args
        print(f'chaos soak: {a.minutes:g} min, the UR5 twin at {a.rtf:g}x, faults every '
              f'~{a.gap:g} s, ROS_DOMAIN_ID {self.graph.domain} -> {self.out}', flush=True)
        self.wait_first_checkpoint()
        t0 = time.monotonic()  # the soak's minutes count from here
        end_faults = t0 + 60 * a.minutes - QUIET
        next_fault = time.monotonic() + self._gap()
        while time.monotonic() < max(t0 + 60 * a.minutes, end_faults + QUIET):
            time.sleep(0.2)
            self.supervise()
            self.net.operate()
            now = time.monotonic()
            if now >= next_fault and now < end_faults:
                self.inject(self.deal())
                next_fault = time.monotonic() + self._gap()
        codes = self.graph.stop()
        self.net.close()
        return codes

    def _gap(self):
        return max(3.0, self.rng.expovariate(1.0 / self.args.gap))

    def wait_first_checkpoint(self):
        meta = Path(self.graph.lp.checkpoint_dir) / 'meta.json'
        G.wait_for(lambda: (self.supervise() or True) and meta.is_file(), 600, 0.5,
                   'the first checkpoint')
        print(f'first checkpoint after {len(self.net.versions)} versions; faults start',
              flush=True)

    def supervise(self):
        """A process that died by itself is a crash (a defect): noted, then restarted."""
        for node in self.graph.dead():
            code = self.graph.procs[node].proc.returncode
            self.crashes.append(dict(t=time.monotonic(), node=node, code=code,
                                     log=str(self.graph.procs[node].log_path)))
            print(f'CRASH: {node} exited with {code} by itself '
                  f'({self.graph.procs[node].log_path})', flush=True)
            self.graph.procs[node].stop()
            self.graph.start(node)

    def inject(self, fault):
        event = dict(fault=fault, t=time.monotonic(),
                     version=self.net.versions[-1][1] if self.net.versions else -1)
        if fault in KILLS:
            node = fault.split('_', 1)[1] + '_node'
            event['t'] = self.graph.kill(node)
            time.sleep(self.rng.uniform(0.5, 3.0))
            event['restart'] = time.monotonic()
            self.graph.start(node)
        elif fault in ('drop_episode', 'corrupt_episode', 'drop_policy', 'corrupt_policy'):
            with self.net.lock:
                self.net.plan[fault] += 1
        elif fault == 'replay_policy':
            event['hit'] = self.net.replay_policy()
        elif fault == 'stall_states':
            twin = self.graph.procs['twin_node']
            seconds = self.rng.uniform(0.3, 3.0)
            twin.send(signal.SIGSTOP)
            time.sleep(seconds)
            twin.send(signal.SIGCONT)
            event['seconds'] = seconds
        elif fault == 'bad_commands':
            sim = self.net.get('twin', 'driver').get('sim_time', 0.0)
            self.net.bad_commands(float(sim) + 1e3)
        elif fault == 'bad_joy':
            self.net.bad_joy()
        elif fault == 'disk_full':
            path = fill_disk(self.graph.disk)
            seconds = self.rng.uniform(5.0, 15.0)
            time.sleep(seconds)
            path.unlink()
            event['seconds'] = seconds
        self.events.append(event)
        print(f'{time.monotonic() - self.events[0]["t"]:7.1f} s  {fault:16s} '
              f'v{event["version"]}', flush=True)


def _joint_names(rp):
    task = rp.task_spec()
    spec = RobotSpec.from_urdf(urdf_path(task.urdf), ee_link=task.ee_link)
    return spec.joint_names


# ---------------------------------------------------------------------------- the audit

def shield_limits(rp):
    task = rp.task_spec()
    spec = task_spec(RobotSpec.from_urdf(urdf_path(task.urdf), ee_link=task.ee_link), task)
    shield = SafetyShield(spec, default_shield_config(spec, task), task.agent_dt)
    return np.asarray(shield.velocity_limit), np.asarray(spec.lower), np.asarray(spec.upper)


def audit_commands(rows, rp):
    """Commands beyond the shield's velocity limits and joints beyond the task range."""
    vmax, lower, upper = shield_limits(rp)
    n = len(vmax)
    cmd, pos = rows[:, 2:2 + n], rows[:, 2 + n:2 + 2 * n]
    unsafe = ~np.isfinite(cmd).all(1) | (np.abs(cmd) > vmax * (1 + 1e-6) + 1e-9).any(1)
    outside = ((pos < lower - 0.02) | (pos > upper + 0.02)).any(1)
    return int(unsafe.sum()), int(outside.sum()), float(np.abs(cmd).max(initial=0.0))


def audit_rest(rows, events, rp):
    """For each actor or guard death: driver time from the kill until the arm was at rest
    (command zero, every joint below REST) and stayed so until the restart, or inf."""
    n = (rows.shape[1] - 2) // 3
    wall, sim = rows[:, 0], rows[:, 1]
    cmd, vel = rows[:, 2:2 + n], rows[:, 2 + 2 * n:]
    resting = (np.abs(cmd).max(1) == 0) & (np.abs(vel).max(1) < REST)
    guard = rp.effective_guard_timeout()
    # A dead actor: the guard's timeout. A dead guard: the actor notices its silence after
    # two guard timeouts plus the guard slack of wall time (sim time here: times the rtf).
    bounds = {'kill_actor': guard + REST_ALLOWANCE,
              'kill_guard': 2 * guard + guard_slack(rp.realtime) * rp.real_time_factor
              + REST_ALLOWANCE}
    results = []
    for e in events:
        if e['fault'] not in bounds:
            continue
        bound = bounds[e['fault']]
        i, k = np.searchsorted(wall, [e['t'], e['restart']])
        moving = np.flatnonzero(~resting[i:k])
        j = i + (moving[-1] + 1 if len(moving) else 0)
        seconds = float(sim[j] - sim[i]) if i < j < k else (0.0 if j == i < k else math.inf)
        results.append(dict(fault=e['fault'], seconds=seconds, ok=seconds <= bound,
                            travel=_travel(rows[i:min(j + 1, k)], n)))
    return results, bounds


def _travel(rows, n):
    """rad: the largest joint motion from the kill to rest (a later teleport by the
    operator's reset is no motion of the dead node's making)."""
    if not len(rows):
        return 0.0
    pos = rows[:, 2 + n:2 + 2 * n]
    return float(np.abs(pos - pos[0]).max())


def audit_episodes(out, episode_dir, checkpoint_dir):
    """Every recorded episode accounted for in the lineage of the final weights, once."""
    rows = list(csv.DictReader(open(out / 'ledger.csv')))
    lineage = []  # rows that count: those of dead learners' unsaved updates are dropped
    for r in rows:
        if r['event'] in ('fresh', 'resumed'):
            cut = int(r['version'])
            if r['event'] == 'fresh':
                lineage = []
            else:
                lineage = [x for x in lineage if x['event'] != 'learned'
                           or int(x['version']) <= cut]
            continue
        lineage.append(r)
    # The store names an actor by its folder ('actor_node'), the blobs by the node's
    # name ('/actor_node'): one key for both.
    learned = Counter((actor_dir(r['actor']), int(r['sequence'])) for r in lineage
                      if r['event'] == 'learned')
    accounted = {(actor_dir(r['actor']), int(r['sequence'])) for r in lineage
                 if r['event'] in ('learned', 'stale', 'aborted')}
    consumed = {actor_dir(a): s for a, s in
                ck.read_meta(checkpoint_dir).get('extra', {}).get('consumed', {}).items()}
    stored = [(a, s) for a, s, _ in EpisodeStore(episode_dir).episodes()]
    lost = [k for k in stored if k[1] <= consumed.get(k[0], -1) and k not in accounted
            and k not in learned]
    pending = [k for k in stored if k[1] > consumed.get(k[0], -1)]
    gaps = 0
    for actor in {a for a, _ in stored}:
        seqs = {s for a, s in stored if a == actor}
        gaps += max(seqs) + 1 - len(seqs)
    return dict(recorded=len(stored), learned=len(learned),
                learned_twice=sum(1 for c in learned.values() if c > 1),
                accounted=len(accounted), lost=len(lost), lost_ids=lost[:10],
                unconsumed=len(pending), sequence_gaps=gaps)


def audit_recovery(events, versions, end):
    """Faults after which the learner published a newer version within RECOVERY s."""
    out = []
    for e in events:
        later = [t for t, v in versions if t > e['t'] and v != e['version']]
        ok = bool(later) and later[0] - e['t'] <= RECOVERY
        out.append(ok or (not later and end - e['t'] < RECOVERY))
    return out


def report(soak, codes):
    g, out = soak.graph, soak.out
    (out / 'events.json').write_text(json.dumps(dict(events=soak.events, crashes=soak.crashes,
                                                     versions=soak.net.versions), indent=1))
    rows = read_command_log(g.command_log, 6)
    unsafe, outside, peak = audit_commands(rows, g.rp)
    rest, bound = audit_rest(rows, soak.events, g.rp)
    episodes = audit_episodes(out, g.rp.episode_dir, g.lp.checkpoint_dir)
    end = time.monotonic()
    recovered = audit_recovery(soak.events, soak.net.versions, end)
    rest_by_time = {id(e): r for e, r in zip(
        [e for e in soak.events if e['fault'] in ('kill_actor', 'kill_guard')], rest)}
    survived = 0
    by_class = defaultdict(lambda: [0, 0])
    for e, ok in zip(soak.events, recovered):
        r = rest_by_time.get(id(e))
        fine = ok and (r is None or r['ok'])
        survived += fine
        by_class[e['fault']][0] += 1
        by_class[e['fault']][1] += fine
    learner = soak.net.get('learner', 'progress')
    summary = dict(faults=len(soak.events), survived=survived, lost=episodes['lost'],
                   learned_twice=episodes['learned_twice'], unsafe_commands=unsafe,
                   outside_range=outside, crashes=len(soak.crashes),
                   rest_max_s=max((r['seconds'] for r in rest), default=0.0),
                   rest_bound_s=bound, peak_command=peak,
                   travel_max=max((r['travel'] for r in rest), default=0.0),
                   recorded=episodes['recorded'],
                   learned=episodes['learned'], unconsumed=episodes['unconsumed'],
                   sequence_gaps=episodes['sequence_gaps'],
                   versions=soak.net.versions[-1][1] if soak.net.versions else -1,
                   relay_hits=dict(soak.net.done), command_rows=len(rows),
                   operator=dict(soak.net.operator))
    line = ' '.join(f'{k}={_fmt(summary[k])}' for k in (
        'faults', 'survived', 'lost', 'learned_twice', 'unsafe_commands', 'outside_range',
        'crashes', 'rest_max_s', 'travel_max', 'versions', 'recorded', 'learned', 'sequence_gaps'))
    print(line)
    for fault in FAULTS:
        n, ok = by_class.get(fault, (0, 0))
        print(f'  {fault:16s} {n:3d} injected, {ok:3d} survived')
    print(f'  relay hits {dict(soak.net.done)}; operator sent the arm on '
          f'{dict(soak.net.operator)}; stop codes {codes}')
    print(f'  learner {learner}')
    print(f'  actor policy inbox {soak.net.get("actor", "policy")}')
    for r in rest:
        print(f'  {r["fault"]}: at rest {r["seconds"]:.3f} s of driver time after the kill '
              f'(bound {bound[r["fault"]]:.2f} s), travel {r["travel"]:.3f} rad'
              + ('' if r['ok'] else '  <-- TOO LATE'))
    if episodes['lost_ids']:
        print(f'  lost: {episodes["lost_ids"]}')
    for c in soak.crashes:
        print(f'  crash: {c}')
    ok = (summary['faults'] == survived and not episodes['lost'] and not unsafe
          and not episodes['learned_twice'] and not soak.crashes and not outside)
    soak.results.write(dict(bench='chaos', minutes=soak.args.minutes,
                            rtf=soak.args.rtf, seed=soak.args.seed, ok=ok,
                            by_class={k: v for k, v in by_class.items()}, **summary))
    return ok


def _fmt(value):
    return f'{value:.3f}' if isinstance(value, float) else str(value)


QUICK = {'minutes': 2.25, 'gap': 4.0, 'rtf': 2.0,
         'faults': 'kill_actor,drop_episode,bad_commands'}
"""15 s of faults (QUIET keeps the last 2 minutes free of them), cheap classes only, at
2x, where a loaded machine still keeps the graph's deadlines."""


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--minutes', type=float, default=30.0)
    p.add_argument('--rtf', type=float, default=8.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gap', type=float, default=20.0, help='mean wall s between faults')
    p.add_argument('--out', default=None)
    p.add_argument('--faults', default=','.join(FAULTS),
                   help='comma-separated fault classes (default: all)')
    p.add_argument('--no-realtime', action='store_true',
                   help='no SCHED_FIFO for the twin and actor (beside other work)')
    return record.add_quick(p)


def main(argv=None):
    p = build_parser()
    args = record.parse(p, QUICK, argv)
    args.faults = [f for f in args.faults.split(',') if f]
    unknown = sorted(set(args.faults) - set(FAULTS))
    if unknown:
        p.error(f'unknown fault classes {unknown}; known: {", ".join(FAULTS)}')
    soak = Soak(args, record.Run('chaos', args.quick, argv))
    try:
        codes = soak.run()
        return 0 if report(soak, codes) else 1
    finally:
        soak.graph.stop()
        soak.graph.close()


if __name__ == '__main__':
    raise SystemExit(main())
