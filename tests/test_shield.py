"""SafetyShield: the guarantees under any command sequence, and each rule on its own."""
import math

from hypothesis import assume, given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from trpo_robot.paths import urdf_path
from trpo_robot.robot.backend import JointState
from trpo_robot.robot.shield import Intervention, SafetyShield, ShieldConfig
from trpo_robot.robot.spec import RobotSpec

DT = 0.008
TOL = 1e-12

# Two links with tight limits, so that command sequences of a few hundred periods reach them.
TIGHT = """<robot name="tight">
  <link name="base"/><link name="a"/><link name="b"/><link name="tip"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="a"/>
    <axis xyz="0 0 1"/><limit lower="-0.6" upper="0.4" velocity="2" effort="1"/></joint>
  <joint name="j2" type="revolute"><parent link="a"/><child link="b"/>
    <origin xyz="0.3 0 0"/><axis xyz="0 1 0"/>
    <limit lower="-0.3" upper="0.5" velocity="3" effort="1"/></joint>
  <joint name="tip_fixed" type="fixed"><parent link="b"/><child link="tip"/>
    <origin xyz="0.2 0 0.05"/></joint>
</robot>"""

UR5_HOME = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
DXL_HOME = np.array([0.0, 0.4, 0.8])


class Clock:
    """A settable clock, so that stamps are fresh or stale on purpose."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture(scope='module')
def tight():
    return RobotSpec.from_urdf_string(TIGHT)


@pytest.fixture(scope='module')
def ur5():
    return RobotSpec.from_urdf(urdf_path('ur5'))


@pytest.fixture(scope='module')
def dxl():
    return RobotSpec.from_urdf(urdf_path('dxl_arm'))


def box_around(spec, q, half):
    centre = spec.fk(q)
    return tuple(centre - half), tuple(centre + half)


def make(spec, clock=None, **overrides):
    config = ShieldConfig(**{'max_acceleration': 3.0, **overrides})
    clock = clock or Clock()
    return SafetyShield(spec, config, DT, clock=clock), clock


def state(q, clock, velocity=None, age=0.0):
    q = np.asarray(q, dtype=float)
    velocity = np.zeros_like(q) if velocity is None else velocity
    return JointState(q, velocity, clock.t - age)


# ---------------------------------------------------------------- hypothesis strategies

WILD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e9, -1e9, 0.0]),
    st.floats(-5.0, 5.0),
)


def commands(n):
    """Mostly well-formed commands with wild values, sometimes wrong shapes or types."""
    vector = st.lists(WILD, min_size=n, max_size=n)
    odd = st.one_of(st.lists(st.floats(-1, 1), min_size=0, max_size=n + 2)
                    .filter(lambda v: len(v) != n),
                    st.just('fast'), st.just(None), st.just([[0.1] * n]))
    return st.one_of(vector, vector, vector, vector, odd)


def segments(n, scale):
    """Held commands: a value per joint and how many periods to hold it (like an agent)."""
    value = st.one_of(st.floats(-scale, scale), st.sampled_from([math.nan, math.inf, 1e9]))
    return st.lists(st.tuples(st.lists(value, min_size=n, max_size=n),
                              st.integers(1, 60)), min_size=1, max_size=12)


def check_step(shield, sent, flags, previous):
    assert isinstance(flags, Intervention)
    assert np.all(np.isfinite(sent))
    assert np.all(np.abs(sent) <= shield.velocity_limit + TOL)
    assert np.all(np.abs(sent - previous) <= shield.acceleration_limit * DT + TOL)


def run_kinematic(shield, clock, spec, q, plan, on_step):
    """Integrate q += sent * dt under the shield; on_step(q, sent, flags) after every step."""
    previous = np.zeros(spec.dof)
    for value, hold in plan:
        for _ in range(hold):
            sent, flags = shield.filter(state(q, clock, previous), value)
            check_step(shield, sent, flags, previous)
            q = q + sent * DT
            previous = sent
            clock.t += DT
            on_step(q, sent, flags)
    return q


# ---------------------------------------------------------------- guarantees

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_sequence_obeys_velocity_and_acceleration(data, ur5):
    """Any state within limits, any commands, stale or fresh: sent is finite and limited."""
    shield, clock = make(ur5, max_velocity=0.3,
                         workspace_low=box_around(ur5, UR5_HOME, 0.2)[0],
                         workspace_high=box_around(ur5, UR5_HOME, 0.2)[1])
    previous = np.zeros(6)
    for _ in range(data.draw(st.integers(1, 40))):
        q = np.array(data.draw(st.lists(st.floats(-6.28, 6.28), min_size=6, max_size=6)))
        age = data.draw(st.sampled_from([0.0, 0.0, 0.0, 0.01, 1.0, math.nan]))
        sent, flags = shield.filter(state(q, clock, age=age), data.draw(commands(6)))
        check_step(shield, sent, flags, previous)
        previous = sent
        clock.t += DT


@settings(max_examples=60, deadline=None)
@given(start=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2), plan=segments(2, 4.0))
def test_kinematic_arm_stays_within_joint_limits(start, plan, tight):
    shield, clock = make(tight, velocity_scale=1.0, position_margin=0.02)
    q0 = shield.soft_lower + np.array(start) * (shield.soft_upper - shield.soft_lower)

    def inside(q, sent, flags):
        assert np.all(q >= shield.soft_lower - 1e-9) and np.all(q <= shield.soft_upper + 1e-9)

    run_kinematic(shield, clock, tight, q0, plan, inside)


@pytest.mark.parametrize('robot', ['ur5', 'dxl'])
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(offset=st.lists(st.floats(-0.08, 0.08), min_size=6, max_size=6),
       plan=segments(6, 3.0), data=st.data())
def test_kinematic_arm_keeps_end_effector_in_box(robot, offset, plan, data, request):
    spec = request.getfixturevalue(robot)
    home = UR5_HOME if robot == 'ur5' else DXL_HOME
    low, high = box_around(spec, home, np.array([0.12, 0.1, 0.08]) * spec.reach)
    shield, clock = make(spec, velocity_scale=0.4, max_acceleration=4.0,
                         workspace_low=low, workspace_high=high)
    q0 = home + np.array(offset[:spec.dof])
    assume(np.all(spec.fk(q0) > low) and np.all(spec.fk(q0) < high))
    plan = [(value[:spec.dof], hold) for value, hold in plan]

    def inside(q, sent, flags):
        p = spec.fk(q)
        assert np.all(p >= np.array(low) - 1e-9) and np.all(p <= np.array(high) + 1e-9)
        assert np.all(q >= shield.soft_lower - 1e-9) and np.all(q <= shield.soft_upper + 1e-9)

    run_kinematic(shield, clock, spec, q0, plan, inside)


# ---------------------------------------------------------------- rule by rule

def test_fresh_command_within_limits_passes_unchanged(ur5):
    shield, clock = make(ur5, max_velocity=0.3)
    shield.reset(state(UR5_HOME, clock, np.full(6, 0.1)))
    command = np.array([0.1, 0.11, 0.09, 0.1, 0.1, 0.1])
    sent, flags = shield.filter(state(UR5_HOME, clock), command)
    np.testing.assert_array_equal(sent, command)
    assert flags == Intervention.NONE


def test_velocity_and_acceleration_flags(tight):
    shield, clock = make(tight, velocity_scale=0.5)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    sent, flags = shield.filter(state(centre, clock), [0.01, 0.0])
    assert flags == Intervention.NONE
    sent, flags = shield.filter(state(centre, clock), [10.0, 0.0])
    assert flags == Intervention.VELOCITY_CLIP | Intervention.ACCEL_LIMIT
    np.testing.assert_allclose(sent, [0.01 + 3.0 * DT, 0.0])
    for _ in range(100):
        sent, flags = shield.filter(state(centre, clock), [10.0, 0.0])
    assert flags == Intervention.VELOCITY_CLIP
    np.testing.assert_allclose(sent, [1.0, 0.0])  # 0.5 x the URDF's 2 rad/s


def test_position_limit_brakes_before_the_limit(tight):
    shield, clock = make(tight, velocity_scale=1.0, position_margin=0.02)
    q = np.array([shield.soft_upper[0] - 0.01, 0.0])
    shield.reset(state(q, clock, np.array([0.3, 0.0])))
    sent, flags = shield.filter(state(q, clock), [1.0, 0.0])
    assert flags & Intervention.POSITION_LIMIT
    assert 0.0 <= sent[0] < 0.3
    # moving away from the limit is never held back by it
    shield.reset()
    sent, flags = shield.filter(state([shield.soft_upper[0] + 0.01, 0.0], clock), [-0.02, 0.0])
    np.testing.assert_allclose(sent, [-0.02, 0.0])
    assert flags == Intervention.NONE


def test_stale_state_brakes(tight):
    shield, clock = make(tight, stale_periods=5.0)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    shield.reset(state(centre, clock, np.array([0.5, -0.5])))
    for age in (6 * DT, -6 * DT, math.nan):
        before = shield.last_sent
        sent, flags = shield.filter(state(centre, clock, age=age), [0.5, -0.5])
        assert flags == Intervention.STALE_STATE
        np.testing.assert_allclose(np.abs(sent), np.maximum(np.abs(before) - 3.0 * DT, 0))
    sent, flags = shield.filter(state(centre, clock, age=4 * DT), [0.0, 0.0])
    assert not flags & Intervention.STALE_STATE


def test_non_finite_and_bad_shape_brake_at_max_acceleration(tight):
    shield, clock = make(tight)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    shield.reset(state(centre, clock, np.array([0.1, -0.05])))
    sent, flags = shield.filter(state(centre, clock), [math.nan, 0.0])
    assert flags == Intervention.NON_FINITE
    np.testing.assert_allclose(sent, [0.1 - 3.0 * DT, -0.05 + 3.0 * DT])
    sent, flags = shield.filter(state([math.inf, 0.0], clock), [0.0, 0.0])
    assert flags == Intervention.NON_FINITE
    for bad in ([0.1], 'fast', None, [[0.1, 0.1]], [0.1, 0.1, 0.1]):
        assert shield.filter(state(centre, clock), bad)[1] == Intervention.BAD_SHAPE
    assert shield.filter(state([0.0], clock), [0.0, 0.0])[1] == Intervention.BAD_SHAPE
    assert shield.filter(JointState(centre, centre, None), [0.0, 0.0])[1] == \
        Intervention.BAD_SHAPE
    np.testing.assert_array_equal(shield.last_sent, [0.0, 0.0])


def test_estop_latches_until_released(tight):
    shield, clock = make(tight, estop_deceleration=12.0)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    shield.reset(state(centre, clock, np.array([0.5, -0.5])))
    shield.engage_estop('operator')
    shield.engage_estop('later')
    assert shield.estopped and shield.estop_reason == 'operator'
    sent, flags = shield.filter(state(centre, clock), [0.5, -0.5])
    assert flags == Intervention.ESTOP
    np.testing.assert_allclose(sent, [0.5 - 12.0 * DT, -0.5 + 12.0 * DT])
    for _ in range(20):
        sent, flags = shield.filter(state(centre, clock), [0.5, -0.5])
        assert flags == Intervention.ESTOP
    np.testing.assert_array_equal(sent, [0.0, 0.0])
    shield.release_estop()
    assert not shield.estopped
    sent, flags = shield.filter(state(centre, clock), [0.01, 0.0])
    assert flags == Intervention.NONE


def test_workspace_drives_back_from_outside(ur5):
    low, high = box_around(ur5, UR5_HOME, 0.1)
    shield, clock = make(ur5, max_velocity=0.3, workspace_low=low, workspace_high=high)
    q = UR5_HOME + np.array([0.0, 0.25, 0.0, 0.0, 0.0, 0.0])  # lifts the ee out of the box
    p = ur5.fk(q)
    assert not (np.all(p > low) and np.all(p < high))
    sent, flags = shield.filter(state(q, clock), np.zeros(6))
    assert flags & Intervention.WORKSPACE
    nearest = np.clip(p, low, high)
    assert (ur5.jacobian(q) @ sent) @ (nearest - p) > 0  # the ee heads for the box
    previous = sent
    for step in range(400):
        q = q + sent * DT
        clock.t += DT
        sent, flags = shield.filter(state(q, clock), -np.ones(6))  # asks to leave
        check_step(shield, sent, flags, previous)
        previous = sent
        if np.all(ur5.fk(q) > low) and np.all(ur5.fk(q) < high):
            break
    assert np.all(ur5.fk(q) >= low) and np.all(ur5.fk(q) <= high), 'never got back inside'


def test_workspace_blocks_leaving_and_allows_returning(dxl):
    low, high = box_around(dxl, DXL_HOME, 0.03)
    shield, clock = make(dxl, velocity_scale=0.2, max_acceleration=10.0,
                         workspace_low=low, workspace_high=high)
    upward = np.linalg.pinv(dxl.jacobian(DXL_HOME)) @ np.array([0.0, 0.0, 1.0])
    upward *= 0.9 * shield.velocity_limit.min() / np.abs(upward).max()
    q, flags_seen = DXL_HOME.copy(), Intervention.NONE
    for _ in range(300):
        sent, flags = shield.filter(state(q, clock), upward)
        flags_seen |= flags
        q = q + sent * DT
        clock.t += DT
        assert np.all(dxl.fk(q) >= low) and np.all(dxl.fk(q) <= high)
    assert flags_seen & Intervention.WORKSPACE
    clearance = min(np.min(dxl.fk(q) - low), np.min(high - dxl.fk(q)))
    assert clearance < 0.01  # it got close to a wall, rather than stopping far from it
    sent, flags = shield.filter(state(q, clock), -upward)
    assert not flags & Intervention.WORKSPACE


def test_reset_takes_the_measured_velocity(tight):
    shield, clock = make(tight, velocity_scale=0.5)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    shield.reset(state(centre, clock, np.array([5.0, -0.2])))
    np.testing.assert_allclose(shield.last_sent, [1.0, -0.2])
    shield.reset(state(centre, clock, np.array([math.nan, 0.0])))
    np.testing.assert_array_equal(shield.last_sent, [0.0, 0.0])
    shield.reset()
    np.testing.assert_array_equal(shield.last_sent, [0.0, 0.0])


def test_sent_is_a_fresh_array(tight):
    shield, clock = make(tight)
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    first, _ = shield.filter(state(centre, clock), [0.01, 0.0])
    second, _ = shield.filter(state(centre, clock), [0.02, 0.0])
    assert first[0] == 0.01 and second[0] == 0.02


@pytest.mark.parametrize('overrides, message', [
    ({'velocity_scale': 0.0}, 'velocity_scale'),
    ({'velocity_scale': 1.5}, 'velocity_scale'),
    ({'max_velocity': -1.0}, 'max_velocity'),
    ({'max_acceleration': math.inf}, 'max_acceleration'),
    ({'position_margin': -0.1}, 'position_margin'),
    ({'workspace_low': (0, 0, 0)}, 'both'),
    ({'workspace_low': (0, 0, 0), 'workspace_high': (1, 1, 0)}, 'low < high'),
    ({'workspace_low': (0, 0), 'workspace_high': (1, 1)}, '3 values'),
    ({'stale_periods': 0.0}, 'stale_periods'),
])
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        ShieldConfig(**overrides)


def test_shield_validation_against_the_spec(tight):
    with pytest.raises(ValueError, match='leaves no room'):
        make(tight, position_margin=0.45)
    with pytest.raises(ValueError, match='estop_deceleration'):
        make(tight, max_acceleration=3.0, estop_deceleration=1.0)
    with pytest.raises(ValueError, match='3 values for 2 joints'):
        make(tight, max_acceleration=(1.0, 2.0, 3.0))
    continuous = RobotSpec.from_urdf_string(TIGHT.replace(
        'type="revolute"', 'type="continuous"', 1).replace(
        '<limit lower="-0.6" upper="0.4" velocity="2" effort="1"/>', ''))
    with pytest.raises(ValueError, match='max_velocity'):
        make(continuous)
    shield, clock = make(continuous, max_velocity=(1.0, 1.0))
    sent, _ = shield.filter(state([100.0, 0.0], clock), [0.01, 0.0])
    assert sent[0] == 0.01  # a continuous joint has no position window


def test_config_is_frozen_and_hashable():
    config = ShieldConfig(max_velocity=[0.3, 0.3], workspace_low=np.zeros(3),
                          workspace_high=np.ones(3))
    assert config.max_velocity == (0.3, 0.3) and config.workspace_high == (1.0, 1.0, 1.0)
    hash(config)
    with pytest.raises(AttributeError):
        config.velocity_scale = 1.0


def test_a_view_at_another_period_is_the_same_shield_with_that_periods_steps(tight):
    shield, clock = make(tight)
    tick = shield.at_period(DT / 4)
    assert shield.at_period(DT / 4) is tick and tick.at_period(DT) is shield
    centre = 0.5 * (shield.soft_lower + shield.soft_upper)
    shield.filter(state(centre, clock), [0.3, -0.3])  # the agent's step: 3.0 * DT per joint
    np.testing.assert_array_equal(tick.last_sent, shield.last_sent)
    sent, _ = tick.filter(state(centre, clock), [0.0, 0.0])  # braking starts from it
    np.testing.assert_allclose(sent, shield.last_sent)
    np.testing.assert_allclose(np.abs(sent), 3.0 * DT - 3.0 * DT / 4)
    tick.engage_estop('pad')
    assert shield.estopped and shield.estop_reason == 'pad'
    shield.release_estop()
    assert not tick.estopped
    too_old = state(centre, clock, age=1.1 * shield.config.stale_periods * DT)
    assert tick.filter(too_old, [0.0, 0.0])[1] == Intervention.STALE_STATE  # same seconds
    fresh = state(centre, clock, age=0.9 * shield.config.stale_periods * DT)
    assert tick.filter(fresh, [0.0, 0.0])[1] != Intervention.STALE_STATE
