"""Parameters of the ROS graph, read from the same YAML files by the nodes and by the CLI.

The files in ``config/`` are ROS 2 parameter files (``/**: ros__parameters: {...}``). A
launch file hands them to the nodes; ``trpo-robot learn`` reads them here and hands the
same files to the same nodes. Each node declares the fields of the dataclasses below as
ROS parameters and builds the dataclass from them, so every check lives in one place and
holds whichever way the values arrived. Nothing here imports rclpy.
"""
from dataclasses import asdict, dataclass, field, fields
import math
from pathlib import Path

import yaml

from trpo_robot.robot.phases import RESET_MODES
from trpo_robot.robot.tasks import get_task, Task, TASKS
from trpo_robot.trpo.config import preset, TRPOConfig
from trpo_robot.twin.conditions import TwinConditions
from trpo_robot.twin.randomization import Randomization

SWAP_AT = ('episode', 'tick')
"""When an actor takes a new policy (trpo_robot/ros/acting.py checks against this)."""
ROBOT_FAMILY = {'ur5': 'ur5', 'ur5e': 'ur5', 'dxl': 'dxl'}
"""Twin robot (sim/robots.yaml) -> the family its tasks are written for (Task.robot)."""
MiB = 1024 * 1024


class ParamError(ValueError):
    """A parameter file or value that cannot be used; the message names it."""


