"""Fisher-vector products for the Gaussian MLP policy in Gauss-Newton form.

For a Gaussian policy the Fisher matrix of the mean KL is F = J^T M J, with J the Jacobian
of the policy outputs (mean, log_std) and M the Fisher of the Gaussian in those outputs:
diag(1/sigma^2)/N per sample for the mean, 2 I for log_std, no cross terms. One forward pass
caches the layer activations; each product is then a hand-written forward-mode pass (J v)
and a reverse-mode pass (J^T u) through the MLP: a few small matmuls, no autograd graph, no
double backprop.
"""
import torch

from .networks import GaussianPolicy, gaussian_kl


def flat_params(module):
    return torch.cat([p.data.reshape(-1) for p in module.parameters()])


def flat_grad(output, params, retain_graph=False):
    grads = torch.autograd.grad(output, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])


class GaussNewtonFisher:
    """F v for the mean KL of `policy` over `obs`, with damping, from one forward pass.

    The flat parameter order is that of policy.parameters(): log_std (a parameter of the
    policy module itself comes first), then each layer's weight and bias.
    """

    def __init__(self, policy: GaussianPolicy, obs, damping=0.1):
        if next(iter(policy.parameters())) is not policy.log_std:
            raise TypeError('GaussNewtonFisher expects log_std as the first policy parameter')
        self.n_log_std = policy.log_std.numel()
        with torch.no_grad():
            _, self.hidden = policy.mean_net.forward_cached(obs)
            self.derivs = [1.0 - h * h for h in self.hidden[1:]]
        self.weights = [m.weight.detach() for m in policy.mean_net.layers]
        self.shapes = [(w.shape, w.numel(), w.shape[0]) for w in self.weights]
        self.mean_scale = torch.exp(-2.0 * policy.log_std.detach()) / obs.shape[0]
        self.damping = damping

    def _split(self, v):
        pieces, offset = [], self.n_log_std
        for shape, n_w, n_b in self.shapes:
            w = v[offset:offset + n_w].view(shape)
            b = v[offset + n_w:offset + n_w + n_b]
            pieces.append((w, b))
            offset += n_w + n_b
        return pieces, v[:self.n_log_std]

    def jvp(self, pieces):
        """J v for the mean outputs: tangent of the MLP output, (N, act_dim)."""
        dz = None
        for k, ((dw, db), w) in enumerate(zip(pieces, self.weights)):
            dh = None if dz is None else dz * self.derivs[k - 1]
            dz = torch.addmm(db, self.hidden[k], dw.t())
            if dh is not None:
                dz = dz.addmm_(dh, w.t())
        return dz

    def vjp(self, u):
        """J^T u for the mean outputs: flat gradient pieces per layer."""
        grads = []
        g = u
        for k in range(len(self.weights) - 1, -1, -1):
            grads.append((g.t() @ self.hidden[k], g.sum(0)))
            if k > 0:
                g = (g @ self.weights[k]) * self.derivs[k - 1]
        return grads[::-1]

    def __call__(self, v):
        pieces, v_log_std = self._split(v)
        u = self.jvp(pieces) * self.mean_scale
        out = [2.0 * v_log_std]
        out += [t for pair in self.vjp(u) for t in (pair[0].reshape(-1), pair[1])]
        return torch.cat(out).add_(v, alpha=self.damping)


def kl_hessian_vector_product(policy, obs, damping=0.1):
    """F v by double backprop of the KL, as other implementations do: the reference the
    Gauss-Newton form is tested and benchmarked against."""
    params = list(policy.parameters())
    with torch.no_grad():
        mean_old = policy(obs)
        log_std_old = policy.log_std.detach().clone()

    def fvp(v):
        kl = gaussian_kl(mean_old, log_std_old, policy(obs), policy.log_std).mean()
        grads = torch.autograd.grad(kl, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        hv = torch.autograd.grad(flat @ v, params)
        return torch.cat([h.reshape(-1) for h in hv]) + damping * v
    return fvp
