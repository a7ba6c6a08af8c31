"""The descriptive tables of a pipeline run (the ``describe`` step), one small function each:
every one calls a public peerstats function and stores its tidy data (``results.json`` and
``tables/<name>.csv``) and its display table (labels applied). :data:`STEPS` is their order."""

from __future__ import annotations

from typing import Any

import pandas as pd

from peerstats.pipeline._common import AnalysisRun, _responder_name
from peerstats.pipeline._display import display_labels
from peerstats.pipeline._jsonio import frame_keyed, plain
from peerstats.pipeline._manifest import is_single_arm

__all__ = ["STEPS", "consort_flow"]


def _store(run: AnalysisRun, name: str, table: Any, *, html: bool = True) -> None:
    run.tables[name] = table.data
    run.display_tables[name] = table
    if html:
        run.html_tables[name] = table.render("html")


def consort_flow(run: AnalysisRun) -> None:
    """CONSORT, its analysed boxes reconciled with the primary outcome's model (through its
    adapter: the subjects the model used)."""
    from peerstats.describe.labels import relabel
    from peerstats.figures.consort import consort
    from peerstats.pipeline.outcomes import adapter_of

    spec, trial = run.spec, run.trial
    if not (spec.wants_table("consort") or spec.wants_figure("consort")):
        return
    o = spec.primary_outcome
    flow = consort(trial, adapter_of(spec, o).analysed(run.fits[o]), outcome=o)
    run.consort_flow = flow
    run.results["consort"] = frame_keyed(flow.counts, ["stage", "box", "arm", "visit", "reason"])
    run.tables["consort"] = flow.counts
    run.display_tables["consort"] = relabel(flow.to_table(), display_labels(trial, spec))


def consort_by_outcome(run: AnalysisRun) -> None:
    """Outcomes without visits (binary, count): per arm randomised, analysed and why not,
    reconciled with each outcome's model by its adapter (``results.json``
    ``consort_outcomes``)."""
    recs = {o: f.consort for o, f in run.fits.items() if f.consort is not None}
    if not recs:
        return
    run.results["consort_outcomes"] = recs
    rows = []
    for o, arms in recs.items():
        for arm, c in arms.items():
            base = {"outcome": o, "arm": arm, "randomised": c["randomised"]}
            rows.append({**base, "box": "analysed", "reason": "", "n": c["analysed"]})
            for reason, n in c["not_analysed"].items():
                rows.append({**base, "box": "not analysed", "reason": reason, "n": n})
    run.tables["consort_outcomes"] = pd.DataFrame(rows)


def scale_digits(trial: Any, outcome: str) -> int | None:
    """Decimals an outcome's values are shown with, from its scale (issue 20.9): 2 for a
    narrow range (a 1-4 or 1-7 mean score, where one decimal hides the differences), 1 for
    wider totals; None when the range is not known."""
    import peerstats

    try:
        o = trial.spec.outcome(outcome)
    except (KeyError, AttributeError):
        return None
    lo, hi = getattr(o, "min", None), getattr(o, "max", None)
    name = getattr(o, "instrument", None)
    if name:
        try:
            inst = peerstats.get_instrument(name)
            lo, hi = inst.total_min, inst.total_max
        except Exception:  # an instrument defined in the spec only: its own range
            pass
    if lo is None or hi is None:
        return None
    return 2 if float(hi) - float(lo) <= 10 else 1


def outcome_digits(trial: Any, spec: Any) -> dict[str, int]:
    """Decimals of each outcome in the outcome tables (issue 20.9), as Table 1: from the
    instrument's scale (:func:`scale_digits`), 2 where the scale is not known; the spec's
    ``outcome_table: {digits: ...}`` (one number, or per outcome with ``default``) wins."""
    given = spec.outcome_table_digits
    if isinstance(given, int):
        return {"default": given}
    out: dict[str, int] = {}
    for o in trial.spec.outcome_names:
        k = scale_digits(trial, str(o))
        out[str(o)] = int(given.get(str(o), given.get("default", 2 if k is None else k)))
    if "default" in given:
        out["default"] = int(given["default"])
    return out


def _table_one_options(run: AnalysisRun) -> dict[str, Any]:
    """The spec's ``table_one:`` options, with per-outcome decimals from the instruments'
    scales where the spec names none (the spec's digits win)."""
    opts = run.spec.table_one_options()
    given = opts.get("digits", {})
    per_var = dict(given) if isinstance(given, dict) else {"default": int(given)}
    for o in run.trial.spec.outcome_names:
        k = scale_digits(run.trial, str(o))
        if k is not None:
            per_var.setdefault(f"{o} (baseline)", k)
    opts["digits"] = per_var
    return opts


