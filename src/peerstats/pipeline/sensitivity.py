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

import html
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import SpecError

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

_WORDS = {
    "MAR": "missing at random",
    "JR": "jump to reference",
    "CR": "copy reference",
    "CIR": "copy increments in reference",
    "LMCF": "last mean carried forward",
}
_MEANING = {
    "JR": "after the event these participants are assumed to have the mean outcomes of the "
    "reference arm, keeping their own deviation from their arm's mean observed before it "
    "(Carpenter, Roger & Kenward 2013).",
    "CR": "these participants are assumed to have been in the reference arm all along (their "
    "observed outcomes are conditioned on under the reference arm's mean).",
    "CIR": "after the event these participants keep the benefit reached so far but change from "
    "then on as the reference arm does.",
    "LMCF": "after the event these participants keep the mean of their arm at their last "
    "visit before it.",
}
_KEYS = {
    "complete-case": (),
    "per-protocol": ("compliance", "reference"),
    "cace": ("compliance", "reference"),
    "multiple-imputation": ("imputation", "strategy", "reference", "n_imputations"),
    "multilevel-imputation": ("n_imputations",),
    "tipping-point": ("imputation", "strategy", "reference", "n_imputations", "delta", "visit"),
}
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

    @property
    def uses_imputation(self) -> bool:
        return self.method in ("multiple-imputation", "tipping-point")


# ----------------------------------------------------------------------------- parsing
def parse(raw: dict) -> tuple[EstimandSpec | None, tuple[SensitivitySpec, ...], list[str]]:
    """The estimand and sensitivity analyses of a (schema-valid) raw spec, and the problems
    that span keys (collected, not raised)."""
    problems: list[str] = []
    est = None
    e = raw.get("estimand")
    if e is not None:
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
        est = EstimandSpec(
            population=e.get("population", ""),
            treatment=e.get("treatment", ""),
            variable=e.get("variable", ""),
            summary=e.get("summary", ""),
            intercurrent_events=ices,
        )
    sens: list[SensitivitySpec] = []
    names: dict[str, int] = {}
    for i, s in enumerate(raw.get("sensitivity", ()) or ()):
        method = s["method"]
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
        default_strategy = "MAR"
        if method == "multiple-imputation":
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
        name = s.get("name") or method
        if name in names:
            names[name] += 1
            if "name" in s:
                problems.append(
                    f"sensitivity/{i}/name: {name!r} is used twice; names must be unique"
                )
            name = f"{name}-{names[name]}"
        else:
            names[name] = 1
        delta = {str(k): [float(v) for v in vals] for k, vals in (s.get("delta") or {}).items()}
        sens.append(
            SensitivitySpec(
                method=method,
                name=name,
                label=s.get("label", ""),
                imputation=imputation,
                strategy=strategy,
                reference=None if s.get("reference") is None else str(s["reference"]),
                n_imputations=n_imp,
                delta=delta,
                visit=None if s.get("visit") is None else str(s["visit"]),
                compliance=s.get("compliance"),
            )
        )
    if est is not None:
        for j, ev in enumerate(est.intercurrent_events):
            if ev.missing_data != "MAR" and ev.strategy not in IMPUTABLE:
                problems.append(
                    f"estimand/intercurrent_events/{j}/missing_data: {ev.missing_data!r} is an "
                    f"imputation assumption; it applies to the strategies {list(IMPUTABLE)}, "
                    f"not {ev.strategy!r}"
                )
    return est, tuple(sens), problems


def _uses_reference(s: SensitivitySpec, est: EstimandSpec | None) -> bool:
    strategies = (
        est.imputation_strategies
        if (s.strategy == "estimand" and est is not None)
        else (s.strategy,)
    )
    return any(x in ("JR", "CR", "CIR") for x in strategies)


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


