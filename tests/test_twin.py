"""The MuJoCo twin: real MuJoCo, no mocks, each test a fraction of a second of sim time."""
import time

import mujoco
import numpy as np
import pytest

from trpo_robot.paths import urdf_path
from trpo_robot.robot.backend import Backend, JointState
from trpo_robot.twin import build_model, load_settings, MujocoBackend, Randomization, substeps

ROBOTS = ('ur5', 'ur5e', 'dxl')
RANDOMIZATIONS = {'nominal': None, 'randomized': Randomization()}


def _warnings(data):
    """Every MuJoCo warning counter, by name, as mujoco_menagerie's model test reads them."""
    return {mujoco.mjtWarning(i).name: data.warning[i].number
            for i in range(mujoco.mjtWarning.mjNWARNING)}


def _quiet(robot, **kwargs):
    return MujocoBackend(robot, noise_std=0.0, **kwargs)


@pytest.mark.parametrize('robot', ROBOTS)
@pytest.mark.parametrize('variant', RANDOMIZATIONS)
def test_every_twin_steps_a_second_cleanly(robot, variant):
    with _quiet(robot, randomization=RANDOMIZATIONS[variant], seed=7) as twin:
        twin.send_velocity(np.full(len(twin.joint_names), 0.2))
        twin.advance(0.5)
        twin.send_velocity(np.zeros(len(twin.joint_names)))
        twin.advance(0.5)
        assert twin.now() == pytest.approx(1.0)
        assert all(n == 0 for n in _warnings(twin.data).values()), _warnings(twin.data)
        assert np.all(np.isfinite(twin.data.qpos)) and np.all(np.isfinite(twin.data.qvel))


@pytest.mark.parametrize('robot', ROBOTS)
@pytest.mark.parametrize('variant', RANDOMIZATIONS)
def test_zero_command_holds_against_gravity_after_a_move(robot, variant):
    """The move changes the gravity load, so the servos must take up the new load."""
    with _quiet(robot, randomization=RANDOMIZATIONS[variant], seed=7) as twin:
        twin.send_velocity(np.full(len(twin.joint_names), -0.3))
        twin.advance(0.4)
        twin.stop()
        twin.advance(0.3)
        held = twin.read().position
        twin.advance(1.0)
        assert np.abs(twin.read().position - held).max() < 0.01


def test_a_ur5_stretched_by_a_move_holds_against_gravity():
    """Upper and forearm horizontal put the most gravity torque on the shoulder."""
    with _quiet('ur5') as twin:
        twin.reset_state(np.array([0.0, -0.4, 0.0, -1.5, 0.0, 0.0]))
        twin.send_velocity([0.0, 0.4, 0.0, 0.0, 0.0, 0.0])
        twin.advance(1.0)
        twin.stop()
        twin.advance(0.2)
        held = twin.read().position
        assert abs(held[1]) < 0.05  # stretched out
        twin.advance(1.0)
        assert np.abs(twin.read().position - held).max() < 0.01


@pytest.mark.parametrize('robot, command', [
    ('ur5', [0.3, -0.3, 0.3, -0.3, 0.3, -0.3]),
    ('ur5e', [1.0, 0.5, -0.5, 1.0, -1.0, 2.0]),
    ('dxl', [0.5, -0.5, 0.3]),
])
def test_velocity_commands_are_tracked(robot, command):
    command = np.array(command)
    with _quiet(robot) as twin:
        twin.send_velocity(command)
        twin.advance(0.2)
        for _ in range(5):
            twin.advance(twin.period)
            np.testing.assert_allclose(twin.read().velocity, command,
                                       rtol=0.1, atol=1e-6)


def test_commands_beyond_the_velocity_limit_saturate_at_it():
    with _quiet('dxl') as twin:
        twin.send_velocity([10.0, 0.0, 0.0])
        twin.advance(0.05)
        assert twin.held_command()[0] == pytest.approx(4.817)