def table_one(run: AnalysisRun) -> None:
    """Baseline characteristics by arm (SMDs between arms)."""
    import peerstats

    spec, trial = run.spec, run.trial
    if not spec.wants_table("table_one"):
        return
    lab = display_labels(trial, spec)
    single = is_single_arm(trial.spec)
    t1 = peerstats.table_one(
        trial,
        by="arm",
        overall=not single,
        smd=not single,
        labels={
            **dict(lab.covariates),
            **{f"{o} (baseline)": f"{lab.outcome(o)} (baseline)" for o in lab.outcomes},
        },
        level_labels=lab.levels,
        arm_labels=dict(lab.arms),
        **_table_one_options(run),  # digits from the instrument's scale, then the spec's keys
    )
    run.results["table_one"] = frame_keyed(t1.data, ["variable", "level", "arm", "statistic"])
    _store(run, "table_one", t1)


def responders(run: AnalysisRun) -> None:
    """Reliable change / recovery per responder analysis of the spec."""
    import peerstats
    from peerstats.describe.labels import relabel

    spec, trial = run.spec, run.trial
    if not (spec.responders and spec.wants_table("responders")):
        return
    lab = display_labels(trial, spec)
    run.results["responders"] = {}
    for r in spec.responders:
        rt = peerstats.responder_analysis(
            trial,
            r.outcome,
            visit=r.visit,
            reliability=r.reliability,
            cutoff=r.cutoff,
            alpha=1 - spec.model.level,
        )
        name = _responder_name(r)
        entry = {"rates": frame_keyed(rt.data, ["outcome", "visit", "arm", "category"])}
        comp = getattr(rt, "comparison", None)
        if comp is not None and len(comp):
            entry["comparison"] = frame_keyed(comp, ["outcome", "visit", "arm", "category"])
            run.tables[f"responders_comparison_{name}"] = comp
        params = getattr(rt, "parameters", None)
        if params is not None:
            entry["parameters"] = plain(params)
        run.results["responders"][f"{r.outcome}|{r.visit or ''}"] = entry
        run.tables[f"responders_{name}"] = rt.data
        _store(run, f"responders_{name}", relabel(rt, lab))
        run.tables[f"responders_{name}"] = rt.data


def feasibility(run: AnalysisRun) -> None:
    """Recruitment, retention and adherence rates with CIs (single-arm studies, or asked)."""
    import peerstats
    from peerstats.describe.labels import relabel

    spec, trial = run.spec, run.trial
    single = is_single_arm(trial.spec)
    if not (spec.wants_table("feasibility") and (single or spec.tables is not None)):
        return
    ft = peerstats.feasibility(
        trial,
        outcome=spec.primary_outcome,
        min_sessions=spec.min_sessions,
        alpha=1 - spec.model.level,
    )
    run.results["feasibility"] = frame_keyed(ft.data, ["measure", "arm", "visit"])
    att = getattr(ft, "attendance", None)
    if att is not None:
        run.results["attendance"] = plain(att)
    _store(run, "feasibility", relabel(ft, display_labels(trial, spec)))
    run.tables["feasibility"] = ft.data


def harms(run: AnalysisRun) -> None:
    """Adverse events by arm (when the trial spec names an adverse-events file)."""
    from peerstats.pipeline._display import read_adverse_events

    spec, trial = run.spec, run.trial
    if getattr(trial.spec, "adverse_events", None) is None or not spec.wants_table("harms"):
        return
    ht = read_adverse_events(trial, display_labels(trial, spec))
    run.results["harms"] = frame_keyed(ht.data, ["category", "arm"])
    _store(run, "harms", ht)


def ls_means(run: AnalysisRun) -> None:
    """Model-estimated means per arm and visit of the continuous outcomes' models."""
    from peerstats.pipeline._display import ls_means_table

    spec, trial = run.spec, run.trial
    if is_single_arm(trial.spec) or not spec.wants_table("ls_means"):
        return
    fits = {o: f for o, f in run.fits.items() if spec.outcome_type(o) == "continuous"}
    lt = ls_means_table(fits, display_labels(trial, spec), spec.model.level)
    run.results["ls_means"] = frame_keyed(lt.data, ["outcome", "visit", "arm"])
    _store(run, "ls_means", lt)


def within_group_change(run: AnalysisRun) -> None:
    """Paired change from baseline per arm (single-arm studies, or asked)."""
    import peerstats
    from peerstats.describe.labels import relabel

    spec, trial = run.spec, run.trial
    single = is_single_arm(trial.spec)
    if not (spec.wants_table("within_group_change") and (single or spec.tables is not None)):
        return
    lab = display_labels(trial, spec)
    frames, htmls = [], []
    for o in spec.outcomes:
        if spec.outcome_type(o) != "continuous":
            continue
        wt = peerstats.within_group_change(trial, o, alpha=1 - spec.model.level)
        frames.append(wt.data)
        wt = relabel(wt, lab)
        run.display_tables[f"within_group_change_{o}"] = wt
        htmls.append(wt.render("html"))
    wg = pd.concat(frames, ignore_index=True)
    run.results["within_group_change"] = frame_keyed(wg, ["outcome", "arm", "visit"])
    run.tables["within_group_change"] = wg
    run.html_tables["within_group_change"] = "\n".join(htmls)


STEPS = (
    consort_flow,
    consort_by_outcome,
    table_one,
    responders,
    feasibility,
    harms,
    ls_means,
    within_group_change,
)
