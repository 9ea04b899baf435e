"""The CLI as a user meets it: a real subprocess, its exit code, its output."""
import json
import subprocess

import pytest


def _run(cmd, args, env, timeout=300):
    return subprocess.run(cmd + args, capture_output=True, text=True, env=env,
                          timeout=timeout)


def _one_line_error(result):
    assert result.returncode == 2, result.stderr
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('trpo-robot: error:'), result.stderr


def test_unknown_env(trpo_robot_cmd, cli_env, tmp_path):
    r = _run(trpo_robot_cmd, ['train', '--env', 'NoSuchEnv-v0', '--out', str(tmp_path)],
             cli_env)
    _one_line_error(r)
    assert 'NoSuchEnv' in r.stderr


def test_discrete_action_space(trpo_robot_cmd, cli_env, tmp_path):
    r = _run(trpo_robot_cmd, ['train', '--env', 'CartPole-v1', '--out', str(tmp_path)],
             cli_env)
    _one_line_error(r)
    assert 'Discrete' in r.stderr


def test_missing_checkpoint(trpo_robot_cmd, cli_env, tmp_path):
    r = _run(trpo_robot_cmd, ['eval', '--checkpoint', str(tmp_path / 'nope')], cli_env)
    _one_line_error(r)


def test_unknown_preset(trpo_robot_cmd, cli_env, tmp_path):
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--preset', 'fast',
                              '--out', str(tmp_path)], cli_env)
    _one_line_error(r)


@pytest.mark.parametrize('args, words', [
    (['train', '--env', 'Pendulum-v1', '--seed', '-1'], '--seed -1: a seed is an integer'),
    (['train', '--env', 'Pendulum-v1', '--seed', str(2**32)], 'in 0..4294967295'),
    (['eval', '--checkpoint', 'x', '--seed', '-5'], '--seed -5'),
    (['train', '--env', 'Pendulum-v1', '--out', '/proc/x'], '--out /proc/x: cannot write'),
])
def test_bad_seeds_and_unwritable_folders_are_one_line_errors(args, words, trpo_robot_cmd,
                                                              cli_env):
    r = _run(trpo_robot_cmd, args, cli_env)
    _one_line_error(r)
    assert words in r.stderr


def test_train_resume_and_eval(trpo_robot_cmd, cli_env, tmp_path):
    out = str(tmp_path / 'run')
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--steps', '2048', '--seed',
                              '1', '--preset', 'pendulum', '--out', out], cli_env)
    assert r.returncode == 0, r.stderr
    assert 'ETA' in r.stdout and 'steps/s' in r.stdout
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--steps', '2048', '--out', out,
                              '--resume', out], cli_env)  # --steps is a total: nothing to do
    _one_line_error(r)
    assert 'the checkpoint has 2048 steps' in r.stderr and '--steps 102048' in r.stderr
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--steps', '4096', '--seed',
                              '1', '--out', out, '--resume', out], cli_env)
    assert r.returncode == 0, r.stderr
    assert 'policy version 2, 2048 steps; 2048 more to 4096' in r.stdout
    assert 'done: 4096 steps, policy version 4' in r.stdout
    r = _run(trpo_robot_cmd, ['eval', '--checkpoint', out, '--episodes', '3', '--seed', '0'],
             cli_env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(result) == {'mean_return', 'std_return', 'episodes'}
    assert result['episodes'] == 3 and -2000 < result['mean_return'] <= 0


def test_resume_into_another_env_is_refused(trpo_robot_cmd, cli_env, tmp_path):
    out = str(tmp_path / 'run')
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--steps', '1024', '--out',
                              out], cli_env)
    assert r.returncode == 0, r.stderr
    r = _run(trpo_robot_cmd, ['train', '--env', 'MountainCarContinuous-v0', '--steps', '2048',
                              '--out', out, '--resume', out], cli_env)
    _one_line_error(r)
    assert 'obs_dim' in r.stderr


def _weights(agent):
    tensors = (*agent.pi.state_dict().values(), *agent.v.state_dict().values())
    return [t.detach().clone() for t in tensors]


def test_the_seed_alone_decides_the_initial_weights_whatever_the_thread_count():
    """Orthogonal init rounds with the thread count: two threads gave other weights than
    one, so the CLI (default threads) and the API used as bench/learning.py does (one
    thread) learned different policies from the same seed."""
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    threads = torch.get_num_threads()
    try:
        made = []
        for n in (1, 2):
            torch.set_num_threads(n)
            made.append(_weights(Agent(17, 6, preset('default'), seed=3)))
            assert torch.get_num_threads() == n  # and the caller's setting is kept
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*made))


def test_the_cli_and_the_python_api_give_the_same_result_for_a_seed(
        trpo_robot_cmd, cli_env, tmp_path):
    import gymnasium as gym
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    from trpo_robot.trpo.rollout import evaluate
    from trpo_robot.trpo.trainer import train
    out = str(tmp_path / 'run')
    r = _run(trpo_robot_cmd, ['train', '--env', 'Pendulum-v1', '--steps', '4096', '--seed',
                              '2', '--preset', 'pendulum', '--out', out], cli_env)
    assert r.returncode == 0, r.stderr
    r = _run(trpo_robot_cmd, ['eval', '--checkpoint', out, '--episodes', '3', '--seed', '100'],
             cli_env)
    assert r.returncode == 0, r.stderr
    cli_return = json.loads(r.stdout.strip().splitlines()[-1])['mean_return']
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as bench/learning.py does before it builds the agent
    try:
        agent = Agent(3, 1, preset('pendulum'), 2)
        train(gym.make('Pendulum-v1'), agent, 4096, 2, printer=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    agent.obs_norm.frozen = True
    api_return = float(evaluate(gym.make('Pendulum-v1'), agent, 3, 100).mean())
    assert cli_return == api_return


@pytest.mark.parametrize('asked, config_log_std, words', [
    ([], -1.0, 'preset default_mujoco, picked by --preset auto for gymnasium.envs.mujoco'),
    (['--preset', 'default'], 0.0, 'preset default)'),
])
def test_without_a_preset_the_envs_family_picks_it_and_the_run_says_so(
        asked, config_log_std, words, trpo_robot_cmd, cli_env, tmp_path):
    from trpo_robot.trpo import checkpoint
    out = tmp_path / 'run'
    r = _run(trpo_robot_cmd, ['train', '--env', 'InvertedPendulum-v5', '--steps', '2048',
                              '--out', str(out), *asked], cli_env)
    assert r.returncode == 0, r.stderr
    assert words in r.stdout.splitlines()[0]
    agent, meta = checkpoint.load(out / 'checkpoint')
    assert agent.config.init_log_std == config_log_std
    assert meta['extra']['preset'] == ('default_mujoco' if not asked else 'default')