@pytest.mark.parametrize('periods', [0, 1, 3])
def test_latency_delays_the_command_by_whole_periods(periods):
    with _quiet('ur5', latency=periods * 0.008) as twin:
        command = np.full(6, 0.2)
        twin.send_velocity(command)
        for _ in range(periods):
            np.testing.assert_array_equal(twin.held_command(), 0.0)
            twin.advance(twin.period)
        np.testing.assert_array_equal(twin.held_command(), command)


def test_latency_shows_in_the_motion():
    with _quiet('ur5', latency=0.016) as twin:
        twin.send_velocity(np.full(6, 0.3))
        twin.advance(0.016)
        assert np.abs(twin.read().velocity).max() < 0.01
        twin.advance(0.1)
        assert np.abs(twin.read().velocity - 0.3).max() < 0.03


def test_latency_rounds_to_physics_steps_and_default_is_one_period():
    assert _quiet('ur5').latency == pytest.approx(0.008)
    assert _quiet('dxl').latency == pytest.approx(0.01)
    assert _quiet('ur5', latency=0.0031).latency == pytest.approx(0.004)


def test_randomized_latency_adds_whole_periods():
    fixed = Randomization(latency_periods=(2, 2))
    assert _quiet('ur5', randomization=fixed).latency == pytest.approx(0.008 * 3)


def test_stop_drops_commands_in_flight():
    with _quiet('ur5', latency=0.016) as twin:
        twin.send_velocity(np.full(6, 0.5))
        twin.advance(0.008)
        twin.stop()
        twin.advance(0.1)
        np.testing.assert_array_equal(twin.held_command(), 0.0)
        assert np.abs(twin.read().velocity).max() < 1e-3


def _model_numbers(model):
    return np.concatenate([model.body_mass, model.body_inertia.ravel(), model.dof_damping,
                           model.dof_frictionloss, model.geom_friction.ravel()])


def test_randomization_is_reproducible_per_seed():
    rand = Randomization()
    same = [_model_numbers(build_model('ur5', rand, seed=3)) for _ in range(2)]
    other = _model_numbers(build_model('ur5', rand, seed=4))
    nominal = _model_numbers(build_model('ur5'))
    np.testing.assert_array_equal(same[0], same[1])
    assert not np.allclose(same[0], other)
    assert not np.allclose(same[0], nominal)


def test_randomized_masses_stay_in_range():
    nominal = build_model('dxl').body_mass
    scaled = build_model('dxl', Randomization(mass_scale=(0.9, 1.1)), seed=1).body_mass
    moving = nominal > 0
    ratio = scaled[moving] / nominal[moving]
    assert np.all((ratio >= 0.9 - 1e-12) & (ratio <= 1.1 + 1e-12))


def test_same_seed_same_readings_other_seed_other_readings():
    def readings(seed):
        with MujocoBackend('dxl', noise_std=0.01, seed=seed) as twin:
            return np.array([twin.read().position for _ in range(3)])
    np.testing.assert_array_equal(readings(1), readings(1))
    assert not np.allclose(readings(1), readings(2))


def test_sensor_noise_has_the_configured_std():
    with MujocoBackend('ur5', noise_std=(0.01, 0.05)) as twin:
        truth_q = twin.data.qpos.copy()
        truth_v = twin.data.qvel.copy()
        states = [twin.read() for _ in range(2000)]
    q_err = np.array([s.position for s in states]) - truth_q
    v_err = np.array([s.velocity for s in states]) - truth_v
    assert np.std(q_err) == pytest.approx(0.01, rel=0.05)
    assert np.std(v_err) == pytest.approx(0.05, rel=0.05)
    assert abs(np.mean(q_err)) < 0.001


def test_zero_noise_reads_the_true_state():
    with _quiet('ur5') as twin:
        np.testing.assert_array_equal(twin.read().position, twin.data.qpos)


def test_paced_mode_is_not_faster_than_scaled_sim_time():
    with _quiet('ur5', mode='paced', real_time_factor=10.0) as twin:
        start = time.monotonic()
        for _ in range(10):
            twin.advance(0.04)
        elapsed = time.monotonic() - start
    assert twin.now() == pytest.approx(0.4)
    assert elapsed >= 0.4 / 10.0 - 0.005


