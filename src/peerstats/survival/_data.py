"""Checks on time-to-event columns shared by every survival function (issue 17).

Nothing is dropped silently: missing or negative times, event codes outside the allowed set,
missing arms or covariates raise :class:`~peerstats.exceptions.DataValidationError` with one row
per problem (and its count in the message).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError, ModelSpecificationError

__all__ = ["check_columns", "check_times", "check_events"]


def check_columns(data: pd.DataFrame, columns: Sequence[str | None]) -> None:
    """Raise when a named column is absent (listing the columns there are)."""
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(
            f"data must be a pandas DataFrame, got {type(data).__name__}"
        )
    missing = [c for c in columns if c is not None and c not in data.columns]
    if missing:
        raise ModelSpecificationError(
            f"column(s) {missing} not in the data; columns are {list(data.columns)}"
        )


def _failure(table: str, rows: np.ndarray, column: str, values, check: str, message: str):
    return pd.DataFrame(
        {
            "table": table,
            "row": rows + 1,
            "column": column,
            "value": list(values),
            "check": check,
            "message": message,
        }
    )


def check_times(
    data: pd.DataFrame,
    time: str,
    *,
    others: Sequence[str] = (),
    context: str = "",
) -> np.ndarray:
    """Follow-up times as floats; refuse missing, non-numeric and negative times.

    ``others`` are further columns (event, arm, covariates) that must not be missing.
    """
    failures = []
    t = pd.to_numeric(data[time], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(t))
    if bad.size:
        failures.append(
            _failure("data", bad, time, data[time].iloc[bad], "missing_time",
                     f"{bad.size} missing or non-numeric follow-up time(s): impute or "
                     "exclude them explicitly (nothing is dropped silently)")
        )
    neg = np.flatnonzero(t < 0)
    if neg.size:
        failures.append(
            _failure("data", neg, time, t[neg], "negative_time",
                     f"{neg.size} negative follow-up time(s): an event or censoring before "
                     "the start of follow-up")
        )
    for col in others:
        miss = np.flatnonzero(data[col].isna().to_numpy())
        if miss.size:
            failures.append(
                _failure("data", miss, col, [None] * miss.size, "missing_value",
                         f"{miss.size} missing value(s) in {col!r}")
            )
    if failures:
        raise DataValidationError(pd.concat(failures, ignore_index=True), context=context)
    return t


def check_events(
    data: pd.DataFrame,
    event: str,
    t: np.ndarray,
    *,
    allowed: Sequence[int] = (0, 1),
    context: str = "",
) -> np.ndarray:
    """Event codes as integers; refuse codes outside ``allowed`` and events at time 0.

    An event at time 0 (before any follow-up) has no risk set in the partial likelihood and no
    place on a survival curve that starts at 1: it is refused, with its count.
    """
    raw = data[event]
    if raw.dtype == bool:
        raw = raw.astype(int)
    e = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    failures = []
    ok = np.isin(e, np.asarray(allowed, dtype=float))
    bad = np.flatnonzero(~ok)
    if bad.size:
        failures.append(
            _failure("data", bad, event, raw.iloc[bad], "unknown_event_code",
                     f"{bad.size} event code(s) not in {list(allowed)} (0 = censored)")
        )
    zero = np.flatnonzero(ok & (e > 0) & (t == 0))
    if zero.size:
        failures.append(
            _failure("data", zero, event, e[zero], "event_at_time_zero",
                     f"{zero.size} event(s) at time 0 (at or before the start of follow-up): "
                     "check the start date, or add the day of randomisation as follow-up")
        )
    if failures:
        raise DataValidationError(pd.concat(failures, ignore_index=True), context=context)
    return e.astype(int)
