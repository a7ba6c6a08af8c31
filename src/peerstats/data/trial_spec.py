"""Trial specs: a YAML description of a trial, checked against a JSON Schema.

A spec says where the data files are, which columns hold what, the arms, visits and outcomes.
:func:`read_spec` parses a path or a dict into a frozen :class:`TrialSpec`; every problem (schema
violations and the rules that span fields) is listed in one :class:`~peerstats.SpecError`.
The schema is published at ``data_schemas/trial-spec.schema.json`` so editors can use it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from peerstats._identifiers import spec_identifier_problems
from peerstats._yaml import non_finite_fields
from peerstats.exceptions import SpecError

__all__ = [
    "TrialSpec",
    "DataSource",
    "Columns",
    "Arms",
    "Outcome",
    "Covariate",
    "RedcapSource",
    "read_spec",
    "trial_spec_schema",
]

Design = Literal["parallel", "single-arm"]
Layout = Literal["long", "wide"]

#: file suffixes the readers understand
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".sav", ".zsav", ".dta", ".parquet")

#: standard column names used in Trial frames; outcome names must not clash with them
STANDARD_NAMES = ("subject", "arm", "visit", "site", "group", "peer", "randomised")


@dataclass(frozen=True)
class DataSource:
    """One data file of a trial.

    Attributes
    ----------
    path : Path
        Absolute path to the file.
    sheet : str or int or None
        Excel sheet (name or 0-based position); ``None`` is the first sheet.
    layout : {"long", "wide"}
        Assessments only: ``wide`` has one row per subject and columns ``<column><sep><visit>``.
    sep : str
        Separator between column and visit in wide column names.
    delimiter, decimal, encoding : str or None
        Options for delimited text files (``None``: from the suffix / ``.`` / UTF-8).
    """

    path: Path
    sheet: str | int | None = None
    layout: Layout = "long"
    sep: str = "_"
    delimiter: str | None = None
    decimal: str = "."
    encoding: str | None = None


#: Participants-table roles, in order: the standard column names a Trial uses.
PARTICIPANT_ROLES = (
    "subject",
    "arm",
    "site",
    "group",
    "peer",
    "randomised",
    "eligible",
    "exclusion_reason",
    "received",
    "not_received_reason",
    "discontinued",
    "discontinued_reason",
    "withdrawn_reason",
    "last_visit",
)


@dataclass(frozen=True)
class Columns:
    """Column names as they are in the files (``None`` when the trial has no such column)."""

    subject: str
    arm: str | None = None
    visit: str | None = None
    site: str | None = None
    group: str | None = None
    peer: str | None = None
    randomised: str | None = None
    eligible: str | None = None
    exclusion_reason: str | None = None
    received: str | None = None
    not_received_reason: str | None = None
    discontinued: str | None = None
    discontinued_reason: str | None = None
    withdrawn_reason: str | None = None
    last_visit: str | None = None
    session: str = "session"
    attended: str = "attended"

    def renames(self) -> dict[str, str]:
        """Map file column -> standard name for every participants-table role that is set."""
        return {getattr(self, r): r for r in PARTICIPANT_ROLES if getattr(self, r) is not None}


@dataclass(frozen=True)
class Arms:
    """Arms of the trial: ``levels`` in display order, the ``reference`` (control) arm, and the
    arms whose intervention is delivered in groups (partially nested design)."""

    levels: tuple[str, ...]
    reference: str | None = None
    group_delivered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """An outcome: either a score column (``column``, with its declared ``min``/``max``) or an
    instrument scored from item columns (``instrument``, ``items``)."""

    name: str
    column: str | None = None
    instrument: str | None = None
    items: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    higher_is_better: bool | None = None
    label: str | None = None

    @property
    def scored(self) -> bool:
        """True when the outcome is scored from items by an instrument."""
        return self.instrument is not None


@dataclass(frozen=True)
class Covariate:
    """What a valid value of a covariate is (declared under ``covariates:`` as a mapping).

    ``type`` is ``number``, ``integer`` or ``category``; ``min``/``max`` bound numbers,
    ``levels`` lists the valid labels of a category (``None``: any label).
    """

    name: str
    type: Literal["number", "integer", "category"]
    min: float | None = None
    max: float | None = None
    levels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RedcapSource:
    """A REDCap export as the trial's data (``source: {redcap: ...}``, issue 21): the records
    export, the data dictionary, and the repeating instrument holding session attendance."""

    records: Path
    dictionary: Path
    sessions: str | None = None


@dataclass(frozen=True)
class TrialSpec:
    """A parsed, schema-checked trial spec (immutable).

    Build it with :func:`read_spec`. ``raw`` keeps the spec as written (a deep copy), ``source``
    the spec file (``None`` for a dict) and ``base_dir`` the directory paths are relative to.
    """

    name: str
    design: Design
    participants: DataSource
    assessments: DataSource
    columns: Columns
    arms: Arms
    visits: tuple[str, ...]
    outcomes: tuple[Outcome, ...] = ()
    sessions: DataSource | None = None
    adverse_events: DataSource | None = None  # harms (CONSORT Harms), read by the pipeline
    sites: tuple[str, ...] | None = None
    strata: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    covariate_types: dict[str, Covariate] = field(default_factory=dict, compare=False)
    free_text: tuple[str, ...] = ()
    redcap: RedcapSource | None = None
    binary: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (yes words, no words)
    synthetic: bool = False
    description: str = ""
    base_dir: Path = field(default_factory=Path.cwd)
    source: Path | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def time_to_event(self) -> dict:
        """Time-to-event outcomes (issue 17): name -> :class:`peerstats.event_data.TimeToEventSpec`."""
        from peerstats.event_data import TimeToEventSpec

        raw = self.raw.get("time_to_event") or {}
        return {name: TimeToEventSpec.from_dict(name, r) for name, r in raw.items()}

    @property
    def adverse_event_columns(self) -> dict[str, str]:
        """Columns of the adverse-event table (issue 20.5): ``subject`` (default: the
        participants' ``columns: subject`` name), ``event`` and ``serious`` (defaults
        ``event``, ``serious``), from the spec's ``adverse_event_columns:`` mapping."""
        given = self.raw.get("adverse_event_columns") or {}
        return {
            "subject": str(given.get("subject", self.columns.subject)),
            "event": str(given.get("event", "event")),
            "serious": str(given.get("serious", "serious")),
        }

    @property
    def baseline(self) -> str:
        """The baseline visit (the first visit)."""
        return self.visits[0]

    @property
    def outcome_names(self) -> tuple[str, ...]:
        """Names of the outcomes, in spec order."""
        return tuple(o.name for o in self.outcomes)

    def outcome(self, name: str) -> Outcome:
        """Return the outcome called ``name``.

        Raises
        ------
        SpecError
            If there is no such outcome (the message lists the outcomes).
        """
        for o in self.outcomes:
            if o.name == name:
                return o
        raise SpecError(f"{name!r} is not an outcome; outcomes are {list(self.outcome_names)}")

    def to_dict(self) -> dict:
        """The spec as written (deep copy)."""
        return copy.deepcopy(self.raw)


