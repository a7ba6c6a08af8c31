"""Read trial data files as text, keeping every cell as the user wrote it.

Every reader returns a :class:`RawTable`: all cells as ``str`` (or ``None`` for missing), the
row number as the user sees it, and the value labels of SPSS/Stata files (or the categories of a
Parquet categorical). Coercion to numbers happens later, in :mod:`peerstats.data.validation`, so that a
coercion that would change a value is a validation failure rather than a silent ``NaN``.
Input files are only ever opened for reading.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from peerstats._provenance import file_sha256, remember, remember_file
from peerstats.data.trial_spec import DataSource
from peerstats.exceptions import PeerstatsError
from peerstats.io._guards import check_regular_file, check_text_encoding

__all__ = ["RawTable", "ReadError", "read_table", "NA_STRINGS", "to_text"]

#: cell texts read as missing (after stripping surrounding white space)
NA_STRINGS = frozenset({"", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "."})


class ReadError(PeerstatsError):
    """A data file exists but cannot be read (corrupt, wrong format, bad encoding)."""


@dataclass
class RawTable:
    """One table as read from its file.

    Attributes
    ----------
    name : str
        ``participants``, ``assessments`` or ``sessions``.
    path : Path
    data : DataFrame
        Every cell a ``str`` or ``None`` (missing), object dtype, default RangeIndex.
    rows : ndarray
        Row number as in the file for each row of ``data`` (1-based data row).
    value_labels : dict
        Column -> {code as text: label}, ordered by code, for SPSS/Stata value labels; for
        Parquet categoricals {category: category} in category order. ``data`` keeps the codes.
    blank_rows : list of int
        Rows that were entirely empty (not data; reported as a warning).
    problems : list of dict
        Cells the reader could not read faithfully (an Excel formula without a saved value),
        as failure records ``row, column, value, check, message`` for validation to report.
    variable_labels : dict
        Column -> label of the column, from SPSS/Stata variable labels or a REDCap data
        dictionary (issue 21): the names a reader sees unless the spec names them otherwise.
    """

    name: str
    path: Path
    data: pd.DataFrame
    rows: np.ndarray
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    blank_rows: list[int] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    variable_labels: dict[str, str] = field(default_factory=dict)


def to_text(value: object) -> str | None:
    """Render one typed cell (from Excel, SPSS, Stata or Parquet) as text without losing
    information: integral floats print without ``.0``, other floats print their shortest
    round-trip repr, dates in ISO format, missing as ``None``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return None
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        return repr(x)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, pd.Timestamp | _dt.datetime):
        ts = pd.Timestamp(value)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def _finish(
    name: str,
    path: Path,
    df: pd.DataFrame,
    labels: dict | None = None,
    problems: list[dict] | None = None,
) -> RawTable:
    df = df.astype(object)
    df.columns = [str(c).strip() for c in df.columns]
    df = _unnamed_columns(df, path)
    out = {}
    texts: dict[str, str | None] = {}  # each distinct text cleaned once (issue 22)
    for col in df.columns:
        vals = []
        for v in df[col].tolist():
            if type(v) is str:
                t = texts[v] if v in texts else texts.setdefault(v, _cell_text(v))
            else:
                t = _cell_text(v)
            vals.append(t)
        out[col] = vals
    data = pd.DataFrame(out, columns=list(df.columns), dtype=object)
    rows = np.arange(1, len(data) + 1)
    blank = data.isna().all(axis=1).to_numpy() if len(data.columns) else np.zeros(len(data), bool)
    blank_rows = rows[blank].tolist()
    data = data.loc[~blank].reset_index(drop=True)
    return RawTable(name, path, data, rows[~blank], labels or {}, blank_rows, problems or [])


def _cell_text(v: object) -> str | None:
    """A cell as text, stripped; None for missing and the NA spellings."""
    t = v if isinstance(v, str) else to_text(v)
    if t is not None:
        t = t.strip()
        if t in NA_STRINGS:
            t = None
    return t


