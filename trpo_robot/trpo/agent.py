"""The learner's state: policy (.pi), value network (.v), observation normalizer, version."""
import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from .batch import build_batch, EarlierBatches
from .config import TRPOConfig
from .networks import GaussianPolicy, IdentityNorm, RunningNorm, ValueNet
from .update import fit_value, policy_step


@dataclass
class UpdateStats:
    version: int
    steps: int
    samples: int
    accepted: bool
    reason: str
    kl: float
    surrogate_gain: float
    backtracks: int
    value_loss: float
    entropy: float
    policy_time: float
    value_time: float
    reused: int = 0
    """Steps of earlier batches this update learned from again (TRPOConfig.reuse_batches)."""

    @property
    def update_time(self):
        return self.policy_time + self.value_time


@contextlib.contextmanager
def _one_thread():
    """Orthogonal initialisation is a QR factorisation whose rounding depends on the number
    of threads torch uses: without this the seed did not decide the weights, the machine's
    core count did (and `trpo-robot train`, which builds its agent before train() pins one
    thread, started from other weights than the Python API for the same seed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Agent:
    """Everything a checkpoint holds, and the update that advances it by one version."""

    def __init__(self, obs_dim, act_dim, config: TRPOConfig, seed=0):
        torch.manual_seed(seed)
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        with _one_thread():
            self.pi = GaussianPolicy(obs_dim, act_dim, config.policy_hidden,
                                     config.init_log_std)
            self.v = ValueNet(obs_dim, config.value_hidden)
        self.v_optim = torch.optim.Adam(self.v.parameters(), lr=config.value_lr, foreach=True)
        norm_cls = RunningNorm if config.normalize_obs else IdentityNorm
        self.obs_norm = norm_cls(obs_dim, clip=config.obs_clip)
        self.earlier = EarlierBatches(config.reuse_batches)
        self.version = 0
        self.total_steps = 0
        self.generator = torch.Generator().manual_seed(seed)

    def snapshot(self):
        return self.pi.numpy_snapshot()

    def update(self, segments) -> UpdateStats:
        """One TRPO iteration on finished segments; the normalizer then absorbs their
        observations so the next batch is normalized with the newest statistics."""
        cfg = self.config
        reused = self.earlier.replay(self.obs_norm)
        batch = build_batch(reused + list(segments), self.v, cfg.gamma, cfg.gae_lambda,
                            cfg.normalize_advantages)
        n_reused = sum(len(s) for s in reused)
        t0 = time.perf_counter()
        result = policy_step(self.pi, batch.obs, batch.actions, batch.logp,
                             batch.advantages, cfg)
        t1 = time.perf_counter()
        if cfg.value_scaling:
            self.v.retarget(batch.returns, keep_values=self.version > 0)
        value_loss = fit_value(self.v, self.v_optim, batch.obs, batch.returns, cfg,
                               self.generator)
        t2 = time.perf_counter()
        self.earlier.remember(segments, self.obs_norm)
        self.obs_norm.update(batch.raw_obs[n_reused:])
        self.version += 1
        self.total_steps += len(batch) - n_reused
        return UpdateStats(self.version, self.total_steps, len(batch) - n_reused,
                           result.accepted, result.reason, result.kl, result.surrogate_gain,
                           result.backtracks, value_loss, self.entropy(), t1 - t0, t2 - t1,
                           n_reused)

    def entropy(self):
        log_std = self.pi.log_std.detach().numpy()
        return float(log_std.sum() + 0.5 * len(log_std) * (1.0 + np.log(2 * np.pi)))

    def act_deterministic(self, raw_obs):
        with torch.no_grad():
            x = torch.from_numpy(self.obs_norm(raw_obs))
            return self.pi(x).numpy()
