"""Feasibility outcomes of pilot and single-arm studies: rates with Wilson CIs, within-group change.

The CONSORT extension for pilot and feasibility trials (Eldridge et al., BMJ 2016;355:i5239)
asks for estimates with confidence intervals, not hypothesis tests: recruitment, consent,
retention, adherence and acceptability are reported as proportions with 95% CIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from peerstats.describe._common import (
    arm_levels,
    as_frames,
    data_error,
    flag,
    not_an_outcome,
    outcome_names,
    randomised_mask,
    visit_levels,
)
from peerstats.describe.render import Table, ci_name

__all__ = ["wilson_ci", "feasibility", "within_group_change", "attendance"]

RATE_COLUMNS = [
    "measure",
    "arm",
    "visit",
    "numerator",
    "denominator",
    "proportion",
    "ci_lower",
    "ci_upper",
]


_LABELS = {
    "eligible": "Eligible, of assessed",
    "consented_of_eligible": "Consented, of eligible",
    "recruited": "Recruited, of assessed",
    "started": "Started the intervention",
    "retained": "Retained (outcome observed)",
    "discontinued": "Discontinued the intervention",
}


def wilson_ci(count: int, nobs: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    :math:`\\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}`
    (Wilson 1927); computed by ``statsmodels.stats.proportion.proportion_confint``.
    """
    from statsmodels.stats.proportion import proportion_confint

    if nobs == 0:
        return (float("nan"), float("nan"))
    lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def _rate(
    measure: str, arm: str | None, visit: str | None, k: int, n: int, alpha: float
) -> dict[str, Any]:
    lo, hi = wilson_ci(k, n, alpha)
    return {
        "measure": measure,
        "arm": arm,
        "visit": visit,
        "numerator": int(k),
        "denominator": int(n),
        "proportion": k / n if n else float("nan"),
        "ci_lower": lo,
        "ci_upper": hi,
    }


def attendance(trial: Any) -> pd.DataFrame:
    """Sessions attended per randomised participant (0 for those with no session rows).

    Returns a frame ``subject, arm, sessions_offered, sessions_attended``; needs
    ``trial.sessions`` with ``subject, session, attended``.
    """
    part, _ = as_frames(trial)
    sessions = getattr(trial, "sessions", None)
    if sessions is None:
        raise data_error(
            "sessions",
            "missing_table",
            "attendance needs trial.sessions (subject, session, attended)",
        )
    part = part.loc[randomised_mask(part)]
    s = sessions.copy()
    s["subject"] = s["subject"].astype(str)
    s["attended"] = flag(s["attended"]).fillna(False).astype(int)
    per = s.groupby("subject").agg(
        sessions_offered=("session", "nunique"), sessions_attended=("attended", "sum")
    )
    out = pd.DataFrame(
        {
            "subject": part["subject"].astype(str).to_numpy(),
            "arm": part["arm"].astype(str).to_numpy()
            if "arm" in part.columns
            else arm_levels(trial)[0],
        }
    )
    out = out.join(per, on="subject")
    # participants of an arm with sessions but without rows attended none of them
    arms_with_sessions = set(out.loc[out["sessions_offered"].notna(), "arm"])
    in_arm = out["arm"].isin(arms_with_sessions)
    out.loc[in_arm, "sessions_attended"] = out.loc[in_arm, "sessions_attended"].fillna(0)
    offered = out.groupby("arm")["sessions_offered"].transform("max")
    out.loc[in_arm, "sessions_offered"] = offered[in_arm]
    return out