def _unnamed_columns(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop columns without a header name that hold nothing (a trailing delimiter, an empty
    spreadsheet column); refuse one that holds values: they would have no name to be checked
    or reported under."""
    unnamed = [k for k, c in enumerate(df.columns) if c == "" or c.startswith("Unnamed: ")]
    if not unnamed:
        return df
    filled = []
    for k in unnamed:
        col = df.iloc[:, k]
        if any(to_text(v) not in (None, "") and str(to_text(v)).strip() for v in col.tolist()):
            filled.append(k + 1)
    if filled:
        raise ReadError(
            f"{path.name}: column(s) {filled[:10]} (counting from 1) have values but no name "
            "in the header; give every column a name"
        )
    keep = [k for k in range(df.shape[1]) if k not in set(unnamed)]
    return df.iloc[:, keep]


def _read_delimited(source: DataSource) -> pd.DataFrame:
    path = source.path
    suffix = path.suffix.lower()
    sep = source.delimiter
    encoding = source.encoding or "utf-8-sig"
    raw = path.read_bytes()  # once: the manifest records the digest of these bytes (24.8)
    remember(path, raw)
    text = raw.decode(encoding)
    if sep is None:
        if suffix == ".tsv":
            sep = "\t"
        elif suffix == ".csv":
            sep = ","
        else:
            sample = text[:8192]
            try:
                sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                sep = "\t"
    # The csv module, not pandas, so that a row with more fields than the header is seen (pandas
    # would make the first column the index and shift every value) and a repeated header name is
    # refused (pandas would rename it 'y.1').
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    if not rows:
        return pd.DataFrame()
    header = [h.strip() for h in rows[0]]
    _check_header(header, path)
    width = len(header)
    too_long = []
    too_short = []
    body = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) > width:
            if any(cell.strip() for cell in row[width:]):
                too_long.append(i)
            row = row[:width]  # trailing empty fields (a trailing delimiter): nothing is lost
        elif len(row) < width and any(cell.strip() for cell in row):
            # a row with fewer fields is as suspect as one with more: a value was lost or
            # the values are shifted left (a blank line is no data row and is skipped)
            too_short.append(i)
        body.append(row + [""] * (width - len(row)))
    for rows_, what in ((too_long, "more"), (too_short, "fewer")):
        if rows_:
            raise ReadError(
                f"{path.name}: {len(rows_)} data row(s) have {what} fields than the header "
                f"({width} columns), first rows {rows_[:10]}; a value would be lost or shifted. "
                "Check the delimiter and quoting."
            )
    return pd.DataFrame(body, columns=header, dtype=object)


def _check_header(header: list[str], path: Path) -> None:
    """Refuse repeated column names (which would be renamed or lose data)."""
    seen: dict[str, int] = {}
    for h in header:
        seen[h] = seen.get(h, 0) + 1
    repeated = sorted(h for h, k in seen.items() if k > 1 and h)
    if repeated:
        raise ReadError(
            f"{path.name}: column name(s) {repeated} appear more than once in the header; "
            "rename them so that no column hides another"
        )


def _read_stat(source: DataSource) -> tuple[pd.DataFrame, dict, dict]:
    import pyreadstat

    suffix = source.path.suffix.lower()
    reader = pyreadstat.read_dta if suffix == ".dta" else pyreadstat.read_sav
    kwargs = {"encoding": source.encoding} if source.encoding else {}
    df, meta = reader(str(source.path), apply_value_formats=False, **kwargs)
    labels: dict[str, dict[str, str]] = {}
    for col, mapping in (meta.variable_value_labels or {}).items():
        if col in df.columns:
            ordered = sorted(mapping.items(), key=lambda kv: (isinstance(kv[0], str), kv[0]))
            labels[col] = {to_text(code): str(label) for code, label in ordered}
    names = dict(zip(meta.column_names, meta.column_labels or [], strict=False))
    variable = {
        str(c).strip(): str(lab).strip() for c, lab in names.items() if lab and str(lab).strip()
    }
    return df, labels, variable


def _read_parquet(source: DataSource) -> tuple[pd.DataFrame, dict]:
    df = pd.read_parquet(source.path)
    labels = {}
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            cats = [to_text(c) for c in df[col].cat.categories]
            labels[str(col)] = {c: c for c in cats if c is not None}
    return df, labels


def _xlsx_formulas_without_value(source: DataSource) -> list[dict]:
    """Cells holding a formula whose result was never saved (a file written by a program,
    not by Excel): pandas reads them as empty, which would silently make a value missing."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    books = [
        openpyxl.load_workbook(source.path, read_only=True, data_only=d) for d in (False, True)
    ]
    try:
        sheets = []
        for wb in books:
            sheet = source.sheet if source.sheet is not None else 0
            sheets.append(wb[sheet] if isinstance(sheet, str) else wb.worksheets[sheet])
        problems = []
        header: list = []
        rows = zip(sheets[0].iter_rows(values_only=True), sheets[1].iter_rows(values_only=True))
        for r, (formulas, values) in enumerate(rows):
            if r == 0:
                header = [to_text(v) or "" for v in values]
            for c, (f, v) in enumerate(zip(formulas, values)):
                is_formula = (isinstance(f, str) and f.startswith("=")) or (
                    type(f).__name__ == "ArrayFormula"
                )
                if is_formula and v is None:
                    cell = f"{get_column_letter(c + 1)}{r + 1}"
                    problems.append(
                        dict(
                            row=r if r > 0 else None,
                            column=header[c] if c < len(header) and r > 0 else None,
                            value=None,
                            check="formula_without_value",
                            message=f"cell {cell} of {source.path.name} holds a formula whose "
                            "result was never saved, so its value is unknown; open the file "
                            "in a spreadsheet program and save it, or type the value",
                        )
                    )
        return problems
    finally:
        for wb in books:
            wb.close()


