"""`trpo-robot learn`: the ROS graph on the twin (or an arm) without a ROS distribution.

Starts twin_node, actor_node and learner_node as processes from the same YAML a launch
file uses (with this run's overrides written next to the results), on a free ROS domain
with localhost-only discovery; follows their diagnostics to print progress; stops when the
learner reports the run done (success rate or step budget) or on Ctrl-C, in the order that
keeps the arm safe and the learning kept: actor (stops the arm), learner (writes its
checkpoint), command guard, twin. Writes the checkpoint, progress.csv,
learning_curve.png and timing_histogram.png (from the actors' logs/**/timing.json) into
--out; with --tensorboard DIR, TensorBoard scalars: the learner's in DIR/learner (written
by the learner node), each arm's control timing in DIR/actor (DIR/arm1.. for a fleet).

On an arm: ``--robot dxl --port PATH`` starts dxl_driver_node on that serial device in
place of the twin; ``--no-sim`` starts no driver and checks that one (the UR driver) is
already publishing before the actor starts. Both run in real time on the system clock,
with the command guard between the actor and the driver.
"""
import json
import math
import os
from pathlib import Path
import sys
import threading
import time

from trpo_robot.errors import tensorboard_folder, UsageError, writable_folder
from trpo_robot.paths import share_file
from trpo_robot.plots import plot_curve, plot_timing
from trpo_robot.plots import read_progress  # noqa: F401 - tests and benchmarks import it here
from trpo_robot.ros import graph
from trpo_robot.ros import params as P
from trpo_robot.ros import plan
from trpo_robot.stop_signals import StopSignals
from trpo_robot.twin import conditions as twin_conditions

MAX_RTF = 8.0
"""The fastest twin `trpo-robot learn` picks by itself. The UR5's 8 ms driver period is
then 1 ms of wall time, which the actor answers in ~0.8 ms round trip (p50, SCHED_FIFO):
nearly every command still lands in its own driver period, so the twin behaves as the arm
would. Faster would push commands into the following period, i.e. add latency the real arm
does not have."""
TICKS_PER_CORE = 250.0
"""Driver ticks per wall second, per core of the host, that the default real-time factor
lets a twin graph ask for: twin, guard and actor each handle every tick at SCHED_FIFO, and
the learner (normal priority) gets what they leave. Measured on a 2-core host, UR5 twin
(8 ms), reacher_2d: at 4x (500 ticks/s) the three took 103% of the 200% (twin 39, guard 35,
actor 30), the graph kept 4.0x and the learner's update took 0.28 s (0.1-0.2 s alone,
bench/update_speed.py); at 8x (1,000 ticks/s) they took 182%, kept 7.3-7.6x with 1,792
overruns in 50 s, the update took 3-4 s, and in two longer runs the guard, starved past its
watch, left the actor to hold the arm for an operator a twin run does not have."""


FLEET_SHARE = 0.5
"""The part of TICKS_PER_CORE a fleet (2 arms or more) may ask for. Each arm adds three
SCHED_FIFO processes woken every tick, and at the same ticks a second a fleet overloads
the host where one arm does not. Measured on the 2-core host, UR5 twins, reacher_2d, the
learner updating (overruns / driver ticks): 1 arm at 4x (500 ticks/s) 0.03%; 2 arms at 2x
(500) 12%, and a guard starved past its watch held an arm within 74 s; 4 arms at 1x (500)
27%; 2 arms at 1x (250) 0.05%; 4 arms at 0.5x (250) 0.1% (bench/fleet.py, 2026-12-06)."""
MIN_RTF = 0.125


def default_rtf(driver_period: float, arms: int = 1, cores: int | None = None) -> float:
    """The real-time factor this host carries with its learner unstarved, shared by a
    fleet's arms: a whole number up to MAX_RTF, or, where real time is more than the host
    carries, 1/2, 1/4 or 1/8 (a twin slower than the arm costs wall time; an overloaded one
    costs overruns, stale policies and held arms). A 2-core host runs the UR5 twin at 4x,
    the Dynamixel twin (10 ms) at 5x, the UR5e (2 ms) in real time, a 2-arm UR5 fleet in
    real time and a 4-arm one at half of it."""
    cores = cores or len(os.sched_getaffinity(0))
    arms = max(arms, 1)
    ticks = cores * TICKS_PER_CORE * (FLEET_SHARE if arms > 1 else 1.0)
    fastest = ticks * driver_period / arms
    if fastest >= 1.0 - 1e-9:
        return float(min(MAX_RTF, math.floor(fastest + 1e-9)))
    return max(MIN_RTF, 2.0 ** math.floor(math.log2(fastest) + 1e-9))


