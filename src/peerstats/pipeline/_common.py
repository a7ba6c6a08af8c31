"""Pieces of a pipeline run shared by its modules (run, report, figures, blinded mode,
sensitivity section): the run's records, warnings collection, display names, the headline
sentences, SVG output. The bottom of :mod:`peerstats.pipeline`: it imports no other module of
it except the display helpers, so that run -> report -> here stays one-way.
"""

from __future__ import annotations

import base64
import html
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from peerstats.exceptions import PeerstatsWarning, SpecError
from peerstats.pipeline._display import direction_text, directions, level_text

__all__ = [
    "AnalysisRun",
    "FittedOutcome",
    "coefficients",
    "outcome_label",
    "primary_sentences",
]


@dataclass
class FittedOutcome:
    """One outcome's model as the pipeline used it (a thin record around the public results)."""

    outcome: str
    model: str
    formula: str
    fit: Any
    covariance: str
    contrasts: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()
    icc: float | None = None
    design_effect: float | None = None
    n_groups: int | None = None
    mean_group_size: float | None = None
    consort: dict | None = None
    """Outcomes without visits (binary, count): per arm randomised, analysed, not analysed."""


@dataclass
class AnalysisRun:
    """Everything one run computed, in memory (write it with :func:`write_results`).

    Attributes
    ----------
    spec : AnalysisSpec
    trial : Trial
    results : dict
        The content of ``results.json`` (plain Python values).
    tables : dict of str to DataFrame
        ``tables/<name>.csv``.
    figures : dict of str to str
        ``figures/<name>.svg`` (SVG text).
    report_html : str
        ``report.html``.
    manifest : dict
        ``manifest.json`` (completed when written).
    fits : dict of str to FittedOutcome
        Each outcome's fit, made by its outcome type's adapter.
    """

    spec: Any  # AnalysisSpec (not imported: the spec module imports the estimand section)
    trial: Any
    results: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    figure_captions: dict[str, str] = field(default_factory=dict)
    report_html: str = ""
    manifest: dict = field(default_factory=dict)
    fits: dict[str, FittedOutcome] = field(default_factory=dict)
    html_tables: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: hypothesis code -> label of the multiplicity strategy (issue 19), for display
    multiplicity_labels: dict[str, str] = field(default_factory=dict)
    display_tables: dict[str, Any] = field(default_factory=dict)
    """Rendered tables (``describe.Table``, labels applied): ``tables/<name>.docx`` and
    ``tables/display/<name>.csv``."""
    records: list = field(default_factory=list)
    """Every treatment effect of the run (:class:`~peerstats.effects.EffectRecord`), all
    outcome types; the outcome tables, the forest plot and the headline read these."""
    effects: pd.DataFrame | None = None
    """The continuous outcomes' tidy outcome table (made from :attr:`records`)."""
    consort_flow: Any = None
    """The CONSORT flow (reconciled with the primary model) when asked for."""
    closed: Any = None
    """The closed DMC report's run (``--blinded --key``: by arm, with the code), or None."""


@contextmanager
def _collect(sink: list[str], prefix: str = "") -> Iterator[None]:
    """Record peerstats warnings (and still let others through)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PeerstatsWarning)
        yield
    for w in caught:
        if issubclass(w.category, PeerstatsWarning):
            msg = f"{prefix}{w.message}"
            if msg not in sink:
                sink.append(msg)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def coefficients(fit: Any, level: float = 0.95) -> pd.DataFrame:
    """The fixed effects with CIs at ``level`` (``fit.coef`` holds 95% CIs; other levels come
    from ``fit.test`` of each coefficient, the model's own df method)."""
    import numpy as np

    coef = fit.coef.reset_index()
    if abs(level - 0.95) < 1e-12:
        return coef
    p = len(coef)
    for j in range(p):
        ell = np.zeros(p)
        ell[j] = 1.0
        row = fit.test(ell, level=level).iloc[0]
        coef.loc[j, "ci_lower"] = float(row["ci_lower"])
        coef.loc[j, "ci_upper"] = float(row["ci_upper"])
    return coef


def _digits(se: float) -> int:
    if se != se or se >= 0.5:
        return 1
    return 2 if se >= 0.05 else 3


def _fmt_p(p: float) -> str:
    if p != p:
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:z.3f}"


def outcome_label(trial: Any, spec: Any, outcome: str) -> str:
    """Display name of an outcome: the spec's label, else the instrument, else the name."""
    default = outcome
    try:
        o = trial.spec.outcome(outcome)
        default = getattr(o, "instrument", None) or getattr(o, "label", None) or outcome
    except (KeyError, AttributeError, SpecError):
        d = getattr(spec, "outcome_defs", {}).get(outcome)  # binary / count / time to event
        if d is not None and getattr(d, "label", None):
            default = d.label
    return spec.label("outcomes", outcome, str(default))


