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

The checks live in :mod:`peerstats.data.checks` by what they check (structure, values,
identifiers, consistency); this module reads the tables and runs them table by table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from peerstats._identifiers import looks_identifying, mask_value
from peerstats.data.checks._log import Ctx, Log
from peerstats.data.checks.consistency import (
    agree_with_participants,
    assessed_after_withdrawal,
    time_to_event,
    unknown_subjects,
)
from peerstats.data.checks.identifiers import privacy
from peerstats.data.checks.structure import adverse_events, duplicates, missing_key, require
from peerstats.data.checks.values import (
    binary_column,
    check_labels,
    default_range,
    numeric_column,
    text_or_numeric,
)
from peerstats.data.trial_spec import PARTICIPANT_ROLES, Outcome, TrialSpec, read_spec
from peerstats.exceptions import DataValidationError, SpecError
from peerstats.io.coerce import labelled as _labelled
from peerstats.io.readers import RawTable, ReadError, read_table
from peerstats.io.wide import wide_to_long

if TYPE_CHECKING:  # pragma: no cover
    from peerstats.data.trial import Trial

__all__ = ["validate", "ValidationReport", "mask_value", "looks_identifying"]


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


def _read(spec: TrialSpec, log: Log, warnings: list[str]) -> dict[str, RawTable | None]:
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


def _read_redcap(spec: TrialSpec, log: Log) -> dict[str, RawTable] | None:
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


def _participant_columns(spec: TrialSpec, t: RawTable, log: Log) -> list[tuple[str, str]]:
    """The columns participants must have (with their roles); a column with a standard name
    the spec maps elsewhere is ``ambiguous_column``."""
    cols = spec.columns
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
        if c not in renamed and c in PARTICIPANT_ROLES and getattr(cols, c) is not None:
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
    return need


def _randomised(ctx: Ctx, t: RawTable) -> list:
    """Each participant's randomised flag (True, False, None: unknown); all True without a
    randomised column."""
    col = ctx.spec.columns.randomised
    if col is None:
        return [True] * len(t.data)
    randomised = binary_column(t, col, ctx.log, "randomised", ctx.spec.binary)  # None: unknown
    for i, v in enumerate(t.data[col].tolist()):
        if v is None:
            ctx.log.add(
                t.name,
                t.rows[i],
                col,
                None,
                "missing_value",
                "randomised is empty; give 1 (randomised) or 0 (not randomised)",
            )
    return randomised


def _arms(ctx: Ctx, t: RawTable, randomised: list) -> list:
    """Each participant's arm (labels checked); every randomised participant has one and no
    one else does."""
    cols, log = ctx.spec.columns, ctx.log
    levels = list(ctx.spec.arms.levels)
    if cols.arm is not None and cols.arm in t.data.columns:
        arms = check_labels(t, cols.arm, levels, log, "an arm")
    else:  # single-arm trial without an arm column
        arms = [levels[0]] * len(t.data)
    for i in range(len(t.data)):
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
    return arms


