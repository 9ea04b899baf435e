"""Twin conditions (randomization, latency, sensor noise) from every entry point: flags, a
ROS parameter file, Python; what the twin and the Dynamixel emulator then draw, for real
(real MuJoCo, the emulator on a real pty, the CLI as a subprocess)."""
import argparse
import json
from pathlib import Path
import subprocess
import sys

from dxl_support import connected_backend, running_emulator
import gymnasium as gym
import numpy as np
import pytest

from trpo_robot.errors import UsageError
from trpo_robot.ros import params as P
from trpo_robot.twin.backend import MujocoBackend
from trpo_robot.twin.conditions import (add_arguments, from_arguments, NOMINAL,
                                        TwinConditions)
from trpo_robot.twin.model import build_model
from trpo_robot.twin.randomization import Randomization
from trpo_robot.twin.settings import load_settings

CONFIG = Path(__file__).resolve().parent.parent / 'config'
FIXED_LATENCY = Randomization(latency_periods=(2, 2))


def _flags(*argv, base=NOMINAL):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_arguments(parser.parse_args(list(argv)), base)


# ---------------------------------------------------------------- flags

def test_no_flags_are_the_nominal_twin_and_give_no_backend_arguments():
    assert _flags() == NOMINAL and NOMINAL.backend_kwargs() == {}


def test_flags_fill_the_conditions():
    c = _flags('--randomize', '--latency', '0.02', '--noise', '0.001,0.01')
    assert c == TwinConditions(Randomization(), 0.02, (0.001, 0.01))
    assert c.backend_kwargs() == {'randomization': Randomization(), 'latency': 0.02,
                                  'noise_std': (0.001, 0.01)}
    assert _flags('--noise', '0').noise_std == (0.0, 0.0)  # one number: both


def test_flags_replace_only_what_they_name_and_randomize_keeps_the_base_ranges():
    base = TwinConditions(Randomization(mass_scale=(1.5, 1.5)), 0.03, (0.1, 0.2))
    assert _flags(base=base) == base
    assert _flags('--randomize', base=base).randomization.mass_scale == (1.5, 1.5)
    assert _flags('--latency', '0', base=base) == TwinConditions(
        base.randomization, 0.0, (0.1, 0.2))


@pytest.mark.parametrize('argv, words', [
    (['--latency', '-0.01'], '--latency -0.01'),
    (['--latency', 'nan'], '--latency nan'),
    (['--latency', 'soon'], '--latency soon'),
    (['--noise', '0.1,inf'], '--noise 0.1,inf'),
    (['--noise', '0.1,0.2,0.3'], 'POS_STD,VEL_STD'),
    (['--noise', ''], '--noise'),
])
def test_bad_flag_values_are_one_line_usage_errors(argv, words):
    with pytest.raises(UsageError) as error:
        _flags(*argv)
    assert words in str(error.value) and '\n' not in str(error.value)


def test_conditions_check_their_values_and_read_back_from_json():
    with pytest.raises(ValueError, match='latency'):
        TwinConditions(latency=-1.0)
    with pytest.raises(ValueError, match='velocity'):
        TwinConditions(noise_std=(0.0, float('nan')))
    c = TwinConditions(Randomization(latency_periods=(1, 3)), 0.01, (0.0, 0.5))
    assert TwinConditions.from_dict(json.loads(json.dumps(c.as_dict()))) == c
    assert TwinConditions.from_dict(NOMINAL.as_dict()) == NOMINAL


