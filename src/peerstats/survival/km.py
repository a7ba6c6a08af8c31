"""Kaplan-Meier curves per arm, medians with CIs, survival at chosen times, the log-rank test.

Why our own and not lifelines' ``KaplanMeierFitter``: R's conventions must be matched exactly —
the "log" CI (``survfit``'s default; lifelines uses log-log), the median-CI rule of
``survfit`` (first time the lower/upper confidence curve is at or below 0.5, with the midpoint
rule when a curve sits exactly at 0.5), and the stratified log-rank test (``survdiff`` with
``strata()``), which lifelines does not offer. The product-limit estimate itself is a few
vectorised lines.

* survival ``S(t) = prod_{t_j <= t} (1 - d_j / n_j)``;
* ``std_error`` is the Greenwood standard error **of S(t)**,
  ``S(t) sqrt(sum d_j / (n_j (n_j - d_j)))`` — R ``summary(survfit)$std.err`` (survival 3.x;
  ``survfit``'s own ``$std.err`` is that of the cumulative hazard);
* CI ``S exp(+-z se_log)`` with the upper limit capped at 1 (R ``conf.type = "log"``);
* log-rank: ``(O - E)' V^- (O - E)`` over arms, summed over strata (R ``survdiff``).

Validated against R survival 3.5.3 ``survfit``/``survdiff`` (tests/reference/r_survival/).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import ModelSpecificationError
from ._data import check_columns, check_events, check_times

__all__ = ["kaplan_meier", "KaplanMeier", "km_table", "logrank"]

_TOL = np.finfo(float).eps ** 0.5


def km_table(time: np.ndarray, event: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """The product-limit table at every distinct time (events and censorings), as ``survfit``."""
    ut, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event)
    c = np.bincount(inv)
    n_risk = c[::-1].cumsum()[::-1].astype(float)
    surv = np.cumprod(1 - d / n_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(n_risk - d > 0, d / (n_risk * (n_risk - d)), np.inf * (d > 0))
        h = np.where(d == 0, 0.0, h)
        se_log = np.sqrt(np.cumsum(h))
        z = stats.norm.ppf(0.5 + level / 2)
        lower = surv * np.exp(-z * se_log)
        upper = np.minimum(surv * np.exp(z * se_log), 1.0)
        bad = ~np.isfinite(se_log) | (surv == 0)
        lower[bad], upper[bad] = np.nan, np.nan
        std_error = surv * se_log
    return pd.DataFrame(
        {"time": ut, "n_risk": n_risk, "n_event": d, "n_censor": c - d, "survival": surv,
         "se_log": se_log, "std_error": std_error, "ci_lower": lower, "ci_upper": upper}
    )


def _first_below_half(y: np.ndarray, x: np.ndarray) -> float:
    """R survival's ``minmin``: first x with y <= 0.5 (midpoint rule when y == 0.5 exactly)."""
    keep = ~np.isnan(y) & (y < 0.5 + _TOL)
    if not keep.any():
        return np.nan
    xk, yk = x[keep], y[keep]
    if abs(yk[0] - 0.5) < _TOL and (yk < yk[0]).any():
        return float((xk[0] + xk[np.flatnonzero(yk < yk[0])[0]]) / 2)
    return float(xk[0])


def logrank(time, event, group, strata=None) -> tuple[float, int, float]:
    """(chi-square, df, p) of the (stratified) log-rank test, R ``survdiff``."""
    gcodes, g = np.unique(group, return_inverse=True)
    k = gcodes.size
    s = np.zeros(time.size, int) if strata is None else pd.factorize(strata)[0]
    o_e = np.zeros(k)
    var = np.zeros((k, k))
    for st in np.unique(s):
        m = s == st
        ut, inv = np.unique(time[m], return_inverse=True)
        nt = ut.size
        d = np.zeros((nt, k))
        c = np.zeros((nt, k))
        np.add.at(d, (inv, g[m]), event[m])
        np.add.at(c, (inv, g[m]), 1.0)
        n = c[::-1].cumsum(axis=0)[::-1]
        ntot, dtot = n.sum(axis=1), d.sum(axis=1)
        use = dtot > 0
        n, d, ntot, dtot = n[use], d[use], ntot[use], dtot[use]
        o_e += (d - n * (dtot / ntot)[:, None]).sum(axis=0)
        f = np.where(ntot > 1, dtot * (ntot - dtot) / np.maximum(ntot - 1, 1), 0) / ntot
        var += np.einsum("t,ti,ij->ij", f, n, np.eye(k)) - np.einsum(
            "t,ti,tj->ij", f / ntot, n, n)
    df = k - 1
    chisq = float(o_e[:df] @ np.linalg.solve(var[:df, :df], o_e[:df]))
    return chisq, df, float(stats.chi2.sf(chisq, df))


