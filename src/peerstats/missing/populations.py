"""Analysis populations for sensitivity analyses: complete case, per-protocol, compliance.

The primary analysis of a peer-support trial is intention to treat under missing at random.
Two populations are asked for next (DOMAIN.md, "Sensitivity analyses"):

- **complete case**: participants with the outcome observed at every post-baseline visit
  (and at baseline, a covariate);
- **per-protocol**: everyone randomised to the reference arm, and those of the intervention
  arm(s) who received enough of it (attendance at or above a threshold, e.g. 5 of 10 sessions).

Both return a :class:`~peerstats.Trial` restricted to the population, so every analysis of
the package (``peerstats.analyze``, tables, CONSORT) runs on it unchanged.

:func:`compliance` turns a compliance definition (as an analysis spec writes it) into a 0/1
receipt indicator per randomised participant; :func:`peerstats.cace` uses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError, SpecError

__all__ = ["compliance", "complete_case", "per_protocol", "subset_trial", "ComplianceRule"]

#: the keys a compliance definition may have
COMPLIANCE_KEYS = ("sessions", "column", "min")


class ComplianceRule:
    """A parsed compliance definition (see :func:`compliance`)."""

    __slots__ = ("sessions", "column", "min")

    def __init__(self, definition: Any) -> None:
        self.sessions: int | None = None
        self.column: str | None = None
        self.min: float | None = None
        if isinstance(definition, bool) or definition is None:
            raise SpecError(
                f"compliance definition {definition!r} is not valid; give a number of sessions "
                "(e.g. 5), {'sessions': 5}, or {'column': <participants column>, 'min': value}"
            )
        if isinstance(definition, int | np.integer):
            definition = {"sessions": int(definition)}
        if not isinstance(definition, Mapping):
            raise SpecError(
                f"compliance definition {definition!r} is not valid; give a number of sessions "
                "(e.g. 5), {'sessions': 5}, or {'column': <participants column>, 'min': value}"
            )
        unknown = sorted(set(definition) - set(COMPLIANCE_KEYS))
        if unknown:
            raise SpecError(
                f"compliance definition: unknown key(s) {unknown}; allowed keys are "
                f"{list(COMPLIANCE_KEYS)}"
            )
        if ("sessions" in definition) == ("column" in definition):
            raise SpecError(
                "compliance definition: give exactly one of 'sessions' (attended at least that "
                "many sessions) or 'column' (a participants column)"
            )
        if "sessions" in definition:
            k = definition["sessions"]
            if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
                raise SpecError(
                    f"compliance definition: sessions={k!r} must be a whole number of at least 1"
                )
            if "min" in definition:
                raise SpecError("compliance definition: 'min' goes with 'column', not 'sessions'")
            self.sessions = int(k)
        else:
            c = definition["column"]
            if not isinstance(c, str) or not c:
                raise SpecError(f"compliance definition: column={c!r} must be a column name")
            self.column = c
            m = definition.get("min")
            if m is not None and (
                isinstance(m, bool) or not isinstance(m, int | float) or not np.isfinite(m)
            ):
                raise SpecError(f"compliance definition: min={m!r} must be a finite number")
            self.min = None if m is None else float(m)

    def describe(self, offered: int | None = None) -> str:
        """The rule in words ("attended at least 5 of 10 sessions")."""
        if self.sessions is not None:
            of = f" of {offered}" if offered else ""
            return f"attended at least {self.sessions}{of} sessions"
        if self.min is None:
            return f"{self.column} recorded as yes"
        return f"{self.column} at least {self.min:g}"

    def __repr__(self) -> str:
        return f"ComplianceRule({self.describe()!r})"


def _reference(trial: Any, reference: str | None) -> str:
    arms = [str(a) for a in trial.spec.arms.levels]
    if len(arms) < 2:
        raise ModelSpecificationError(
            f"{trial.spec.name!r} has one arm ({arms}); per-protocol and complier analyses "
            "compare arms"
        )
    ref = reference if reference is not None else trial.spec.arms.reference or arms[0]
    if str(ref) not in arms:
        raise SpecError(f"reference arm {ref!r} is not an arm; arms are {arms}")
    return str(ref)


def compliance(trial: Any, definition: Any, *, reference: str | None = None) -> pd.Series:
    """Receipt of the intervention per randomised participant, as a compliance rule defines it.

    Parameters
    ----------
    trial : Trial
    definition : int or dict
        ``5`` or ``{"sessions": 5}``: attended at least 5 sessions (``trial.sessions``;
        participants of an arm with sessions but no session rows attended none);
        ``{"column": "received"}``: a 0/1 (or boolean) participants column;
        ``{"column": "hours", "min": 10}``: a numeric participants column at or above ``min``.
    reference : str, optional
        The reference (control) arm; default the spec's. Its participants cannot receive the
        intervention (one-sided non-compliance), so their receipt is 0 whatever the data say
        (a "received" column of a usual-care arm records usual care, not the intervention).

    Returns
    -------
    Series
        Index ``subject`` (randomised participants), values 0/1 (int), name ``received``.

    Raises
    ------
    SpecError
        The definition is malformed, names a column the participants table does not have, or
        asks for sessions when the trial has no session table.
    """
    rule = definition if isinstance(definition, ComplianceRule) else ComplianceRule(definition)
    ref = _reference(trial, reference)
    memo = _MEMO[-1] if _MEMO else None
    key = (id(trial), rule.sessions, rule.column, rule.min, ref)
    if memo is not None and key in memo:
        return memo[key][1].copy()
    out = _compliance(trial, rule, ref)
    if memo is not None:
        from peerstats.data.trial import Trial

        if isinstance(trial, Trial):  # read-only: the same trial gives the same answer
            memo[key] = (trial, out.copy())  # the trial kept: its id is not reused meanwhile
    return out


#: the answers of :func:`compliance` inside :func:`remembered_compliance` blocks (innermost last)
_MEMO: list[dict] = []


@contextlib.contextmanager
def remembered_compliance() -> Iterator[None]:
    """A block in which :func:`compliance` of the same read-only Trial and rule is computed
    once (issue 22: a run's per-protocol and complier-average analyses ask for the same rule;
    attendance per participant costs about 15 ms each time). Nothing is kept after the block."""
    _MEMO.append({})
    try:
        yield
    finally:
        _MEMO.pop()


def _compliance(trial: Any, rule: ComplianceRule, ref: str) -> pd.Series:
    """:func:`compliance` computed."""
    part = trial.randomised
    subj = part["subject"].astype(str)
    arm = part["arm"].astype(str)
    if rule.sessions is not None:
        if trial.sessions is None:
            raise SpecError(
                f"compliance definition: sessions={rule.sessions} needs session attendance, but "
                f"trial {trial.spec.name!r} has no sessions table (data: sessions)"
            )
        from peerstats.describe.feasibility import attendance

        att = attendance(trial).set_index("subject")["sessions_attended"]
        got = att.reindex(subj).fillna(0).to_numpy(dtype=float) >= rule.sessions
    else:
        col = rule.column
        if col not in part.columns:
            cols = [c for c in part.columns if c not in ("subject",)]
            raise SpecError(
                f"compliance definition: column {col!r} is not in the participants table; "
                f"columns are {cols}"
            )
        values = part[col]
        if rule.min is None:
            num = pd.to_numeric(values.astype(object).map(_as_flag), errors="coerce")
            bad = values.notna() & num.isna()
            if bad.any():
                raise SpecError(
                    f"compliance definition: column {col!r} must be 0/1 (or give 'min'); it holds "
                    f"{sorted(map(str, values[bad].unique()))[:5]}"
                )
            got = num.fillna(0).to_numpy() >= 1
        else:
            num = pd.to_numeric(values, errors="coerce")
            if (values.notna() & num.isna()).any():
                raise SpecError(
                    f"compliance definition: column {col!r} must be numeric to compare with "
                    f"min={rule.min:g}"
                )
            got = num.fillna(-np.inf).to_numpy() >= rule.min
    got = np.where(arm.to_numpy() == ref, False, got)
    return pd.Series(
        got.astype(int), index=pd.Index(subj.to_numpy(), name="subject"), name="received"
    )


def _as_flag(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("yes", "true", "y"):
            return 1
        if low in ("no", "false", "n"):
            return 0
    return v


def subset_trial(trial: Any, subjects: Iterable[str]) -> Any:
    """The trial restricted to the given randomised participants (a new read-only Trial).

    Participants not randomised stay (CONSORT enrolment counts are about the trial, not the
    analysis population); assessments and sessions keep only the rows of ``subjects``.
    """
    from peerstats.data.trial import _TOKEN, Trial

    keep = {str(s) for s in subjects}
    part = trial.participants
    rand = part["randomised"].astype(bool) if "randomised" in part.columns else True
    part = part[~rand | part["subject"].astype(str).isin(keep)].reset_index(drop=True)
    a = trial.assessments
    a = a[a["subject"].astype(str).isin(keep)].reset_index(drop=True)
    s = trial.sessions
    if s is not None:
        s = s[s["subject"].astype(str).isin(keep)].reset_index(drop=True)
    return Trial(
        spec=trial.spec,
        participants=part,
        assessments=a,
        unrandomised_assessments=trial.unrandomised_assessments,
        sessions=s,
        scoring=trial.scoring,
        warnings=trial.warnings,
        _token=_TOKEN,
    )


def complete_case(trial: Any, outcome: str, *, visits: Iterable[str] | None = None) -> Any:
    """The complete-case population: outcome observed at baseline and every post-baseline visit.

    Parameters
    ----------
    trial : Trial
    outcome : str
    visits : list of str, optional
        The visits that must be observed (default: every visit of the spec).

    Returns
    -------
    Trial
        Restricted to the complete cases.
    """
    spec = trial.spec
    if outcome not in spec.outcome_names:
        raise SpecError(f"{outcome!r} is not an outcome; outcomes are {list(spec.outcome_names)}")
    all_visits = [str(v) for v in spec.visits]
    need = all_visits if visits is None else [str(v) for v in visits]
    bad = [v for v in need if v not in all_visits]
    if bad:
        raise SpecError(f"visit(s) {bad} are not visits; visits are {all_visits}")
    a = trial.assessments
    seen = a[a[outcome].notna()]
    seen = seen[seen["visit"].astype(str).isin(need)]
    n_seen = seen.groupby(seen["subject"].astype(str))["visit"].nunique()
    keep = n_seen.index[n_seen.to_numpy() == len(set(need))]
    if len(keep) == 0:
        raise ModelSpecificationError(
            f"no participant has {outcome!r} observed at every visit {need}; "
            "the complete-case population is empty"
        )
    return subset_trial(trial, keep)


def per_protocol(trial: Any, definition: Any, *, reference: str | None = None) -> Any:
    """The per-protocol population: the reference arm, and compliers of the other arm(s).

    Parameters
    ----------
    trial : Trial
    definition : int or dict
        The compliance rule (see :func:`compliance`), e.g. ``5`` = attended at least 5 sessions.
    reference : str, optional
        The reference arm (default the spec's), kept whole.

    Returns
    -------
    Trial
        Restricted to the per-protocol population.
    """
    ref = _reference(trial, reference)
    rule = definition if isinstance(definition, ComplianceRule) else ComplianceRule(definition)
    rec = compliance(trial, rule, reference=ref)
    part = trial.randomised
    arm = part.set_index(part["subject"].astype(str))["arm"].astype(str)
    keep = rec.index[(arm.reindex(rec.index).to_numpy() == ref) | (rec.to_numpy() == 1)]
    if not (arm.reindex(keep) != ref).any():
        raise ModelSpecificationError(
            f"no participant outside the reference arm {ref!r} meets the compliance rule "
            f"({rule.describe()}); "
            "the per-protocol population has no one to compare"
        )
    return subset_trial(trial, keep)
