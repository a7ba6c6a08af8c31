"""Analysis specs: the statistical analysis plan (SAP) as data.

:func:`read_analysis_spec` parses a YAML file (or a dict) into a frozen :class:`AnalysisSpec`,
checked against ``data_schemas/analysis-spec.schema.json``; :meth:`AnalysisSpec.check_against`
checks the rules that need the trial spec (outcomes and visits exist, the model fits the
design). Every problem is collected and reported in one :class:`~peerstats.SpecError`.

Example (``analyses/peer_recovery.yaml``)::

    analysis: {name: peer_recovery, title: "PEER example: primary analysis"}
    trial: {dataset: peer_recovery}        # or a path relative to this file
    primary: {outcome: qpr15, visit: post}
    secondary: {outcomes: [empowerment, mansa, wsas]}
    model: {type: auto, df: satterthwaite}
    multiplicity: {method: holm}
    responders: [{outcome: qpr15, visit: post}]
    tables: [consort, table_one, outcomes, responders, model_coefficients]
    figures: [consort, trajectories, forest, change, attendance]
    labels: {visits: {post: post-treatment}, arms: {peer: peer support}}
    seed: 179
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from peerstats._identifiers import spec_identifier_problems
from peerstats._yaml import non_finite_fields
from peerstats.exceptions import SpecError
from peerstats.pipeline._problems import _problem_text

__all__ = [
    "AnalysisSpec",
    "ModelSpec",
    "ResponderSpec",
    "read_analysis_spec",
    "analysis_spec_schema",
    "TABLES",
    "FIGURES",
]

ModelType = Literal["auto", "mmrm", "lmm"]
TABLES = (
    "consort",
    "table_one",
    "outcomes",
    "responders",
    "feasibility",
    "within_group_change",
    "model_coefficients",
    "ls_means",
    "harms",
)
FIGURES = (
    "consort",
    "trajectories",
    "forest",
    "change",
    "attendance",
    "diagnostics",
    "sensitivity",
    "tipping_point",
)


@dataclass(frozen=True)
class ModelSpec:
    """The model section: ``type`` (auto | mmrm | lmm), covariance, df method, covariates.

    ``auto`` calls :func:`peerstats.analyze` (MMRM with unstructured covariance, or the
    partially nested LMM when an arm is group-delivered, or the single-arm MMRM); ``mmrm`` and
    ``lmm`` build ``outcome ~ outcome_baseline + strata + covariates + arm * visit`` and call
    :func:`peerstats.mmrm` / :func:`peerstats.lmm` with the options given.
    """

    type: ModelType = "auto"
    covariance: str | None = None
    df: str = "satterthwaite"
    covariates: tuple[str, ...] = ()
    random: str | None = None
    residual_by: str | None = None
    level: float = 0.95  # confidence level of every interval (``model: {level: 0.9}``)
    vcov: str = "model"  # covariance of the fixed effects (issue 10.3)


@dataclass(frozen=True)
class ResponderSpec:
    """One responder analysis (reliable change / recovery) of an outcome."""

    outcome: str
    visit: str | None = None
    reliability: float | str = "alpha"
    cutoff: float | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    """A parsed, schema-checked analysis spec (immutable). Build with :func:`read_analysis_spec`.

    Attributes
    ----------
    name, title, description, version : str
    trial_path : Path
        The trial spec (absolute), resolved from ``trial`` (a path or ``{dataset: name}``).
    dataset : str or None
        The bundled example named by ``trial: {dataset: ...}``.
    primary_outcome, primary_visit : str
    secondary_outcomes : tuple of str
    model : ModelSpec
    multiplicity : str
    responders : tuple of ResponderSpec
    min_sessions : int or None
    tables, figures : tuple of str or None
        ``None`` = every table / figure that applies to the design.
    labels : dict
        ``{"outcomes": {...}, "visits": {...}, "arms": {...}}`` display names.
    seed : int
    source : Path or None
        The spec file. ``raw`` is the spec as written.
    """

    name: str
    trial_path: Path
    primary_outcome: str
    primary_visit: str
    title: str = ""
    description: str = ""
    version: str = ""
    dataset: str | None = None
    secondary_outcomes: tuple[str, ...] = ()
    model: ModelSpec = field(default_factory=ModelSpec)
    multiplicity: str = "holm"
    responders: tuple[ResponderSpec, ...] = ()
    min_sessions: int | None = None
    tables: tuple[str, ...] | None = None
    figures: tuple[str, ...] | None = None
    labels: dict = field(default_factory=dict, compare=False)
    seed: int = 0
    source: Path | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    # issue 9: the estimand (ICH E9(R1)) and the sensitivity analyses (pipeline/sensitivity.py)
    estimand: Any = None
    sensitivity: tuple = ()
    # issue 16/23: outcomes that are not scales (``outcomes:`` block): name -> OutcomeDef
    outcome_defs: dict = field(default_factory=dict, compare=False)
    table_one: dict = field(default_factory=dict, compare=False)  # issue 21: Table 1 keys
    word: dict = field(default_factory=dict, compare=False)  # issue 21: {paper: a4 | letter}

    def outcome_type(self, outcome: str) -> str:
        """The type of an outcome (``continuous`` unless the ``outcomes:`` block says)."""
        d = self.outcome_defs.get(outcome)
        return "continuous" if d is None else d.type

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Primary then secondary outcomes."""
        return (self.primary_outcome, *self.secondary_outcomes)

    def wants_table(self, name: str) -> bool:
        """Whether the spec asks for table ``name`` (all apply when ``tables`` is not given)."""
        return self.tables is None or name in self.tables

    def wants_figure(self, name: str) -> bool:
        """Whether the spec asks for figure ``name`` (all apply when ``figures`` is not given)."""
        return self.figures is None or name in self.figures

    def label(self, kind: str, key: str, default: str | None = None) -> str:
        """Display label of an outcome / visit / arm / covariate (``kind`` = outcomes,
        visits, arms, covariates)."""
        value = self.labels.get(kind, {}).get(key)
        if isinstance(value, dict):
            value = value.get("label")
        if value is None:
            return str(default if default is not None else key)
        return str(value)

    def level_labels(self) -> dict[str, dict[str, str]]:
        """Names of covariate levels: ``{covariate: {code: label}}`` (codes as text)."""
        out: dict[str, dict[str, str]] = {}
        for var, value in self.labels.get("covariates", {}).items():
            if isinstance(value, dict) and value.get("levels"):
                out[var] = {str(k): str(v) for k, v in value["levels"].items()}
        return out

    @property
    def paper(self) -> str:
        """Paper size of the Word tables: ``a4`` (default) or ``letter``."""
        return str(self.word.get("paper", "a4"))

    @property
    def outcome_table_digits(self) -> int | dict[str, int]:
        """``outcome_table: {digits: ...}``: decimals of the outcome tables, one number or per
        outcome (``default`` for the rest); ``{}`` when not given (the instruments' scales)."""
        d = (self.raw.get("outcome_table") or {}).get("digits", {})
        return int(d) if isinstance(d, int) else {str(k): int(v) for k, v in d.items()}

    def table_one_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`peerstats.table_one` from the spec's ``table_one:``
        (digits, median [IQR] variables, missing-row style, small-cell suppression, the
        stratification factors such as the site as row blocks)."""
        t1 = self.table_one
        out: dict[str, Any] = {}
        if "digits" in t1:
            out["digits"] = t1["digits"]
        stats = t1.get("statistic", {})
        if stats:
            out["nonnormal"] = [v for v, st in stats.items() if st == "median_iqr"]
        if "missing" in t1:
            out["missing"] = t1["missing"]
        if "suppress_below" in t1:
            out["suppress_below"] = int(t1["suppress_below"])
        if t1.get("strata"):
            out["strata"] = True
        return out

    def check_against(self, trial_spec: Any) -> None:
        """Check the rules that need the trial spec; raise one SpecError listing every problem.

        Raises
        ------
        SpecError
            An outcome or visit is not in the trial spec, the primary visit is the baseline,
            or the model options do not fit the design.
        """
        problems = [
            *self._check_outcome_names(trial_spec),
            *self._check_outcome_defs(trial_spec),
            *self._check_visits(trial_spec),
            *self._check_model(trial_spec),
            *self._check_table_one(trial_spec),
            *self._check_outcome_table(trial_spec),
        ]
        from peerstats.pipeline.sensitivity import check_against as _check_sensitivity

        problems += _check_sensitivity(self, trial_spec)
        if problems:
            raise SpecError(_problem_text(self.source or self.name, problems, trial_spec))

    def _check_outcome_names(self, trial_spec: Any) -> list[str]:
        """Problems of the primary and secondary outcomes not defined under ``outcomes:``."""
        problems = []
        outcomes = list(trial_spec.outcome_names)
        for key, name in [("primary/outcome", self.primary_outcome)] + [
            (f"secondary/outcomes/{i}", o) for i, o in enumerate(self.secondary_outcomes)
        ]:
            if name in self.outcome_defs:  # binary, count ...: checked by the type's adapter
                continue
            if name not in outcomes:
                defined = (
                    f" or defined under outcomes: {sorted(self.outcome_defs)}"
                    if self.outcome_defs
                    else ""
                )
                problems.append(
                    f"{key}: {name!r} is not an outcome; outcomes are {outcomes}{defined}"
                )
        return problems

    def _check_visits(self, trial_spec: Any) -> list[str]:
        """Problems of the primary outcome and visit, and of the responder definitions."""
        problems = []
        outcomes = list(trial_spec.outcome_names)
        visits = [str(v) for v in trial_spec.visits]
        if self.primary_outcome in self.secondary_outcomes:
            problems.append(f"secondary/outcomes: {self.primary_outcome!r} is the primary outcome")
        if self.primary_visit not in visits:
            problems.append(
                f"primary/visit: {self.primary_visit!r} is not a visit; visits are {visits}"
            )
        elif self.primary_visit == visits[0]:
            problems.append(
                f"primary/visit: {self.primary_visit!r} is the baseline; the primary time point "
                f"must be a later visit ({visits[1:]})"
            )
        for i, r in enumerate(self.responders):
            if r.outcome not in outcomes:
                problems.append(
                    f"responders/{i}/outcome: {r.outcome!r} is not an outcome; outcomes are {outcomes}"
                )
            if r.visit is not None and r.visit not in visits[1:]:
                problems.append(
                    f"responders/{i}/visit: {r.visit!r} is not a post-baseline visit; those are {visits[1:]}"
                )
        return problems

    def _check_model(self, trial_spec: Any) -> list[str]:
        """Problems of the ``model:`` block given the design and the trial's covariates."""
        problems = []
        single = trial_spec.design == "single-arm" or len(trial_spec.arms.levels) == 1
        m = self.model
        if m.type == "auto":
            if m.covariance not in (None, "us"):
                problems.append(
                    f"model/covariance: type 'auto' fits the pre-specified unstructured covariance; "
                    f"set model/type to 'mmrm' to use {m.covariance!r}"
                )
            if m.covariates:
                problems.append(
                    "model/covariates: type 'auto' adjusts for the baseline score and the strata "
                    "only; set model/type to 'mmrm' or 'lmm' to add covariates"
                )
        if m.type != "lmm" and (m.random or m.residual_by):
            problems.append("model/random, model/residual_by: only for model/type 'lmm'")
        if m.type == "lmm" and not m.random:
            problems.append(
                "model/random: type 'lmm' needs random terms, e.g. "
                "'(1 | subject) + (0 + delivered | group)'"
            )
        if single and m.type != "auto":
            problems.append(
                f"model/type: {m.type!r} compares arms, but {trial_spec.name!r} is a single-arm "
                "study; use 'auto' (change from baseline)"
            )
        known = set(trial_spec.covariates)
        for c in m.covariates:
            if c in trial_spec.strata:
                problems.append(
                    f"model/covariates: {c!r} is a stratification factor, adjusted already"
                )
            elif c not in known:
                problems.append(
                    f"model/covariates: {c!r} is not a covariate of the trial spec; covariates are "
                    f"{sorted(known)}"
                )
        if m.type == "mmrm" and m.covariance == "iid":
            problems.append(
                "model/covariance: 'iid' is for lmm residuals; an MMRM needs a structure across visits"
            )
        return problems

    def _check_outcome_table(self, trial_spec: Any) -> list[str]:
        """Problems of ``outcome_table: {digits: ...}`` naming an outcome the trial lacks."""
        outcomes = list(trial_spec.outcome_names)
        named = self.outcome_table_digits
        return [
            f"outcome_table/digits: {v!r} is not an outcome; outcomes are {sorted(outcomes)}"
            for v in (named if isinstance(named, dict) else ())
            if v != "default" and v not in outcomes
        ]

    def _check_table_one(self, trial_spec: Any) -> list[str]:
        """Problems of ``table_one:`` given the trial spec: per-variable keys name rows of
        Table 1 (with a did-you-mean); ``strata: true`` needs stratification factors."""
        import difflib

        outcomes = list(trial_spec.outcome_names)
        strata = [str(s) for s in trial_spec.strata] if self.table_one.get("strata") else []
        table_vars = [*strata, *trial_spec.covariates, *(f"{o} (baseline)" for o in outcomes)]
        problems = []
        for key in ("statistic", "digits"):
            named = self.table_one.get(key)
            for v in named if isinstance(named, dict) else ():
                if v != "default" and v not in table_vars:
                    close = difflib.get_close_matches(str(v), table_vars, n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    problems.append(
                        f"table_one/{key}: {v!r} is not a row of Table 1{hint} rows are "
                        f"{table_vars}"
                    )
        if self.table_one.get("strata") and not strata:
            problems.append(
                "table_one/strata: the trial spec has no stratification factors (strata:) to show"
            )
        return problems

    def _check_outcome_defs(self, trial_spec: Any) -> list[str]:
        """Problems of the ``outcomes:`` block given the trial spec (each type's adapter)."""
        from peerstats.pipeline.outcomes import outcome_type

        problems = []
        for name, d in self.outcome_defs.items():
            if name in trial_spec.outcome_names:
                problems.append(
                    f"outcomes/{name}: {name!r} is a scale of the trial spec; name the derived "
                    "outcome differently"
                )
                continue
            if name not in self.outcomes:
                problems.append(
                    f"outcomes/{name}: defined but not analysed; list it under primary or "
                    "secondary outcomes"
                )
            problems += [
                f"outcomes/{name}: {p}" for p in outcome_type(d.type).check(self, trial_spec, name)
            ]
        return problems

    def to_dict(self) -> dict:
        """The spec as written (a deep copy)."""
        return copy.deepcopy(self.raw)


def analysis_spec_schema() -> dict:
    """The analysis-spec JSON Schema (``data_schemas/analysis-spec.schema.json``)."""
    text = (resources.files("peerstats") / "data_schemas" / "analysis-spec.schema.json").read_text(
        encoding="utf-8"
    )
    return json.loads(text)


def _did_you_mean(wrong: list, valid: list[str]) -> str:
    """``"; did you mean 'missing'?"`` for the first wrong word close to a valid one."""
    import difflib

    for w in wrong:
        close = difflib.get_close_matches(str(w), valid, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]!r}?"
    return ""


