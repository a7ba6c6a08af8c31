"""Running the estimand section of a pipeline run (:mod:`.sensitivity` parses and checks the
spec): the missing-data summary, the primary analysis' rows, one step per sensitivity method
(:data:`_METHODS`), then the comparison table. Every number comes from a public peerstats
function (complete_case, per_protocol, analyze, cace, impute, impute_multilevel,
tipping_point)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import SpecError
from peerstats.pipeline._sensitivity_out import (
    _WORDS,
    _forest_figure,
    _table_html,
    _tipping_figure,
)

__all__ = ["run_sensitivity", "missing_data_step", "missing_table"]

SensitivitySpec = EstimandSpec = Any  # the spec's records (pipeline.sensitivity), as read here


def _uses_reference(s: SensitivitySpec, est: EstimandSpec | None) -> bool:
    strategies = (
        est.imputation_strategies
        if (s.strategy == "estimand" and est is not None)
        else (s.strategy,)
    )
    return any(x in ("JR", "CR", "CIR") for x in strategies)


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
    # visits nobody was observed at leave the analysis, as in the primary model (issue 24.5)
    seen = set(a.loc[a[outcome].notna(), "visit"].astype(str))
    post_visits = [v for v in visits[1:] if v in seen]
    rows = []
    for v in post_visits:
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
    grid["visit"] = pd.Categorical(grid["visit"], categories=post_visits)
    grid["arm"] = pd.Categorical(grid["arm"], categories=arms)
    grid = grid.sort_values(["subject", "visit"]).reset_index(drop=True)
    strata = [s for s in strata if grid[s].nunique() > 1]
    return grid, strata, n_nobase


def missing_table(trial: Any, outcome: str) -> pd.DataFrame:
    """Randomised participants, observed and missing outcome per arm and visit."""
    ts = trial.spec
    part = trial.randomised
    a = trial.assessments
    p_arm = part["arm"].astype(str).to_numpy()
    p_subj = part["subject"].astype(str).to_numpy()
    seen = a[a[outcome].notna()]
    s_subj = seen["subject"].astype(str).to_numpy()
    s_visit = seen["visit"].astype(str).to_numpy()
    rows = []
    for arm in [str(x) for x in ts.arms.levels]:
        subj = set(p_subj[p_arm == arm])
        n = len(subj)
        in_arm = np.fromiter((x in subj for x in s_subj), dtype=bool, count=len(s_subj))
        for v in [str(x) for x in ts.visits]:
            k = int((in_arm & (s_visit == v)).sum())  # observed rows at v of the arm's participants
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
    miss = wide.isna().to_numpy()
    if s.strategy == "estimand":
        return _ice_of_events(est, trial, wide, miss)
    if s.strategy == "MAR":
        return None, "every missing outcome imputed under MAR"
    subjects = wide.index.to_numpy()
    arm_of = grid.groupby("subject")["arm"].first().astype(str)
    first_missing = np.where(miss.any(axis=1), miss.argmax(axis=1), len(visits))
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


def _event_starts(ev: Any, flag: pd.Series, miss: np.ndarray, v0: int) -> dict[int, int]:
    """Row -> first visit (index) imputed under the event's assumption, for the flagged
    participants: treatment policy uses outcomes observed after the event and imputes from
    the first missing visit at or after it; hypothetical sets aside every outcome from it."""
    out = {}
    for k in np.flatnonzero(flag.to_numpy(bool)):
        if ev.post_ice_handling == "keep":  # as peerstats.impute(post_ice="keep")
            later = np.flatnonzero(miss[k, v0:])
            if not len(later):
                continue
            out[int(k)] = v0 + int(later[0])
        else:  # post_ice impute / error (issue 20.6)
            if ev.post_ice_handling == "error" and not miss[k, v0:].all():
                raise SpecError(
                    f"estimand: intercurrent event {ev.event!r} has post_ice: error, but "
                    "outcomes were observed after it; use post_ice: keep (analyse them) or "
                    "impute (set them aside)"
                )
            out[int(k)] = v0
    return out


def _ice_of_events(
    est: EstimandSpec, trial: Any, wide: pd.DataFrame, miss: np.ndarray
) -> tuple[pd.DataFrame | None, str]:
    """The ``ice`` frame of the estimand's intercurrent events (the earliest event of a
    participant wins) and what it does in words."""
    visits = list(wide.columns)
    subjects = wide.index.to_numpy()
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
        for k, j in _event_starts(ev, flag, miss, v0).items():
            sid = subjects[k]
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


_PER_ROW = object()  # _add_rows: the n of each row of the table


def _row(name, label, population, assumption, visit, r, n=None, *, model="", n_rand=None) -> dict:
    return {
        "analysis": name,
        "label": label,
        "population": population,
        "model": model,
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
        "n_randomised": None if n_rand is None else int(n_rand),
    }


def _add_rows(
    work: Any,
    table: pd.DataFrame,
    names: tuple[str, str],
    population: str,
    assumption: str,
    *,
    n: Any = _PER_ROW,
    model: str,
) -> None:
    """One comparison row per visit and contrast of ``table`` (``names``: the analysis and its
    label); ``n`` analysed, by default each row's own ``n``."""
    for _, r in table.iterrows():
        work.rows.append(
            _row(
                *names,
                population,
                assumption,
                r["visit"],
                r,
                r["n"] if n is _PER_ROW else n,
                model=model,
                n_rand=work.n_randomised,
            )
        )


