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
        VX = Vinv[:, None] @ X  # (B, J, m, p)
        M[idx] = np.einsum("bjip,bjiq->bpq", X, VX)
        BX = Bk[:, :, None] @ VX[:, None]  # V^-1 D_k V^-1 X  (B, K, J, m, p)
        P[idx] = np.einsum("bjip,bkjiq->bkpq", X, BX)
        # Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X = (D_k V^-1 X)' (V^-1 D_l V^-1 X)
        DX = D[:, :, None] @ VX[:, None]  # (B, K, J, m, p)
        Q[idx] = np.einsum("bkjip,bljiq->bklpq", DX, BX)
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
    for i, n in enumerate(ns):
        units = model.unit_types(int(n))
        counts = np.array([u[0] for u in units])
        keys = [u[1] for u in units]
        missing = [j for j, k in enumerate(keys) if k not in cache]
        if missing:
            terms = _unit_terms(model, [units[j] for j in missing])
            for t, j in enumerate(missing):
                cache[keys[j]] = (terms.M[t], terms.P[t], terms.Q[t], terms.T1[t], terms.nobs[t])
        stack = _stacked(cache, keys)
        M = np.tensordot(counts, stack[0], axes=1)
        C = np.linalg.inv(M)
        v = float(ell @ C @ ell)
        se = np.sqrt(v)
        nobs = float(counts @ stack[4])
        if d.df == "satterthwaite":
            P = np.tensordot(counts, stack[1], axes=1)
            Q = np.tensordot(counts, stack[2], axes=1)
            T1 = np.tensordot(counts, stack[3], axes=1)
            CP = np.einsum("pq,kqr->kpr", C, P)
            info = T1 - 2 * np.einsum("pq,klqp->kl", C, Q) + np.einsum("kab,lba->kl", CP, CP)
            Cl = C @ ell
            g = np.einsum("p,kpq,q->k", Cl, P, Cl)
            keep = np.ones(model.K, dtype=bool)
            if model.group_index is not None and model.psi_true[model.group_index] == 0:
                keep[model.group_index] = False  # a variance at its boundary: as a fit would
            W = 2 * np.linalg.inv(info[np.ix_(keep, keep)])
            den = float(g[keep] @ W @ g[keep])
            df = 2 * v * v / den if den > 0 else np.inf
        elif d.df == "residual":
            df = nobs - model.p
        else:
            df = np.inf
        ncp = delta / se
        out["std_error"][i] = se
        out["df"][i] = df
        out["ncp"][i] = ncp
        out["power"][i] = t_power(ncp, df, d.alpha)
        out["n_total"][i] = sum(d.n_per_arm(int(n)).values())
        out["expected_obs"][i] = nobs
    return out


def _stacked(cache: dict, keys: list) -> tuple:
    """The cached per-unit terms of ``keys`` stacked (memoised per key tuple)."""
    sc = cache.setdefault("__stacks__", {})
    kt = tuple(keys)
    if kt not in sc:
        sc[kt] = tuple(np.stack([cache[k][j] for k in keys]) for j in range(5))
    return sc[kt]


def t_power(ncp: float, df: float, alpha: float) -> float:
    """Power of the two-sided t test at level alpha (normal for infinite df)."""
    if not np.isfinite(df):
        z = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp))
    tc = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp))
