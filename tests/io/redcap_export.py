"""Write a REDCap-format export (records CSV + data dictionary CSV) of a SYNTHETIC trial.

A longitudinal project with two arms (arm 1: peer support, arm 2: usual services), three events
per arm (baseline, week_10, month_6), a repeating ``session`` instrument (week_10 event of arm
1), checkbox fields, a yes/no field, validated integer/number/date fields and identifier fields
(name, e-mail) that must never be read. Every value is made up.

The header of the dictionary and the choice syntax are REDCap's (Vanderbilt, "How to Use a
REDCap Data Dictionary"); checkbox columns are ``<field>___<code>`` (redcapAPI manual,
``exportFieldNames``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DICTIONARY_HEADER = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]

# name, form, type, label, choices, validation, min, max, identifier
FIELDS = [
    ("record_id", "enrolment", "text", "Record ID", "", "", "", "", ""),
    ("full_name", "enrolment", "text", "Full name", "", "", "", "", "y"),
    ("email", "enrolment", "text", "E-mail", "", "email", "", "", "y"),
    (
        "alloc",
        "enrolment",
        "radio",
        "Allocated to",
        "1, Peer support | 2, Usual services",
        "",
        "",
        "",
        "",
    ),
    (
        "kommune",
        "enrolment",
        "dropdown",
        "Municipality",
        "1, Aarhus | 2, Odense | 3, Vejle",
        "",
        "",
        "",
        "",
    ),
    ("alder", "enrolment", "text", "Age (years)", "", "integer", "18", "90", ""),
    ("koen", "enrolment", "radio", "<b>Gender</b>", "1, Woman | 2, Man | 3, Other", "", "", "", ""),
    (
        "diag",
        "enrolment",
        "checkbox",
        "Diagnoses",
        "1, Depression | 2, Anxiety disorder | 3, Psychosis",
        "",
        "",
        "",
        "",
    ),
    ("bor_alene", "enrolment", "yesno", "Lives alone", "", "", "", "", ""),
    ("rand_date", "enrolment", "text", "Date of randomisation", "", "date_ymd", "", "", ""),
    (
        "qpr_tot",
        "outcomes",
        "text",
        "Personal recovery (QPR-15 total)",
        "",
        "integer",
        "0",
        "60",
        "",
    ),
    ("trivsel", "outcomes", "text", "Well-being score", "", "number", "0", "10", ""),
    (
        "stoette",
        "outcomes",
        "checkbox",
        "Support received",
        "1, Family | 2, Friends | 3, Professionals",
        "",
        "",
        "",
        "",
    ),
    ("sess_date", "session", "text", "Session date", "", "date_ymd", "", "", ""),
    ("sess_attended", "session", "yesno", "Attended the session", "", "", "", "", ""),
    ("sess_note", "session", "notes", "Session note", "", "", "", "", ""),
]

VISITS = ("baseline", "week_10", "month_6")
N_SESSIONS = 6


def write_dictionary(path: Path) -> Path:
    """Write the data dictionary CSV (REDCap's header, one row per field)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(DICTIONARY_HEADER)
        for name, form, ftype, label, choices, val, lo, hi, ident in FIELDS:
            row = [name, form, "", ftype, label, choices, "", val, lo, hi, ident]
            w.writerow(row + [""] * (len(DICTIONARY_HEADER) - len(row)))
    return path


def _columns() -> list[str]:
    cols = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    for name, form, ftype, _, choices, *_ in FIELDS[1:]:
        if ftype == "checkbox":
            cols += [f"{name}___{c.split(',')[0].strip()}" for c in choices.split("|")]
        else:
            cols.append(name)
        if name in ("rand_date", "stoette", "sess_note"):
            cols.append(f"{form}_complete")
    return cols


def _record_rows(i: int, arm: int, rng: np.random.Generator) -> list[dict]:
    rid = str(i + 1)
    rows = []
    base = {
        "record_id": rid,
        "full_name": f"Person {rid}",
        "email": f"person{rid}@example.org",
        "alloc": str(arm),
        "kommune": str(1 + i % 3),
        "alder": str(int(rng.integers(19, 80))) if i != 4 else "",  # one age not given
        "koen": str(1 + int(rng.integers(0, 3))),
        "diag___1": str(int(rng.random() < 0.6)),
        "diag___2": str(int(rng.random() < 0.5)),
        "diag___3": str(int(rng.random() < 0.2)),
        "bor_alene": str(int(rng.random() < 0.4)),
        "rand_date": f"2023-{1 + i % 12:02d}-{1 + i % 27:02d}",
        "enrolment_complete": "2",
    }
    level = rng.normal(30, 7)
    for k, visit in enumerate(VISITS):
        row = {"record_id": rid, "redcap_event_name": f"{visit}_arm_{arm}"}
        if k == 0:
            row.update(base)
        else:  # REDCap writes unchecked boxes as 0 on every event row
            row.update({f"diag___{c}": "0" for c in (1, 2, 3)})
        effect = 5.0 * k / 2 if arm == 1 else 0.0
        missing = k > 0 and rng.random() < 0.1
        if not missing:
            row["qpr_tot"] = str(int(np.clip(round(level + effect + rng.normal(0, 4)), 0, 60)))
            row["trivsel"] = f"{np.clip(5 + rng.normal(0, 1.5), 0, 10):.1f}"
            row.update({f"stoette___{c}": str(int(rng.random() < 0.5)) for c in (1, 2, 3)})
            row["outcomes_complete"] = "2"
        rows.append(row)
    if arm == 1:
        for s in range(1, N_SESSIONS + 1):
            rows.append(
                {
                    "record_id": rid,
                    "redcap_event_name": f"week_10_arm_{arm}",
                    "redcap_repeat_instrument": "session",
                    "redcap_repeat_instance": str(s),
                    "sess_date": f"2023-03-{s + 1:02d}",
                    "sess_attended": str(int(rng.random() < 0.75)),
                    "sess_note": "went well" if s % 2 else "",
                    "session_complete": "2",
                }
            )
    return rows


def write_records(path: Path, n: int = 60, seed: int = 21) -> Path:
    """Write the records export: ``n`` records, alternately arm 1 and arm 2."""
    rng = np.random.default_rng(seed)
    cols = _columns()
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        for i in range(n):
            for row in _record_rows(i, 1 + i % 2, rng):
                w.writerow(row)
    return path


def write_export(folder: Path, n: int = 60, seed: int = 21) -> tuple[Path, Path]:
    """Write ``records.csv`` and ``dictionary.csv`` into ``folder``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_records(folder / "records.csv", n, seed),
        write_dictionary(folder / "dictionary.csv"),
    )