def _schema_problems(raw: Any) -> list[str]:
    from peerstats._schema import schema_errors

    problems = []
    for err, where, msg in schema_errors(raw, analysis_spec_schema()):
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in allowed] if isinstance(
                err.instance, dict
            ) else []
            msg += _did_you_mean(extra, allowed) + f"; allowed keys are {allowed}"
        elif err.validator == "enum" and isinstance(err.instance, str):
            msg += _did_you_mean([err.instance], [str(v) for v in err.validator_value])
        elif err.validator == "oneOf" and where == "trial":
            msg = "trial is a path to a trial spec or {dataset: <bundled example>}"
        problems.append(f"{where}: {msg}")
    return problems


def read_analysis_spec(
    spec: str | Path | dict | AnalysisSpec, *, base_dir: str | Path | None = None
) -> AnalysisSpec:
    """Read and schema-check an analysis spec.

    Parameters
    ----------
    spec : path, dict or AnalysisSpec
        A YAML file, or the same content as a dict.
    base_dir : path, optional
        Directory a relative ``trial`` path is resolved against (default: the spec file's
        folder, or the working directory for a dict).

    Returns
    -------
    AnalysisSpec

    Raises
    ------
    SpecError
        The file is missing or not YAML, or the spec breaks the schema (every problem listed),
        or the trial spec it names does not exist.
    """
    if isinstance(spec, AnalysisSpec):
        return spec
    raw, source, root = _load_raw(spec, base_dir)
    _visits_as_text(raw)
    problems = _schema_problems(raw) + non_finite_fields(raw)  # .nan/.inf (issue 24.7)
    problems += spec_identifier_problems(raw)  # identifiers typed into a spec (24.1)
    if problems:
        raise SpecError(_problem_text(source or "(dict)", problems))
    trial_path, dataset = _trial_location(raw["trial"], root, source)
    meta = raw["analysis"]
    model = _model_spec(raw.get("model", {}))
    responders = _responder_specs(raw)
    from peerstats.pipeline.outcomes._definition import parse_outcomes
    from peerstats.pipeline.sensitivity import parse as _parse_sensitivity

    estimand, sensitivity, problems = _parse_sensitivity(raw)
    outcome_defs, more = parse_outcomes(raw)
    problems += more
    if problems:
        raise SpecError(_problem_text(source or "(dict)", problems))
    return AnalysisSpec(
        outcome_defs=outcome_defs,
        estimand=estimand,
        sensitivity=sensitivity,
        name=meta["name"],
        title=meta.get("title", ""),
        description=meta.get("description", ""),
        version=meta.get("version", ""),
        trial_path=trial_path,
        dataset=dataset,
        primary_outcome=raw["primary"]["outcome"],
        primary_visit=str(raw["primary"]["visit"]),
        secondary_outcomes=tuple(raw.get("secondary", {}).get("outcomes", ())),
        model=model,
        multiplicity=raw.get("multiplicity", {}).get("method", "holm"),
        responders=responders,
        min_sessions=raw.get("feasibility", {}).get("min_sessions"),
        tables=tuple(raw["tables"]) if "tables" in raw else None,
        figures=tuple(raw["figures"]) if "figures" in raw else None,
        labels={k: dict(v) for k, v in raw.get("labels", {}).items()},
        table_one=dict(raw.get("table_one") or {}),
        word=dict(raw.get("word") or {}),
        seed=int(raw.get("seed", 0)),
        source=source,
        raw=raw,
    )


