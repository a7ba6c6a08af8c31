"""The estimand and the sensitivity analyses of an analysis spec (ICH E9(R1)), in a pipeline run.

An analysis spec may carry

``estimand:``
    the five attributes of ICH E9(R1): population, treatment, variable, intercurrent events
    (each with its strategy: treatment policy, hypothetical, while on treatment, composite,
    principal stratum; and, for the imputation-based sensitivity analyses, the assumption about
    missing data after it: MAR, JR, CR, CIR, LMCF) and the population-level summary;

``sensitivity:``
    a list of analyses of the primary outcome that probe the primary analysis' assumptions:
    ``complete-case``, ``per-protocol`` and ``cace`` (a compliance rule), ``multiple-imputation``
    (``peerstats.impute``: method, strategy, reference arm, number of imputations),
    ``multilevel-imputation`` (``peerstats.impute_multilevel``: the delivery-group random effect
    of a group-delivered arm) and ``tipping-point`` (``peerstats.tipping_point``: a delta grid).

:func:`parse` reads both (schema-checked already), :func:`check_against` checks them against
the trial spec, :func:`check_data` against the loaded trial (before any model is fitted), and
:func:`run_sensitivity` computes them into a run (results.json ``estimand``, ``missing_data``,
``sensitivity``, ``tipping_point``; tables; figures); :func:`render_section` is the report
section "Estimand and missing data". Every number comes from a public peerstats function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peerstats.exceptions import SpecError
from peerstats.pipeline._sensitivity_out import (  # noqa: F401  (render_section: public here)
    _MEANING,
    _WORDS,
    _forest_figure,
    _table_html,
    _tipping_figure,
    render_section,
)

__all__ = [
    "EstimandSpec",
    "IntercurrentEvent",
    "SensitivitySpec",
    "parse",
    "check_against",
    "check_data",
    "run_sensitivity",
    "render_section",
    "METHODS",
    "E9_STRATEGIES",
    "MISSING_STRATEGIES",
]

METHODS = (
    "complete-case",
    "per-protocol",
    "cace",
    "multiple-imputation",
    "multilevel-imputation",
    "tipping-point",
)
E9_STRATEGIES = (
    "treatment policy",
    "hypothetical",
    "while on treatment",
    "composite",
    "principal stratum",
)
#: E9 strategies the imputation analyses implement
IMPUTABLE = ("treatment policy", "hypothetical")
MISSING_STRATEGIES = ("MAR", "JR", "CR", "CIR", "LMCF")
IMPUTATION_METHODS = (
    "bayes",
    "approx-bayes",
    "condmean-jackknife",
    "condmean-bootstrap",
    "bootstrap-ml",
)
DEFAULT_M = 20

_KEYS = {
    "complete-case": (),
    "per-protocol": ("compliance", "reference"),
    "cace": ("compliance", "reference"),
    "multiple-imputation": (
        "imputation",
        "strategy",
        "reference",
        "n_imputations",
        "analysis_model",
    ),
    "multilevel-imputation": ("n_imputations", "analysis_model"),
    "tipping-point": (
        "imputation",
        "strategy",
        "reference",
        "n_imputations",
        "delta",
        "visit",
        "analysis_model",
    ),
}
#: the analysis model of an imputation-based analysis (issue 20.3): the primary model refitted
#: on each imputed data set (default), or the per-visit ANCOVA
ANALYSIS_MODELS = ("primary", "ancova")
_COMMON = ("method", "name", "label")


@dataclass(frozen=True)
class IntercurrentEvent:
    """One intercurrent event of the estimand."""

    event: str
    strategy: str
    column: str | None = None
    visit: str | None = None
    missing_data: str = "MAR"
    post_ice: str | None = None  # keep | impute | error; default from the strategy

    @property
    def post_ice_handling(self) -> str:
        """Outcomes observed after the event: kept (treatment policy), set aside and imputed
        (hypothetical and the others), or an error, unless ``post_ice`` says so."""
        if self.post_ice is not None:
            return self.post_ice
        return "keep" if self.strategy == "treatment policy" else "impute"


@dataclass(frozen=True)
class EstimandSpec:
    """The ``estimand:`` block (ICH E9(R1) attributes)."""

    population: str = ""
    treatment: str = ""
    variable: str = ""
    summary: str = ""
    intercurrent_events: tuple[IntercurrentEvent, ...] = ()

    @property
    def imputation_strategies(self) -> tuple[str, ...]:
        """The missing-data strategies its intercurrent events name."""
        return tuple(dict.fromkeys(e.missing_data for e in self.intercurrent_events))


@dataclass(frozen=True)
class SensitivitySpec:
    """One entry of the ``sensitivity:`` list."""

    method: str
    name: str
    label: str = ""
    imputation: str = "bayes"
    strategy: str = "MAR"
    reference: str | None = None
    n_imputations: int | None = None
    delta: dict = field(default_factory=dict, compare=False)
    visit: str | None = None
    compliance: Any = field(default=None, compare=False)
    analysis_model: str = "primary"  # primary | ancova (issue 20.3)

    @property
    def uses_imputation(self) -> bool:
        return self.method in ("multiple-imputation", "tipping-point")


# ----------------------------------------------------------------------------- parsing
def _parse_estimand(e: dict | None) -> EstimandSpec | None:
    """The ``estimand:`` block as an :class:`EstimandSpec`."""
    if e is None:
        return None
    ices = tuple(
        IntercurrentEvent(
            event=str(x["event"]),
            strategy=str(x["strategy"]),
            column=x.get("column"),
            visit=None if x.get("visit") is None else str(x["visit"]),
            missing_data=str(x.get("missing_data", "MAR")),
            post_ice=x.get("post_ice"),
        )
        for x in e.get("intercurrent_events", ())
    )
    return EstimandSpec(
        population=e.get("population", ""),
        treatment=e.get("treatment", ""),
        variable=e.get("variable", ""),
        summary=e.get("summary", ""),
        intercurrent_events=ices,
    )


def _method_problems(i: int, s: dict) -> list[str]:
    """Keys that do not apply to the method, and keys the method needs."""
    method = s["method"]
    problems = []
    allowed = _KEYS[method]
    extra = [k for k in s if k not in allowed and k not in _COMMON]
    if extra:
        problems.append(
            f"sensitivity/{i}: {extra} do not apply to method {method!r}; its keys are "
            f"{sorted([*_COMMON, *allowed])}"
        )
    if method in ("per-protocol", "cace") and "compliance" not in s:
        problems.append(
            f"sensitivity/{i}: method {method!r} needs a compliance rule, e.g. "
            "compliance: {sessions: 5} (attended at least 5 sessions)"
        )
    if method == "tipping-point" and "delta" not in s:
        problems.append(
            f"sensitivity/{i}: method 'tipping-point' needs a delta grid, e.g. "
            "delta: {peer: [-10, -8, -6, -4, -2, 0]}"
        )
    return problems


def _strategy(i: int, s: dict, est: EstimandSpec | None, problems: list[str]) -> str:
    """The missing-data strategy of one analysis (``estimand`` by default for MI when the
    estimand names intercurrent events), with the problems it raises."""
    default_strategy = "MAR"
    if s["method"] == "multiple-imputation":
        default_strategy = "estimand" if est is not None and est.intercurrent_events else "MAR"
    strategy = s.get("strategy", default_strategy)
    if strategy == "estimand" and (est is None or not est.intercurrent_events):
        problems.append(
            f"sensitivity/{i}: strategy 'estimand' takes the strategies of the estimand's "
            "intercurrent events, but the spec has none (estimand: intercurrent_events)"
        )
    if strategy == "estimand" and est is not None:
        for j, ev in enumerate(est.intercurrent_events):
            if ev.strategy not in IMPUTABLE:
                problems.append(
                    f"estimand/intercurrent_events/{j}/strategy: {ev.strategy!r} has no "
                    f"imputation-based analysis (sensitivity/{i}); those implement "
                    f"{list(IMPUTABLE)}"
                )
    return strategy


def _imputations(i: int, s: dict, problems: list[str]) -> tuple[str, int | None]:
    """The imputation method and the number of imputations (defaults by method)."""
    method = s["method"]
    imputation = s.get("imputation", "bayes")
    n_imp = s.get("n_imputations")
    if n_imp is None and method in ("multiple-imputation", "tipping-point"):
        n_imp = None if imputation == "condmean-jackknife" else DEFAULT_M
    if n_imp is None and method == "multilevel-imputation":
        n_imp = DEFAULT_M
    if imputation == "condmean-jackknife" and s.get("n_imputations") is not None:
        problems.append(
            f"sensitivity/{i}/n_imputations: condmean-jackknife has one refit per "
            "participant; leave n_imputations out"
        )
    if imputation == "bootstrap-ml" and n_imp is not None and n_imp < 2:
        problems.append(f"sensitivity/{i}/n_imputations: bootstrap-ml needs at least 2")
    return imputation, n_imp


def _name(i: int, s: dict, names: dict[str, int], problems: list[str]) -> str:
    """A unique name (``method``, ``method-2`` ...); a repeated explicit name is a problem."""
    name = s.get("name") or s["method"]
    if name in names:
        names[name] += 1
        if "name" in s:
            problems.append(f"sensitivity/{i}/name: {name!r} is used twice; names must be unique")
        return f"{name}-{names[name]}"
    names[name] = 1
    return name


def _parse_one(
    i: int, s: dict, est: EstimandSpec | None, names: dict[str, int], problems: list[str]
) -> SensitivitySpec:
    problems += _method_problems(i, s)
    strategy = _strategy(i, s, est, problems)
    imputation, n_imp = _imputations(i, s, problems)
    name = _name(i, s, names, problems)
    return SensitivitySpec(
        method=s["method"],
        name=name,
        label=s.get("label", ""),
        imputation=imputation,
        strategy=strategy,
        reference=None if s.get("reference") is None else str(s["reference"]),
        n_imputations=n_imp,
        delta={str(k): [float(v) for v in vals] for k, vals in (s.get("delta") or {}).items()},
        visit=None if s.get("visit") is None else str(s["visit"]),
        compliance=s.get("compliance"),
        analysis_model=_analysis_model(i, s, problems),
    )


def _analysis_model(i: int, s: dict, problems: list[str]) -> str:
    """``analysis_model``: primary (default) or ancova; anything else is a problem."""
    value = s.get("analysis_model", "primary")
    if value not in ANALYSIS_MODELS:
        problems.append(
            f"sensitivity/{i}/analysis_model: {value!r} is not an analysis model; choose "
            f"{' or '.join(repr(x) for x in ANALYSIS_MODELS)} (primary: the primary analysis "
            "model refitted on each imputed data set; ancova: a per-visit ANCOVA)"
        )
        return "primary"
    return str(value)


def parse(raw: dict) -> tuple[EstimandSpec | None, tuple[SensitivitySpec, ...], list[str]]:
    """The estimand and sensitivity analyses of a (schema-valid) raw spec, and the problems
    that span keys (collected, not raised)."""
    problems: list[str] = []
    est = _parse_estimand(raw.get("estimand"))
    names: dict[str, int] = {}
    sens = [
        _parse_one(i, s, est, names, problems)
        for i, s in enumerate(raw.get("sensitivity", ()) or ())
    ]
    if est is not None:
        for j, ev in enumerate(est.intercurrent_events):
            if ev.missing_data != "MAR" and ev.strategy not in IMPUTABLE:
                problems.append(
                    f"estimand/intercurrent_events/{j}/missing_data: {ev.missing_data!r} is an "
                    f"imputation assumption; it applies to the strategies {list(IMPUTABLE)}, "
                    f"not {ev.strategy!r}"
                )
    return est, tuple(sens), problems


def check_against(spec: Any, trial_spec: Any) -> list[str]:
    """Problems of the estimand / sensitivity blocks given the trial spec (arms, visits)."""
    problems: list[str] = []
    est, sens = spec.estimand, spec.sensitivity
    if est is None and not sens:
        return problems
    arms = [str(a) for a in trial_spec.arms.levels]
    visits = [str(v) for v in trial_spec.visits]
    post = visits[1:]
    single = trial_spec.design == "single-arm" or len(arms) == 1
    if est is not None:
        for j, ev in enumerate(est.intercurrent_events):
            if ev.visit is not None and ev.visit not in post:
                where = "is the baseline" if ev.visit == visits[0] else "is not a visit"
                problems.append(
                    f"estimand/intercurrent_events/{j}/visit: {ev.visit!r} {where}; an "
                    f"intercurrent event affects a post-baseline visit ({post})"
                )
    if single and sens:
        problems.append(
            f"sensitivity: {trial_spec.name!r} is a single-arm study; the sensitivity analyses "
            "compare arms"
        )
        return problems
    for i, s in enumerate(sens):
        if s.reference is not None and s.reference not in arms:
            problems.append(
                f"sensitivity/{i}/reference: {s.reference!r} is not an arm; arms are {arms}"
            )
        for a in s.delta:
            if a not in arms:
                problems.append(f"sensitivity/{i}/delta: {a!r} is not an arm; arms are {arms}")
        if s.visit is not None and s.visit not in post:
            problems.append(
                f"sensitivity/{i}/visit: {s.visit!r} is not a post-baseline visit; those are {post}"
            )
        if s.method == "multilevel-imputation" and not trial_spec.arms.group_delivered:
            problems.append(
                f"sensitivity/{i}: 'multilevel-imputation' needs a group-delivered arm "
                "(trial spec arms.group_delivered)"
            )
        if s.method == "multilevel-imputation" and trial_spec.columns.group is None:
            problems.append(
                f"sensitivity/{i}: 'multilevel-imputation' needs the delivery group (trial spec "
                "columns: group)"
            )
    return problems


def check_data(spec: Any, trial: Any) -> None:
    """Checks that need the data (compliance and event columns), before any model is fitted.

    Raises
    ------
    SpecError
        Naming the value and what is allowed.
    """
    from peerstats.missing.populations import compliance

    est, sens = spec.estimand, spec.sensitivity
    part = trial.participants
    problems: list[str] = []
    if est is not None:
        for j, ev in enumerate(est.intercurrent_events):
            if ev.column is not None and ev.column not in part.columns:
                cols = [c for c in part.columns if c != "subject"]
                problems.append(
                    f"estimand/intercurrent_events/{j}/column: {ev.column!r} is not in the "
                    f"participants table; columns are {cols}"
                )
    for i, s in enumerate(sens):
        if s.compliance is not None:
            try:
                compliance(trial, s.compliance, reference=s.reference)
            except SpecError as exc:
                problems.append(f"sensitivity/{i}/compliance: {exc}")
    if problems:
        from peerstats.pipeline._problems import _problem_text

        raise SpecError(_problem_text(spec.source or spec.name, problems, trial.spec))


# the running of the analyses lives in _sensitivity_run (re-exported: older imports)
from peerstats.pipeline._sensitivity_run import (  # noqa: E402, F401
    _flagged,
    _ice_frame,
    _post_frame,
    missing_data_step,
    missing_table,
    run_sensitivity,
)
