"""The report section "Heterogeneity and mechanisms" (issue 19), from the analysis spec's
``subgroups:``, ``mediation:`` and ``multiplicity: strategy:`` blocks.

- ``subgroups: {outcome, visit, by: [...], sites: true}``: :func:`peerstats.subgroups` (and
  :func:`peerstats.site_heterogeneity` when ``sites``) on the primary outcome and visit by default.
- ``mediation: {mediator: {outcome, visit}, outcome: {outcome, visit}, sims, seed}``: the mediator
  and the outcome at their visits, baseline values of both as covariates, the model's baseline
  covariates too; :func:`peerstats.mediation` on the participants with all of them.
- ``multiplicity: {strategy: {method, hypotheses: [{outcome, visit}], weights, transitions,
  families}}``: :func:`peerstats.multiple_testing` on the p-values of those effects (the run's
  records), with the graph drawn.

Everything here calls the public API; nothing is computed in the pipeline.
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import pandas as pd

from peerstats.exceptions import DataWarning, SpecError
from peerstats.pipeline._common import AnalysisRun, _collect, _svg

__all__ = ["run_mechanisms", "render_section", "wide_frame"]


def wide_frame(trial: Any, columns: list[tuple[str, str]], covariates: list[str]) -> pd.DataFrame:
    """One row per participant: ``treated`` (0/1), ``<outcome>_<visit>`` for each pair, covariates.

    Each visit's rows (first per participant) are selected once for all its outcomes, with only
    the columns needed (the assessments have one column per item)."""
    a = trial.assessments
    first = a[["subject", "arm"]].drop_duplicates("subject").set_index("subject")
    ref = str(trial.spec.arms.reference or trial.spec.arms.levels[0])
    out = pd.DataFrame(index=first.index)
    out["treated"] = (first["arm"].astype(str) != ref).astype(int)
    visit_of = a["visit"].astype(str).to_numpy()
    at: dict[str, pd.DataFrame] = {}
    for visit in dict.fromkeys(str(v) for _, v in columns):
        outcomes = list(dict.fromkeys(o for o, v in columns if str(v) == visit))
        rows = a.loc[visit_of == visit, ["subject", *outcomes]].drop_duplicates("subject")
        at[visit] = rows.set_index("subject").reindex(out.index)
    for outcome, visit in columns:
        out[f"{outcome}_{visit}"] = at[str(visit)][outcome]
    if covariates:
        part = trial.participants[["subject", *covariates]].drop_duplicates("subject")
        part = part.set_index("subject").reindex(out.index)
        for c in covariates:
            out[c] = part[c]
    return out.reset_index()


def _primary_fit(run: AnalysisRun, outcome: str) -> Any:
    """The run's fit of ``outcome`` when it is the model :func:`peerstats.subgroups` would fit
    for its "overall" row (``analyze`` with Satterthwaite df, model-based covariance and no
    extra covariates: the same call, the same numbers); else None (subgroups fits it)."""
    m = run.spec.model
    fitted = run.fits.get(outcome)
    same = (m.type == "auto" and m.df == "satterthwaite" and m.vcov == "model"
            and not m.covariates and run.spec.outcome_type(outcome) == "continuous")
    return fitted if same and fitted is not None and fitted.contrasts is not None else None


def _subgroups(run: AnalysisRun, block: dict, labels: Any) -> dict:
    import peerstats

    spec = run.spec
    outcome = block.get("outcome", spec.primary_outcome)
    visit = str(block.get("visit", spec.primary_visit))
    with warnings.catch_warnings():  # the primary model's data warnings are reported already
        warnings.simplefilter("ignore", DataWarning)
        sub = peerstats.subgroups(
            run.trial, outcome=outcome, visit=visit, by=list(block["by"]), labels=labels,
            covariates=list(spec.model.covariates), level=spec.model.level,
            primary=_primary_fit(run, outcome),
        )
    run.tables["subgroups"] = sub.table
    run.figures["subgroups_forest"] = _svg(sub.plot().figure)
    for var in sub.curves:
        run.figures[f"subgroups_curve_{var}"] = _svg(sub.plot(curve=var).figure)
    out = {"outcome": outcome, "visit": visit, "n_tested": sub.n_tested, "warning": sub.warning,
           "effects": sub.table.to_dict("records"),
           "interactions": sub.interactions.reset_index().to_dict("records")}
    if block.get("sites"):
        het = peerstats.site_heterogeneity(run.trial, outcome=outcome, visit=visit,
                                           level=spec.model.level)
        run.tables["site_effects"] = het.effects.reset_index()
        run.figures["site_forest"] = _svg(het.plot().figure)
        out["sites"] = {"effects": het.effects.reset_index().to_dict("records"),
                        "meta": het.meta.to_frame().iloc[0].to_dict()}
    return out


def _mediation(run: AnalysisRun, block: dict) -> dict:
    import peerstats

    m, y = block["mediator"], block["outcome"]
    base = str(run.trial.spec.visits[0])
    covs = list(run.spec.model.covariates)
    cols = [(m["outcome"], m["visit"]), (y["outcome"], y["visit"]),
            (m["outcome"], base), (y["outcome"], base)]
    cols = list(dict.fromkeys(cols))
    wide = wide_frame(run.trial, cols, covs)
    med_col, out_col = f"{m['outcome']}_{m['visit']}", f"{y['outcome']}_{y['visit']}"
    adjust = [f"{o}_{base}" for o in dict.fromkeys([m["outcome"], y["outcome"]])] + covs
    rhs = " + ".join(["treated", *adjust])
    res = peerstats.mediation(
        wide, mediator_formula=f"{med_col} ~ {rhs}",
        outcome_formula=f"{out_col} ~ treated + {med_col} + {' + '.join(adjust)}",
        treatment="treated", mediator=med_col, sims=int(block.get("sims", 1000)),
        seed=int(block.get("seed", run.spec.seed)), level=run.spec.model.level,
    )
    run.tables["mediation"] = res.effects.reset_index()
    out = {"mediator": med_col, "outcome": out_col, "n": res.n, "sims": res.sims,
           "effects": res.effects.reset_index().to_dict("records")}
    try:
        sens = res.sensitivity()
        run.figures["mediation_sensitivity"] = _svg(sens.plot().figure)
        out["rho_at_zero"] = sens.rho_at_zero
    except peerstats.ModelSpecificationError as exc:
        run.warnings.append(f"mediation: no sensitivity analysis ({exc})")
    return out


def _hypothesis_label(run: AnalysisRun, outcome: str, visit: Any) -> str:
    """'Social Inclusion Scale, 4 months': the outcome and visit as the report names them."""
    from peerstats.pipeline._common import outcome_label

    name = outcome_label(run.trial, run.spec, outcome)
    return f"{name}, {run.spec.label('visits', str(visit))}" if visit is not None else name


def _strategy(run: AnalysisRun, block: dict) -> dict:
    import peerstats
    from peerstats.effects.multiplicity import plot_graph

    hyps = block["hypotheses"]
    names, labels, ps = [], [], []
    for h in hyps:
        recs = [r for r in run.records if r.outcome == h["outcome"]
                and (h.get("visit") is None or str(r.visit) == str(h["visit"]))]
        if len(recs) != 1:
            raise SpecError(f"multiplicity strategy: {h} matches {len(recs)} effects, not one")
        names.append(f"{h['outcome']} {recs[0].visit or ''}".strip())
        labels.append(_hypothesis_label(run, h["outcome"], recs[0].visit))
        ps.append(recs[0].p_value)
    res = peerstats.multiple_testing(
        pd.Series(ps, index=names), method=block["method"], weights=block.get("weights"),
        transitions=block.get("transitions"), families=block.get("families"),
        alpha=float(block.get("alpha", 0.05)),
    )
    run.tables["multiplicity"] = res.reset_index(names="hypothesis")
    run.multiplicity_labels = dict(zip(names, labels, strict=True))  # what a reader sees
    if "weights" in res.attrs:
        ax = plot_graph(res.attrs["weights"], res.attrs["transitions"], names=labels,
                        rejected=res["rejected"].tolist())
        run.figures["multiplicity_graph"] = _svg(ax.figure)
    return {"method": block["method"], "alpha": res.attrs["alpha"],
            "hypotheses": res.reset_index(names="hypothesis").to_dict("records")}


def run_mechanisms(run: AnalysisRun, progress: Any) -> None:
    """Subgroups, site heterogeneity, mediation and the multiplicity strategy, as the spec asks
    (``results.json`` ``heterogeneity_and_mechanisms``)."""
    from peerstats.pipeline._display import display_labels

    raw = run.spec.raw
    strategy = (raw.get("multiplicity") or {}).get("strategy")
    if not (raw.get("subgroups") or raw.get("mediation") or strategy):
        return
    out: dict[str, Any] = {}
    with progress.step("heterogeneity and mechanisms"), _collect(run.warnings):
        if raw.get("subgroups"):
            out["subgroups"] = _subgroups(run, raw["subgroups"], display_labels(run.trial, run.spec))
        if raw.get("mediation"):
            out["mediation"] = _mediation(run, raw["mediation"])
        if strategy:
            out["multiplicity"] = _strategy(run, strategy)
    run.results["heterogeneity_and_mechanisms"] = out


_CAPTIONS = {
    "subgroups_forest": "Treatment effect within subgroups, from the primary model with a "
    "treatment-by-subgroup interaction; overall effect on top, interaction p at the right "
    "(exploratory).",
    "site_forest": "Treatment effect in each site, their REML random-effects pooled estimate and "
    "the prediction interval for a new site.",
    "mediation_sensitivity": "Sensitivity of the average causal mediation effect to "
    "mediator-outcome confounding (Imai, Keele & Yamamoto 2010): ACME against the error "
    "correlation rho.",
    "multiplicity_graph": "The multiple-testing graph (Bretz et al. 2009): initial weights in the "
    "nodes, transition weights on the edges; rejected hypotheses shaded.",
}


def _fig(run: AnalysisRun, name: str) -> str:
    from peerstats.pipeline._common import _figure

    if name in run.figures and name not in run.figure_captions:
        run.figure_captions[name] = _CAPTIONS.get(
            name, "Treatment effect as a function of a continuous modifier, with its "
            "confidence band (exploratory).")
    return _figure(run, name)


def _frame_html(df: pd.DataFrame, cols: list[str] | None = None) -> str:
    """A plain HTML table, numbers to 3 significant digits (the report's own style)."""
    if cols:
        df = df[[c for c in cols if c in df.columns]]

    def cell(v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return html.escape(str(v))
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False, name=None))
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            "</table></div>")


