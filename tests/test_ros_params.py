"""The graph's parameter files, as the nodes and `trpo-robot learn` read them (no rclpy)."""
from pathlib import Path

import pytest

from trpo_robot.ros import params as P
from trpo_robot.trpo.config import preset
from trpo_robot.twin.envs import make_twin_env
from trpo_robot.twin.settings import load_settings

CONFIG = Path(__file__).resolve().parent.parent / 'config'
ROBOT_FILES = ('ur5.yaml', 'ur5e.yaml', 'dxl.yaml')


@pytest.mark.parametrize('name', ROBOT_FILES)
def test_robot_files_are_complete_known_and_match_the_twin(name):
    values = P.node_parameters([CONFIG / name], 'actor_node')
    assert P.unknown_keys(values, P.RobotParams) == []
    rp = P.build(P.RobotParams, values)
    assert set(values) == set(P.to_ros(rp)), 'every field is spelled out in the file'
    assert rp.driver_period == load_settings(rp.robot).period
    assert rp.robot_receive_timeout == 0.04


def test_learner_file_is_known_and_gives_a_trpo_config():
    values = P.node_parameters([CONFIG / 'ur5.yaml', CONFIG / 'learner.yaml'], 'learner_node')
    assert P.unknown_keys(values, P.RobotParams, P.LearnerParams) == []
    lp = P.build(P.LearnerParams, values)
    cfg = lp.trpo_config()
    assert cfg.batch_steps == 1024 and cfg.max_policy_lag == lp.max_policy_lag
    assert cfg == preset('dense_reach').with_overrides(max_policy_lag=lp.max_policy_lag)


@pytest.mark.parametrize('robot,alias,full', [('ur5', 'reacher_2d', 'ur5_reacher_2d'),
                                              ('ur5e', 'reacher_6d', 'ur5_reacher_6d'),
                                              ('dxl', 'reacher', 'dxl_reacher'),
                                              ('dxl', 'dxl_tracker', 'dxl_tracker')])
def test_task_aliases(robot, alias, full):
    assert P.resolve_task(robot, alias) == full


def test_task_of_another_robot_is_refused():
    with pytest.raises(P.ParamError, match='not .dxl'):
        P.resolve_task('dxl', 'ur5_reacher_2d')
    with pytest.raises(P.ParamError, match='short names'):
        P.resolve_task('ur5', 'pendulum')


@pytest.mark.parametrize('task', ['ur5_reacher_2d', 'ur5_reacher_6d', 'dxl_reacher'])
def test_task_dims_match_the_environment(task):
    env = make_twin_env(task)
    assert P.task_dims(env.task) == (env.observation_space.shape[0], env.action_space.shape[0])


@pytest.mark.parametrize('override,match', [
    ({'swap_at': 'sometimes'}, 'swap_at'),
    ({'agent_dt': 0.045}, 'whole multiple'),
    ({'robot_receive_timeout': 0.001}, 'at least one driver period'),
    ({'real_time_factor': 0.0}, 'real_time_factor'),
    ({'sim_clock': False, 'real_time_factor': 4.0}, 'real_time_factor 1'),
    ({'success_rate': 1.5}, 'success_rate'),
    ({'reset_mode': 'teleport'}, 'reset_mode'),
    ({'reset_timeout': 0.0}, 'reset_timeout'),
    ({'stall_timeout': 'soon'}, 'stall_timeout'),
    ({'driver_command_timeout': 0.1}, 'twice the guard timeout'),
])
def test_bad_robot_values_name_the_parameter(override, match):
    values = {**P.node_parameters([CONFIG / 'ur5.yaml'], 'actor_node'), **override}
    with pytest.raises(P.ParamError, match=match):
        P.build(P.RobotParams, values)


def test_learner_overrides_are_checked():
    with pytest.raises(P.ParamError, match='unknown trpo'):
        P.build(P.LearnerParams, {'trpo.max_kll': 0.1})
    with pytest.raises(P.ParamError, match='max_kl'):
        P.build(P.LearnerParams, {'trpo.max_kl': -1.0})
    lp = P.build(P.LearnerParams, {'trpo.batch_steps': 512.0, 'trpo.policy_hidden': [32, 32]})
    assert lp.trpo_config().batch_steps == 512
    assert lp.trpo_config().policy_hidden == (32, 32)


def test_ints_stand_in_for_floats_but_not_the_reverse():
    rp = P.build(P.RobotParams, {'real_time_factor': 4})
    assert rp.real_time_factor == 4.0 and isinstance(rp.real_time_factor, float)
    with pytest.raises(P.ParamError, match='budget_steps'):
        P.build(P.RobotParams, {'budget_steps': 10.5})


def test_node_sections_and_wildcards_merge_in_order(tmp_path):
    a = tmp_path / 'a.yaml'
    a.write_text('/**:\n  ros__parameters:\n    seed: 1\n    task: reacher_2d\n'
                 'actor_node:\n  ros__parameters:\n    seed: 2\n'
                 '/ns/twin_node:\n  ros__parameters:\n    seed: 3\n')
    b = tmp_path / 'b.yaml'
    b.write_text('/**/actor_node:\n  ros__parameters:\n    trpo:\n      max_kl: 0.5\n')
    assert P.node_parameters([a, b], 'actor_node') == {'seed': 2, 'task': 'reacher_2d',
                                                       'trpo.max_kl': 0.5}
    assert P.node_parameters([a], 'twin_node', '/ns')['seed'] == 3
    assert P.node_parameters([a], 'twin_node')['seed'] == 1


def test_written_files_read_back_the_same(tmp_path):
    lp = P.build(P.LearnerParams, {'trpo.max_kl': 0.03, 'episode_topics': ['/a/x', '/b/x']})
    path = P.write_param_file(tmp_path / 'l.yaml', P.to_ros(lp))
    assert P.build(P.LearnerParams, P.node_parameters([path], 'learner_node')) == lp


@pytest.mark.parametrize('text,match', [('[1, 2]', 'mapping'), ('x: 1', 'ros__parameters'),
                                        (': :', 'not valid YAML')])
def test_malformed_files_are_refused(tmp_path, text, match):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(P.ParamError, match=match):
        P.read_param_file(path)
