"""The analysis data of a binary or count outcome: one row per randomised participant with the
arm, the stratification factors and covariates, the delivery group, the response and (counts)
the exposure. Values are checked, never changed silently: a value that is not 0/1 (yes/no), a
negative or fractional count, a zero or missing exposure where the count is known raise
:class:`~peerstats.exceptions.DataValidationError` listing every such row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import DataValidationError, SpecError

__all__ = ["analysis_data", "columns_problems"]

_YES = {"1", "1.0", "yes", "y", "true", "t"}
_NO = {"0", "0.0", "no", "n", "false", "f"}


def columns_problems(d: Any, trial_spec: Any) -> list[str]:
    """Spec-level problems of an outcome definition (before data are read)."""
    problems = []
    if d.derive and d.derive.get("outcome") not in trial_spec.outcome_names:
        problems.append(
            f"from/outcome: {d.derive.get('outcome')!r} is not a scale of the trial; scales are "
            f"{list(trial_spec.outcome_names)}"
        )
    visits = [str(v) for v in trial_spec.visits]
    if d.visit is not None and d.visit not in visits[1:]:
        problems.append(f"visit: {d.visit!r} is not a post-baseline visit; those are {visits[1:]}")
    return problems


def _failures(rows: pd.DataFrame, column: str, values: pd.Series, check: str, message: str):
    return pd.DataFrame(
        {
            "table": "participants",
            "row": rows["_row"].to_numpy(),
            "column": column,
            "value": [str(v) for v in values],
            "check": check,
            "message": message,
        }
    )


def _binary(values: pd.Series, d: Any, frame: pd.DataFrame) -> pd.Series:
    """0/1 from 0/1, yes/no, true/false (and the spec's ``yes:`` values)."""
    yes = _YES | set(d.yes)
    out = pd.Series(np.nan, index=values.index)
    bad = []
    for i, v in values.items():
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            continue
        t = str(v).strip().lower()
        if t in yes:
            out[i] = 1.0
        elif t in _NO:
            out[i] = 0.0
        else:
            bad.append(i)
    if bad:
        raise DataValidationError(
            _failures(
                frame.loc[bad],
                d.source,
                values.loc[bad],
                "binary",
                f"{d.name!r} is binary: values must be 0/1, yes/no or true/false",
            ),
            context=f"outcome {d.name!r}",
        )
    return out


def _count(values: pd.Series, d: Any, frame: pd.DataFrame) -> pd.Series:
    """Counts: non-negative integers."""
    x = pd.to_numeric(values, errors="coerce")
    text_bad = values.notna() & x.isna()
    bad = text_bad | (x < 0) | (x.notna() & (np.abs(x - np.round(x)) > 1e-9))
    if bad.any():
        raise DataValidationError(
            _failures(
                frame.loc[bad],
                d.source,
                values.loc[bad],
                "count",
                f"{d.name!r} is a count: values must be non-negative whole numbers",
            ),
            context=f"outcome {d.name!r}",
        )
    return x.astype(float)


def _exposure(frame: pd.DataFrame, d: Any) -> pd.Series:
    e = pd.to_numeric(frame[d.exposure], errors="coerce")
    bad = frame["y"].notna() & ~(e > 0)
    if bad.any():
        raise DataValidationError(
            _failures(
                frame.loc[bad],
                d.exposure,
                frame.loc[bad, d.exposure],
                "exposure",
                f"the exposure of {d.name!r} must be a positive follow-up time wherever the "
                "count is known (zero or missing exposure)",
            ),
            context=f"outcome {d.name!r}",
        )
    return e


def _at_visit(a: pd.DataFrame, visit: str, column: str) -> pd.Series:
    """One column of the assessments at one visit, indexed by subject (text)."""
    at = a[a["visit"].astype(str) == visit]
    return pd.Series(at[column].to_numpy(), index=at["subject"].astype(str).to_numpy())


def _derived(trial: Any, d: Any, frame: pd.DataFrame) -> pd.Series:
    """A binary outcome from a scale at a visit: a threshold, or reliable improvement
    (Jacobson & Truax: RC = change / (SD_baseline sqrt(2) sqrt(1 - r)), |RC| > 1.96, in the
    direction that is better on the scale; SD_baseline pooled over arms)."""
    from peerstats.describe.outcome_table import pooled_sd
    from peerstats.pipeline._display import directions

    scale, rule = d.derive["outcome"], d.derive
    a = trial.assessments
    at = _at_visit(a, d.visit, scale)
    x = at.reindex(frame["subject"].astype(str)).to_numpy(dtype=float)
    ok = ~np.isnan(x)
    if "below" in rule:
        y = x < rule["below"]
    elif "at_most" in rule:
        y = x <= rule["at_most"]
    elif "above" in rule:
        y = x > rule["above"]
    elif "at_least" in rule:
        y = x >= rule["at_least"]
    else:
        hib = directions(trial).get(scale)
        if hib is None:
            raise SpecError(
                f"outcomes/{d.name}/from: reliable improvement needs the direction of "
                f"{scale!r} (higher_is_better in the trial spec or its instrument)"
            )
        base_visit = str(trial.spec.visits[0])
        b = a[a["visit"].astype(str) == base_visit]
        sd = pooled_sd(
            [b.loc[b["arm"].astype(str) == g, scale] for g in b["arm"].astype(str).unique()]
        )
        b0 = _at_visit(a, base_visit, scale).reindex(frame["subject"].astype(str))
        rc = (x - b0.to_numpy(dtype=float)) / (
            sd * np.sqrt(2) * np.sqrt(1 - rule["reliable_improvement"])
        )
        ok &= ~np.isnan(rc)
        y = rc > 1.96 if hib else rc < -1.96
    return pd.Series(np.where(ok, y.astype(float), np.nan), index=frame.index)


def _response(trial: Any, d: Any, frame: pd.DataFrame) -> pd.Series:
    if d.derive:
        return _derived(trial, d, frame)
    if d.visit is not None:
        a = trial.assessments
        if d.column not in a.columns:
            raise SpecError(
                f"outcomes/{d.name}/column: {d.column!r} is not in the assessments; columns are "
                f"{[c for c in a.columns if c not in ('subject', 'visit')]}"
            )
        at = _at_visit(a, d.visit, d.column)
        raw = at.reindex(frame["subject"].astype(str))
        raw.index = frame.index
    else:
        raw = frame[d.column]
    return _binary(raw, d, frame) if d.type == "binary" else _count(raw, d, frame)


def analysis_data(trial: Any, d: Any, spec: Any) -> tuple[pd.DataFrame, list[str]]:
    """Every randomised participant (``subject, arm, <strata>, <covariates>, cluster, y``, and
    ``exposure`` for counts) and the adjustment terms (strata with more than one level, then
    the outcome's covariates).

    Raises
    ------
    SpecError
        A column the definition names is not in the data.
    DataValidationError
        Values that do not fit the outcome type (every such row listed).
    """
    ts = trial.spec
    part = trial.randomised
    want = [
        c
        for c in (d.column if d.visit is None and not d.derive else None, d.exposure, *d.covariates)
        if c
    ]
    missing = [c for c in want if c not in part.columns]
    if missing:
        cols = [c for c in part.columns if c != "subject"]
        raise SpecError(
            f"outcomes/{d.name}: {missing} not in the participants table; columns are {cols}"
        )
    frame = part.copy()
    frame["subject"] = frame["subject"].astype(str)
    everyone = getattr(trial, "participants", part)  # rows of the participants table
    row_of = dict(zip(everyone["subject"].astype(str), range(len(everyone)), strict=False))
    frame["_row"] = frame["subject"].map(row_of).astype(int)
    arms = [str(ts.arms.reference or ts.arms.levels[0])]
    arms += [str(a) for a in ts.arms.levels if str(a) not in arms]
    frame["arm"] = pd.Categorical(frame["arm"].astype(str), categories=arms)
    strata = [s for s in ts.strata if s in frame.columns]
    for s in strata:
        frame[s] = frame[s].astype(str)
    grp = (
        frame["group"].astype(object)
        if "group" in frame.columns
        else pd.Series(None, index=frame.index)
    )
    frame["cluster"] = np.where(grp.notna(), "g:" + grp.astype(str), "s:" + frame["subject"])
    frame["y"] = _response(trial, d, frame)
    if d.exposure:
        frame["exposure"] = _exposure(frame, d)
    used = frame[frame["y"].notna()]
    strata = [s for s in strata if used[s].nunique() > 1]
    return frame, [*strata, *d.covariates]
