"""Wide -> long reshaping of assessments, driven by the spec.

A wide assessments file has one row per subject and columns ``<column><sep><visit>``, e.g.
``qpr_1_post``. :func:`wide_to_long` returns a long table with one row per subject x visit
(the full grid) whose row numbers point back to the wide file's row.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from peerstats.io.readers import RawTable

__all__ = ["wide_to_long", "split_wide_column"]


def split_wide_column(
    name: str, bases: list[str], visits: list[str], sep: str
) -> tuple[str, str] | None:
    """Split ``<base><sep><visit>`` into ``(base, visit)``; ``None`` when ``name`` is not of
    that form for any known base. The visit part may be unknown (caller checks it)."""
    for v in sorted(visits, key=len, reverse=True):
        suffix = f"{sep}{v}"
        if name.endswith(suffix) and name[: -len(suffix)] in bases:
            return name[: -len(suffix)], v
    for b in sorted(bases, key=len, reverse=True):
        prefix = f"{b}{sep}"
        if name.startswith(prefix) and sep not in name[len(prefix) :] and len(name) > len(prefix):
            return b, name[len(prefix) :]
    return None


def wide_to_long(
    table: RawTable,
    *,
    subject: str,
    visit: str,
    visits: list[str],
    bases: list[str],
    sep: str = "_",
) -> tuple[RawTable, list[dict]]:
    """Reshape a wide assessments table to long form.

    Parameters
    ----------
    table : RawTable
        The wide table as read.
    subject : str
        Subject column (kept as is).
    visit : str
        Name of the visit column to create.
    visits : list of str
        Visit labels in spec order.
    bases : list of str
        Column names expected per visit (score columns and item columns).
    sep : str
        Separator between base column name and visit.

    Returns
    -------
    long : RawTable
        One row per wide row x visit, visits in spec order within subject; ``rows`` repeat the
        wide row number. Columns: subject, visit, every base found, and the per-subject
        columns (not of the form ``<base><sep><visit>``).
    failures : list of dict
        ``unknown_label`` for columns whose visit part is not a visit; ``ambiguous_column`` for
        a column named like a base (or the visit column) without a visit suffix.
    """
    per_visit, constant, failures = _wide_columns(table, subject, visit, visits, bases, sep)
    long = _stack(table.data, subject, visit, visits, bases, per_visit, constant)
    rows = np.repeat(table.rows, len(visits))
    labels = {c: lab for c, lab in table.value_labels.items() if c in long.columns}
    for v in visits:
        for b, col in per_visit[v].items():
            if col in table.value_labels and b not in labels:
                labels[b] = table.value_labels[col]
    return (
        RawTable(table.name, table.path, long, rows, labels, list(table.blank_rows)),
        failures,
    )


def _failure(table: RawTable, col: str, value: str | None, check: str, message: str) -> dict:
    return dict(table=table.name, row=None, column=col, value=value, check=check, message=message)


def _wide_columns(
    table: RawTable, subject: str, visit: str, visits: list[str], bases: list[str], sep: str
) -> tuple[dict[str, dict[str, str]], list[str], list[dict]]:
    """Each wide column as (visit, base), or per-subject (constant); failures for columns
    without a visit suffix that should have one and for unknown visits."""
    failures: list[dict] = []
    per_visit: dict[str, dict[str, str]] = {v: {} for v in visits}  # visit -> base -> column
    constant: list[str] = []
    for col in table.data.columns:
        if col == subject:
            continue
        parts = split_wide_column(col, bases, visits, sep)
        if parts is None:
            if col in bases or col == visit:
                msg = (
                    f"column {col!r} has no visit suffix; in a wide file it must be "
                    f"{col}{sep}<visit> with a visit in {visits}"
                )
                failures.append(_failure(table, col, None, "ambiguous_column", msg))
            else:
                constant.append(col)
            continue
        base, v = parts
        if v in per_visit:
            per_visit[v][base] = col
        else:
            close = difflib.get_close_matches(v, visits, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            msg = f"{v!r} is not a visit{hint}; visits are {visits}."
            failures.append(_failure(table, col, v, "unknown_label", msg))
    return per_visit, constant, failures


def _stack(
    data: pd.DataFrame,
    subject: str,
    visit: str,
    visits: list[str],
    bases: list[str],
    per_visit: dict[str, dict[str, str]],
    constant: list[str],
) -> pd.DataFrame:
    """One row per wide row x visit, visits in spec order within each wide row."""
    n = len(data)
    frames = []
    found_bases = [b for b in bases if any(b in per_visit[v] for v in visits)]
    for k, v in enumerate(visits):
        part = {
            subject: data[subject].tolist() if subject in data.columns else [None] * n,
            visit: [v] * n,
        }
        for b in found_bases:
            col = per_visit[v].get(b)
            part[b] = data[col].tolist() if col is not None else [None] * n
        for c in constant:
            part[c] = data[c].tolist()
        f = pd.DataFrame(part, dtype=object)
        f["__order"] = np.arange(n) * len(visits) + k
        frames.append(f)
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    order = np.argsort(long["__order"].to_numpy(), kind="stable")
    return long.iloc[order].drop(columns="__order").reset_index(drop=True)
