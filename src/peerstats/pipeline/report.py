"""The self-contained HTML report of a pipeline run.

One file: styles inline, figures embedded as SVG data URIs, no scripts, no network requests.
The order follows what a reader of a trial report looks for first: the primary result in plain
language, then the trial, CONSORT, Table 1, all outcomes, figures, model details, warnings and
provenance. Numbers are rounded here only for display; ``results.json`` keeps them unrounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peerstats.pipeline._common import _e, _figure, _img  # noqa: F401  (HTML helpers)

if TYPE_CHECKING:  # pragma: no cover
    from peerstats.pipeline._common import AnalysisRun

__all__ = ["render_report"]

_CSS = """
:root { --fg: #1d2433; --muted: #5a6275; --accent: #0072B2; --bg: #ffffff; --box: #f3f6fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; border-bottom: 2px solid #e3e8ef;
     padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p.sub { color: var(--muted); margin: 0 0 1rem; }
nav { font-size: .9rem; margin: .8rem 0 1.2rem; }
nav a { color: var(--accent); margin-right: .9rem; text-decoration: none; }
.badge { display: inline-block; font-size: .75rem; font-weight: 600; padding: .1rem .45rem;
         border-radius: .3rem; background: #fde8d7; color: #8a3b00; vertical-align: middle; }
.primary { background: var(--box); border-left: 5px solid var(--accent); padding: .9rem 1.1rem;
           margin: 1rem 0; border-radius: .3rem; }
.primary p.result { font-size: 1.15rem; font-weight: 600; margin: .2rem 0 .5rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .86rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e3e8ef; text-align: right;
         vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #9aa4b5; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3rem; }
.scroll { overflow-x: auto; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: .3rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(430px, 1fr)); gap: 1rem; }
pre { background: var(--box); padding: .7rem; overflow-x: auto; font-size: .82rem; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .4rem 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; }
.peerstats-note { color: var(--muted); font-size: .82rem; margin: .1rem 0; }
ul.warn li { margin: .15rem 0; }
code { font-size: .85rem; }
"""


_ADJUST = {
    "holm": "Holm",
    "fdr_bh": "Benjamini\u2013Hochberg (false discovery rate)",
    "bonferroni": "Bonferroni",
    "none": "none",
}


def _num(x: Any, k: int = 2) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:z.{k}f}" if abs(x) >= 10 ** (-k) or x == 0 else f"{x:.2g}"
    return _e(x)


def _kv(pairs: list[tuple[str, Any]]) -> str:
    return (
        "<dl class='kv'>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
        + "</dl>"
    )


def _frame_html(df: Any, cols: list[str] | None = None, digits: int = 3) -> str:
    if cols:
        df = df[[c for c in cols if c in df.columns]]
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_num(v, digits)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _relative(path: str, spec: Any) -> str:
    """An input path as the reader should see it: relative to the analysis spec's folder, or
    inside the peerstats package for the bundled examples (no machine's absolute path)."""
    import os
    from pathlib import Path

    base = spec.source.parent if getattr(spec, "source", None) is not None else Path.cwd()
    p = Path(path)
    if not p.is_absolute():  # the manifest's paths are relative to the analysis spec's folder
        p = base / p
    pkg = Path(__file__).resolve().parents[1]
    try:
        return "peerstats/" + p.resolve().relative_to(pkg).as_posix()
    except ValueError:
        pass
    try:
        return Path(os.path.relpath(p.resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return p.name


def _head(run: AnalysisRun) -> list[str]:
    """The title, the subtitle (with the SYNTHETIC DATA badge) and the navigation."""
    spec, trial, res = run.spec, run.trial, run.results
    ts = trial.spec
    t = res["trial"]
    title = spec.title or f"{ts.name}: analysis {spec.name}"
    parts: list[str] = []
    add = parts.append

    add(f"<h1>{_e(title)}</h1>")
    sub = f"{_e(ts.name)} \u00b7 analysis spec <code>{_e(spec.name)}</code>"
    if spec.version:
        sub += f" (SAP version {_e(spec.version)})"
    if t.get("synthetic"):
        sub += " \u00b7 <span class='badge'>SYNTHETIC DATA</span>"
    add(f"<p class='sub'>{sub}</p>")
    nav = [
        ("primary", "Primary result"),
        ("trial", "Trial"),
        ("consort", "CONSORT"),
        ("table1", "Table 1"),
        ("outcomes", "Outcomes"),
        *([("harms", "Harms")] if "harms" in run.html_tables else []),
        ("figures", "Figures"),
        *([("estimand", "Estimand and missing data")] if "missing_data" in res else []),
        *([("models", "Models")] if res["models"] else []),  # none when blinded (20.1)
        ("warnings", "Warnings"),
        ("provenance", "Provenance"),
    ]
    add("<nav>" + "".join(f"<a href='#{a}'>{_e(b)}</a>" for a, b in nav) + "</nav>")
    return parts


def _analysed_sentences(run: AnalysisRun) -> list[str]:
    """ "n analysed / N randomised (population)" of the primary effects (issue 20.4)."""
    from peerstats.pipeline._common import primary_records

    out = []
    for r in primary_records(run):
        if r.n_analysed is None or not r.n_randomised:
            continue
        pop = f" ({r.population})" if r.population else ""
        out.append(
            f"{r.comparison + ': ' if r.comparison else ''}n analysed / N randomised = "
            f"{int(r.n_analysed)} / {int(r.n_randomised)}{pop}."
        )
    return list(dict.fromkeys(out))


def _primary(run: AnalysisRun) -> list[str]:
    """The primary result in plain language (the headline) and how to read it."""
    from peerstats.pipeline._common import (
        outcome_label,
        primary_sentences,
    )

    spec, trial, res = run.spec, run.trial, run.results
    t = res["trial"]
    single = t["design"] == "single-arm"
    parts: list[str] = []
    add = parts.append

    add("<section id='primary' class='primary'>")
    add("<h2 style='margin-top:0;border:0'>Primary result</h2>")
    if res.get("blinded", {}).get("closed"):  # the closed DMC report (issue 20.1)
        names = "; ".join(res["blinded"]["arm_names"].values())
        add(f"<p class='result' data-closed>{_e(res['blinded']['closed'])}: {_e(names)}.</p>")
    elif res.get("blinded"):
        add(
            "<p class='result' data-blinded>Blinded report for the data-monitoring committee: "
            "the arms are coded (A, B) and every between-arm comparison (differences, "
            "p-values, effect sizes) is omitted.</p>"
        )
    for s in primary_sentences(run):
        add(f"<p class='result' data-primary-sentence>{_e(s)}</p>")
    if not res.get("blinded"):
        for s in _analysed_sentences(run):
            add(f"<p class='peerstats-note' data-analysed>{_e(s)}</p>")
    prim_model = res["models"].get(spec.primary_outcome, {})
    add(
        f"<p class='peerstats-note'>Primary outcome {_e(outcome_label(trial, spec, spec.primary_outcome))}"
        f" at {_e(spec.label('visits', spec.primary_visit))}; "
        + (  # no "model: , degrees of freedom;" when no model was fitted (blinded, issue 20.1)
            f"model: {_e(prim_model.get('model', ''))}, "
            f"{_e(prim_model.get('df_method', ''))} degrees of freedom; "
            if prim_model.get("model")
            else ""
        )
        + "estimates are "
        + (
            "descriptive by coded arm (blinded)."
            if res.get("blinded")
            else "changes from baseline (no control group)."
            if single
            else "adjusted differences (intervention \u2212 control) on each outcome's own "
            "scale; Cohen's d has the same sign, and an interval is written low to high on the "
            "scale of the words (an effect in the direction the words name is positive)."
        )
        + "</p>"
    )
    add("</section>")
    return parts


def _trial(run: AnalysisRun) -> list[str]:
    """The trial: design, registration, numbers, outcomes, multiplicity."""
    from peerstats.pipeline._common import (
        outcome_label,
    )

    spec, trial, res = run.spec, run.trial, run.results
    ts = trial.spec
    t = res["trial"]
    single = t["design"] == "single-arm"
    reg = (ts.raw.get("trial", {}) or {}).get("registration") if isinstance(ts.raw, dict) else None
    parts: list[str] = []
    add = parts.append

    add("<h2 id='trial'>Trial</h2>")
    if ts.description:  # the trial spec's own words (data-verbatim: not relabelled)
        add(f"<p data-verbatim data-spec-text>{_e(ts.description)}</p>")
    n_rand = ", ".join(f"{spec.label('arms', a)} {n}" for a, n in t["n_randomised"].items())
    add(
        _kv(
            [
                (
                    "Design",
                    _e(t["design"])
                    + (
                        f"; group-delivered: {_e(', '.join(t['group_delivered']))}"
                        if t["group_delivered"]
                        else ""
                    ),
                ),
                ("Registration", _e(reg) if reg else None),
                ("Assessed", t["n_assessed"]),
                ("Randomised" if not single else "Enrolled", _e(n_rand)),
                ("Visits", _e(", ".join(spec.label("visits", v) for v in t["visits"]))),
                (
                    "Primary outcome",
                    _e(
                        f"{outcome_label(trial, spec, spec.primary_outcome)} at "
                        f"{spec.label('visits', spec.primary_visit)}"
                    ),
                ),
                (
                    "Secondary outcomes",
                    _e(", ".join(outcome_label(trial, spec, o) for o in spec.secondary_outcomes))
                    or None,
                ),
                (
                    "Multiplicity",
                    _e(_ADJUST.get(spec.multiplicity, spec.multiplicity))
                    + " (p-values of the secondary outcomes, within visit)"
                    if not single and spec.secondary_outcomes
                    else None,
                ),
            ]
        )
    )
    if spec.description:
        add(f"<p data-verbatim data-spec-text>{_e(spec.description)}</p>")
    return parts


def _flow_and_table_one(run: AnalysisRun) -> list[str]:
    """The CONSORT flow figure and Table 1."""
    parts: list[str] = []
    add = parts.append

    add("<h2 id='consort'>Participant flow</h2>")
    add(_figure(run, "consort") or "<p>(not requested)</p>")
    add("<h2 id='table1'>Baseline characteristics (Table 1)</h2>")
    add(f"<div class='scroll'>{run.html_tables.get('table_one', '<p>(not requested)</p>')}</div>")
    return parts


def _outcomes(run: AnalysisRun) -> list[str]:
    """The outcome tables (one per outcome type), model means, feasibility, responders."""
    from peerstats.pipeline._common import (
        _responder_name,
        outcome_label,
    )

    spec, trial = run.spec, run.trial
    parts: list[str] = []
    add = parts.append

    add("<h2 id='outcomes'>Outcomes</h2>")
    if "outcomes" in run.html_tables:
        add(f"<div class='scroll'>{run.html_tables['outcomes']}</div>")
    elif "outcomes" in run.tables:
        add("<h3>Change from baseline (model-based, all visits)</h3>")
        add(
            _frame_html(
                run.tables["outcomes"],
                [
                    "outcome",
                    "visit",
                    "contrast",
                    "estimate",
                    "ci_lower",
                    "ci_upper",
                    "p_value",
                    "cohens_d",
                    "d_ci_lower",
                    "d_ci_upper",
                ],
            )
        )
    parts += _other_outcome_types(run)
    if "ls_means" in run.html_tables:
        add("<h3>Model-estimated means</h3>")
        add(f"<div class='scroll'>{run.html_tables['ls_means']}</div>")
    if "within_group_change" in run.html_tables:
        add("<h3>Within-group change (paired)</h3>")
        add(f"<div class='scroll'>{run.html_tables['within_group_change']}</div>")
    if "feasibility" in run.html_tables:
        add("<h3>Feasibility</h3>")
        add(f"<div class='scroll'>{run.html_tables['feasibility']}</div>")
    for r in spec.responders:
        key = f"responders_{_responder_name(r)}"
        if key in run.html_tables:
            at = f" at {_e(spec.label('visits', r.visit))}" if r.visit else ""
            add(f"<h3>Responders: {_e(outcome_label(trial, spec, r.outcome))}{at}</h3>")
            add(f"<div class='scroll'>{run.html_tables[key]}</div>")
    return parts


def _harms(run: AnalysisRun) -> list[str]:
    """Adverse events by arm."""
    parts: list[str] = []
    add = parts.append

    if "harms" in run.html_tables:
        add("<h2 id='harms'>Harms</h2>")
        add(f"<div class='scroll'>{run.html_tables['harms']}</div>")
    return parts


def _other_outcome_types(run: AnalysisRun) -> list[str]:
    """The tables of the binary, count ... outcomes (one per type) and their analysed n."""
    from peerstats.pipeline._common import effect_sentence

    parts = []
    for name in run.html_tables:
        if name.startswith("outcomes_"):
            kind = name.split("_", 1)[1]
            parts.append(f"<div class='scroll'>{run.html_tables[name]}</div>")
            recs = [r for r in run.records if r.outcome_type == kind]
            parts += [f"<p data-effect-sentence>{_e(effect_sentence(run, r))}</p>" for r in recs]
    labels = {r.outcome: r.outcome_label or r.outcome for r in run.records}
    flows = run.results.get("consort_outcomes") or {}
    if flows:
        parts.append("<h3>Analysed per outcome (CONSORT)</h3>")
        rows = []
        for o, arms in flows.items():
            for arm, c in arms.items():
                why = "; ".join(f"{k} {v}" for k, v in c["not_analysed"].items()) or "none"
                rows.append(
                    f"<tr><td>{_e(labels.get(o, o))}</td>"
                    f"<td>{_e(run.spec.label('arms', arm))}</td><td>{c['randomised']}</td>"
                    f"<td>{c['analysed']}</td><td style='text-align:left'>{_e(why)}</td></tr>"
                )
        parts.append(
            "<div class='scroll'><table data-table='consort_outcomes'><thead><tr><th>Outcome"
            "</th><th>Arm</th><th>Randomised</th><th>Analysed</th><th>Not analysed (reason)"
            f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return parts


def _figures_section(run: AnalysisRun) -> list[str]:
    """Forest plot, trajectories, change, attendance, diagnostics."""
    parts: list[str] = []
    add = parts.append

    add("<h2 id='figures'>Figures</h2>")
    add(_figure(run, "forest"))
    add(_figure(run, "forest_ratios"))
    traj = [n for n in run.figures if n.startswith("trajectory_")]
    if traj:
        add("<div class='grid'>" + "".join(_figure(run, n) for n in traj) + "</div>")
    add("<div class='grid'>" + _figure(run, "change") + _figure(run, "attendance") + "</div>")
    add(_figure(run, "diagnostics"))
    return parts


def _estimand(run: AnalysisRun) -> list[str]:
    """The estimand and missing-data section (:mod:`peerstats.pipeline.sensitivity`)."""
    parts: list[str] = []
    add = parts.append

    from peerstats.pipeline.sensitivity import render_section

    add(render_section(run))
    return parts


def _economics(run: AnalysisRun) -> list[str]:
    """The cost-effectiveness section (:mod:`peerstats.pipeline.economics`), when specified."""
    from peerstats.pipeline.economics import render_section

    return [render_section(run)]


def _mechanisms(run: AnalysisRun) -> list[str]:
    """Heterogeneity and mechanisms (:mod:`peerstats.pipeline.mechanisms`)."""
    from peerstats.pipeline.mechanisms import render_section

    return render_section(run)


#: Degrees-of-freedom methods in words for the Model details appendix (results.json keeps codes).
_DF_WORDS = {
    "satterthwaite": "Satterthwaite",
    "kenward-roger": "Kenward-Roger",
    "kenward-roger-linear": "Kenward-Roger (linear covariance, as SAS kr(linear))",
    "kenward-roger-mmrm": "Kenward-Roger (as R mmrm)",
    "residual": "residual",
    "between-within": "between-within",
    "asymptotic": "asymptotic (normal)",
}


def _model_pairs(m: dict, formula: str) -> list[tuple[str, Any]]:
    """The key facts of one model as (label, HTML) pairs."""
    from peerstats.pipeline._sensitivity_run import _MODEL_NAMES

    df_words = _DF_WORDS.get(str(m["df_method"]), str(m["df_method"]))
    converged = {True: "yes", False: "no"}.get(m["converged"], m["converged"])
    pairs = [
        ("Model", _e(_MODEL_NAMES.get(str(m["model"]), m["model"]))),
        ("Formula", _e(formula)),
        ("Covariance", _e(m["covariance"])),
        ("Estimation / df", _e(f"{m['method'].upper()} / {df_words}")),
        ("Converged", _e(converged)),
        ("Observations", _e(f"{m['n_obs']} from {m['n_subjects']} participants")),
        (
            "Log-likelihood / AIC",
            _e(f"{m['loglik']:z.3f} / {m['aic']:z.3f}") if "loglik" in m else None,
        ),
    ]
    if "icc" in m:
        extra = f"{m['icc']:z.4f}"
        if m.get("design_effect") is not None:
            extra += (
                f"; design effect {m['design_effect']:z.3f} ({m['n_groups']} groups, "
                f"mean size {m['mean_group_size']:z.2f})"
            )
        pairs.append(("Delivery-group ICC", _e(extra)))
    return pairs


_COEF_HEADERS = {
    "term": "Term",
    "estimate": "Estimate",
    "std_error": "SE",
    "statistic": "Statistic",
    "p_value": "p",
    "ci_lower": "CI lower",
    "ci_upper": "CI upper",
}


def _models(run: AnalysisRun) -> list[str]:
    """Each outcome's model: formula, covariance, fit, coefficients, notes; in words (issue 21:
    the exact formulas and term codes are in ``results.json``, never in the report's text)."""
    from peerstats.pipeline._common import coefficients, outcome_label
    from peerstats.pipeline._display import display_labels, term_label
    from peerstats.pipeline.report_words import formula_words, notes_words

    spec, trial, res = run.spec, run.trial, run.results
    parts: list[str] = []
    add = parts.append
    if not res["models"]:  # blinded: no model is fitted, so no empty section (issue 20.1)
        return parts
    lab = display_labels(trial, spec)
    codes = {**lab.covariates, **lab.outcomes}
    add("<h2 id='models'>Model details</h2>")
    add(
        "<p class='peerstats-note'>Formulas and terms are shown in words; the exact formulas, "
        "with the data's column names, are in <code>results.json</code> "
        "(<code>models</code>).</p>"
    )
    for o, m in res["models"].items():
        name = outcome_label(trial, spec, o)
        add(f"<h3>{_e(name)}</h3>")
        add(_kv(_model_pairs(m, formula_words(m["formula"], lab, outcome=name))))
        coef = coefficients(run.fits[o].fit, spec.model.level)
        if "term" in coef.columns:  # the term in words only (issue 21)
            coef["term"] = [term_label(str(t), lab) for t in coef["term"]]
        coef = coef.rename(columns=_COEF_HEADERS)
        add(_frame_html(coef, digits=4))
        if m["notes"]:
            add(
                "<ul>"
                + "".join(f"<li>{_e(notes_words(n, codes))}</li>" for n in m["notes"])
                + "</ul>"
            )
    return parts


def _warnings(run: AnalysisRun) -> list[str]:
    """Validation and model warnings; outcome and covariate columns by their labels (issue 21;
    ``results.json`` keeps the messages as written)."""
    from peerstats.pipeline._display import display_labels
    from peerstats.pipeline.report_words import notes_words

    res = run.results
    parts: list[str] = []
    add = parts.append

    add("<h2 id='warnings'>Validation and model warnings</h2>")
    add("<div data-verbatim>")
    if res.get("warnings"):
        lab = display_labels(run.trial, run.spec)
        codes = {**lab.covariates, **lab.outcomes}
        items = "".join(f"<li>{_e(notes_words(str(w), codes))}</li>" for w in res["warnings"])
        add(f"<ul class='warn'>{items}</ul>")
    else:
        add("<p>None: the data passed every validation check and every model fitted cleanly.</p>")
    add("</div>")
    return parts


_INPUT_WORDS = {
    "analysis_spec": "Analysis spec",
    "trial_spec": "Trial spec",
    "participants": "Participants",
    "assessments": "Assessments",
    "sessions": "Sessions",
    "adverse_events": "Adverse events",
    "redcap_dictionary": "REDCap data dictionary",
}


def _provenance(run: AnalysisRun) -> list[str]:
    """Inputs' SHA-256, versions, platform, seed."""
    spec = run.spec
    parts: list[str] = []
    add = parts.append

    man = run.manifest
    add("<h2 id='provenance'>Provenance</h2>")
    add("<div data-verbatim>")
    add(
        "<p>Every number above is in <code>results.json</code> (unrounded); "
        "<code>manifest.json</code> records the SHA-256 of each input, the versions and the "
        "time of this run (kept out of this page, which is byte-identical when re-run). "
        "Re-run with <code>peerstats run</code> and compare with <code>peerstats check</code>.</p>"
    )
    rows = "".join(
        f"<tr><td>{_e(_INPUT_WORDS.get(k, k))}</td><td style='text-align:left'><code>{_e(v['sha256'][:16])}\u2026</code></td>"
        f"<td style='text-align:left'>{_e(_relative(v['path'], spec))}</td></tr>"
        for k, v in man.get("inputs", {}).items()
    )
    add(
        f"<div class='scroll'><table><thead><tr><th>Input</th><th>SHA-256</th><th>File</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )
    vers = man.get("versions", {})
    add(
        _kv(
            [
                ("peerstats", _e(vers.get("peerstats", ""))),
                ("Python", _e(vers.get("python", ""))),
                (
                    "Packages",
                    _e(
                        ", ".join(
                            f"{k} {v}" for k, v in vers.items() if k not in ("peerstats", "python")
                        )
                    ),
                ),
                ("Platform", _e(" ".join(str(v) for v in man.get("platform", {}).values()))),
                ("Seed", _e(man.get("seed", ""))),
            ]
        )
    )
    add("</div>")
    return parts


SECTIONS = (
    _head,
    _primary,
    _trial,
    _flow_and_table_one,
    _outcomes,
    _harms,
    _figures_section,
    _estimand,
    _economics,
    _mechanisms,
    _models,
    _warnings,
    _provenance,
)
"""The report's parts in order; each is a function of the run returning HTML fragments."""


def render_report(run: AnalysisRun) -> str:
    """The report of ``run`` as one HTML document (a string): the :data:`SECTIONS` in order."""
    spec, ts = run.spec, run.trial.spec
    title = spec.title or f"{ts.name}: analysis {spec.name}"
    parts = [p for section in SECTIONS for p in section(run)]
    body = "\n".join(p for p in parts if p)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )
