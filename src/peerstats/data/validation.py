"""Validate trial data against its spec and build the :class:`~peerstats.data.trial.Trial`.

Every check runs and every problem is collected; :func:`validate` returns a
:class:`ValidationReport` whose ``failures`` frame has one row per problem (``table, row, column,
value, check, message``) and :func:`peerstats.load_trial` raises them all at once as a
:class:`~peerstats.DataValidationError`. ``row`` is the 1-based data row in the file (the header
is row 0), for every file format, so a user can find it. Nothing is lost or changed silently:
every input row ends up in the Trial or is named in the failures, and a value that cannot be
coerced without changing it is a failure, never a silent ``NaN``. (Surrounding white space
is ignored, and ``'', NA, N/A, NaN, NULL, .`` are read as missing.)

Checks (``check`` column)
-------------------------
``unreadable``, ``empty_file``, ``missing_column``, ``missing_value`` (subject or visit empty),
``ambiguous_column`` (a wide column without visit suffix; a participants column with a
standard name the spec maps elsewhere), ``duplicate_subject``, ``duplicate_subject_visit``, ``duplicate_subject_session``,
``unknown_label`` (arm, visit, site; closest label suggested), ``non_numeric``, ``out_of_range``,
``non_integer`` (item responses), ``non_binary`` (0/1 columns), ``unknown_subject`` (rows for subjects absent from participants),
``missing_arm`` (randomised without an arm), ``arm_not_randomised`` (an arm for a participant
not randomised), ``group_not_group_delivered``, ``inconsistent`` (assessments disagree with
participants on arm/site/group), ``privacy`` (personnummer, samordningsnummer, CPR, e-mail,
phone numbers in a column not listed under ``drop:``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from peerstats._identifiers import (
    CONTROL_CHARS,
    birth_date_column,
    cap_text,
    escape_controls,
    looks_identifying,
    mask_identifiers,
    mask_value,
)
from peerstats.data.trial_spec import PARTICIPANT_ROLES, Outcome, TrialSpec, read_spec
from peerstats.exceptions import FAILURE_COLUMNS, DataValidationError, SpecError
from peerstats.io.coerce import (
    DECIMAL_COMMA,
    LEADING_ZERO,
    NO,
    NUMBER,
    YES,
    column_values,
    parse_binary,
    parse_numbers,
)
from peerstats.io.coerce import labelled as _labelled
from peerstats.io.readers import RawTable, ReadError, read_table
from peerstats.io.wide import wide_to_long

if TYPE_CHECKING:  # pragma: no cover
    from peerstats.data.trial import Trial

__all__ = ["validate", "ValidationReport", "mask_value", "looks_identifying"]


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------


class _Log:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self._seen: set = set()

    def add(
        self, table: str, row: Any, column: str | None, value: Any, check: str, message: str
    ) -> None:
        row = None if row is None else int(row)
        key = (table, row, column, check)
        if key in self._seen:  # wide files: one failure per wide cell, not per visit copy
            return
        self._seen.add(key)
        # nothing a failure shows may echo an identifier or a control character, whatever
        # the message was built from (a header, a cell, a library's error text)
        self.items.append(
            dict(
                table=table,
                row=row,
                column=None if column is None else escape_controls(mask_identifiers(str(column))),
                value=mask_value(value),
                check=check,
                message=cap_text(escape_controls(mask_identifiers(message)), 1000),
            )
        )

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.items, columns=FAILURE_COLUMNS)
        df["row"] = pd.array(df["row"].tolist(), dtype="Int64")
        return df.astype({"value": object})

    def __len__(self) -> int:
        return len(self.items)


def _suggest(value: str, valid: list[str], what: str) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    if not close:
        low = {v.lower(): v for v in valid}
        close = [low[value.lower()]] if value.lower() in low else []
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"{mask_value(value)!r} is not {what}{hint} valid labels are {valid}"


_LEADING_ZERO = LEADING_ZERO
_NUMBER = NUMBER
_parse_numbers = parse_numbers


def _parse_binary(values: list, vocab: tuple | None = None) -> tuple[list, list[int]]:
    return parse_binary(values, *(vocab or (YES, NO)))


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """Result of :func:`validate`.

    Attributes
    ----------
    spec : TrialSpec
    failures : DataFrame
        One row per problem: ``table, row, column, value, check, message`` (values masked).
    trial : Trial or None
        The validated trial, ``None`` when there are failures.
    n_rows : dict
        Data rows read per table (blank rows excluded).
    warnings : list of str
        Things worth knowing that are not errors (blank rows skipped, ...).
    """

    spec: TrialSpec
    failures: pd.DataFrame
    trial: Trial | None
    n_rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return len(self.failures) == 0

    def error(self) -> DataValidationError:
        """The failures as one :class:`~peerstats.DataValidationError`."""
        return DataValidationError(self.failures, context=self.spec.name)

    def raise_for_failures(self) -> None:
        """Raise :class:`~peerstats.DataValidationError` when any check failed."""
        if not self.ok:
            raise self.error()

    def to_text(self, max_shown: int = 20) -> str:
        """A readable report: what was read, then the problems (or 'no problems')."""
        where = self.spec.source or self.spec.base_dir
        lines = [f"Trial spec: {where}", f"Trial: {self.spec.name}"]
        for name, n in self.n_rows.items():
            lines.append(f"  {name}: {n} rows")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        if self.ok:
            lines.append("Validation passed: no problems found.")
        else:
            lines.append(
                str(DataValidationError(self.failures, max_shown=max_shown, context=self.spec.name))
            )
            counts = self.failures["check"].value_counts()
            lines.append("Problems by check: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


# --------------------------------------------------------------------------------------------
# the validation itself
# --------------------------------------------------------------------------------------------


def _instrument_info(outcome: Outcome) -> tuple[list[str], float | None, float | None]:
    """Item columns and item range of a scored outcome (from peerstats.instruments)."""
    try:
        from peerstats.instruments import get_instrument
    except ImportError as exc:  # pragma: no cover - instruments ship with the package
        raise SpecError(
            f"outcome {outcome.name!r}: instrument scoring is not available ({exc})"
        ) from exc
    try:
        inst = get_instrument(outcome.instrument)
    except Exception as exc:
        raise SpecError(f"outcome {outcome.name!r}: {exc}") from exc
    items = list(outcome.items) if outcome.items else list(inst.items)
    n_items = len(inst.items)
    if len(items) != n_items:
        raise SpecError(
            f"outcome {outcome.name!r}: {outcome.instrument} has {n_items} items, the spec lists {len(items)}"
        )
    return items, getattr(inst, "item_min", None), getattr(inst, "item_max", None)


@dataclass
class _Ctx:
    spec: TrialSpec
    log: _Log
    warnings: list[str]


def _read(spec: TrialSpec, log: _Log, warnings: list[str]) -> dict[str, RawTable | None]:
    out: dict[str, RawTable | None] = {}
    sources = {"participants": spec.participants, "assessments": spec.assessments}
    if spec.sessions is not None:
        sources["sessions"] = spec.sessions
    redcap = _read_redcap(spec, log)
    for name, src in sources.items():
        try:
            t = redcap[name] if redcap is not None else read_table(src, name)
        except KeyError:  # the REDCap export could not be read (logged once)
            out[name] = None
            continue
        except ReadError as exc:
            log.add(name, None, None, None, "unreadable", str(exc))
            out[name] = None
            continue
        for prob in t.problems:
            log.add(name, **prob)
        if t.blank_rows:
            warnings.append(
                f"{name}: {len(t.blank_rows)} blank row(s) skipped (rows {t.blank_rows[:10]})"
            )
        if len(t.data) == 0 or len(t.data.columns) == 0:
            log.add(name, None, None, None, "empty_file", f"{src.path.name} has no data rows")
            out[name] = None
            continue
        dropped = [c for c in spec.drop if c in t.data.columns]
        if dropped:
            t.data = t.data.drop(columns=dropped)
            for c in dropped:
                t.value_labels.pop(c, None)
        out[name] = t
    return out


def _read_redcap(spec: TrialSpec, log: _Log) -> dict[str, RawTable] | None:
    """The raw tables of a REDCap source (issue 21), ``{}`` when the export cannot be read
    (its problems logged), ``None`` when the spec has no REDCap source."""
    if spec.redcap is None:
        return None
    from peerstats.io.redcap import raw_tables

    try:
        return raw_tables(spec.redcap)
    except ReadError as exc:
        log.add("records", None, None, None, "unreadable", str(exc))
    except DataValidationError as exc:
        for rec in exc.failures.to_dict("records"):
            log.add(**rec)
    return {}


def _is_numeric_column(vals: list) -> bool:
    """Every value a plain number (no leading-zero codes): reaches outputs only as summaries."""
    present = [v for v in vals if v is not None]
    return bool(present) and all(NUMBER.match(v) and not LEADING_ZERO.match(v) for v in present)


def _privacy(t: RawTable, log: _Log, free_text: Iterable[str], warnings: list[str]) -> None:
    """Control characters and direct identifiers, in headers and cells.

    A header that looks like an identifier is a failure (its name is masked wherever it is
    shown). In a text column (any value not a plain number) every cell holding an identifier,
    strong or weak, alone or inside text, is a failure naming its row -- or, in a column listed
    under ``free_text:``, is masked in place and reported as a warning. A column of numbers is
    flagged when it holds a strong identifier or when at least half its values are weak ones
    (a 10-digit number may look like a CPR number by chance)."""
    free_text = set(free_text)
    for col in t.data.columns:
        if CONTROL_CHARS.search(col):
            log.add(
                t.name,
                None,
                col,
                None,
                "control_character",
                "a column header holds a control character; remove it",
            )
        kind = looks_identifying(col)
        if kind is not None:
            log.add(
                t.name,
                None,
                col,
                None,
                "privacy",
                f"a column header looks like a {kind[0]}; rename the column (headers are "
                "shown in tables and messages)",
            )
    for col, labels in t.value_labels.items():  # SPSS/Stata labels reach tables as levels
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
    _birth_dates(t, log)
    for col in t.data.columns:
        vals = t.data[col].tolist()
        for i, v in enumerate(vals):
            if v is not None and CONTROL_CHARS.search(v):
                log.add(
                    t.name,
                    t.rows[i],
                    col,
                    v,
                    "control_character",
                    f"the cell holds a control character "
                    f"({escape_controls(CONTROL_CHARS.search(v).group(0))}); remove it",
                )
        hits = []
        n = strong = 0
        for i, v in enumerate(vals):
            if v is None:
                continue
            n += 1
            kind = looks_identifying(v)
            if kind is not None:
                hits.append((i, kind))
                strong += kind[1]
        if not hits:
            continue
        if col in free_text and t.name == "participants":
            masked = [mask_identifiers(v) if v is not None else None for v in vals]
            t.data[col] = pd.Series(masked, dtype=object)
            warnings.append(
                f"{t.name}: {len(hits)} identifier(s) masked in the free-text column "
                f"{mask_identifiers(col)!r} (rows {[int(t.rows[i]) for i, _ in hits][:10]})"
            )
            continue
        numeric = _is_numeric_column(vals)
        if numeric or len(hits) >= max(2, 0.5 * n):
            if numeric and not strong and len(hits) < max(1, 0.5 * n):
                continue  # a few numbers that happen to look like CPR numbers
            i, kind = hits[0]
            log.add(
                t.name,
                t.rows[i],
                col,
                vals[i],
                "privacy",
                f"column {col!r} looks like it holds {kind[0]} values ({len(hits)} of {n} "
                f"values, e.g. {mask_value(vals[i])!r}); remove the column or list it under "
                "drop:",
            )
            continue
        hint = (
            "; or, for a free-text column, list it under free_text: to mask identifiers on load"
            if t.name == "participants"
            else ""
        )
        for i, kind in hits:
            log.add(
                t.name,
                t.rows[i],
                col,
                vals[i],
                "privacy",
                f"the cell holds a {kind[0]} ({mask_value(vals[i])!r}); identifiers must not "
                f"reach the outputs: remove it from the data{hint}",
            )


def _birth_dates(t: RawTable, log: _Log) -> None:
    """A date-of-birth column is a direct identifier (with a personal number it names a
    person): one failure per column, naming the fix (issue 21)."""
    for col in t.data.columns:
        vals = t.data[col].tolist()
        if birth_date_column(col, vals):
            n = sum(v is not None for v in vals)
            log.add(
                t.name,
                None,
                col,
                None,
                "privacy",
                f"column {col!r} holds dates of birth ({n} values), a direct identifier; only "
                "age (or an age band) may reach the outputs: compute age in the data and list "
                f"{col!r} under drop: in the trial spec",
            )


def _require(t: RawTable, columns: Iterable[tuple[str, str]], log: _Log) -> bool:
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
            log.add(
                t.name,
                None,
                col,
                None,
                "missing_column",
                f"{role} column {col!r} is not in {t.path.name}{hint}. Columns are {listed}{more}.",
            )
            ok = False
    return ok


def _duplicates(t: RawTable, keys: list[str], log: _Log, check: str, what: str) -> np.ndarray:
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
            log.add(
                t.name,
                t.rows[i],
                keys[0],
                key[0],
                check,
                f"{what} {shown} already on row {first_row[key]}",
            )
    return dup


#: largest magnitude of an outcome without a declared range (beyond it doubles no longer
#: hold whole numbers exactly and sums of squares overflow)
MAX_MAGNITUDE = 1e15


def _numeric_column(
    t: RawTable,
    col: str,
    log: _Log,
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
    out, bad = _parse_numbers(vals, decimal)
    where = cell_cols or [col] * len(vals)
    comma = [i for i in bad if re.fullmatch(r"[+-]?\d+,\d+", vals[i])]
    if len(comma) > 1:  # one failure with a count, not the same hint on every cell
        first = comma[0]
        log.add(
            t.name,
            t.rows[first],
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
        log.add(
            t.name,
            t.rows[i],
            where[i],
            vals[i],
            "non_numeric",
            f"{what} {mask_value(vals[i])!r} is not a number{hint}",
        )
    low = out < lo if lo is not None else np.zeros(len(out), bool)
    high = out > hi if hi is not None else np.zeros(len(out), bool)
    if lo is None or hi is None:  # no declared range: still a number the models can square
        huge = np.isfinite(out) & (np.abs(out) > MAX_MAGNITUDE) & ~(low | high)
        for i in np.flatnonzero(huge):
            log.add(
                t.name,
                t.rows[i],
                where[i],
                vals[i],
                "out_of_range",
                f"{what} {mask_value(vals[i])} is implausibly large (beyond "
                f"±{MAX_MAGNITUDE:g}, where the models lose precision); declare min/max or "
                "correct the value",
            )
    if integer:
        for i in np.flatnonzero(np.isfinite(out) & (out != np.round(out))):
            log.add(
                t.name,
                t.rows[i],
                where[i],
                vals[i],
                "non_integer",
                f"{what} {mask_value(vals[i])} is not a whole number",
            )
    for i in np.flatnonzero(np.isfinite(out) & (low | high)):
        log.add(
            t.name,
            t.rows[i],
            where[i],
            vals[i],
            "out_of_range",
            f"{what} {mask_value(vals[i])} is outside the declared range {lo:g} to {hi:g}"
            if lo is not None and hi is not None
            else f"{what} {mask_value(vals[i])} is outside the declared range",
        )
    return out


def _binary_column(t: RawTable, col: str, log: _Log, what: str, vocab: tuple | None = None) -> list:
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
        log.add(
            t.name,
            t.rows[i],
            col,
            vals[i],
            "non_binary",
            f"{what} must be yes or no ({'/'.join(yes[:6])} or {'/'.join(no[:6])}), not "
            f"{mask_value(vals[i])!r}; correct the value, or declare the words under "
            "binary: {yes: [...], no: [...]} in the trial spec",
        )
    return out


def _check_labels(t: RawTable, col: str, valid: list[str], log: _Log, what: str) -> list:
    vals = _labelled(t, col, valid)
    for i, v in enumerate(vals):
        if v is not None and v not in valid:
            log.add(t.name, t.rows[i], col, v, "unknown_label", _suggest(v, valid, what))
    return vals


def _missing_key(t: RawTable, col: str, log: _Log, what: str) -> None:
    for i in np.flatnonzero(t.data[col].isna().to_numpy()):
        log.add(t.name, t.rows[i], col, None, "missing_value", f"{what} is empty")


def _text_or_numeric(
    t: RawTable, col: str, decimal: str, log: _Log | None, what: str, decl: Any = None
) -> pd.Series:
    """An extra column: categorical when labelled (or declared a category), numeric when
    every value is a number (or declared a number), else text. For covariates (``log``
    given) the values are checked: see :func:`_check_covariate`."""
    if log is not None:
        _check_covariate(t, col, decimal, log, what, decl)
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
    t: RawTable, col: str, nums: np.ndarray, vals: list, log: _Log, what: str
) -> None:
    found = default_range(col)
    if found is None:
        return
    lo, hi, kind = found
    for i in np.flatnonzero(np.isfinite(nums) & ((nums < lo) | (nums > hi))):
        log.add(
            t.name,
            t.rows[i],
            col,
            vals[i],
            "out_of_range",
            f"{what} {mask_value(vals[i])} is not plausible as {kind} ({lo:g} to {hi:g}); "
            f"correct it, or declare the range: covariates: {{{col}: {{min: ..., max: ...}}}}",
        )


def _check_covariate(
    t: RawTable, col: str, decimal: str, log: _Log, what: str, decl: Any = None
) -> None:
    """Covariates must be clean: a declared type and range (``covariates: {age: {type:
    number, min: 16, max: 110}}``) is checked cell by cell; undeclared, a column of numbers
    with a few non-numbers (>= 80 % numeric) is a failure rather than silently text, and so is
    a column of mostly decimal-comma numbers in a file read with ``decimal: '.'`` (it would
    become a category per value)."""
    vals = _labelled(t, col)
    if decl is not None and decl.type == "category":
        if decl.levels is not None:
            _check_labels(t, col, list(decl.levels), log, f"a level of {what}")
        return
    if t.value_labels.get(col):
        return
    nums, bad = parse_numbers(vals, decimal)
    n = sum(v is not None for v in vals)
    if not n:
        return
    comma = [i for i in bad if decimal != "," and DECIMAL_COMMA.match(vals[i])]
    if decl is None:
        if comma and len(bad) - len(comma) <= 0.2 * n:
            i = comma[0]
            log.add(
                t.name,
                t.rows[i],
                col,
                vals[i],
                "non_numeric",
                f"{what}: {len(comma)} of {n} values are numbers with a decimal comma (e.g. "
                f"{mask_value(vals[i])!r}), read as text; set decimal: ',' for this file in the "
                "spec",
            )
            return
        if len(bad) > 0.2 * n:
            return  # a text column
    for i in bad:
        log.add(
            t.name,
            t.rows[i],
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
        for i in np.flatnonzero(np.isfinite(nums) & (nums != np.round(nums))):
            log.add(
                t.name,
                t.rows[i],
                col,
                vals[i],
                "non_integer",
                f"{what} {mask_value(vals[i])} is not a whole number",
            )
    lo, hi = decl.min, decl.max
    low = nums < lo if lo is not None else np.zeros(len(nums), bool)
    high = nums > hi if hi is not None else np.zeros(len(nums), bool)
    rng = f"{'-inf' if lo is None else f'{lo:g}'} to {'inf' if hi is None else f'{hi:g}'}"
    for i in np.flatnonzero(np.isfinite(nums) & (low | high)):
        log.add(
            t.name,
            t.rows[i],
            col,
            vals[i],
            "out_of_range",
            f"{what} {mask_value(vals[i])} is outside the declared range {rng}",
        )


_ROLES = PARTICIPANT_ROLES


def _participants(ctx: _Ctx, t: RawTable) -> dict | None:
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    need = [(cols.subject, "subject")]
    if spec.design == "parallel":
        need.append((cols.arm, "arm"))
    for role in PARTICIPANT_ROLES[1:]:  # every role but subject, added above
        name = getattr(cols, role)
        if name is not None and (name, role) not in need:
            need.append((name, role))
    roles_set = set(cols.renames().values())
    renamed = cols.renames()
    for c in t.data.columns:
        if c not in renamed and c in _ROLES and getattr(cols, c) is not None:
            log.add(
                t.name,
                None,
                c,
                None,
                "ambiguous_column",
                f"column {c!r} has a standard name but the spec maps {c} to "
                f"{getattr(cols, c)!r}; rename it in the file or map it under columns:",
            )
    for c in (*spec.covariates, *spec.strata):
        if c not in roles_set:
            need.append((c, "covariate" if c in spec.covariates else "stratum"))
    if not _require(t, need, log):
        return None
    _missing_key(t, cols.subject, log, "subject")
    _duplicates(t, [cols.subject], log, "duplicate_subject", "subject")
    n = len(t.data)
    if cols.randomised is not None:
        randomised = _binary_column(
            t, cols.randomised, log, "randomised", spec.binary
        )  # None: unknown
        for i, v in enumerate(t.data[cols.randomised].tolist()):
            if v is None:
                log.add(
                    t.name,
                    t.rows[i],
                    cols.randomised,
                    None,
                    "missing_value",
                    "randomised is empty; give 1 (randomised) or 0 (not randomised)",
                )
    else:
        randomised = [True] * n
    levels = list(spec.arms.levels)
    if cols.arm is not None and cols.arm in t.data.columns:
        arms = _check_labels(t, cols.arm, levels, log, "an arm")
    else:  # single-arm trial without an arm column
        arms = [levels[0]] * n
    for i in range(n):
        if randomised[i] is True and arms[i] is None:
            log.add(
                t.name,
                t.rows[i],
                cols.arm,
                None,
                "missing_arm",
                "randomised participant without an arm",
            )
        elif randomised[i] is False and arms[i] is not None and cols.arm is not None:
            log.add(
                t.name,
                t.rows[i],
                cols.arm,
                arms[i],
                "arm_not_randomised",
                f"arm {mask_value(arms[i])!r} given for a participant who was not randomised",
            )
    sites = None
    if cols.site is not None:
        if spec.sites is not None:
            sites = _check_labels(t, cols.site, list(spec.sites), log, "a site")
        else:
            sites = _labelled(t, cols.site)
    groups = None
    if cols.group is not None:
        groups = t.data[cols.group].tolist()
        gd = set(spec.arms.group_delivered)
        no_group = 0
        for i, g in enumerate(groups):
            if g is not None and arms[i] in levels and arms[i] not in gd:
                log.add(
                    t.name,
                    t.rows[i],
                    cols.group,
                    g,
                    "group_not_group_delivered",
                    f"group {mask_value(g)!r} given for a participant in arm {arms[i]!r}, which is not "
                    f"group-delivered (group-delivered arms: {sorted(gd)})",
                )
            if g is None and randomised[i] and arms[i] in gd:
                no_group += 1
        if no_group:
            ctx.warnings.append(
                f"participants: {no_group} randomised participant(s) in a group-delivered "
                "arm have no delivery group"
            )
    # CONSORT: last visit attended before withdrawal (mapped, or a column named last_visit)
    last_visit = cols.last_visit or ("last_visit" if "last_visit" in t.data.columns else None)
    if last_visit is not None:
        _check_labels(t, last_visit, list(spec.visits), log, "a visit")
    flags = {}
    for role in ("eligible", "received", "discontinued"):
        name = getattr(cols, role)
        if name is not None:
            flags[role] = _binary_column(t, name, log, role, spec.binary)
    return dict(randomised=randomised, arms=arms, sites=sites, groups=groups, flags=flags)


def _outcome_columns(
    spec: TrialSpec,
) -> tuple[list[tuple[Outcome, str, float | None, float | None]], dict]:
    """(outcome, column, lo, hi) for every column to check, and outcome -> item list."""
    checks = []
    items_of: dict[str, list[str]] = {}
    for o in spec.outcomes:
        if o.scored:
            items, lo, hi = _instrument_info(o)
            items_of[o.name] = items
            checks += [(o, c, lo, hi) for c in items]
        else:
            checks.append((o, o.column, o.min, o.max))
    return checks, items_of


def _unknown_subjects(t: RawTable, col: str, known: Iterable[str], log: _Log) -> None:
    """Rows whose subject is not in participants; hints at ids that differ only in leading
    zeros (``'7'`` vs ``'007'``, typical when one file went through SPSS or Excel)."""
    known = list(known)
    unpadded = {k.lstrip("0"): k for k in known if k is not None}
    known_set = set(known)
    for i, s in enumerate(t.data[col].tolist()):
        if s is not None and s not in known_set:
            near = unpadded.get(s.lstrip("0"))
            hint = (
                f"; did you mean {mask_value(near)!r} (leading zeros)?" if near is not None else ""
            )
            log.add(
                t.name,
                t.rows[i],
                col,
                s,
                "unknown_subject",
                f"subject {mask_value(s)!r} is not in the participants file{hint}",
            )


def _assessments(
    ctx: _Ctx, t: RawTable, part: RawTable | None, pinfo: dict | None, checks: list
) -> dict | None:
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    src = spec.assessments
    visit_col = cols.visit or "visit"
    if src.layout == "wide":
        if not _require(t, [(cols.subject, "subject")], log):
            return None
        _missing_key(t, cols.subject, log, "subject")
        _duplicates(t, [cols.subject], log, "duplicate_subject", "subject")
        bases = list(dict.fromkeys(c for _, c, _, _ in checks))
        wide_cols = set(t.data.columns)
        for b in bases:
            absent = [v for v in spec.visits if f"{b}{src.sep}{v}" not in wide_cols]
            if absent and len(absent) < len(spec.visits):
                ctx.warnings.append(
                    f"assessments: no column {b}{src.sep}<visit> for visit(s) {absent}; "
                    f"{b} is missing for everyone there"
                )
        t, fails = wide_to_long(
            t,
            subject=cols.subject,
            visit=visit_col,
            visits=list(spec.visits),
            bases=bases,
            sep=src.sep,
        )
        for f in fails:
            log.add(**f)
        ok = True
        for _, c, _, _ in checks:
            if c not in t.data.columns:
                ok = False
                log.add(
                    t.name,
                    None,
                    c,
                    None,
                    "missing_column",
                    f"no column {c}{src.sep}<visit> for any visit {list(spec.visits)} in {src.path.name}",
                )
        if not ok:
            return None
    else:
        need = [(cols.subject, "subject"), (visit_col, "visit")]
        need += [(c, f"outcome {o.name}") for o, c, _, _ in checks]
        if not _require(t, list(dict.fromkeys(need)), log):
            return None
        _missing_key(t, cols.subject, log, "subject")
        _missing_key(t, visit_col, log, "visit")
        _duplicates(t, [cols.subject, visit_col], log, "duplicate_subject_visit", "subject x visit")
    visits = _check_labels(t, visit_col, list(spec.visits), log, "a visit")
    values = {}
    for o, c, lo, hi in checks:
        if c not in values:
            what = f"score of {o.name}" if not o.scored else f"{o.instrument} item"
            cells = [f"{c}{src.sep}{v}" for v in visits] if src.layout == "wide" else None
            values[c] = _numeric_column(
                t, c, log, src.decimal, lo, hi, what, cells, integer=o.scored
            )
    subjects = t.data[cols.subject].tolist()
    if part is not None and pinfo is not None:
        known = dict(zip(part.data[cols.subject].tolist(), range(len(part.data)), strict=True))
        _unknown_subjects(t, cols.subject, known, log)
        # the same column in both files must agree
        for role, pvals in (
            ("arm", pinfo["arms"]),
            ("site", pinfo["sites"]),
            ("group", pinfo["groups"]),
        ):
            name = getattr(cols, role)
            if name is None or pvals is None or name not in t.data.columns:
                continue
            avals = _labelled(t, name, spec.arms.levels if role == "arm" else spec.sites)
            for i, (s, a) in enumerate(zip(subjects, avals, strict=True)):
                j = known.get(s)
                if j is not None and a is not None and a != pvals[j]:
                    log.add(
                        t.name,
                        t.rows[i],
                        name,
                        a,
                        "inconsistent",
                        f"{role} {mask_value(a)!r} here but {mask_value(pvals[j])!r} in participants "
                        f"row {part.rows[j]}",
                    )
        _assessed_after_withdrawal(ctx, t, part, known, subjects, visits, values)
    return dict(table=t, visits=visits, values=values, subjects=subjects)


def _assessed_after_withdrawal(ctx, t, part, known, subjects, visits, values) -> None:
    """A participant recorded as withdrawn (withdrawn_reason) after ``last_visit`` cannot have
    an observed outcome at a later visit: CONSORT would give a contradictory reason."""
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    lv_col = cols.last_visit or ("last_visit" if "last_visit" in part.data.columns else None)
    wr_col = cols.withdrawn_reason
    if lv_col is None or wr_col is None or wr_col not in part.data.columns:
        return
    order = {v: k for k, v in enumerate(spec.visits)}
    last = _labelled(part, lv_col, list(spec.visits))
    reason = part.data[wr_col].tolist()
    arrays = list(values.values())
    for i, (s, v) in enumerate(zip(subjects, visits, strict=True)):
        j = known.get(s)
        if j is None or reason[j] is None or last[j] not in order or v not in order:
            continue
        if order[v] > order[last[j]] and any(np.isfinite(a[i]) for a in arrays):
            log.add(
                t.name,
                t.rows[i],
                cols.visit or "visit",
                v,
                "inconsistent",
                f"assessed at {v!r} although participants row {part.rows[j]} records withdrawal "
                f"after {last[j]!r}; correct last_visit or the withdrawal",
            )


def _sessions(ctx: _Ctx, t: RawTable, part: RawTable | None) -> dict | None:
    cols, log = ctx.spec.columns, ctx.log
    if not _require(
        t, [(cols.subject, "subject"), (cols.session, "session"), (cols.attended, "attended")], log
    ):
        return None
    _missing_key(t, cols.subject, log, "subject")
    _missing_key(t, cols.session, log, "session")
    _duplicates(
        t, [cols.subject, cols.session], log, "duplicate_subject_session", "subject x session"
    )
    # an empty attendance cell would become "not attended" downstream (understating adherence)
    _missing_key(t, cols.attended, log, "attended (0 or 1)")
    attended = _binary_column(t, cols.attended, log, "attended", ctx.spec.binary)
    if part is not None:
        _unknown_subjects(t, cols.subject, set(part.data[cols.subject].tolist()), log)
    return dict(attended=attended)


def _time_to_event(spec: TrialSpec, part: RawTable, log: _Log) -> None:
    """Time-to-event outcomes: peerstats.event_data's checks, rows as in the file."""
    from peerstats.event_data import time_to_event_failures

    for tte in spec.time_to_event.values():
        for rec in time_to_event_failures(part.data, tte).itertuples(index=False):
            log.add(
                "participants",
                part.rows[int(rec.row) - 1],
                rec.column,
                rec.value,
                rec.check,
                rec.message,
            )


