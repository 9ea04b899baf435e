"""The numerical kernels of the TRPO core, each against an answer known independently."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from trpo_robot.trpo import update as update_mod
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.episode import Segment
from trpo_robot.trpo.cg import conjugate_gradient
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.trpo.fisher import GaussNewtonFisher, flat_grad, flat_params
from trpo_robot.trpo.gae import gae, normalize_advantages
from trpo_robot.trpo.networks import GaussianPolicy, gaussian_kl, gaussian_log_prob


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.mark.parametrize('n', [2, 10, 40])
def test_cg_solves_random_spd_systems(n):
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    spd = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iters=2 * n, residual_tol=1e-20)
    assert torch.allclose(x, torch.linalg.solve(spd, b), atol=1e-8)


def test_cg_stops_on_non_positive_curvature():
    x = conjugate_gradient(lambda v: -v, torch.ones(3), iters=10)
    assert torch.isfinite(x).all() and torch.equal(x, torch.zeros(3))


def _random_policy(obs_dim=3, act_dim=2, hidden=(5, 4)):
    pi = GaussianPolicy(obs_dim, act_dim, hidden, init_log_std=-0.4)
    with torch.no_grad():
        for p in pi.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return pi.double()


def _explicit_fisher(pi, obs):
    """Hessian of the mean KL(old || theta) at theta = old, by autograd on a flat vector."""
    names = [n for n, _ in pi.named_parameters()]
    shapes = [p.shape for p in pi.parameters()]
    theta0 = flat_params(pi).clone()
    with torch.no_grad():
        mean_old, log_std_old = pi(obs), pi.log_std.clone()

    def mean_kl(theta):
        params, offset = {}, 0
        for name, shape in zip(names, shapes):
            n = int(np.prod(shape))
            params[name] = theta[offset:offset + n].view(shape)
            offset += n
        mean = functional_call(pi, params, (obs,))
        return gaussian_kl(mean_old, log_std_old, mean, params['log_std']).mean()
    return torch.autograd.functional.hessian(mean_kl, theta0)


def test_gauss_newton_fvp_equals_explicit_fisher():
    pi = _random_policy()
    obs = torch.randn(30, 3, dtype=torch.float64)
    fisher = _explicit_fisher(pi, obs)
    damping = 0.05
    fvp = GaussNewtonFisher(pi, obs, damping)
    n = fisher.shape[0]
    built = torch.stack([fvp(e) for e in torch.eye(n, dtype=torch.float64)], dim=1)
    assert torch.allclose(built, fisher + damping * torch.eye(n, dtype=torch.float64),
                          atol=1e-10)


def test_log_std_is_inside_the_trust_region():
    pi = _random_policy()
    obs = torch.randn(30, 3, dtype=torch.float64)
    v = torch.zeros(flat_params(pi).numel(), dtype=torch.float64)
    v[:2] = 1.0  # log_std is the first parameter
    assert torch.allclose(GaussNewtonFisher(pi, obs, 0.0)(v)[:2],
                          torch.full((2,), 2.0, dtype=torch.float64))


def _problem(n=512, obs_dim=4, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pi = GaussianPolicy(obs_dim, act_dim, (32, 32))
    obs = torch.randn(n, obs_dim, generator=g)
    with torch.no_grad():
        act = pi(obs) + torch.exp(pi.log_std) * torch.randn(n, act_dim, generator=g)
        logp = gaussian_log_prob(pi(obs), pi.log_std, act)
    adv = normalize_advantages(torch.randn(n, generator=g).numpy() + act[:, 0].numpy())
    return pi, obs, act, logp, torch.as_tensor(adv, dtype=torch.float32)


def test_accepted_step_respects_the_kl_bound():
    cfg = TRPOConfig(max_kl=0.01)
    pi, obs, act, logp, adv = _problem()
    with torch.no_grad():
        mean_old, log_std_old = pi(obs), pi.log_std.clone()
    result = update_mod.policy_step(pi, obs, act, logp, adv, cfg)
    assert result.accepted
    with torch.no_grad():
        kl = gaussian_kl(mean_old, log_std_old, pi(obs), pi.log_std).mean().item()
    assert 0 < kl <= cfg.max_kl
    assert result.surrogate_gain > 0


def _param_bits(module):
    return [p.detach().clone().view(torch.int32) for p in module.parameters()]


def test_rejected_line_search_restores_parameters_bit_for_bit(monkeypatch):
    """A CG direction pointing downhill (as a broken solve could) fails every trial."""
    cfg = TRPOConfig(max_kl=0.01)
    pi, obs, act, logp, adv = _problem()
    before = _param_bits(pi)
    real_cg = update_mod.conjugate_gradient
    monkeypatch.setattr(update_mod, 'conjugate_gradient',
                        lambda *a, **k: -real_cg(*a, **k))
    result = update_mod.policy_step(pi, obs, act, logp, adv, cfg)
    assert not result.accepted and result.reason == 'line_search_failed'
    assert all(torch.equal(a, b) for a, b in zip(before, _param_bits(pi)))


def test_non_positive_curvature_takes_no_step(monkeypatch):
    pi, obs, act, logp, adv = _problem()
    before = _param_bits(pi)

    class NegativeFisher(GaussNewtonFisher):
        def __call__(self, v):
            return -super().__call__(v)
    monkeypatch.setattr(update_mod, 'GaussNewtonFisher', NegativeFisher)
    monkeypatch.setattr(update_mod, 'conjugate_gradient', lambda f, b, *a: b.clone())
    result = update_mod.policy_step(pi, obs, act, logp, adv, TRPOConfig())
    assert result.reason == 'bad_curvature' and not result.accepted
    assert all(torch.equal(a, b) for a, b in zip(before, _param_bits(pi)))


def _segments(rewards_per_episode, obs_dim=3, act_dim=1, terminated=True):
    rng = np.random.default_rng(0)
    segs = []
    for rewards in rewards_per_episode:
        t = len(rewards)
        obs = rng.standard_normal((t, obs_dim)).astype(np.float32)
        segs.append(Segment(obs, obs.copy(), rng.standard_normal((t, act_dim)).astype(
            np.float32), np.asarray(rewards, np.float32), np.full(t, -1.0, np.float32),
            rng.standard_normal(obs_dim).astype(np.float32), terminated))
    return segs


def test_constant_rewards_and_zero_gradients_give_no_nan():
    agent = Agent(3, 1, TRPOConfig(batch_steps=64), seed=0)
    stats = agent.update(_segments([[1.0] * 20, [1.0] * 20], terminated=False))
    assert stats.reason in ('zero_gradient', 'accepted', 'line_search_failed')
    for p in list(agent.pi.parameters()) + list(agent.v.parameters()):
        assert torch.isfinite(p).all()
    assert np.isfinite(stats.value_loss) and np.isfinite(stats.kl)
    # Zero advantages everywhere -> zero policy gradient -> no step at all.
    before = _param_bits(agent.pi)
    adv = torch.zeros(40)
    obs = torch.randn(40, 3)
    act = torch.randn(40, 1)
    logp = gaussian_log_prob(agent.pi(obs), agent.pi.log_std, act).detach()
    result = update_mod.policy_step(agent.pi, obs, act, logp, adv, agent.config)
    assert result.reason == 'zero_gradient'
    assert all(torch.equal(a, b) for a, b in zip(before, _param_bits(agent.pi)))


def test_normalize_advantages_survives_zero_std():
    out = normalize_advantages(np.full(10, 3.0))
    assert np.all(np.isfinite(out)) and np.allclose(out, 0.0)


def test_gae_hand_worked_truncation_and_termination():
    """Episode A terminates after 2 steps; episode B is truncated after 2 steps.

    gamma = 0.5, lambda = 0.5, values V = [1, 2 | 3, 4], V(after A) = 10 (ignored,
    terminal), V(after B) = 8 (bootstrapped).
      A: d1 = 2 + 0 - 2 = 0;      d0 = 1 + 0.5*2 - 1 = 1;      adv0 = 1 + 0.25*0 = 1
      B: d3 = 1 + 0.5*8 - 4 = 1;  d2 = 0 + 0.5*4 - 3 = -1;     adv2 = -1 + 0.25*1 = -0.75
    """
    rewards = [1.0, 2.0, 0.0, 1.0]
    values = [1.0, 2.0, 3.0, 4.0]
    next_values = [2.0, 10.0, 4.0, 8.0]
    terminated = [False, True, False, False]
    episode_end = [False, True, False, True]
    adv, ret = gae(rewards, values, next_values, terminated, episode_end, 0.5, 0.5)
    assert np.allclose(adv, [1.0, 0.0, -0.75, 1.0])
    assert np.allclose(ret, np.asarray([1.0, 0.0, -0.75, 1.0]) + values)


def test_surrogate_uses_the_behavior_log_prob():
    pi, obs, act, _, adv = _problem()
    adv = adv.abs() + 1.0
    behavior = gaussian_log_prob(pi(obs), pi.log_std, act).detach() + 0.3
    surr = update_mod._surrogate(pi, obs, act, behavior, adv)
    expected = (np.exp(-0.3) * adv).mean()
    assert surr.item() == pytest.approx(expected.item(), rel=1e-5)


def test_flat_grad_fills_unused_parameters_with_zeros():
    pi = GaussianPolicy(2, 1, (3,))
    out = pi.log_std.sum()
    g = flat_grad(out, list(pi.parameters()))
    assert g.shape[0] == flat_params(pi).shape[0] and g[0] == 1 and g[1:].abs().sum() == 0


def test_retargeting_the_value_scale_leaves_the_values_unchanged():
    from trpo_robot.trpo.networks import ValueNet
    v = ValueNet(4, (16, 16))
    obs = torch.randn(64, 4)
    with torch.no_grad():
        before = v(obs).clone()
        for returns in (torch.randn(500) * 300 + 40, torch.randn(500) * 0.5 - 7,
                        torch.full((500,), 3.0)):
            v.retarget(returns)
            assert torch.allclose(v(obs), before, rtol=1e-4, atol=1e-3)
    assert float(v.shift) == 3.0 and float(v.scale) == pytest.approx(1e-2)


def test_a_scaled_value_function_fits_large_returns_in_fewer_steps():
    """Locomotion returns in the hundreds: the same 10 Adam epochs of a fresh net get within
    0.3 of the returns' spread with the scale (0.24-0.27 over four seeds), and stay more
    than three spreads off without it (3.7)."""
    from trpo_robot.trpo.networks import ValueNet
    from trpo_robot.trpo.update import fit_value
    obs = torch.randn(1024, 6)
    returns = 400.0 + 150.0 * torch.tanh(obs[:, 0] - obs[:, 1])
    cfg = TRPOConfig(value_epochs=10, value_minibatch=128)
    errors = {}
    for scaled in (False, True):
        torch.manual_seed(1)
        v = ValueNet(6, (64, 64))
        optim = torch.optim.Adam(v.parameters(), lr=cfg.value_lr)
        if scaled:
            v.retarget(returns, keep_values=False)
        fit_value(v, optim, obs, returns, cfg, torch.Generator().manual_seed(0))
        with torch.no_grad():
            errors[scaled] = float((v(obs) - returns).pow(2).mean().sqrt())
    spread = float(returns.std())
    assert errors[True] < 0.4 * spread and errors[False] > 3 * spread


def _acted(agent, rng, episodes=4, steps=16):
    """Segments as the Sampler records them, and their raw bootstrap states: observations
    far from zero mean and unit spread (so the normalizer moves), normalized with the
    agent's statistics of now."""
    segs, finals = [], []
    for _ in range(episodes):
        raw = 5.0 + 2.0 * rng.standard_normal((steps + 1, 3))
        obs = agent.obs_norm(raw[:-1])
        acts = np.stack([agent.snapshot().sample(o, rng)[0] for o in obs]).astype(np.float32)
        with torch.no_grad():
            logp = gaussian_log_prob(agent.pi(torch.from_numpy(obs)), agent.pi.log_std,
                                     torch.from_numpy(acts)).numpy()
        reward = -np.abs(raw[:-1, 0] - 5.0).astype(np.float32)
        segs.append(Segment(obs, raw[:-1], acts, reward, logp, agent.obs_norm(raw[-1]), False))
        finals.append(raw[-1])
    return segs, finals


