"""Helpers shared by the describe and figures layers: reading a Trial duck-typed.

A *trial-like* object is a :class:`peerstats.Trial` or any object with ``.participants``,
``.assessments`` and ``.spec``; the spec may be a ``TrialSpec`` or a plain dict with the same
keys as the YAML trial spec (see ``docs/CONTRACTS.md``). Tests build small frames by hand and
pass a ``types.SimpleNamespace``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import DataValidationError

__all__ = [
    "spec_get",
    "arm_levels",
    "reference_arm",
    "visit_levels",
    "outcome_names",
    "group_delivered_arms",
    "covariate_names",
    "is_single_arm",
    "as_frames",
    "require_columns",
]


def spec_get(spec: Any, *keys: str, default: Any = None) -> Any:
    """Read ``spec.<k1>.<k2>...`` from a TrialSpec (attributes) or a dict (keys)."""
    obj = spec
    for key in keys:
        if obj is None:
            return default
        if isinstance(obj, dict):
            obj = obj.get(key)
        else:
            obj = getattr(obj, key, None)
    return default if obj is None else obj


def _levels_from(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(x) for x in series.cat.categories]
    return sorted(str(x) for x in series.dropna().unique())


def arm_levels(trial: Any) -> list[str]:
    """Arm levels in spec order (reference first); from the data when the spec has none."""
    levels = spec_get(trial.spec, "arms", "levels")
    if levels:
        levels = [str(x) for x in levels]
        ref = reference_arm(trial, levels)
        if ref is not None and ref in levels:
            levels = [ref] + [x for x in levels if x != ref]
        return levels
    part = trial.participants
    if "arm" in part.columns:
        return _levels_from(part["arm"])
    return _levels_from(trial.assessments["arm"])


def reference_arm(trial: Any, levels: Sequence[str] | None = None) -> str | None:
    """The reference (control) arm from the spec, else the first level."""
    ref = spec_get(trial.spec, "arms", "reference")
    if ref is not None:
        return str(ref)
    if levels:
        return str(levels[0])
    return None


def visit_levels(trial: Any) -> list[str]:
    """Visits in order; the first is baseline."""
    visits = spec_get(trial.spec, "visits")
    if visits:
        return [str(v) for v in visits]
    a = trial.assessments
    if a is not None and "visit" in a.columns:
        return _levels_from(a["visit"])
    return []


def outcome_names(trial: Any) -> list[str]:
    """Outcome names in spec order (the first is taken as the primary outcome)."""
    outcomes = spec_get(trial.spec, "outcomes")
    if outcomes:
        if isinstance(outcomes, dict):
            return [str(k) for k in outcomes]
        names = []
        for o in outcomes:
            names.append(str(getattr(o, "name", o)))
        return names
    return []


def outcome_info(trial: Any, outcome: str) -> dict[str, Any]:
    """The spec entry of one outcome as a dict (min, max, higher_is_better, instrument...)."""
    outcomes = spec_get(trial.spec, "outcomes") or {}
    if isinstance(outcomes, dict):
        entry = outcomes.get(outcome, {})
    else:
        entry = next((o for o in outcomes if getattr(o, "name", None) == outcome), {})
    if isinstance(entry, dict):
        return dict(entry)
    if hasattr(entry, "__dataclass_fields__"):
        return {k: getattr(entry, k) for k in entry.__dataclass_fields__}
    return dict(getattr(entry, "__dict__", {}))


def group_delivered_arms(trial: Any) -> list[str]:
    """Arms delivered in groups (cluster extension of CONSORT)."""
    arms = spec_get(trial.spec, "arms", "group_delivered") or []
    return [str(a) for a in arms]


def covariate_names(trial: Any) -> list[str]:
    """Baseline characteristics listed in the spec."""
    return [str(c) for c in (spec_get(trial.spec, "covariates") or [])]


def is_single_arm(trial: Any) -> bool:
    """True for a single-arm (feasibility) design."""
    design = spec_get(trial.spec, "trial", "design") or spec_get(trial.spec, "design")
    if design is not None:
        return str(design) == "single-arm"
    return len(arm_levels(trial)) == 1


def as_frames(trial: Any) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Participants and assessments of a trial-like object (copies are not made)."""
    try:
        part = trial.participants
    except AttributeError as exc:
        raise TypeError(
            "expected a Trial or an object with .participants, .assessments and .spec; "
            f"got {type(trial).__name__}"
        ) from exc
    return part, getattr(trial, "assessments", None)


def randomised_mask(part: pd.DataFrame) -> pd.Series:
    """Boolean mask of randomised (enrolled) rows; all rows when there is no column."""
    if "randomised" not in part.columns:
        return pd.Series(True, index=part.index)
    return part["randomised"].fillna(0).astype(float).astype(bool)


def flag(series: pd.Series) -> pd.Series:
    """A 0/1 (or bool, yes/no) column as a nullable boolean Series."""
    if series.dtype == bool:
        return series.astype("boolean")
    s = series
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        m = s.astype("string").str.strip().str.lower()
        from peerstats.io.coerce import NO, YES  # one yes/no vocabulary (issue 21)

        mapped = m.map({**dict.fromkeys(YES, True), **dict.fromkeys(NO, False)})
        return mapped.astype("boolean")
    return s.map(lambda v: np.nan if pd.isna(v) else bool(v)).astype("boolean")


#: Message of a missing column (``{c}`` the column, ``{cols}`` the columns there are).
NOT_A_COLUMN = "{c!r} is not a column; columns are {cols}"


def data_error(
    table: str, check: str, message: str, *, column: str | None = None, **context: Any
) -> DataValidationError:
    """A :class:`DataValidationError` of one problem (``table, column, check, message``)."""
    row = {"table": table, **({} if column is None else {"column": column})}
    row.update({"check": check, "message": message})
    return DataValidationError(pd.DataFrame([row]), **context)


def not_an_outcome(outcome: str) -> DataValidationError:
    """The error of an outcome that is not a column of the assessments."""
    return data_error(
        "assessments", "missing_column", f"{outcome!r} is not an outcome column", column=outcome
    )


def require_columns(
    data: pd.DataFrame,
    columns: Sequence[str],
    table: str,
    *,
    message: str = "column {c!r} is required; columns are {cols}",
) -> None:
    """Raise DataValidationError listing every missing column (``message`` is formatted with
    the column ``c`` and the list of columns ``cols``)."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        cols = list(data.columns)
        rows = [
            {"table": table, "column": c, "check": "missing_column",
             "message": message.format(c=c, cols=cols)}
            for c in missing
        ]  # fmt: skip
        raise DataValidationError(pd.DataFrame(rows))
