"""Identifiers and privacy: nothing that names a person reaches the outputs.

Checks: ``privacy`` (personnummer, samordningsnummer, CPR, e-mail, phone numbers, dates of
birth, in headers, value labels and cells of a column not listed under ``drop:``; masked in
place with a warning in a ``free_text:`` column), ``control_character``. The patterns live in
:mod:`peerstats._identifiers`, which every layer uses to mask what it shows.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from peerstats._identifiers import (
    CONTROL_CHARS,
    birth_date_column,
    escape_controls,
    looks_identifying,
    mask_identifiers,
    mask_value,
)
from peerstats.data.checks._log import Log
from peerstats.io.coerce import LEADING_ZERO, NUMBER
from peerstats.io.readers import RawTable

__all__ = ["birth_dates", "privacy"]


def _is_numeric_column(vals: list) -> bool:
    """Every value a plain number (no leading-zero codes): reaches outputs only as summaries."""
    present = [v for v in vals if v is not None]
    return bool(present) and all(NUMBER.match(v) and not LEADING_ZERO.match(v) for v in present)


def privacy(t: RawTable, log: Log, free_text: Iterable[str], warnings: list[str]) -> None:
    """Control characters and direct identifiers, in headers and cells.

    A header that looks like an identifier is a failure (its name is masked wherever it is
    shown). In a text column (any value not a plain number) every cell holding an identifier,
    strong or weak, alone or inside text, is a failure naming its row -- or, in a column listed
    under ``free_text:``, is masked in place and reported as a warning. A column of numbers is
    flagged when it holds a strong identifier or when at least half its values are weak ones
    (a 10-digit number may look like a CPR number by chance)."""
    free_text = set(free_text)
    _headers(t, log)
    _value_labels(t, log)
    birth_dates(t, log)
    for col in t.data.columns:
        vals = t.data[col].tolist()
        _control_characters(t, col, vals, log)
        _identifier_cells(t, col, vals, log, col in free_text, warnings)


def _headers(t: RawTable, log: Log) -> None:
    """A header with a control character, or that looks like an identifier."""
    for col in t.data.columns:
        if CONTROL_CHARS.search(col):
            log.column(
                t, col, "control_character", "a column header holds a control character; remove it"
            )
        kind = looks_identifying(col)
        if kind is not None:
            log.column(
                t,
                col,
                "privacy",
                f"a column header looks like a {kind[0]}; rename the column (headers are "
                "shown in tables and messages)",
            )


def _value_labels(t: RawTable, log: Log) -> None:
    """SPSS/Stata value labels reach tables as levels: none may hold an identifier or a
    control character."""
    for col, labels in t.value_labels.items():
        for code, label in labels.items():
            kind = looks_identifying(str(label))
            if kind is not None or CONTROL_CHARS.search(str(label)):
                log.add(
                    t.name,
                    None,
                    col,
                    label,
                    "privacy" if kind is not None else "control_character",
                    f"the value label of code {mask_value(code)!r} holds "
                    + (f"a {kind[0]}" if kind is not None else "a control character")
                    + "; correct the label in the data file",
                )


def _control_characters(t: RawTable, col: str, vals: list, log: Log) -> None:
    if not any(CONTROL_CHARS.search(v) for v in set(vals) if v is not None):
        return  # each distinct value searched once (issue 22: most columns repeat values)
    for i, v in enumerate(vals):
        if v is not None and CONTROL_CHARS.search(v):
            log.cell(
                t,
                i,
                col,
                v,
                "control_character",
                f"the cell holds a control character "
                f"({escape_controls(CONTROL_CHARS.search(v).group(0))}); remove it",
            )


def _identifier_cells(
    t: RawTable, col: str, vals: list, log: Log, free_text: bool, warnings: list[str]
) -> None:
    """Cells holding an identifier: masked in a participants free-text column, one failure
    for a column of identifiers, else one failure per cell."""
    hits = []
    n = strong = 0
    kinds: dict[str, tuple[str, bool] | None] = {}  # each distinct value classified once
    for i, v in enumerate(vals):
        if v is None:
            continue
        n += 1
        if v in kinds:
            kind = kinds[v]
        else:
            kind = kinds[v] = looks_identifying(v)
        if kind is not None:
            hits.append((i, kind))
            strong += kind[1]
    if not hits:
        return
    if free_text and t.name == "participants":
        masked = [mask_identifiers(v) if v is not None else None for v in vals]
        t.data[col] = pd.Series(masked, dtype=object)
        warnings.append(
            f"{t.name}: {len(hits)} identifier(s) masked in the free-text column "
            f"{mask_identifiers(col)!r} (rows {[int(t.rows[i]) for i, _ in hits][:10]})"
        )
        return
    numeric = _is_numeric_column(vals)
    if numeric or len(hits) >= max(2, 0.5 * n):
        if numeric and not strong and len(hits) < max(1, 0.5 * n):
            return  # a few numbers that happen to look like CPR numbers
        i, kind = hits[0]
        log.cell(
            t,
            i,
            col,
            vals[i],
            "privacy",
            f"column {col!r} looks like it holds {kind[0]} values ({len(hits)} of {n} "
            f"values, e.g. {mask_value(vals[i])!r}); remove the column or list it under "
            "drop:",
        )
        return
    hint = (
        "; or, for a free-text column, list it under free_text: to mask identifiers on load"
        if t.name == "participants"
        else ""
    )
    for i, kind in hits:
        log.cell(
            t,
            i,
            col,
            vals[i],
            "privacy",
            f"the cell holds a {kind[0]} ({mask_value(vals[i])!r}); identifiers must not "
            f"reach the outputs: remove it from the data{hint}",
        )


def birth_dates(t: RawTable, log: Log) -> None:
    """A date-of-birth column is a direct identifier (with a personal number it names a
    person): one failure per column, naming the fix (issue 21)."""
    for col in t.data.columns:
        vals = t.data[col].tolist()
        if birth_date_column(col, vals):
            n = sum(v is not None for v in vals)
            log.column(
                t,
                col,
                "privacy",
                f"column {col!r} holds dates of birth ({n} values), a direct identifier; only "
                "age (or an age band) may reach the outputs: compute age in the data and list "
                f"{col!r} under drop: in the trial spec",
            )
