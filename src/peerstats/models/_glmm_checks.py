"""Input checks of peerstats.glmm: outcome values, offsets, empty arms, separation (internal).

Every problem raises; nothing is dropped or recoded silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from peerstats.exceptions import ConvergenceError, DataValidationError, ModelSpecificationError

__all__ = [
    "data_error",
    "outcome_values",
    "offset_values",
    "check_empty_levels",
    "separation",
    "numeric_column",
]


def data_error(column: str, index, values, check: str, message: str) -> DataValidationError:
    """A DataValidationError listing the offending rows of ``column``."""
    failures = pd.DataFrame(
        {
            "table": "data",
            "row": list(index),
            "column": column,
            "value": list(values),
            "check": check,
            "message": message,
        }
    )
    return DataValidationError(failures, context=message)


def outcome_values(family, design, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y, trials): for the binomial, successes and trials; else counts and ones."""
    y = design.y
    idx = design.data.index
    name = design.outcome
    if family.name == "binomial":
        if np.any(weights <= 0):
            raise ModelSpecificationError("binomial weights (numbers of trials) must be > 0")
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise data_error(
                name,
                idx[bad],
                y[bad],
                "binary",
                f"outcome {name!r} of a binomial model must be 0/1 (or a proportion "
                "with weights= the number of trials); values outside [0, 1] found",
            )
        k = y * weights
        frac = np.abs(k - np.round(k)) > 1e-8
        if frac.any():
            what = (
                "0 or 1"
                if np.all(weights == 1)
                else "a proportion k / n with weights = n (so that k is a whole number)"
            )
            raise data_error(
                name,
                idx[frac],
                y[frac],
                "binary",
                f"outcome {name!r} of a binomial model must be {what}",
            )
        return np.round(k), weights.astype(float)
    neg = y < 0
    frac = np.abs(y - np.round(y)) > 1e-8
    if neg.any() or frac.any():
        bad = neg | frac
        raise data_error(
            name,
            idx[bad],
            y[bad],
            "count",
            f"outcome {name!r} of a {family.name} model must be a count "
            "(non-negative whole numbers); negative or fractional values found",
        )
    return y.astype(float), np.ones_like(y, dtype=float)


def numeric_column(name: str, column: str, data: pd.DataFrame) -> np.ndarray:
    """The column ``name=column`` of ``data`` as floats (NaN where not a number)."""
    if column not in data.columns:
        raise ModelSpecificationError(
            f"{name}={column!r} is not a column of data; columns are {list(data.columns)}"
        )
    return pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)


def offset_values(offset, exposure, data: pd.DataFrame, rows: np.ndarray, n_all: int):
    """The offset on the analysed rows (log(exposure) for ``exposure=``), checked."""
    if offset is not None and exposure is not None:
        raise ModelSpecificationError(
            "give offset= (on the linear-predictor scale) or "
            "exposure= (on the count's scale), not both"
        )
    arg, name = (offset, "offset") if offset is not None else (exposure, "exposure")
    if arg is None:
        return np.zeros(len(rows)), None
    if isinstance(arg, str):
        col = numeric_column(name, arg, data)
        label = arg
    else:
        col = np.asarray(arg, dtype=float).ravel()
        if len(col) != n_all:
            raise ModelSpecificationError(f"{name} has {len(col)} values for {n_all} rows of data")
        label = name
    v = col[rows]
    idx = data.index[rows]
    if np.isnan(v).any():
        bad = np.isnan(v)
        raise data_error(
            label,
            idx[bad],
            v[bad],
            name,
            f"{name} {label!r} is missing on {int(bad.sum())} analysed row(s); "
            "peerstats does not drop them silently",
        )
    if name == "exposure":
        bad = v <= 0
        if bad.any():
            raise data_error(
                label,
                idx[bad],
                v[bad],
                name,
                f"exposure {label!r} must be > 0 (zero or negative follow-up on "
                f"{int(bad.sum())} row(s))",
            )
        return np.log(v), label
    if not np.isfinite(v).all():
        bad = ~np.isfinite(v)
        raise data_error(
            label,
            idx[bad],
            v[bad],
            name,
            f"offset {label!r} is not finite on {int(bad.sum())} row(s) (log of a zero exposure?)",
        )
    return v, label


def check_empty_levels(design, y: np.ndarray, trials: np.ndarray, family) -> None:
    """An arm (factor level) with no events, or only events, has no finite ML estimate."""
    for v, levels in design.factors.items():
        col = design.data[v].astype(str).to_numpy()
        for lev in levels:
            sel = col == str(lev)
            events = y[sel].sum()
            if events == 0:
                kind = "no events (all outcomes 0)"
            elif family.name == "binomial" and events == trials[sel].sum():
                kind = "only events (all outcomes 1)"
            else:
                continue
            raise ConvergenceError(
                f"level {lev!r} of {v!r} has {kind} in the {int(sel.sum())} analysed rows: its "
                "coefficient has no finite maximum-likelihood estimate (quasi-complete "
                "separation). Report the counts descriptively, use an exact or penalised "
                "(Firth) method, or merge levels; peerstats does not fit it silently"
            )


def separation(X: np.ndarray, y: np.ndarray, trials: np.ndarray, columns) -> None:
    """Linear-programming test of (quasi-)complete separation (Konis 2007, R detectseparation).

    Separation exists iff some ``b != 0`` has ``x_i b >= 0`` where every trial succeeded,
    ``x_i b <= 0`` where every trial failed and ``x_i b = 0`` elsewhere; we maximise the total
    margin with ``-1 <= b <= 1`` and raise when it is positive.
    """
    from scipy.optimize import linprog

    all1 = y >= trials
    all0 = y <= 0
    mixed = ~(all1 | all0)
    sgn = np.where(all1, 1.0, -1.0)
    A = X[~mixed] * sgn[~mixed][:, None]
    c = -A.sum(axis=0)
    res = linprog(
        c,
        A_ub=-A,
        b_ub=np.zeros(len(A)),
        A_eq=X[mixed] if mixed.any() else None,
        b_eq=np.zeros(int(mixed.sum())) if mixed.any() else None,
        bounds=[(-1, 1)] * X.shape[1],
        method="highs",
    )
    if res.status == 0 and -res.fun > 1e-7 * max(1.0, len(A)):
        b = res.x
        cols = [columns[j] for j in np.flatnonzero(np.abs(b) > 1e-6)]
        raise ConvergenceError(
            f"the outcome is separated by the fixed effects {cols}: a combination of them "
            "predicts every outcome exactly on one side, so the maximum-likelihood estimates "
            "are infinite (complete or quasi-complete separation; Albert & Anderson 1984, "
            "detected as in Konis 2007). Simplify the model, merge sparse levels or use a "
            "penalised (Firth) fit"
        )
