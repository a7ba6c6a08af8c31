"""The Cox partial likelihood on sorted risk sets: log-likelihood, score, information, residuals.

One vectorised engine serves every Cox fit in peerstats (plain, stratified, clustered, gamma
frailty, Schoenfeld tests). Data are sorted once by (stratum, time); risk-set sums are reverse
cumulative sums, so one evaluation costs O(n p^2) without an n x p x p array.

Ties: Efron (R's default) or Breslow. Efron's approximation splits the d tied events at a time
into d *sub-events*; in the l-th (l = 0..d-1) the tied events carry weight 1 - l/d in the risk
set (Therneau & Grambsch 2000, section 3.3; R ``survival`` coxfit6.c). Every quantity below is a
sum over sub-events of

    S0_l = S0 - (l/d) D0,   S1_l = S1 - (l/d) D1,   xbar_l = S1_l / S0_l,

with S the risk-set sums and D the sums over the tied events. Breslow is the case l/d = 0.

The information is ``X' diag(w * A) X - sum_l xbar_l xbar_l'`` where ``A_i`` is the sum of
``c_il / S0_l`` over the sub-events subject i is at risk for (c_il = 1, or 1 - l/d for a tied
event): the same cumulative sums give the score (martingale-type) residuals that the robust
(cluster) variance uses, exactly as R's ``residuals(fit, "dfbeta")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RiskSets", "Evaluation", "evaluate", "at_risk_sum", "newton"]


@dataclass(frozen=True)
class RiskSets:
    """Sorted data and the index arrays of tie groups and (Efron) sub-events."""

    order: np.ndarray  # original row -> sorted position is order.argsort()
    time: np.ndarray  # sorted
    event: np.ndarray  # sorted, 0/1 float
    gid: np.ndarray  # tie group of each sorted row
    gstart: np.ndarray  # first sorted row of each group
    gend_stratum: np.ndarray  # end (exclusive, a group index) of the group's stratum
    gstratum: np.ndarray  # stratum code of each group
    dcount: np.ndarray  # events per group
    sg: np.ndarray  # group of each sub-event
    frac: np.ndarray  # l/d of each sub-event (0 for Breslow)

    @property
    def n(self) -> int:
        return self.time.size

    @classmethod
    def build(cls, time, event, strata=None, ties: str = "efron") -> RiskSets:
        time = np.asarray(time, dtype=float)
        event = np.asarray(event, dtype=float)
        n = time.size
        strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
        order = np.lexsort((time, strata))
        t, e, s = time[order], event[order], strata[order]
        new = np.ones(n, dtype=bool)
        new[1:] = (t[1:] != t[:-1]) | (s[1:] != s[:-1])
        gstart = np.flatnonzero(new)
        gid = np.cumsum(new) - 1
        snew = np.ones(n, dtype=bool)
        snew[1:] = s[1:] != s[:-1]
        sstart = np.flatnonzero(snew)
        send = np.append(sstart[1:], n)
        scode = np.cumsum(snew) - 1
        gstratum = scode[gstart]
        dcount = np.add.reduceat(e, gstart).astype(np.int64)
        sg = np.repeat(np.arange(gstart.size), dcount)
        first = np.repeat(np.cumsum(dcount) - dcount, dcount)
        rank = np.arange(sg.size) - first
        frac = rank / dcount[sg] if ties == "efron" else np.zeros(sg.size)
        gnext = np.searchsorted(gstart, send[gstratum])  # first group of the next stratum
        return cls(order, t, e, gid, gstart, gnext, gstratum, dcount, sg, frac)


def _risk(prep: RiskSets, ga: np.ndarray) -> np.ndarray:
    """Risk-set sums (time >= t, same stratum) from the per-group sums ``ga``."""
    rc = np.zeros((ga.shape[0] + 1,) + ga.shape[1:])
    rc[:-1] = np.cumsum(ga[::-1], axis=0)[::-1]
    return rc[:-1] - rc[prep.gend_stratum]


def _group_sum(prep: RiskSets, a: np.ndarray) -> np.ndarray:
    return np.add.reduceat(a, prep.gstart, axis=0)


def at_risk_sum(prep: RiskSets, q: np.ndarray) -> np.ndarray:
    """For every sorted row i: sum over sub-events l it is at risk for of ``c_il * q_l``.

    ``q`` is (n_sub, k); c_il is 1, or 1 - l/d when i is one of the tied events of l's group.
    """
    ngroup = prep.gstart.size
    k = q.shape[1]
    full = np.zeros((ngroup, k))
    tied = np.zeros((ngroup, k))
    for j in range(k):
        full[:, j] = np.bincount(prep.sg, weights=q[:, j], minlength=ngroup)
        tied[:, j] = np.bincount(prep.sg, weights=q[:, j] * (1 - prep.frac), minlength=ngroup)
    cum = np.cumsum(full, axis=0)
    # restart the cumulative sum at each stratum
    first_group = np.flatnonzero(np.r_[True, prep.gstratum[1:] != prep.gstratum[:-1]])
    before = np.vstack([np.zeros((1, k)), cum[first_group[1:] - 1]])
    cum -= before[prep.gstratum]
    g = prep.gid
    own = np.where(prep.event[:, None] > 0, tied[g], full[g])
    return cum[g] - full[g] + own


@dataclass
class Evaluation:
    loglik: float
    score: np.ndarray
    info: np.ndarray
    s0: np.ndarray  # per sub-event
    xbar: np.ndarray  # per sub-event
    w: np.ndarray  # exp(eta - shift), sorted rows


def evaluate(prep: RiskSets, x: np.ndarray, eta: np.ndarray, *, info: bool = True) -> Evaluation:
    """Log partial likelihood, score and observed information at the sorted ``eta``.

    ``x`` is the sorted (n, p) design (centred or not: the results do not change).
    """
    shift = float(eta.max()) if eta.size else 0.0
    w = np.exp(eta - shift)
    e = prep.event
    wx = w[:, None] * x
    s0g = _risk(prep, _group_sum(prep, w))
    s1g = _risk(prep, _group_sum(prep, wx))
    d0g = _group_sum(prep, w * e)
    d1g = _group_sum(prep, wx * e[:, None])
    sg, fr = prep.sg, prep.frac
    s0 = s0g[sg] - fr * d0g[sg]
    s1 = s1g[sg] - fr[:, None] * d1g[sg]
    xbar = s1 / s0[:, None]
    loglik = float(e @ eta - np.log(s0).sum() - shift * sg.size)
    score = x.T @ e - xbar.sum(axis=0)
    imat = np.empty((x.shape[1], x.shape[1]))
    if info:
        a = at_risk_sum(prep, (1.0 / s0)[:, None])[:, 0]
        imat = (x * (w * a)[:, None]).T @ x - xbar.T @ xbar
    return Evaluation(loglik, score, imat, s0, xbar, w)


def score_residuals(prep: RiskSets, x: np.ndarray, ev: Evaluation) -> np.ndarray:
    """Score residuals U_i (sorted rows), summing to the score; R ``residuals(fit, "score")``.

    U_i = d_i (x_i - mean_l xbar_l) - w_i (x_i A_i - B_i), A_i = sum c_il / S0_l,
    B_i = sum c_il xbar_l / S0_l.
    """
    inv = 1.0 / ev.s0
    a = at_risk_sum(prep, inv[:, None])[:, 0]
    b = at_risk_sum(prep, ev.xbar * inv[:, None])
    ngroup = prep.gstart.size
    p = x.shape[1]
    mean_xbar = np.zeros((ngroup, p))
    for j in range(p):
        mean_xbar[:, j] = np.bincount(prep.sg, weights=ev.xbar[:, j], minlength=ngroup)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_xbar /= np.maximum(prep.dcount, 1)[:, None]
    e = prep.event[:, None]
    return e * (x - mean_xbar[prep.gid]) - ev.w[:, None] * (x * a[:, None] - b)


def newton(fun, beta0: np.ndarray, *, max_iter: int = 50, tol: float = 1e-8):
    """Newton-Raphson with step halving on a concave objective.

    ``fun(beta) -> (value, gradient, negative Hessian)``. Returns (beta, value, gradient,
    negative Hessian, iterations, converged).
    """
    beta = np.asarray(beta0, dtype=float).copy()
    val, grad, hess = fun(beta)
    for it in range(1, max_iter + 1):
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        new = beta + step
        nval, ngrad, nhess = fun(new)
        halvings = 0
        while not np.isfinite(nval) or nval < val - 1e-12 * abs(val):
            step /= 2
            halvings += 1
            if halvings > 30:
                return beta, val, grad, hess, it, False
            new = beta + step
            nval, ngrad, nhess = fun(new)
        beta, val, grad, hess = new, nval, ngrad, nhess
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            return beta, val, grad, hess, it, True
    return beta, val, grad, hess, max_iter, False