# ----------------------------------------------------------------------------- helpers
def _flagged(values: pd.Series) -> np.ndarray:
    """Which participants a column marks: true / 1 / yes, or any text other than no/false/0."""
    out = []
    for v in values.astype(object):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.append(False)
        elif isinstance(v, bool | np.bool_):
            out.append(bool(v))
        elif isinstance(v, int | float | np.integer | np.floating):
            out.append(float(v) != 0)
        else:
            t = str(v).strip().lower()
            out.append(t not in ("", "0", "no", "false", "n"))
    return np.asarray(out, dtype=bool)


def _post_frame(trial: Any, outcome: str) -> tuple[pd.DataFrame, list[str], int]:
    """Post-baseline rows (every randomised participant x visit) with baseline and strata;
    participants without a baseline value are left out (their count is returned)."""
    ts = trial.spec
    visits = [str(v) for v in ts.visits]
    arms = [str(a) for a in ts.arms.levels]
    a = trial.assessments
    bcol = f"{outcome}_baseline"
    base = a.groupby(a["subject"].astype(str))[bcol].first()
    part = trial.randomised
    subj = part["subject"].astype(str)
    strata = [s for s in ts.strata if s in part.columns]
    rows = []
    for v in visits[1:]:
        f = pd.DataFrame(
            {"subject": subj.to_numpy(), "arm": part["arm"].astype(str).to_numpy(), "visit": v}
        )
        for s in strata:
            f[s] = part[s].astype(str).to_numpy()
        rows.append(f)
    grid = pd.concat(rows, ignore_index=True)
    obs = a[a["visit"].astype(str) != visits[0]][["subject", "visit", outcome]].copy()
    obs["subject"] = obs["subject"].astype(str)
    obs["visit"] = obs["visit"].astype(str)
    grid = grid.merge(obs, on=["subject", "visit"], how="left")
    grid[bcol] = base.reindex(grid["subject"]).to_numpy()
    n_nobase = int(grid.loc[grid[bcol].isna(), "subject"].nunique())
    grid = grid[grid[bcol].notna()].copy()
    grid["visit"] = pd.Categorical(grid["visit"], categories=visits[1:])
    grid["arm"] = pd.Categorical(grid["arm"], categories=arms)
    grid = grid.sort_values(["subject", "visit"]).reset_index(drop=True)
    strata = [s for s in strata if grid[s].nunique() > 1]
    return grid, strata, n_nobase