def test_a_kept_batch_is_learned_from_again_with_todays_statistics():
    agents = {keep: Agent(3, 1, TRPOConfig(batch_steps=64, reuse_batches=keep), seed=0)
              for keep in (0, 1)}
    for agent in agents.values():
        batch, finals = _acted(agent, np.random.default_rng(3))
        first = agent.update(batch)
        assert first.reused == 0 and first.samples == 64
    # The first update is the same with or without reuse; the normalizer has moved since.
    assert all(torch.equal(a, b) for a, b in zip(_param_bits(agents[0].pi),
                                                 _param_bits(agents[1].pi)))
    agent = agents[1]
    for kept, final, again in zip(batch, finals, agent.earlier.replay(agent.obs_norm)):
        assert np.allclose(again.obs, agent.obs_norm(kept.raw_obs))
        assert not np.allclose(again.obs, kept.obs)
        assert np.allclose(again.final_obs, agent.obs_norm(final), atol=1e-5)
        assert np.array_equal(again.logp, kept.logp)   # the log-prob of the version that acted
    for keep, agent in agents.items():
        second = agent.update(_acted(agent, np.random.default_rng(4))[0])
        assert second.reused == 64 * keep and second.samples == 64
        assert agent.total_steps == 128
    assert not all(torch.equal(a, b) for a, b in zip(_param_bits(agents[0].pi),
                                                     _param_bits(agents[1].pi)))
    third = agents[1].update(_acted(agents[1], np.random.default_rng(5), episodes=2)[0])
    assert third.reused == 64 and agents[1].total_steps == 160   # one batch kept, not two


