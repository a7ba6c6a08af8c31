"""Shared gamma frailty for a Cox model, as R ``coxph(... + frailty(group))`` fits it.

Why our own: lifelines has no frailty; R's answer depends on its algorithm, which we follow step
by step (survival 3.5 ``frailty.gamma``, ``frailty.controlgam``, ``coxpenal.fit``,
``coxpenal.df``):

* for a fixed variance theta (nu = 1/theta) the penalised partial likelihood
  ``PL(beta, b) - nu * sum(exp(b_g) - b_g)`` is maximised over the coefficients and the group
  log-frailties b (Therneau, Grambsch & Pankratz 2003);
* theta is chosen by R's ``method = "em"`` search on the profile marginal log-likelihood
  ``c.loglik = PL + nu * sum(b) + gammacon(d, nu)`` (d: events per group): theta = 0, then 1,
  then 0.5 or 2, then ``frailty.brent`` steps on sqrt(theta) until the relative change of
  c.loglik is below ``eps = 1e-5`` (at most 10 outer iterations). The reported theta is the last
  one fitted (what ``print(fit)`` shows as "Variance of random effect");
* variances: with more than 5 groups R stores only the diagonal of the frailty block of the
  information ("sparse"), and reports ``var = H^-1`` (printed ``se(coef)``) and
  ``var2 = H^-1 I H^-1`` (printed ``se2``) from that matrix. We do the same, so our
  ``std_error`` is R's ``se(coef)`` and ``se2`` is R's ``se2``.

Validated against R survival 3.5.3 in tests/reference/r_survival/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ..exceptions import ConvergenceError, ModelSpecificationError
from ._engine import RiskSets, evaluate, newton

__all__ = ["FrailtyFit", "fit_gamma_frailty", "gammacon", "brent_step"]


def gammacon(d: np.ndarray, nu: float) -> float:
    """R ``survival:::frailty.gammacon``: the gamma frailty's correction to the PPL."""
    d = np.asarray(d, dtype=float)
    maxd = int(d.max()) if d.size else 0
    if maxd == 0:
        return 0.0
    if nu > 1e7 * maxd:
        term1 = float((d * d).sum() / nu)
    else:
        term1 = float((d + nu * np.log(nu / (nu + d))).sum())
    # sum over groups of log Gamma(nu + d)/Gamma(nu) - d log(nu + d) rewritten as R does
    term2 = float((gammaln(nu + d) - gammaln(nu) - d * np.log(nu + d)).sum())
    return term1 + term2


def brent_step(x: np.ndarray, y: np.ndarray, lower: float = 0.0) -> float:
    """R ``survival:::frailty.brent``: the next point of the 1-d search (maximum of y)."""
    n = len(x)
    if n < 3:
        return float(np.mean(x))
    order = np.argsort(x, kind="stable")
    xx, yy = np.asarray(x)[order], np.asarray(y)[order]
    best = np.flatnonzero(yy == np.max(y))
    if best.size > 1:
        raise ConvergenceError("frailty search: ties for the maximum likelihood")
    b = int(best[0])
    if b == 0:
        new = xx[0] - 3 * (xx[1] - xx[0])
        if new < lower:
            new = lower + (np.min(xx[xx > lower]) - lower) / 10
        return float(new)
    if b == n - 1:
        return float(xx[-1] + 3 * (xx[-1] - xx[-2]))
    x3, y3 = xx[b - 1 : b + 2], yy[b - 1 : b + 2]
    t1 = (x3[1] - x3[0]) ** 2 * (y3[1] - y3[2]) - (x3[1] - x3[2]) ** 2 * (y3[1] - y3[0])
    t2 = (x3[1] - x3[0]) * (y3[1] - y3[2]) - (x3[1] - x3[2]) * (y3[1] - y3[0])
    new = x3[1] - 0.5 * t1 / t2
    if new < x3[0] or new > x3[2] or (n > 4 and (new - x[-1]) > 0.5 * abs(x[-2] - x[-3])):
        if (x3[1] - x3[0]) > (x3[2] - x3[1]):
            return float(x3[1] - 0.38 * (x3[1] - x3[0]))
        return float(x3[1] + 0.32 * (x3[2] - x3[1]))
    return float(new)


@dataclass
class FrailtyFit:
    beta: np.ndarray
    frail: np.ndarray
    theta: float
    loglik: float  # partial likelihood at the fitted coefficients and frailties
    var: np.ndarray
    var2: np.ndarray
    history: np.ndarray  # rows: theta, PPL-type loglik, c.loglik
    iterations: int


