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
    K, p = model.K, model.p
    psi = model.psi_true
    Ms, Ps, Qs, T1s, nobs = [], [], [], [], []
    for _, _, D, Xs in units:
        V = np.einsum("k,kij->ij", psi, D)
        Vinv = np.linalg.inv(V)
        Bk = np.einsum("ij,kjl->kil", Vinv, D)  # V^-1 D_k
        T1s.append(np.einsum("kij,lji->kl", Bk, Bk))
        X = np.stack(Xs)  # (J, m, p)
        VX = Vinv @ X  # (J, m, p)
        Ms.append(np.einsum("jip,jiq->pq", X, VX))
        BX = np.einsum("kil,jlp->kjip", Bk, VX)  # V^-1 D_k V^-1 X
        Ps.append(np.einsum("jip,kjiq->kpq", X, BX))
        # Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X = (D_k V^-1 X)' (V^-1 D_l V^-1 X)
        DX = np.einsum("kil,jlp->kjip", D, VX)
        Qs.append(np.einsum("kjip,ljiq->klpq", DX, BX))
        nobs.append(D.shape[-1])
    return UnitTerms(
        M=np.array(Ms),
        P=np.array(Ps).reshape(len(Ms), K, p, p),
        Q=np.array(Qs).reshape(len(Ms), K, K, p, p),
        T1=np.array(T1s).reshape(len(Ms), K, K),
        nobs=np.array(nobs, dtype=float),
    )


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
