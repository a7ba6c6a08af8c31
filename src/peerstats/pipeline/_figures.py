"""The figures of a pipeline run (SVG text in ``run.figures``), drawn through the public
plotting functions with the run's labels and confidence level."""

from __future__ import annotations

from typing import Any

import pandas as pd

from peerstats.pipeline._common import AnalysisRun, _svg, outcome_label
from peerstats.pipeline._display import directions, display_labels, level_text

__all__ = ["draw_figures"]


def draw_figures(run: AnalysisRun, flow: Any, effects: pd.DataFrame | None) -> None:
    import matplotlib.pyplot as plt

    import peerstats

    spec, trial = run.spec, run.trial
    arm_labels = {str(a): spec.label("arms", str(a)) for a in trial.spec.arms.levels}
    visit_labels = {str(v): spec.label("visits", str(v)) for v in trial.spec.visits}
    ci = f"{level_text(spec.model.level)} CI"
    if spec.wants_figure("consort") and flow is not None:
        lab = display_labels(trial, spec)  # reasons in words (issue 21)
        flow = flow.relabelled(lab.reason)
        run.figures["consort"] = _svg(flow.plot(arm_labels=arm_labels, visit_labels=visit_labels))
        run.figure_captions["consort"] = "Figure 1. Participant flow (CONSORT)."
    if spec.wants_figure("trajectories"):
        for o in spec.outcomes:
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
    if spec.wants_figure("forest") and effects is not None and len(effects):
        eff = effects.copy()
        eff["outcome"] = [outcome_label(trial, spec, o) for o in eff["outcome"]]
        eff["visit"] = [spec.label("visits", str(v)) for v in eff["visit"]]
        favours = None
        single = run.results["trial"]["design"] == "single-arm"
        if not single and "contrast" in eff.columns:
            hib = directions(trial)
            pairs = [str(c).split(" - ", 1) for c in eff["contrast"]]
            arm_of = [spec.label("arms", p[0]) for p in pairs]
            ref_of = [spec.label("arms", p[-1]) for p in pairs]
            lower = [hib.get(o) is False for o in effects["outcome"]]
            eff["favours_left"] = [
                f"favours {a if low else r}" for a, r, low in zip(arm_of, ref_of, lower)
            ]
            eff["favours_right"] = [
                f"favours {r if low else a}" for a, r, low in zip(arm_of, ref_of, lower)
            ]
            favours = ("favours_left", "favours_right")
        fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(eff) + 1.6))
        single = run.results["trial"]["design"] == "single-arm"
        dcol = "cohens_d" if "cohens_d" in eff.columns else "d"
        peerstats.plot_forest(
            eff,
            estimate=dcol,
            ci=("d_ci_lower", "d_ci_upper"),
            label=("outcome", "visit"),
            ax=ax,
            favours_columns=favours,
            xlabel=(
                f"Change from baseline, Cohen's d ({ci})"
                if single
                else f"Difference (intervention \u2212 control), Cohen's d ({ci})"
            ),
        )
        run.figures["forest"] = _svg(fig)
        run.figure_captions["forest"] = (
            "Effect sizes (Cohen's d, adjusted difference / pooled baseline SD) of every "
            "outcome, signs as measured (intervention minus control): where lower scores are "
            "better (e.g. disability, symptoms), a negative difference favours the intervention; "
            "each outcome's row says which side favours which arm."
            if not single
            else "Within-group change from baseline (Cohen's d = mean change / baseline SD)."
        )
    if spec.wants_figure("change"):
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
    if spec.wants_figure("diagnostics") and spec.primary_outcome in run.fits:
        fig = peerstats.plot_diagnostics(
            run.fits[spec.primary_outcome].fit, visit_labels=visit_labels
        )
        run.figures["diagnostics"] = _svg(fig)
        run.figure_captions["diagnostics"] = (
            f"Residual diagnostics of the primary model "
            f"({outcome_label(trial, spec, spec.primary_outcome)}): normal QQ plot and "
            "residuals against fitted values at each visit."
        )
    if spec.wants_figure("attendance") and getattr(trial, "sessions", None) is not None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        peerstats.plot_attendance(trial, ax=ax, arm_labels=arm_labels)
        run.figures["attendance"] = _svg(fig)
        run.figure_captions["attendance"] = "Sessions attended per participant."