def fas_population(n_analysed: int | None, n_randomised: int) -> str:
    """The primary (likelihood-based) analysis population named by what it is: ITT only when
    every randomised participant is analysed, else the full analysis set of ICH E9 (those
    with a baseline, a covariate, and at least one post-baseline value), analysed under MAR."""
    if n_analysed is not None and n_analysed >= n_randomised:
        return "all randomised (ITT), analysed under MAR"
    return (
        "full analysis set: randomised participants with a baseline and at least one "
        "post-baseline value, analysed under MAR"
    )


def imputed_population(n_analysed: int, n_randomised: int) -> str:
    """The population of an imputation analysis: ITT when every randomised participant is
    analysed (missing outcomes imputed), else those with the baseline the imputation needs."""
    if n_analysed >= n_randomised:
        return "all randomised (ITT: missing outcomes imputed)"
    return "randomised participants with a baseline value (missing outcomes imputed)"


_MODEL_NAMES = {
    "partially nested lmm": "partially nested linear mixed model",
    "mmrm": "mixed model for repeated measures (MMRM)",
    "lmm": "linear mixed model",
}


def primary_model_words(model: dict) -> str:
    """The primary analysis model in words from ``results.json`` ``models[outcome]``:
    "partially nested linear mixed model (random delivery-group intercept ...)"."""
    name = str(model.get("model", ""))
    words = _MODEL_NAMES.get(name, name)
    cov = str(model.get("covariance") or "")
    head, _, rest = cov.partition(" ")
    if head in _COVARIANCE_NAMES:
        cov = f"{_COVARIANCE_NAMES[head]} covariance {rest}".strip()
    return f"{words} ({cov})" if cov and words else words


_COVARIANCE_NAMES = {"us": "unstructured", "cs": "compound symmetry", "ar1": "AR(1)"}


def _sub_model(ta: Any, work: Any) -> str:
    """The model of a complete-case or per-protocol analysis (peerstats.analyze) in words."""
    name = str(getattr(ta, "model", "") or "")
    words = _MODEL_NAMES.get(name, name)
    if words and work.model.startswith(words):
        return f"{words}, as the primary analysis"
    return words


def _clustered(trial: Any) -> bool:
    """Whether some arm is delivered in groups (so a model without the group ignores it)."""
    return bool(list(getattr(trial.spec.arms, "group_delivered", None) or []))


_POOLING = {
    "bayes": "Rubin's rules",
    "approx-bayes": "Rubin's rules",
    "condmean-jackknife": "the jackknife",
    "condmean-bootstrap": "the bootstrap",
    "bootstrap-ml": "the bootstrap (von Hippel & Bartlett)",
}


def _imputed_model(trial: Any, s: SensitivitySpec, work: _Work, method: str) -> str:
    """The analysis model of an imputation row in words (issue 20.3): the primary model
    refitted on every imputed data set (default), or the per-visit ANCOVA on request."""
    rule = _POOLING.get(method, "Rubin's rules")
    if s.analysis_model == "primary":
        return f"{work.model}, as the primary analysis, on each imputed data set, pooled by {rule}"
    text = f"per-visit ANCOVA on each imputed data set, pooled by {rule}"
    if _clustered(trial):
        text += " (no delivery-group effect in the analysis model)"
    return text


