"""Read a REDCap export (records CSV + data dictionary) into labelled tables.

REDCap's flat records export has one row per record and event (``redcap_event_name``, e.g.
``baseline_arm_1``) and one row per instance of a repeating instrument
(``redcap_repeat_instrument``, ``redcap_repeat_instance``); a checkbox field exports one 0/1
column per choice, ``<field>___<code>`` (three underscores). The data dictionary (one row per
field) holds the labels, the choices (``"1, Yes | 2, No"``), the validation types and ranges
and the identifier flags. References for both formats: REDCap's "How to Use a REDCap Data
Dictionary" (Vanderbilt), and the redcapAPI manual, ``exportFieldNames`` ("checkbox fields have
the pattern [field_name]___[coded_checkbox_value]").

Written here rather than taken from PyCap or REDCapR: those clients fetch data from a server
and leave the labelling to the user; peerstats needs the export read offline, labelled, with
identifier fields never read and validation ranges kept as declared types.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peerstats._provenance import remember
from peerstats.exceptions import DataValidationError
from peerstats.io.readers import NA_STRINGS, ReadError, to_text

__all__ = [
    "RedcapField",
    "RedcapDictionary",
    "read_redcap",
    "read_redcap_dictionary",
    "parse_choices",
    "visit_of_event",
    "with_dictionary_types",
]

#: the data dictionary's CSV header (as REDCap writes it) -> the API metadata name
DICTIONARY_COLUMNS = {
    "Variable / Field Name": "field_name",
    "Form Name": "form_name",
    "Section Header": "section_header",
    "Field Type": "field_type",
    "Field Label": "field_label",
    "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
    "Field Note": "field_note",
    "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
    "Text Validation Min": "text_validation_min",
    "Text Validation Max": "text_validation_max",
    "Identifier?": "identifier",
}
#: field types with no column in the records export (or none worth reading)
NO_DATA_TYPES = ("descriptive", "file")
CATEGORY_TYPES = ("radio", "dropdown")
BINARY_TYPES = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}
INTEGER_VALIDATION = ("integer",)
DATE_VALIDATION = re.compile(r"^(date|datetime|datetime_seconds)_(ymd|dmy|mdy)$")
NUMBER_VALIDATION = re.compile(r"^number(_\d+dp)?(_comma_decimal)?$")
#: columns of the export that are REDCap's own bookkeeping, not data
REDCAP_COLUMNS = (
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
)
ARM_SUFFIX = re.compile(r"_arm_(\d+)$")
#: an event exported with labels: "Baseline (Arm 1: Peer support)"
ARM_LABEL = re.compile(r"\s*\(Arm (\d+):[^)]*\)$")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class RedcapField:
    """One field (variable) of a REDCap data dictionary.

    ``kind`` is what the field becomes: ``category`` (radio, dropdown), ``checkbox``,
    ``binary`` (yesno, truefalse), ``integer``, ``number`` (number validation, calc, slider),
    ``date`` or ``text``.
    """

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)
    validation: str = ""
    min: float | None = None
    max: float | None = None
    identifier: bool = False

    @property
    def kind(self) -> str:
        """What the field becomes when read (see the class docstring)."""
        if self.type in CATEGORY_TYPES:
            return "category"
        if self.type == "checkbox":
            return "checkbox"
        if self.type in BINARY_TYPES:
            return "binary"
        if self.type in ("calc", "slider"):
            return "number"
        if self.type == "text" and self.validation in INTEGER_VALIDATION:
            return "integer"
        if self.type == "text" and NUMBER_VALIDATION.match(self.validation):
            return "number"
        if self.type == "text" and DATE_VALIDATION.match(self.validation):
            return "date"
        return "text"

    @property
    def value_labels(self) -> dict[str, str]:
        """Code -> label of a category, checkbox or yes/no field (empty for others)."""
        return dict(BINARY_TYPES.get(self.type, self.choices))

    def export_columns(self) -> dict[str, str]:
        """Export column -> choice code of a checkbox (``{"field": ""}`` for other fields)."""
        if self.kind != "checkbox":
            return {self.name: ""}
        return {f"{self.name}___{_export_code(c)}": c for c in self.choices}


@dataclass(frozen=True)
class RedcapDictionary:
    """A REDCap data dictionary: the fields in order (the first is the record ID)."""

    fields: tuple[RedcapField, ...]

    @property
    def record_id(self) -> str:
        """The record ID field (REDCap's first field)."""
        return self.fields[0].name

    def get(self, name: str) -> RedcapField | None:
        """The field called ``name``, or ``None``."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Fields flagged ``Identifier? = y`` (never read)."""
        return tuple(f.name for f in self.fields if f.identifier)

    def forms(self) -> dict[str, list[RedcapField]]:
        """Form (instrument) name -> its fields, in dictionary order."""
        out: dict[str, list[RedcapField]] = {}
        for f in self.fields:
            out.setdefault(f.form, []).append(f)
        return out


def _export_code(code: str) -> str:
    """A choice code as it appears in a checkbox export column: lower case, every character
    other than a letter, digit or underscore replaced by ``_`` (``-1`` -> ``_1``)."""
    return re.sub(r"[^0-9a-z_]", "_", code.lower())


def clean_label(text: Any) -> str:
    """A field or choice label as plain text: HTML tags removed, entities decoded, white space
    collapsed."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", str(text)))).strip()


def parse_choices(text: Any) -> dict[str, str]:
    """Parse REDCap choices ``"1, Yes | 2, No"`` into ``{"1": "Yes", "2": "No"}``.

    Each choice is split at its first comma (a label may hold commas); a choice without a
    comma is its own code and label.
    """
    out: dict[str, str] = {}
    body = clean_label(text) if text is not None else ""
    if not body:
        return out
    for part in str(text).split("|"):
        part = part.strip()
        if not part:
            continue
        code, sep, label = part.partition(",")
        code = code.strip()
        out[code] = clean_label(label) if sep else code
    return out


def _number(text: Any) -> float | None:
    t = to_text(text) if not isinstance(text, str) else text.strip()
    if t in (None, "") or t in NA_STRINGS:
        return None
    try:
        return float(t)
    except ValueError:
        return None  # a date range ('2020-01-01') or a piped value: not a number


def _frame(source: Any, what: str) -> pd.DataFrame:
    """A path or a DataFrame as a frame of stripped text (``""`` for missing)."""
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise ReadError(f"REDCap {what} not found: {path}")
        try:
            raw = path.read_bytes()  # once: the manifest records the digest of these bytes
            remember(path, raw)
            df = pd.read_csv(
                io.BytesIO(raw),
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
            )
        except (UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ReadError(f"cannot read the REDCap {what} {path.name}: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    for c in df.columns:
        df[c] = [
            "" if (t := (v if isinstance(v, str) else to_text(v))) is None else t.strip()
            for v in df[c].tolist()
        ]
    return df.astype(object)


def read_redcap_dictionary(dictionary: str | Path | pd.DataFrame) -> RedcapDictionary:
    """Read a REDCap data dictionary (the CSV REDCap writes, or the API's metadata export).

    Parameters
    ----------
    dictionary : path or DataFrame
        Columns as REDCap names them in the CSV ("Variable / Field Name", "Form Name",
        "Field Type", "Field Label", "Choices, Calculations, OR Slider Labels", "Text
        Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
        "Identifier?", ...) or as the API does (``field_name``, ``form_name``, ...).

    Returns
    -------
    RedcapDictionary

    Raises
    ------
    ReadError
        If the file is missing, or lacks the field name, form name or field type column.
    """
    df = _frame(dictionary, "data dictionary")
    df = df.rename(columns={k: v for k, v in DICTIONARY_COLUMNS.items() if k in df.columns})
    need = ["field_name", "form_name", "field_type"]
    absent = [n for n in need if n not in df.columns]
    if absent:
        wanted = [k for k, v in DICTIONARY_COLUMNS.items() if v in absent]
        raise ReadError(
            f"the REDCap data dictionary has no column(s) {wanted}; columns are "
            f"{list(df.columns)[:20]} (download it from REDCap: Project Setup > Data Dictionary)"
        )
    fields = []
    for rec in df.to_dict("records"):
        name = rec["field_name"]
        if not name:
            continue
        ftype = rec["field_type"].lower()
        choices = rec.get("select_choices_or_calculations", "")
        fields.append(
            RedcapField(
                name=name,
                form=rec["form_name"],
                type=ftype,
                label=clean_label(rec.get("field_label", "")) or name,
                choices=parse_choices(choices)
                if ftype in ("radio", "dropdown", "checkbox")
                else {},
                validation=rec.get("text_validation_type_or_show_slider_number", "").lower(),
                min=_number(rec.get("text_validation_min", "")),
                max=_number(rec.get("text_validation_max", "")),
                identifier=rec.get("identifier", "").lower() in ("y", "yes", "1"),
            )
        )
    if not fields:
        raise ReadError("the REDCap data dictionary lists no fields")
    return RedcapDictionary(tuple(fields))


def visit_of_event(event: str) -> str:
    """The visit an event is: its unique name without REDCap's ``_arm_N`` suffix (or, in an
    export with labels, its label without `` (Arm N: ...)``)."""
    return ARM_LABEL.sub("", ARM_SUFFIX.sub("", event))


def humanise(code: str) -> str:
    """``week_10`` -> ``Week 10`` (a readable default for an event name)."""
    text = str(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else str(code)


# --------------------------------------------------------------------------------------------
# typed columns
# --------------------------------------------------------------------------------------------


class _Problems:
    """Failures collected while typing the export (raised once, as DataValidationError)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, rows: list[int], column: str, values: list[str], check: str, msg: str) -> None:
        n = len(rows)
        shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if n > 5 else "")
        self.rows.append(
            dict(
                table="records",
                row=rows[0],
                column=column,
                value=values[0],
                check=check,
                message=f"{msg} ({n} row{'s' if n != 1 else ''}: {shown})",
            )
        )