def test_the_light_modules_do_not_load_mujoco():
    """The CLI and the ROS parameter checks import these; MuJoCo costs a second."""
    code = ('import sys, trpo_robot.twin.conditions, trpo_robot.ros.params, trpo_robot.cli; '
            'print("mujoco" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == 'False'


# ---------------------------------------------------------------- ROS parameter files

def _robot_file(tmp_path, **values):
    data = P.node_parameters([CONFIG / 'dxl.yaml'], 'twin_node')
    return P.write_param_file(tmp_path / 'robot.yaml', {**data, **values})


@pytest.mark.parametrize('name', ('ur5.yaml', 'ur5e.yaml', 'dxl.yaml'))
def test_the_shipped_files_ask_for_the_nominal_twin(name):
    assert P.twin_conditions_from_file(CONFIG / name) == NOMINAL


def test_a_file_gives_its_conditions_and_unset_noise_stays_the_robots(tmp_path):
    path = _robot_file(tmp_path, twin_randomize=True, twin_mass_scale=[1, 2],
                       twin_latency_periods=[1.0, 3.0], twin_latency=0.02,
                       twin_position_noise=0.001)
    c = P.twin_conditions_from_file(path)
    assert c.randomization == Randomization(mass_scale=(1.0, 2.0), latency_periods=(1, 3))
    assert c.latency == 0.02
    assert c.noise_std == (0.001, load_settings('dxl').velocity_noise)


def test_randomize_from_a_file_that_has_it_off_uses_the_files_ranges(tmp_path):
    path = _robot_file(tmp_path, twin_damping_scale=[1.0, 1.1])
    assert P.twin_conditions_from_file(path).randomization is None
    rand = P.twin_conditions_from_file(path, randomize=True).randomization
    assert rand.damping_scale == (1.0, 1.1)


def test_twin_values_give_back_the_conditions():
    c = TwinConditions(Randomization(friction_scale=(0.9, 1.0)), 0.0, (0.002, 0.003))
    assert P.build(P.RobotParams, P.twin_values(c)).twin_conditions() == c
    assert P.build(P.RobotParams, P.twin_values(NOMINAL)).twin_conditions() == NOMINAL


@pytest.mark.parametrize('values, words', [
    ({'twin_latency': -0.5}, 'twin_latency must be -1'),
    ({'twin_position_noise': float('inf')}, 'twin_position_noise'),
    ({'twin_mass_scale': [1.2, 0.8]}, 'twin_mass_scale'),
    ({'twin_friction_scale': [1.0]}, 'twin_friction_scale must be [low, high]'),
    ({'twin_latency_periods': [0, 1.5]}, 'twin_latency_periods'),
    ({'twin_randomize': 'maybe'}, 'twin_randomize'),
])
def test_bad_file_values_are_one_line_errors_naming_the_key(tmp_path, values, words):
    with pytest.raises(P.ParamError) as error:
        P.twin_conditions_from_file(_robot_file(tmp_path, **values))
    assert words in str(error.value) and '\n' not in str(error.value)


# ---------------------------------------------------------------- the twin draws it

def test_latency_in_periods_shows_as_a_delayed_response():
    """One period set plus two drawn: the command reaches the servos three periods on."""
    c = TwinConditions(FIXED_LATENCY, latency=0.008, noise_std=(0.0, 0.0))
    with MujocoBackend('ur5', **c.backend_kwargs()) as twin:
        assert twin.drawn['latency_periods'] == 3 and twin.drawn['extra_latency_periods'] == 2
        assert twin.drawn['latency_s'] == pytest.approx(0.024)
        command = np.full(6, 0.2)
        twin.send_velocity(command)
        for _ in range(3):
            np.testing.assert_array_equal(twin.held_command(), 0.0)
            twin.advance(twin.period)
        np.testing.assert_array_equal(twin.held_command(), command)


def _factors_of(twin, nominal):
    """Mass, damping and friction factors as the model holds them."""
    model = twin.model
    mass = {model.body(b).name: model.body_mass[b] / nominal.body_mass[b]
            for b in range(model.nbody) if model.body_jntnum[b]}
    damping = {model.joint(j).name: model.dof_damping[j] / nominal.dof_damping[j]
               for j in range(model.njnt)}
    friction = {model.joint(j).name: model.dof_frictionloss[j] / nominal.dof_frictionloss[j]
                for j in range(model.njnt)}
    return mass, damping, friction


@pytest.mark.parametrize('robot', ('ur5', 'dxl'))
def test_drawn_is_what_the_model_holds_and_json(robot):
    nominal = build_model(robot)
    with MujocoBackend(robot, randomization=Randomization(), seed=5) as twin:
        drawn = json.loads(json.dumps(twin.drawn))
        mass, damping, friction = _factors_of(twin, nominal)
        assert drawn['randomized'] and drawn['seed'] == 5
        for got, said in ((mass, drawn['mass']), (damping, drawn['damping']),
                          (friction, drawn['friction'])):
            assert got.keys() == said.keys()
            np.testing.assert_allclose([got[k] for k in got], [said[k] for k in got])
        assert all(0.8 <= f <= 1.2 for f in mass.values())
        assert not np.allclose(list(mass.values()), 1.0)
        rebuilt = build_model(robot, Randomization(), seed=drawn['seed'])
        np.testing.assert_allclose(twin.model.body_mass, rebuilt.body_mass)
        np.testing.assert_allclose(twin.model.body_inertia, rebuilt.body_inertia)
        assert drawn['position_noise'] == load_settings(robot).position_noise


def _masses(info):
    return info['twin']['mass']


def test_each_episode_draws_a_new_arm_and_a_seed_repeats_it():
    env = gym.make('trpo_robot/DXLReacher-v0', randomization=Randomization())
    base = env.unwrapped.backend
    nominal = build_model('dxl')
    _, first = env.reset(seed=1)
    assert _masses(first) == pytest.approx(_factors_of(base, nominal)[0])
    _, again = env.reset(seed=1)
    _, other = env.reset(seed=2)
    _, later = env.reset()  # no seed: the next arm of seed 2's sequence
    assert _masses(again) == _masses(first)
    assert _masses(other) != _masses(first) and _masses(later) != _masses(other)
    assert _masses(later) == pytest.approx(_factors_of(base, nominal)[0])
    twin = env.unwrapped.backend  # the same backend: edited in place, never rebuilt
    assert twin is base
    replay = gym.make('trpo_robot/DXLReacher-v0', randomization=Randomization())
    replay.reset(seed=2)
    assert _masses(replay.reset()[1]) == _masses(later)
    env.close()
    replay.close()


def test_a_nominal_twin_reports_its_defaults_and_stays_nominal():
    env = gym.make('trpo_robot/UR5Reacher2D-v0')
    nominal = build_model('ur5')
    _, info = env.reset(seed=0)
    env.reset()
    assert info['twin']['randomized'] is False and 'mass' not in info['twin']
    assert info['twin']['latency_periods'] == 1.0
    np.testing.assert_array_equal(env.unwrapped.backend.model.body_mass, nominal.body_mass)
    env.close()


# ---------------------------------------------------------------- command line

def _run(cmd, args, env):
    return subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=600)


