"""Responder analysis: reliable and clinically significant change (Jacobson & Truax 1991).

:math:`RC = \\Delta / (SD \\sqrt{2} \\sqrt{1 - r})`; :math:`|RC| > 1.96` is reliable change, in
the instrument's better direction an *improvement*. Clinically significant change (recovery)
adds crossing the instrument's cut-off from the clinical to the non-clinical side. Arms are
compared by the risk difference (Newcombe hybrid score CI) and the number needed to treat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats.describe._common import (
    arm_levels,
    not_an_outcome,
    outcome_info,
    randomised_mask,
    reference_arm,
    visit_levels,
)
from peerstats.describe.feasibility import wilson_ci
from peerstats.describe.render import Table, ci_name
from peerstats.exceptions import SpecError

__all__ = ["reliable_change", "responder_analysis", "risk_difference"]


def reliable_change(
    baseline: np.ndarray | pd.Series,
    follow_up: np.ndarray | pd.Series,
    *,
    sd: float,
    reliability: float,
) -> np.ndarray:
    """Reliable change index :math:`(x_2 - x_1) / (SD\\sqrt{2}\\sqrt{1 - r})`."""
    if not 0 <= reliability < 1:
        raise ValueError(f"reliability must be in [0, 1); got {reliability}")
    se_diff = sd * np.sqrt(2.0) * np.sqrt(1.0 - reliability)
    return (np.asarray(follow_up, float) - np.asarray(baseline, float)) / se_diff


def risk_difference(k1: int, n1: int, k0: int, n0: int, *, alpha: float = 0.05) -> dict[str, float]:
    """Risk difference ``k1/n1 - k0/n0`` with the Newcombe hybrid score CI, and the NNT.

    NNT = 1 / RD. When the RD interval excludes 0 the NNT interval is (1/upper, 1/lower);
    when it includes 0 the NNT interval runs through infinity (Altman 1998) and is reported
    as the two reciprocal limits, the negative one being a number needed to harm.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    rd = k1 / n1 - k0 / n0
    lo, hi = confint_proportions_2indep(
        k1, n1, k0, n0, method="newcomb", compare="diff", alpha=alpha
    )
    nnt = 1 / rd if rd != 0 else float("inf")
    nlo = 1 / hi if hi != 0 else float("inf")
    nhi = 1 / lo if lo != 0 else float("inf")
    return {
        "risk_difference": rd,
        "rd_ci_lower": float(lo),
        "rd_ci_upper": float(hi),
        "nnt": nnt,
        "nnt_ci_lower": nlo,
        "nnt_ci_upper": nhi,
        "nnt_ci_through_infinity": bool(lo < 0 < hi),
    }


def _instrument_for(trial: Any, outcome: str, instrument: Any) -> Any:
    if instrument is not None and not isinstance(instrument, str):
        return instrument
    name = instrument or outcome_info(trial, outcome).get("instrument")
    if name is None:
        return None
    from peerstats.instruments import get_instrument

    try:
        return get_instrument(name)
    except Exception:  # noqa: BLE001 - unknown instrument: caller must give the numbers
        return None


