"""Analytic power from the expected information of the analysis model.

For a design and a sample size the analysis model (see :mod:`peerstats.design._model`) is
evaluated at the true parameters on its *expected* data: every unit type (a subject of one arm
with k observed visits; a delivery group with a given mix of dropout patterns, enumerated with
its multinomial probability) counted by its expected number. Then

    M = sum_u n_u E[X_u' V_u^-1 X_u],   v = l' M^-1 l          (Lu, Luo & Chen 2008, eq. 3)

is the variance of the primary contrast (with baseline covariates, E over the baseline:
E[X'FX] = Xbar'F Xbar + var(baseline) sum_i D_i' F D_i). Satterthwaite df use the same
quantities as the fitted model does at its optimum, with the expected REML information
I_kl = sum_u n_u tr(V^-1 D_k V^-1 D_l) - 2 tr(C Q_kl) + tr(C P_k C P_l) in place of the
observed one: df = 2 v^2 / (g' W g), g_k = l'C P_k C l, W = 2 I^-1. Power is that of the
two-sided t test with the non-central t distribution, ncp = delta / sqrt(v).

The counts enter linearly, so the per-unit terms are computed once per design and a whole power
curve costs one small solve per point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from peerstats.design._model import AnalysisModel

__all__ = ["analytic_power", "UnitTerms"]


@dataclass
class UnitTerms:
    """Per-unit-type expected terms at the true covariance parameters."""

    M: np.ndarray  # (U, p, p)
    P: np.ndarray  # (U, K, p, p)
    Q: np.ndarray  # (U, K, K, p, p)
    T1: np.ndarray  # (U, K, K)
    nobs: np.ndarray  # (U,) observations per unit


def _unit_terms(model: AnalysisModel, units) -> UnitTerms:
    """Expected terms of each unit, computed in stacks of units with the same dimensions."""
    K, p = model.K, model.p
    psi = model.psi_true
    U = len(units)
    M = np.zeros((U, p, p))
    P = np.zeros((U, K, p, p))
    Q = np.zeros((U, K, K, p, p))
    T1 = np.zeros((U, K, K))
    nobs = np.zeros(U)
    shapes: dict = {}
    for i, (_, _, D, Xs) in enumerate(units):
        shapes.setdefault((D.shape, len(Xs)), []).append(i)
    for idx in shapes.values():
        D = np.stack([units[i][2] for i in idx])  # (B, K, m, m)
        X = np.stack([np.stack(units[i][3]) for i in idx])  # (B, J, m, p)
        V = np.einsum("k,bkij->bij", psi, D)
        Vinv = np.linalg.inv(V)
        Bk = Vinv[:, None] @ D  # V^-1 D_k  (B, K, m, m)
        T1[idx] = np.einsum("bkij,blji->bkl", Bk, Bk)
        B, J, m = X.shape[0], X.shape[1], X.shape[2]
        VX = Vinv[:, None] @ X  # (B, J, m, p)
        # stack the J virtual matrices along the rows: sums over j become matrix products
        Xr = X.transpose(0, 2, 1, 3)  # (B, m, J, p)
        VXr = VX.transpose(0, 2, 1, 3).reshape(B, m, J * p)
        M[idx] = np.einsum("bmjp,bmjq->bpq", Xr, VX.transpose(0, 2, 1, 3), optimize=True)
        BX = (Bk @ VXr[:, None]).reshape(B, K, m, J, p)  # V^-1 D_k V^-1 X
        BXf = BX.transpose(0, 1, 3, 2, 4).reshape(B, K, J * m, p)
        Xf = X.reshape(B, J * m, p)
        P[idx] = np.swapaxes(Xf, 1, 2)[:, None] @ BXf
        # Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X = (D_k V^-1 X)' (V^-1 D_l V^-1 X)
        DX = (D @ VXr[:, None]).reshape(B, K, m, J, p).transpose(0, 1, 3, 2, 4)
        DXf = DX.reshape(B, K, J * m, p)
        Q[idx] = np.swapaxes(DXf, 2, 3)[:, :, None] @ BXf[:, None]
        nobs[idx] = D.shape[-1]
    return UnitTerms(M=M, P=P, Q=Q, T1=T1, nobs=nobs)


def analytic_power(model: AnalysisModel, ns, *, effect_scale: float = 1.0) -> dict:
    """Expected SE, df and power of the primary contrast for each n in ``ns``.

    Returns a dict of arrays over ``ns``: ``std_error``, ``df``, ``power``, ``ncp``,
    ``n_total``, ``expected_obs``.
    """
    d = model.design
    ns = np.atleast_1d(np.asarray(ns, dtype=int))
    # unit types depend on n only through their counts, except for the delivery groups whose
    # sizes may change (the last group holds the remainder): cache the terms per unit shape
    cache: dict = model.__dict__.setdefault("_terms_cache", {})
    out = {
        k: np.zeros(len(ns)) for k in ("std_error", "df", "power", "ncp", "n_total", "expected_obs")
    }
    ell = model.ell
    delta = model.target * effect_scale
    aggs = [model.aggregates(int(n)) for n in ns]
    keys = list(dict.fromkeys(k for agg in aggs for _, k in agg))
    for k in keys:
        if k not in cache:
            units = model.aggregate_units(k)
            w = np.array([u[0] for u in units])
            t = _unit_terms(model, units)
            cache[k] = tuple(np.tensordot(w, x, axes=1) for x in (t.M, t.P, t.Q, t.T1, t.nobs))
    col = {k: j for j, k in enumerate(keys)}
    counts = np.zeros((len(ns), len(keys)))
    for i, agg in enumerate(aggs):
        for c, k in agg:
            counts[i, col[k]] += c
    stack = _stacked(cache, keys)
    M = np.tensordot(counts, stack[0], axes=1)  # (N, p, p)
    C = np.linalg.inv(M)
    v = np.einsum("p,npq,q->n", ell, C, ell)
    se = np.sqrt(v)
    nobs = counts @ stack[4]
    if d.df == "satterthwaite":
        P = np.tensordot(counts, stack[1], axes=1)  # (N, K, p, p)
        Q = np.tensordot(counts, stack[2], axes=1)
        T1 = np.tensordot(counts, stack[3], axes=1)
        CP = np.einsum("npq,nkqr->nkpr", C, P)
        info = T1 - 2 * np.einsum("npq,nklqp->nkl", C, Q) + np.einsum("nkab,nlba->nkl", CP, CP)
        Cl = np.einsum("npq,q->np", C, ell)
        g = np.einsum("np,nkpq,nq->nk", Cl, P, Cl)
        keep = np.ones(model.K, dtype=bool)
        if model.group_index is not None and model.psi_true[model.group_index] == 0:
            keep[model.group_index] = False  # a variance at its boundary: as a fit would
        W = 2 * np.linalg.inv(info[:, keep][:, :, keep])
        gk = g[:, keep]
        den = np.einsum("nk,nkl,nl->n", gk, W, gk)
        with np.errstate(divide="ignore"):
            df = np.where(den > 0, 2 * v * v / np.where(den > 0, den, 1.0), np.inf)
    elif d.df == "residual":
        df = nobs - model.p
    else:
        df = np.full(len(ns), np.inf)
    ncp = delta / se
    out["std_error"] = se
    out["df"] = df
    out["ncp"] = ncp
    out["power"] = t_power_array(ncp, df, d.alpha)
    out["n_total"] = np.array([sum(d.n_per_arm(int(n)).values()) for n in ns], dtype=float)
    out["expected_obs"] = nobs
    return out


def _stacked(cache: dict, keys: list) -> tuple:
    """The cached per-unit terms of ``keys`` stacked (memoised per key tuple)."""
    sc = cache.setdefault("__stacks__", {})
    kt = tuple(keys)
    if kt not in sc:
        sc[kt] = tuple(np.stack([cache[k][j] for k in keys]) for j in range(5))
    return sc[kt]


def t_power_array(ncp: np.ndarray, df: np.ndarray, alpha: float) -> np.ndarray:
    """Vectorised :func:`t_power`."""
    ncp = np.asarray(ncp, float)
    df = np.asarray(df, float)
    out = np.empty(ncp.shape)
    fin = np.isfinite(df)
    if (~fin).any():
        z = stats.norm.ppf(1 - alpha / 2)
        out[~fin] = stats.norm.sf(z - ncp[~fin]) + stats.norm.cdf(-z - ncp[~fin])
    if fin.any():
        tc = stats.t.ppf(1 - alpha / 2, df[fin])
        out[fin] = stats.nct.sf(tc, df[fin], ncp[fin]) + stats.nct.cdf(-tc, df[fin], ncp[fin])
    return out


def t_power(ncp: float, df: float, alpha: float) -> float:
    """Power of the two-sided t test at level alpha (normal for infinite df)."""
    if not np.isfinite(df):
        z = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp))
    tc = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp))
