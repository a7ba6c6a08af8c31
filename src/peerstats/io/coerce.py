"""Strict text -> value coercion of cells read by :mod:`peerstats.io.readers`.

Shared by :mod:`peerstats.data.validation` (which turns every value that would change into a
failure) and the assembly of the validated Trial (which uses the same rules to build its
columns), so that neither imports the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from peerstats.io.readers import RawTable

__all__ = [
    "parse_numbers",
    "parse_binary",
    "labelled",
    "column_values",
    "LEADING_ZERO",
    "NUMBER",
    "DECIMAL_COMMA",
    "YES",
    "NO",
]

#: codes with leading zeros ('01234', '007') are identifiers or codes, not numbers
LEADING_ZERO = re.compile(r"^[+-]?0\d")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: a number written with a decimal comma ('31,5')
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


#: yes/no words every binary column accepts (case-insensitive) unless the trial spec declares
#: its own (``binary: {yes: [...], no: [...]}``): English, Swedish, Danish/Norwegian, Finnish
YES = ("1", "1.0", "true", "yes", "y", "ja", "j", "sant", "sann", "sand", "kyllä")
NO = ("0", "0.0", "false", "no", "n", "nej", "nei", "falskt", "falsk", "ei")


def parse_binary(
    values: list, yes: Iterable[str] = YES, no: Iterable[str] = NO
) -> tuple[list, list[int]]:
    """Text -> True/False/None by the yes/no vocabulary (case-insensitive, surrounding space
    ignored); returns the values and the positions of texts in neither list (failures)."""
    yes_set = {str(v).strip().lower() for v in yes}
    no_set = {str(v).strip().lower() for v in no}
    out: list = []
    bad = []
    for i, v in enumerate(values):
        t = None if v is None else str(v).strip().lower()
        if t is None or t == "":
            out.append(None)
        elif t in yes_set:
            out.append(True)
        elif t in no_set:
            out.append(False)
        else:
            out.append(None)
            bad.append(i)
    return out, bad


def parse_numbers(values: list, decimal: str) -> tuple[np.ndarray, list[int]]:
    """Strict text -> float. Returns the floats (NaN for missing) and the positions of texts
    that are not numbers (they are failures, not NaN)."""
    parsed: dict[str | None, float | None] = {None: math.nan}  # each distinct text once
    out = []
    bad = []
    for i, v in enumerate(values):
        if v in parsed:
            x = parsed[v]
        else:
            x = parsed[v] = _number(v, decimal)
        if x is None:
            bad.append(i)
            x = math.nan
        out.append(x)
    return np.array(out, dtype=float), bad


def _number(v: str, decimal: str) -> float | None:
    """One text as a float; None when it is not a finite number."""
    t = v.replace(",", ".") if decimal == "," and v.count(",") == 1 and "." not in v else v
    x = float(t) if NUMBER.match(t) else math.nan
    return x if math.isfinite(x) else None  # '1e400' overflows to inf: not usable either


def labelled(table: RawTable, col: str, valid: Iterable[str] | None = None) -> list:
    """Values of ``col`` with value labels applied (a code that is itself valid is kept)."""
    vals = table.data[col].tolist()
    labels = table.value_labels.get(col)
    if not labels:
        return vals
    valid = set(valid or ())
    return [v if v is None or v in valid else labels.get(v, v) for v in vals]


def column_values(
    t: RawTable,
    col: str,
    decimal: str,
    kind: str | None = None,
    levels: Iterable[str] | None = None,
) -> pd.Series:
    """An extra column as the Trial holds it: categorical when value-labelled or declared a
    category (``kind='category'``, categories ``levels`` or sorted), numeric when every value
    is a number without leading zeros (or declared ``number``/``integer``), else text."""
    vals = t.data[col].tolist()
    labels = t.value_labels.get(col)
    if labels:
        lab = [None if v is None else labels.get(v, v) for v in vals]
        cats = list(dict.fromkeys([*labels.values(), *(v for v in lab if v is not None)]))
        return pd.Series(pd.Categorical(lab, categories=cats))
    if kind == "category":
        present = sorted({v for v in vals if v is not None}, key=str)
        cats = list(levels) if levels is not None else present
        known = set(cats)  # a label outside the levels is a validation failure already
        return pd.Series(pd.Categorical([v if v in known else None for v in vals], categories=cats))
    nums, bad = parse_numbers(vals, decimal)
    n = sum(v is not None for v in vals)
    coded = any(v is not None and LEADING_ZERO.match(v) for v in vals)
    if kind in ("number", "integer") or (n and not bad and not coded):
        return pd.Series(nums)
    return pd.Series([np.nan if v is None else v for v in vals], dtype=object)
