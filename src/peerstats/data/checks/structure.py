"""Structure: the tables and their columns are there, keys are filled and not repeated.

Checks: ``missing_column``, ``missing_value`` (a key is empty), ``duplicate_subject``,
``duplicate_subject_visit``, ``duplicate_subject_session``, and the adverse-event table's
columns (``unreadable``, ``missing_column``, ``not_binary``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np

from peerstats._identifiers import mask_value
from peerstats.data.checks._log import Log
from peerstats.data.trial_spec import TrialSpec
from peerstats.io.readers import RawTable, ReadError, read_table

__all__ = ["adverse_events", "duplicates", "missing_key", "require"]


def require(t: RawTable, columns: Iterable[tuple[str, str]], log: Log) -> bool:
    ok = True
    present = list(t.data.columns)
    for col, role in columns:
        if col not in present:
            close = difflib.get_close_matches(col, present, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if len(present) == 1:  # one column: the file was split on the wrong delimiter
                seen = [d for d in (";", "\t", "|", ",") if d in present[0]]
                if seen:
                    shown = "\\t" if seen[0] == "\t" else seen[0]
                    hint += (
                        f"; the file was read as one column and its header contains "
                        f"{shown!r}: set delimiter: {shown!r} for this file in the spec"
                    )
            listed = present[:30]
            more = f" and {len(present) - 30} more" if len(present) > 30 else ""
            log.column(
                t,
                col,
                "missing_column",
                f"{role} column {col!r} is not in {t.path.name}{hint}. Columns are {listed}{more}.",
            )
            ok = False
    return ok


def missing_key(t: RawTable, col: str, log: Log, what: str) -> None:
    for i in np.flatnonzero(t.data[col].isna().to_numpy()):
        log.add(t.name, t.rows[i], col, None, "missing_value", f"{what} is empty")


def duplicates(t: RawTable, keys: list[str], log: Log, check: str, what: str) -> np.ndarray:
    """Flag every repeat of a key (after its first row); returns the mask of repeated rows."""
    frame = t.data[keys]
    dup = frame.duplicated(keep="first").to_numpy() & frame.notna().all(axis=1).to_numpy()
    if dup.any():
        first_row = {}
        for i, key in enumerate(map(tuple, frame.itertuples(index=False, name=None))):
            first_row.setdefault(key, t.rows[i])
        for i in np.flatnonzero(dup):
            key = tuple(frame.iloc[i])
            shown = " x ".join(repr(mask_value(k)) for k in key)
            log.cell(
                t, i, keys[0], key[0], check, f"{what} {shown} already on row {first_row[key]}"
            )
    return dup


def adverse_events(spec: TrialSpec, log: Log) -> None:
    """The adverse-event table is readable and has its mapped columns (``adverse_event_columns``),
    with ``serious`` 0/1: the harms table of ``run`` needs them."""
    try:
        t = read_table(spec.adverse_events, "adverse_events")
    except ReadError as exc:
        log.add("adverse_events", None, None, None, "unreadable", str(exc))
        return
    cols = spec.adverse_event_columns
    for role, col in cols.items():
        if col not in t.data.columns:
            log.add(
                "adverse_events",
                None,
                col,
                None,
                "missing_column",
                f"the adverse-event table has no column {col!r} ({role}); its columns are "
                f"{list(t.data.columns)}. Map them in the trial spec: adverse_event_columns: "
                "{subject: ..., event: ..., serious: ...}",
            )
    serious = cols["serious"]
    if serious in t.data.columns:
        for i, v in enumerate(t.data[serious].tolist()):
            if str(v).strip() not in ("0", "1", "0.0", "1.0", "True", "False", "true", "false"):
                log.add(
                    "adverse_events",
                    t.rows[i],
                    serious,
                    v,
                    "not_binary",
                    f"{serious} (serious) must be 0 or 1",
                )
