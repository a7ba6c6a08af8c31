"""Survey descriptives: response rate per region and numeric summaries with percentiles.

The layout follows the national survey of Swedish peer supporters (Userinvolve, seed 003):
response per region (count, target population, %) and, for each numeric question, count,
missing (%), unique, min, max, mean, SD, sum and the 5/10/25/50/75/90/95th percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.describe._common import NOT_A_COLUMN, data_error
from peerstats.describe.feasibility import wilson_ci
from peerstats.describe.render import Table
from peerstats.exceptions import DataValidationError

__all__ = ["response_rates", "describe_numeric", "describe_categorical"]

DEFAULT_PERCENTILES = (5, 10, 25, 50, 75, 90, 95)

PercentileMethod = Literal[
    "linear",
    "weibull",
    "hazen",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "nearest",
    "midpoint",
]


def _missing_col(table: str, col: str, cols: Sequence[str]) -> DataValidationError:
    return data_error(
        table, "missing_column", NOT_A_COLUMN.format(c=col, cols=list(cols)), column=col
    )


def response_rates(
    responses: pd.DataFrame,
    *,
    by: str = "region",
    targets: Mapping[str, int] | pd.Series | pd.DataFrame,
    target_column: str = "target",
    total: bool = True,
    alpha: float = 0.05,
) -> Table:
    """Responses, target population and response rate per group (e.g. region).

    Parameters
    ----------
    responses : DataFrame
        One row per returned questionnaire; rows with a missing ``by`` are not counted (they
        cannot be attributed to a target population).
    by : str
        Grouping column.
    targets : mapping, Series or DataFrame
        Target population per group: ``{region: n}``, a Series indexed by group, or a frame
        with columns ``by`` and ``target_column``. Groups are listed in this order.
    total : bool
        Append a Total row (sum of responses / sum of targets).
    alpha : float
        1 - confidence level of the Wilson interval of each rate.

    Returns
    -------
    Table
        ``.data`` columns ``group, responses, target, rate_percent, ci_lower, ci_upper``
        (percent). Rates are raw (unrounded); ``.display`` prints one decimal.
    """
    if by not in responses.columns:
        raise _missing_col("responses", by, responses.columns)
    tgt = _targets(targets, by, target_column)
    counts = responses[by].dropna().astype(str).value_counts()
    _check_targets(tgt, counts, by)
    rows = [_rate_row(g, int(counts.get(g, 0)), int(t), alpha) for g, t in tgt.items()]
    if total:
        k, t = sum(r["responses"] for r in rows), sum(r["target"] for r in rows)
        rows.append(_rate_row("Total", k, t, alpha))
    data = pd.DataFrame(rows)
    display = pd.DataFrame(
        {
            by.capitalize(): data["group"],
            "Responses (n)": data["responses"],
            "Target population (n)": data["target"],
            "Response rate, % (95% CI)": [
                f"{r:z.1f} ({lo:z.1f}\u2013{hi:z.1f})"
                for r, lo, hi in zip(data["rate_percent"], data["ci_lower"], data["ci_upper"])
            ],
        }
    )
    n_unattributed = int(responses[by].isna().sum())
    notes = [f"{int(100 * (1 - alpha))}% CI by the Wilson score method."]
    if n_unattributed:
        notes.append(f"{n_unattributed} response(s) without a {by} are not counted.")
    return Table(data, display, caption="Response rate", notes=notes)


def _targets(targets: Any, by: str, target_column: str) -> pd.Series:
    """Target population per group as a Series indexed by the group (as text)."""
    if isinstance(targets, pd.DataFrame):
        if by not in targets.columns or target_column not in targets.columns:
            raise _missing_col(
                "targets", by if by not in targets.columns else target_column, targets.columns
            )
        return pd.Series(targets[target_column].to_numpy(), index=targets[by].astype(str))
    tgt = pd.Series(dict(targets)) if not isinstance(targets, pd.Series) else targets.copy()
    tgt.index = tgt.index.astype(str)
    return tgt


def _check_targets(tgt: pd.Series, counts: pd.Series, by: str) -> None:
    """Targets are unique non-negative counts, not exceeded, for every group responding."""
    problems = []
    for g in tgt.index[tgt.index.duplicated()].unique():
        problems.append((g, "duplicate_target", f"group {g!r} has more than one target"))
    for g, t in tgt.items():
        t_num = pd.to_numeric(pd.Series([t]), errors="coerce").iloc[0]
        if not (t_num == t_num) or t_num < 0 or t_num != int(t_num):
            problems.append((g, "bad_target", f"target of {g!r} is {t!r}; a count is needed"))
        elif int(counts.get(g, 0)) > t_num:
            n = int(counts.get(g, 0))
            message = f"{n} responses in {g!r} exceed its target of {int(t_num)}"
            problems.append((g, "above_target", message))
    if problems:
        raise _value_errors("targets", by, problems)
    unknown = sorted(set(counts.index) - set(tgt.index))
    if unknown:
        groups = list(tgt.index)
        message = "{!r} has no target population; groups are {}"
        problems = [(u, "unknown_label", message.format(u, groups)) for u in unknown]
        raise _value_errors("responses", by, problems)


def _value_errors(table: str, column: str, problems: list[tuple]) -> DataValidationError:
    """One row per (value, check, message) problem of ``table.column``."""
    rows = [
        {"table": table, "column": column, "value": g, "check": c, "message": m}
        for g, c, m in problems
    ]
    return DataValidationError(pd.DataFrame(rows))


def _rate_row(group: str, k: int, t: int, alpha: float) -> dict[str, Any]:
    """Responses, target and the response rate (%) with its Wilson CI."""
    lo, hi = wilson_ci(k, t, alpha)
    return {
        "group": group,
        "responses": k,
        "target": t,
        "rate_percent": 100 * k / t if t else np.nan,
        "ci_lower": 100 * lo,
        "ci_upper": 100 * hi,
    }


def describe_numeric(
    data: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    method: PercentileMethod = "linear",
    labels: Mapping[str, str] | None = None,
) -> Table:
    """Numeric summaries as survey tools print them.

    Count (non-missing), missing (n and % of all rows), unique values, min, max, mean, SD
    (sample, ddof = 1), sum and percentiles.

    Parameters
    ----------
    data : DataFrame
        One row per respondent.
    columns : sequence of str, optional
        Numeric columns (default: every numeric column).
    percentiles : sequence of float
        Percentiles in 0-100 (default 5, 10, 25, 50, 75, 90, 95).
    method : str
        Percentile definition, passed to :func:`numpy.percentile`: ``"linear"`` (default;
        Hyndman & Fan type 7, as numpy, pandas, R and Excel PERCENTILE.INC) or
        ``"weibull"`` (type 6, as SPSS and Minitab), among others.
    labels : mapping, optional
        Display names.

    Returns
    -------
    Table
        ``.data`` columns ``variable, count, missing, missing_percent, unique, min, max, mean,
        sd, sum, p5, p10, ...`` (raw numbers).
    """
    if columns is None:
        columns = [
            c
            for c in data.columns
            if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
        ]
    for c in columns:
        if c not in data.columns:
            raise _missing_col("data", c, data.columns)
    labels = dict(labels or {})
    _refuse_text(data, columns)
    tidy = pd.DataFrame([_numeric_row(data[c], c, percentiles, method) for c in columns])

    def num(v: float) -> str:
        return f"{v:z.0f}" if float(v).is_integer() else f"{v:z.2f}"

    disp = pd.DataFrame(
        {
            "Question": [labels.get(c, c) for c in tidy["variable"]],
            "Count (N)": tidy["count"],
            "Missing": [
                f"{m} ({p:z.1f}%)" for m, p in zip(tidy["missing"], tidy["missing_percent"])
            ],
            "Unique": tidy["unique"],
            "Min": tidy["min"].map(num),
            "Max": tidy["max"].map(num),
            "Mean": tidy["mean"].map(lambda v: f"{v:z.2f}"),
            "SD": tidy["sd"].map(lambda v: f"{v:z.2f}"),
            "Sum": tidy["sum"].map(num),
            **{f"P{p:g}": tidy[f"p{p:g}"].map(num) for p in percentiles},
        }
    )
    return Table(
        tidy,
        disp,
        caption="Numeric answers",
        notes=[
            f"Missing: % of all {len(data)} records. SD with n - 1. Percentiles: "
            f"numpy method {method!r}."
        ],
    )


def _refuse_text(data: pd.DataFrame, columns: Sequence[str]) -> None:
    """Text in a numeric column would silently count as missing: list every such cell."""
    bad = []
    for c in columns:
        x = pd.to_numeric(data[c], errors="coerce")
        lost = x.isna() & data[c].notna() & (data[c].astype(str).str.strip() != "")
        bad += [
            {
                "table": "data",
                "row": int(i) + 1,
                "column": c,
                "value": data[c].iloc[i],
                "check": "non_numeric",
                "message": f"{data[c].iloc[i]!r} is not a number",
            }
            for i in np.flatnonzero(lost.to_numpy())
        ]
    if bad:
        raise DataValidationError(pd.DataFrame(bad), context="describe_numeric")


def _numeric_row(values: pd.Series, name: str, percentiles, method: str) -> dict[str, Any]:
    """Count, missing, unique, min, max, mean, SD, sum and percentiles of one column."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    obs = x.dropna().to_numpy()
    n_all = len(x)
    miss = int(n_all - len(obs))
    row: dict[str, Any] = {
        "variable": name,
        "count": len(obs),
        "missing": miss,
        "missing_percent": 100 * miss / n_all if n_all else np.nan,
        "unique": len(np.unique(obs)),
        "min": obs.min() if len(obs) else np.nan,
        "max": obs.max() if len(obs) else np.nan,
        "mean": obs.mean() if len(obs) else np.nan,
        "sd": obs.std(ddof=1) if len(obs) > 1 else np.nan,
        "sum": obs.sum(),
    }
    qs = (
        np.percentile(obs, list(percentiles), method=method)
        if len(obs)
        else [np.nan] * len(percentiles)
    )
    for p, q in zip(percentiles, qs):
        row[f"p{p:g}"] = float(q)
    return row