def feasibility(
    trial: Any,
    *,
    outcome: str | None = None,
    min_sessions: int | None = None,
    by_arm: bool | None = None,
    alpha: float = 0.05,
) -> Table:
    """Recruitment, consent, retention and adherence rates with Wilson CIs.

    Parameters
    ----------
    trial : Trial or trial-like
    outcome : str, optional
        Outcome whose observation defines retention (default: the primary outcome).
    min_sessions : int, optional
        Adherence threshold: the share attending at least this many sessions is reported
        (default: half of the sessions offered, rounded up).
    by_arm : bool, optional
        Per arm (default for parallel trials) or pooled.
    alpha : float
        1 - confidence level.

    Returns
    -------
    Table
        ``.data`` columns ``measure, arm, visit, numerator, denominator, proportion,
        ci_lower, ci_upper``. Measures: ``eligible`` (eligible / assessed), ``recruited``
        (randomised or consented / assessed), ``consented_of_eligible``, ``started``
        (received / enrolled), ``retained`` per post-baseline visit (observed outcome /
        enrolled), ``discontinued``, ``adherent`` (attended ``>= min_sessions``). Sessions
        attended are summarised too (mean, SD, median, min, max) in ``.attendance``.
    """
    part, assess = as_frames(trial)
    rand = randomised_mask(part)
    rows = _recruitment_rates(part, rand, alpha)
    enrolled = part.loc[rand].copy()
    enrolled["subject"] = enrolled["subject"].astype(str)
    arms = arm_levels(trial)
    if "arm" not in enrolled.columns:
        enrolled["arm"] = arms[0] if arms else "all"
    if by_arm is None:
        by_arm = len(arms) > 1
    groups = (
        [(a, enrolled[enrolled["arm"].astype(str) == a]) for a in arms]
        if by_arm
        else [(None, enrolled)]
    )
    visits = visit_levels(trial)
    if outcome is None:
        names = outcome_names(trial)
        outcome = names[0] if names else None
    observed = _observed_subjects(assess, outcome)
    att = attendance(trial) if getattr(trial, "sessions", None) is not None else None
    for arm, g in groups:
        rows += _group_rates(arm, g, visits, observed, alpha)
        if att is not None:
            rows += _adherence_rate(arm, g, att, min_sessions, alpha)
    data = pd.DataFrame(rows, columns=RATE_COLUMNS)
    disp = _rate_display(data, alpha)
    if not by_arm:
        disp = disp.drop(columns="Arm")
    summ = None
    if att is not None:
        summ = (
            att.dropna(subset=["sessions_attended"])
            .groupby("arm")["sessions_attended"]
            .agg(["count", "mean", "std", "median", "min", "max"])
            .reset_index()
            .rename(columns={"count": "n", "std": "sd"})
        )
    return Table(
        data,
        disp,
        caption="Feasibility outcomes",
        notes=[f"{ci_name(1 - alpha)[:-3]} confidence intervals by the Wilson score method."],
        extras={"attendance": summ},
    )


def _recruitment_rates(part: pd.DataFrame, rand: pd.Series, alpha: float) -> list[dict]:
    """Eligible and consented of eligible (with an ``eligible`` column) and recruited (when
    screening data were recorded)."""
    rows: list[dict[str, Any]] = []
    n_assessed = len(part)
    if "eligible" in part.columns:
        elig = flag(part["eligible"]).fillna(False).astype(bool)
        n_elig = int(elig.sum())
        rows.append(_rate("eligible", None, None, n_elig, n_assessed, alpha))
        n_cons = int((rand & elig).sum())
        rows.append(_rate("consented_of_eligible", None, None, n_cons, n_elig, alpha))
    if "eligible" in part.columns or not bool(rand.all()):  # screening data recorded
        rows.append(_rate("recruited", None, None, int(rand.sum()), n_assessed, alpha))
    return rows


def _observed_subjects(assess: pd.DataFrame | None, outcome: str | None) -> dict[str, set[str]]:
    """Who has the outcome at each visit."""
    observed: dict[str, set[str]] = {}
    if assess is not None and outcome is not None and outcome in assess.columns:
        a = assess.loc[assess[outcome].notna(), ["subject", "visit"]]
        for v, g in a.groupby(a["visit"].astype(str)):
            observed[str(v)] = set(g["subject"].astype(str))
    return observed


