"""Maximisation of a GLMM likelihood and its Hessian (internal).

L-BFGS-B (bounds: the diagonal of each random-effect Cholesky factor is >= 0, as lme4) with an
analytic gradient where the objective has one, central differences otherwise, followed by Newton
steps on a finite-difference Hessian so that the optimum is located to ~1e-8. The Hessian over
all parameters (beta, theta, extra) is the one glmer (``calc.derivs = TRUE``, finite differences
of the deviance over theta and beta) and glmmTMB (exact, by automatic differentiation) invert for
the standard errors; the inverse of its beta block is invariant to how the variance parameters
are parameterised at the optimum, so both references give the same standard errors up to their
differencing error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["OptimResult", "maximise", "fd_hessian"]


@dataclass
class OptimResult:
    phi: np.ndarray
    value: float  # minus log-likelihood
    hessian: np.ndarray  # of minus log-likelihood over the free parameters
    free: np.ndarray  # bool mask: parameters not on a bound
    converged: bool
    message: str
    n_iter: int


def _grad(obj, phi, bounds):
    g = obj.grad(phi)
    if g is not None:
        return g
    return fd_grad(obj.value, phi, bounds)


def _step(x: float) -> float:
    return 1e-5 * max(1.0, abs(x))


def fd_grad(f, phi, bounds):
    g = np.empty_like(phi)
    for k in range(len(phi)):
        h = _step(phi[k])
        lo = bounds[k][0]
        up = phi.copy()
        up[k] += h
        if lo is not None and phi[k] - h < lo:  # one-sided at a bound
            g[k] = (f(up) - f(phi)) / h
            continue
        dn = phi.copy()
        dn[k] -= h
        g[k] = (f(up) - f(dn)) / (2 * h)
    return g


def fd_hessian(obj, phi, free) -> np.ndarray:
    """Hessian over the free parameters: forward differences of the analytic gradient, or
    second differences of the value (step 1e-3 relative) when there is no analytic gradient."""
    idx = np.flatnonzero(free)
    m = len(idx)
    H = np.empty((m, m))
    g0 = obj.grad(phi)
    if g0 is not None:  # forward differences of the analytic gradient (error ~1e-5 relative)
        for a, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(phi[k]))
            up = phi.copy()
            up[k] += h
            H[:, a] = ((obj.grad(up) - g0) / h)[idx]
        obj.value(phi)
        return 0.5 * (H + H.T)
    f = obj.value
    f0 = f(phi)
    # steps scaled to each parameter's curvature: h^2 H_kk ~ 1e-4 (rough diagonal first)
    hs = []
    for k in idx:
        h0 = 1e-3 * max(1.0, abs(phi[k]))
        x1, x2 = phi.copy(), phi.copy()
        x1[k] += h0
        x2[k] -= h0
        d = (f(x1) - 2 * f0 + f(x2)) / h0**2
        hs.append(1e-2 / np.sqrt(d) if d > 0 else h0)

    def at(**moves):
        x = phi.copy()
        for k, d in moves.items():
            x[int(k)] += d
        return f(x)

    for a, k in enumerate(idx):
        ha = hs[a]
        H[a, a] = (at(**{str(k): ha}) - 2 * f0 + at(**{str(k): -ha})) / ha**2
        for b in range(a):
            j, hb = idx[b], hs[b]
            v = (
                at(**{str(k): ha, str(j): hb})
                - at(**{str(k): ha, str(j): -hb})
                - at(**{str(k): -ha, str(j): hb})
                + at(**{str(k): -ha, str(j): -hb})
            )
            H[a, b] = H[b, a] = v / (4 * ha * hb)
    return H


def maximise(obj, phi0, bounds, *, canon=None, maxiter: int = 500) -> OptimResult:
    """Minimise ``obj.value`` from ``phi0``; polish with Newton steps.

    The likelihood is invariant to the sign of each column of a random term's Cholesky factor,
    so the search is unconstrained (a bound at 0 would trap it: the gradient in a standard
    deviation vanishes at 0 by symmetry) and ``canon`` then makes the diagonal >= 0.
    Parameters whose bound is active (a zero standard deviation) are held there.
    """
    bnds = [(lo, hi) for lo, hi in bounds]
    free_b = [(None, None)] * len(bnds)
    res = optimize.minimize(
        obj.value,
        phi0,
        jac=lambda x: _grad(obj, x, free_b),
        method="L-BFGS-B",
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
    )
    phi = np.asarray(res.x, dtype=float)
    if canon is not None:
        phi = canon(phi)
    free = np.array(
        [not (lo is not None and abs(phi[k] - lo) <= 1e-6) for k, (lo, _) in enumerate(bnds)]
    )
    phi = np.where(free, phi, [lo if lo is not None else 0.0 for lo, _ in bnds])
    value = obj.value(phi)
    H = fd_hessian(obj, phi, free)
    for _ in range(4):
        g = _grad(obj, phi, bnds)[free]
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if np.max(np.abs(step)) < 1e-9:
            break
        trial = phi.copy()
        trial[free] -= step
        if any(lo is not None and trial[k] < lo for k, (lo, _) in enumerate(bnds)):
            break
        v = obj.value(trial)
        if v > value:
            break
        phi, value = trial, v
    obj.value(phi)  # leave the objective's state (modes) at the optimum
    return OptimResult(
        phi=phi,
        value=value,
        hessian=H,
        free=free,
        converged=bool(res.success) or np.max(np.abs(_grad(obj, phi, bnds)[free])) < 1e-3,
        message=str(res.message),
        n_iter=int(res.nit),
    )