def _groups(ctx: Ctx, t: RawTable, randomised: list, arms: list) -> list:
    """Delivery groups: only in group-delivered arms (a randomised participant there without
    a group is a warning)."""
    col = ctx.spec.columns.group
    levels = list(ctx.spec.arms.levels)
    groups = t.data[col].tolist()
    gd = set(ctx.spec.arms.group_delivered)
    no_group = 0
    for i, g in enumerate(groups):
        if g is not None and arms[i] in levels and arms[i] not in gd:
            ctx.log.add(
                t.name,
                t.rows[i],
                col,
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
    return groups


def _participants(ctx: Ctx, t: RawTable) -> dict | None:
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    if not require(t, _participant_columns(spec, t, log), log):
        return None
    missing_key(t, cols.subject, log, "subject")
    duplicates(t, [cols.subject], log, "duplicate_subject", "subject")
    randomised = _randomised(ctx, t)
    arms = _arms(ctx, t, randomised)
    sites = None
    if cols.site is not None:
        if spec.sites is not None:
            sites = check_labels(t, cols.site, list(spec.sites), log, "a site")
        else:
            sites = _labelled(t, cols.site)
    groups = _groups(ctx, t, randomised, arms) if cols.group is not None else None
    # CONSORT: last visit attended before withdrawal (mapped, or a column named last_visit)
    last_visit = cols.last_visit or ("last_visit" if "last_visit" in t.data.columns else None)
    if last_visit is not None:
        check_labels(t, last_visit, list(spec.visits), log, "a visit")
    flags = {}
    for role in ("eligible", "received", "discontinued"):
        name = getattr(cols, role)
        if name is not None:
            flags[role] = binary_column(t, name, log, role, spec.binary)
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


def _wide_assessments(ctx: Ctx, t: RawTable, checks: list) -> RawTable | None:
    """A wide assessments file (``<column><sep><visit>``) checked and made long; None when a
    checked column is absent for every visit."""
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    src = spec.assessments
    if not require(t, [(cols.subject, "subject")], log):
        return None
    missing_key(t, cols.subject, log, "subject")
    duplicates(t, [cols.subject], log, "duplicate_subject", "subject")
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
        visit=cols.visit or "visit",
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
    return t if ok else None


def _long_assessments(ctx: Ctx, t: RawTable, checks: list) -> bool:
    """A long assessments file has its columns, filled keys and one row per subject x visit."""
    log, cols = ctx.log, ctx.spec.columns
    visit_col = cols.visit or "visit"
    need = [(cols.subject, "subject"), (visit_col, "visit")]
    need += [(c, f"outcome {o.name}") for o, c, _, _ in checks]
    if not require(t, list(dict.fromkeys(need)), log):
        return False
    missing_key(t, cols.subject, log, "subject")
    missing_key(t, visit_col, log, "visit")
    duplicates(t, [cols.subject, visit_col], log, "duplicate_subject_visit", "subject x visit")
    return True


def _outcome_values(ctx: Ctx, t: RawTable, checks: list, visits: list) -> dict:
    """Every score and item column parsed and checked (range, whole numbers for items)."""
    src = ctx.spec.assessments
    values = {}
    for o, c, lo, hi in checks:
        if c not in values:
            what = f"score of {o.name}" if not o.scored else f"{o.instrument} item"
            cells = [f"{c}{src.sep}{v}" for v in visits] if src.layout == "wide" else None
            values[c] = numeric_column(
                t, c, ctx.log, src.decimal, lo, hi, what, cells, integer=o.scored
            )
    return values


def _assessments(
    ctx: Ctx, t: RawTable, part: RawTable | None, pinfo: dict | None, checks: list
) -> dict | None:
    spec, log, cols = ctx.spec, ctx.log, ctx.spec.columns
    if spec.assessments.layout == "wide":
        t = _wide_assessments(ctx, t, checks)
        if t is None:
            return None
    elif not _long_assessments(ctx, t, checks):
        return None
    visits = check_labels(t, cols.visit or "visit", list(spec.visits), log, "a visit")
    values = _outcome_values(ctx, t, checks, visits)
    subjects = t.data[cols.subject].tolist()
    if part is not None and pinfo is not None:
        known = dict(zip(part.data[cols.subject].tolist(), range(len(part.data)), strict=True))
        unknown_subjects(t, cols.subject, known, log)
        agree_with_participants(ctx, t, part, pinfo, known, subjects)
        assessed_after_withdrawal(ctx, t, part, known, subjects, visits, values)
    return dict(table=t, visits=visits, values=values, subjects=subjects)


def _sessions(ctx: Ctx, t: RawTable, part: RawTable | None) -> dict | None:
    cols, log = ctx.spec.columns, ctx.log
    if not require(
        t, [(cols.subject, "subject"), (cols.session, "session"), (cols.attended, "attended")], log
    ):
        return None
    missing_key(t, cols.subject, log, "subject")
    missing_key(t, cols.session, log, "session")
    duplicates(
        t, [cols.subject, cols.session], log, "duplicate_subject_session", "subject x session"
    )
    # an empty attendance cell would become "not attended" downstream (understating adherence)
    missing_key(t, cols.attended, log, "attended (0 or 1)")
    attended = binary_column(t, cols.attended, log, "attended", ctx.spec.binary)
    if part is not None:
        unknown_subjects(t, cols.subject, set(part.data[cols.subject].tolist()), log)
    return dict(attended=attended)


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
    log = Log()
    warnings: list[str] = []
    tables = _read(spec, log, warnings)
    n_rows = {k: (len(v.data) if v is not None else 0) for k, v in tables.items()}
    for t in tables.values():
        if t is not None:
            privacy(t, log, spec.free_text, warnings)
    ctx = Ctx(spec, log, warnings)
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
                extras[c] = text_or_numeric(
                    part,
                    c,
                    spec.participants.decimal,
                    log if c in spec.covariates or default_range(c) else None,
                    f"covariate {c}" if c in spec.covariates else f"column {c}",
                    spec.covariate_types.get(c),
                )
    if part is not None and pinfo is not None:
        time_to_event(spec, part, log)  # issue 17
    if spec.adverse_events is not None:
        adverse_events(spec, log)  # issue 20.5: what run will need, checked here
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