def _group_rates(arm, g: pd.DataFrame, visits, observed, alpha: float) -> list[dict]:
    """Started, retained at each post-baseline visit and discontinued, of one arm (or all)."""
    rows: list[dict[str, Any]] = []
    n = len(g)
    if "received" in g.columns:
        k = int(flag(g["received"]).fillna(False).sum())
        rows.append(_rate("started", arm, None, k, n, alpha))
    for v in visits[1:] if len(visits) > 1 else visits:
        k = len(set(g["subject"]) & observed.get(v, set()))
        rows.append(_rate("retained", arm, v, k, n, alpha))
    if "discontinued" in g.columns:
        k = int(flag(g["discontinued"]).fillna(False).sum())
        rows.append(_rate("discontinued", arm, None, k, n, alpha))
    return rows


def _adherence_rate(arm, g, att: pd.DataFrame, min_sessions, alpha: float) -> list[dict]:
    """Share attending at least ``min_sessions`` (default half of those offered, rounded up)."""
    ga = att[att["subject"].isin(set(g["subject"]))].dropna(subset=["sessions_attended"])
    if not len(ga):
        return []
    offered = int(ga["sessions_offered"].max())
    thr = min_sessions if min_sessions is not None else int(np.ceil(offered / 2))
    k = int((ga["sessions_attended"] >= thr).sum())
    return [_rate(f"adherent (>= {thr} of {offered} sessions)", arm, None, k, len(ga), alpha)]


def _rate_display(data: pd.DataFrame, alpha: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Measure": [_LABELS.get(m, m) for m in data["measure"]],
            "Arm": data["arm"].fillna(""),
            "Visit": data["visit"].fillna(""),
            "n / N": [f"{k} / {n}" for k, n in zip(data["numerator"], data["denominator"])],
            f"% ({ci_name(1 - alpha)})": [
                f"{100 * p:z.1f} ({100 * lo:z.1f} to {100 * hi:z.1f})" if n else ""
                for p, lo, hi, n in zip(
                    data["proportion"], data["ci_lower"], data["ci_upper"], data["denominator"]
                )
            ],
        }
    )


def _paired_change(pair: pd.DataFrame, base_v: str, v: str, alpha: float) -> dict[str, Any]:
    """Paired t summary of the change ``v - base_v`` (with Cohen's d_z and its noncentral t
    CI, and the change over the baseline SD)."""
    n = len(pair)
    diff = pair[v] - pair[base_v]
    m, sd = diff.mean(), diff.std(ddof=1)
    if n >= 2 and sd > 0:
        from scipy import stats

        se = sd / np.sqrt(n)
        tcrit = stats.t.ppf(1 - alpha / 2, n - 1)
        t_stat = m / se
        p = 2 * stats.t.sf(abs(t_stat), n - 1)
        lo, hi = m - tcrit * se, m + tcrit * se
        dz = m / sd
        dlo, dhi = _paired_effect_ci(dz, n, alpha)
    else:
        lo = hi = t_stat = p = dz = dlo = dhi = float("nan")
    sd_b = pair[base_v].std(ddof=1) if n >= 2 else float("nan")
    return {
        "n": n,
        "mean_baseline": pair[base_v].mean(),
        "mean_visit": pair[v].mean(),
        "mean_change": m,
        "sd_change": sd,
        "ci_lower": lo,
        "ci_upper": hi,
        "statistic": t_stat,
        "df": n - 1,
        "p_value": p,
        "d_z": dz,
        "d_z_ci_lower": dlo,
        "d_z_ci_upper": dhi,
        "d_baseline": m / sd_b if sd_b and sd_b > 0 else float("nan"),
    }


def _change_display(data: pd.DataFrame, base_v: str, alpha: float) -> pd.DataFrame:
    ci = ci_name(1 - alpha)
    return pd.DataFrame(
        {
            "Arm": data["arm"],
            "Visit": data["visit"],
            "n": data["n"],
            f"{base_v}, mean": data["mean_baseline"].map(lambda x: f"{x:z.2f}"),
            "Visit mean": data["mean_visit"].map(lambda x: f"{x:z.2f}"),
            f"Change ({ci})": [
                f"{m:z.2f} ({lo:z.2f} to {hi:z.2f})"
                for m, lo, hi in zip(data["mean_change"], data["ci_lower"], data["ci_upper"])
            ],
            f"d_z ({ci})": [
                f"{d:z.2f} ({lo:z.2f} to {hi:z.2f})"
                for d, lo, hi in zip(data["d_z"], data["d_z_ci_lower"], data["d_z_ci_upper"])
            ],
            "p": data["p_value"].map(lambda x: "<0.001" if x < 0.001 else f"{x:z.3f}"),
        }
    )


