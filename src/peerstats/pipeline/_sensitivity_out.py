"""The report part of the estimand and sensitivity analyses (:mod:`.sensitivity`): the
comparison table, the sensitivity forest, the tipping-point figures and the section "Estimand
and missing data". Formatting of computed numbers only."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["render_section"]

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


def _tipping_figure(run: Any, s: Any, tp: Any, spec: Any, olabel: str) -> None:
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
    return f"{x:z.{k}f}"


def _p(p: float) -> str:
    if p is None or p != p:
        return ""
    return "< 0.001" if p < 0.001 else f"{p:z.3f}"


def _n_of(n: Any, n_rand: Any) -> str:
    """"n analysed / N randomised" (either part left out when unknown)."""

    def ok(x: Any) -> bool:
        return x is not None and not (isinstance(x, float) and x != x)

    if not ok(n):
        return ""
    return f"{int(n)} / {int(n_rand)}" if ok(n_rand) else str(int(n))


def _table_html(table: pd.DataFrame, spec: Any) -> str:
    e = html.escape
    t = table[table["visit"] == spec.primary_visit]
    head = "".join(
        f"<th>{e(c)}</th>"
        for c in (
            "Analysis",
            "Contrast",
            "Population",
            "Analysis model",
            "Missing data",
            "n analysed / N randomised",
            "Estimate",
            f"{spec.model.level:.0%} CI",
            "p",
        )
    )
    body = []
    for r in t.itertuples(index=False):
        n = _n_of(r.n, getattr(r, "n_randomised", None))
        body.append(
            "<tr>"
            f"<td>{e(r.label)}</td><td style='text-align:left'>{e(_contrast_label(r.contrast, spec))}</td>"
            f"<td style='text-align:left'>{e(r.population)}</td>"
            f"<td style='text-align:left'>{e(getattr(r, 'model', '') or '')}</td>"
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


def _estimand_html(est: dict) -> list[str]:
    """The estimand's attributes and its intercurrent events (with strategies) as HTML."""
    e = html.escape
    pairs = [
        ("Population", est.get("population")),
        ("Treatment", est.get("treatment")),
        ("Variable", est.get("variable")),
        ("Population-level summary", est.get("summary")),
    ]
    parts = [
        "<dl class='kv'>"
        + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs if v)
        + "</dl>"
    ]
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
    return parts


def _missing_html(mt: pd.DataFrame, spec: Any) -> list[str]:
    """Missing / randomised (fraction) per arm and visit."""
    e = html.escape
    visits = list(dict.fromkeys(mt["visit"]))
    head = "<th>Arm</th>" + "".join(f"<th>{e(spec.label('visits', v))}</th>" for v in visits)
    body = []
    for arm, sub in mt.groupby("arm", sort=False):
        cells = "".join(
            f"<td>{int(r.n_missing)} / {int(r.n_randomised)} ({r.fraction_missing:.0%})</td>"
            for r in sub.itertuples(index=False)
        )
        body.append(f"<tr><td>{e(spec.label('arms', arm))}</td>{cells}</tr>")
    return [
        "<h3>Missing outcomes per arm and visit</h3>",
        "<div class='scroll'><table data-table='missing_data'><caption>Missing / randomised "
        f"(fraction missing)</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table></div>",
    ]


def _tipping_sentences(res: dict, spec: Any) -> list[str]:
    """Where the conclusion changes on each one-arm delta grid, in words."""
    e = html.escape
    parts = []
    for key, tp in (res.get("tipping_point") or {}).items():
        if "tipping_delta" not in tp:
            continue
        d = tp["tipping_delta"]
        arm = spec.label("arms", tp["arms"][0])
        at = e(spec.label("visits", tp["visit"]))
        if d is None or d != d:
            txt = (
                f"Tipping point ({e(key)}): the conclusion at {at} does not change anywhere on "
                f"the delta grid of {e(arm)}."
            )
        else:
            txt = (
                f"Tipping point ({e(key)}): the conclusion at {at} changes when the imputed "
                f"values of {e(arm)} are shifted by {d:z.2f} points."
            )
        if tp.get("model"):  # the analysis model of each grid cell, in words (issue 20.3)
            txt += f" Analysis model: {e(tp['model'])}."
        parts.append(f"<p data-tipping>{txt}</p>")
    return parts


def render_section(run: Any) -> str:
    """The report section "Estimand and missing data" (empty without estimand/sensitivity)."""
    from peerstats.pipeline._common import _figure

    spec, res = run.spec, run.results
    if "missing_data" not in res:
        return ""
    e = html.escape
    parts = ["<h2 id='estimand'>Estimand and missing data</h2>"]
    if res.get("estimand") is not None:
        parts += _estimand_html(res["estimand"])
    parts.append("<h3>The missing-data assumption</h3>")
    parts += [f"<p data-assumption>{e(t)}</p>" for t in _assumption_words(run)]
    mt = run.tables.get("missing_data")
    if mt is not None:
        parts += _missing_html(mt, spec)
    if "sensitivity" in run.html_tables:
        parts.append("<h3>Primary and sensitivity analyses</h3>")
        parts.append(run.html_tables["sensitivity"])
    parts.append(_figure(run, "sensitivity_forest"))
    parts += [_figure(run, name) for name in run.figures if name.startswith("tipping_point")]
    parts += _tipping_sentences(res, spec)
    notes = res.get("sensitivity", {}).get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(parts)
