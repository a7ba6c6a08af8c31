"""Values: numbers, ranges, whole numbers, yes/no columns, labels and covariates.

Checks: ``non_numeric`` (one failure with a count for a column of decimal-comma numbers),
``out_of_range`` (declared ranges, default plausible ranges such as age, implausibly large
numbers), ``non_integer``, ``non_binary``, ``unknown_label`` (closest label suggested).
A value that cannot be coerced without changing it is a failure, never a silent ``NaN``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from peerstats._identifiers import mask_value
from peerstats.data.checks._log import Log, suggest
from peerstats.io.coerce import (
    DECIMAL_COMMA,
    NO,
    YES,
    column_values,
    parse_binary,
    parse_numbers,
)
from peerstats.io.coerce import labelled as _labelled
from peerstats.io.readers import RawTable

__all__ = [
    "DEFAULT_RANGES",
    "MAX_MAGNITUDE",
    "binary_column",
    "check_covariate",
    "check_labels",
    "default_range",
    "numeric_column",
    "text_or_numeric",
]


def _parse_binary(values: list, vocab: tuple | None = None) -> tuple[list, list[int]]:
    return parse_binary(values, *(vocab or (YES, NO)))


#: largest magnitude of an outcome without a declared range (beyond it doubles no longer
#: hold whole numbers exactly and sums of squares overflow)
MAX_MAGNITUDE = 1e15


def numeric_column(
    t: RawTable,
    col: str,
    log: Log,
    decimal: str,
    lo: float | None,
    hi: float | None,
    what: str,
    cell_cols: list[str] | None = None,
    integer: bool = False,
) -> np.ndarray:
    """Strictly parse a score/item column; ``cell_cols`` names the file column of each row
    (wide files: ``<column><sep><visit>``)."""
    vals = t.data[col].tolist()
    out, bad = parse_numbers(vals, decimal)
    where = cell_cols or [col] * len(vals)
    _non_numeric(t, vals, bad, where, log, what)
    low = out < lo if lo is not None else np.zeros(len(out), bool)
    high = out > hi if hi is not None else np.zeros(len(out), bool)
    if lo is None or hi is None:  # no declared range: still a number the models can square
        huge = np.isfinite(out) & (np.abs(out) > MAX_MAGNITUDE) & ~(low | high)
        _each(
            t,
            log,
            huge,
            where,
            vals,
            "out_of_range",
            lambda v: (
                f"{what} {v} is implausibly large (beyond ±{MAX_MAGNITUDE:g}, where the "
                "models lose precision); declare min/max or correct the value"
            ),
        )
    if integer:
        _non_integer(t, out, vals, where, log, what)
    rng = f" {lo:g} to {hi:g}" if lo is not None and hi is not None else ""
    outside = np.isfinite(out) & (low | high)
    _each(
        t,
        log,
        outside,
        where,
        vals,
        "out_of_range",
        lambda v: f"{what} {v} is outside the declared range{rng}",
    )
    return out


def _non_numeric(t: RawTable, vals: list, bad: list, where: list, log: Log, what: str) -> None:
    """Values that are not numbers; several decimal-comma numbers are one failure with a
    count, not the same hint on every cell."""
    comma = [i for i in bad if re.fullmatch(r"[+-]?\d+,\d+", vals[i])]
    if len(comma) > 1:
        first = comma[0]
        log.cell(
            t,
            first,
            where[first],
            vals[first],
            "non_numeric",
            f"{what}: {len(comma)} values are numbers with a decimal comma (first "
            f"{mask_value(vals[first])!r}, row {t.rows[first]}); set decimal: ',' for this "
            "file in the spec",
        )
        bad = [i for i in bad if i not in set(comma)]
    for i in bad:
        hint = (
            " (decimal comma? set decimal: ',' for this file in the spec)"
            if re.fullmatch(r"[+-]?\d+,\d+", vals[i])
            else ""
        )
        log.cell(
            t,
            i,
            where[i],
            vals[i],
            "non_numeric",
            f"{what} {mask_value(vals[i])!r} is not a number{hint}",
        )


def _non_integer(
    t: RawTable, nums: np.ndarray, vals: list, where: list, log: Log, what: str
) -> None:
    not_whole = np.isfinite(nums) & (nums != np.round(nums))
    _each(
        t, log, not_whole, where, vals, "non_integer", lambda v: f"{what} {v} is not a whole number"
    )


def _each(
    t: RawTable,
    log: Log,
    mask: np.ndarray,
    where: list,
    vals: list,
    check: str,
    message: Any,
) -> None:
    """One failure per flagged cell; ``message`` makes the text from the masked value."""
    for i in np.flatnonzero(mask):
        log.add(t.name, t.rows[i], where[i], vals[i], check, message(mask_value(vals[i])))


def binary_column(t: RawTable, col: str, log: Log, what: str, vocab: tuple | None = None) -> list:
    """A yes/no column read by one vocabulary for every binary column (the spec's
    ``binary: {yes: [...], no: [...]}``, else :data:`~peerstats.io.coerce.YES`/``NO``)."""
    vals = _labelled(t, col) if t.value_labels.get(col) else t.data[col].tolist()
    out, bad = _parse_binary(t.data[col].tolist(), vocab)
    if t.value_labels.get(col):  # SPSS 1 = 'ja': the code or its label
        out2, bad2 = _parse_binary(vals, vocab)
        out = [a if a is not None else b for a, b in zip(out, out2, strict=True)]
        bad = [i for i in bad if i in set(bad2)]
    yes, no = vocab or (YES, NO)
    for i in bad:
        log.cell(
            t,
            i,
            col,
            vals[i],
            "non_binary",
            f"{what} must be yes or no ({'/'.join(yes[:6])} or {'/'.join(no[:6])}), not "
            f"{mask_value(vals[i])!r}; correct the value, or declare the words under "
            "binary: {yes: [...], no: [...]} in the trial spec",
        )
    return out


def check_labels(t: RawTable, col: str, valid: list[str], log: Log, what: str) -> list:
    vals = _labelled(t, col, valid)
    for i, v in enumerate(vals):
        if v is not None and v not in valid:
            log.add(t.name, t.rows[i], col, v, "unknown_label", suggest(v, valid, what))
    return vals


def text_or_numeric(
    t: RawTable, col: str, decimal: str, log: Log | None, what: str, decl: Any = None
) -> pd.Series:
    """An extra column: categorical when labelled (or declared a category), numeric when
    every value is a number (or declared a number), else text. For covariates (``log``
    given) the values are checked: see :func:`check_covariate`."""
    if log is not None:
        check_covariate(t, col, decimal, log, what, decl)
    kind = decl.type if decl is not None else None
    return column_values(t, col, decimal, kind, decl.levels if decl is not None else None)


def _comma_hint(value: str, decimal: str) -> str:
    if decimal != "," and DECIMAL_COMMA.match(value):
        return " (decimal comma? set decimal: ',' for this file in the spec)"
    return ""


#: plausible ranges of demographic columns nobody declared (issue 24.9: ages of -5 and 250
#: passed); a declared ``min``/``max`` replaces them
_AGE = re.compile(r"^(age|ålder|alder|ikä|ika|aldur)([ _]?(years?|yrs|år|ar|vuotta|ár))?$", re.I)


DEFAULT_RANGES = ((_AGE, 0.0, 120.0, "an age in years"),)


def default_range(col: str) -> tuple[float, float, str] | None:
    """The plausible default range of a demographic column, by its name, or None."""
    for rx, lo, hi, what in DEFAULT_RANGES:
        if rx.match(col.strip()):
            return lo, hi, what
    return None


def _check_default_range(
    t: RawTable, col: str, nums: np.ndarray, vals: list, log: Log, what: str
) -> None:
    found = default_range(col)
    if found is None:
        return
    lo, hi, kind = found
    implausible = np.isfinite(nums) & ((nums < lo) | (nums > hi))
    _each(
        t,
        log,
        implausible,
        [col] * len(vals),
        vals,
        "out_of_range",
        lambda v: (
            f"{what} {v} is not plausible as {kind} ({lo:g} to {hi:g}); correct it, or "
            f"declare the range: covariates: {{{col}: {{min: ..., max: ...}}}}"
        ),
    )


def check_covariate(
    t: RawTable, col: str, decimal: str, log: Log, what: str, decl: Any = None
) -> None:
    """Covariates must be clean: a declared type and range (``covariates: {age: {type:
    number, min: 16, max: 110}}``) is checked cell by cell; undeclared, a column of numbers
    with a few non-numbers (>= 80 % numeric) is a failure rather than silently text, and so is
    a column of mostly decimal-comma numbers in a file read with ``decimal: '.'`` (it would
    become a category per value)."""
    vals = _labelled(t, col)
    if decl is not None and decl.type == "category":
        if decl.levels is not None:
            check_labels(t, col, list(decl.levels), log, f"a level of {what}")
        return
    if t.value_labels.get(col):
        return
    nums, bad = parse_numbers(vals, decimal)
    n = sum(v is not None for v in vals)
    if not n:
        return
    if decl is None and _undeclared_text(t, col, vals, bad, n, decimal, log, what):
        return
    for i in bad:
        log.cell(
            t,
            i,
            col,
            vals[i],
            "non_numeric",
            f"{what} {mask_value(vals[i])!r} is not a number"
            + (" (the other values are)" if decl is None else "")
            + _comma_hint(vals[i], decimal),
        )
    if decl is None or (decl.min is None and decl.max is None):
        _check_default_range(t, col, nums, vals, log, what)
    if decl is None:
        return
    if decl.type == "integer":
        _non_integer(t, nums, vals, [col] * len(vals), log, what)
    _outside_declared(t, col, nums, vals, decl.min, decl.max, log, what)


def _undeclared_text(
    t: RawTable, col: str, vals: list, bad: list, n: int, decimal: str, log: Log, what: str
) -> bool:
    """An undeclared covariate that is text (True): mostly decimal-comma numbers (one
    failure with a count) or more than 20 % non-numbers (a text column, no failure)."""
    comma = [i for i in bad if decimal != "," and DECIMAL_COMMA.match(vals[i])]
    if comma and len(bad) - len(comma) <= 0.2 * n:
        i = comma[0]
        log.cell(
            t,
            i,
            col,
            vals[i],
            "non_numeric",
            f"{what}: {len(comma)} of {n} values are numbers with a decimal comma (e.g. "
            f"{mask_value(vals[i])!r}), read as text; set decimal: ',' for this file in the "
            "spec",
        )
        return True
    return len(bad) > 0.2 * n


def _outside_declared(
    t: RawTable,
    col: str,
    nums: np.ndarray,
    vals: list,
    lo: float | None,
    hi: float | None,
    log: Log,
    what: str,
) -> None:
    low = nums < lo if lo is not None else np.zeros(len(nums), bool)
    high = nums > hi if hi is not None else np.zeros(len(nums), bool)
    rng = f"{'-inf' if lo is None else f'{lo:g}'} to {'inf' if hi is None else f'{hi:g}'}"
    outside = np.isfinite(nums) & (low | high)
    _each(
        t,
        log,
        outside,
        [col] * len(vals),
        vals,
        "out_of_range",
        lambda v: f"{what} {v} is outside the declared range {rng}",
    )