def _load_raw(
    spec: str | Path | dict, base_dir: str | Path | None
) -> tuple[Any, Path | None, Path]:
    """The spec's content (a copy of a dict, or the YAML file read), its file and the folder
    a relative ``trial`` path is resolved against."""
    source: Path | None = None
    if isinstance(spec, dict):
        raw = copy.deepcopy(spec)
        root = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        import yaml

        source = Path(spec).resolve()
        if not source.is_file():
            raise SpecError(f"analysis spec not found: {spec}")
        from peerstats._yaml import YAMLRefusedError, load_yaml

        try:
            raw = load_yaml(_read_spec_text(source))
        except (yaml.YAMLError, UnicodeDecodeError, YAMLRefusedError) as exc:
            raise SpecError(f"{source} is not valid YAML: {exc}") from exc
        root = Path(base_dir) if base_dir is not None else source.parent
    if not isinstance(raw, dict):
        raise SpecError(f"analysis spec {source or ''}: the top level must be a mapping")
    return raw, source, root


def _trial_location(trial: Any, root: Path, source: Path | None) -> tuple[Path, str | None]:
    """The trial spec's path and the bundled dataset's name (None for a file path)."""
    dataset = None
    if isinstance(trial, dict):
        from peerstats import datasets

        dataset = trial["dataset"]
        trial_path = Path(datasets.path(dataset))  # SpecError for an unknown name
    else:
        trial_path = Path(trial)
        if not trial_path.is_absolute():
            trial_path = (root / trial_path).resolve()
        if not trial_path.is_file():
            raise SpecError(
                _problem_text(source or "(dict)", [f"trial: file not found: {trial_path}"])
            )
    return trial_path, dataset