@cache
def trial_spec_schema() -> dict:
    """Return the trial-spec JSON Schema (``data_schemas/trial-spec.schema.json``)."""
    text = (resources.files("peerstats") / "data_schemas" / "trial-spec.schema.json").read_text(
        encoding="utf-8"
    )
    return json.loads(text)


def _schema_problems(raw: Any) -> list[str]:
    from peerstats._schema import schema_errors

    problems = []
    for err, where, msg in schema_errors(raw, trial_spec_schema()):
        if err.validator == "oneOf" and where.startswith("outcomes/"):
            msg = "an outcome needs exactly one of 'column' (a score column) or 'instrument'"
        elif err.validator == "oneOf" and where.startswith("covariates"):
            msg = (
                "covariates are a list of column names or a mapping "
                "{column: {type: number | integer | category, min, max, levels}}"
            )
        elif err.validator == "oneOf" and where.startswith("data/"):
            msg = "a data source is a path or {path: ..., sheet/layout/sep/delimiter/decimal/encoding}"
        elif err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            msg += f"; allowed keys are {allowed}"
        problems.append(f"{where}: {msg}")
    return problems


def _load_yaml(path: Path) -> Any:
    import yaml

    from peerstats._yaml import YAMLRefusedError, load_yaml

    try:
        return load_yaml(_read_spec_text(path))
    except (yaml.YAMLError, UnicodeDecodeError, YAMLRefusedError) as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from exc


