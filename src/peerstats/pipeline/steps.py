"""The named steps of a pipeline run, each a short function you can call alone in a notebook.

:func:`peerstats.pipeline.run_analysis` is this list::

    spec, trial = load(spec)                  # the analysis spec and the validated trial
    run = validate(spec, trial)               # spec against trial, estimand columns; header
    estimate(run)                             # every outcome through its type's adapter:
                                              #   fit -> EffectRecords -> multiplicity
    describe(run)                             # outcome table from the records, CONSORT
                                              #   (reconciled with the fits), Table 1, ...
    figures(run)                              # forest (from the records), trajectories ...
    sensitivity(run)                          # estimand and missing-data analyses
    economics(run)                            # cost-effectiveness (``economics:`` block)
    mechanisms(run)                           # subgroups, sites, mediation, multiplicity
    render(run)                               # report.html

``estimate`` comes before ``describe`` because CONSORT's analysed boxes are reconciled with the
fitted models. Each step reads and fills the :class:`~peerstats.pipeline.AnalysisRun`; the
outcome table, the forest plot, the headline and ``results.json``'s effects are made from the
run's :attr:`~peerstats.pipeline.AnalysisRun.records` (:class:`~peerstats.effects.EffectRecord`)
only, whatever the outcome type (:mod:`peerstats.pipeline.outcomes`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from peerstats.effects import EffectRecord
from peerstats.exceptions import ModelSpecificationError
from peerstats.pipeline._common import AnalysisRun, _collect
from peerstats.pipeline._jsonio import frame_keyed, plain
from peerstats.pipeline._manifest import is_single_arm, manifest, results_header
from peerstats.pipeline.analysis_spec import AnalysisSpec, read_analysis_spec
from peerstats.pipeline.outcomes import Context, adapter_of

__all__ = [
    "load",
    "validate",
    "estimate",
    "describe",
    "figures",
    "sensitivity",
    "economics",
    "mechanisms",
    "render",
    "context",
    "adjust_records",
    "primary_block",
]


class _Quiet:
    """A progress that shows nothing (the default of every step)."""

    def step(self, label: str) -> Any:
        import contextlib

        return contextlib.nullcontext()


def load(spec: str | Path | dict | AnalysisSpec, *, progress: Any = None) -> tuple[Any, Any]:
    """Read the analysis spec and load the trial it names (validated on loading).

    Raises
    ------
    SpecError, DataValidationError
    """
    import peerstats

    progress = progress or _Quiet()
    spec = read_analysis_spec(spec)
    with progress.step(f"loading and validating the trial ({spec.trial_path.name})"):
        trial = peerstats.load_trial(spec.trial_path)
    return spec, trial


def validate(
    spec: AnalysisSpec,
    trial: Any,
    *,
    blinded: bool = False,
    started: Any = None,
    key: Any = None,
) -> AnalysisRun:
    """Check the spec against the trial (and the estimand's columns against its data), blind
    it when asked, and start the run: manifest and the header of ``results.json``."""
    import datetime as _dt

    from peerstats.pipeline import sensitivity as _sensitivity

    started = started or _dt.datetime.now(_dt.UTC)
    spec.check_against(trial.spec)
    if blinded:  # issue 12: arms coded A/B, between-arm comparisons left out (pipeline/_blind)
        from peerstats.pipeline._blind import blind_spec, blind_trial

        trial, _key = blind_trial(trial, key_file=key)  # secret, never the seed (20.1)
        spec = blind_spec(spec)
    _sensitivity.check_data(spec, trial)  # before any fitting
    run = AnalysisRun(spec=spec, trial=trial)
    run.warnings.extend(f"data: {w}" for w in getattr(trial, "warnings", []))
    run.manifest = manifest(spec, trial, started)
    run.results = results_header(spec, trial)
    return run


def context(run: AnalysisRun) -> Context:
    """What the outcome adapters are told of the run (labels, directions, randomised n)."""
    from peerstats.pipeline._display import directions, display_labels

    return Context(
        spec=run.spec,
        trial=run.trial,
        labels=display_labels(run.trial, run.spec),
        directions=directions(run.trial),
        single=is_single_arm(run.trial.spec),
        n_randomised=dict(run.results["trial"]["n_randomised"]),
    )


# ----------------------------------------------------------------------------- estimate
def fit_outcomes(run: AnalysisRun, *, progress: Any = None) -> None:
    """Fit every outcome with its type's adapter; ``results.json`` ``models``; model notes
    become warnings."""
    progress = progress or _Quiet()
    spec, trial = run.spec, run.trial
    for o in spec.outcomes:
        with progress.step(f"fitting the model of {o}"), _collect(run.warnings, f"{o}: "):
            run.fits[o] = adapter_of(spec, o).fit(trial, o, spec)
    run.results["models"] = {
        o: adapter_of(spec, o).model_record(f, spec) for o, f in run.fits.items()
    }
    for o, f in run.fits.items():
        for n in f.notes:
            msg = f"{o}: {n}"
            if msg not in run.warnings:
                run.warnings.append(msg)


def adjust_records(records: list[EffectRecord], method: str) -> list[EffectRecord]:
    """The records with ``extra["p_adjusted"]``: secondary outcomes' p-values adjusted
    (``method``: holm, fdr_bh, bonferroni, none) within each visit and contrast, as
    :func:`peerstats.outcome_table` does; a whole-follow-up effect (visit None) forms its own
    family."""
    from peerstats.describe.outcome_table import adjust_p_values

    if not records:
        return records
    keys = pd.DataFrame(
        {
            "visit": ["" if r.visit is None else str(r.visit) for r in records],
            "contrast": [r.contrast for r in records],
            "primary": [r.primary for r in records],
            "p_value": [r.p_value for r in records],
        }
    )
    adj = adjust_p_values(keys, method)  # type: ignore[arg-type]
    return [
        dataclasses.replace(r, extra={**r.extra, "p_adjusted": float(a)})
        for r, a in zip(records, adj, strict=True)
    ]


def primary_block(run: AnalysisRun) -> dict[str, Any]:
    """``results.json`` ``primary``: the primary outcome's effects at the primary visit.

    Raises
    ------
    ModelSpecificationError
        The primary outcome has no effect at the primary visit.
    """
    spec = run.spec
    prim = [r for r in run.records if r.outcome == spec.primary_outcome]
    prim = [r for r in prim if str(r.visit) == spec.primary_visit or r.visit is None]
    if not prim:
        raise ModelSpecificationError(
            f"the model of {spec.primary_outcome!r} has no estimate at the primary visit "
            f"{spec.primary_visit!r} (no observations there?)"
        )
    keys = ("std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper")
    contrasts = {}
    for r in prim:
        entry = {"estimate": r.estimate, **{k: getattr(r, k) for k in keys}}
        d = r.extra.get("d", r.extra.get("cohens_d"))
        if d is not None:
            entry.update(d=d, d_ci_lower=r.extra["d_ci_lower"], d_ci_upper=r.extra["d_ci_upper"])
        if r.scale != "mean_difference":
            entry["scale"] = r.scale
        contrasts[r.contrast] = {k: plain(v) for k, v in entry.items()}
    return {
        "outcome": spec.primary_outcome,
        "visit": spec.primary_visit,
        "level": spec.model.level,
        "contrasts": contrasts,
    }


def estimate(run: AnalysisRun, *, progress: Any = None) -> None:
    """Fit every outcome, collect its :class:`EffectRecord`\\ s (``run.records``), adjust the
    secondary outcomes' p-values, and fill ``results.json`` ``models``, ``effects`` and
    ``primary``."""
    progress = progress or _Quiet()
    fit_outcomes(run, progress=progress)
    ctx = context(run)
    with progress.step("effects"), _collect(run.warnings):
        records: list[EffectRecord] = []
        for o, f in run.fits.items():
            records.extend(adapter_of(run.spec, o).records(f, ctx))
        if not ctx.single:
            records = adjust_records(records, run.spec.multiplicity)
        run.records = records
        tables = outcome_tables(run, ctx)
        run.results["effects"] = {}
        for t in tables.values():  # each type's own columns (no empty cells of the others)
            run.results["effects"].update(frame_keyed(t.data, ["outcome", "visit", "contrast"]))
        run.results["primary"] = primary_block(run)
        run.effects = tables["continuous"].data if "continuous" in tables else None
        if run.spec.wants_table("outcomes"):
            _outcome_tables_out(run, tables)
        if run.spec.wants_table("model_coefficients"):
            run.tables["model_coefficients"] = model_coefficients(run)


def outcome_tables(run: AnalysisRun, ctx: Context) -> dict[str, Any]:
    """One display table per outcome type present, made by its adapter from its records."""
    out: dict[str, Any] = {}
    for kind in dict.fromkeys(r.outcome_type for r in run.records):
        recs = [r for r in run.records if r.outcome_type == kind]
        out[kind] = _with_n(adapter_of(run.spec, recs[0].outcome).table(recs, ctx), recs)
    return out


def n_of_randomised(r: Any) -> str:
    """ "n analysed / N randomised" of one effect record (issue 20.4); "" when unknown."""
    if r.n_analysed is None:
        return ""
    return f"{int(r.n_analysed)} / {int(r.n_randomised)}" if r.n_randomised else str(r.n_analysed)


def _with_n(table: Any, recs: list[Any]) -> Any:
    """The display table with "n analysed / N randomised" next to every effect (one display
    row per record; a table laid out otherwise is left as it is)."""
    disp = getattr(table, "display", None)
    if disp is None or len(disp) != len(recs) or "Visit" not in disp.columns:
        return table
    disp.insert(
        list(disp.columns).index("Visit") + 1,
        "n analysed / N randomised",
        [n_of_randomised(r) for r in recs],
    )
    return table


def _outcome_tables_out(run: AnalysisRun, tables: dict[str, Any]) -> None:
    for kind, table in tables.items():
        name = "outcomes" if kind == "continuous" else f"outcomes_{kind}"
        run.tables[name] = table.data
        run.display_tables[name] = table
        run.html_tables[name] = table.render("html")


def model_coefficients(run: AnalysisRun) -> pd.DataFrame:
    """Every model's fixed effects with CIs at the run's level (``tables/model_coefficients``)."""
    from peerstats.pipeline._common import coefficients

    coefs = []
    for o, f in run.fits.items():
        c = coefficients(f.fit, run.spec.model.level)
        c.insert(0, "outcome", o)
        coefs.append(c)
    return pd.concat(coefs, ignore_index=True)


# ----------------------------------------------------------------------------- describe
def describe(run: AnalysisRun, *, progress: Any = None) -> None:
    """CONSORT (reconciled with the primary model), Table 1, responders, feasibility, harms,
    model-estimated means and within-group change, as the spec asks."""
    from peerstats.pipeline import _tables

    progress = progress or _Quiet()
    with progress.step("descriptive tables"), _collect(run.warnings):
        for step in _tables.STEPS:
            step(run)


# ----------------------------------------------------------------------------- the rest
def figures(run: AnalysisRun, *, progress: Any = None) -> None:
    """The figures of the run (forest from the records)."""
    from peerstats.pipeline._figures import draw_figures

    progress = progress or _Quiet()
    with progress.step("drawing the figures"), _collect(run.warnings):
        draw_figures(run, run.consort_flow, run.effects)


def sensitivity(run: AnalysisRun, *, progress: Any = None) -> None:
    """The estimand section and the sensitivity analyses (:mod:`.sensitivity`)."""
    from peerstats.pipeline import sensitivity as _sensitivity

    _sensitivity.run_sensitivity(run, progress or _Quiet())
    run.results["warnings"] = list(run.warnings)


def economics(run: AnalysisRun, *, progress: Any = None) -> None:
    """The cost-effectiveness analysis of the spec's ``economics:`` block (issue 18;
    :mod:`.economics`); nothing without one."""
    from peerstats.pipeline.economics import run_economics

    with _collect(run.warnings, "economics: "):
        run_economics(run, progress or _Quiet())


def mechanisms(run: AnalysisRun, *, progress: Any = None) -> None:
    """Subgroups, site heterogeneity, mediation and the multiplicity strategy (issue 19;
    :mod:`.mechanisms`), when the spec has ``subgroups:``, ``mediation:`` or
    ``multiplicity: strategy:``."""
    from peerstats.pipeline.mechanisms import run_mechanisms

    run_mechanisms(run, progress or _Quiet())


def render(run: AnalysisRun, *, progress: Any = None) -> None:
    """``report.html``."""
    from peerstats.pipeline.report import render_report

    progress = progress or _Quiet()
    run.results["warnings"] = list(run.warnings)
    with progress.step("writing the report"):
        run.report_html = render_report(run)