def _one_line_error(result, words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('trpo-robot: error:'), result.stderr
    assert words in lines[0], lines[0]


@pytest.mark.parametrize('args, words', [
    (['train', '--env', 'Pendulum-v1', '--randomize'], 'Pendulum-v1 has no twin'),
    (['train', '--env', 'trpo_robot/DXLReacher-v0', '--noise', 'x'], '--noise x'),
    (['learn', '--robot', 'dxl', '--port', '/dev/null', '--validation-override', '--latency',
      '0.01'],
     'with --port or --no-sim there is none'),
])
def test_cli_refuses_what_cannot_be_honoured_in_one_line(args, words, trpo_robot_cmd,
                                                         cli_env, tmp_path):
    _one_line_error(_run(trpo_robot_cmd, args + ['--out', str(tmp_path)], cli_env), words)


def test_train_on_an_arm_env_takes_the_flags_and_records_them(trpo_robot_cmd, cli_env,
                                                              tmp_path):
    r = _run(trpo_robot_cmd, ['train', '--env', 'trpo_robot/DXLReacher-v0', '--steps', '100',
                              '--randomize', '--latency', '0.02', '--noise', '0.001',
                              '--out', str(tmp_path)], cli_env)
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / 'checkpoint' / 'meta.json').read_text())
    assert meta['extra']['twin'] == TwinConditions(
        Randomization(), 0.02, (0.001, 0.001)).as_dict()


def test_learn_writes_the_flags_into_the_twins_parameters(tmp_path):
    """What the nodes read: the run's robot file, the one twin_node builds its twin from."""
    from trpo_robot.cli import build_parser
    from trpo_robot.ros.learn import prepare
    config = P.write_param_file(tmp_path / 'mine.yaml', {
        **P.node_parameters([CONFIG / 'dxl.yaml'], 'twin_node'),
        'twin_mass_scale': [0.9, 1.0], 'twin_position_noise': 0.003})
    args = build_parser().parse_args(['learn', '--config', str(config), '--randomize',
                                      '--latency', '0.03', '--out', str(tmp_path / 'run')])
    rp, _, _, (robot_yaml, _) = prepare(args)
    want = TwinConditions(Randomization(mass_scale=(0.9, 1.0)), 0.03,
                          (0.003, load_settings('dxl').velocity_noise))
    assert rp.twin_conditions() == want
    assert P.twin_conditions_from_file(robot_yaml) == want