def _source(value: Any, base_dir: Path, problems: list[str], key: str) -> DataSource:
    opts = {"path": value} if isinstance(value, str) else dict(value)
    opts_path = str(opts["path"])
    path = Path(opts.pop("path"))
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        problems.append(
            f"data/{key}: {path.name!r} has an unsupported file type; use one of {list(SUPPORTED_SUFFIXES)}"
        )
    elif not path.exists():  # the path as the spec wrote it, not the absolute one (24.3)
        problems.append(f"data/{key}: file not found: {opts_path}")
    elif not path.is_file():  # a named pipe, a directory (issue 24.10)
        problems.append(f"data/{key}: {opts_path} is not a regular file; give a data file")
    if opts.get("layout") == "wide" and key != "assessments":
        problems.append(f"data/{key}: only assessments can have layout 'wide'")
    return DataSource(path=path, **opts)


def read_spec(
    spec: str | Path | dict | TrialSpec, *, base_dir: str | Path | None = None
) -> TrialSpec:
    """Read and check a trial spec.

    Parameters
    ----------
    spec : str, Path, dict or TrialSpec
        Path to a YAML spec file, or the spec as a dict. A TrialSpec is returned as is.
    base_dir : str or Path, optional
        Directory that relative data paths in a dict spec are relative to (default: the current
        directory). For a spec file, paths are always relative to the file.

    Returns
    -------
    TrialSpec

    Raises
    ------
    SpecError
        If the file is missing or not YAML, or the spec breaks the schema or a rule spanning
        fields (reference arm not among the arms, data file not found, ...). The message lists
        every problem.

    Examples
    --------
    >>> spec = read_spec("trial.yaml")  # doctest: +SKIP
    >>> spec.visits  # doctest: +SKIP
    ('baseline', 'post', 'fu3')
    """
    if isinstance(spec, TrialSpec):
        return spec
    raw, root, source = _raw_spec(spec, base_dir)
    where = str(source) if source else "spec"
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: a trial spec is a mapping with keys trial, data, columns, arms, visits, outcomes"
        )
    problems = _schema_problems(raw) + non_finite_fields(raw)  # .nan/.inf (issue 24.7)
    problems += spec_identifier_problems(raw)  # identifiers typed into a spec (24.1)
    if problems:
        raise SpecError(_problem_text(where, problems))

    problems = []
    redcap = _redcap_source(raw, root, problems)
    sources = _data_sources(raw.get("data") or _redcap_data(redcap), root, problems)
    cols = Columns(**raw["columns"])
    design = raw["trial"]["design"]
    arms = _arms(raw.get("arms", {}), design, cols, problems)
    visits = tuple(str(v) for v in raw["visits"])
    if len(set(visits)) != len(visits):
        problems.append(f"visits: labels must be unique, got {list(visits)}")
    if sources["assessments"].layout == "long" and cols.visit is None:
        problems.append(
            "columns/visit: long assessments need the visit column (or use layout: wide)"
        )
    sites = tuple(str(s) for s in raw["sites"]) if "sites" in raw else None
    if sites is not None and cols.site is None:
        problems.append("sites: listing sites needs columns/site")
    outcomes = _outcomes(raw.get("outcomes") or {}, problems)
    covariates, covariate_types = _covariates(raw.get("covariates"), problems)
    problems += _mapped_column_references(raw, cols)
    binary = _binary(raw.get("binary"), problems)
    if problems:
        raise SpecError(_problem_text(where, problems))

    trial = raw["trial"]
    return TrialSpec(
        name=trial["name"],
        design=design,
        **sources,
        columns=cols,
        arms=arms,
        visits=visits,
        outcomes=outcomes,
        sites=sites,
        strata=tuple(raw.get("strata", ())),
        covariates=covariates,
        covariate_types=covariate_types,
        drop=tuple(raw.get("drop", ())),
        free_text=tuple(raw.get("free_text", ())),
        redcap=redcap,
        binary=binary,
        synthetic=bool(trial.get("synthetic", False)),
        description=trial.get("description", ""),
        base_dir=root,
        source=source,
        raw=raw,
    )


