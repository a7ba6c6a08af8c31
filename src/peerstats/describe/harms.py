"""Harms (CONSORT Harms 2022): adverse events by arm and seriousness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from peerstats._identifiers import looks_identifying, mask_value
from peerstats.describe._common import (
    NOT_A_COLUMN,
    arm_levels,
    as_frames,
    randomised_mask,
    require_columns,
)
from peerstats.describe.render import Table
from peerstats.exceptions import DataValidationError
from peerstats.io.coerce import NO, YES  # one yes/no vocabulary (issue 21)

__all__ = ["harms_table"]

_TRUE = set(YES)
_FALSE = {*NO, ""}


def _flag(values: pd.Series, table: str, column: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower().fillna("")
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": table,
                        "column": column,
                        "row": int(i) + 1,
                        "value": mask_value(str(values.iloc[i])),
                        "check": "non_binary",
                        "message": f"{column} must be 0/1 (yes/no); got "
                        f"{mask_value(str(values.iloc[i]))!r}",
                    }
                    for i in np.flatnonzero(bad.to_numpy())[:50]
                ]
            )
        )
    return text.isin(_TRUE)


def _refuse_identifiers(texts: pd.Series, column: str) -> None:
    """An adverse-event description holding an identifier is a failure (issue 24.2): the
    descriptions become rows of the harms table, the report and results.json."""
    rows = []
    for i, text in enumerate(texts.astype(str)):
        hit = looks_identifying(text)
        if hit is not None:
            rows.append(
                {
                    "table": "adverse_events",
                    "column": column,
                    "row": i + 1,
                    "value": mask_value(text),
                    "check": "privacy",
                    "message": f"the adverse-event description holds what looks like "
                    f"{'an' if hit[0][0] in 'aeiou' else 'a'} {hit[0]} (masked); remove it from "
                    "the data: event descriptions are written into the report",
                }
            )
    if rows:
        raise DataValidationError(pd.DataFrame(rows[:50]))


def harms_table(
    trial: Any,
    events: pd.DataFrame,
    *,
    subject: str = "subject",
    event: str = "event",
    serious: str = "serious",
    arm_labels: Mapping[str, str] | None = None,
) -> Table:
    """Participants with adverse events, by arm: any, serious, and each kind of event.

    Parameters
    ----------
    trial : Trial or trial-like
        Denominators are the randomised participants of each arm (the ITT population).
    events : DataFrame
        One row per adverse event: ``subject``, ``event`` (kind, text) and ``serious`` (0/1).
    subject, event, serious : str
        Column names in ``events``.
    arm_labels : mapping, optional

    Returns
    -------
    Table
        ``.data``: ``category, arm, participants, denominator, percent, events`` (category
        ``any``, ``serious`` or ``event: <kind>``); display ``n (%) [events]`` per arm.

    Raises
    ------
    DataValidationError
        A column is missing, ``serious`` is not 0/1, or an event names a subject who was not
        randomised (every problem listed).
    """
    require_columns(events, (subject, event, serious), "adverse_events", message=NOT_A_COLUMN)
    part, _ = as_frames(trial)
    part = part.loc[randomised_mask(part)]
    arm_of = dict(zip(part["subject"].astype(str), part["arm"].astype(str)))
    ev = pd.DataFrame(
        {
            "subject": events[subject].astype(str).str.strip(),
            "event": events[event].astype("string").str.strip().fillna("unspecified"),
            "serious": _flag(events[serious], "adverse_events", serious),
        }
    )
    _refuse_identifiers(ev["event"], event)
    _refuse_unknown_subjects(ev["subject"], arm_of, subject)
    ev["arm"] = ev["subject"].map(arm_of)
    arms = arm_levels(trial)
    cats = _categories(ev)
    data = _counts(ev, cats, arms, part["arm"].astype(str).value_counts())
    notes = [
        "n (%) of randomised participants with at least one event [number of events]; "
        "a participant with several kinds of events is counted once in each kind.",
        "No between-arm tests (CONSORT Harms: report counts, not significance).",
    ]
    display = _display(data, cats, arms, arm_labels)
    return Table(data, display, caption="Harms: adverse events by arm", notes=notes)


def _refuse_unknown_subjects(subjects: pd.Series, arm_of: dict[str, str], column: str) -> None:
    """Every event must belong to a randomised participant (the first 50 others listed)."""
    unknown = ~subjects.isin(arm_of)
    if unknown.any():
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": "adverse_events",
                        "column": column,
                        "row": int(i) + 1,
                        "value": mask_value(subjects.iloc[i]),
                        "check": "unknown_subject",
                        "message": f"{mask_value(subjects.iloc[i])!r} is not a randomised "
                        "participant",
                    }
                    for i in np.flatnonzero(unknown.to_numpy())[:50]
                ]
            )
        )


def _categories(ev: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """Any, serious, then each kind of event (most frequent first): name and row selection."""
    cats: list[tuple[str, pd.Series]] = [
        ("any", pd.Series(True, index=ev.index)),
        ("serious", ev["serious"]),
    ]
    kinds = sorted(ev["event"].unique(), key=lambda k: (-int((ev["event"] == k).sum()), k))
    return cats + [(f"event: {k}", ev["event"] == k) for k in kinds]


def _counts(ev, cats, arms, denom: pd.Series) -> pd.DataFrame:
    """Participants with an event (of the randomised in the arm) and events, per category."""
    rows = []
    for cat, sel in cats:
        for a in arms:
            sub = ev[sel & (ev["arm"] == a)]
            n = int(denom.get(a, 0))
            k = int(sub["subject"].nunique())
            rows.append(
                {
                    "category": cat,
                    "arm": a,
                    "participants": k,
                    "denominator": n,
                    "percent": 100 * k / n if n else float("nan"),
                    "events": int(len(sub)),
                }
            )
    return pd.DataFrame(rows)


def _display(data: pd.DataFrame, cats, arms, arm_labels) -> pd.DataFrame:
    """``n (%) [events]`` per arm, one row per category."""
    alab = {str(k): str(v) for k, v in (arm_labels or {}).items()}
    names = {"any": "Any adverse event", "serious": "Any serious adverse event"}
    disp_rows = []
    for cat, _ in cats:
        r = {"Adverse events": names.get(cat, "  " + cat.removeprefix("event: "))}
        for a in arms:
            x = data[(data["category"] == cat) & (data["arm"] == a)].iloc[0]
            r[f"{alab.get(a, a)} (n = {x['denominator']})"] = (
                f"{x['participants']} ({x['percent']:z.1f}%) [{x['events']}]"
            )
        disp_rows.append(r)
    return pd.DataFrame(disp_rows)