def _model_spec(m: dict) -> ModelSpec:
    """The ``model:`` block with its defaults."""
    return ModelSpec(
        type=m.get("type", "auto"),
        covariance=m.get("covariance"),
        df=m.get("df", "satterthwaite"),
        covariates=tuple(m.get("covariates", ())),
        random=m.get("random"),
        residual_by=m.get("residual_by"),
        level=float(m.get("level", 0.95)),
        vcov=m.get("vcov", "model"),
    )


def _responder_specs(raw: dict) -> tuple[ResponderSpec, ...]:
    """The ``responders:`` list with its defaults."""
    return tuple(
        ResponderSpec(
            outcome=r["outcome"],
            visit=r.get("visit"),
            reliability=r.get("reliability", "alpha"),
            cutoff=r.get("cutoff"),
        )
        for r in raw.get("responders", ())
    )


def _visits_as_text(raw: dict) -> None:
    """Trial specs may name visits by numbers (``visits: [0, 8, 20]``) and YAML then reads
    ``visit: 8`` and label keys as integers: use their text, as the Trial does."""
    prim = raw.get("primary")
    if isinstance(prim, dict) and isinstance(prim.get("visit"), int | float):
        prim["visit"] = str(prim["visit"])
    for r in raw.get("responders") or []:
        if isinstance(r, dict) and isinstance(r.get("visit"), int | float):
            r["visit"] = str(r["visit"])
    for r in raw.get("sensitivity") or []:
        if isinstance(r, dict) and isinstance(r.get("visit"), int | float):
            r["visit"] = str(r["visit"])
    est = raw.get("estimand")
    if isinstance(est, dict):
        for ev in est.get("intercurrent_events") or []:
            if isinstance(ev, dict) and isinstance(ev.get("visit"), int | float):
                ev["visit"] = str(ev["visit"])
    labels = raw.get("labels")
    if isinstance(labels, dict):
        for kind, mapping in list(labels.items()):
            if isinstance(mapping, dict):
                labels[kind] = {str(k): v for k, v in mapping.items()}
        covs = labels.get("covariates")
        if isinstance(covs, dict):
            for value in covs.values():
                if isinstance(value, dict) and isinstance(value.get("levels"), dict):
                    # YAML reads {0: no, 1: yes} with integer keys (and yes/no as booleans
                    # when unquoted): keys and names are compared as text
                    value["levels"] = {
                        _yaml_text(k): _yaml_text(v) for k, v in value["levels"].items()
                    }


def _yaml_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if isinstance(value, int | float) else value


def _read_spec_text(path: Path) -> str:
    """The spec's text; the digest of its bytes is what the manifest records (issue 24.8)."""
    from peerstats._provenance import remember

    data = Path(path).read_bytes()
    remember(path, data)
    return data.decode("utf-8")