def _responder_name(r: Any) -> str:
    """Table name part of a responder analysis: outcome and visit (two analyses of one outcome
    at different visits must not overwrite each other)."""
    return f"{r.outcome}_{r.visit}" if r.visit else str(r.outcome)


def primary_records(run: AnalysisRun) -> list[Any]:
    """The run's effect records of the primary outcome at the primary visit (or over the whole
    follow-up, for an outcome without visits)."""
    spec = run.spec
    return [
        r
        for r in run.records
        if r.outcome == spec.primary_outcome
        and (r.visit is None or str(r.visit) == str(spec.primary_visit))
    ]


def primary_sentences(run: AnalysisRun) -> list[str]:
    """Plain-language statements of the primary result (one per contrast), from the run's
    effect records."""
    out = []
    for r in primary_records(run):
        if r.estimate is None or r.estimate != r.estimate:
            continue
        if r.is_ratio or r.scale != "mean_difference":
            out.append(effect_sentence(run, r))
        else:
            out.append(_difference_sentence(run, r))
    return out


def _difference_sentence(run: AnalysisRun, r: Any) -> str:
    """ "QPR-15 at post-treatment was 4.8 points higher (95% CI ...) with peer support than
    with usual services (p < 0.001, Cohen's d 0.46); higher is better ..."."""
    spec, trial = run.spec, run.trial
    name = outcome_label(trial, spec, r.outcome)
    vlab = spec.label("visits", spec.primary_visit)
    est, lo, hi = r.estimate, r.ci_lower, r.ci_upper
    k = _digits(r.std_error)
    word = "higher" if est > 0 else "lower"
    if est < 0:  # "1.8 points lower (95% CI 0.4 to 3.2)": the interval on the same scale
        lo, hi = -hi, -lo
    ci = f"({level_text(spec.model.level)} CI {lo:z.{k}f} to {hi:z.{k}f})"
    if run.results["trial"]["design"] == "single-arm":
        return (
            f"{name} at {vlab} was {abs(est):z.{k}f} points {word} than at baseline {ci}, "
            f"{_fmt_p(r.p_value)}; a within-group change in a single-arm "
            "study, not a comparison with a control group."
        )
    key = r.contrast
    arm, ref = key.split(" - ", 1) if " - " in key else (key, "control")
    d = r.extra.get("d", r.extra.get("cohens_d"))
    dtxt = f", Cohen's d {d:z.2f}" if d is not None else ""
    hib = directions(trial).get(r.outcome)
    favour = ""
    if hib is not None and est != 0:
        better = (est > 0) == hib
        winner = spec.label("arms", arm if better else ref)
        favour = f"; {direction_text(hib)} on {name}, so the estimate favours {winner}"
    return (
        f"{name} at {vlab} was {abs(est):z.{k}f} points {word} {ci} with "
        f"{spec.label('arms', arm)} than with {spec.label('arms', ref)} "
        f"({_fmt_p(r.p_value)}{dtxt}){favour}."
    )


def effect_sentence(run: AnalysisRun, r: Any) -> str:
    """One effect record in words, any scale: "Readmission within 12 months: odds ratio 0.66
    (95% CI 0.43 to 0.99), peer support vs usual services, p = 0.041; fewer readmissions
    favour peer support."."""
    spec = run.spec
    name = r.outcome_label or outcome_label(run.trial, spec, r.outcome)
    when = f" at {r.visit_label or spec.label('visits', str(r.visit))}" if r.visit else ""
    k = 2 if r.is_ratio else _digits(r.std_error)
    ci = f"{level_text(r.level)} CI {r.ci_lower:z.{k}f} to {r.ci_upper:z.{k}f}"
    text = (
        f"{name}{when}: {r.scale_label} {r.estimate:z.{k}f} ({ci}), {r.comparison}, "
        f"{_fmt_p(r.p_value)}"
    )
    return text + (f"; {r.direction}." if r.direction else ".")


def _svg(fig: Any) -> str:
    """``fig`` as SVG text cropped to its tight box, drawn once (:mod:`._svg`); closes it."""
    import matplotlib.pyplot as plt

    from peerstats.pipeline._svg import figure_svg

    text = figure_svg(fig)
    plt.close(fig)
    return text


# ----------------------------------------------------------------------------- HTML
def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(svg: str, alt: str, name: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (
        f'<img src="data:image/svg+xml;base64,{data}" alt="{_e(alt)}" '
        f'data-figure="{_e(name)}" loading="eager">'
    )


def _figure(run: AnalysisRun, name: str) -> str:
    if name not in run.figures:
        return ""
    cap = run.figure_captions.get(name, "")
    return f"<figure>{_img(run.figures[name], cap or name, name)}<figcaption>{_e(cap)}</figcaption></figure>"