def responder_analysis(
    trial: Any,
    outcome: str,
    *,
    visit: str | None = None,
    instrument: Any = None,
    reliability: float | str = "alpha",
    sd: float | None = None,
    cutoff: float | None = None,
    higher_is_better: bool | None = None,
    alpha: float = 0.05,
) -> Table:
    """Reliable improvement, deterioration and recovery per arm, with RD and NNT.

    Parameters
    ----------
    trial : Trial or trial-like
    outcome : str
    visit : str, optional
        Follow-up visit (default: the last visit).
    instrument : str or Instrument, optional
        Default: the spec's instrument of the outcome; gives the reliability, the cut-off
        (``caseness``) and the direction.
    reliability : float or {"alpha", "test_retest"}
        The reliability :math:`r` of the RC index, or which of the instrument's published
        reliabilities to use (default Cronbach's alpha).
    sd : float, optional
        SD of the RC index; default the SD at baseline of all randomised participants
        (Jacobson & Truax: pre-treatment SD).
    cutoff : float, optional
        Clinical cut-off (default: the instrument's ``caseness``). Recovery = reliable
        improvement and moving from the clinical side at baseline to the other side.
    higher_is_better : bool, optional
        Default from the instrument / the spec.
    alpha : float

    Returns
    -------
    Table
        ``.data``: one row per arm and category (``improved, deteriorated, recovered``) with
        ``n, count, proportion, ci_lower, ci_upper``; ``.comparison``: per non-reference arm
        and category ``risk_difference, rd_ci_lower, rd_ci_upper, nnt, nnt_ci_lower,
        nnt_ci_upper``. ``.parameters`` records the SD, r, cut-off and direction used.
    """
    r, higher_is_better, cutoff = _parameters(
        trial, outcome, instrument, reliability, higher_is_better, cutoff
    )
    if outcome not in trial.assessments.columns:
        raise not_an_outcome(outcome)
    visits = visit_levels(trial)
    visit = visit or visits[-1]
    _check_visit(visit, visits)
    arms = arm_levels(trial)
    ref = reference_arm(trial, arms)
    pairs, sd = _pairs(trial, outcome, visit, visits, arms, sd)
    pairs["rc"] = reliable_change(pairs["x1"], pairs["x2"], sd=sd, reliability=r)
    cats = _classify(pairs, higher_is_better, cutoff)
    data = _proportions(pairs, arms, cats, alpha, outcome=outcome, visit=visit)
    comparison = _comparisons(data, arms, ref, cats, alpha, outcome=outcome, visit=visit)
    notes = [
        f"Reliable change (Jacobson & Truax 1991): |RC| > 1.96 with SD = {sd:z.2f} and "
        f"r = {r:z.2f}; {'higher' if higher_is_better else 'lower'} scores are better.",
    ]
    if cutoff is not None:
        notes.append(f"Recovered: reliable improvement and crossing the cut-off {cutoff:g}.")
    if len(comparison):
        notes.append(
            "Risk difference in percentage points, Newcombe hybrid score CI; "
            "NNT = 1 / |risk difference|: NNTB (benefit) when the intervention arm has more "
            "improvement/recovery or less deterioration, NNTH (harm) otherwise (Altman 1998)."
        )
    parameters = {
        "sd": sd,
        "reliability": r,
        "cutoff": cutoff,
        "higher_is_better": higher_is_better,
    }
    return Table(
        data,
        _display(data, comparison, arms, cats, alpha),
        caption=f"Responder analysis: {outcome} at {visit}",
        notes=notes,
        extras={
            "comparison": comparison,
            "parameters": parameters,
            "subjects": pairs.reset_index(),
        },
    )


def _parameters(trial, outcome, instrument, reliability, higher_is_better, cutoff):
    """Reliability, direction and cut-off: as given, else from the spec or the instrument."""
    info = outcome_info(trial, outcome)
    inst = _instrument_for(trial, outcome, instrument)
    if isinstance(reliability, str):
        value = getattr(inst, reliability, None) if inst is not None else None
        if value is None:
            raise SpecError(
                f"no {reliability!r} reliability for {outcome!r}: pass reliability= (a number) "
                "or an instrument whose definition has it"
            )
        r = float(value)
    else:
        r = float(reliability)
    if higher_is_better is None:
        higher_is_better = info.get("higher_is_better")
        if higher_is_better is None and inst is not None:
            higher_is_better = inst.higher_is_better
    if higher_is_better is None:
        raise SpecError(f"the direction of {outcome!r} is unknown; pass higher_is_better=")
    if cutoff is None and inst is not None:
        cutoff = getattr(inst, "caseness", None)
    return r, higher_is_better, cutoff