def _paired_effect_ci(d: float, n: int, alpha: float) -> tuple[float, float]:
    """CI of d_z = mean / SD of paired differences by inverting the noncentral t."""
    if n < 2 or not np.isfinite(d):
        return (float("nan"), float("nan"))
    t_obs = d * np.sqrt(n)
    df = n - 1
    from scipy import stats
    from scipy.optimize import brentq

    def nc_for(prob: float) -> float:
        def f(nc: float) -> float:
            return float(stats.nct.cdf(t_obs, df, nc)) - prob

        # cdf decreases in nc; widen a bracket around t_obs until the sign changes
        step = 1.0
        lo, hi = t_obs - step, t_obs + step
        while f(lo) < 0 and step < 64:
            step *= 2
            lo = t_obs - step
        step = 1.0
        while f(hi) > 0 and step < 64:
            step *= 2
            hi = t_obs + step
        return brentq(f, lo, hi, xtol=1e-12)

    lo = nc_for(1 - alpha / 2) / np.sqrt(n)
    hi = nc_for(alpha / 2) / np.sqrt(n)
    return float(lo), float(hi)


def within_group_change(
    trial: Any,
    outcome: str | None = None,
    *,
    visits: Sequence[str] | None = None,
    by_arm: bool = True,
    alpha: float = 0.05,
) -> Table:
    """Change from baseline within each arm, with paired t CI and effect sizes.

    For each arm and post-baseline visit, participants observed at both baseline and the visit
    are paired. Reports n, baseline and visit means, mean change with its paired t CI, SD of
    change, the paired t statistic and p-value, Cohen's :math:`d_z` (mean change / SD of
    change) with a noncentral-t CI (Goulet-Pelletier & Cousineau 2018) and
    :math:`d_{baseline}` (mean change / baseline SD of the pairs, Becker 1988), the usual
    effect size of single-arm feasibility studies.

    Returns
    -------
    Table
        ``.data`` columns ``outcome, arm, visit, n, mean_baseline, mean_visit, mean_change,
        sd_change, ci_lower, ci_upper, statistic, df, p_value, d_z, d_z_ci_lower,
        d_z_ci_upper, d_baseline``.
    """
    part, assess = as_frames(trial)
    if assess is None:
        raise data_error("assessments", "missing_table", "within-group change needs assessments")
    vis = visit_levels(trial)
    if outcome is None:
        names = outcome_names(trial)
        outcome = names[0] if names else None
    if outcome not in assess.columns:
        raise not_an_outcome(outcome)
    base_v = vis[0]
    post = list(visits) if visits is not None else vis[1:]
    a = assess.copy()
    a["visit"] = a["visit"].astype(str)
    a["subject"] = a["subject"].astype(str)
    if "arm" not in a.columns or not by_arm:
        a["arm"] = "all" if not by_arm else arm_levels(trial)[0]
    arms = arm_levels(trial) if by_arm else ["all"]
    wide = a.pivot_table(
        index=["arm", "subject"], columns="visit", values=outcome, aggfunc="first", observed=True
    )
    rows = []
    for arm in arms:
        if arm not in wide.index.get_level_values(0):
            continue
        w = wide.loc[arm]
        for v in post:
            if v not in w.columns or base_v not in w.columns:
                continue
            stats_ = _paired_change(w[[base_v, v]].dropna(), base_v, v, alpha)
            rows.append({"outcome": outcome, "arm": arm, "visit": v, **stats_})
    data = pd.DataFrame(rows)
    disp = _change_display(data, base_v, alpha) if len(data) else pd.DataFrame()
    return Table(
        data,
        disp,
        caption=f"Within-group change in {outcome}",
        notes=[
            "Paired t confidence intervals; d_z = mean change / SD of change, "
            "CI by the noncentral t distribution."
        ],
    )
