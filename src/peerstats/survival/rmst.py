"""Restricted mean survival time per arm, difference and ratio, as R ``survRM2::rmst2``.

Why our own: lifelines' ``restricted_mean_survival_time`` gives no standard error in R's form
and no between-arm contrast. survRM2 (Uno et al. 2014) integrates the Kaplan-Meier curve up to
``tau`` and uses the Greenwood-type variance

    var(RMST) = sum_{t_j <= tau} A_j^2 d_j / (n_j (n_j - d_j)),   A_j = int_{t_j}^{tau} S(u) du.

Difference: ``RMST_1 - RMST_0`` with SE ``sqrt(v_1 + v_0)``, normal CI and p. Ratio: on the log
scale, SE ``sqrt(v_1 / RMST_1^2 + v_0 / RMST_0^2)`` (reported as ``std_error``, of the log
ratio), CI and p exponentiated. Validated against survRM2 1.0.4 (tests/reference/r_survival/).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import ModelSpecificationError
from ._data import check_columns, check_events, check_times
from .km import km_table

__all__ = ["rmst", "RMST"]


def _rmst_one(t, e, tau):
    tab = km_table(t, e)
    keep = tab.time.to_numpy() <= tau
    times = np.r_[tab.time.to_numpy()[keep], tau]
    surv = tab.survival.to_numpy()[keep]
    n, d = tab.n_risk.to_numpy()[keep], tab.n_event.to_numpy()[keep]
    areas = np.diff(np.r_[0.0, times]) * np.r_[1.0, surv]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(n - d == 0, 0.0, d / (n * (n - d)))
    h = np.r_[h, 0.0]
    var = float(np.sum(np.cumsum(areas[1:][::-1]) ** 2 * h[::-1][1:]))
    return float(areas.sum()), var


def _tau_limit(t, e, a, levels) -> float:
    """survRM2's largest tau: the longer arm's last time if the shorter arm ends with an event
    (its curve is then known up to any time), else the shorter arm's last time."""
    last = []
    for lv in levels:
        tt, ee = t[a == lv], e[a == lv]
        tmax = tt.max()
        last.append((tmax, ee[tt == tmax].min()))
    (t0, s0), (t1, s1) = last
    shorter_event = s1 if t0 >= t1 else s0
    return max(t0, t1) if shorter_event == 1 else min(t0, t1)


def rmst(data: pd.DataFrame, *, time: str, event: str, arm: str, tau: float,
         level: float = 0.95) -> RMST:
    """Restricted mean survival time up to ``tau`` per arm and between two arms.

    Parameters
    ----------
    data : DataFrame
    time, event, arm : str
        Follow-up time, event (1/0) and arm (two levels; the first, sorted or Categorical
        order, is the reference).
    tau : float
        Truncation time; at most the shorter arm's last follow-up time, or the longer arm's
        when the shorter arm's last observation is an event (survRM2's rule).
    level : float

    Returns
    -------
    RMST
        ``by_arm`` (rmst, std_error), ``difference`` and ``ratio`` (estimate, std_error,
        ci_lower, ci_upper, p_value).
    """
    check_columns(data, [time, event, arm])
    t = check_times(data, time, others=[event, arm], context="rmst")
    e = check_events(data, event, t, context="rmst").astype(float)
    a = data[arm]
    levels = list(a.cat.categories) if isinstance(a.dtype, pd.CategoricalDtype) else sorted(
        a.unique(), key=str)
    if len(levels) != 2:
        raise ModelSpecificationError(f"rmst compares two arms; {arm!r} has levels {levels}")
    a = a.to_numpy()
    if not np.isfinite(tau) or tau <= 0:
        raise ModelSpecificationError(f"tau must be a positive time, got {tau!r}")
    limit = _tau_limit(t, e, a, levels)
    if tau > limit:
        raise ModelSpecificationError(
            f"tau = {tau:g} is beyond the time up to which both arms' curves are estimated "
            f"({limit:g}); choose tau <= that time (survRM2's rule)"
        )
    est = {lv: _rmst_one(t[a == lv], e[a == lv], tau) for lv in levels}
    return RMST(levels, est, tau, level)


class RMST:
    """RMST per arm (``by_arm``) and the ``difference`` and ``ratio`` (second arm vs first)."""

    def __init__(self, levels, est, tau, level):
        self.levels, self.tau, self.level = levels, tau, level
        self._est = est
        self.by_arm = pd.DataFrame(
            {"rmst": [est[lv][0] for lv in levels],
             "std_error": [np.sqrt(est[lv][1]) for lv in levels]},
            index=pd.Index(levels, name="arm"),
        )
        z = stats.norm.ppf(0.5 + level / 2)
        (r0, v0), (r1, v1) = est[levels[0]], est[levels[1]]
        diff, se = r1 - r0, np.sqrt(v0 + v1)
        self.difference = pd.Series({
            "estimate": diff, "std_error": se, "ci_lower": diff - z * se,
            "ci_upper": diff + z * se, "p_value": 2 * stats.norm.sf(abs(diff) / se)},
            name="difference")
        lr, sel = np.log(r1 / r0), np.sqrt(v1 / r1**2 + v0 / r0**2)
        self.ratio = pd.Series({
            "estimate": np.exp(lr), "std_error": sel, "ci_lower": np.exp(lr - z * sel),
            "ci_upper": np.exp(lr + z * sel), "p_value": 2 * stats.norm.sf(abs(lr) / sel)},
            name="ratio")

    def effect_records(self, *, outcome: str = "", **fields):
        """Two effect records: the RMST difference and ratio (second arm vs first)."""
        from ..effects.record import EffectRecord

        comp = fields.pop("comparison", f"{self.levels[1]} vs {self.levels[0]}")
        out = []
        for scale, s in (("rmst_difference", self.difference), ("rmst_ratio", self.ratio)):
            out.append(EffectRecord(
                outcome=outcome, scale=scale, estimate=float(s.estimate),
                ci_lower=float(s.ci_lower), ci_upper=float(s.ci_upper),
                p_value=float(s.p_value), std_error=float(s.std_error), level=self.level,
                comparison=comp, model=f"restricted mean survival time up to {self.tau:g}",
                extra={"tau": self.tau, "rmst": self.by_arm.rmst.to_dict()}, **fields))
        return out

    def summary(self) -> str:
        """Text summary: per arm, then difference and ratio (second arm vs first)."""
        return (f"RMST up to tau = {self.tau:g}\n{self.by_arm}\n\n"
                f"{pd.DataFrame([self.difference, self.ratio])}")

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return (f"<p>RMST up to tau = {self.tau:g}</p>" + self.by_arm.to_html()
                + pd.DataFrame([self.difference, self.ratio]).to_html())
