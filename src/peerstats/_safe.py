"""Cells that are safe to open in a spreadsheet: formula injection neutralised.

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets when the CSV (or xlsx/docx table pasted into
one) is opened: ``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``. Following OWASP's advice ("CSV
Injection"), every writer of peerstats passes its text cells through :func:`safe_cell`, which
prefixes such a cell with a single quote so that it is shown as text. Numbers are not text:
``-1.5`` in a numeric column is written as the number it is, and a text cell that is exactly a
number (``"-1.5"``) is left alone too, as no spreadsheet reads a number as a formula.

Use :func:`safe_cell` for one value (e.g. a Word table cell), :func:`safe_frame` before
``DataFrame.to_csv`` / ``to_excel``, and :func:`write_csv` to do both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["safe_cell", "safe_frame", "write_csv", "FORMULA_PREFIXES"]

#: first characters that make a spreadsheet treat a cell as a formula (OWASP)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """``value`` safe to write in a spreadsheet cell.

    A text starting with ``= + - @``, tab or carriage return (after any leading spaces, as an
    indented table level) gets a leading ``'`` (unless it is a plain number such as ``-1.5``);
    every other value is returned unchanged.

    Examples
    --------
    >>> safe_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> safe_cell("-1.5"), safe_cell(-1.5), safe_cell("peer")
    ('-1.5', -1.5, 'peer')
    """
    if not isinstance(value, str):
        return value
    stripped = value.lstrip(" \u00a0")  # some programs trim leading spaces on import
    if value.startswith(FORMULA_PREFIXES) or stripped.startswith(FORMULA_PREFIXES):
        if _PLAIN_NUMBER.match(stripped):
            return value
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with :func:`safe_cell` applied to its column names and text cells
    (object, string and categorical columns); numeric columns are untouched."""
    out = df.copy()
    for i in range(out.shape[1]):
        s = out.iloc[:, i]
        if isinstance(s.dtype, pd.CategoricalDtype):
            new = [safe_cell(c) for c in s.cat.categories]
            if new != list(s.cat.categories):
                if len(set(new)) == len(new):
                    out.isetitem(i, s.cat.rename_categories(new))
                else:  # renaming would merge two categories: write as text
                    out.isetitem(i, s.astype(object).map(safe_cell, na_action="ignore"))
        elif s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            out.isetitem(i, s.map(safe_cell, na_action="ignore"))
    out.columns = [safe_cell(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


def _needs_quote(value: Any) -> bool:
    return isinstance(value, str) and safe_cell(value) is not value


def _unchanged(df: pd.DataFrame) -> bool:
    """:func:`safe_frame` would write ``df`` as it is: no header or cell it quotes, and every
    object column holds only text and missing values (``None``, NaN), so that its
    ``Series.map`` could not infer another type either (``[1, 2.5]`` would become floats)."""
    if isinstance(df.columns, pd.MultiIndex) or any(_needs_quote(c) for c in df.columns):
        return False
    for i, dtype in enumerate(df.dtypes.tolist()):
        if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
            continue  # numbers, booleans, times: safe_frame leaves them
        if isinstance(dtype, pd.CategoricalDtype):
            values = list(df.iloc[:, i].cat.categories)
        elif (is_object := isinstance(dtype, np.dtype) and dtype.kind == "O") or (
            pd.api.types.is_string_dtype(dtype)
        ):
            values = df.iloc[:, i].tolist()
            if is_object and not all(
                type(v) is str or v is None or (type(v) is float and v != v) for v in values
            ):
                return False
        else:
            continue
        if any(_needs_quote(v) for v in values):
            return False
    return True


def write_csv(df: pd.DataFrame, path: str | Path, **kwargs: Any) -> None:
    """``df.to_csv(path, index=False, lineterminator="\\n", **kwargs)`` with formula
    injection neutralised (see :func:`safe_frame`). A frame with nothing to neutralise is
    written as it is (the same bytes, without the copy: issue 22)."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    (df if _unchanged(df) else safe_frame(df)).to_csv(path, **kwargs)
