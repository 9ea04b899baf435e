"""The arm contract: what every backend must implement, what it may declare, the defaults
the layers above rely on when it does not, and that nothing above probes a backend."""
import ast
from pathlib import Path

from dxl_support import dxl_config, dxl_spec
import gymnasium as gym
import numpy as np
import pytest
from twin_loop import TwinLoop

from trpo_robot.robot.backend import (Backend, Capabilities, check_backend, JointState,
                                      OPTIONAL_MEMBERS, REQUIRED_MEMBERS)
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, Phase
from trpo_robot.robot.tasks import get_task

PACKAGE = Path(__file__).resolve().parents[1] / 'trpo_robot'
TASK = get_task('dxl_reacher')


class KinematicArm(Backend):
    """A perfect velocity-controlled arm with nothing optional: what a new robot starts as."""

    def __init__(self, joint_names=None, period=TASK.agent_dt / 4):
        self._names = tuple(joint_names or dxl_spec().joint_names)
        self._period = period
        self.q = np.array(TASK.home, float)
        self.v = np.zeros_like(self.q)
        self.t = 0.0

    @property
    def joint_names(self):
        return self._names

    @property
    def period(self):
        return self._period

    def now(self):
        return self.t

    def read(self):
        return JointState(self.q.copy(), self.v.copy(), self.t)

    def send_velocity(self, v):
        self.v = np.asarray(v, float).copy()

    def stop(self):
        self.v = np.zeros_like(self.q)

    def advance(self, duration):
        n = round(duration / self._period)
        self.q = self.q + self.v * n * self._period
        self.t += n * self._period

    def close(self):
        self.stop()


# -- every real backend ----------------------------------------------------------------

@pytest.fixture(scope='module')
def ros_node():
    """A node in a private context on a free, localhost-only domain (nothing is published)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from trpo_robot.ros import graph as G
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        mp.delenv('ROS_LOCALHOST_ONLY', raising=False)
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=G.free_domain_id(),
                   signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node('backend_contract', context=context)
        yield node
        node.destroy_node()
        rclpy.shutdown(context=context)


def _twin(_):
    from trpo_robot.twin.backend import MujocoBackend
    return MujocoBackend('dxl')


def _dxl(_):
    from trpo_robot.hw.backend import DynamixelBackend
    return DynamixelBackend(dxl_config('/dev/null'), dxl_spec(), connect=False)


def _ros(node):
    from trpo_robot.ros.backend import RosBackend
    return RosBackend(node, ('a', 'b'), 0.008, state_topic='contract/joint_states',
                      command_topic='contract/command')


def _sim_ros(node):
    from trpo_robot.ros.backend import SimRosBackend
    return SimRosBackend(node, ('a', 'b'), 0.008, teleport_topic='contract/teleport',
                         state_topic='contract/joint_states', command_topic='contract/command')


REAL = {
    'MujocoBackend': (_twin, Capabilities(teleport=True, freedrive=True, seeded=True,
                                          target_marker=True, overruns=True)),
    'DynamixelBackend': (_dxl, Capabilities(freedrive=True, lateness=True)),
    'RosBackend': (_ros, Capabilities(freedrive=True, lateness=True, overruns=True,
                                      driver_ticks=True)),
    'SimRosBackend': (_sim_ros, Capabilities(teleport=True, freedrive=True, lateness=True,
                                             overruns=True, driver_ticks=True)),
}


@pytest.mark.parametrize('name', sorted(REAL))
def test_every_real_backend_keeps_the_contract_and_declares_what_it_has(name, request):
    build, expected = REAL[name]
    node = request.getfixturevalue('ros_node') if 'Ros' in name else None
    backend = build(node)
    try:
        assert type(backend).__name__ == name
        check_backend(backend)
        assert backend.capabilities == expected
    finally:
        if node is None:
            backend.close()


def test_every_optional_member_has_a_flag_and_a_default():
    flags = {f for f in Capabilities.__dataclass_fields__}
    assert set(OPTIONAL_MEMBERS) == flags
    for members in OPTIONAL_MEMBERS.values():
        for member in members:
            assert member in vars(Backend), member
    assert not set(REQUIRED_MEMBERS) & {m for ms in OPTIONAL_MEMBERS.values() for m in ms}


# -- refusals --------------------------------------------------------------------------

def _arm_code():
    return {k: v for k, v in vars(KinematicArm).items() if k in REQUIRED_MEMBERS + ('__init__',)}


def _without(member, parent=Backend):
    """KinematicArm's own code minus one required member, as a class of its own."""
    body = _arm_code()
    del body[member]
    return type(f'Lacking_{member}', (parent,), body)


@pytest.mark.parametrize('member', REQUIRED_MEMBERS)
def test_a_backend_lacking_a_required_member_cannot_be_built_and_it_is_named(member):
    with pytest.raises(TypeError, match=f'Lacking_{member}.*{member}'):
        _without(member)()


def test_arm_env_refuses_an_object_that_is_not_a_backend_naming_what_it_lacks():
    duck = _without('read', parent=object)()
    with pytest.raises(TypeError, match=r'Lacking_read is not a trpo_robot.*lacks the '
                                        r'required read'):
        ArmEnv(duck, TASK, dxl_spec())
    complete = type('Duck', (), _arm_code())()
    with pytest.raises(TypeError, match='Duck is not a trpo_robot.robot.backend.Backend: '
                                        'subclass it'):
        ArmEnv(complete, TASK, dxl_spec())


class ClaimsTeleport(KinematicArm):
    capabilities = Capabilities(teleport=True)