def render_section(run: AnalysisRun) -> list[str]:
    """HTML of the section (empty when the spec asks for none of it)."""
    res = run.results.get("heterogeneity_and_mechanisms")
    if not res:
        return []
    e = html.escape
    parts = ["<h2 id='mechanisms'>Heterogeneity and mechanisms</h2>"]
    from peerstats.pipeline._display import display_labels

    lab = display_labels(run.trial, run.spec)
    if "subgroups" in res:
        s = res["subgroups"]
        parts.append(f"<h3>Subgroups ({e(lab.outcome(s['outcome']))}, "
                     f"{e(lab.visit(s['visit']))})</h3>")
        parts.append(f"<p class='note'>{e(s['warning'])}</p>")
        words = {"variable_label": "Subgroup", "level_label": "Level", "n": "n",
                 "estimate": "Difference", "ci_lower": "CI lower", "ci_upper": "CI upper",
                 "interaction_p": "Interaction p"}
        parts.append(_frame_html(run.tables["subgroups"][list(words)].rename(columns=words)))
        parts.append(_fig(run, "subgroups_forest"))
        parts += [_fig(run, n) for n in run.figures if n.startswith("subgroups_curve_")]
        if "sites" in s:
            m = s["sites"]["meta"]
            parts.append(
                f"<h3>Sites</h3><p>Random-effects meta-analysis of the site effects (REML): "
                f"τ² = {m['tau2']:.3g}, I² = {m['i2']:z.1f}%, Q p = {m['q_p_value']:z.3f}; "
                f"prediction interval for a new site [{m['pi_lower']:z.2f}, {m['pi_upper']:z.2f}]."
                "</p>")
            parts.append(_fig(run, "site_forest"))
    if "mediation" in res:
        md = res["mediation"]
        parts.append(f"<h3>Mediation: {e(md['mediator'])} → {e(md['outcome'])} "
                     f"(n = {md['n']}, {md['sims']} simulations)</h3>")
        parts.append(_frame_html(run.tables["mediation"].head(4).rename(columns={
            "effect": "Effect", "estimate": "Estimate", "std_error": "SE",
            "ci_lower": "CI lower", "ci_upper": "CI upper", "p_value": "p"})))
        if "rho_at_zero" in md:
            parts.append(f"<p>The mediated effect would be zero at a mediator–outcome error "
                         f"correlation ρ = {md['rho_at_zero']:z.3f}.</p>")
        parts.append(_fig(run, "mediation_sensitivity"))
    if "multiplicity" in res:
        mt = res["multiplicity"]
        parts.append(f"<h3>Multiplicity strategy ({e(mt['method'])}, α = {mt['alpha']})</h3>")
        shown = run.tables["multiplicity"].assign(
            hypothesis=lambda t: t["hypothesis"].map(run.multiplicity_labels)
            .fillna(t["hypothesis"]),
            rejected=lambda t: t["rejected"].map({True: "yes", False: "no"}),
        )
        parts.append(_frame_html(shown.rename(columns={
            "hypothesis": "Hypothesis", "p_value": "p", "adjusted_p": "Adjusted p",
            "rejected": "Rejected"})))
        parts.append(_fig(run, "multiplicity_graph"))
    return parts