@dataclass(frozen=True)
class RobotParams:
    """One arm, its driver and its task: ``config/ur5.yaml``, ``config/dxl.yaml``.

    Read by twin_node, actor_node, learner_node (robot, task, seed, run end) and the CLI.
    """

    robot: str = 'ur5'
    """Twin model in sim/robots.yaml: ur5, ur5e or dxl."""
    task: str = 'ur5_reacher_2d'
    """Task name (trpo_robot/robot/tasks.py) or its short alias (reacher_2d, reacher)."""
    driver_period: float = 0.008
    """Driver cycle, s: joint_states arrive and a command is expected once per period
    (UR5 CB3 125 Hz, UR5e 500 Hz, Dynamixel bus 10 ms). The twin refuses a value that
    differs from its model's."""
    robot_receive_timeout: float = 0.04
    """The UR driver's robot_receive_timeout, s: it covers only the driver-to-robot link
    (the reverse interface), not ROS commands. Here it sizes the command guard's default
    timeout (agent_dt + this)."""
    driver_command_timeout: float = 0.0
    """The driver's own stop for a stale command stream, s; 0: none. The UR driver has none
    (its forward controllers hold the last command forever, ros2_controllers#95), so the
    UR twin holds too; dxl_driver_node's command_timeout is the Dynamixel path's."""
    guard_topic: str = 'command_guard/commands'
    """The actor publishes its commands here; the command guard (guard_node) relays them
    to command_topic and sends zero when they go stale."""
    guard_timeout: float = 0.0
    """Guard: zero the driver's command when the actor's newest is older than this, s of
    driver time; 0: agent_dt + robot_receive_timeout (one agent step plus the UR's 40 ms)."""
    require_guard: bool = True
    """Actor: act only once a command guard listens on guard_topic (false: publish straight
    to command_topic, for a driver that stops stale commands itself)."""
    follow_check: bool = True
    """Actor: abort an episode as arm_not_following when the arm does not follow the
    command (protective stop, stopped program, inactive controller)."""
    follow_lag: float = 0.05
    """Actor: the arm's response time to a velocity command, s (the driver period, the
    servo's time constant and the transport)."""
    follow_window: float = 0.2
    """Actor: s the arm may lag the command before the episode is aborted. On a twin,
    follow_lag and follow_window are multiplied by the real-time factor: they allow for
    the host's delays, which are wall time. Without SCHED_FIFO (realtime false, or not
    permitted) the window grows by the guard watch's extra slack for that case, 1.45 s."""
    program_running_topic: str = 'io_and_status_controller/robot_program_running'
    """UR driver (std_msgs/Bool, latched): False aborts the episode at once."""
    speed_scaling_topic: str = 'speed_scaling_state_broadcaster/speed_scaling'
    """UR driver (std_msgs/Float64, percent): scales what the follow check expects."""
    agent_dt: float = 0.04
    """Agent step, s: a whole number of driver periods (SenseAct: 40 ms)."""
    real_time_factor: float = 1.0
    """Twin only: sim seconds per wall second (1 = as the hardware would run)."""
    seed: int = 0
    """Seeds the twin's sensor noise, the actor's action noise and start poses, and the
    learner's networks."""
    swap_at: str = 'episode'
    """When the actor switches to newly received weights: 'episode' (at the next episode
    boundary, on-policy episodes) or 'tick' (before the next agent step; the episode is cut
    there into two segments, one per policy version)."""
    reset_mode: str = 'auto'
    """How the arm gets back to a start pose between episodes (the actor's lifecycle):
    'auto' (a move through the shield), 'teleop' (an operator jogs it with a gamepad or
    `trpo-robot teleop-keyboard`, then confirms) or 'freedrive' (moved by hand, then
    confirmed). Changeable at run time through the actor's services."""
    synchronous: bool = False
    """The baseline, not the product: after each learner batch of steps (the learner says
    its batch_steps with every policy) the arm waits at rest until the next version
    arrives, as SenseAct ran TRPO. False: acting never waits for learning."""
    teleport: bool = True
    """Twin only: an 'auto' reset asks the twin to place the arm at the start pose instead
    of driving there (a reset whose teleport fails drives; after 3 in a row, e.g. nobody
    serves the teleport topic on a real arm, every reset drives). The lifecycle still
    checks the pose and the rest before READY."""
    twin_hold_releases: int = 3
    """Twin only: holds a run that the actor ends itself with a reset, as an operator
    would (acting.TwinHoldRelease); past them the arm waits for a person. 0: every hold
    waits. A real arm's holds are never ended by the actor, whatever this says."""
    reset_timeout: float = 120.0
    """teleop and freedrive resets: s without operator activity before the arm is held
    (HOLD) with a log line saying what to do."""
    joy_mapping: str = ''
    """Gamepad layout in config/joy_mappings.yaml (xbox, ps4, ...); empty: the layout of
    `trpo-robot teleop-keyboard`."""
    joy_topic: str = 'joy'
    """sensor_msgs/Joy for teleop resets (relative: resolves in the actor's namespace)."""
    sim_clock: bool = True
    """Twin: publish /clock and stamp joint_states in sim time (run the actor with
    use_sim_time). False: stamp with the system clock like a real driver (only at
    real_time_factor 1)."""
    command_log: str = ''
    """Twin only: a file the physics thread appends one row to per driver period, for
    audits (bench/chaos.py): float64 wall (CLOCK_MONOTONIC) and sim time, then the velocity
    command applied, the joint positions and the joint velocities (3 x dof values). Rows
    are written in blocks of COMMAND_LOG_BLOCK: a killed twin loses at most its last block.
    '' writes nothing."""
    clock_start: float = 0.0
    """Twin only: sim time at start, s. A twin restarted under a running graph continues
    the graph's clock from at least where it was, as a restarted driver's system clock
    does; from 0, every node would see time go backwards (and the command guard would drop
    every command as decided before its last stop)."""
    twin_randomize: bool = False
    """Twin only: domain randomization, drawn once when the twin starts (seeded by seed):
    link masses, joint damping and friction, and extra latency from the twin_*_scale and
    twin_latency_periods ranges. What was drawn is logged, published on the twin's
    ~/conditions and recorded in each episode (extra.twin)."""
    twin_mass_scale: tuple = Randomization.mass_scale
    """Twin: [low, high] factor on each moving link's mass and inertia."""
    twin_damping_scale: tuple = Randomization.damping_scale
    """Twin: [low, high] factor on each joint's viscous damping."""
    twin_friction_scale: tuple = Randomization.friction_scale
    """Twin: [low, high] factor on each joint's dry friction and each link's contact
    friction."""
    twin_latency_periods: tuple = Randomization.latency_periods
    """Twin: [low, high] whole driver periods of latency added to twin_latency."""
    twin_latency: float = -1.0
    """Twin: action latency, s (rounded to physics steps); -1: the robot's default in
    sim/robots.yaml (one driver period)."""
    twin_position_noise: float = -1.0
    """Twin: Gaussian std of the joint positions it reports, rad; -1: the robot's default."""
    twin_velocity_noise: float = -1.0
    """Twin: Gaussian std of the joint velocities it reports, rad/s; -1: the robot's
    default."""
    twin_conditions_topic: str = 'twin_node/conditions'
    """Actor: the twin's latched ~/conditions (std_msgs/String JSON, relative: in the
    actor's namespace); what it heard goes into each episode's extra as twin."""
    realtime: bool = True
    """Ask for SCHED_FIFO for the control thread (actor) and the physics thread (twin);
    falls back to normal scheduling with a warning when not permitted."""
    joint_states_topic: str = 'joint_states'
    command_topic: str = 'forward_velocity_controller/commands'
    freedrive_topic: str = 'freedrive_mode_controller/enable_freedrive_mode'
    """std_msgs/Bool of the UR driver's freedrive_mode_controller (the twin serves it too):
    a freedrive reset re-sends True every 0.5 s as a keep-alive, then False once."""
    clock_topic: str = '/clock'
    """Twin: where sim time is published (several twins need one clock topic each)."""
    teleport_topic: str = 'twin_node/reset_state'
    """Twin (sim only): std_msgs/Float64MultiArray of joint positions to teleport to."""
    episodes_topic: str = '~/episodes'
    policy_topic: str = '/policy'
    episode_queue_depth: int = 32
    """keep_last depth of the reliable episode topic, on both sides."""
    episode_dir: str = 'runs/learn/episodes'
    """Actor: every finished episode is written here (one MCAP file each, trpo_robot/store.py)
    before it is published, so a dead learner loses nothing; the learner reads the ones its
    checkpoint has not consumed when it resumes. `trpo-robot learn` puts it in --out."""
    timing_dir: str = ''
    """Actor: at shutdown it writes the lateness histogram of every tick it answered to
    ``timing_dir/<its namespace>/timing.json``; empty: not written. `trpo-robot learn` uses
    --out/logs and draws timing_histogram.png from it."""
    max_policy_bytes: int = 16 * MiB
    """Actor: policy blobs above this size are rejected before decoding."""
    key_file: str = ''
    """Secret key (trpo_robot/auth.py) that signs policies (learner) and episodes (actor)
    and checks them on receipt: an unsigned or wrongly signed blob is refused. '' means
    $XDG_CONFIG_HOME/trpo_robot/fleet.key (~/.config/...), made on first use with mode
    0600; every node of one fleet needs the same file (docs/ros.md)."""
    learner_timeout: float = 300.0
    """Actor: say the learner is stale when no policy arrived for this long, s on the graph
    clock (a TRPO batch of 2048 steps of 40 ms is ~82 s of robot time)."""
    require_validation: bool = False
    """Actor: the sim-first gate (trpo_robot/validation/gate.py). Start only from
    policy_checkpoint with a passing validation record for these weights and this config,
    and check every new version before it acts. The plan sets it for every driver but the
    twin (launch use_sim:=false, `trpo-robot learn --no-sim` or --port)."""
    policy_checkpoint: str = ''
    """Actor: the checkpoint (validated with `trpo-robot validate`) a gated actor starts
    from; the learner should resume from it too, so its versions continue this policy."""
    validation_override: bool = False
    """Actor: start a gated actor without a passing record (logged loudly at every start)."""
    trust_kl_slack: float = 3.0
    """Actor, gated: a new version may move the policy by at most this times the learner's
    max_kl times the square of the versions between (KL on the arm's last states, both
    networks through the running normaliser; measured: docs/validation.md)."""
    stall_timeout: float = 1.0
    """Actor: wall seconds without a new joint_states before the episode is aborted and the
    arm stopped (a dead driver or twin)."""
    diagnostics_period: float = 1.0
    """Wall seconds between diagnostics messages."""
    budget_steps: int = 150_000
    """Learning run: stop after this many learned agent steps."""
    success_rate: float = 0.8
    """Learning run: stop when this fraction of the last success_window full episodes ended
    within the task's success_distance."""
    success_window: int = 40

    def __post_init__(self):
        _check(self.robot in ROBOT_FAMILY, f'robot must be one of {sorted(ROBOT_FAMILY)}, '
               f'got {self.robot!r}')
        object.__setattr__(self, 'task', resolve_task(self.robot, self.task))
        for name in ('driver_period', 'robot_receive_timeout', 'agent_dt', 'real_time_factor',
                     'learner_timeout', 'stall_timeout', 'diagnostics_period',
                     'reset_timeout', 'follow_window', 'trust_kl_slack'):
            _positive(self, name)
        for name in ('driver_command_timeout', 'guard_timeout', 'follow_lag', 'clock_start'):
            _check(getattr(self, name) >= 0, f'{name} must be >= 0, got {getattr(self, name)}')
        _check(self.twin_hold_releases >= 0,
               f'twin_hold_releases must be >= 0, got {self.twin_hold_releases}')
        for name in ('episode_queue_depth', 'max_policy_bytes', 'budget_steps',
                     'success_window'):
            _check(getattr(self, name) >= 1, f'{name} must be >= 1, got {getattr(self, name)}')
        _check(0.0 < self.success_rate <= 1.0,
               f'success_rate must be in (0, 1], got {self.success_rate}')
        _check(self.swap_at in SWAP_AT, f'swap_at must be one of {SWAP_AT}, got '
               f'{self.swap_at!r}')
        _check(self.reset_mode in RESET_MODES, f'reset_mode must be one of {RESET_MODES}, '
               f'got {self.reset_mode!r}')
        periods = self.agent_dt / self.driver_period
        _check(round(periods) >= 1 and abs(periods - round(periods)) < 1e-6,
               f'agent_dt {self.agent_dt} s is not a whole multiple of driver_period '
               f'{self.driver_period} s')
        _check(self.robot_receive_timeout >= self.driver_period,
               'robot_receive_timeout must be at least one driver period')
        _check(self.effective_guard_timeout() >= 2 * self.driver_period,
               'guard_timeout must be at least two driver periods')
        guard = self.effective_guard_timeout()
        _check(self.driver_command_timeout == 0 or self.driver_command_timeout >= 2 * guard,
               f'driver_command_timeout {self.driver_command_timeout} s must be 0 or at '
               f'least twice the guard timeout ({guard:g} s): the guard sends a held command '
               'again only once per its timeout, and the driver would stop in between')
        _check(self.sim_clock or self.real_time_factor == 1.0,
               'sim_clock: false stamps with the system clock and needs real_time_factor 1')
        for name in ('joint_states_topic', 'command_topic', 'freedrive_topic', 'clock_topic',
                     'teleport_topic', 'episodes_topic', 'policy_topic', 'episode_dir',
                     'joy_topic', 'guard_topic', 'twin_conditions_topic'):
            _check(bool(getattr(self, name)), f'{name} must not be empty')
        self._check_twin()

    def _check_twin(self):
        for key in ('twin_latency', 'twin_position_noise', 'twin_velocity_noise'):
            value = getattr(self, key)
            _check(value == -1.0 or (math.isfinite(value) and value >= 0),
                   f'{key} must be -1 (the robot\'s default) or a finite number >= 0, got '
                   f'{value!r}')
        for key, field_name in _TWIN_RANGES.items():
            value = getattr(self, key)
            _check(len(value) == 2, f'{key} must be [low, high], got {list(value)}')
            try:
                Randomization(**{field_name: tuple(value)})
            except ValueError as e:
                raise ParamError(f'{key}: {e}') from None

    def _randomization(self) -> Randomization:
        return Randomization(**{field: tuple(getattr(self, key))
                                for key, field in _TWIN_RANGES.items()})

    def twin_conditions(self) -> TwinConditions:
        """What the twin_* keys ask of the twin (twin_node builds its MujocoBackend with
        ``twin_conditions().backend_kwargs()``); -1 keeps the robot's default."""
        noise = None
        position, velocity = self.twin_position_noise, self.twin_velocity_noise
        if position >= 0 or velocity >= 0:  # one set: the other stays the robot's
            from trpo_robot.twin.settings import load_settings
            default = load_settings(self.robot)
            noise = (position if position >= 0 else default.position_noise,
                     velocity if velocity >= 0 else default.velocity_noise)
        return TwinConditions(
            randomization=self._randomization() if self.twin_randomize else None,
            latency=None if self.twin_latency < 0 else self.twin_latency, noise_std=noise)

    def effective_guard_timeout(self) -> float:
        return self.guard_timeout or self.agent_dt + self.robot_receive_timeout

    @property
    def is_ur(self) -> bool:
        return ROBOT_FAMILY[self.robot] == 'ur5'

    def task_spec(self) -> Task:
        """The task with this file's agent step (its episode length stays in seconds)."""
        from dataclasses import replace
        task = get_task(self.task)
        return task if task.agent_dt == self.agent_dt else replace(task, agent_dt=self.agent_dt)