def _analyse(run: Any, s: SensitivitySpec, imp: Any, work: _Work) -> pd.DataFrame:
    """Per-visit contrasts of an imputation analysis, pooled: the primary model (default) or
    the per-visit ANCOVA (``analysis_model: ancova``)."""
    if s.analysis_model == "ancova":
        return imp.analyse(covariates=work.covariates, level=run.spec.model.level)
    from peerstats.pipeline._sensitivity_model import pool_primary

    return pool_primary(imp, _analyser(run, work))


def _analyser(run: Any, work: _Work) -> Any:
    """The primary model's refit (built once per run, warm starts shared)."""
    from peerstats.pipeline._sensitivity_model import primary_analyser

    if work.analyser is None:
        work.analyser = primary_analyser(run, work.outcome, work.reference, work.model)
    return work.analyser


# ----------------------------------------------------------------------------- running
@dataclass
class _Work:
    """What the sensitivity analyses of one run share and collect."""

    outcome: str
    reference: str
    arms: list[str]
    grid: pd.DataFrame
    strata: list[str]
    covariates: list[str]
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tipping: dict[str, Any] = field(default_factory=dict)
    imputed: dict[str, Any] = field(default_factory=dict)
    n_randomised: int | None = None
    model: str = ""
    analyser: Any = None  # the primary model refitted on imputed data (_sensitivity_model)


def run_sensitivity(run: Any, progress: Any) -> None:
    """Compute the estimand section of a run (results, tables, figures, report HTML): the
    missing-data summary, the primary analysis' rows, then each sensitivity analysis of the
    spec (:data:`_METHODS`), then the comparison table and forest."""
    from peerstats.pipeline._common import _collect

    spec = run.spec
    est, sens = spec.estimand, spec.sensitivity
    if est is None and not sens:
        return
    from peerstats.missing.populations import remembered_compliance

    missing_data_step(run)
    work = _start(run)
    with remembered_compliance():  # per protocol and CACE: the same receipt, computed once
        for i, s in enumerate(sens):
            label = s.label or _default_label(s, est)
            with (
                progress.step(f"sensitivity {i + 1}/{len(sens)}: {label}{_work(s)}"),
                _collect(run.warnings, f"sensitivity {s.name}: "),
            ):
                _METHODS[s.method](run, s, i, label, work)
    _finish(run, work)


def missing_data_step(run: Any) -> None:
    """``results.json`` ``missing_data`` (per arm and visit) and ``estimand`` (its attributes)."""
    from peerstats.pipeline._common import outcome_label
    from peerstats.pipeline._jsonio import frame_keyed

    spec, trial, res = run.spec, run.trial, run.results
    o, est = spec.primary_outcome, spec.estimand
    mt = missing_table(trial, o)
    res["missing_data"] = {
        "outcome": o,
        "assumption": "MAR",
        "by_arm_visit": frame_keyed(mt, ["arm", "visit"]),
    }
    run.tables["missing_data"] = mt
    if est is None:
        return
    olabel = outcome_label(trial, spec, o)
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


def _primary_contrasts(fit: Any, trial: Any, outcome: str, ref_arm: str) -> pd.DataFrame:
    """Per-visit contrasts of the primary model; with one visit left (the others had no
    observation, issue 24.5) the model has no visit factor, and the one visit is named."""
    visits = [str(v) for v in trial.spec.visits][1:]
    a = trial.assessments
    seen = set(a.loc[a[outcome].notna(), "visit"].astype(str))
    present = [v for v in visits if v in seen]
    if len(present) == 1:
        return fit.contrasts("arm", reference=ref_arm).assign(visit=present[0])
    return fit.contrasts("arm", by="visit", reference=ref_arm)


def _start(run: Any) -> _Work:
    """The primary analysis' rows of the comparison table and the imputation grid."""
    from peerstats.pipeline._common import outcome_label

    spec, trial = run.spec, run.trial
    ts = trial.spec
    o = spec.primary_outcome
    arms = [str(a) for a in ts.arms.levels]
    ref_arm = str(ts.arms.reference or arms[0])
    prim = run.fits[o]
    pct = prim.contrasts
    n_prim = int(getattr(prim.fit, "n_subjects", 0)) or None
    if pct is None:
        pct = _primary_contrasts(prim.fit, trial, o, ref_arm)
    grid, strata, n_nobase = _post_frame(trial, o)
    work = _Work(o, ref_arm, arms, grid, strata, [f"{o}_baseline", *strata])
    work.n_randomised = len(trial.randomised)
    work.model = primary_model_words(run.results.get("models", {}).get(o, {}))
    _add_rows(
        work,
        pct,
        ("primary", "Primary analysis"),
        fas_population(n_prim, work.n_randomised),
        "MAR (likelihood-based, all observed outcomes)",
        n=n_prim,
        model=work.model,
    )
    if n_nobase:
        work.notes.append(
            f"{n_nobase} participant(s) without a baseline {outcome_label(trial, spec, o)} are "
            "left out of the imputation analyses (the baseline is a covariate)"
        )
    return work