def _raw_spec(
    spec: str | Path | dict, base_dir: str | Path | None
) -> tuple[Any, Path, Path | None]:
    """The spec as read (a deep copy of a dict), the directory its paths are relative to, and
    its file (None for a dict)."""
    if isinstance(spec, str | Path):
        source = Path(spec).resolve()
        if not source.is_file():
            raise SpecError(f"spec file not found: {source}")
        return _load_yaml(source), source.parent, source
    if isinstance(spec, dict):
        root = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
        return copy.deepcopy(spec), root, None
    raise SpecError(f"a spec is a path or a dict, not {type(spec).__name__}")


def _data_sources(data: dict, root: Path, problems: list[str]) -> dict[str, DataSource | None]:
    """The data files: participants and assessments, sessions and adverse events if given."""
    out: dict[str, DataSource | None] = {}
    for name in ("participants", "assessments", "sessions", "adverse_events"):
        if name in ("participants", "assessments") or name in data:
            out[name] = _source(data[name], root, problems, name)
        else:
            out[name] = None
    return out


def _arms(arms_raw: dict, design: str, cols: Columns, problems: list[str]) -> Arms:
    """``arms:`` checked against the design and the delivery-group column."""
    levels = tuple(str(v) for v in arms_raw.get("levels", ()))
    reference = str(arms_raw["reference"]) if "reference" in arms_raw else None
    group_delivered = tuple(str(v) for v in arms_raw.get("group_delivered", ()))
    if design == "single-arm":
        if not levels:
            problems.append("arms: a single-arm trial needs arms: {levels: [<the arm>]}")
        elif len(levels) != 1:
            problems.append(f"arms/levels: a single-arm trial has one arm, not {list(levels)}")
    if reference is not None and reference not in levels:
        problems.append(f"arms/reference: {reference!r} is not an arm; arms are {list(levels)}")
    for g in group_delivered:
        if g not in levels:
            problems.append(f"arms/group_delivered: {g!r} is not an arm; arms are {list(levels)}")
    if group_delivered and cols.group is None:
        problems.append("columns/group: group_delivered arms need the delivery-group column")
    return Arms(levels=levels, reference=reference, group_delivered=group_delivered)


def _outcomes(raw_outcomes: dict, problems: list[str]) -> tuple[Outcome, ...]:
    """``outcomes:``: names, ranges, instruments and columns checked (a column is one
    outcome)."""
    outcomes = []
    seen_columns: dict[str, str] = {}
    for name, o in raw_outcomes.items():
        if name in STANDARD_NAMES or name.endswith("_baseline"):
            problems.append(
                f"outcomes/{name}: outcome names must not be {list(STANDARD_NAMES)} or end in '_baseline'"
            )
        lo, hi = o.get("min"), o.get("max")
        if lo is not None and hi is not None and lo > hi:
            problems.append(f"outcomes/{name}: min ({lo}) is larger than max ({hi})")
        if "instrument" in o and ("min" in o or "max" in o):
            problems.append(
                f"outcomes/{name}: the range of a scored outcome comes from its instrument; drop min/max"
            )
        if "items" in o and "instrument" not in o:
            problems.append(f"outcomes/{name}: items need an instrument")
        col = o.get("column")
        if col is not None:
            if col in seen_columns:
                problems.append(
                    f"outcomes/{name}: column {col!r} is already outcome {seen_columns[col]!r}"
                )
            seen_columns[col] = name
        outcomes.append(
            Outcome(
                name=name,
                column=col,
                instrument=o.get("instrument"),
                items=tuple(o["items"]) if "items" in o else None,
                min=lo,
                max=hi,
                higher_is_better=o.get("higher_is_better"),
                label=o.get("label"),
            )
        )
    return tuple(outcomes)