def test_reuse_is_bounded():
    with pytest.raises(ValueError, match='reuse_batches'):
        TRPOConfig(reuse_batches=-1)
    with pytest.raises(ValueError, match='reuse_batches'):
        TRPOConfig(reuse_batches=9)


def test_auto_picks_a_preset_by_the_envs_family_not_by_its_name():
    import gymnasium as gym
    import trpo_robot.envs  # noqa: F401 - the arm tasks' specs
    from trpo_robot.trpo.config import preset, preset_for_env
    for env_id in ('InvertedDoublePendulum-v5', 'HalfCheetah-v5', 'Hopper-v5', 'Ant-v5'):
        assert preset_for_env(gym.spec(env_id)) == 'default_mujoco', env_id
    for env_id in ('Pendulum-v1', 'MountainCarContinuous-v0', 'trpo_robot/UR5Reacher2D-v0'):
        assert preset_for_env(gym.spec(env_id)) == 'default', env_id
    lookalikes = ('my_mujoco_tasks.double_pendulum:Env', 'gymnasium.envs.mujocox:Env',
                  'InvertedDoublePendulum')
    for entry_point in lookalikes:
        assert preset_for_env(gym.envs.registration.EnvSpec(
            'InvertedDoublePendulum-v9', entry_point=entry_point)) == 'default', entry_point

    def make():
        pass
    make.__module__ = 'gymnasium.envs.mujoco.ant_v5'
    assert preset_for_env(gym.envs.registration.EnvSpec('X-v0', entry_point=make)) == \
        'default_mujoco'
    assert preset_for_env(None) == 'default'
    assert preset('default_mujoco') == TRPOConfig(init_log_std=-1.0)