def describe_categorical(
    data: pd.DataFrame,
    columns: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    suppress_below: int | None = None,
) -> Table:
    """Counts and percentages (of answered) of categorical questions, missing listed.

    Returns
    -------
    Table
        ``.data`` columns ``variable, level, n, percent`` (level ``None`` = missing, with
        percent of all records).
    """
    labels = dict(labels or {})
    rows = []
    for c in columns:
        if c not in data.columns:
            raise _missing_col("data", c, data.columns)
        x = data[c]
        answered = x.dropna().astype(str)
        for lev, k in answered.value_counts().items():
            rows.append(
                {"variable": c, "level": lev, "n": int(k), "percent": 100 * k / len(answered)}
            )
        rows.append(
            {
                "variable": c,
                "level": None,
                "n": int(x.isna().sum()),
                "percent": 100 * x.isna().sum() / len(x) if len(x) else np.nan,
            }
        )
    tidy = pd.DataFrame(rows)

    def cell(k: int, p: float) -> str:
        if suppress_below is not None and 1 <= k < suppress_below:
            return f"<{suppress_below}"
        return f"{k} ({p:z.1f}%)"

    disp = pd.DataFrame(
        {
            "Question": [labels.get(v, v) for v in tidy["variable"]],
            "Answer": tidy["level"].fillna("missing"),
            "n (%)": [cell(k, p) for k, p in zip(tidy["n"], tidy["percent"])],
        }
    )
    return Table(
        tidy,
        disp,
        caption="Categorical answers",
        notes=["Percent of answered; missing as percent of all records."],
    )