class HalfFreedrive(KinematicArm):
    capabilities = Capabilities(freedrive=True)

    def set_freedrive(self, on):
        pass


class UndeclaredMarker(KinematicArm):
    def set_target(self, xyz):
        pass


class UndeclaredLateness(KinematicArm):
    def __init__(self):
        super().__init__()
        self.lateness = 0.002


@pytest.mark.parametrize('cls, message', [
    (ClaimsTeleport, 'ClaimsTeleport declares capabilities.teleport but does not implement '
                     'reset_state'),
    (HalfFreedrive, 'HalfFreedrive declares capabilities.freedrive but does not implement '
                    'freedrive$'),
    (UndeclaredMarker, 'UndeclaredMarker implements set_target but does not declare '
                       'capabilities.target_marker'),
    (UndeclaredLateness, 'UndeclaredLateness implements lateness but does not declare '
                         'capabilities.lateness'),
])
def test_a_declaration_that_disagrees_with_the_code_is_refused(cls, message):
    with pytest.raises(ValueError, match=message):
        ArmEnv(cls(), TASK, dxl_spec())


def test_capabilities_must_be_declared_with_the_dataclass():
    bad = type('Flags', (KinematicArm,), {'capabilities': {'teleport': True}})()
    with pytest.raises(TypeError, match='Flags.capabilities must be a Capabilities'):
        check_backend(bad)


# -- defaults --------------------------------------------------------------------------

def test_an_arm_without_optional_capabilities_gets_their_declared_defaults():
    arm = KinematicArm()
    env = ArmEnv(arm, TASK, dxl_spec())
    assert env.drive_resets  # no teleport: resets drive the arm through the shield
    obs, info = env.reset(seed=3)
    assert env.reset_seconds > 0 and 'twin' not in info  # nothing drawn to report
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape))
    assert info['timing']['lateness'] == 0.0
    with pytest.raises(NotImplementedError, match='KinematicArm cannot teleport'):
        arm.reset_state(arm.q)
    with pytest.raises(NotImplementedError, match='KinematicArm has no freedrive'):
        arm.set_freedrive(True)
    assert arm.redraw(5) == {} and not arm.drawn and arm.freedrive is False
    with pytest.raises(TypeError):
        arm.drawn['seed'] = 1  # the shared default cannot be changed by accident
    assert (arm.overruns, arm.reset_ticks, arm.last_send_wall) == (0, 0, None)
    t = arm.now()
    arm.advance_untimed()
    assert arm.now() == pytest.approx(t + arm.period)


def test_a_driven_reset_ends_at_the_start_pose():
    arm = KinematicArm()
    env = ArmEnv(arm, TASK, dxl_spec())
    env.reset(seed=7)
    reached = arm.q.copy()
    gym.Env.reset(env, seed=7)  # the same seed: the start pose that reset drew
    goal = env.start_pose()
    assert np.max(np.abs(goal - np.asarray(TASK.home))) > 0.02  # noise: it had to move
    np.testing.assert_allclose(reached, goal, atol=0.02)  # drive_to's tolerance


def _tick_until(lc, arm, phase, limit=2000):
    for _ in range(limit):
        if lc.phase is phase:
            return
        command = lc.tick(arm.read())
        if command is not None:
            arm.send_velocity(command)
        arm.advance_untimed()
    raise AssertionError(f'still {lc.phase}, not {phase}')


def test_a_freedrive_reset_without_the_capability_never_calls_the_backend():
    arm = KinematicArm()
    env = ArmEnv(arm, TASK, dxl_spec())
    lc = EpisodeLifecycle.for_env(env, LifecycleConfig(reset_mode='freedrive'))
    _tick_until(lc, arm, Phase.RESET)  # set_freedrive would raise, were it wired
    command = lc.tick(arm.read())
    assert lc.reset_mode == 'freedrive' and command is not None and not np.any(command)
    assert arm.freedrive is False


def test_a_freedrive_reset_with_the_capability_lets_the_arm_go():
    loop = TwinLoop(reset_mode='freedrive')
    try:
        assert not loop.backend.freedrive
        loop.until(Phase.RESET)
        assert loop.backend.freedrive
    finally:
        loop.env.close()


# -- no probing ------------------------------------------------------------------------

_PROBED = {m for members in OPTIONAL_MEMBERS.values() for m in members}


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ''


def probes(source):
    """Lines that ask a backend whether it has something: hasattr/getattr on an object
    named ...backend, or for an optional member of the contract on any object."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and _name(node.func) in ('hasattr', 'getattr')
                and len(node.args) >= 2):
            continue
        target, attr = node.args[0], node.args[1]
        named = isinstance(attr, ast.Constant) and attr.value in _PROBED
        if _name(target).endswith('backend') or named:
            found.append(node.lineno)
    return found


def test_the_probe_finder_finds_probes():
    source = '\n'.join([
        "hasattr(self.backend, 'anything')",
        "getattr(backend, 'lateness', 0.0)",
        "getattr(b, 'reset_ticks', 0)",
        "hasattr(arm.backend, 'model')",
        "getattr(args, 'port', None)",
        "hasattr(env, 'unwrapped')",
        "self.backend.lateness",
    ])
    assert probes(source) == [1, 2, 3, 4]


def test_nothing_in_the_package_probes_a_backend():
    found = {f'{path.relative_to(PACKAGE.parent)}:{line}'
             for path in sorted(PACKAGE.rglob('*.py'))
             for line in probes(path.read_text())}
    assert not found, f'declare a capability in robot/backend.py instead: {sorted(found)}'