def missing_table(trial: Any, outcome: str) -> pd.DataFrame:
    """Randomised participants, observed and missing outcome per arm and visit."""
    ts = trial.spec
    part = trial.randomised
    a = trial.assessments
    rows = []
    for arm in [str(x) for x in ts.arms.levels]:
        subj = set(part.loc[part["arm"].astype(str) == arm, "subject"].astype(str))
        n = len(subj)
        for v in [str(x) for x in ts.visits]:
            seen = a[(a["visit"].astype(str) == v) & a[outcome].notna()]
            k = int(seen["subject"].astype(str).isin(subj).sum())
            rows.append(
                {
                    "arm": arm,
                    "visit": v,
                    "n_randomised": n,
                    "n_observed": k,
                    "n_missing": n - k,
                    "fraction_missing": (n - k) / n if n else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def _ice_frame(
    s: SensitivitySpec,
    est: EstimandSpec | None,
    trial: Any,
    grid: pd.DataFrame,
    reference: str,
    outcome: str,
) -> tuple[pd.DataFrame | None, str]:
    """The ``ice`` frame for peerstats.impute and a sentence saying what it does."""
    visits = list(grid["visit"].cat.categories)
    wide = grid.pivot(index="subject", columns="visit", values=outcome)[visits]
    arm_of = grid.groupby("subject")["arm"].first().astype(str)
    miss = wide.isna().to_numpy()
    subjects = wide.index.to_numpy()
    first_missing = np.where(miss.any(axis=1), miss.argmax(axis=1), len(visits))
    if s.strategy != "estimand":
        if s.strategy == "MAR":
            return None, "every missing outcome imputed under MAR"
        keep = (first_missing < len(visits)) & (arm_of.reindex(subjects).to_numpy() != reference)
        ice = pd.DataFrame(
            {
                "subject": subjects[keep],
                "visit": np.array(visits, dtype=object)[first_missing[keep]],
                "strategy": s.strategy,
            }
        )
        text = (
            f"missing outcomes of the {int(keep.sum())} participant(s) outside the reference "
            f"arm with missing data imputed by {_WORDS[s.strategy]} ({s.strategy}) from their "
            "first missing visit; the reference arm under MAR"
        )
        return ice, text
    part = trial.randomised.set_index(trial.randomised["subject"].astype(str))
    rows: dict[str, tuple[int, str]] = {}
    texts = []
    for ev in est.intercurrent_events:
        if ev.column is None:
            texts.append(f"{ev.event}: no column records it, so no participant is affected")
            continue
        flag = (
            pd.Series(_flagged(part[ev.column]), index=part.index).reindex(subjects).fillna(False)
        )
        v0 = visits.index(ev.visit) if ev.visit is not None else 0
        n_ev = 0
        for k, sid in enumerate(subjects):
            if not flag.iloc[k]:
                continue
            if ev.post_ice_handling == "keep":  # as peerstats.impute(post_ice="keep"):
                # outcomes observed after the event are used; missing ones from the first
                # missing visit at or after it follow the assumption
                later = np.flatnonzero(miss[k, v0:])
                if not len(later):
                    continue
                j = v0 + int(later[0])
            else:  # post_ice impute / error: outcomes after the event set aside and imputed
                if ev.post_ice_handling == "error" and not miss[k, v0:].all():
                    raise SpecError(
                        f"estimand: intercurrent event {ev.event!r} has post_ice: error, but "
                        "outcomes were observed after it; use post_ice: keep (analyse them) "
                        "or impute (set them aside)"
                    )
                j = v0
            if sid not in rows or j < rows[sid][0]:
                rows[sid] = (j, ev.missing_data)
                n_ev += 1
        texts.append(
            f"{ev.missing_data} after \u201c{ev.event}\u201d ({n_ev} participant(s) with "
            "outcomes to impute after it)"
        )
    if not rows:
        return None, "; ".join(texts) + "; MAR otherwise"
    sids = list(rows)
    ice = pd.DataFrame(
        {
            "subject": sids,
            "visit": [visits[rows[x][0]] for x in sids],
            "strategy": [rows[x][1] for x in sids],
        }
    )
    return ice, "; ".join(texts) + "; MAR otherwise"


def _row(name, label, population, assumption, visit, r, n=None) -> dict:
    return {
        "analysis": name,
        "label": label,
        "population": population,
        "missing_data": assumption,
        "visit": str(visit),
        "contrast": str(r["contrast"]),
        "estimate": float(r["estimate"]),
        "std_error": float(r["std_error"]),
        "df": float(r["df"]) if r.get("df") is not None else float("nan"),
        "p_value": float(r["p_value"]),
        "ci_lower": float(r["ci_lower"]),
        "ci_upper": float(r["ci_upper"]),
        "n": None if n is None else int(n),
    }


# ----------------------------------------------------------------------------- running
def run_sensitivity(run: Any, progress: Any) -> None:
    """Compute the estimand section of a run (results, tables, figures, report HTML)."""
    import peerstats
    from peerstats.pipeline._common import _collect, outcome_label
    from peerstats.pipeline._jsonio import frame_keyed, plain

    spec, trial = run.spec, run.trial
    est, sens = spec.estimand, spec.sensitivity
    if est is None and not sens:
        return
    ts = trial.spec
    o = spec.primary_outcome
    arms = [str(a) for a in ts.arms.levels]
    ref_arm = str(ts.arms.reference or arms[0])
    res = run.results
    olabel = outcome_label(trial, spec, o)

    # ---- missing data -------------------------------------------------------------------------
    mt = missing_table(trial, o)
    res["missing_data"] = {
        "outcome": o,
        "assumption": "MAR",
        "by_arm_visit": frame_keyed(mt, ["arm", "visit"]),
    }
    run.tables["missing_data"] = mt
    if est is not None:
        res["estimand"] = {
            "population": est.population,
            "treatment": est.treatment,
            "variable": est.variable or f"{olabel} at {spec.label('visits', spec.primary_visit)}",
            "summary": est.summary,
            "intercurrent_events": [
                {
                    "event": e.event,
                    "strategy": e.strategy,
                    "missing_data": e.missing_data,
                    **({"visit": e.visit} if e.visit else {}),
                }
                for e in est.intercurrent_events
            ],
        }

    # ---- the primary analysis, for the comparison table ------------------------------------
    rows: list[dict] = []
    prim = run.fits[o]
    pct = prim.contrasts if prim.contrasts is not None else None
    n_prim = int(getattr(prim.fit, "n_subjects", 0)) or None
    if pct is None:
        pct = prim.fit.contrasts("arm", by="visit", reference=ref_arm)
    for _, r in pct.iterrows():
        rows.append(
            _row(
                "primary",
                "Primary analysis",
                "all randomised (ITT)",
                "MAR (likelihood-based, all observed outcomes)",
                r["visit"],
                r,
                n_prim,
            )
        )
    grid, strata, n_nobase = _post_frame(trial, o)
    bcol = f"{o}_baseline"
    covs = [bcol, *strata]
    notes: list[str] = []
    if n_nobase:
        notes.append(
            f"{n_nobase} participant(s) without a baseline {olabel} are left out of the "
            "imputation analyses (the baseline is a covariate)"
        )
    tipping: dict[str, Any] = {}
    imputed_counts: dict[str, Any] = {}
    visits_post = list(grid["visit"].cat.categories)
    for i, s in enumerate(sens):
        label = s.label or _default_label(s, est)
        with (
            progress.step(f"sensitivity {i + 1}/{len(sens)}: {label}{_work(s)}"),
            _collect(run.warnings, f"sensitivity {s.name}: "),
        ):
            if s.method in ("complete-case", "per-protocol"):
                if s.method == "complete-case":
                    sub = peerstats.complete_case(trial, o)
                    pop = "complete cases (outcome observed at every visit)"
                else:
                    sub = peerstats.per_protocol(trial, s.compliance, reference=s.reference)
                    rule = _rule_text(trial, s.compliance)
                    pop = f"per protocol: {spec.label('arms', ref_arm)}, and those who {rule}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ta = peerstats.analyze(sub, outcome=o, df=spec.model.df, level=spec.model.level)
                n = int(ta.n_analysed.sum())
                assumption = (
                    "missing completely at random given the covariates (only complete cases)"
                    if s.method == "complete-case"
                    else "MAR within the per-protocol population"
                )
                for _, r in ta.contrasts.iterrows():
                    rows.append(_row(s.name, label, pop, assumption, r["visit"], r, n))
            elif s.method == "cace":
                cr = peerstats.cace(
                    trial, outcome=o, compliance=s.compliance, reference=s.reference
                )
                rule = cr.compliance_rule
                pop = f"compliers ({rule}), randomisation as the instrument"
                for _, r in cr.effects.iterrows():
                    rows.append(
                        _row(
                            s.name,
                            label,
                            pop,
                            "available cases at each visit",
                            r["visit"],
                            r,
                            r["n"],
                        )
                    )
                notes.extend(n for n in cr.notes if "weak instrument" in n)
            elif s.method == "multilevel-imputation":
                formula = f"{o} ~ " + " + ".join(["arm", *covs])
                data = grid.merge(
                    trial.randomised.assign(subject=lambda d: d["subject"].astype(str))[
                        ["subject", "group"]
                    ],
                    on="subject",
                    how="left",
                )
                imp = peerstats.impute_multilevel(
                    formula,
                    data,
                    subject="subject",
                    visit="visit",
                    arm="arm",
                    group="group",
                    delivered=[str(x) for x in ts.arms.group_delivered],
                    n_imputations=int(s.n_imputations),
                    seed=_seed(spec.seed, i),
                )
                an = imp.analyse(covariates=covs)
                assumption = (
                    "MAR, imputation model with the delivery-group random effect "
                    f"({imp.n_imputations} imputations)"
                )
                for _, r in an.iterrows():
                    rows.append(
                        _row(
                            s.name,
                            label,
                            "all randomised with a baseline value",
                            assumption,
                            r["visit"],
                            r,
                            len(imp.subjects),
                        )
                    )
                imputed_counts[s.name] = frame_keyed(imp.n_imputed, ["arm", "visit"])
            else:  # multiple-imputation, tipping-point
                ice, how = _ice_frame(s, est, trial, grid, s.reference or ref_arm, o)
                reference = None
                if _uses_reference(s, est) or ice is not None:
                    reference = {a: (s.reference or ref_arm) for a in arms}
                    reference[ref_arm] = ref_arm
                formula = f"{o} ~ " + " + ".join([bcol, *strata, "arm * visit"])
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    imp = peerstats.impute(
                        formula,
                        grid,
                        subject="subject",
                        visit="visit",
                        arm="arm",
                        method=s.imputation,
                        n_imputations=s.n_imputations,
                        ice=ice,
                        reference=reference,
                        seed=_seed(spec.seed, i),
                    )
                counts = imp.n_imputed
                aside = int(counts["n_set_aside"].sum())
                if aside:
                    notes.append(
                        f"{s.name}: {aside} outcome value(s) observed after an intercurrent "
                        "event were set aside and imputed under its strategy"
                    )
                for w in caught:  # no identifiers (participant ids) reach the outputs
                    if "observed at or after" not in str(w.message):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                imputed_counts[s.name] = frame_keyed(counts, ["arm", "visit"])
                n_imp = imp.n_imputations
                assumption = f"{how} ({s.imputation}, {n_imp} imputations)"
                if s.method == "multiple-imputation":
                    an = imp.analyse(covariates=covs)
                    for _, r in an.iterrows():
                        rows.append(
                            _row(
                                s.name,
                                label,
                                "all randomised with a baseline value",
                                assumption,
                                r["visit"],
                                r,
                                len(imp.subjects),
                            )
                        )
                else:
                    visit = s.visit or spec.primary_visit
                    tp = peerstats.tipping_point(
                        imp, s.delta, visit=visit, covariates=covs, level=spec.model.level
                    )
                    tab = tp.table.copy()
                    tipping[s.name] = {
                        "visit": visit,
                        "arms": list(tp.arms),
                        "assumption": assumption,
                        "table": [plain(r) for r in tab.to_dict(orient="records")],
                        "tipping": [plain(r) for r in tp.tipping.to_dict(orient="records")],
                        **({"tipping_delta": plain(tp.tipping_delta)} if len(tp.arms) == 1 else {}),
                    }
                    run.tables[f"tipping_point_{s.name}"] = tab
                    if spec.wants_figure("tipping_point"):
                        _tipping_figure(run, s, tp, spec, olabel)
    table = pd.DataFrame(rows)
    res["sensitivity"] = {
        "outcome": o,
        "visit": spec.primary_visit,
        "analyses": frame_keyed(table.drop(columns=["label"]), ["analysis", "visit", "contrast"]),
        "imputed": imputed_counts,
        "notes": list(dict.fromkeys(notes)),
    }
    if tipping:
        res["tipping_point"] = tipping
    run.tables["sensitivity"] = table
    for n in notes:
        if n not in run.warnings:
            run.warnings.append(n)
    if spec.wants_figure("sensitivity"):
        _forest_figure(run, table, spec, olabel)
    run.html_tables["sensitivity"] = _table_html(table, spec)
    _ = visits_post


def _work(s: SensitivitySpec) -> str:
    """What a progress line announces: imputations and grid cells."""
    if s.method == "tipping-point":
        cells = int(np.prod([len(v) for v in s.delta.values()])) if s.delta else 0
        m = f"{s.n_imputations} imputations" if s.n_imputations else s.imputation
        return f" [{m}, grid of {cells} deltas]"
    if s.method in ("multiple-imputation", "multilevel-imputation"):
        if s.n_imputations is None:
            return f" [{s.imputation}: one refit per participant]"
        return f" [{s.n_imputations} imputations]"
    return ""


def _seed(seed: int, i: int) -> np.random.SeedSequence:
    """One independent stream per sensitivity analysis, derived from the spec's seed."""
    return np.random.SeedSequence(seed).spawn(i + 1)[i]


def _rule_text(trial: Any, compliance: Any) -> str:
    from peerstats.missing.populations import ComplianceRule

    rule = ComplianceRule(compliance)
    offered = None
    if rule.sessions is not None and trial.sessions is not None:
        offered = int(trial.sessions["session"].nunique())
    return rule.describe(offered)


def _default_label(s: SensitivitySpec, est: EstimandSpec | None) -> str:
    if s.method == "complete-case":
        return "Complete cases"
    if s.method == "per-protocol":
        return "Per protocol"
    if s.method == "cace":
        return "Complier average causal effect (2SLS)"
    if s.method == "multilevel-imputation":
        return "Multilevel multiple imputation (MAR, delivery-group effect)"
    strat = (
        "/".join(est.imputation_strategies) + " after intercurrent events"
        if s.strategy == "estimand" and est is not None
        else s.strategy
    )
    if s.method == "tipping-point":
        return f"Tipping point ({strat}, delta-adjusted)"
    return f"Multiple imputation ({strat})"


# ----------------------------------------------------------------------------- output
def _forest_figure(run: Any, table: pd.DataFrame, spec: Any, olabel: str) -> None:
    import matplotlib.pyplot as plt

    import peerstats
    from peerstats.pipeline._common import _svg

    t = table[table["visit"] == spec.primary_visit].copy()
    if t.empty:
        return
    t["what"] = t["label"]
    if t["contrast"].nunique() > 1:
        t["what"] = t["label"] + ": " + t["contrast"].map(lambda c: _contrast_label(c, spec))
    t["group"] = ""
    contrasts = t["contrast"].unique()
    # the arms' labels (or the blinded codes), as the rest of the report
    what = (
        _contrast_label(contrasts[0], spec)
        if len(contrasts) == 1
        else "intervention \u2212 control"
    )
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(t) + 1.6))
    peerstats.plot_forest(
        t,
        estimate="estimate",
        ci=("ci_lower", "ci_upper"),
        label="what",
        ax=ax,
        xlabel=f"Difference in {olabel} ({what}), {spec.model.level:.0%} CI",
    )
    run.figures["sensitivity_forest"] = _svg(fig)
    run.figure_captions["sensitivity_forest"] = (
        f"Primary analysis and every sensitivity analysis of {olabel} at "
        f"{spec.label('visits', spec.primary_visit)}: estimate and {spec.model.level:.0%} CI."
    )


