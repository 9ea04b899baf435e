"""Conjugate gradient: solve A x = b for a symmetric positive-definite A given as a matvec."""
import torch


def conjugate_gradient(matvec, b, iters=10, residual_tol=1e-10):
    """Return x with A x ~= b after at most `iters` iterations.

    Stops early on a small residual, and also when the curvature p^T A p is not positive
    (A is then not positive definite along p: continuing would divide by ~0 and blow up).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr <= residual_tol:
            break
        ap = matvec(p)
        curvature = torch.dot(p, ap)
        if not torch.isfinite(curvature) or curvature <= 0:
            break
        alpha = rr / curvature
        x += alpha * p
        r -= alpha * ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
