"""The cost-effectiveness step of a run (issue 18): the analysis spec's ``economics:`` block.

Utilities from the EQ-5D dimensions (:func:`peerstats.eq5d`), QALYs by area under the curve on
the spec's ``visit_days`` (:func:`peerstats.qalys`), costs from the resource-use columns times
the unit-cost table plus attended intervention sessions (:func:`peerstats.resource_costs`),
then :func:`peerstats.cost_effectiveness` adjusted for baseline utility (Manca et al. 2005) and
the strata. Results go to ``results.json`` ``economics``, the tables ``economics_costs`` and
``economics_nmb``, the figures ``ce_plane`` and ``ceac``, and the report section
"Cost-effectiveness". This module arranges; every number comes from ``peerstats.economics``.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import SpecError

__all__ = ["run_economics", "render_section"]


def _block(run: Any) -> dict | None:
    return (getattr(run.spec, "raw", None) or {}).get("economics")


def _participant_data(run: Any, eco: dict) -> pd.DataFrame:
    """One row per randomised participant: arm, strata, group, baseline utility, QALYs, costs."""
    from peerstats.economics import eq5d, qalys, resource_costs

    trial = run.trial
    a = trial.assessments
    dims = eco["dimensions"]
    missing = [c for c in dims.values() if c not in a.columns]
    if missing:
        raise SpecError(f"economics/dimensions: {missing} are not assessment columns")
    days = {str(k): float(v) for k, v in eco["visit_days"].items()}
    unknown = [v for v in a["visit"].astype(str).unique() if v not in days]
    if unknown:
        raise SpecError(f"economics/visit_days: no day for the visits {unknown}")
    a = a.assign(_day=a["visit"].astype(str).map(days))
    a["_utility"] = eq5d(a, value_set=eco["value_set"], columns=dims)
    q = qalys(a, subject="subject", utility="_utility", time="_day", date=eco.get("date"),
              discount_rate=eco.get("discount_rate", 0.0))  # fmt: skip
    table = pd.DataFrame(eco["unit_costs"])
    is_base = (a["visit"].astype(str) == str(trial.spec.baseline)).to_numpy()
    cols = ["subject", "_day", *table["item"]]
    rate = eco.get("discount_rate", 0.0)
    costs = resource_costs(a.loc[~is_base, cols], unit_costs=table, subject="subject",
                           time="_day", discount_rate=rate)  # fmt: skip
    base = resource_costs(a.loc[is_base, cols], unit_costs=table, subject="subject",
                          items=list(table["item"]))  # fmt: skip
    costs["baseline_cost"] = base["total"]
    p = trial.participants
    p = p.loc[p["randomised"].astype("Int64") == 1].set_index("subject")
    out = p[[c for c in ["arm", "group", *trial.spec.strata] if c in p.columns]].copy()
    out = out.join(q[["qaly", "baseline_utility"]]).join(costs)
    if eco.get("session_cost") is not None and trial.sessions is not None:
        s = trial.sessions
        n_att = s.groupby("subject")["attended"].sum()
        out["intervention"] = n_att.reindex(out.index).fillna(0.0) * float(eco["session_cost"])
        out["total"] = out["total"] + out["intervention"]
    return out


def run_economics(run: Any, progress: Any = None) -> None:
    """Compute the economic evaluation when the spec has an ``economics:`` block."""
    eco = _block(run)
    if eco is None:
        return
    import contextlib

    from peerstats.economics import cost_effectiveness

    step = progress.step("cost-effectiveness") if progress else contextlib.nullcontext()
    with step:
        data = _participant_data(run, eco)
        adjust = list(eco.get("covariates", run.trial.spec.strata))
        base_cost = eco.get("baseline_cost", False)
        covs = {"cost": (["baseline_cost"] if base_cost else []) + adjust,
                "effect": ["baseline_utility", *adjust]}  # fmt: skip
        need = ["baseline_utility", *(["baseline_cost"] if base_cost else [])]
        mi = eco.get("missing", "complete_case") == "multiple_imputation"
        method = eco.get("method", "bootstrap")
        res = cost_effectiveness(
            data.dropna(subset=need), cost="total", effect="qaly", arm="arm",
            covariates=covs, method=method, n_boot=int(eco.get("n_boot", 1000)),
            wtp=eco["wtp"], seed=run.spec.seed, reference=run.trial.spec.arms.reference,
            cluster="group" if method == "bootstrap" and "group" in data.columns else None,
            missing="error" if mi else "complete_case",
            n_imputations=int(eco.get("n_imputations", 20)) if mi else None,
        )  # fmt: skip
        _store(run, eco, data, res)


def _store(run: Any, eco: dict, data: pd.DataFrame, res: Any) -> None:
    from peerstats.pipeline._common import _svg

    cur = eco.get("currency", "")
    skip = ("arm", "group", "qaly", "baseline_utility", "baseline_cost", *run.trial.spec.strata)
    cats = [c for c in data.columns if c not in skip]
    cats = [c for c in cats if c != "total"] + ["total"]
    by_arm = data.groupby("arm", observed=True)[[*cats, "qaly"]].mean()
    by_arm.insert(0, "n", data.groupby("arm", observed=True)["qaly"].size())
    by_arm.index = [run.spec.label("arms", str(a)) for a in by_arm.index]
    run.tables["economics_costs"] = by_arm.rename_axis("arm").reset_index()
    run.tables["economics_nmb"] = res.nmb.reset_index()
    run.results["economics"] = {
        "currency": cur, "price_year": eco.get("price_year"), "value_set": eco["value_set"],
        "method": res.method, "n_analysed": res.n, "n_randomised": len(data),
        "baseline_cost": bool(eco.get("baseline_cost", False)),
        "estimator": res.details.get("estimator", res.method),
        "incremental": {k: {c: float(v) for c, v in r.items()}
                        for k, r in res.incremental.iterrows()},
        "covariance": res.covariance.to_numpy().tolist(), "icer": res.icer,
        "nmb": {str(w): {c: float(v) for c, v in r.items()} for w, r in res.nmb.iterrows()},
        "means_by_arm": {str(a): {c: float(v) for c, v in r.items()}
                         for a, r in zip(data.groupby("arm", observed=True).groups,
                                         by_arm.to_dict("records"))},
    }  # fmt: skip
    arms = run.trial.spec.arms.levels
    res = _relabel(res, run.spec.label("arms", arms[0]), run.spec.label("arms", arms[-1]))
    run.figures["ce_plane"] = _svg(res.plot_plane(currency=cur).figure)
    run.figure_captions["ce_plane"] = "Cost-effectiveness plane"
    run.figures["ceac"] = _svg(res.plot_ceac(currency=cur).figure)
    run.figure_captions["ceac"] = "Cost-effectiveness acceptability curve"


def _relabel(res: Any, ref: str, other: str) -> Any:
    import dataclasses

    return dataclasses.replace(res, arms=(ref, other))


def render_section(run: Any) -> str:
    """The report section "Cost-effectiveness" (empty without an ``economics:`` block)."""
    from peerstats.pipeline._common import _figure

    r = run.results.get("economics")
    if not r:
        return ""
    cur = html.escape(r["currency"] or "")
    inc = r["incremental"]
    e = html.escape
    lines = [
        "<h2 id='cost-effectiveness'>Cost-effectiveness</h2>",
        f"<p>Utilities: EQ-5D, value set {e(r['value_set'])}; QALYs by area under the curve; "
        f"costs in {cur}{' (' + str(r['price_year']) + ' prices)' if r['price_year'] else ''}. "
        f"Method: {e(r['method'])}; QALYs adjusted for baseline utility{', costs for baseline cost' if r.get('baseline_cost') else ''}, both for the strata; "
        f"{r['n_analysed']} of {r['n_randomised']} randomised participants analysed.</p>",
        f"<p>Incremental cost {inc['cost']['estimate']:,.0f} {cur} "
        f"({inc['cost']['ci_lower']:,.0f} to {inc['cost']['ci_upper']:,.0f}); incremental QALYs "
        f"{inc['effect']['estimate']:z.4f} ({inc['effect']['ci_lower']:z.4f} to "
        f"{inc['effect']['ci_upper']:z.4f}); {_icer_words(r, cur)}.</p>",
        "<h3>Mean costs and QALYs by arm</h3>",
        "<div class='scroll'>"
        + _table(run.tables["economics_costs"], "economics_costs")
        + "</div>",
        "<h3>Net monetary benefit by willingness to pay</h3>",
        "<div class='scroll'>" + _table(run.tables["economics_nmb"], "economics_nmb") + "</div>",
        "<div class='grid'>" + _figure(run, "ce_plane") + _figure(run, "ceac") + "</div>",
    ]
    return "\n".join(lines)


def _icer_words(r: dict, cur: str) -> str:
    """The ICER, or the quadrant in words when it is negative (a negative ratio misleads)."""
    dc, de = r["incremental"]["cost"]["estimate"], r["incremental"]["effect"]["estimate"]
    if dc <= 0 < de:
        return "the intervention is dominant (point estimates: less costly, more QALYs)"
    if de <= 0 <= dc:
        return "the intervention is dominated (point estimates: more costly, fewer QALYs)"
    return f"ICER {r['icer']:,.0f} {cur} per QALY"


def _table(df: pd.DataFrame, name: str) -> str:
    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            fmt = "{:,.0f}" if c in ("wtp", "n") else "{:,.3f}"
            shown[c] = shown[c].map(lambda v, f=fmt: "" if np.isnan(v) else f.format(v))
    return shown.to_html(index=False, escape=True).replace(
        "<table", f"<table data-table='{name}'", 1
    )