def _read_by_suffix(source: DataSource, suffix: str) -> tuple[pd.DataFrame, dict, dict, list]:
    """The file as text by its format: data, value labels, variable labels, problems."""
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_delimited(source), {}, {}, []
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(source), {}, {}, _xlsx_formulas_without_value(source)
    if suffix in (".sav", ".zsav", ".dta"):
        df, labels, variable = _read_stat(source)
        return df, labels, variable, []
    if suffix == ".parquet":
        df, labels = _read_parquet(source)
        return df, labels, {}, []
    # read_spec refuses other suffixes; keep a clear error for direct callers
    raise ReadError(f"{source.path.name}: unsupported file type {suffix!r}")


def _read_xlsx(source: DataSource) -> pd.DataFrame:
    """A worksheet as text (its header checked first)."""
    sheet = source.sheet if source.sheet is not None else 0
    head = pd.read_excel(source.path, sheet_name=sheet, header=None, nrows=1, dtype=object)
    if len(head):
        _check_header([to_text(v) or "" for v in head.iloc[0].tolist()], source.path)
    return pd.read_excel(
        source.path, sheet_name=sheet, dtype=object, keep_default_na=False, na_filter=False
    )


def read_table(source: DataSource, name: str) -> RawTable:
    """Read one data file as text.

    Parameters
    ----------
    source : DataSource
        The file and its reading options (from the spec).
    name : str
        Table name used in messages (``participants``, ``assessments``, ``sessions``).

    Returns
    -------
    RawTable

    Raises
    ------
    ReadError
        If the file cannot be parsed in its format.
    """
    suffix = source.path.suffix.lower()
    labels: dict = {}
    variable: dict = {}
    problems: list[dict] = []
    refused = check_regular_file(source.path)  # issue 24.10-11: before anything is read
    if refused is None and suffix in (".csv", ".tsv", ".txt"):
        refused = check_text_encoding(source.path, source.encoding)
    if refused is not None:
        raise ReadError(refused)
    before = None if suffix in (".csv", ".tsv", ".txt") else file_sha256(source.path)
    try:
        df, labels, variable, problems = _read_by_suffix(source, suffix)
    except ReadError:
        raise
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except UnicodeDecodeError as exc:  # name the spec option, with a guess
        guess = "cp1252" if (source.encoding or "utf-8").lower().startswith("utf") else "utf-8"
        raise ReadError(
            f"cannot read {source.path.name}: it is not {source.encoding or 'UTF-8'} text "
            f"(byte {exc.object[exc.start : exc.start + 1]!r} at position {exc.start}); set "
            f"encoding: {guess} for this file in the spec (Windows/Excel exports in Sweden, "
            "Denmark and Norway are usually cp1252)"
        ) from exc
    except Exception as exc:  # parser errors of the underlying libraries
        raise ReadError(f"cannot read {source.path.name}: {type(exc).__name__}: {exc}") from exc
    if before is not None and remember_file(source.path, before) is None:
        raise ReadError(
            f"{source.path.name} changed while it was being read; read it again when nothing "
            "is writing to it"
        )
    try:
        table = _finish(name, source.path, df, labels, problems)
        table.variable_labels = variable
        return table
    except ReadError:
        raise
    except Exception as exc:  # pragma: no cover - a cell no reader should produce
        raise ReadError(f"cannot read {source.path.name}: {type(exc).__name__}: {exc}") from exc
