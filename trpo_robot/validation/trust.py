"""The check of each new policy version before it drives a real arm.

Versions a learner sends during a hardware run are not re-validated on the twin (that
would stall learning), but TRPO itself promises something checkable: each update moves the
policy by at most ``max_kl`` (mean KL over the batch's states). An actor that measures the
KL from the policy it runs to the new one, on the states it has just seen, catches a
version that broke that promise (a bug, a corrupted or foreign learner) before it acts.
The action statistics catch a policy that would spend its time pinned against the bounds.
"""
from dataclasses import dataclass
import threading

import numpy as np


@dataclass(frozen=True)
class TrustLimits:
    kl_slack: float = 3.0
    """Allowed KL per version of distance, as a multiple of the learner's max_kl. The
    learner measures KL on its batch with the old normaliser; the actor measures on its last
    states, after the normaliser moved too, so an honest update lands near but not exactly
    under max_kl (measured on the twin: docs/validation.md)."""
    max_saturation: float = 0.5
    """Largest share of (state, joint) pairs whose mean action lies outside [-1, 1]."""
    max_std: float = 2.0
    """Largest action noise (std, in action units where the bounds are +-1)."""
    min_states: int = 32
    """Below this many recent states the KL is not estimated: the first episode's versions
    are checked for finiteness and bounds only."""


def mean_kl(old_mean, old_std, new_mean, new_std) -> float:
    """Mean over states of KL(old || new) between diagonal Gaussians, as TRPO bounds it."""
    var_ratio = (old_std / new_std) ** 2
    per_dim = 0.5 * (var_ratio + ((new_mean - old_mean) / new_std) ** 2 - 1.0
                     - np.log(var_ratio))
    return float(per_dim.sum(axis=-1).mean())


class StateWindow:
    """The last raw observations the arm produced, filled by the control thread (O(1) per
    step) and read by the thread that checks a new policy."""

    def __init__(self, obs_dim: int, size: int = 512):
        self._rows = np.zeros((size, obs_dim))
        self._count = 0
        self._lock = threading.Lock()

    def add(self, raw) -> None:
        with self._lock:
            self._rows[self._count % len(self._rows)] = raw
            self._count += 1

    def states(self) -> np.ndarray:
        with self._lock:
            return self._rows[:min(self._count, len(self._rows))].copy()


def typical_states(norm, obs_dim, count=256) -> np.ndarray:
    """Before the arm has produced states, draws from the running policy's normaliser (the
    states it was trained on) stand in: a fresh learner's random version 0 must not slip
    through just because it arrived before the first episode."""
    rng = np.random.default_rng(0)
    mean = getattr(norm, 'mean', np.zeros(obs_dim))
    std = np.sqrt(getattr(norm, 'var', np.ones(obs_dim)))
    return mean + std * rng.standard_normal((count, obs_dim))


class TrustCheck:
    """Judges a candidate (snapshot, norm, version, max_kl) against the running policy."""

    def __init__(self, obs_dim: int, limits: TrustLimits = TrustLimits()):
        self.limits, self.obs_dim = limits, obs_dim
        self.window = StateWindow(obs_dim)
        self.last_kl = float('nan')

    def reason_to_refuse(self, running, snapshot, norm, info) -> str | None:
        """Why the candidate may not act on hardware, or None."""
        if running is None:
            return self._bounds(snapshot, norm, self.window.states())
        states = self.window.states()
        if len(states) < self.limits.min_states:
            states = typical_states(running.norm, self.obs_dim)
        if info.get('max_kl', 0.0) <= 0.0:
            return 'the policy does not state its trust region (max_kl): cannot be checked'
        gap = max(1, info['policy_version'] - running.version) if \
            info.get('epoch', 0) == running.epoch else 1
        # Both through the running policy's normaliser: TRPO bounds the change of the
        # network on the inputs as the old version saw them; the normaliser's own drift is
        # data statistics, judged by the bounds below.
        inputs = running.norm(states).astype(np.float64)
        self.last_kl = kl = mean_kl(running.snapshot.mean(inputs), running.snapshot.std,
                                    snapshot.mean(inputs), snapshot.std)
        # KL is a squared distance (Fisher metric): gap steps of at most max_kl each are
        # at most gap^2 x max_kl apart.
        bound = self.limits.kl_slack * info['max_kl'] * gap ** 2
        if not np.isfinite(kl) or kl > bound:
            return (f'KL {kl:.4g} from version {running.version} on the last {len(states)} '
                    f'states exceeds {bound:.4g} ({self.limits.kl_slack:g} x max_kl '
                    f'{info["max_kl"]:g} x {gap}^2 versions)')
        return self._bounds(snapshot, norm, states)

    def _bounds(self, snapshot, norm, states) -> str | None:
        if len(states) == 0:
            return None
        mean = snapshot.mean(norm(states).astype(np.float64))
        if not np.all(np.isfinite(mean)):
            return 'non-finite mean action on the last states'
        saturated = float(np.mean(np.abs(mean) > 1.0))
        if saturated > self.limits.max_saturation:
            return (f'mean action outside [-1, 1] on {saturated:.0%} of the last states '
                    f'(limit {self.limits.max_saturation:.0%})')
        if float(np.max(snapshot.std)) > self.limits.max_std:
            return (f'action std {float(np.max(snapshot.std)):.3g} exceeds '
                    f'{self.limits.max_std:g}')
        return None
