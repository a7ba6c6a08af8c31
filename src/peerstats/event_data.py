"""Time-to-event outcomes in the data layer: declare, validate and derive (issue 17, item 1).

A trial records how each participant's follow-up for an outcome ended: a date (or a time since
the start) and a type ("readmitted", "died", "moved abroad", "end of study"), and sometimes a
reason for censoring. :class:`TimeToEventSpec` declares what the types mean (event, censored,
competing event), the start of follow-up (randomisation by default) and the administrative
censoring date; :func:`derive_time_to_event` checks the data against it and returns the analysis
columns ``time`` and ``event`` (0 censored, 1 the event, 2, 3, ... competing events in the order
declared), which :func:`peerstats.kaplan_meier`, :func:`peerstats.coxph`,
:func:`peerstats.cumulative_incidence` and :func:`peerstats.fine_gray` take.

Refused, each with its count, all collected before one
:class:`~peerstats.exceptions.DataValidationError`:

* an end date before the start of follow-up, and an event on the day of randomisation;
* an end of follow-up after the administrative censoring date;
* a type that the spec does not declare;
* a censoring whose reason is really an event (e.g. censored with reason "died" when death is a
  declared competing event): coding a competing event as censoring biases the incidence;
* missing dates or types.

This module belongs to the data layer: it imports nothing from models or survival.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .exceptions import DataValidationError, SpecError

__all__ = ["TimeToEventSpec", "derive_time_to_event", "time_to_event_failures"]

Kind = Literal["event", "censored", "competing"]
_UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12, "years": 365.25}


@dataclass(frozen=True)
class TimeToEventSpec:
    """How one time-to-event outcome is recorded.

    Parameters
    ----------
    name : str
        Outcome name ("readmission").
    end : str
        Column with the date follow-up ended (or, with ``start=None``, the time since the
        start in ``unit``).
    type : str
        Column with how it ended.
    types : mapping
        ``{value: "event" | "censored" | "competing"}``; exactly one value is the event.
    start : str or None
        Column with the start of follow-up (randomisation date); None when ``end`` is a time.
    censoring_date : str or None
        Administrative censoring date (``"2025-06-30"``); no follow-up may end after it.
    censoring_reason : str or None
        Column with the reason for a censoring.
    reasons_that_are_events : mapping
        ``{reason: type value}``: a censoring with this reason is really that type (e.g.
        ``{"died": "died"}``); such rows are refused.
    unit : {"days", "weeks", "months", "years"}
        Unit of the derived time.
    subject : str
        Participant id column (named in failure messages).
    """

    name: str
    end: str
    type: str
    types: Mapping[Any, Kind]
    start: str | None = "randomisation_date"
    censoring_date: str | None = None
    censoring_reason: str | None = None
    reasons_that_are_events: Mapping[str, Any] = field(default_factory=dict)
    unit: Literal["days", "weeks", "months", "years"] = "days"
    subject: str = "subject"

    def __post_init__(self) -> None:
        kinds = list(self.types.values())
        bad = [k for k in kinds if k not in ("event", "censored", "competing")]
        if bad:
            raise SpecError(f"{self.name}: types must map to 'event', 'censored' or "
                            f"'competing', got {bad}")
        if kinds.count("event") != 1:
            raise SpecError(f"{self.name}: exactly one type must be the event, got "
                            f"{kinds.count('event')}")
        if self.unit not in _UNIT_DAYS:
            raise SpecError(f"{self.name}: unit {self.unit!r} is not one of {list(_UNIT_DAYS)}")
        unknown = [v for v in self.reasons_that_are_events.values() if v not in self.types]
        if unknown:
            raise SpecError(f"{self.name}: reasons_that_are_events names types {unknown} that "
                            f"are not declared; types are {list(self.types)}")

    @classmethod
    def from_dict(cls, name: str, raw: Mapping[str, Any]) -> TimeToEventSpec:
        """From the YAML mapping of an outcome's ``time_to_event`` block."""
        known = set(cls.__dataclass_fields__) - {"name"}
        extra = sorted(set(raw) - known)
        if extra:
            raise SpecError(f"{name}: unknown key(s) {extra}; keys are {sorted(known)}")
        raw = dict(raw)
        if isinstance(raw.get("types"), Mapping):  # values in the data are text
            raw["types"] = {str(k): v for k, v in raw["types"].items()}
        return cls(name=name, **raw)

    @property
    def codes(self) -> dict[Any, int]:
        """Type value -> analysis code (0 censored, 1 event, 2, 3, ... competing)."""
        out, k = {}, 2
        for value, kind in self.types.items():
            if kind == "competing":
                out[value] = k
                k += 1
            else:
                out[value] = 1 if kind == "event" else 0
        return out


def _fail(rows, data, spec, column, check, message):
    idx = np.flatnonzero(rows)
    return pd.DataFrame({
        "table": "participants", "row": idx + 1, "column": column,
        "value": [str(data[column].iloc[i]) if column in data else None for i in idx],
        "check": check, "message": f"{spec.name}: {message} ({idx.size} participant(s))",
    })