def _fit_fixed(prep: RiskSets, z: np.ndarray, p: int, theta: float, start: np.ndarray):
    ngroup = z.shape[1] - p
    if theta == 0:
        def fun0(beta):
            ev = evaluate(prep, z[:, :p], z[:, :p] @ beta)
            return ev.loglik, ev.score, ev.info
        beta, val, _, hess, it, ok = newton(fun0, start[:p])
        return np.r_[beta, np.zeros(ngroup)], val, val, hess, ok
    nu = 1.0 / theta

    def fun(par):
        b = par[p:]
        ev = evaluate(prep, z, z @ par)
        eb = np.exp(b)
        val = ev.loglik - nu * float((eb - b).sum())
        grad = ev.score.copy()
        grad[p:] -= nu * (eb - 1)
        hess = ev.info.copy()
        hess[p:, p:] += np.diag(nu * eb)
        return val, grad, hess

    par, val, _, hess, it, ok = newton(fun, start)
    par[p:] -= math.log(np.mean(np.exp(par[p:])))  # R's recentring (already ~0 at the optimum)
    pl = evaluate(prep, z, z @ par, info=False).loglik
    return par, pl, pl + nu * float(par[p:].sum()), None, ok


def _variances(prep, z, p, par, theta, sparse: bool):
    ev = evaluate(prep, z, z @ par)
    h = ev.info.copy()
    if sparse:
        block = h[p:, p:]
        h[p:, p:] = np.diag(np.diag(block))
    pen = np.exp(par[p:]) / theta
    h[p:, p:] += np.diag(pen)
    hinv = np.linalg.inv(h)
    c = hinv[:p, :p]
    bmat = hinv[p:, :p]
    var2 = c - bmat.T @ (pen[:, None] * bmat)
    return c, var2


def fit_gamma_frailty(
    prep: RiskSets,
    x: np.ndarray,
    group: np.ndarray,
    *,
    eps: float = 1e-5,
    outer_max: int = 10,
) -> FrailtyFit:
    """Fit beta, the frailties and theta as R ``coxph(... + frailty(group))`` (sorted inputs)."""
    p = x.shape[1]
    codes, group = np.unique(group, return_inverse=True)
    ngroup = codes.size
    if prep.n * (p + ngroup) > 40_000_000:
        raise ModelSpecificationError(
            f"a gamma frailty for {ngroup} groups on {prep.n} rows needs a dense "
            f"{prep.n} x {p + ngroup} design, more than this implementation handles; use "
            "cluster= (robust variance) for this size"
        )
    z = np.hstack([x, np.eye(ngroup)[group]])
    d = np.bincount(group, weights=prep.event, minlength=ngroup)
    history: list[tuple[float, float, float]] = []
    theta, start = 0.0, np.zeros(p + ngroup)
    fits = {}
    for outer in range(1, outer_max + 1):
        par, pl, ppl, _, ok = _fit_fixed(prep, z, p, theta, start)
        if not ok:
            raise ConvergenceError(f"gamma frailty: the inner fit at theta={theta:g} did not converge")
        fits[outer] = (theta, par, pl)
        correct = 0.0 if theta == 0 else gammacon(d, 1.0 / theta)
        history.append((theta, ppl, ppl + correct))
        hist = np.array(history)
        done = False
        if outer == 1:
            new = 1.0
        elif outer == 2:
            new = hist[:2, 0].mean() if hist[1, 2] < hist[0, 2] + 1 else 2 * hist[1, 0]
        else:
            done = abs(1 - hist[-1, 2] / hist[-2, 2]) < eps
            xs, ys = hist[:, 0], hist[:, 2]
            if ys[-1] == ys.max() and xs[-1] == xs.max():
                new = 2 * xs.max()
            else:
                new = brent_step(np.sqrt(xs), ys, lower=0.0) ** 2
        if done:
            break
        closest = int(np.argmin((hist[:, 0] - new) ** 2))
        start = fits[closest + 1][1].copy()
        theta = new
    theta, par, pl = fits[len(history)]
    if theta == 0:
        raise ConvergenceError("gamma frailty: theta stayed at 0 (no group variation estimable)")
    var, var2 = _variances(prep, z, p, par, theta, sparse=ngroup > 5)
    return FrailtyFit(par[:p], par[p:], theta, pl, var, var2, np.array(history), len(history))