# ---------------------------------------------------------------- the Dynamixel emulator

def _distinct_readings(backend, n, limit=300):
    """``n`` readings that differ, one bus cycle apart (the backend reads the bus once a
    cycle; a cycle may fall within one physics step of the emulator and repeat)."""
    seen = []
    for _ in range(limit):
        backend.advance(backend.period)
        q = backend.read().position
        if not seen or not np.array_equal(q, seen[-1]):
            seen.append(q)
        if len(seen) == n:
            return np.array(seen)
    raise AssertionError(f'only {len(seen)} distinct readings in {limit} reads')


def test_the_emulator_reports_noisy_positions_of_a_randomized_arm(tmp_path):
    c = TwinConditions(Randomization(), noise_std=(0.01, 0.0))
    with running_emulator(tmp_path / 'ttyDXL', conditions=c, seed=4) as emulator, \
            connected_backend(emulator) as backend:
        drawn = emulator.stats()['twin']
        readings = _distinct_readings(backend, 60)
        truth = np.array([s['position'] for s in emulator.stats()['servos'].values()])
    with MujocoBackend('dxl', randomization=Randomization(), seed=4) as twin:
        assert drawn['mass'] == pytest.approx(twin.drawn['mass'])  # the same arm drawn
        assert drawn['damping'] == pytest.approx(twin.drawn['damping'])
    assert drawn['randomized'] and drawn['position_noise'] == 0.01
    # one encoder count is 0.0015 rad: this spread is the noise, not the quantisation
    assert np.std(readings, axis=0) == pytest.approx(np.full(3, 0.01), rel=0.4)
    assert np.abs(readings.mean(axis=0) - truth).max() < 0.01


def test_the_emulator_without_conditions_adds_nothing(tmp_path):
    with running_emulator(tmp_path / 'ttyDXL') as emulator:
        drawn = emulator.stats()['twin']
    assert drawn['randomized'] is False and drawn['latency_s'] == 0.0
    assert drawn['position_noise'] == drawn['velocity_noise'] == 0.0


def test_the_emulators_motors_get_commands_after_the_latency():
    """Its physics, without the bus: 10 ms plus one drawn 10 ms period = 10 steps of 2 ms."""
    from trpo_robot.twin.emulator_physics import EmulatorPhysics
    c = TwinConditions(Randomization(latency_periods=(1, 1)), latency=0.01)
    physics = EmulatorPhysics(3, c, seed=0)
    assert physics.drawn['latency_s'] == pytest.approx(0.02)
    command = np.array([0.5, -0.5, 0.3])
    for _ in range(10):
        physics.step(command)
        np.testing.assert_array_equal(physics.data.ctrl, 0.0)
    physics.step(command)
    np.testing.assert_array_equal(physics.data.ctrl, command)


def test_the_emulator_moves_the_same_arm_as_the_twin():
    """One stepping: the emulator's physics and MujocoBackend, given the same randomized
    arm, latency and commands held for whole driver periods, are at the same state."""
    from trpo_robot.twin.emulator_physics import EmulatorPhysics
    rand = Randomization(latency_periods=(1, 1))
    physics = EmulatorPhysics(3, TwinConditions(rand, latency=0.01, noise_std=(0, 0)), 7)
    twin = MujocoBackend('dxl', randomization=rand, latency=0.01, noise_std=0.0, seed=7)
    assert physics.drawn == twin.drawn
    commands = np.random.default_rng(0).uniform(-2.0, 2.0, (50, 3))
    for command in commands:
        twin.send_velocity(command)
        twin.advance(twin.period)
        for _ in range(round(twin.period / physics.dt)):
            physics.step(command)
    state = twin.read()
    np.testing.assert_array_equal(physics.positions(), state.position)
    np.testing.assert_array_equal(physics.velocities(), state.velocity)
    assert physics.time == pytest.approx(state.stamp)
    assert np.abs(state.position - load_settings('dxl').home).max() > 0.1  # it moved
