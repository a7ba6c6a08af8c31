"""The figures of a pipeline run (SVG text in ``run.figures``), drawn through the public
plotting functions with the run's labels and confidence level."""

from __future__ import annotations

from typing import Any

import pandas as pd

from peerstats.pipeline._common import AnalysisRun, _svg, outcome_label
from peerstats.pipeline._display import directions, display_labels, level_text

__all__ = ["draw_figures"]


def draw_figures(run: AnalysisRun, flow: Any = None, effects: Any = None) -> None:
    """Draw every figure the spec asks for into ``run.figures`` (SVG) with captions.

    ``effects`` is not read (kept for older callers): the forest plots are drawn from the
    run's effect records."""
    if run.spec.wants_figure("consort") and flow is not None:
        _consort(run, flow)
    if run.spec.wants_figure("trajectories"):
        _trajectories(run)
    if run.spec.wants_figure("forest"):
        _forest(run)
        _ratio_forest(run)
    if run.spec.wants_figure("change"):
        _change(run)
    if run.spec.wants_figure("diagnostics") and run.spec.primary_outcome in run.fits:
        _diagnostics(run)
    if run.spec.wants_figure("attendance") and getattr(run.trial, "sessions", None) is not None:
        _attendance(run)


def _labels(run: AnalysisRun) -> tuple[dict[str, str], dict[str, str], str]:
    spec, trial = run.spec, run.trial
    arm_labels = {str(a): spec.label("arms", str(a)) for a in trial.spec.arms.levels}
    visit_labels = {str(v): spec.label("visits", str(v)) for v in trial.spec.visits}
    return arm_labels, visit_labels, f"{level_text(spec.model.level)} CI"


def _consort(run: AnalysisRun, flow: Any) -> None:
    arm_labels, visit_labels, _ = _labels(run)
    flow = flow.relabelled(display_labels(run.trial, run.spec).reason)  # reasons in words (21)
    run.figures["consort"] = _svg(flow.plot(arm_labels=arm_labels, visit_labels=visit_labels))
    run.figure_captions["consort"] = "Figure 1. Participant flow (CONSORT)."


def _trajectories(run: AnalysisRun) -> None:
    import matplotlib.pyplot as plt

    import peerstats

    spec, trial = run.spec, run.trial
    arm_labels, visit_labels, ci = _labels(run)
    for o in spec.outcomes:
        if spec.outcome_type(o) == "time_to_event":  # issue 17: survival curves instead
            from peerstats.pipeline.outcomes.time_to_event import draw_curves

            draw_curves(run, o)
            continue
        if spec.outcome_type(o) != "continuous":
            continue  # observed means at visits: scales only
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        peerstats.plot_trajectories(
            trial,
            o,
            ax=ax,
            arm_labels=arm_labels,
            visit_labels=visit_labels,
            ylabel=f"{outcome_label(trial, spec, o)}, mean ({ci})",
            level=spec.model.level,
        )
        run.figures[f"trajectory_{o}"] = _svg(fig)
        run.figure_captions[f"trajectory_{o}"] = (
            f"Observed mean {outcome_label(trial, spec, o)} per arm and visit, with {ci}."
        )


def _forest_frame(run: AnalysisRun, single: bool) -> pd.DataFrame:
    """The standardised (Cohen's d) effects of the records, one row each, with which side
    favours which arm."""
    spec = run.spec
    recs = [r for r in run.records if r.scale == "mean_difference"]
    hib = directions(run.trial)
    rows = []
    for r in recs:
        d = r.extra.get("d", r.extra.get("cohens_d"))
        row = {
            "outcome": outcome_label(run.trial, spec, r.outcome),
            "visit": spec.label("visits", str(r.visit)),
            "d": d,
            "d_ci_lower": r.extra.get("d_ci_lower"),
            "d_ci_upper": r.extra.get("d_ci_upper"),
        }
        if not single and " - " in r.contrast:
            a, ref = (spec.label("arms", x) for x in r.contrast.split(" - ", 1))
            low = hib.get(r.outcome) is False
            row["favours_left"] = f"favours {a if low else ref}"
            row["favours_right"] = f"favours {ref if low else a}"
        rows.append(row)
    return pd.DataFrame(rows)


