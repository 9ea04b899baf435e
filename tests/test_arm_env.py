"""The arm environments on the real MuJoCo twin: gymnasium contract, rewards, safety."""
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trpo_robot.envs  # noqa: F401
from trpo_robot.envs import ARM_ENVS
from trpo_robot.robot.shield import Intervention

ENV_IDS = sorted(ARM_ENVS)


def test_import_trpo_robot_registers_the_ids_without_mujoco():
    """As a gymnasium plugin: `import trpo_robot`, then gym.make; nothing heavy imported."""
    code = ('import sys, trpo_robot, gymnasium as gym; '
            'print(sorted(i for i in gym.registry if i.startswith("trpo_robot/"))); '
            'print("mujoco" in sys.modules, "torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [str(sorted(ARM_ENVS)), 'False False']


@pytest.fixture(scope='module')
def envs():
    made = {env_id: gym.make(env_id) for env_id in ENV_IDS}
    yield made
    for env in made.values():
        env.close()


def test_render_mode_rgb_array_draws_the_arm_moving():
    env = gym.make('trpo_robot/UR5Reacher2D-v0', render_mode='rgb_array', width=160,
                   height=120)
    try:
        env.reset(seed=0)
        first = env.render()
        assert first.shape == (120, 160, 3) and first.dtype == np.uint8
        assert first.std() > 10, 'a blank frame'
        for _ in range(15):
            env.step(np.ones(env.action_space.shape, np.float32))
        assert np.abs(env.render().astype(int) - first).mean() > 0.5, 'the arm did not move'
    finally:
        env.close()
    plain = gym.make('trpo_robot/UR5Reacher2D-v0')
    plain.reset(seed=0)
    assert plain.render() is None  # no mode, no picture
    plain.close()


def test_a_render_mode_without_a_renderer_says_why():
    from trpo_robot.robot.env import ArmEnv
    with pytest.raises(ValueError, match="only 'rgb_array'"):
        ArmEnv(None, None, None, render_mode='human')
    with pytest.raises(ValueError, match='a real arm has no picture'):
        ArmEnv(None, None, None, render_mode='rgb_array')


@pytest.mark.parametrize('env_id', ENV_IDS)
def test_passes_gymnasium_env_checker(env_id):
    env = gym.make(env_id).unwrapped
    check_env(env)


@pytest.mark.parametrize('env_id', ENV_IDS)
def test_reward_terms_sum_to_the_reward(envs, env_id):
    env = envs[env_id]
    env.reset(seed=1)
    for _ in range(20):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(sum(info['reward_terms'].values()), abs=1e-12)
        assert set(info['reward_terms']) == {'distance', 'action', 'precision'}
        assert {'episode_time', 'dt', 'lateness'} <= set(info['timing'])


@pytest.mark.parametrize('env_id,seconds', [('trpo_robot/UR5Reacher2D-v0', 4.0),
                                            ('trpo_robot/DXLReacher-v0', 2.0)])
def test_episode_length_and_agent_step(envs, env_id, seconds):
    env = envs[env_id]
    env.reset(seed=0)
    steps, done = 0, False
    t0 = env.unwrapped.backend.now()
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
        steps += 1
        done = terminated or truncated
    assert not terminated
    assert env.unwrapped.dt == pytest.approx(0.04)
    assert steps == round(seconds / 0.04)
    assert info['timing']['episode_time'] == pytest.approx(seconds)
    assert env.unwrapped.backend.now() - t0 == pytest.approx(seconds, abs=1e-6)


def test_observation_layout(envs):
    env = envs['trpo_robot/UR5Reacher2D-v0']
    obs, info = env.reset(seed=3)
    action = np.array([0.5, -1.0], np.float32)
    obs, *_, info = env.step(action)
    target = info['target']
    assert np.allclose(obs[4:7], target, atol=1e-6)
    assert np.allclose(obs[-2:], action)
    ee = env.unwrapped.robot_spec.fk(env.unwrapped.backend.read().position)
    assert np.linalg.norm(obs[7:10]) == pytest.approx(np.linalg.norm(ee - target), abs=2e-3)


def test_targets_differ_between_episodes_and_are_seeded(envs):
    env = envs['trpo_robot/UR5Reacher6D-v0']
    a = env.reset(seed=5)[1]['target']
    b = env.reset()[1]['target']
    c = env.reset(seed=5)[1]['target']
    assert not np.allclose(a, b) and np.allclose(a, c)


def test_tracker_target_moves(envs):
    env = envs['trpo_robot/DXLTracker-v0']
    first = env.reset(seed=0)[1]['target']
    for _ in range(10):
        info = env.step(np.zeros(1))[-1]
    assert np.linalg.norm(info['target'] - first) > 0.005


def test_nan_action_is_stopped_and_reported(envs):
    env = envs['trpo_robot/UR5Reacher2D-v0']
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.ones(2))
    obs, reward, *_, info = env.step(np.array([np.nan, 0.0]))
    assert info['interventions'] & Intervention.NON_FINITE
    assert np.all(np.isfinite(obs)) and np.isfinite(reward)
    # Braking at the acceleration limit, never a jump.
    for _ in range(20):
        info = env.step(np.array([np.nan, np.nan]))[-1]
    assert np.allclose(info['sent_command'], 0.0)