def _tipping_figure(run: Any, s: SensitivitySpec, tp: Any, spec: Any, olabel: str) -> None:
    import matplotlib.pyplot as plt

    from peerstats.pipeline._common import _svg

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    tp.plot(ax=ax)
    arms = [spec.label("arms", a) for a in tp.arms]
    if len(arms) == 1:
        ax.set_xlabel(f"Delta added to imputed {olabel} values, {arms[0]}")
    else:
        ax.set_xlabel(f"Delta, {arms[0]}")
        ax.set_ylabel(f"Delta, {arms[1]}")
    if len(arms) == 1:
        ax.set_ylabel(f"Difference at {spec.label('visits', tp.visit)}")
    ax.set_title("")
    name = "tipping_point" if s.name == "tipping-point" else f"tipping_point_{s.name}"
    run.figures[name] = _svg(fig)
    run.figure_captions[name] = (
        f"Tipping point: the {olabel} difference at {spec.label('visits', tp.visit)} when the "
        f"imputed values of {' and '.join(arms)} are shifted by delta (the same imputations "
        "re-analysed for every delta)."
    )


def _contrast_label(c: str, spec: Any) -> str:
    if " - " in c:
        a, b = c.split(" - ", 1)
        return f"{spec.label('arms', a)} \u2212 {spec.label('arms', b)}"
    return c