def test_short_advances_add_up_to_whole_periods():
    with _quiet('ur5') as twin:
        twin.advance(0.005)
        assert twin.now() == 0.0
        twin.advance(0.005)
        assert twin.now() == pytest.approx(0.008)
        twin.advance(0.006)
        assert twin.now() == pytest.approx(0.016)


def test_driver_period_and_substeps_per_robot():
    assert [(load_settings(r).period, load_settings(r).n_substeps) for r in ROBOTS] == [
        (0.008, 4), (0.002, 1), (0.01, 5)]


def test_a_period_that_is_not_a_whole_number_of_steps_is_refused():
    with pytest.raises(ValueError, match='whole multiple'):
        substeps(0.008, 0.003)
    assert substeps(0.01, 0.002) == 5


def test_it_is_a_backend_and_reads_a_joint_state():
    with _quiet('dxl') as twin:
        assert isinstance(twin, Backend)
        state = twin.read()
        assert isinstance(state, JointState)
        assert twin.joint_names == ('joint1', 'joint2', 'joint3')
        assert state.position.shape == state.velocity.shape == (3,)
        np.testing.assert_allclose(state.position, load_settings('dxl').home, atol=1e-3)


def test_body_positions_run_base_to_ee_and_end_at_the_ee():
    with _quiet('ur5') as twin:
        bodies = twin.body_positions()
        assert list(bodies)[0] == 'base_link' and list(bodies)[-1] == 'tool0'
        assert len(bodies) == 8
        np.testing.assert_allclose(bodies['tool0'], twin.ee_position())


def test_ee_position_agrees_with_the_robot_layer_fk():
    from trpo_robot.robot.spec import RobotSpec
    spec = RobotSpec.from_urdf(urdf_path('dxl_arm'), ee_link='ee_link')
    with _quiet('dxl') as twin:
        for q in ([0.0, 0.0, 0.0], [1.0, -0.7, 1.9], [-2.0, 1.2, -0.4]):
            twin.reset_state(np.array(q))
            np.testing.assert_allclose(twin.ee_position(), spec.fk(np.array(q)), atol=1e-9)


def test_set_target_moves_the_marker_without_touching_the_arm():
    with _quiet('ur5') as twin:
        before = twin.read().position
        twin.set_target([0.3, -0.2, 0.5])
        twin.advance(0.1)
        np.testing.assert_allclose(twin.data.site('target').xpos, [0.3, -0.2, 0.5])
        assert np.abs(twin.read().position - before).max() < 0.01


def test_reset_state_teleports_and_holds():
    with _quiet('dxl') as twin:
        twin.send_velocity([1.0, 1.0, 1.0])
        twin.advance(0.1)
        clock = twin.now()
        twin.reset_state(np.array([0.2, -0.3, 0.4]))
        assert twin.now() == clock  # the clock never runs backwards
        twin.advance(0.5)
        np.testing.assert_allclose(twin.read().position, [0.2, -0.3, 0.4], atol=0.01)


@pytest.mark.parametrize('call, args', [
    ('send_velocity', ([0.1, 0.2],)),
    ('send_velocity', ([0.1, np.nan, 0.0],)),
    ('send_velocity', (['a', 'b', 'c'],)),
    ('advance', (-0.1,)),
    ('advance', (float('inf'),)),
    ('reset_state', ([0.0, 0.0, 3.0],)),
    ('reset_state', ([0.0, 0.0],)),
    ('set_target', ([0.0, 0.0],)),
    ('set_target', ([0.0, np.inf, 0.0],)),
])
def test_bad_input_is_a_clear_value_error(call, args):
    with _quiet('dxl') as twin:
        with pytest.raises(ValueError):
            getattr(twin, call)(*args)


@pytest.mark.parametrize('kwargs', [
    {'robot': 'ur10'}, {'mode': 'turbo'}, {'real_time_factor': 0.0}, {'latency': -0.01},
    {'noise_std': -1.0},
])
def test_bad_construction_is_a_clear_value_error(kwargs):
    with pytest.raises(ValueError):
        MujocoBackend(**kwargs)


def test_a_closed_backend_refuses_calls():
    twin = _quiet('dxl')
    twin.close()
    with pytest.raises(RuntimeError, match='closed'):
        twin.read()