def _mapped(vals: list[str], get: Any) -> tuple[list, list[int]]:
    """Each value mapped by ``get`` (None for an empty one) and the positions of the non-empty
    values ``get`` cannot map (None)."""
    out, bad = [], []
    for i, v in enumerate(vals):
        x = None if v == "" else get(v)
        if v != "" and x is None:
            bad.append(i)
        out.append(x)
    return out, bad


def _flag(probs, rows: np.ndarray, col: str, vals: list[str], idx, check: str, message: str):
    """Report the values at positions ``idx`` of column ``col`` as a ``check`` problem."""
    probs.add([int(rows[i]) for i in idx], col, [vals[i] for i in idx], check, message)


def _category(f: RedcapField, col: str, vals: list[str], rows: np.ndarray, probs) -> pd.Series:
    labels = f.value_labels
    by_label = {v: v for v in labels.values()}  # an export 'with labels' holds the labels
    out, bad = _mapped(vals, lambda v: labels.get(v, by_label.get(v)))
    if bad:
        msg = (
            f"{f.name}: code(s) {sorted({vals[i] for i in bad})[:5]} are not among the choices "
            f"{labels} of the data dictionary"
        )
        _flag(probs, rows, col, vals, bad, "unknown_code", msg)
    cats = list(dict.fromkeys(labels.values()))
    return pd.Series(pd.Categorical(out, categories=cats), name=col)