def _times(data: pd.DataFrame, spec: TimeToEventSpec, failures: list):
    if spec.start is None:
        end = pd.to_numeric(data[spec.end], errors="coerce").to_numpy(float)
        missing = np.isnan(end)
        return end, missing, None
    end = pd.to_datetime(data[spec.end], errors="coerce")
    start = pd.to_datetime(data[spec.start], errors="coerce")
    miss_start = start.isna().to_numpy()
    if miss_start.any():
        failures.append(_fail(miss_start, data, spec, spec.start, "missing_start",
                              "start of follow-up missing or not a date"))
    days = (end - start).dt.total_seconds().to_numpy() / 86400.0
    return days / _UNIT_DAYS[spec.unit], end.isna().to_numpy(), end


def time_to_event_failures(data: pd.DataFrame, spec: TimeToEventSpec) -> pd.DataFrame:
    """Every problem of one time-to-event outcome (columns as DataValidationError.failures;
    ``row`` is the 1-based position in ``data``); empty when the data pass."""
    cols = [c for c in (spec.end, spec.type, spec.start, spec.censoring_reason) if c]
    absent = [c for c in cols if c not in data.columns]
    if absent:
        raise SpecError(f"time_to_event/{spec.name}: column(s) {absent} not in the data; "
                        f"columns are {list(data.columns)}")
    failures: list[pd.DataFrame] = []
    time, miss_end, end = _times(data, spec, failures)
    kind_of = dict(spec.types)
    typ = data[spec.type]
    declared = typ.map(lambda v: v in kind_of).to_numpy(bool)
    missing_type = typ.isna().to_numpy()
    if missing_type.any():
        failures.append(_fail(missing_type, data, spec, spec.type, "missing_event_type",
                              "how follow-up ended is missing"))
    unknown = ~declared & ~missing_type
    if unknown.any():
        values = sorted({str(v) for v in typ[unknown]})
        failures.append(_fail(unknown, data, spec, spec.type, "unknown_event_type",
                              f"type(s) {values} not declared; declared: {list(kind_of)}"))
    if miss_end.any():
        failures.append(_fail(miss_end, data, spec, spec.end, "missing_end",
                              "end of follow-up missing or not a date/time"))
    kind = typ.map(lambda v: kind_of.get(v, "unknown")).to_numpy(object)
    ok = ~miss_end & declared
    _timing(failures, data, spec, time, end, kind, ok)
    if spec.censoring_reason and spec.reasons_that_are_events:
        reason = data[spec.censoring_reason].astype("string").str.strip().str.lower()
        really = {str(k).strip().lower(): v for k, v in spec.reasons_that_are_events.items()}
        hidden = (kind == "censored") & reason.isin(list(really)).fillna(False).to_numpy(bool)
        if hidden.any():
            failures.append(_fail(hidden, data, spec, spec.censoring_reason,
                                  "censoring_is_event",
                                  "censored with a reason that is a declared event type "
                                  f"({sorted(really)}): record it as that type"))
    if not failures:
        return pd.DataFrame(columns=["table", "row", "column", "value", "check", "message"])
    return pd.concat(failures, ignore_index=True)


def _timing(failures, data, spec, time, end, kind, ok) -> None:
    with np.errstate(invalid="ignore"):
        before = ok & (time < 0)
        at_zero = ok & (time == 0) & (kind != "censored")
    if before.any():
        failures.append(_fail(before, data, spec, spec.end, "event_before_start",
                              "follow-up ends before the start of follow-up (randomisation)"))
    if at_zero.any():
        failures.append(_fail(at_zero, data, spec, spec.end, "event_at_start",
                              "event on the day follow-up starts (time 0): no risk set"))
    if spec.censoring_date is not None and end is not None:
        after = ok & (end > pd.Timestamp(spec.censoring_date)).to_numpy()
        if after.any():
            failures.append(_fail(after, data, spec, spec.end, "after_censoring_date",
                                  f"follow-up ends after the administrative censoring date "
                                  f"{spec.censoring_date}"))


def derive_time_to_event(data: pd.DataFrame, spec: TimeToEventSpec) -> pd.DataFrame:
    """Validate one time-to-event outcome and derive ``time`` and ``event``.

    Returns
    -------
    DataFrame
        ``subject``, ``time`` (in ``spec.unit``), ``event`` (0/1/2...), ``event_type`` (the
        recorded value), one row per participant, in the input order.

    Raises
    ------
    DataValidationError
        Every problem found (see the module docstring), with its count.
    """
    failures = time_to_event_failures(data, spec)
    if len(failures):
        raise DataValidationError(failures, context=f"time-to-event outcome {spec.name!r}")
    time, _, _ = _times(data, spec, [])
    typ = data[spec.type]
    subject = data[spec.subject] if spec.subject in data else pd.Series(np.arange(len(data)))
    return pd.DataFrame({"subject": subject.to_numpy(), "time": time,
                         "event": typ.map(spec.codes).to_numpy(int),
                         "event_type": typ.to_numpy()})