_TWIN_RANGES = {'twin_mass_scale': 'mass_scale', 'twin_damping_scale': 'damping_scale',
                'twin_friction_scale': 'friction_scale',
                'twin_latency_periods': 'latency_periods'}
"""RobotParams keys -> the Randomization fields they fill."""


def twin_values(conditions: TwinConditions) -> dict:
    """The twin_* parameter values that give ``conditions`` (how `trpo-robot learn` hands
    its --randomize/--latency/--noise to the twin); the ranges only when randomizing."""
    noise = conditions.noise_std or (-1.0, -1.0)
    values = {'twin_randomize': conditions.randomization is not None,
              'twin_latency': -1.0 if conditions.latency is None else conditions.latency,
              'twin_position_noise': noise[0], 'twin_velocity_noise': noise[1]}
    if conditions.randomization is not None:
        values.update({key: getattr(conditions.randomization, field)
                       for key, field in _TWIN_RANGES.items()})
    return values


def twin_conditions_from_file(path, randomize: bool = False) -> TwinConditions:
    """The twin conditions a robot parameter file gives twin_node, without rclpy: for
    commands that run the twin outside the graph (e.g. `trpo-robot validate --config`).

    ``randomize=True`` turns randomization on with the file's ranges whatever its
    twin_randomize says (what --randomize means); apply the other flags on top with
    ``twin.conditions.from_arguments(args, base=...)``. Raises ParamError (one line).
    """
    values = node_parameters([path], 'twin_node')
    if randomize:
        values['twin_randomize'] = True
    return build(RobotParams, values).twin_conditions()


