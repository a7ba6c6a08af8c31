"""``peerstats.lmm``, the fit: blocks, engine, start, boundary refits and convergence check.

With independent residuals the engine is :class:`~peerstats.models._lmm_engine.LMMEngine`
(closed-form derivatives, profiled start, projected Newton to the boundary); with a residual
structure across visits the generic :class:`~peerstats.models._reml.REMLEngine` (analytic
gradient, Hessian by differences of it).

A variance component whose relative standard deviation falls below 1e-4 (lme4's ``isSingular``
tolerance on the relative Cholesky factor) is fixed at zero and the rest refitted from the
optimum found, so the reported fit is the boundary optimum, as in lme4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from peerstats.exceptions import ConvergenceError, ModelSpecificationError
from peerstats.models._lmm_engine import LMMEngine
from peerstats.models._lmm_setup import LMMData
from peerstats.models._rancov import BlockLayout, RandomCovariance, build_blocks
from peerstats.models._reml import REMLEngine

__all__ = ["FittedCovariance", "fit_covariance", "fit_on_layout"]

_SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the relative Cholesky factor


@dataclass
class FittedCovariance:
    """The converged fit: engine output, covariance model, engine and layout."""

    fit: dict
    cov: RandomCovariance
    engine: Any
    layout: BlockLayout
    tried: list[str]
    n_evals: int = 0  # likelihood evaluations over all (re)fits

    @property
    def state(self):
        return self.fit["state"]

    @property
    def theta_full(self) -> np.ndarray:
        return self.cov.full(self.state.theta)


def _engine(layout, d: LMMData, method: str, fixed: tuple[int, ...] = (), lik=None):
    qs = [rd.q for rd in d.rdesigns]
    cov = RandomCovariance(
        layout, qs, n_res=len(d.res_levels), structure=d.structure, fixed_zero=fixed
    )
    if d.structure is None:
        return LMMEngine(
            cov, n_obs=d.n_obs, method=method, lik=lik, X=d.design.X, y=d.design.y
        )
    return REMLEngine(layout.classes, cov, n_obs=d.n_obs, method=method)


def fit_covariance(d: LMMData, method: str, warm: np.ndarray | None = None) -> FittedCovariance:
    """Fit the covariance parameters; refit with singular components fixed at zero.

    Raises ConvergenceError when the optimiser does not converge (``tried``, ``gradient``).
    """
    layout = build_blocks(
        d.design.X, d.design.y, d.rdesigns, res_code=d.res_code, subject=d.subj_codes,
        position=d.vpos,
    )  # fmt: skip
    return fit_on_layout(layout, d, method, _start_from(d, warm))


def fit_on_layout(
    layout: BlockLayout, d: LMMData, method: str, theta0: np.ndarray, lik=None
) -> FittedCovariance:
    """:func:`fit_covariance` on blocks already built (``lik``: the likelihood of those blocks,
    shared by the refits of :mod:`peerstats.models._lmm_many`), from the full ``theta0``."""
    engine = _engine(layout, d, method, (), lik)
    cov = engine.cov
    fit = engine.fit(theta0)  # raises ConvergenceError if even the start fails
    tried: list[str] = list(fit["tried"])
    fixed: set[int] = set()
    n_evals, iterations = 0, 0
    for _ in range(sum(cov.qs) + 1):
        zero = zero_components(cov, fit["state"].theta) - fixed
        if not zero:
            break
        full = cov.full(fit["state"].theta)
        fixed |= zero
        n_evals += engine.n_evals
        iterations += fit["iterations"]
        engine = _engine(layout, d, method, tuple(sorted(fixed)), getattr(engine, "lik", None))
        cov = engine.cov
        fit = engine.fit(full[cov.free])
        tried += ["refit with the zero variance component(s) fixed at 0"] + fit["tried"]
    st = fit["state"]
    if not fit["converged"]:
        raise ConvergenceError(
            "the REML/ML optimisation did not converge (-2 log-likelihood "
            f"{st.objective:.6f}); tried: " + "; ".join(tried) + ". Simplify the random "
            "effects (e.g. drop a random slope) or check the grouping columns.",
            tried=tried,
            gradient=st.gradient,
        )
    fit["iterations"] += iterations
    return FittedCovariance(fit, cov, engine, layout, tried, n_evals)


def _start_from(d: LMMData, warm: np.ndarray | None) -> np.ndarray:
    """The moment-based start, or a warm start (``lmm(start=...)``) of the same length."""
    theta0 = start(d)
    if warm is None:
        return theta0
    warm = np.asarray(warm, dtype=float).ravel()
    if warm.shape != theta0.shape or not np.all(np.isfinite(warm)):
        raise ModelSpecificationError(
            f"start must be {theta0.size} finite variance parameters (the _theta of a fit "
            f"of the same model); got {warm.size}"
        )
    return warm


def start(d: LMMData) -> np.ndarray:
    """Starting values: OLS residual variance split between random effects and residual."""
    X, y = d.design.X, d.design.y
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    tot = float(np.var(r)) or 1.0
    share = 1.0 / (len(d.rdesigns) + 2)
    th: list[float] = []
    for rd in d.rdesigns:
        q = rd.q
        L = np.zeros((q, q))
        on = rd.codes >= 0
        for a in range(q):
            nz = on & (rd.Z[:, a] != 0)
            z2 = float(np.mean(rd.Z[nz, a] ** 2)) if nz.any() else 1.0
            L[a, a] = np.sqrt(share * tot / max(z2, 1e-12))
        th += [L[i, j] for i in range(q) for j in range(i + 1)]
    res_share = 1.0 - share * len(d.rdesigns)
    if d.structure is None:
        for g in range(len(d.res_levels)):
            sel = d.res_code == g
            v = float(np.var(r[sel])) if sel.sum() > 1 else tot
            th.append(np.log(max(v, 1e-8 * tot) * res_share))
        return np.array(th, dtype=float)
    T = d.structure.structure.n_visits
    covs = []
    for g in range(len(d.structure.levels)):
        S = np.zeros((T, T))
        for t in range(T):
            sel = (d.res_code == g) & (d.vpos == t)
            S[t, t] = (float(np.var(r[sel])) if sel.sum() > 1 else tot) * res_share
        covs.append(S)
    return np.r_[np.array(th, dtype=float), d.structure.start(covs)]


def zero_components(cov: RandomCovariance, theta: np.ndarray) -> set[int]:
    """Full-vector indices of Cholesky columns at the boundary (lme4's isSingular rule).

    A diagonal entry L_jj whose size relative to the residual SD is below 1e-4 means G_t is
    singular in direction j; that column of L (L_jj and the entries below it, which then only
    duplicate later columns) is fixed at zero.
    """
    th = cov.full(theta)
    if cov.structure is None:
        sig = float(np.sqrt(np.mean(np.exp(th[cov.n_re :]))))
    else:
        sig = float(
            np.sqrt(np.mean([np.mean(np.diag(S)) for S in cov.structure.sigmas(th[cov.n_re :])]))
        )
    out: set[int] = set()
    k = 0
    for q, ng in zip(cov.qs, cov.n_g):
        idx = [(i, j) for i in range(q) for j in range(i + 1)]
        for j in range(q):
            if abs(th[k + idx.index((j, j))]) < _SINGULAR_TOL * sig:
                out |= {k + r for r, (i, jj) in enumerate(idx) if jj == j and i >= j}
        k += ng
    return out
