"""Table of effects: observed summaries and model-adjusted differences per outcome and visit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.describe._common import arm_levels, outcome_names, reference_arm, visit_levels
from peerstats.describe.render import Table
from peerstats.exceptions import ModelSpecificationError

__all__ = ["outcome_table", "pooled_sd", "outcome_rows", "adjust_p_values", "outcome_display"]

Adjust = Literal["holm", "fdr_bh", "bonferroni", "none"]


def pooled_sd(groups: Sequence[np.ndarray | pd.Series]) -> float:
    """Pooled SD :math:`\\sqrt{\\sum (n_g - 1) s_g^2 / \\sum (n_g - 1)}` (missing ignored)."""
    num = den = 0.0
    for g in groups:
        x = pd.Series(g, dtype=float).dropna()
        if len(x) > 1:
            num += (len(x) - 1) * x.var(ddof=1)
            den += len(x) - 1
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def _outcome_of(fit: Any) -> str:
    fo = getattr(fit, "outcome", None)
    if isinstance(fo, str):
        return fo
    formula = getattr(fit, "formula", "")
    if "~" in formula:
        return formula.split("~", 1)[0].strip()
    raise ModelSpecificationError("cannot tell which outcome the fit models; pass a dict")


def _model_data(fit: Any) -> pd.DataFrame | None:
    design = getattr(fit, "_design", None)
    data = getattr(design, "data", None) if design is not None else getattr(fit, "data", None)
    return data if isinstance(data, pd.DataFrame) else None


def outcome_table(
    fits: Mapping[str, Any] | Sequence[Any] | Any,
    trial: Any = None,
    *,
    primary: str | None = None,
    adjust: Adjust = "holm",
    arm: str = "arm",
    level: float = 0.95,
    labels: Mapping[str, str] | None = None,
    visit_labels: Mapping[str, str] | None = None,
    arm_labels: Mapping[str, str] | None = None,
    directions: Mapping[str, bool | None] | None = None,
    digits: int | Mapping[str, int] = 2,
) -> Table:
    """Per outcome and visit: observed n, mean (SD) per arm; adjusted difference, CI, p, d.

    Parameters
    ----------
    fits : mapping, sequence or one fitted model
        ``{outcome: fit}`` or fits whose ``formula`` names the outcome. Each fit provides
        ``contrasts(arm=, by=<visit>)`` with columns ``<visit>, contrast, estimate,
        std_error, df, statistic, p_value, ci_lower, ci_upper`` (peerstats MMRM results do).
    trial : Trial or trial-like, optional
        Source of the observed summaries (all randomised participants observed at the visit)
        and of the baseline SD. Without it the model's own data are used.
    primary : str, optional
        The primary outcome (default: the first outcome of the spec, else the first fit).
        Its p-values are not adjusted.
    adjust : {"holm", "fdr_bh", "bonferroni", "none"}
        Multiplicity adjustment of the secondary outcomes' p-values, within each visit
        (``statsmodels.stats.multitest.multipletests``; ``fdr_bh`` is Benjamini-Hochberg).
    arm : str
        Name of the arm factor in the models.
    level : float
        Confidence level of the model CIs (passed to each fit's ``contrasts``).
    labels : mapping, optional
        Display names of the outcomes.
    visit_labels, arm_labels : mapping, optional
        Display names of the visits (the Visit column) and arms (column headers).
    directions : mapping, optional
        Per outcome, True when higher scores are better, False when lower are (e.g. from the
        instrument definitions): adds a Direction column ("higher is better" / "lower is
        better") to the display and ``higher_is_better`` to ``.data``.
    digits : int or mapping
        Decimals of the means, SDs and differences: one number, or per outcome
        (``{"empowerment": 2, "default": 1}``; outcomes not named get ``default``, else 2), e.g.
        from each instrument's scale (issue 20.9). Cohen's d always has 2.

    Returns
    -------
    Table
        ``.data`` has one row per outcome, visit and contrast: ``outcome, visit, contrast,
        n_<arm>, mean_<arm>, sd_<arm>`` for each arm, ``estimate, std_error, df, statistic,
        p_value, ci_lower, ci_upper, sd_baseline, d, d_ci_lower, d_ci_upper, p_adjusted,
        primary``.

    Notes
    -----
    Cohen's d = adjusted difference / pooled baseline SD of the outcome across arms
    (Feingold 2009); its CI is the CI of the difference divided by the same SD (the SD is
    treated as known). Adjusted p-values are given for secondary outcomes only.
    """
    if isinstance(fits, Mapping):
        items = list(fits.items())
    elif isinstance(fits, list | tuple):
        items = [(_outcome_of(f), f) for f in fits]
    else:
        items = [(_outcome_of(fits), fits)]
    _check_adjust(adjust)
    if primary is None:
        names = outcome_names(trial) if trial is not None else []
        # the trial's primary outcome is the first in the spec; when it is not among the fits,
        # every fitted outcome is secondary (adjusted), none is promoted to primary
        primary = names[0] if names else items[0][0]

    rows: list[dict[str, Any]] = []
    arms_all: list[str] = []
    for outcome, fit in items:
        got, arms = outcome_rows(outcome, fit, trial, arm=arm, level=level, primary=primary)
        rows.extend(got)
        for g in arms:
            if g not in arms_all:
                arms_all.append(g)
    data = pd.DataFrame(rows)
    data["p_adjusted"] = adjust_p_values(data, adjust)
    return outcome_display(
        data,
        trial,
        arms=arms_all,
        adjust=adjust,
        level=level,
        labels=labels,
        visit_labels=visit_labels,
        arm_labels=arm_labels,
        directions=directions,
        digits=digits,
    )


def _check_adjust(adjust: str) -> None:
    if adjust not in ("holm", "fdr_bh", "bonferroni", "none"):
        raise ValueError(
            f"{adjust!r} is not an adjustment; choose 'holm', 'fdr_bh', 'bonferroni' or 'none'"
        )


def _observed(
    outcome: str, fit: Any, trial: Any, arm: str, fv: str
) -> tuple[pd.DataFrame, list[str], float]:
    """The observed data of one outcome (arm, visit as text), its arms and baseline SD."""
    if trial is not None:
        a = trial.assessments
        arms = arm_levels(trial)
        base_visit = visit_levels(trial)[0]
        obs = a.assign(arm=a["arm"].astype(str), visit=a["visit"].astype(str))
        base = obs[obs["visit"] == base_visit]
        sd0 = pooled_sd([base.loc[base["arm"] == g, outcome] for g in arms])
        return obs, arms, sd0
    md = _model_data(fit)
    if md is None:
        raise ModelSpecificationError(
            "pass trial= (the fit does not carry its data) for the observed summaries"
        )
    obs = md.assign(arm=md[arm].astype(str), visit=md[fv].astype(str))
    arms = [str(x) for x in pd.unique(obs["arm"])]
    bcol = f"{outcome}_baseline"
    if bcol in obs.columns:
        per = obs.drop_duplicates(subset=[getattr(fit, "subject", "subject")])
        sd0 = pooled_sd([per.loc[per["arm"] == g, bcol] for g in arms])
    else:
        sd0 = float("nan")
    return obs, arms, sd0


def outcome_rows(
    outcome: str,
    fit: Any,
    trial: Any = None,
    *,
    arm: str = "arm",
    level: float = 0.95,
    primary: str | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of :func:`outcome_table` of one outcome (no multiplicity adjustment), and its
    arms: per visit and contrast, observed ``n_<arm>, mean_<arm>, sd_<arm>``, the model's
    ``estimate ... ci_upper``, ``sd_baseline``, Cohen's ``d`` with its CI and ``primary``."""
    fv = getattr(fit, "visit", "visit")
    fv = fv if isinstance(fv, str) else "visit"
    factors = getattr(getattr(fit, "_design", None), "factors", None)
    if isinstance(factors, dict) and fv not in factors:
        # one post-baseline visit: the model has no visit term; name the visit it used
        con = fit.contrasts(arm=arm, level=level)
        con.insert(0, "visit", _single_visit(fit, trial, outcome, fv))
    else:
        con = fit.contrasts(arm=arm, by=fv, level=level)
    con = con.rename(columns={fv: "visit"})
    con["visit"] = con["visit"].astype(str)
    obs, arms, sd0 = _observed(outcome, fit, trial, arm, fv)
    summ = (
        obs.dropna(subset=[outcome])
        .groupby(["arm", "visit"])[outcome]
        .agg(["count", "mean", "std"])
    )
    rows = []
    for rec in con.to_dict("records"):
        row: dict[str, Any] = {
            "outcome": outcome,
            "visit": rec["visit"],
            "contrast": rec["contrast"],
        }
        for g in arms:
            key = (g, rec["visit"])
            has = key in summ.index
            row[f"n_{g}"] = int(summ.loc[key, "count"]) if has else 0
            row[f"mean_{g}"] = float(summ.loc[key, "mean"]) if has else np.nan
            row[f"sd_{g}"] = float(summ.loc[key, "std"]) if has else np.nan
        for c in ("estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"):
            row[c] = float(rec[c])
        row["sd_baseline"] = sd0
        row["d"] = row["estimate"] / sd0
        row["d_ci_lower"] = row["ci_lower"] / sd0
        row["d_ci_upper"] = row["ci_upper"] / sd0
        row["primary"] = outcome == primary
        rows.append(row)
    return rows, arms


def adjust_p_values(
    data: pd.DataFrame, adjust: Adjust = "holm", *, by: Sequence[str] = ("visit", "contrast")
) -> np.ndarray:
    """Multiplicity-adjusted p-values of the secondary rows (``primary`` False) of ``data``,
    within each group of ``by`` (NaN for the primary rows; all NaN for ``"none"``).

    Notes
    -----
    ``statsmodels.stats.multitest.multipletests`` (Holm, Benjamini-Hochberg, Bonferroni).
    """
    _check_adjust(adjust)
    out = np.full(len(data), np.nan)
    if adjust == "none" or not len(data):
        return out
    from statsmodels.stats.multitest import multipletests

    pos = pd.Series(np.arange(len(data)), index=data.index)
    sec = data[~data["primary"].astype(bool)]
    for _, idx in sec.groupby(list(by)).groups.items():
        p = data.loc[idx, "p_value"].to_numpy(dtype=float)
        ok = np.isfinite(p)
        if ok.sum():
            adj = np.full(len(p), np.nan)
            adj[ok] = multipletests(p[ok], method=adjust)[1]
            out[pos[idx].to_numpy()] = adj
    return out


def outcome_display(
    data: pd.DataFrame,
    trial: Any = None,
    *,
    arms: Sequence[str],
    adjust: Adjust = "holm",
    level: float = 0.95,
    labels: Mapping[str, str] | None = None,
    visit_labels: Mapping[str, str] | None = None,
    arm_labels: Mapping[str, str] | None = None,
    directions: Mapping[str, bool | None] | None = None,
    digits: int | Mapping[str, int] = 2,
    primary_visit: str | None = None,
) -> Table:
    """The :class:`Table` of :func:`outcome_table` from its data (rows of
    :func:`outcome_rows` with ``p_adjusted``): formatting only. With ``primary_visit``,
    "(primary)" marks the primary outcome at that visit only (issue 20.9)."""
    labels = dict(labels or {})
    arms_all = list(arms)
    ref = reference_arm(trial, arms_all) if trial is not None else None
    order = ([ref] if ref in arms_all else []) + [g for g in arms_all if g != ref]
    vlab = {str(k): str(v) for k, v in (visit_labels or {}).items()}
    alab = {str(k): str(v) for k, v in (arm_labels or {}).items()}
    ci_name = _ci_name(level)
    k = [_digits_of(digits, str(o)) for o in data["outcome"]]
    disp = pd.DataFrame(
        {
            "Outcome": _outcome_cells(data, labels, primary_visit),
            "Visit": [vlab.get(v, v) for v in data["visit"]],
            **_arm_cells(data, order, alab, k),
            f"Difference ({ci_name})": _interval_cells(data, "", k),
            "p": data["p_value"].map(_fmt_p),
            f"p ({adjust})" if adjust != "none" else "p (adjusted)": data["p_adjusted"].map(_fmt_p),
            f"d ({ci_name})": _interval_cells(data, "d", [2] * len(data)),
        }
    )
    if adjust == "none":
        disp = disp.drop(columns="p (adjusted)")
    if directions:
        _add_directions(data, disp, directions)
    return Table(data, disp, caption="Outcomes", notes=_outcome_notes(ci_name, adjust))


def _fmt_p(p: float) -> str:
    """A p-value as printed: ``<0.001``, three decimals, or empty when not finite."""
    if not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:z.3f}"


def _outcome_cells(
    data: pd.DataFrame, labels: Mapping[str, str], primary_visit: str | None
) -> list[str]:
    """The Outcome column: labels, "(primary)" on the primary outcome (at ``primary_visit``
    only, when given)."""
    return [
        labels.get(o, o)
        + (" (primary)" if pr and (primary_visit is None or str(v) == str(primary_visit)) else "")
        for o, pr, v in zip(data["outcome"], data["primary"], data["visit"])
    ]


def _arm_cells(
    data: pd.DataFrame, order: list[str], alab: Mapping[str, str], k: list[int]
) -> dict[str, list[str]]:
    """One ``<arm>: n, mean (SD)`` column per arm (reference first), ``k`` decimals per row."""
    return {
        f"{alab.get(g, g)}: n, mean (SD)": [
            f"{int(n)}, {m:z.{j}f} ({s:z.{j}f})" if n else ""
            for n, m, s, j in zip(data[f"n_{g}"], data[f"mean_{g}"], data[f"sd_{g}"], k)
        ]
        for g in order
    }


def _interval_cells(data: pd.DataFrame, prefix: str, k: list[int]) -> list[str]:
    """``estimate (lower to upper)`` of the difference (``prefix`` "") or of Cohen's d
    (``prefix`` "d"), ``k`` decimals per row."""
    est, lo, hi = (
        ("estimate", "ci_lower", "ci_upper") if not prefix else ("d", "d_ci_lower", "d_ci_upper")
    )
    return [
        f"{e:z.{j}f} ({a:z.{j}f} to {b:z.{j}f})"
        for e, a, b, j in zip(data[est], data[lo], data[hi], k)
    ]


def _add_directions(
    data: pd.DataFrame, disp: pd.DataFrame, directions: Mapping[str, bool | None]
) -> None:
    """Add ``higher_is_better`` to ``data`` and the Direction column to ``disp`` (in place)."""
    hib = [directions.get(o) for o in data["outcome"]]
    data["higher_is_better"] = [None if h is None else bool(h) for h in hib]
    disp.insert(
        1,
        "Direction",
        ["" if h is None else ("higher is better" if h else "lower is better") for h in hib],
    )


def _outcome_notes(ci_name: str, adjust: str) -> list[str]:
    """The notes under the outcome table."""
    notes = [
        "Difference: model-adjusted difference in marginal means (intervention - reference), "
        f"{ci_name}.",
        "d: difference / pooled baseline SD of the outcome (Feingold 2009); CI scaled likewise.",
        "Signs: differences and d are intervention minus reference on each instrument's own "
        "scale; where lower scores are better, a negative difference favours the intervention.",
    ]
    if adjust != "none":
        name = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni"}[adjust]
        notes.append(f"Secondary outcomes' p-values adjusted by {name} within each visit.")
    return notes


def _digits_of(digits: int | Mapping[str, int], outcome: str) -> int:
    """Decimals of one outcome: ``digits`` itself, or its entry / ``default`` / 2."""
    if isinstance(digits, Mapping):
        value = digits.get(outcome, digits.get("default", 2))
    else:
        value = digits
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 6:
        raise ModelSpecificationError(
            f"digits for {outcome!r} must be a whole number from 0 to 6; got {value!r}"
        )
    return int(value)


def _single_visit(fit: Any, trial: Any, outcome: str, fv: str) -> str:
    """The one post-baseline visit of a fit without a visit term (from its data, else from the
    trial: the only post-baseline visit where the outcome was observed)."""
    data = getattr(getattr(fit, "_design", None), "data", None)
    if data is not None and fv in data.columns and data[fv].nunique() == 1:
        return str(data[fv].iloc[0])
    if trial is not None:
        a = trial.assessments
        visits = visit_levels(trial)
        seen = a.loc[a[outcome].notna(), "visit"].astype(str)
        post = [v for v in visits[1:] if (seen == v).any()]
        if len(post) == 1:
            return post[0]
    raise ModelSpecificationError(
        f"the fit of {outcome!r} has no {fv!r} term and its single visit cannot be told"
    )


def _ci_name(level: float) -> str:
    pct = 100 * float(level)
    return f"{pct:z.0f}% CI" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}% CI"