@dataclass(frozen=True)
class DxlDriverParams:
    """dxl_driver_node's own parameters; the rest comes from the robot file (RobotParams:
    topics, driver_period, driver_command_timeout, diagnostics_period, realtime) and the
    bus file."""

    dxl_config: str = ''
    """Bus configuration, plain YAML as config/dxl_hw.yaml (ids, baud, period, watchdog,
    zero and direction of each servo); empty: the package's config/dxl_hw.yaml."""
    port: str = ''
    """Serial device, overriding the bus file's port; empty: the file's."""


@dataclass(frozen=True)
class LearnerParams:
    """The asynchronous learner: ``config/learner.yaml``."""

    preset: str = 'dense_reach'
    """TRPO preset (trpo_robot/trpo/config.py); the trpo.* parameters override its fields."""
    trpo: dict = field(default_factory=dict)
    """Overrides of TRPOConfig fields, e.g. {'batch_steps': 1024}; ROS: trpo.batch_steps."""
    max_policy_lag: int = 2
    """Drop episodes acted by a policy more than this many versions old (and count them)."""
    episode_topics: tuple = ('/actor_node/episodes',)
    """Episode topics of every actor that feeds this learner (the learner publishes on the
    robot file's policy_topic and uses its episode_queue_depth)."""
    max_episode_bytes: int = 16 * MiB
    """Episode blobs above this size are rejected before decoding."""
    checkpoint_dir: str = 'runs/learn/checkpoint'
    checkpoint_every: int = 5
    """Write a checkpoint every this many updates, and always on shutdown."""
    log_dir: str = ''
    """Folder for progress.csv (one row per update); empty: no file."""
    tensorboard_dir: str = ''
    """Folder for TensorBoard scalars (trpo/scalars.py), one point per update; empty: none.
    `trpo-robot learn --tensorboard DIR` uses DIR/learner."""
    resume: str = ''
    """Checkpoint folder to continue from; empty: start fresh."""
    progress_period: float = 1.0
    """Wall seconds between progress (diagnostics) messages."""
    stop_when_done: bool = True
    """Freeze the policy (no more updates) once the run's success or budget is reached."""
    success_distance: float = 0.0
    """An episode counts as a success when its final distance is below this, m; 0: the
    task's success_distance, as the actor reports it. A stricter bar than the task's (the
    robot-time benchmark's 2 cm, bench/robot_time.py) changes when the run is done, not
    what the actor does."""

    def __post_init__(self):
        object.__setattr__(self, 'episode_topics', tuple(str(t) for t in self.episode_topics))
        _check(len(self.episode_topics) >= 1 and all(self.episode_topics),
               'episode_topics must name at least one topic')
        _check(len(set(self.episode_topics)) == len(self.episode_topics),
               f'episode_topics lists a topic twice: {self.episode_topics}')
        for name in ('max_policy_lag', 'success_distance'):
            _check(getattr(self, name) >= 0, f'{name} must be >= 0')
        for name in ('max_episode_bytes', 'checkpoint_every'):
            _check(getattr(self, name) >= 1, f'{name} must be >= 1, got {getattr(self, name)}')
        _positive(self, 'progress_period')
        _check(bool(self.checkpoint_dir), 'checkpoint_dir must not be empty')
        self.trpo_config()  # fail here, with the parameter's name, not in the node later

    def trpo_config(self) -> TRPOConfig:
        try:
            base = preset(self.preset)
        except ValueError as e:
            raise ParamError(str(e)) from None
        known = {f.name for f in fields(TRPOConfig)}
        unknown = set(self.trpo) - known
        _check(not unknown, f'unknown trpo.* parameters: {sorted(unknown)}')
        overrides = {k: _like(getattr(base, k), v, f'trpo.{k}') for k, v in self.trpo.items()}
        overrides['max_policy_lag'] = self.max_policy_lag
        try:
            return base.with_overrides(**overrides)
        except (TypeError, ValueError) as e:
            raise ParamError(f'trpo.*: {e}') from None


