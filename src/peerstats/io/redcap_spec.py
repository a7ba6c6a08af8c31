"""Draft a trial spec from a REDCap data dictionary (``peerstats init --from-redcap``).

The draft is for the statistician to edit: it names the record ID as the subject, guesses the
arm and site fields from their names and labels, turns every validated number field of a form
measured at several events into an outcome (its range from the dictionary's validation min/max)
and every other characteristic into a declared covariate (category levels from the choice
labels, number/integer ranges from the validation range). Every guess is marked ``# check``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from peerstats.io.redcap import (
    RedcapDictionary,
    RedcapField,
    read_redcap,
    read_redcap_dictionary,
    visit_of_event,
)

__all__ = ["draft_trial_spec"]

ARM_WORDS = re.compile(r"arm|alloc|random|treat|group|behandl|grupp", re.I)
SITE_WORDS = re.compile(r"site|municipal|kommun|centre|center|clinic|region|ort\b|sjukhus", re.I)
CONTROL_WORDS = re.compile(r"usual|control|kontroll|wait|standard|tau|sædvan|vanlig", re.I)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _pick(fields: list[RedcapField], words: re.Pattern) -> RedcapField | None:
    for f in fields:
        if f.kind == "category" and (words.search(f.name) or words.search(f.label)):
            return f
    return None


def _covariate(f: RedcapField) -> dict[str, Any] | None:
    if f.kind == "category":
        return {"type": "category", "levels": list(f.value_labels.values())}
    if f.kind in ("integer", "number"):
        decl: dict[str, Any] = {"type": f.kind}
        decl.update({k: v for k, v in (("min", f.min), ("max", f.max)) if v is not None})
        return decl
    if f.kind == "binary":
        return {"type": "integer", "min": 0, "max": 1}
    return None


def _events(records: Any) -> list[str]:
    df = (
        pd.read_csv(
            records, dtype=str, keep_default_na=False, usecols=lambda c: c in ("redcap_event_name",)
        )
        if not isinstance(records, pd.DataFrame)
        else records
    )
    if "redcap_event_name" not in df.columns:
        return []
    return list(dict.fromkeys(visit_of_event(e) for e in df["redcap_event_name"] if e))


def _roles(dd: RedcapDictionary, tables: dict | None) -> tuple[list, list, list]:
    """(participant fields, outcome fields, repeating instruments)."""
    if tables is not None:
        pcols = set(tables["participants"].columns)
        acols = set(tables["assessments"].columns)
        repeating = [k for k in tables if k not in ("participants", "assessments")]
    else:  # without records: the record ID's form holds characteristics, others outcomes
        first = dd.fields[0].form
        pcols = {f.name for f in dd.fields if f.form == first}
        acols = {f.name for f in dd.fields if f.form != first}
        repeating = []
    usable = [f for f in dd.fields[1:] if not f.identifier and f.form not in repeating]
    part = [
        f
        for f in usable
        if f.name in pcols
        or (f.kind == "checkbox" and f.form in {g.form for g in usable if g.name in pcols})
    ]
    outs = [f for f in usable if f.name in acols and f.kind in ("integer", "number")]
    return part, outs, repeating


def draft_trial_spec(
    dictionary: str | Path | pd.DataFrame,
    *,
    records: str | Path | pd.DataFrame | None = None,
    name: str = "my_trial",
    spec_dir: str | Path | None = None,
) -> str:
    """A draft trial spec (YAML text) for a REDCap project.

    Parameters
    ----------
    dictionary : path or DataFrame
        The data dictionary.
    records : path or DataFrame, optional
        The records export: with it the draft knows the events (visits), which forms are
        measured at several events (outcomes) and the repeating instruments (sessions).
    name : str
        The trial's name in the draft.
    spec_dir : path, optional
        The folder the spec will be saved in: the data paths are written relative to it.

    Returns
    -------
    str
        YAML to save as ``trial.yaml`` and edit; guesses are marked ``# check``.
    """
    import yaml

    dd = read_redcap_dictionary(dictionary)
    tables = read_redcap(records, dictionary) if records is not None else None
    part, outs, repeating = _roles(dd, tables)
    arm, site = _pick(part, ARM_WORDS), _pick(part, SITE_WORDS)
    visits = _events(records) if records is not None else []
    spec: dict[str, Any] = {
        "trial": {"name": name, "design": "parallel" if arm else "single-arm"},
        "source": {
            "redcap": {
                "records": _path_text(records, "records.csv", spec_dir),
                "dictionary": _path_text(dictionary, "dictionary.csv", spec_dir),
            }
        },
        "columns": {"subject": dd.record_id, "visit": "visit"},
        "visits": visits or ["baseline", "post", "follow_up"],
    }
    if arm is not None:
        levels = list(arm.value_labels.values())
        ref = next((lv for lv in levels if CONTROL_WORDS.search(lv)), levels[-1])
        spec["columns"]["arm"] = arm.name
        spec["arms"] = {"levels": levels, "reference": ref}
    else:
        spec["arms"] = {"levels": ["intervention"]}
    if site is not None:
        spec["columns"]["site"] = site.name
        spec["sites"] = list(site.value_labels.values())
        spec["strata"] = ["site"]  # the standard name of the site column
    session_form = _session_form(dd, repeating)
    if session_form is not None:
        spec["source"]["redcap"]["sessions"] = session_form[0]
        spec["columns"]["session"] = "redcap_repeat_instance"
        spec["columns"]["attended"] = session_form[1]
    spec["outcomes"] = {
        (f.name if NAME.match(f.name) else f"outcome_{k}"): {
            "column": f.name,
            "label": f.label,
            **{k2: v for k2, v in (("min", f.min), ("max", f.max)) if v is not None},
        }
        for k, f in enumerate(outs)
    }
    covs = {}
    for f in part:
        if f in (arm, site) or f.kind in ("date", "text"):
            continue
        if f.kind == "checkbox":
            for lab in f.choices.values():
                covs[lab] = {"type": "integer", "min": 0, "max": 1}
        elif (decl := _covariate(f)) is not None:
            covs[f.name] = decl
    spec["covariates"] = covs
    head = _header(dd, arm, site, visits)
    return head + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def _path_text(source: Any, default: str, spec_dir: str | Path | None) -> str:
    """A data path as the spec writes it (relative to the spec's folder when known)."""
    import os

    if source is None or isinstance(source, pd.DataFrame):
        return default
    if spec_dir is None:
        return str(source)
    return Path(os.path.relpath(Path(source).resolve(), Path(spec_dir).resolve())).as_posix()


def _session_form(dd: RedcapDictionary, repeating: list[str]) -> tuple[str, str] | None:
    for form in repeating:
        for f in dd.forms().get(form, []):
            if f.kind == "binary":
                return form, f.name
    return None


def _header(dd: RedcapDictionary, arm, site, visits) -> str:
    lines = [
        "# Draft trial spec from a REDCap data dictionary (peerstats init --from-redcap).",
        "# Edit before use. Every field label and choice label comes from the dictionary.",
        f"# check: arm field {arm.name if arm else None!r}, site field "
        f"{site.name if site else None!r} (guessed from names and labels)",
        "# check: outcomes (numbers measured at several events) and covariates",
    ]
    if not visits:
        lines.append("# check: visits are placeholders; give --records to read the events")
    if dd.identifiers:
        lines.append(f"# identifier fields never read: {list(dd.identifiers)}")
    return "\n".join(lines) + "\n"