def _subpopulation(run: Any, s: SensitivitySpec, i: int, label: str, work: _Work) -> None:
    """Complete cases or the per-protocol population, analysed as the primary analysis."""
    import peerstats

    spec, trial, o = run.spec, run.trial, work.outcome
    if s.method == "complete-case":
        seen = set(trial.assessments.loc[trial.assessments[o].notna(), "visit"].astype(str))
        # visits nobody was observed at are not required (they left every analysis, 24.5)
        sub = peerstats.complete_case(
            trial, o, visits=[str(v) for v in trial.spec.visits if str(v) in seen]
        )
        pop = "complete cases (outcome observed at every visit)"
        assumption = "missing completely at random given the covariates (only complete cases)"
    else:
        sub = peerstats.per_protocol(trial, s.compliance, reference=s.reference)
        rule = _rule_text(trial, s.compliance)
        pop = f"per protocol: {spec.label('arms', work.reference)}, and those who {rule}"
        assumption = "MAR within the per-protocol population"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = peerstats.analyze(sub, outcome=o, df=spec.model.df, level=spec.model.level)
    n = int(ta.n_analysed.sum())
    _add_rows(work, ta.contrasts, (s.name, label), pop, assumption, n=n, model=_sub_model(ta, work))


def _cace(run: Any, s: SensitivitySpec, i: int, label: str, work: _Work) -> None:
    """The complier average causal effect (randomisation as the instrument)."""
    import peerstats

    clustered = _clustered(run.trial)
    cr = peerstats.cace(
        run.trial,
        outcome=work.outcome,
        compliance=s.compliance,
        reference=s.reference,
        se="cluster" if clustered else "unadjusted",
    )
    pop = f"compliers ({cr.compliance_rule}), randomisation as the instrument"
    model = "per-visit two-stage least squares (2SLS)"
    if clustered:
        model += ", cluster-robust standard errors by delivery group (CR1)"
    _add_rows(work, cr.effects, (s.name, label), pop, "available cases at each visit", model=model)
    work.notes.extend(n for n in cr.notes if "weak instrument" in n)


def _multilevel(run: Any, s: SensitivitySpec, i: int, label: str, work: _Work) -> None:
    """Multiple imputation with the delivery-group random effect (peerstats.impute_multilevel)."""
    import peerstats
    from peerstats.pipeline._jsonio import frame_keyed

    spec, trial, o = run.spec, run.trial, work.outcome
    formula = f"{o} ~ " + " + ".join(["arm", *work.covariates])
    groups = trial.randomised.assign(subject=lambda d: d["subject"].astype(str))
    data = work.grid.merge(groups[["subject", "group"]], on="subject", how="left")
    imp = peerstats.impute_multilevel(
        formula,
        data,
        subject="subject",
        visit="visit",
        arm="arm",
        group="group",
        delivered=[str(x) for x in trial.spec.arms.group_delivered],
        n_imputations=int(s.n_imputations),
        seed=_seed(spec.seed, i),
    )
    assumption = (
        "MAR, imputation model with the delivery-group random effect "
        f"({imp.n_imputations} imputations)"
    )
    _imputed_rows(run, s, imp, label, assumption, work)
    work.imputed[s.name] = frame_keyed(imp.n_imputed, ["arm", "visit"])


