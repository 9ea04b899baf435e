"""Policy, value network and observation normalizer.

The policy mean is a plain tanh MLP built from explicit layers so that the Fisher-vector
product (fisher.py) can differentiate it forward and backward by hand from one cached
forward pass.
"""
import math

import numpy as np
import torch
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)


class TanhMLP(nn.Module):
    """Linear layers with tanh between them and a linear output."""

    def __init__(self, sizes, out_gain=1.0):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            nn.init.orthogonal_(layer.weight, gain=out_gain if last else math.sqrt(2.0))
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)

    def forward_cached(self, x):
        """Return the output and every layer input (h_0 = x, h_1, ...), for fisher.py."""
        hidden = [x]
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
            hidden.append(x)
        return self.layers[-1](x), hidden


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(mu(s), diag(exp(log_std))^2) with a state-independent log_std.

    log_std is a parameter of the policy like any weight, so it is inside the trust region.
    """

    def __init__(self, obs_dim, act_dim, hidden=(64, 64), init_log_std=0.0):
        super().__init__()
        self.mean_net = TanhMLP((obs_dim, *hidden, act_dim), out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, obs):
        return self.mean_net(obs)

    def log_prob(self, obs, act):
        return gaussian_log_prob(self.mean_net(obs), self.log_std, act)

    def numpy_snapshot(self):
        """Weights as numpy arrays for fast per-step acting outside autograd."""
        with torch.no_grad():
            layers = [(m.weight.numpy().T.copy(), m.bias.numpy().copy())
                      for m in self.mean_net.layers]
            return PolicySnapshot(layers, self.log_std.numpy().copy())


def gaussian_log_prob(mean, log_std, act):
    z = (act - mean) * torch.exp(-log_std)
    return -0.5 * (z * z).sum(-1) - log_std.sum() - 0.5 * mean.shape[-1] * LOG_2PI


def gaussian_kl(mean_old, log_std_old, mean_new, log_std_new):
    """Per-sample KL(old || new) of diagonal Gaussians."""
    var_old = torch.exp(2 * log_std_old)
    var_new = torch.exp(2 * log_std_new)
    kl = (log_std_new - log_std_old
          + (var_old + (mean_old - mean_new) ** 2) / (2 * var_new) - 0.5)
    return kl.sum(-1)


class PolicySnapshot:
    """A frozen numpy copy of the policy: what the actor runs at every control step."""

    def __init__(self, layers, log_std):
        self.layers = layers
        self.log_std = log_std
        self.std = np.exp(log_std)

    def mean(self, obs):
        x = obs
        for w, b in self.layers[:-1]:
            x = np.tanh(x @ w + b)
        w, b = self.layers[-1]
        return x @ w + b

    def sample(self, obs, rng):
        """Draw an action and return it with its log-probability under this policy."""
        mean = self.mean(obs)
        noise = rng.standard_normal(mean.shape)
        act = mean + self.std * noise
        logp = (-0.5 * float(noise @ noise) - float(self.log_std.sum())
                - 0.5 * mean.shape[-1] * LOG_2PI)
        return act, logp


class ValueNet(nn.Module):
    """V(s) = net(s) * scale + shift.

    Returns of locomotion tasks reach the hundreds while a freshly initialised net outputs
    about +-1, so an unscaled net spends its Adam steps chasing the scale. ``retarget``
    moves shift and scale to a batch's return statistics and rescales the output layer so
    that V(s) is unchanged by the move (PopArt, van Hasselt et al. 2016), except before the
    first fit. At shift 0 and
    scale 1 (checkpoints written before the scale existed) V is exactly the plain net.
    """

    def __init__(self, obs_dim, hidden=(64, 64)):
        super().__init__()
        self.net = TanhMLP((obs_dim, *hidden, 1), out_gain=1.0)
        self.register_buffer('shift', torch.zeros(()))
        self.register_buffer('scale', torch.ones(()))

    def forward(self, obs):
        return self.net(obs).squeeze(-1) * self.scale + self.shift

    @torch.no_grad()
    def retarget(self, returns, keep_values=True, min_scale=1e-2):
        """keep_values=False for a net never fitted: its values are noise worth nothing,
        and keeping them would leave the net to move its output by mean/spread units."""
        shift = returns.mean()
        scale = returns.std(unbiased=False).clamp_min(min_scale)
        if keep_values:
            out = self.net.layers[-1]
            out.weight.mul_(self.scale / scale)
            out.bias.mul_(self.scale).add_(self.shift - shift).div_(scale)
        self.shift.copy_(shift)
        self.scale.copy_(scale)


class RunningNorm:
    """Running mean/variance of observations (parallel Welford), saved with the policy.

    Frozen during evaluation and deployment so that the policy sees exactly the inputs it
    was trained on.
    """

    def __init__(self, dim, clip=10.0, eps=1e-8):
        self.mean = np.zeros(dim, np.float64)
        self.var = np.ones(dim, np.float64)
        self.count = 0.0
        self.clip, self.eps = clip, eps
        self.frozen = False

    def update(self, batch):
        if self.frozen or len(batch) == 0:
            return
        batch = np.asarray(batch, np.float64).reshape(-1, self.mean.shape[0])
        b_mean, b_var, b_count = batch.mean(0), batch.var(0), batch.shape[0]
        total = self.count + b_count
        delta = b_mean - self.mean
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta ** 2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def __call__(self, obs):
        x = (np.asarray(obs, np.float64) - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(x, -self.clip, self.clip).astype(np.float32)

    def denormalize(self, x):
        """The observation that normalizes to x, exact unless x was clipped: a batch kept for
        later updates (TRPOConfig.reuse_batches) is normalized again with the statistics
        that have moved since, and its bootstrap states travel normalized only."""
        return np.asarray(x, np.float64) * np.sqrt(self.var + self.eps) + self.mean

    def state(self):
        return {'mean': self.mean.copy(), 'var': self.var.copy(),
                'count': np.array([self.count])}

    def load_state(self, state):
        self.mean = np.asarray(state['mean'], np.float64).copy()
        self.var = np.asarray(state['var'], np.float64).copy()
        self.count = float(np.asarray(state['count']).reshape(-1)[0])


class IdentityNorm(RunningNorm):
    """Used when observation normalization is off: same interface, no change."""

    def update(self, batch):
        return

    def __call__(self, obs):
        return np.asarray(obs, np.float32)

    def denormalize(self, x):
        return np.asarray(x, np.float64)