def overload_warning(rtf: float, driver_period: float, arms: int = 1,
                     cores: int | None = None) -> str:
    """'' when the host carries ``rtf``, else what asking for it costs."""
    carried = default_rtf(driver_period, arms, cores)
    if rtf <= carried:
        return ''
    cores = cores or len(os.sched_getaffinity(0))
    ticks = rtf * arms / driver_period
    share = FLEET_SHARE if arms > 1 else 1.0
    return (f'warning: --rtf {rtf:g} asks for {ticks:,.0f} driver ticks a second; '
            f'{cores} cores carry {cores * TICKS_PER_CORE * share:,.0f} with the learner '
            f'unstarved{" for a fleet" if arms > 1 else ""}. '
            'Expect overruns, slow updates, and the arm held when the command guard is '
            f'starved past its watch (learning then waits for an operator). This host '
            f'sustains --rtf {carried:g}.')


def add_parser(sub):
    p = sub.add_parser('learn', help='learn on the twin with the ROS graph (twin, actor and '
                       'learner nodes as processes; no ROS distribution needed)')
    p.add_argument('--robot', choices=('ur5', 'ur5e', 'dxl'), default=None,
                   help='default: ur5, or the robot of --config')
    p.add_argument('--task', default=None, help='task or its short name (ur5: reacher_2d, '
                   'reacher_6d; dxl: reacher, tracker); default: the one in the YAML')
    p.add_argument('--steps', type=_positive_int, default=None,
                   help='step budget (default: budget_steps of the YAML)')
    p.add_argument('--out', default=None, help='results folder (default runs/learn_<task>)')
    p.add_argument('--rtf', type=_positive_float, default=None,
                   help='twin real-time factor (default: the fastest this host carries '
                   f'with the learner unstarved, at most {MAX_RTF:g}: 4 for the UR5 twin on '
                   '2 cores; 1 = real time; a real arm runs at 1)')
    p.add_argument('--port', default=None, metavar='PATH',
                   help='dxl: learn on the real arm on this serial device (or an emulator '
                   'pty): starts dxl_driver_node instead of the twin, on the system clock')
    p.add_argument('--dxl-config', default=None, metavar='YAML',
                   help='with --port: bus file for dxl_driver_node (default '
                   'config/dxl_hw.yaml)')
    p.add_argument('--no-sim', action='store_true',
                   help='no twin: talk to a driver that is already running on this host '
                   '(the UR ROS 2 driver, or a dxl_driver_node) on ROS_DOMAIN_ID (default 0)')
    p.add_argument('--config', default=None, help='robot parameter file (default '
                   'config/<robot>.yaml)')
    p.add_argument('--learner-config', default=None, help='learner parameter file (default '
                   'config/learner.yaml)')
    p.add_argument('--seed', type=int, default=None, help='default: seed of the YAML')
    p.add_argument('--synchronous', action='store_true',
                   help='baseline: the arm waits at rest while the learner updates')
    p.add_argument('--resume', default=None, metavar='DIR',
                   help='continue the run in DIR (an earlier --out): its checkpoint, policy '
                   'version, step count and episode sequence, learning first from the '
                   'episodes it recorded but had not consumed; --out defaults to DIR')
    p.add_argument('--arms', type=_positive_int, default=1,
                   help='a fleet: N arms (twins), each in its namespace arm1..armN with its '
                   'own driver, guard, actor and seed, feeding ONE learner (default 1)')
    p.add_argument('--policy', default=None, metavar='DIR',
                   help='on a real arm (--port, --no-sim): the validated checkpoint the actor '
                   'starts from and the learner resumes (`trpo-robot validate` first)')
    p.add_argument('--validation-override', action='store_true',
                   help='on a real arm: start without a passing validation record (logged)')
    p.add_argument('--domain-id', type=int, default=None,
                   help='ROS_DOMAIN_ID (default: a free one, chosen at random)')
    p.add_argument('--tensorboard', default=None, metavar='DIR',
                   help='write TensorBoard scalars: the learner\'s per update in DIR/learner, '
                   'each arm\'s control timing in DIR/actor (DIR/arm1.. for a fleet)')
    twin_conditions.add_arguments(p)
    p.set_defaults(func=cmd_learn)


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _positive_float(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(text)
    return value


# ---------------------------------------------------------------- configuration

def prepare(args):
    """Read and check the YAML with this run's overrides; write the files the nodes get."""
    robot_file = (Path(args.config) if args.config
                  else share_file('config', f'{args.robot or "ur5"}.yaml'))
    learner_file = (Path(args.learner_config) if args.learner_config
                    else share_file('config', 'learner.yaml'))
    try:
        values = P.node_parameters([robot_file], 'actor_node')
        if args.robot:
            values['robot'] = args.robot
        if args.task:
            values['task'] = args.task
        _real_arm(args, values)
        _twin_flags(args, values)
        if args.seed is not None:
            values['seed'] = args.seed
        if args.steps:
            values['budget_steps'] = args.steps
        if getattr(args, 'synchronous', False):
            values['synchronous'] = True
        resume = getattr(args, 'resume', None)
        out = Path(args.out or resume or f'runs/learn_{P.build(P.RobotParams, values).task}')
        values['episode_dir'] = str((out / 'episodes').resolve())
        values['timing_dir'] = str((out / 'logs').resolve())
        rp = P.build(P.RobotParams, values)
        lvalues = P.node_parameters([learner_file], 'learner_node')
        lvalues['checkpoint_dir'] = str((out / 'checkpoint').resolve())
        lvalues['log_dir'] = str(out.resolve())
        if getattr(args, 'tensorboard', None):
            board = tensorboard_folder(args.tensorboard) / 'learner'
            lvalues['tensorboard_dir'] = str(board.resolve())
        if resume:
            previous = Path(resume) / 'checkpoint'
            if not (previous / 'meta.json').is_file():
                raise P.ParamError(f'--resume {resume}: no checkpoint in {previous}')
            lvalues['resume'] = str(previous.resolve())
            stored = Path(resume) / 'episodes'
            if stored.resolve() != Path(rp.episode_dir):
                raise P.ParamError(f'--resume {resume} with another --out: the episodes '
                                   f'recorded in {stored} would not be continued')
        lp = P.build(P.LearnerParams, lvalues)
    except P.ParamError as e:
        raise UsageError(str(e)) from None
    unknown = P.unknown_keys({**values, **lvalues}, P.RobotParams, P.LearnerParams)
    if unknown:
        print(f'warning: parameters nobody reads: {unknown}', file=sys.stderr)
    writable_folder(out, '--out')
    if not lp.resume:
        earlier = set_aside_earlier_run(out)
        if earlier:
            print(f'an earlier run in {out} was moved to {earlier} (--resume {out} continues '
                  'a run instead)')
    for stale in [out / 'timing_histogram.png', *(out / 'logs').glob('**/timing.json')]:
        stale.unlink(missing_ok=True)  # a resumed run's actors start their timing afresh
    files = (P.write_param_file(out / 'params' / 'robot.yaml', P.to_ros(rp)),
             P.write_param_file(out / 'params' / 'learner.yaml', P.to_ros(lp)))
    return rp, lp, out, files


RUN_FILES = ('checkpoint', 'episodes', 'logs', 'params', 'progress.csv', 'ledger.csv',
             'learning_curve.png', 'timing_histogram.png')
"""What a run writes into --out."""


def set_aside_earlier_run(out: Path) -> Path | None:
    """Moves what an earlier run wrote into ``out`` to ``out/earlier/<UTC time>``: a new
    run would otherwise overwrite its checkpoint and continue its episode store (recorded
    episodes are robot time, never deleted), and its counts would mix with the new run's.
    Returns the new folder, or None when ``out`` held no run."""
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return None
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    earlier = out / 'earlier' / stamp
    n = 1
    while earlier.exists():  # two runs within a second
        n += 1
        earlier = out / 'earlier' / f'{stamp}-{n}'
    earlier.mkdir(parents=True)
    for path in found:
        path.rename(earlier / path.name)
    return earlier


def _real_arm(args, values):
    """--port / --no-sim: a real driver, so real time, its system-clock stamps and resets
    that drive the arm (nothing serves a teleport)."""
    port, no_sim = getattr(args, 'port', None), getattr(args, 'no_sim', False)
    robot = values.get('robot', 'ur5')
    if port and robot != 'dxl':
        raise P.ParamError(f'--port is for --robot dxl; a {robot} is reached through its ROS '
                           'driver: --no-sim')
    if getattr(args, 'dxl_config', None) and not port:
        raise P.ParamError('--dxl-config goes with --port')
    if not (port or no_sim):
        period = values.get('driver_period', P.RobotParams.driver_period)
        arms = getattr(args, 'arms', 1) or 1
        values['real_time_factor'] = args.rtf or default_rtf(period, arms)
        warning = overload_warning(values['real_time_factor'], period, arms)
        if warning:
            print(warning, file=sys.stderr)
        return
    if args.rtf not in (None, 1.0):
        raise P.ParamError(f'--rtf {args.rtf:g}: a real arm runs in real time')
    if not (getattr(args, 'policy', None) or getattr(args, 'validation_override', False)):
        raise P.ParamError('a real arm starts only from a validated policy: train on the '
                           'twin, `trpo-robot validate --checkpoint DIR`, then --policy DIR '
                           '(or --validation-override, logged)')
    values.update(real_time_factor=1.0, sim_clock=False, teleport=False)


def _twin_flags(args, values):
    """--randomize, --latency, --noise onto the twin_* keys every node reads (twin_node
    acts on them): --randomize turns on the file's ranges, the others replace its values.
    A real arm has no twin to set (the Dynamixel emulator takes the same flags itself)."""
    if twin_conditions.from_arguments(args) == twin_conditions.NOMINAL:
        return
    if getattr(args, 'port', None) or getattr(args, 'no_sim', False):
        raise P.ParamError(f'{", ".join(twin_conditions.FLAGS)} set the twin; with --port '
                           'or --no-sim there is none (an emulated Dynamixel chain takes '
                           'them: trpo-robot dxl-emulator --randomize ...)')
    if getattr(args, 'randomize', False):
        values['twin_randomize'] = True
    base = P.build(P.RobotParams, values).twin_conditions()
    values.update(P.twin_values(twin_conditions.from_arguments(args, base)))


def driver_node(args):
    """The node that stands for the arm: the twin, dxl_driver_node (--port) or none."""
    if getattr(args, 'port', None):
        return 'dxl_driver_node'
    return None if getattr(args, 'no_sim', False) else 'twin_node'


DRIVER_WAIT = 10.0
"""s to wait for an external driver's joint_states (--no-sim) before giving up."""


def check_external_driver(domain, rp, namespaces=('',), wait=DRIVER_WAIT):
    """--no-sim: each arm's driver must publish joint_states and its command topic must
    have a subscriber (the forward velocity controller active) before an actor starts."""
    from sensor_msgs.msg import JointState
    from trpo_robot.ros import node_utils as U
    from trpo_robot.ros.monitor import Probe
    probe = Probe(domain, name='trpo_learn_driver_check', keep=5)
    try:
        for ns in namespaces:
            states = plan.resolve(rp.joint_states_topic, ns)
            commands = plan.resolve(rp.command_topic, ns)
            probe.listen(states, JointState, states, U.QOS_STATE_SUB)
            try:
                graph.wait_for(lambda: probe.got(states) and
                               probe.node.count_subscribers(commands) > 0, wait, 0.1)
            except TimeoutError:
                missing = (f'no joint_states on {states}' if not probe.got(states) else
                           f'nobody subscribes to {commands} (is '
                           'forward_velocity_controller active?)')
                raise UsageError(f'--no-sim: no driver on ROS_DOMAIN_ID {domain} after '
                                 f'{wait:g} s: {missing}') from None
    finally:
        probe.close()


# ---------------------------------------------------------------- the run

def cmd_learn(args):
    try:
        import rclpy  # noqa: F401 - only to fail early with a useful message
    except ImportError:
        raise UsageError('rclpy is not importable: install the ROS wheels with '
                         "pip install -e '.[ros]' (or source a ROS 2 distribution)") from None
    rp, lp, out, (robot_yaml, learner_yaml) = prepare(args)
    driver = driver_node(args)
    domain = args.domain_id
    if domain is None:
        domain = graph.free_domain_id() if driver else _env_domain()
    env = graph.ros_env(domain)
    specs = run_plan(args, rp, robot_yaml, learner_yaml, driver)
    run = Run(rp, lp, out, domain, driver or 'external driver', getattr(args, 'port', None),
              arms=[s.namespace for s in specs if s.role == 'actor'],
              tensorboard=getattr(args, 'tensorboard', None))
    print(f'learning {rp.task} on {run.arm()} (ROS_DOMAIN_ID {domain}, localhost only); '
          f'budget {rp.budget_steps} steps or success rate {rp.success_rate:g} over '
          f'{rp.success_window} episodes -> {out}')
    if driver is None:
        check_external_driver(domain, rp, run.arms)
    procs = []
    # SIGTERM (a supervisor, `kill`, systemd) stops the run as Ctrl-C does, actor first; a
    # second one while the graph stops is noted, not raised into the stop sequence.
    with StopSignals(run.stop) as signals:
        try:
            for spec in specs:
                logs = out / 'logs' / spec.namespace if spec.namespace else out / 'logs'
                procs.append(graph.NodeProcess.from_spec(spec, env, logs))
            return run.follow(procs, signals)
        finally:
            codes = graph.stop_all(plan.stop_order(procs), timeout=plan.STOP_GRACE_S)
            run.finish(codes)


def run_plan(args, rp, robot_yaml, learner_yaml, driver):
    """This run's graph, from the one definition the launch file reads too (ros/plan.py).
    The YAML written by prepare() already holds the run's overrides."""
    extra = {}
    if getattr(args, 'port', None):
        extra['port'] = args.port
        if args.dxl_config:
            extra['dxl_config'] = str(Path(args.dxl_config).resolve())
    try:
        return plan.learning_graph(robot_yaml, learner_yaml, driver=driver,
                                   arms=getattr(args, 'arms', 1) or 1,
                                   use_sim_time=rp.sim_clock, driver_params=extra,
                                   policy=_policy_folder(args),
                                   validation_override=getattr(args, 'validation_override',
                                                               False))
    except plan.PlanError as e:
        raise UsageError(str(e)) from None


def _policy_folder(args) -> str:
    policy = getattr(args, 'policy', None)
    if not policy:
        return ''
    if not (getattr(args, 'port', None) or getattr(args, 'no_sim', False)):
        raise UsageError('--policy is for a real arm (--port, --no-sim); on the twin, '
                         '--resume continues a run')
    if not Path(policy).is_dir():
        raise UsageError(f'--policy {policy}: no such folder')
    return str(Path(policy).resolve())


def _env_domain():
    """--no-sim: the external driver's domain, as the ros2 tools would use it."""
    text = os.environ.get('ROS_DOMAIN_ID', '') or '0'
    if not text.isdigit():
        raise UsageError(f'ROS_DOMAIN_ID={text!r} is not a number')
    return int(text)


class Run:
    """Follows the graph through its diagnostics and prints what a person wants to see."""

    def __init__(self, rp, lp, out, domain, driver='twin_node', port=None, arms=('',),
                 tensorboard=None):
        self.rp, self.lp, self.out, self.domain = rp, lp, out, domain
        self.tensorboard = tensorboard
        self.arm_scalars = None
        self.driver, self.port = driver, port
        self.arms = list(arms)  # namespaces; the first arm's timing is the one printed
        self.stop = threading.Event()
        self.stopped_by = ''  # the signal's name, once one asks the run to stop
        self.t0 = time.monotonic()
        self.monitor = None
        self.last_version = -1
        self.failure = ''
        self.rate_watch = RateWatch(rp.real_time_factor)
        self.watches = [ArmWatch(ns, 'actor' if i == 0 else ('actor', ns),
                                 fleet=len(self.arms) > 1, twin=driver == 'twin_node',
                                 releases=rp.twin_hold_releases)
                        for i, ns in enumerate(self.arms)]

    def follow(self, procs, signals) -> int:
        """Report the run until it is done, a process dies or ``signals`` (StopSignals
        on ``self.stop``) asks it to stop; the exit code."""
        from trpo_robot.ros.monitor import Probe
        self.monitor = Probe(self.domain, name='trpo_learn_monitor', keep=50)
        first = self.arms[0]
        self.monitor.watch('learner', '/learner_node')
        for arm in self.watches:
            self.monitor.watch(arm.key, plan.resolve('actor_node', arm.namespace))
        if self.driver in plan.DRIVERS:  # an external driver publishes its own
            self.monitor.watch('twin', plan.resolve(self.driver, first))
        if self.tensorboard:
            self.arm_scalars = ArmScalars(self.monitor, self.tensorboard, self.watches)
        last_plot = time.monotonic()
        while not signals.wait(0.5):
            dead = [p for p in procs if not p.alive()]
            if dead:
                self.failure = '; '.join(f'{p.name} exited with code {p.proc.returncode}'
                                         for p in dead)
                for p in dead:
                    print(f'--- last lines of {p.log_path}:\n{p.tail()}', file=sys.stderr)
                return 1
            if self.arm_scalars:
                self.arm_scalars.poll()
            for arm in self.watches:
                self._report_phase(arm)
            progress = self.monitor.diag('learner', 'progress')
            if progress and int(progress.get('version', -1)) != self.last_version:
                self.last_version = int(progress['version'])
                print(self.line(progress), flush=True)
                self._report_rate()
                if time.monotonic() - last_plot > 30:
                    plot_curve(self.out, self.title())
                    last_plot = time.monotonic()
            if progress and progress.get('done'):
                print(f'done: {progress["done"]}')
                return 0
        self.stopped_by = signals.first
        print(f'interrupted ({self.stopped_by}): stopping the arm, writing a checkpoint',
              flush=True)
        return 0

    def _report_phase(self, arm):
        lifecycle = self.monitor.diag(arm.key, 'lifecycle') or {}
        fault = (self.monitor.diag(arm.key, 'safety') or {}).get('last_fault', '')
        notice = arm.see(lifecycle, fault)
        if notice:
            print(notice, flush=True)

    def _report_rate(self):
        if self.driver == 'twin_node':
            kept = (self.monitor.diag('twin', 'driver') or {}).get('measured_rtf')
            notice = self.rate_watch.see(kept)
            if notice:
                print(notice, flush=True)

    def line(self, pr) -> str:
        steps, budget = int(pr['steps']), int(pr['budget_steps'])
        elapsed = time.monotonic() - self.t0
        rate = steps / elapsed if elapsed > 0 else 0.0
        eta = _fmt((budget - steps) / rate) if rate > 0 else '--'
        a = self.monitor.diag('actor', 'control') or {}
        t = self.monitor.diag('twin', 'driver') or {}
        timing = (f'lateness p99 {_f(a.get("lateness_p99_ms"), 2)} max '
                  f'{_f(a.get("lateness_max_ms"), 1)} ms, overruns {a.get("overruns", "?")}, '
                  f'stops {t.get("watchdog_stops", t.get("timeout_stops", "?"))}, '
                  f'rtf {_f(t.get("measured_rtf", 1.0 if self.port else None), 1)}')
        if self.rp.synchronous:
            timing += f', arm held for updates {_f(a.get("held_s"), 1)} s'
        return (f'[{steps:>7d}/{budget} {100 * steps / budget:3.0f}%] v{pr["version"]:<4} '
                f'ep {pr["episodes"]:>5} return {_f(pr["mean_return"], 2):>7} '
                f'success {_f(pr["success_rate"], 2)} update {_f(pr["update_s"], 2)} s | '
                f'{timing} | {_fmt(elapsed)} (budget ETA {eta})')

    def arm(self):
        if self.driver == 'twin_node':
            what = (f'{len(self.arms)} {self.rp.robot} twins ({", ".join(self.arms)})'
                    if len(self.arms) > 1 else f'the {self.rp.robot} twin')
            return f'{what} at {self.rp.real_time_factor:g}x real time'
        where = f' on {self.port}' if self.port else f' ({self.driver})'
        return f'the {self.rp.robot} arm{where}, real time'

    def title(self):
        mode = ', synchronous' if self.rp.synchronous else ''
        return f'{self.rp.task} on {self.arm()}{mode}'

    def finish(self, codes):
        if self.arm_scalars is not None:
            self.arm_scalars.close()
        if self.monitor is not None:
            self.monitor.close()
        curve = plot_curve(self.out, self.title())
        timing = plot_timing(self.out, self.timing_records(), f'control timing: {self.title()}')
        checkpoint = Path(self.lp.checkpoint_dir)
        print(f'nodes stopped ({", ".join(f"{k} {v}" for k, v in codes.items())}); '
              f'checkpoint {checkpoint if (checkpoint / "meta.json").exists() else "MISSING"}; '
              f'curve {curve or "none (no update finished)"}; timing histogram '
              f'{timing or "none (no actor wrote its timing.json)"}; logs {self.out / "logs"}')
        print(episode_counts(self.rp.episode_dir, checkpoint), flush=True)
        if self.failure:
            raise UsageError(f'the graph failed: {self.failure}')

    def timing_records(self) -> dict:
        """{arm: the timing.json its actor wrote at shutdown}; an arm without one (its
        actor died) is left out."""
        records = {}
        for ns in self.arms:
            try:
                text = (Path(self.rp.timing_dir) / ns / 'timing.json').read_text()
                records[ns or 'actor'] = json.loads(text)
            except (OSError, ValueError):
                continue
        return records


class ArmScalars:
    """--tensorboard: each arm's control timing, from its actor's diagnostics (which the
    actor publishes anyway), one point per message that reports newly acted steps, at
    those steps. One TensorBoard run per arm: DIR/actor, or DIR/arm1.. for a fleet."""

    def __init__(self, monitor, folder, arms):
        """arms: the run's ArmWatch list, whose actors the monitor already follows."""
        from trpo_robot.trpo.scalars import ScalarLog
        self.monitor = monitor
        self.logs, self.last = {}, {}
        for arm in arms:
            self.logs[arm.key] = ScalarLog(Path(folder) / (arm.namespace or 'actor'))

    def poll(self):
        from trpo_robot.trpo import scalars
        for key, log in self.logs.items():
            control = self.monitor.diag(key, 'control')
            if not control or int(control['ticks']) == 0 or \
                    control['steps'] == self.last.get(key):
                continue  # no loop ran yet (no lateness to report), or nothing new
            self.last[key] = control['steps']
            log.write(int(control['steps']),
                      {scalars.LATENESS_P99: float(control['lateness_p99_ms']),
                       scalars.OVERRUNS: float(control['overruns'])})

    def close(self):
        for log in self.logs.values():
            log.close()


def episode_counts(episode_dir, checkpoint_dir) -> str:
    """Recorded, consumed and lost episodes, from the store and the last checkpoint.

    consumed: recorded episodes the checkpoint accounts for (learned from, or dropped as
    stale or aborted, all counted by the learner); unconsumed ones are what the next
    --resume feeds the learner; lost: sequence numbers an actor used but never recorded
    (the actor writes every episode before it sends it, so this should be 0)."""
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import checkpoint as ck
    try:
        consumed_ids = ck.read_meta(checkpoint_dir).get('extra', {}).get('consumed', {})
    except ck.CheckpointError:
        consumed_ids = {}
    store = EpisodeStore(episode_dir)
    episodes = store.episodes()
    pending = {(a, s) for a, s, _ in store.unconsumed(consumed_ids)}
    lost = 0
    for actor in {a for a, _, _ in episodes}:
        seqs = {s for a, s, _ in episodes if a == actor}
        lost += max(seqs) + 1 - len(seqs)
    return (f'episodes: recorded {len(episodes)}, consumed {len(episodes) - len(pending)}, '
            f'unconsumed {len(pending)} (fed to the learner by --resume), lost {lost} '
            f'[{episode_dir}]')


def _f(value, digits):
    try:
        return f'{float(value):.{digits}f}'
    except (TypeError, ValueError):
        return '?'


def phase_notice(before, lifecycle, fault=''):
    """What to print when an arm's phase changes, or None: a held arm stops
    learning until an operator acts, and a run that stalls silently looks hung."""
    phase = lifecycle.get('phase', before)
    if phase == before:
        return None
    if phase in HELD:
        why = f' after a fault: {fault}' if fault else ''
        return (f'ARM HELD ({phase}){why}. Learning waits for the operator: '
                f'{lifecycle.get("instructions", "")}').rstrip(': ')
    if before in HELD:
        return f'arm no longer held: {phase}'
    return None


HELD = ('hold', 'estop')


class ArmWatch:
    """One arm's phase as learn last saw it, and (on a twin) how its holds go: every arm of a
    fleet is followed, since one held arm otherwise idles silently while the others learn.
    A fleet's notices name the arm."""

    def __init__(self, namespace, key, fleet=False, twin=True, releases=3):
        self.namespace, self.key = namespace, key
        self.prefix = f'{namespace}: ' if fleet else ''
        self.last_phase = ''
        self.release = TwinRelease(releases) if twin else None

    def see(self, lifecycle, fault) -> str:
        """The line to print for this arm's newest lifecycle report, or ''."""
        phase = lifecycle.get('phase', self.last_phase)
        notice = self.release.notice(lifecycle, fault) if self.release else None
        if notice is None:
            notice = phase_notice(self.last_phase, lifecycle, fault)
        self.last_phase = phase
        return self.prefix + notice if notice else ''


class TwinRelease:
    """What learn says of a twin's holds, which its actor ends itself up to ``limit`` a run
    (acting.TwinHoldRelease, the actor's twin_hold_releases): the same count on both
    sides, so learn names each release and the first hold left for a person. Holds are
    counted by the lifecycle (``holds``): a hold that a reset ends within one poll is
    never missed. An e-stop is never released, and a real arm never."""

    def __init__(self, limit: int = 3):
        self.limit = limit
        self.seen = 0  # holds seen so far

    def notice(self, lifecycle, fault):
        """The line for a new hold: that the actor releases it, or, for the first past the
        limit, the operator's notice; None otherwise."""
        holds = int(lifecycle.get('holds', 0))
        if holds <= self.seen:
            return None
        first_past = self.seen <= self.limit < holds
        self.seen = holds
        if holds > self.limit:
            # said even when the poll saw 'hold' before (a release it did not see end)
            return phase_notice('', lifecycle, fault) if first_past else None
        why = f' after a fault: {fault}' if fault else ''
        return (f'ARM HELD (hold){why}. On the twin, the actor resets it and goes on '
                f'({holds} of {self.limit} a run; then it waits for the operator).')


class RateWatch:
    """Says once that the twin keeps less than ``kept_share`` of the real-time factor asked,
    on two progress lines running (one can catch a start-up or a checkpoint): its timing
    figures then describe an overloaded host, not the arm. A carried 4x measures 3.6-4.0 on
    the twin's diagnostics; an overloaded 8x, 4.9-7.6."""

    def __init__(self, asked: float, kept_share: float = 0.85):
        self.asked, self.kept_share = float(asked), kept_share
        self.slow_lines = 0
        self.said = False

    def see(self, kept) -> str:
        if self.said or kept is None:
            return ''
        slow = float(kept) < self.kept_share * self.asked
        self.slow_lines = self.slow_lines + 1 if slow else 0
        if self.slow_lines < 2:
            return ''
        self.said = True
        return (f'warning: the twin keeps {float(kept):.1f}x of the {self.asked:g}x asked: '
                'this host cannot carry that rate, so the learner is starved and the timing '
                "is not the arm's; a lower --rtf learns in the same robot time")


def _fmt(seconds):
    if not math.isfinite(seconds):
        return '--'
    seconds = int(max(seconds, 0))
    return f'{seconds // 60}m{seconds % 60:02d}s'