def _impute(run: Any, s: SensitivitySpec, i: int, work: _Work) -> tuple[Any, str]:
    """The imputations of a multiple-imputation or tipping-point analysis (peerstats.impute,
    reference-based strategies from the estimand) and the assumption in words."""
    import peerstats
    from peerstats.pipeline._jsonio import frame_keyed

    spec, trial, o = run.spec, run.trial, work.outcome
    est = spec.estimand
    ice, how = _ice_frame(s, est, trial, work.grid, s.reference or work.reference, o)
    reference = None
    if _uses_reference(s, est) or ice is not None:
        reference = {a: (s.reference or work.reference) for a in work.arms}
        reference[work.reference] = work.reference
    many = len(work.grid["visit"].cat.categories) > 1  # one visit left: no visit terms (24.5)
    formula = f"{o} ~ " + " + ".join([*work.covariates, "arm * visit" if many else "arm"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imp = peerstats.impute(
            formula,
            work.grid,
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
        work.notes.append(
            f"{s.name}: {aside} outcome value(s) observed after an intercurrent "
            "event were set aside and imputed under its strategy"
        )
    for w in caught:  # no identifiers (participant ids) reach the outputs
        if "observed at or after" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    work.imputed[s.name] = frame_keyed(counts, ["arm", "visit"])
    return imp, f"{how} ({s.imputation}, {imp.n_imputations} imputations)"


def _multiple_imputation(run: Any, s: SensitivitySpec, i: int, label: str, work: _Work) -> None:
    """Multiple imputation (MAR or reference-based), analysed and pooled by Rubin's rules."""
    imp, assumption = _impute(run, s, i, work)
    _imputed_rows(run, s, imp, label, assumption, work)


def _imputed_rows(
    run: Any, s: SensitivitySpec, imp: Any, label: str, assumption: str, work: _Work
) -> None:
    """Analyse and pool the imputations, then add one comparison row per visit and contrast."""
    an = _analyse(run, s, imp, work)
    n = len(imp.subjects)
    pop = imputed_population(n, work.n_randomised)
    model = _imputed_model(run.trial, s, work, imp.method)
    _add_rows(work, an, (s.name, label), pop, assumption, n=n, model=model)


def _tipping_point(run: Any, s: SensitivitySpec, i: int, label: str, work: _Work) -> None:
    """Delta-adjusted analyses over the spec's grid (the same imputations for every delta)."""
    import peerstats
    from peerstats.pipeline._common import outcome_label
    from peerstats.pipeline._jsonio import plain

    spec = run.spec
    imp, assumption = _impute(run, s, i, work)
    visit = s.visit or spec.primary_visit
    if s.analysis_model == "ancova":
        tp = peerstats.tipping_point(
            imp, s.delta, visit=visit, covariates=work.covariates, level=spec.model.level
        )
    else:
        from peerstats.pipeline._sensitivity_model import tipping

        tp = tipping(imp, _analyser(run, work), s.delta, visit)
    tab = tp.table.copy()
    work.tipping[s.name] = {
        "visit": visit,
        "arms": list(tp.arms),
        "assumption": assumption,
        "model": _imputed_model(run.trial, s, work, imp.method),
        "table": [plain(r) for r in tab.to_dict(orient="records")],
        "tipping": [plain(r) for r in tp.tipping.to_dict(orient="records")],
        **({"tipping_delta": plain(tp.tipping_delta)} if len(tp.arms) == 1 else {}),
    }
    run.tables[f"tipping_point_{s.name}"] = tab
    if spec.wants_figure("tipping_point"):
        _tipping_figure(run, s, tp, spec, outcome_label(run.trial, spec, work.outcome))


_METHODS = {
    "complete-case": _subpopulation,
    "per-protocol": _subpopulation,
    "cace": _cace,
    "multilevel-imputation": _multilevel,
    "multiple-imputation": _multiple_imputation,
    "tipping-point": _tipping_point,
}
"""Sensitivity method -> the step that runs it (each appends rows to the comparison table)."""


def _finish(run: Any, work: _Work) -> None:
    """``results.json`` ``sensitivity`` and ``tipping_point``, the table, notes and forest."""
    from peerstats.pipeline._common import outcome_label
    from peerstats.pipeline._jsonio import frame_keyed

    spec, res = run.spec, run.results
    table = pd.DataFrame(work.rows)
    res["sensitivity"] = {
        "outcome": work.outcome,
        "visit": spec.primary_visit,
        "analyses": frame_keyed(table.drop(columns=["label"]), ["analysis", "visit", "contrast"]),
        "imputed": work.imputed,
        "notes": list(dict.fromkeys(work.notes)),
    }
    if work.tipping:
        res["tipping_point"] = work.tipping
    run.tables["sensitivity"] = table
    for n in work.notes:
        if n not in run.warnings:
            run.warnings.append(n)
    if spec.wants_figure("sensitivity"):
        _forest_figure(run, table, spec, outcome_label(run.trial, spec, work.outcome))
    run.html_tables["sensitivity"] = _table_html(table, spec)


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