ACTIONS = st.lists(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([1e9, -1e9, 1.0, -1.0, 0.0])),
             min_size=6, max_size=6),
    min_size=1, max_size=30)


def _check_episode(env, actions, seed):
    unwrapped = env.unwrapped
    spec, shield = unwrapped.robot_spec, unwrapped.shield
    n = env.action_space.shape[0]
    low, high = np.array(shield.config.workspace_low), np.array(shield.config.workspace_high)
    vmax = unwrapped.task.max_velocity
    amax = unwrapped.task.max_acceleration * unwrapped.dt
    env.reset(seed=seed)
    last = np.zeros(spec.dof)
    steps = 0
    while steps < unwrapped.task.episode_steps:
        for action in actions:
            *_, truncated, info = env.step(np.asarray(action[:n]))
            sent = info['sent_command']
            assert np.all(np.isfinite(sent))
            assert np.all(np.abs(sent) <= vmax + 1e-9)
            assert np.all(np.abs(sent - last) <= amax + 1e-9)
            last = sent
            q = unwrapped.backend.read().position
            assert np.all(q >= spec.lower - 0.02) and np.all(q <= spec.upper + 0.02)
            ee = spec.fk(q)
            assert np.all(ee >= low - 0.01) and np.all(ee <= high + 0.01), ee
            steps += 1
            if truncated:
                return


@pytest.mark.parametrize('env_id', ['trpo_robot/UR5Reacher6D-v0', 'trpo_robot/DXLReacher-v0'])
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=ACTIONS, seed=st.integers(0, 1000))
def test_any_action_sequence_keeps_the_twin_safe(envs, env_id, actions, seed):
    """Whole episodes of arbitrary (NaN, inf, 1e9, random) actions: every sent command
    within the velocity and acceleration limits, joints inside the task limits, the end
    effector inside its box (small tolerances for the twin's tracking error)."""
    _check_episode(envs[env_id], actions, seed)


def test_in_place_reset_keeps_the_arm_where_the_lifecycle_left_it(envs):
    env = envs['trpo_robot/UR5Reacher2D-v0']
    env.reset(seed=2)
    for _ in range(30):
        env.step(np.array([1.0, -1.0]))
    for _ in range(30):
        env.step(np.zeros(2))
    before = env.unwrapped.backend.read().position.copy()
    obs, info = env.reset(options={'in_place': True})
    after = env.unwrapped.backend.read().position
    assert np.allclose(before, after, atol=2e-3)
    assert np.allclose(obs[:2], after[[1, 2]], atol=2e-3)
    moved = env.reset()[0]
    assert not np.allclose(moved[:2], after[[1, 2]], atol=2e-3)