def _adverse_events(spec: TrialSpec, log: _Log) -> None:
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


def validate(
    spec: str | Path | dict | TrialSpec, *, base_dir: str | Path | None = None
) -> ValidationReport:
    """Run every check on a trial's data and, when all pass, build the Trial.

    Parameters
    ----------
    spec : str, Path, dict or TrialSpec
        The trial spec (see :func:`peerstats.read_spec`).
    base_dir : str or Path, optional
        For a dict spec: directory data paths are relative to (default: current directory).

    Returns
    -------
    ValidationReport
        ``.failures`` lists every problem; ``.trial`` is the Trial when there are none.

    Raises
    ------
    SpecError
        If the spec itself is wrong (schema, missing file, unknown instrument).

    Examples
    --------
    >>> report = validate("trial.yaml")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    spec = read_spec(spec, base_dir=base_dir)
    spec.time_to_event  # noqa: B018  (SpecError for a wrong time_to_event block, before reading)
    if spec.redcap is not None:  # types and ranges the REDCap dictionary declares (issue 21)
        from peerstats.io.redcap import with_dictionary_types

        try:
            spec = with_dictionary_types(spec)
        except ReadError:
            pass  # the same error is reported when the export is read
    checks, items_of = _outcome_columns(spec)  # SpecError for unknown instruments, before reading
    log = _Log()
    warnings: list[str] = []
    tables = _read(spec, log, warnings)
    n_rows = {k: (len(v.data) if v is not None else 0) for k, v in tables.items()}
    for t in tables.values():
        if t is not None:
            _privacy(t, log, spec.free_text, warnings)
    ctx = _Ctx(spec, log, warnings)
    part = tables.get("participants")
    pinfo = _participants(ctx, part) if part is not None else None
    part_ok = part if pinfo is not None else None
    ainfo = None
    if tables.get("assessments") is not None:
        ainfo = _assessments(ctx, tables["assessments"], part_ok, pinfo, checks)
    sinfo = None
    if tables.get("sessions") is not None:
        sinfo = _sessions(ctx, tables["sessions"], part_ok)
    # extra participant columns: numeric / categorical / text (covariates must be clean)
    extras = {}
    if part is not None and pinfo is not None:
        role_cols = set(spec.columns.renames())
        for c in part.data.columns:
            if c not in role_cols:
                extras[c] = _text_or_numeric(
                    part,
                    c,
                    spec.participants.decimal,
                    log if c in spec.covariates or default_range(c) else None,
                    f"covariate {c}" if c in spec.covariates else f"column {c}",
                    spec.covariate_types.get(c),
                )
    if part is not None and pinfo is not None:
        _time_to_event(spec, part, log)  # issue 17
    if spec.adverse_events is not None:
        _adverse_events(spec, log)  # issue 20.5: what run will need, checked here
    failures = log.frame()
    trial = None
    if len(failures) == 0:
        from peerstats.data.trial import _build_trial

        trial = _build_trial(
            spec, part, pinfo, extras, ainfo, items_of, tables.get("sessions"), sinfo, warnings
        )
    return ValidationReport(
        spec=spec, failures=failures, trial=trial, n_rows=n_rows, warnings=warnings
    )