def _binary(col: str, vals: list[str], rows: np.ndarray, probs, labels: dict) -> pd.Series:
    truth = {"1": 1, "0": 0, "checked": 1, "unchecked": 0}
    truth.update({lab.lower(): int(code) for code, lab in labels.items()})
    out, bad = _mapped(vals, lambda v: truth.get(v.lower()))
    if bad:
        msg = f"{col}: {sorted({vals[i] for i in bad})[:5]} are not 0/1"
        _flag(probs, rows, col, vals, bad, "non_binary", msg)
    return pd.Series(pd.array(out, dtype="Int64"), name=col)


def _numeric(f: RedcapField, col: str, vals: list[str], rows: np.ndarray, probs) -> pd.Series:
    comma = "comma_decimal" in f.validation
    out = np.full(len(vals), np.nan)
    bad = []
    for i, v in enumerate(vals):
        if v == "":
            continue
        t = v.replace(",", ".") if comma else v
        try:
            out[i] = float(t)
        except ValueError:
            bad.append(i)
    if bad:
        msg = f"{f.name} ({f.validation or f.type}): {[vals[i] for i in bad][:5]} are not numbers"
        _flag(probs, rows, col, vals, bad, "non_numeric", msg)
    if f.kind == "integer":
        frac = np.isfinite(out) & (out != np.round(out))
        if frac.any():
            idx = np.flatnonzero(frac)
            msg = f"{f.name} is validated as an integer but holds {[vals[i] for i in idx][:5]}"
            _flag(probs, rows, col, vals, idx, "non_integer", msg)
            return pd.Series(out, name=col)
        return pd.Series(
            pd.array([None if np.isnan(x) else int(x) for x in out], "Int64"), name=col
        )
    return pd.Series(out, name=col)