def _check(ok, message):
    if not ok:
        raise ParamError(message)


def _positive(obj, name):
    value = getattr(obj, name)
    _check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
           f'{name} must be a finite number > 0, got {value!r}')


def _like(reference, value, name):
    """Coerce a parameter value to the type of the dataclass default it replaces."""
    try:
        if isinstance(reference, bool):
            if isinstance(value, str) and value.lower() in ('true', 'false'):
                return value.lower() == 'true'
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(reference, int):
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            return int(value)
        if isinstance(reference, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(reference, str):
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(reference, (tuple, list)):
            if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
                raise TypeError
            items = list(value)
            if reference and items:
                items = [_like(reference[0], v, name) for v in items]
            return tuple(items)
        if isinstance(reference, dict):
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        raise ParamError(f'{name} must be like {reference!r} ({type(reference).__name__}), '
                         f'got {value!r}') from None
    return value


def build(cls, values: dict):
    """A params dataclass from flat parameter values (unknown keys are the caller's concern).

    Values are coerced to each field's type; dotted keys 'trpo.x' fill the dict field.
    """
    defaults = cls()
    kwargs = {}
    for f in fields(cls):
        ref = getattr(defaults, f.name)
        if isinstance(ref, dict):
            prefix = f.name + '.'
            sub = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
            if isinstance(values.get(f.name), dict):
                sub = {**values[f.name], **sub}
            kwargs[f.name] = sub
        elif f.name in values:
            kwargs[f.name] = _like(ref, values[f.name], f.name)
    try:
        return cls(**kwargs)
    except ParamError:
        raise
    except (TypeError, ValueError) as e:
        raise ParamError(str(e)) from None


def unknown_keys(values: dict, *classes) -> list:
    """Keys that none of the classes declares (typos in a YAML file show up here)."""
    known = {'use_sim_time'}
    prefixes = []
    for cls in classes:
        for f in fields(cls):
            known.add(f.name)
            if isinstance(getattr(cls(), f.name), dict):
                prefixes.append(f.name + '.')
    return sorted(k for k in values if k not in known and not k.startswith(tuple(prefixes))
                  and not k.startswith('qos_overrides.'))


def to_ros(params) -> dict:
    """Flat parameter values of a dataclass, as a param file or declare_parameter wants."""
    out = {}
    for key, value in asdict(params).items():
        if isinstance(value, dict):
            out.update({f'{key}.{k}': _ros_value(v) for k, v in value.items()})
        else:
            out[key] = _ros_value(value)
    return out


def _ros_value(value):
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------- tasks and dims

def resolve_task(robot: str, task: str) -> str:
    """Full task name from a short alias: ('ur5', 'reacher_2d') -> 'ur5_reacher_2d'."""
    family = ROBOT_FAMILY.get(robot)
    name = task if task in TASKS else f'{family}_{task}'
    if name not in TASKS:
        choices = sorted(n for n, t in TASKS.items() if t.robot == family)
        short = sorted(n[len(family) + 1:] for n in choices)
        raise ParamError(f'unknown task {task!r} for robot {robot!r}; choose from '
                         f'{choices} or their short names {short}')
    if TASKS[name].robot != family:
        raise ParamError(f'task {name!r} is for robot {TASKS[name].robot!r}, not {robot!r}')
    return name


def task_dims(task: Task) -> tuple[int, int]:
    """(obs_dim, act_dim) of ArmEnv on this task: joint positions and velocities of the
    actuated joints, target (3), end effector minus target (3), previous action."""
    n = len(task.actuated)
    return 3 * n + 6, n


def env_id(task_name: str) -> str:
    """The gymnasium id of the task on the in-process twin ('' if none), so a checkpoint
    written by the learner node can be evaluated with ``trpo-robot eval``."""
    from trpo_robot.envs import ARM_ENVS
    return next((i for i, t in ARM_ENVS.items() if t == task_name), '')


# ---------------------------------------------------------------- parameter files

def read_param_file(path) -> dict:
    """The raw mapping of a ROS 2 parameter file, checked for the expected shape."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f'parameter file {path} does not exist') from None
    except yaml.YAMLError as e:
        raise ParamError(f'{path} is not valid YAML: {e}') from None
    if not isinstance(data, dict) or not data:
        raise ParamError(f'{path}: expected a mapping of node names to ros__parameters')
    for selector, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get('ros__parameters'), dict):
            raise ParamError(f'{path}: section {selector!r} has no ros__parameters mapping')
    return data


def _flatten(d, prefix=''):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _matches(selector: str, node: str, namespace: str) -> bool:
    """Does a parameter-file section apply to /namespace/node? ('/**', names, wildcards)."""
    full = f'{namespace.rstrip("/")}/{node}'
    if selector in ('/**', '**', node, full, f'/**/{node}'):
        return True
    return selector.lstrip('/') == full.lstrip('/')


def node_parameters(paths, node: str, namespace: str = '/') -> dict:
    """Flat parameter values that these files give to one node, later files winning."""
    values = {}
    for path in paths:
        for selector, body in read_param_file(path).items():
            if _matches(str(selector), node, namespace):
                values.update(_flatten(body['ros__parameters']))
    return values


def write_param_file(path, values: dict, selector: str = '/**') -> Path:
    """Write flat values (dotted keys nest) as a ROS 2 parameter file."""
    nested = {}
    for key, value in values.items():
        parts = key.split('.')
        d = nested
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = list(value) if isinstance(value, tuple) else value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({selector: {'ros__parameters': nested}}, sort_keys=False))
    return path