def kaplan_meier(
    data: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    strata: str | None = None,
    level: float = 0.95,
) -> KaplanMeier:
    """Kaplan-Meier estimates per arm, with medians, survival at times and the log-rank test.

    Parameters
    ----------
    data : DataFrame
    time, event : str
        Follow-up time (>= 0) and event indicator (1 event, 0 censored).
    arm : str
        Arm column (Categorical order respected, else sorted).
    strata : str, optional
        Stratify the log-rank test (e.g. by site), as R ``survdiff(... + strata(site))``.
    level : float
        Confidence level.

    Returns
    -------
    KaplanMeier

    Notes
    -----
    Greenwood variance, log CIs, R's median rule; see the module docstring. Validated against R
    survival 3.5.3 (tests/reference/r_survival/): survival, SE and CIs within 1e-10.
    """
    check_columns(data, [time, event, arm, strata])
    others = [event, arm] + ([strata] if strata else [])
    t = check_times(data, time, others=others, context="kaplan_meier")
    e = check_events(data, event, t, context="kaplan_meier").astype(float)
    arms = data[arm]
    levels = list(arms.cat.categories) if isinstance(arms.dtype, pd.CategoricalDtype) else sorted(
        arms.unique(), key=str)
    return KaplanMeier(t, e, arms.to_numpy(), levels, None if strata is None
                       else data[strata].to_numpy(), level)


class KaplanMeier:
    """Per-arm Kaplan-Meier curves: ``median``, ``at(times)``, ``logrank``, ``plot()``."""

    def __init__(self, t, e, arms, levels, strata, level):
        self._t, self._e, self._arms, self.levels = t, e, arms, levels
        self._strata, self.level = strata, level
        self.tables = {a: km_table(t[arms == a], e[arms == a], level) for a in levels}

    @cached_property
    def median(self) -> pd.DataFrame:
        """Median survival per arm with its CI (R ``survfit`` rule; NaN when not reached)."""
        rows = {}
        for a, tab in self.tables.items():
            x = tab.time.to_numpy()
            rows[a] = {
                "median": _first_below_half(tab.survival.to_numpy(), x),
                "ci_lower": _first_below_half(tab.ci_lower.to_numpy(), x),
                "ci_upper": _first_below_half(tab.ci_upper.to_numpy(), x),
                "n": int(tab.n_event.sum() + tab.n_censor.sum()),
                "events": int(tab.n_event.sum()),
            }
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "arm"
        return out

    def at(self, times) -> pd.DataFrame:
        """Survival, Greenwood SE of S(t) and CI at ``times`` (R ``summary(fit, times=)``).

        Times beyond an arm's last follow-up give NaN (R drops them).
        """
        times = np.atleast_1d(np.asarray(times, dtype=float))
        rows = []
        for a, tab in self.tables.items():
            x = tab.time.to_numpy()
            idx = np.searchsorted(x, times, side="right") - 1
            tarm = self._t[self._arms == a]
            for tt, i in zip(times, idx, strict=True):
                n_risk = int((tarm >= tt).sum())
                if tt > x[-1]:
                    vals = (np.nan,) * 4
                elif i < 0:
                    vals = (1.0, 0.0, 1.0, 1.0)
                else:
                    r = tab.iloc[i]
                    vals = (r.survival, r.std_error, r.ci_lower, r.ci_upper)
                rows.append((a, tt, *vals, n_risk))
        return pd.DataFrame(rows, columns=["arm", "time", "survival", "std_error", "ci_lower",
                                           "ci_upper", "n_risk"])

    @cached_property
    def logrank(self) -> pd.Series:
        """Log-rank test (stratified when ``strata`` was given): statistic, df, p_value."""
        if len(self.levels) < 2:
            raise ModelSpecificationError("the log-rank test needs at least two arms")
        chisq, df, p = logrank(self._t, self._e, self._arms, self._strata)
        return pd.Series({"statistic": chisq, "df": df, "p_value": p}, name="logrank")

    def plot(self, ax=None, *, labels: dict | None = None, risk_times=None):
        """Kaplan-Meier curves with numbers at risk under the axis; returns the Axes."""
        from .plots import plot_curves

        curves = {a: (tab.time.to_numpy(), tab.survival.to_numpy(),
                      tab.ci_lower.to_numpy(), tab.ci_upper.to_numpy())
                  for a, tab in self.tables.items()}
        return plot_curves(curves, self._t, self._arms, ax=ax, labels=labels,
                           risk_times=risk_times, ylabel="Survival probability")

    def summary(self) -> str:
        """Text summary: medians with CIs and the log-rank test."""
        text = f"Kaplan-Meier by arm (log CI, level {self.level:g})\n{self.median}"
        if len(self.levels) > 1:
            lr = self.logrank
            text += (f"\nlog-rank chi-square {lr.statistic:.4f} on {int(lr.df)} df, "
                     f"p = {lr.p_value:.4g}")
        return text

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return self.median.to_html()
