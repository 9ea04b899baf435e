"""The one definition of a learning graph: which node processes, in which namespaces, with
which parameter files, overrides and remaps.

launch/learn.launch.py turns this plan into launch_ros ``Node`` actions, `trpo-robot learn`
into ``graph.NodeProcess`` children; neither decides anything about the graph itself, so
the two cannot drift apart (tests/test_plan.py runs both and compares the live graphs).
No rclpy and no launch here: the plan is data.

One arm is the graph as it has always been (driver, command guard and actor in the given
namespace, one learner). A fleet of N arms gives each arm its own namespace ``arm1`` ..
``armN`` (or ``<namespace>1`` ..), its own driver, guard, actor and seed (the YAML's seed
plus the arm's index), and, on twins, its own sim clock: each twin's ``/clock`` is remapped
into its namespace, since N twins keep N different times. One learner consumes the
episodes of every actor and runs on the system clock (there is no single sim time).
"""
from dataclasses import dataclass, field

from trpo_robot.paths import checkpoint_folder
from trpo_robot.ros import params as P

DRIVERS = ('twin_node', 'dxl_driver_node')
"""Driver nodes this package can start; None in a plan: an external driver (the UR one)."""
EXECUTABLES = DRIVERS + ('guard_node', 'actor_node', 'learner_node')
FLEET_PREFIX = 'arm'


@dataclass(frozen=True)
class NodeSpec:
    """One node process: ``executable`` is both the console script in lib/trpo_robot and
    the module trpo_robot.ros.<executable>. ``params`` apply after ``param_files``."""

    executable: str
    name: str
    namespace: str = ''
    param_files: tuple = ()
    params: dict = field(default_factory=dict)
    remaps: dict = field(default_factory=dict)

    @property
    def fqn(self) -> str:
        return f'/{self.namespace}/{self.name}' if self.namespace else f'/{self.name}'

    @property
    def role(self) -> str:
        return role(self.executable)


def role(executable: str) -> str:
    """driver, guard, actor or learner: what a supervisor stops in which order."""
    if executable in DRIVERS:
        return 'driver'
    return {'guard_node': 'guard', 'actor_node': 'actor'}.get(executable, 'learner')


class PlanError(ValueError):
    """A graph that cannot be built; the message says which argument to change."""


def arm_namespaces(arms: int, namespace: str = '') -> list:
    """One arm keeps the namespace given (or none); a fleet numbers them from 1."""
    if arms < 1:
        raise PlanError(f'arms {arms}: at least one arm')
    ns = namespace.strip('/')
    if arms == 1:
        return [ns]
    return [f'{ns or FLEET_PREFIX}{k}' for k in range(1, arms + 1)]


def resolve(topic: str, namespace: str = '') -> str:
    """A relative topic name as a node in ``namespace`` resolves it (absolute ones stay)."""
    if topic.startswith('/'):
        return topic
    return f'/{namespace}/{topic}' if namespace else f'/{topic}'


def episode_topic(namespace: str) -> str:
    return resolve('actor_node/episodes', namespace)


def learning_graph(robot_yaml, learner_yaml, *, driver='twin_node', arms=1, namespace='',
                   use_sim_time=True, common=None, actor=None, learner=None,
                   driver_params=None, policy='', validation_override=False) -> list:
    """The node processes of one learning run, drivers first, actors last.

    robot_yaml/learner_yaml: parameter files every node (the learner: both) reads.
    common: overrides for every node; actor/learner/driver_params: for those alone.
    use_sim_time: the graph keeps the twin's time (per arm in a fleet).
    policy: a validated checkpoint every actor starts from and the learner resumes; every
    driver but the twin is hardware, where the actors are gated (validation/gate.py).
    """
    if driver not in DRIVERS + (None,):
        raise PlanError(f'driver {driver!r}: one of {DRIVERS} or None (an external one)')
    if arms > 1 and driver == 'dxl_driver_node' and 'port' in (driver_params or {}):
        raise PlanError('several arms on one serial port: a Dynamixel bus is one arm; '
                        'start one run per port')
    spaces = arm_namespaces(arms, namespace)
    base = {**(common or {}), 'use_sim_time': bool(use_sim_time)}
    learner = {**(learner or {})}
    if policy:
        policy = str(checkpoint_folder(policy))  # a run folder: its checkpoint
    actor = {**(actor or {}), **_gate(driver, policy, validation_override)}
    if policy and not learner.get('resume'):
        learner['resume'] = policy
    seed = _base_seed(robot_yaml, base, actor) if arms > 1 else None
    specs = []
    for index, ns in enumerate(spaces):
        specs += _arm(robot_yaml, ns, driver, base, actor or {}, driver_params or {},
                      None if seed is None else seed + index, fleet=arms > 1)
    lparams = {**base, **(learner or {}),
               'episode_topics': [episode_topic(ns) for ns in spaces]}
    if arms > 1:
        lparams['use_sim_time'] = False  # N twins keep N clocks; none is the learner's
    learner_spec = NodeSpec('learner_node', 'learner_node', '',
                            (str(robot_yaml), str(learner_yaml)), lparams)
    actors = [s for s in specs if s.role == 'actor']
    return [s for s in specs if s.role != 'actor'] + [learner_spec] + actors


def _gate(driver, policy, override) -> dict:
    gate = {'require_validation': driver != 'twin_node'}
    if policy:
        gate['policy_checkpoint'] = policy
    if override:
        gate['validation_override'] = True
    return gate


def _arm(robot_yaml, ns, driver, base, actor, driver_params, seed, fleet):
    own = {} if seed is None else {'seed': seed}
    remaps = {'/clock': f'/{ns}/clock'} if fleet and base['use_sim_time'] else {}
    files = (str(robot_yaml),)
    specs = []
    if driver:
        specs.append(NodeSpec(driver, driver, ns, files, {**base, **driver_params, **own},
                              dict(remaps)))
    specs.append(NodeSpec('guard_node', 'command_guard', ns, files, dict(base), dict(remaps)))
    specs.append(NodeSpec('actor_node', 'actor_node', ns, files, {**base, **actor, **own},
                          dict(remaps)))
    return specs


def _base_seed(robot_yaml, *overrides) -> int:
    seed = P.node_parameters([robot_yaml], 'actor_node').get('seed', P.RobotParams.seed)
    for values in overrides:
        seed = (values or {}).get('seed', seed)
    return int(seed)


def on_host(specs, only: str) -> list:
    """The part of a graph one host of a lab runs: '' all of it, 'learner' the learner,
    an arm's namespace (arm2) that arm's driver, guard and actor."""
    if not only:
        return list(specs)
    part = [s for s in specs if (s.role == 'learner') == (only == 'learner')
            and (only == 'learner' or s.namespace == only.strip('/'))]
    if not part:
        arms = sorted({s.namespace for s in specs if s.role == 'actor'})
        raise PlanError(f'only:={only}: no such part; the learner or one of {arms}')
    return part


STOP_RANK = {'actor': 0, 'learner': 1, 'guard': 2, 'driver': 3}
STOP_GRACE_S = 30.0
"""s a supervisor (trpo-robot learn, ros2 launch) leaves a node between SIGINT and the
next signal: the learner may be mid-update (about a second for a 4-arm fleet here, more on
a bigger network) and then writes its checkpoint; launch's own default is 5 s."""


def stop_order(processes, executable=lambda p: p.node) -> list:
    """Actors first (they stop the arms), then the learner (its checkpoint), the guards,
    the drivers last: the order that keeps arms safe and learning kept."""
    return sorted(processes, key=lambda p: STOP_RANK[role(executable(p))])
