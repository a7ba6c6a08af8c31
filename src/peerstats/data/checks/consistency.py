"""Consistency across tables: every row belongs to a participant, files agree, CONSORT holds.

Checks: ``unknown_subject`` (ids that differ only in leading zeros are hinted at),
``inconsistent`` (assessments disagree with participants on arm/site/group; an outcome
observed after a recorded withdrawal), and the time-to-event checks of
:mod:`peerstats.event_data`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from peerstats._identifiers import mask_value
from peerstats.data.checks._log import Log
from peerstats.data.trial_spec import TrialSpec
from peerstats.io.coerce import labelled as _labelled
from peerstats.io.readers import RawTable

__all__ = [
    "agree_with_participants",
    "assessed_after_withdrawal",
    "time_to_event",
    "unknown_subjects",
]


def unknown_subjects(t: RawTable, col: str, known: Iterable[str], log: Log) -> None:
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
            log.cell(
                t,
                i,
                col,
                s,
                "unknown_subject",
                f"subject {mask_value(s)!r} is not in the participants file{hint}",
            )


def agree_with_participants(ctx, t, part, pinfo, known, subjects) -> None:
    """The same column (arm, site, group) in assessments and participants must agree."""
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
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
                log.cell(
                    t,
                    i,
                    name,
                    a,
                    "inconsistent",
                    f"{role} {mask_value(a)!r} here but {mask_value(pvals[j])!r} in participants "
                    f"row {part.rows[j]}",
                )


def assessed_after_withdrawal(ctx, t, part, known, subjects, visits, values) -> None:
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
            log.cell(
                t,
                i,
                cols.visit or "visit",
                v,
                "inconsistent",
                f"assessed at {v!r} although participants row {part.rows[j]} records withdrawal "
                f"after {last[j]!r}; correct last_visit or the withdrawal",
            )


def time_to_event(spec: TrialSpec, part: RawTable, log: Log) -> None:
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