def _redcap_source(raw: dict, root: Path, problems: list[str]) -> RedcapSource | None:
    """``source: {redcap: {records, dictionary, sessions}}`` (paths relative to the spec)."""
    rc = (raw.get("source") or {}).get("redcap")
    if rc is None:
        return None
    if "data" in raw:
        problems.append("source/redcap: the data come from the REDCap export; drop data:")
    paths = {}
    for key in ("records", "dictionary"):
        path = Path(rc[key])
        paths[key] = path if path.is_absolute() else root / path
        if not paths[key].is_file():
            problems.append(f"source/redcap/{key}: file not found: {paths[key]}")
    return RedcapSource(paths["records"], paths["dictionary"], rc.get("sessions"))


def _binary(value: Any, problems: list[str]) -> tuple | None:
    """``binary: {yes: [...], no: [...]}``: the yes/no words of every binary column."""
    if value is None:
        return None
    yes = tuple(str(v).strip().lower() for v in value["yes"])
    no = tuple(str(v).strip().lower() for v in value["no"])
    both = sorted(set(yes) & set(no))
    if both:
        problems.append(f"binary: {both} are both yes and no words")
    return yes, no


def _redcap_data(redcap: RedcapSource | None) -> dict:
    """The tables of a REDCap source, each read from the records export."""
    records = str(redcap.records) if redcap is not None else ""
    data = {"participants": records, "assessments": records}
    if redcap is not None and redcap.sessions:
        data["sessions"] = records
    return data


def _covariates(value: Any, problems: list[str]) -> tuple[tuple[str, ...], dict[str, Covariate]]:
    """Covariate names and their declared types (``covariates:`` as a list or a mapping)."""
    if not value:
        return (), {}
    if isinstance(value, list):
        return tuple(value), {}
    types = {}
    for name, decl in value.items():
        if decl is None:
            continue
        lo, hi = decl.get("min"), decl.get("max")
        kind = decl["type"]
        if kind == "category" and (lo is not None or hi is not None):
            problems.append(f"covariates/{name}: min/max are for type number or integer")
        if kind != "category" and "levels" in decl:
            problems.append(f"covariates/{name}: levels are for type category")
        if lo is not None and hi is not None and lo > hi:
            problems.append(f"covariates/{name}: min ({lo}) is larger than max ({hi})")
        levels = decl.get("levels")
        types[name] = Covariate(
            name=name,
            type=kind,
            min=lo,
            max=hi,
            levels=tuple(str(v) for v in levels) if levels is not None else None,
        )
    return tuple(value), types


def _mapped_column_references(raw: dict, cols: Columns) -> list[str]:
    """strata / covariates naming a file column that ``columns:`` maps to a role (issue 20.2).

    After reading, the column carries the role's name, so the file name would resolve to
    nothing and the factor would be dropped from the model: an error, with the role to use.
    """
    renames = {f: r for f, r in cols.renames().items() if f != r}
    out = []
    for key in ("strata", "covariates"):
        value = raw.get(key) or ()
        names = list(value) if not isinstance(value, dict) else list(value)
        for name in names:
            if isinstance(name, str) and name in renames:
                out.append(
                    f"{key}: {name!r} is a file column that columns: maps to the role "
                    f"{renames[name]!r}; {key} name roles or participant variables after "
                    f"mapping. Did you mean {renames[name]!r}?"
                )
    return out


def _problem_text(where: str, problems: list[str]) -> str:
    n = len(problems)
    lines = [f"{n} problem{'s' if n != 1 else ''} in the trial spec {where}:"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def _read_spec_text(path: Path) -> str:
    """The spec's text; the digest of its bytes is what the manifest records (issue 24.8)."""
    from peerstats._provenance import remember

    data = Path(path).read_bytes()
    remember(path, data)
    return data.decode("utf-8")
