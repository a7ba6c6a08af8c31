"""Tests of proportional hazards from Schoenfeld residuals, as R ``survival::cox.zph``.

For each term, the score test of adding ``x * g(t)`` to the model at (beta_hat, 0), with
``g`` the transformed event time centred at its mean over events (transform ``"km"``:
1 - KM(t-) of all participants, R's default). The information is that of the augmented model
(sub-event sums of the risk-set covariance V_l times 1, g_l, g_l^2), so the test equals R's
``cox.zph`` (survival >= 3.0, Grambsch & Therneau 1994) and not the older approximation.
Validated on Rossi against R survival 3.5.3 (tests/reference/r_survival/).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._engine import at_risk_sum, evaluate

__all__ = ["cox_zph", "ZphResult"]


def _km_left(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """1 - KM(t-) at each time (KM of all rows, left-continuous)."""
    ut, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event)
    n_at = np.bincount(inv)[::-1].cumsum()[::-1]
    surv = np.cumprod(1 - d / n_at)
    left = np.r_[1.0, surv[:-1]]
    return 1 - left[inv]


def _transform(time, event, transform):
    if transform == "km":
        return _km_left(time, event)
    if transform == "identity":
        return time.astype(float)
    if transform == "log":
        return np.log(time)
    if transform == "rank":
        return stats.rankdata(time)
    raise ValueError(f"transform {transform!r} is not one of ['km', 'identity', 'rank', 'log']")


def cox_zph(fit, *, transform: str = "km") -> ZphResult:
    """Schoenfeld tests for a :class:`~peerstats.survival.cox.CoxResult` (R ``cox.zph``)."""
    prep, x = fit._prep, fit._x
    beta = fit._fit["beta"]
    ev = evaluate(prep, x, x @ beta, info=False)
    tt = _transform(prep.time, prep.event, transform)
    g_row = tt - tt[prep.event > 0].mean()
    g_sub = g_row[prep.gstart][prep.sg]
    p = x.shape[1]
    inv = 1.0 / ev.s0
    a = at_risk_sum(prep, np.c_[inv, g_sub * inv, g_sub**2 * inv])
    xb = ev.xbar
    blocks = []
    for k in range(3):
        blocks.append((x * (ev.w * a[:, k])[:, None]).T @ x - (xb * (g_sub**k)[:, None]).T @ xb)
    imat = np.block([[blocks[0], blocks[1]], [blocks[1], blocks[2]]])
    e = prep.event > 0
    u = x[e].T @ g_row[e] - xb.T @ g_sub
    rows = []
    for j in range(p):
        kk = list(range(p)) + [p + j]
        uu = np.r_[np.zeros(p), u[j]]
        rows.append(float(uu @ np.linalg.solve(imat[np.ix_(kk, kk)], uu)))
    uu = np.r_[np.zeros(p), u]
    rows.append(float(uu @ np.linalg.solve(imat, uu)))
    df = np.r_[np.ones(p), p]
    table = pd.DataFrame(
        {"statistic": rows, "df": df, "p_value": stats.chi2.sf(rows, df)},
        index=pd.Index([*fit.names, "GLOBAL"], name="term"),
    )
    # scaled Schoenfeld residuals (R: resid(fit, "schoenfeld") %*% var * events + coef)
    ngroup = prep.gstart.size
    mean_xbar = np.zeros((ngroup, p))
    for j in range(p):
        mean_xbar[:, j] = np.bincount(prep.sg, weights=xb[:, j], minlength=ngroup)
    mean_xbar /= np.maximum(prep.dcount, 1)[:, None]
    resid = x[e] - mean_xbar[prep.gid[e]]
    scaled = resid @ fit.naive_vcov * e.sum() + beta
    return ZphResult(table, tt[e], prep.time[e], scaled, fit.names, transform)


class ZphResult:
    """``table`` (statistic, df, p_value per term and GLOBAL) and ``plot(term)``."""

    def __init__(self, table, x, time, scaled, names, transform):
        self.table, self.x, self.time, self.scaled = table, x, time, scaled
        self.names, self.transform = names, transform

    def plot(self, term: str | None = None, *, ax=None):
        """Scaled Schoenfeld residuals against transformed time, with a lowess smooth."""
        import matplotlib.pyplot as plt
        from statsmodels.nonparametric.smoothers_lowess import lowess

        from ..figures.palette import GREY, OKABE_ITO

        term = term or self.names[0]
        j = self.names.index(term)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(self.x, self.scaled[:, j], s=8, color=GREY, alpha=0.5)
        sm = lowess(self.scaled[:, j], self.x, frac=2 / 3)
        ax.plot(sm[:, 0], sm[:, 1], color=OKABE_ITO[0], lw=2)
        ax.set_xlabel(f"time ({self.transform} scale)")
        ax.set_ylabel(f"beta(t) for {term}")
        p = self.table.loc[term, "p_value"]
        ax.set_title(f"Schoenfeld residuals: {term} (p = {p:.3g})", fontsize=10)
        return ax

    def __repr__(self) -> str:
        return f"Proportional hazards tests (cox.zph, transform {self.transform!r})\n{self.table}"
