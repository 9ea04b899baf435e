"""One TRPO update: natural-gradient step under a KL trust region, then value fitting."""
import logging
import math
from dataclasses import dataclass

import torch

from .cg import conjugate_gradient
from .fisher import GaussNewtonFisher, flat_grad
from .networks import gaussian_kl, gaussian_log_prob

log = logging.getLogger(__name__)


@dataclass
class PolicyStepResult:
    accepted: bool
    """True when the line search found a step; otherwise the parameters are the old ones,
    bit for bit."""
    reason: str
    """'accepted', 'zero_gradient', 'bad_curvature' or 'line_search_failed'."""
    kl: float
    surrogate_gain: float
    expected_gain: float
    backtracks: int
    step_fraction: float


def _surrogate(policy, obs, actions, logp_behavior, advantages):
    """mean(pi(a|s) / beta(a|s) * A): beta is the behavior policy that acted, whose log-prob
    came with the sample, so an asynchronous actor's episodes are weighted correctly."""
    logp = gaussian_log_prob(policy(obs), policy.log_std, actions)
    return (torch.exp(logp - logp_behavior) * advantages).mean()


def policy_step(policy, obs, actions, logp_behavior, advantages, cfg) -> PolicyStepResult:
    params = list(policy.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        mean_old = policy(obs)
        log_std_old = policy.log_std.detach().clone()
    surr_old = _surrogate(policy, obs, actions, logp_behavior, advantages)
    grad = flat_grad(surr_old, params)
    surr_old = surr_old.item()
    if not torch.isfinite(grad).all() or grad.abs().max() == 0:
        return _no_step('zero_gradient' if torch.isfinite(grad).all() else 'bad_gradient')

    fvp = GaussNewtonFisher(policy, obs, cfg.damping)
    direction = conjugate_gradient(fvp, grad, cfg.cg_iters, cfg.cg_residual_tol)
    shs = torch.dot(direction, fvp(direction)).item()
    if not math.isfinite(shs) or shs <= 0.0:
        log.warning('TRPO: curvature s^T H s = %s is not positive and finite; no step', shs)
        return _no_step('bad_curvature')
    full_step = direction * math.sqrt(2.0 * cfg.max_kl / shs)
    expected = torch.dot(grad, full_step).item()
    return _line_search(policy, params, saved, full_step, expected, surr_old,
                        (obs, actions, logp_behavior, advantages), (mean_old, log_std_old),
                        cfg)


def _line_search(policy, params, saved, full_step, expected, surr_old, data, old, cfg):
    """Accept the first shrunk step whose mean KL <= max_kl AND that improves the surrogate;
    if none does, put back the saved parameters exactly."""
    obs = data[0]
    fraction = 1.0
    for i in range(cfg.backtrack_iters):
        _apply_step(params, saved, full_step, fraction)
        with torch.no_grad():
            kl = gaussian_kl(old[0], old[1], policy(obs), policy.log_std).mean().item()
            gain = _surrogate(policy, *data).item() - surr_old
        if math.isfinite(kl) and math.isfinite(gain) and kl <= cfg.max_kl and gain > 0:
            return PolicyStepResult(True, 'accepted', kl, gain, expected * fraction, i,
                                    fraction)
        fraction *= cfg.backtrack_coeff
    for p, s in zip(params, saved):
        p.data.copy_(s)
    log.info('TRPO: line search found no step within the trust region; parameters restored')
    return PolicyStepResult(False, 'line_search_failed', 0.0, 0.0, expected,
                            cfg.backtrack_iters, 0.0)


def _apply_step(params, saved, full_step, fraction):
    offset = 0
    with torch.no_grad():
        for p, s in zip(params, saved):
            n = p.numel()
            p.copy_(s + fraction * full_step[offset:offset + n].view_as(p))
            offset += n


def _no_step(reason):
    return PolicyStepResult(False, reason, 0.0, 0.0, 0.0, 0, 0.0)


def fit_value(value_net, optimizer, obs, returns, cfg, generator=None) -> float:
    """Regress V(s) on the GAE returns with minibatch Adam; returns the last epoch's loss.

    Adam over minibatches was chosen over L-BFGS and a single full-batch step: it fits as
    well per unit of time here (see docs/benchmarks.md) and is robust to bad batches.
    """
    n = obs.shape[0]
    mb = min(cfg.value_minibatch, n)
    loss_sum = 0.0
    for _ in range(cfg.value_epochs):
        order = torch.randperm(n, generator=generator)
        loss_sum = 0.0
        for start in range(0, n - mb + 1, mb):
            idx = order[start:start + mb]
            loss = ((value_net(obs[idx]) - returns[idx]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
    return loss_sum / max(1, n // mb)