def _typed(f: RedcapField, df: pd.DataFrame, rows: np.ndarray, probs) -> dict[str, pd.Series]:
    """The columns a field becomes, named as the caller will see them (checkbox choices by
    their label)."""
    kind = f.kind
    if kind == "checkbox":
        out = {}
        for col, code in f.export_columns().items():
            if col in df.columns:
                out[f.choices[code]] = _binary(col, df[col].tolist(), rows, probs, {})
        return out
    vals = df[f.name].tolist()
    if kind == "category":
        return {f.name: _category(f, f.name, vals, rows, probs)}
    if kind == "binary":
        return {f.name: _binary(f.name, vals, rows, probs, f.value_labels)}
    if kind in ("number", "integer"):
        return {f.name: _numeric(f, f.name, vals, rows, probs)}
    if kind == "date":
        return {f.name: pd.Series(pd.to_datetime(vals, errors="coerce"), name=f.name)}
    return {f.name: pd.Series([v if v != "" else np.nan for v in vals], dtype=object, name=f.name)}


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


@dataclass
class _Export:
    """The export split by row kind, with every readable field typed."""

    dictionary: RedcapDictionary
    records: pd.DataFrame  # text
    rows: np.ndarray  # 1-based data row in the file
    columns: dict[str, dict[str, pd.Series]]  # field -> {output column: typed series}
    repeating: np.ndarray  # row belongs to a repeating instrument
    longitudinal: bool
    warnings: list[str] = field(default_factory=list)


def _load(records: Any, dictionary: Any) -> _Export:
    dd = read_redcap_dictionary(dictionary)
    df = _frame(records, "records")
    rid = dd.record_id
    if rid not in df.columns:
        raise ReadError(
            f"the REDCap records have no column {rid!r}, the record ID (the first field of the "
            f"data dictionary); columns are {list(df.columns)[:20]}"
        )
    rows = np.arange(1, len(df) + 1)
    probs = _Problems()
    known: set[str] = {rid, *REDCAP_COLUMNS}
    columns: dict[str, dict[str, pd.Series]] = {}
    for f in dd.fields:
        exported = f.export_columns()
        known.update(exported)
        if f.identifier or f.type in NO_DATA_TYPES or f.name == rid:
            continue  # identifiers are never read
        if f.kind != "checkbox" and f.name not in df.columns:
            continue  # a field not in this export (exports may hold a subset)
        columns[f.name] = _typed(f, df, rows, probs)
    if probs.rows:
        raise DataValidationError(pd.DataFrame(probs.rows), context="REDCap export")
    repeat = df.get("redcap_repeat_instrument", pd.Series([""] * len(df))).astype(str)
    export = _Export(
        dd, df, rows, columns, (repeat != "").to_numpy(), "redcap_event_name" in df.columns
    )
    forms = {f.form for f in dd.fields}
    extra = [
        c
        for c in df.columns
        if c not in known
        and not (c.endswith("_complete") and c[: -len("_complete")] in forms)
        and not c.endswith("_timestamp")
    ]
    if extra:
        export.warnings.append(f"columns not in the data dictionary were not read: {extra[:10]}")
    return export


def _has_data(series: pd.Series, checkbox: bool) -> np.ndarray:
    if checkbox:  # REDCap exports unchecked boxes as 0 on every row
        return (series.fillna(0).astype(float) > 0).to_numpy()
    return series.notna().to_numpy()