def _check_visit(visit: str, visits: list[str]) -> None:
    if visit not in visits[1:]:
        import difflib

        close = difflib.get_close_matches(str(visit), visits, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{visit!r} is not a post-baseline visit{hint} visits are {visits[1:]}")


def _pairs(trial, outcome: str, visit: str, visits, arms, sd: float | None):
    """Baseline (``x1``) and follow-up (``x2``) per participant with both, and the SD (given,
    else the baseline SD of the randomised)."""
    a = trial.assessments
    d = a.assign(visit=a["visit"].astype(str), subject=a["subject"].astype(str))
    if "arm" not in d.columns:
        d["arm"] = arms[0]
    d["arm"] = d["arm"].astype(str)
    base = d[d["visit"] == visits[0]].drop_duplicates("subject").set_index("subject")
    fu = d[d["visit"] == visit].drop_duplicates("subject").set_index("subject")
    if sd is None:
        part = trial.participants
        rids = set(part.loc[randomised_mask(part), "subject"].astype(str))
        sd = float(base.loc[base.index.isin(rids), outcome].std(ddof=1))
    pairs = pd.DataFrame(
        {"arm": fu["arm"], "x1": base[outcome].reindex(fu.index), "x2": fu[outcome]}
    ).dropna()
    return pairs, sd


def _classify(pairs: pd.DataFrame, higher_is_better: bool, cutoff: float | None) -> list[str]:
    """Improved, deteriorated (and recovered with a cut-off) columns; returns their names."""
    sign = 1.0 if higher_is_better else -1.0
    pairs["improved"] = sign * pairs["rc"] > 1.96
    pairs["deteriorated"] = sign * pairs["rc"] < -1.96
    cats = ["improved", "deteriorated"]
    if cutoff is not None:
        if higher_is_better:
            crossed = (pairs["x1"] < cutoff) & (pairs["x2"] >= cutoff)
        else:
            crossed = (pairs["x1"] >= cutoff) & (pairs["x2"] < cutoff)
        pairs["recovered"] = pairs["improved"] & crossed
        cats.append("recovered")
    return cats


def _proportions(pairs, arms, cats, alpha: float, **where: str) -> pd.DataFrame:
    """Count and proportion (Wilson CI) of each category per arm."""
    rows = []
    for arm in arms:
        p = pairs[pairs["arm"] == arm]
        for c in cats:
            k, n = int(p[c].sum()), len(p)
            lo, hi = wilson_ci(k, n, alpha)
            rows.append(
                {
                    **where,
                    "arm": arm,
                    "category": c,
                    "n": n,
                    "count": k,
                    "proportion": k / n if n else np.nan,
                    "ci_lower": lo,
                    "ci_upper": hi,
                }
            )
    return pd.DataFrame(rows)


def _comparisons(data, arms, ref, cats, alpha: float, **where: str) -> pd.DataFrame:
    """Risk difference and NNT of each arm against the reference, per category."""
    comp = []
    if ref is None or len(arms) < 2:
        return pd.DataFrame(comp)
    for arm in arms:
        if arm == ref:
            continue
        for c in cats:
            x1 = data[(data.arm == arm) & (data.category == c)].iloc[0]
            x0 = data[(data.arm == ref) & (data.category == c)].iloc[0]
            if x1.n and x0.n:
                rd = risk_difference(
                    int(x1["count"]), int(x1.n), int(x0["count"]), int(x0.n), alpha=alpha
                )
                comp.append({**where, "arm": arm, "reference": ref, "category": c, **rd})
    return pd.DataFrame(comp)


def _display(data, comparison, arms, cats, alpha: float) -> pd.DataFrame:
    """One row per category: count/n (%) per arm, risk difference and NNT."""
    disp_rows = []
    for c in cats:
        r_ = {"Category": c}
        for arm in arms:
            x = data[(data.arm == arm) & (data.category == c)].iloc[0]
            r_[arm] = f"{x['count']}/{x.n} ({100 * x.proportion:z.1f}%)"
        if len(comparison):
            y = comparison[comparison.category == c].iloc[0]
            r_[f"Risk difference ({ci_name(1 - alpha)})"] = (
                f"{100 * y.risk_difference:z.1f} ({100 * y.rd_ci_lower:z.1f} to "
                f"{100 * y.rd_ci_upper:z.1f})"
            )
            r_["NNT"] = _nnt_label(c, y.nnt, y.rd_ci_lower, y.rd_ci_upper)
        disp_rows.append(r_)
    return pd.DataFrame(disp_rows)


def _nnt_label(
    category: str, nnt: float, rd_lower: float | None = None, rd_upper: float | None = None
) -> str:
    """NNTB / NNTH display with its interval (Altman 1998, BMJ 317:1309): deterioration is
    the harmful category, so fewer deteriorations with the intervention (a negative risk
    difference) is a benefit. The interval is the reciprocal of the risk difference's limits;
    when that interval includes 0 it runs from an NNTH through infinity to an NNTB, written
    "(NNTH a to \u221e to NNTB b)", so a non-significant NNT is never shown alone."""
    if not np.isfinite(nnt):
        return "\u221e"
    s = -1.0 if category == "deteriorated" else 1.0
    b = s / nnt  # benefit-oriented risk difference
    point = f"{'NNTB' if b > 0 else 'NNTH'} {abs(nnt):z.1f}"
    if rd_lower is None or rd_upper is None:
        return point
    lo, hi = sorted((s * rd_lower, s * rd_upper))

    def inv(x: float) -> str:
        return "\u221e" if x == 0 else f"{1 / abs(x):z.1f}"

    if lo > 0:
        return f"{point} ({inv(hi)} to {inv(lo)})"
    if hi < 0:
        return f"{point} ({inv(lo)} to {inv(hi)})"
    return f"{point} (NNTH {inv(lo)} to \u221e to NNTB {inv(hi)})"
