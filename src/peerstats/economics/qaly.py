"""QALYs by the area under the utility curve between assessment times.

Each participant's utilities are joined by straight lines between assessments (trapezoid rule;
Richardson & Manca 2004) on the time axis in days since randomisation, from the actual visit
dates when present, else the scheduled day; QALYs = area / 365.25. The participant's baseline
utility is returned beside the QALYs, to be a covariate of the cost-effectiveness regression
(Manca, Hawkins & Sculpher 2005: imbalance in baseline utility biases unadjusted QALY
differences).

Why our own code: the trapezoid rule is one line (numpy); the rules around it (dates, gaps,
discounting, bad values) are the point, and no library states them for trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from peerstats.exceptions import DataValidationError, ModelSpecificationError, SpecError

__all__ = ["qalys", "DAYS_PER_YEAR", "year_index"]

DAYS_PER_YEAR = 365.25


def year_index(days: np.ndarray) -> np.ndarray:
    """Whole years of follow-up completed before ``days`` (0 in the first 12 months)."""
    return np.maximum(np.ceil(np.asarray(days, dtype=float) / DAYS_PER_YEAR) - 1, 0)


def _days(data: pd.DataFrame, subject: str, time: str, date: str | None) -> pd.Series:
    """Days since randomisation: from the actual dates where both the visit's and the
    participant's first (baseline) date are known, else the scheduled ``time``."""
    scheduled = pd.to_numeric(data[time], errors="coerce")
    if date is None:
        return scheduled
    d = pd.to_datetime(data[date], errors="coerce")
    first = d.groupby(data[subject]).transform("min")
    actual = (d - first).dt.days.astype(float)
    return actual.where(actual.notna(), scheduled)


def _check(data, subject, utility, time, date):
    for name, col in {"subject": subject, "utility": utility, "time": time, "date": date}.items():
        if col is not None and col not in data.columns:
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )
    u = pd.to_numeric(data[utility], errors="coerce")
    bad = u > 1
    if bad.any():
        f = pd.DataFrame({"table": "qalys", "row": data.index[bad], "column": utility,
                          "value": u[bad], "check": "utility_above_1",
                          "message": "a utility above 1 (full health): no EQ-5D value set gives "
                                     "one; check the scoring"})  # fmt: skip
        raise DataValidationError(f, context="utilities for QALYs")


def _auc(t: np.ndarray, u: np.ndarray, rate: float) -> float:
    """Trapezoid area (days x utility) with each segment discounted by its midpoint's year."""
    if len(t) < 2:
        return np.nan
    mid = (t[1:] + t[:-1]) / 2
    factor = (1 + rate) ** -np.floor(mid / DAYS_PER_YEAR)
    return float(np.sum((u[1:] + u[:-1]) / 2 * np.diff(t) * factor))


def _by_subject(frame: pd.DataFrame):
    """(subject, t, u) per participant of ``frame`` (columns s, t, u), in the order of
    ``frame.groupby("s", sort=False)``: first appearance; each participant's rows in frame
    order. The arrays are slices of two float arrays (no data frame per participant)."""
    codes, uniques = pd.factorize(frame["s"], sort=False)  # a missing subject: -1, dropped
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    t = frame["t"].to_numpy(float)[order]
    u = frame["u"].to_numpy(float)[order]
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(order)]
    for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        if b > a:
            yield uniques[k], t[a:b], u[a:b]


def qalys(
    data: pd.DataFrame,
    *,
    subject: str,
    utility: str,
    time: str,
    date: str | None = None,
    discount_rate: float = 0.0,
) -> pd.DataFrame:
    """Quality-adjusted life years per participant, by the area under the utility curve.

    Parameters
    ----------
    data : DataFrame
        Long data, one row per participant and assessment (baseline included).
    subject, utility : str
        Columns: participant id; utility (e.g. from :func:`peerstats.eq5d`).
    time : str
        Scheduled day of the assessment since randomisation (0 at baseline).
    date : str, optional
        Actual assessment dates; used (days since the participant's first assessment) wherever
        present, the scheduled day elsewhere.
    discount_rate : float
        Annual rate for QALYs accrued beyond the first 12 months (e.g. 0.035 NICE, 0.03 Sweden
        TLV and Denmark): a segment is discounted by (1 + r)^-y, y the whole years completed at
        its midpoint. Default 0.

    Returns
    -------
    DataFrame
        Indexed by ``subject``: ``qaly``, ``baseline_utility`` (the utility at the earliest
        assessment, for the Manca adjustment), ``follow_up_days``, ``n_assessments``.

    Notes
    -----
    QALY_i = sum_j (u_ij + u_i,j+1) / 2 (t_i,j+1 - t_ij) / 365.25. Rules: a participant with a
    missing utility at any of their assessments, or with fewer than two, gets a missing QALY
    (nothing is interpolated over a gap; impute, then compute); a utility above 1 raises
    :class:`~peerstats.exceptions.DataValidationError`. Checked against hand-computed areas
    (tests/economics/test_qaly_costs.py) and R (``cea_sur.R`` uses the QALYs of MenSS as given).
    """
    if not 0 <= discount_rate < 1:
        raise SpecError(f"discount_rate must be in [0, 1), got {discount_rate!r}")
    _check(data, subject, utility, time, date)
    days = _days(data, subject, time, date)
    frame = pd.DataFrame({"s": data[subject].to_numpy(), "t": days.to_numpy(),
                          "u": pd.to_numeric(data[utility], errors="coerce").to_numpy()})  # fmt: skip
    rows = {}
    for s, t, u in _by_subject(frame.sort_values(["s", "t"], kind="mergesort")):
        ok = np.isfinite(t).all() and np.isfinite(u).all()
        area = _auc(t, u, discount_rate) if ok else np.nan
        rows[s] = (area / DAYS_PER_YEAR, u[0] if len(u) else np.nan, t[-1] - t[0], len(t))
    out = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["qaly", "baseline_utility", "follow_up_days", "n_assessments"],
    )
    out.index.name = subject
    return out