def _form_columns(ex: _Export, form_fields: list[RedcapField]) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for f in form_fields:
        for name, s in ex.columns.get(f.name, {}).items():
            if name in out:  # two checkboxes share a choice label: name by field too
                name = f"{f.label}: {name}"
            out[name] = s
    return out


def _longitudinal_forms(ex: _Export, forms: dict[str, list[RedcapField]]) -> set[str]:
    """Forms with data in more than one event of some record (assessments, not participant
    characteristics)."""
    if not ex.longitudinal:
        return set()
    keep = ~ex.repeating
    rid = ex.records[ex.dictionary.record_id].to_numpy()[keep]
    multi = set()
    for form, fields in forms.items():
        seen = np.zeros(keep.sum(), bool)
        for f in fields:
            for s in ex.columns.get(f.name, {}).values():
                seen |= _has_data(s, f.kind == "checkbox")[keep]
        counts = pd.Series(seen.astype(int)).groupby(rid).sum()
        if (counts > 1).any():
            multi.add(form)
    return multi


def _first_per_record(frame: pd.DataFrame, rid: str) -> pd.DataFrame:
    """One row per record: each column's first non-missing value (events in export order)."""
    g = frame.groupby(rid, sort=False)
    out = g.first()
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c], categories=frame[c].cat.categories)
        elif str(frame[c].dtype) == "Int64":
            out[c] = g[c].max()  # a box checked at any event is checked
    return out.reset_index()


def _attrs(df: pd.DataFrame, ex: _Export, fields: list[RedcapField]) -> pd.DataFrame:
    """Labels for the caller and for drafting a spec: ``attrs['labels']`` (column -> field or
    choice label), ``attrs['value_labels']`` and ``attrs['types']`` (column -> (type, min, max))."""
    labels, values, types = {}, {}, {}
    for f in fields:
        if f.kind == "checkbox":
            for lab in f.choices.values():
                if lab in df.columns:
                    labels[lab] = f"{f.label}: {lab}"
                    types[lab] = ("binary", 0.0, 1.0)
            continue
        if f.name not in df.columns:
            continue
        labels[f.name] = f.label
        if f.value_labels:
            values[f.name] = f.value_labels
        types[f.name] = (f.kind, f.min, f.max)
    df.attrs = {"labels": labels, "value_labels": values, "types": types}  # + "rows" (1-based)
    return df