def _forest_svg(eff: pd.DataFrame, **options: Any) -> str:
    """A forest plot of ``eff`` (:func:`peerstats.plot_forest` ``options``), 7 in wide and a
    row per effect, as SVG text."""
    import matplotlib.pyplot as plt

    import peerstats

    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(eff) + 1.6))
    peerstats.plot_forest(eff, ax=ax, **options)
    return _svg(fig)


def _forest(run: AnalysisRun) -> None:
    single = run.results["trial"]["design"] == "single-arm"
    eff = _forest_frame(run, single)
    if not len(eff):
        return
    _, _, ci = _labels(run)
    favours = ("favours_left", "favours_right") if "favours_left" in eff.columns else None
    run.figures["forest"] = _forest_svg(
        eff,
        estimate="d",
        ci=("d_ci_lower", "d_ci_upper"),
        label=("outcome", "visit"),
        favours_columns=favours,
        xlabel=(
            f"Change from baseline, Cohen's d ({ci})"
            if single
            else f"Difference (intervention \u2212 control), Cohen's d ({ci})"
        ),
    )
    run.figure_captions["forest"] = (
        "Effect sizes (Cohen's d, adjusted difference / pooled baseline SD) of every "
        "outcome, signs as measured (intervention minus control): where lower scores are "
        "better (e.g. disability, symptoms), a negative difference favours the intervention; "
        "each outcome's row says which side favours which arm."
        if not single
        else "Within-group change from baseline (Cohen's d = mean change / baseline SD)."
    )


def _ratio_forest(run: AnalysisRun) -> None:
    """Ratio-scale effects (odds, risk, rate, hazard ratios) with their CIs, null 1."""
    recs = [r for r in run.records if r.is_ratio]
    if not recs:
        return
    _, _, ci = _labels(run)
    eff = pd.DataFrame(
        {
            "outcome": [r.outcome_label or r.outcome for r in recs],
            "what": [r.scale_label for r in recs],
            "estimate": [r.estimate for r in recs],
            "ci_lower": [r.ci_lower for r in recs],
            "ci_upper": [r.ci_upper for r in recs],
        }
    )
    run.figures["forest_ratios"] = _forest_svg(
        eff,
        estimate="estimate",
        ci=("ci_lower", "ci_upper"),
        label=("outcome", "what"),
        null=1.0,
        xlabel=f"Ratio ({recs[0].comparison}), {ci}",
    )
    run.figure_captions["forest_ratios"] = (
        "Adjusted ratios of the binary and count outcomes ("
        + "; ".join(f"{r.outcome_label or r.outcome}: {r.direction}" for r in recs if r.direction)
        + f"), with {ci}; 1 is no difference."
    )


def _change(run: AnalysisRun) -> None:
    import matplotlib.pyplot as plt

    import peerstats

    spec, trial = run.spec, run.trial
    arm_labels, _, _ = _labels(run)
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    peerstats.plot_change(
        trial,
        spec.primary_outcome,
        visit=spec.primary_visit,
        ax=ax,
        arm_labels=arm_labels,
        seed=spec.seed,
        ylabel=(
            f"Change in {outcome_label(trial, spec, spec.primary_outcome)}, baseline to "
            f"{spec.label('visits', spec.primary_visit)}"
        ),
    )
    run.figures["change"] = _svg(fig)
    run.figure_captions["change"] = (
        f"Change in {outcome_label(trial, spec, spec.primary_outcome)} from baseline to "
        f"{spec.label('visits', spec.primary_visit)}, per participant."
    )


def _diagnostics(run: AnalysisRun) -> None:
    import peerstats

    spec, trial = run.spec, run.trial
    _, visit_labels, _ = _labels(run)
    fig = peerstats.plot_diagnostics(run.fits[spec.primary_outcome].fit, visit_labels=visit_labels)
    run.figures["diagnostics"] = _svg(fig)
    run.figure_captions["diagnostics"] = (
        f"Residual diagnostics of the primary model "
        f"({outcome_label(trial, spec, spec.primary_outcome)}): normal QQ plot and "
        "residuals against fitted values at each visit."
    )


def _attendance(run: AnalysisRun) -> None:
    import matplotlib.pyplot as plt

    import peerstats

    arm_labels, _, _ = _labels(run)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    peerstats.plot_attendance(run.trial, ax=ax, arm_labels=arm_labels)
    run.figures["attendance"] = _svg(fig)
    run.figure_captions["attendance"] = "Sessions attended per participant."