def _fmt(x: Any, k: int = 2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    return f"{x:.{k}f}"


def _p(p: float) -> str:
    if p is None or p != p:
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _table_html(table: pd.DataFrame, spec: Any) -> str:
    e = html.escape
    t = table[table["visit"] == spec.primary_visit]
    head = "".join(
        f"<th>{e(c)}</th>"
        for c in (
            "Analysis",
            "Contrast",
            "Population",
            "Missing data",
            "n",
            "Estimate",
            f"{spec.model.level:.0%} CI",
            "p",
        )
    )
    body = []
    for r in t.itertuples(index=False):
        n = "" if r.n is None or (isinstance(r.n, float) and r.n != r.n) else str(int(r.n))
        body.append(
            "<tr>"
            f"<td>{e(r.label)}</td><td style='text-align:left'>{e(_contrast_label(r.contrast, spec))}</td>"
            f"<td style='text-align:left'>{e(r.population)}</td>"
            f"<td style='text-align:left'>{e(r.missing_data)}</td><td>{n}</td>"
            f"<td>{_fmt(r.estimate)}</td><td>{_fmt(r.ci_lower)} to {_fmt(r.ci_upper)}</td>"
            f"<td>{e(_p(r.p_value))}</td></tr>"
        )
    cap = f"Primary and sensitivity analyses at {e(spec.label('visits', spec.primary_visit))}"
    return (
        f"<div class='scroll'><table data-table='sensitivity'><caption>{cap}</caption><thead><tr>{head}"
        f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _assumption_words(run: Any) -> list[str]:
    spec, trial = run.spec, run.trial
    from peerstats.pipeline._common import outcome_label

    o = spec.primary_outcome
    olabel = outcome_label(trial, spec, o)
    model = run.results["models"][o]["model"]
    out = [
        f"The primary analysis ({model}) uses every observed {olabel} value and is valid if the "
        "missing outcomes are missing at random (MAR): whether a value is missing may depend "
        "on what was observed (arm, baseline score, stratification factors, earlier visits) "
        "but not, given those, on the unobserved value itself. Participants who dropped out "
        "are assumed to have had, on average, the outcomes of similar participants of the "
        "same arm who stayed."
    ]
    est = spec.estimand
    if est is not None:
        for ev in est.intercurrent_events:
            if ev.strategy == "treatment policy":
                txt = (
                    f"Intercurrent event \u201c{ev.event}\u201d: treatment policy \u2014 outcomes "
                    "after the event are analysed as observed, whatever happened."
                )
            elif ev.strategy == "hypothetical":
                txt = (
                    f"Intercurrent event \u201c{ev.event}\u201d: hypothetical \u2014 the effect "
                    "had the event not occurred; outcomes after it are not used."
                )
            else:
                txt = f"Intercurrent event \u201c{ev.event}\u201d: {ev.strategy} strategy."
            if ev.missing_data != "MAR":
                txt += (
                    f" In the imputation analyses, missing outcomes after it follow "
                    f"{_WORDS[ev.missing_data]} ({ev.missing_data}): " + _MEANING[ev.missing_data]
                )
            out.append(txt)
    if spec.sensitivity:
        out.append(
            "The sensitivity analyses below change one assumption at a time: who is analysed "
            "(complete cases, per protocol, compliers), how missing outcomes are imputed "
            "(reference-based, with the delivery-group effect) and how much worse than MAR the "
            "missing outcomes would have to be to change the conclusion (tipping point)."
        )
    return out


def render_section(run: Any) -> str:
    """The report section "Estimand and missing data" (empty without estimand/sensitivity)."""
    spec = run.spec
    res = run.results
    if "missing_data" not in res:
        return ""
    e = html.escape
    parts = ["<h2 id='estimand'>Estimand and missing data</h2>"]
    est = res.get("estimand")
    if est is not None:
        pairs = [
            ("Population", est.get("population")),
            ("Treatment", est.get("treatment")),
            ("Variable", est.get("variable")),
            ("Population-level summary", est.get("summary")),
        ]
        parts.append(
            "<dl class='kv'>"
            + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs if v)
            + "</dl>"
        )
        if est["intercurrent_events"]:
            parts.append(
                "<div class='scroll'><table data-table='intercurrent_events'><thead><tr>"
                "<th>Intercurrent event</th><th>Strategy (ICH E9(R1))</th>"
                "<th>Missing data after it (imputation analyses)</th></tr></thead><tbody>"
                + "".join(
                    f"<tr><td>{e(x['event'])}</td><td style='text-align:left'>{e(x['strategy'])}</td>"
                    f"<td style='text-align:left'>{e(_WORDS[x['missing_data']])} "
                    f"({e(x['missing_data'])})</td></tr>"
                    for x in est["intercurrent_events"]
                )
                + "</tbody></table></div>"
            )
    parts.append("<h3>The missing-data assumption</h3>")
    parts += [f"<p data-assumption>{e(t)}</p>" for t in _assumption_words(run)]
    mt = run.tables.get("missing_data")
    if mt is not None:
        parts.append("<h3>Missing outcomes per arm and visit</h3>")
        visits = list(dict.fromkeys(mt["visit"]))
        head = "<th>Arm</th>" + "".join(f"<th>{e(spec.label('visits', v))}</th>" for v in visits)
        body = []
        for arm, sub in mt.groupby("arm", sort=False):
            cells = "".join(
                f"<td>{int(r.n_missing)} / {int(r.n_randomised)} ({r.fraction_missing:.0%})</td>"
                for r in sub.itertuples(index=False)
            )
            body.append(f"<tr><td>{e(spec.label('arms', arm))}</td>{cells}</tr>")
        parts.append(
            "<div class='scroll'><table data-table='missing_data'><caption>Missing / randomised "
            f"(fraction missing)</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
            "</tbody></table></div>"
        )
    if "sensitivity" in run.html_tables:
        parts.append("<h3>Primary and sensitivity analyses</h3>")
        parts.append(run.html_tables["sensitivity"])
    from peerstats.pipeline._common import _figure

    parts.append(_figure(run, "sensitivity_forest"))
    for name in run.figures:
        if name.startswith("tipping_point"):
            parts.append(_figure(run, name))
    for key, tp in (res.get("tipping_point") or {}).items():
        if "tipping_delta" in tp:
            d = tp["tipping_delta"]
            arm = spec.label("arms", tp["arms"][0])
            if d is None or d != d:
                txt = (
                    f"Tipping point ({e(key)}): the conclusion at "
                    f"{e(spec.label('visits', tp['visit']))} does not change anywhere on the "
                    f"delta grid of {e(arm)}."
                )
            else:
                txt = (
                    f"Tipping point ({e(key)}): the conclusion at "
                    f"{e(spec.label('visits', tp['visit']))} changes when the imputed values of "
                    f"{e(arm)} are shifted by {d:.2f} points."
                )
            parts.append(f"<p data-tipping>{txt}</p>")
    notes = res.get("sensitivity", {}).get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(parts)