def _event_columns(ex: _Export, mask: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ex.longitudinal:
        events = ex.records["redcap_event_name"].to_numpy()[mask]
        out["visit"] = [visit_of_event(e) for e in events]
        arms = [ARM_SUFFIX.search(e) or ARM_LABEL.search(e) for e in events]
        if len({m.group(1) for m in arms if m}) > 1:
            out["redcap_arm"] = pd.array([int(m.group(1)) if m else None for m in arms], "Int64")
    return out


def _participants(ex: _Export, forms: dict, longitudinal: set[str]) -> pd.DataFrame:
    rid = ex.dictionary.record_id
    keep = ~ex.repeating
    fields = [f for form, fs in forms.items() if form not in longitudinal for f in fs]
    cols = {k: s[keep].reset_index(drop=True) for k, s in _form_columns(ex, fields).items()}
    frame = pd.DataFrame({rid: ex.records[rid].to_numpy()[keep], **cols})
    arm = _event_columns(ex, keep).get("redcap_arm")
    if arm is not None:
        frame.insert(1, "redcap_arm", arm)
    if "redcap_data_access_group" in ex.records.columns:  # the record's group (often a site)
        dag = ex.records["redcap_data_access_group"].to_numpy()[keep]
        frame.insert(1, "redcap_data_access_group", [d or None for d in dag])
    out = _attrs(_first_per_record(frame, rid), ex, fields)
    first = pd.Series(ex.rows[keep]).groupby(ex.records[rid].to_numpy()[keep], sort=False).first()
    out.attrs["rows"] = [int(r) for r in first.reindex(out[rid]).to_numpy()]
    return out


def _assessments(ex: _Export, forms: dict, longitudinal: set[str]) -> pd.DataFrame:
    rid = ex.dictionary.record_id
    keep = ~ex.repeating
    fields = [f for form, fs in forms.items() if form in longitudinal for f in fs]
    cols = {k: s[keep].reset_index(drop=True) for k, s in _form_columns(ex, fields).items()}
    base = {rid: ex.records[rid].to_numpy()[keep], **_event_columns(ex, keep)}
    if "visit" not in base:
        base["visit"] = [None] * int(keep.sum())
    instance = ex.records.get("redcap_repeat_instance")
    if instance is not None and (instance.to_numpy()[keep] != "").any():  # repeating events
        inst = pd.to_numeric(instance.to_numpy()[keep], errors="coerce")
        base["redcap_repeat_instance"] = pd.array(
            [None if np.isnan(x) else int(x) for x in inst], "Int64"
        )
    out = _attrs(pd.DataFrame({**base, **cols}), ex, fields)
    out.attrs["rows"] = ex.rows[keep].tolist()
    return out


def _repeating(ex: _Export, form: str, fields: list[RedcapField]) -> pd.DataFrame:
    rid = ex.dictionary.record_id
    mask = (ex.records["redcap_repeat_instrument"] == form).to_numpy()
    inst = pd.to_numeric(ex.records["redcap_repeat_instance"].to_numpy()[mask], errors="coerce")
    cols = {k: s[mask].reset_index(drop=True) for k, s in _form_columns(ex, fields).items()}
    base = {rid: ex.records[rid].to_numpy()[mask], **_event_columns(ex, mask)}
    base.pop("redcap_arm", None)
    base["redcap_repeat_instance"] = pd.array(
        [None if np.isnan(x) else int(x) for x in inst], "Int64"
    )
    out = _attrs(pd.DataFrame({**base, **cols}), ex, fields)
    out.attrs["rows"] = ex.rows[mask].tolist()
    return out


def read_redcap(
    records: str | Path | pd.DataFrame, dictionary: str | Path | pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Read a REDCap records export and its data dictionary into labelled tables.

    Parameters
    ----------
    records : path or DataFrame
        The flat records export (CSV, raw codes; an export "with labels" is read too):
        the record ID, ``redcap_event_name`` (longitudinal projects),
        ``redcap_repeat_instrument`` / ``redcap_repeat_instance`` (repeating instruments),
        one column per field, ``<field>___<code>`` per checkbox choice.
    dictionary : path or DataFrame
        The project's data dictionary (see :func:`read_redcap_dictionary`).

    Returns
    -------
    dict of str to DataFrame
        ``participants``: one row per record from the non-repeating forms that hold data at
        one event per record (radio/dropdown fields as Categoricals of their choice labels,
        checkboxes as one 0/1 column per choice named by the choice label, yes/no as 0/1);
        ``assessments``: one row per record and event (non-repeating rows), ``visit`` = the
        event name without ``_arm_N``, with the forms that hold data at more than one event;
        one table per repeating instrument, named as REDCap names it, one row per instance
        (``redcap_repeat_instance``). ``redcap_arm`` is added when the project has more than
        one arm. Fields flagged ``Identifier? = y`` are never read. Every table's ``attrs``
        hold ``labels`` (column -> field label), ``value_labels`` and ``types`` (column ->
        (kind, min, max) from the validation type and range).

    Raises
    ------
    ReadError
        A file is missing or unreadable, or the records lack the record ID column.
    DataValidationError
        A code is not among its field's choices, or a validated number/integer field holds
        text (each problem once per column, with its count and first rows).

    Notes
    -----
    Formats: REDCap's data dictionary ("Variable / Field Name", "Form Name", "Field Type",
    "Field Label", "Choices, Calculations, OR Slider Labels" as ``"1, Yes | 2, No"``, "Text
    Validation Type OR Show Slider Number", "Text Validation Min/Max", "Identifier?") and the
    checkbox export names ``[field_name]___[coded_value]`` (redcapAPI, ``exportFieldNames``).
    Data are synthetic in every test.

    Examples
    --------
    >>> tables = read_redcap("export.csv", "dictionary.csv")  # doctest: +SKIP
    >>> tables["assessments"]["visit"].unique()  # doctest: +SKIP
    array(['baseline', 'week_10', 'month_6'], dtype=object)
    """
    ex = _load(records, dictionary)
    forms = ex.dictionary.forms()
    repeat_forms = []
    if "redcap_repeat_instrument" in ex.records.columns:
        repeat_forms = [f for f in dict.fromkeys(ex.records["redcap_repeat_instrument"]) if f]
    plain = {k: v for k, v in forms.items() if k not in repeat_forms}
    multi = _longitudinal_forms(ex, plain)
    out = {
        "participants": _participants(ex, plain, multi),
        "assessments": _assessments(ex, plain, multi),
    }
    for form in repeat_forms:
        out[form] = _repeating(ex, form, forms.get(form, []))
    for df in out.values():
        df.attrs["warnings"] = list(ex.warnings)
    return out


# --------------------------------------------------------------------------------------------
# a REDCap export as the raw tables of a trial spec (source: {redcap: ...})
# --------------------------------------------------------------------------------------------


def _as_text(series: pd.Series) -> list:
    """Typed values back to the text cells validation reads (labels for categories)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else to_text(v) for v in series]
    return [
        None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else to_text(v)
        for v in series.astype(object)
    ]


def raw_tables(source: Any) -> dict[str, Any]:
    """The tables of a trial spec's REDCap source as :class:`~peerstats.io.RawTable` text
    tables: ``participants``, ``assessments`` and, when ``source.sessions`` names a repeating
    instrument, ``sessions``. Choice labels replace codes; field labels become the tables'
    ``variable_labels``; row numbers are rows of the records export (a participant's:
    the first row of the record)."""
    from peerstats.io.readers import RawTable

    tables = read_redcap(source.records, source.dictionary)
    wanted = {"participants": "participants", "assessments": "assessments"}
    if source.sessions:
        if source.sessions not in tables:
            repeating = [k for k in tables if k not in wanted]
            raise ReadError(
                f"source/redcap/sessions: {source.sessions!r} is not a repeating instrument of "
                f"the export; repeating instruments are {repeating}"
            )
        wanted["sessions"] = source.sessions
    out = {}
    for name, key in wanted.items():
        df = tables[key]
        data = pd.DataFrame({c: _as_text(df[c]) for c in df.columns}, dtype=object)
        labels = dict(df.attrs.get("labels", {}))
        out[name] = RawTable(
            name,
            Path(source.records),
            data,
            np.asarray(df.attrs.get("rows", np.arange(1, len(df) + 1)), dtype=int),
            variable_labels=labels,
        )
    return out


def with_dictionary_types(spec: Any) -> Any:
    """The trial spec with what its REDCap data dictionary declares and the spec does not:
    covariate types and ranges from the validation (category levels from the choice labels,
    0/1 for a checkbox choice or yes/no field), and the range of a score outcome from its
    validation min/max (issue 21). The spec's own declarations win.

    Raises
    ------
    ReadError
        The dictionary cannot be read.
    """
    import dataclasses

    from peerstats.data.trial_spec import Covariate

    dd = read_redcap_dictionary(spec.redcap.dictionary)
    by_column: dict[str, tuple] = {}
    for f in dd.fields:
        if f.kind == "checkbox":
            by_column.update({lab: ("integer", 0.0, 1.0, None) for lab in f.choices.values()})
        elif f.kind == "category":
            by_column[f.name] = ("category", None, None, tuple(f.value_labels.values()))
        elif f.kind in ("integer", "number"):
            by_column[f.name] = (f.kind, f.min, f.max, None)
        elif f.kind == "binary":
            by_column[f.name] = ("integer", 0.0, 1.0, None)
    types = dict(spec.covariate_types)
    for c in spec.covariates:
        if c not in types and c in by_column:
            kind, lo, hi, levels = by_column[c]
            types[c] = Covariate(name=c, type=kind, min=lo, max=hi, levels=levels)
    outcomes = []
    for o in spec.outcomes:
        got = by_column.get(o.column or "")
        if got is not None and got[0] in ("integer", "number") and o.min is None and o.max is None:
            o = dataclasses.replace(o, min=got[1], max=got[2])
        outcomes.append(o)
    return dataclasses.replace(spec, covariate_types=types, outcomes=tuple(outcomes))
