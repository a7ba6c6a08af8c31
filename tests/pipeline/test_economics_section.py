"""The cost-effectiveness section (issue 18) of the PEER example: the spec's ``economics:``
block -> results.json ``economics``, tables, plane and CEAC, and the report section.

The numbers are recomputed here from the raw CSV files of the bundled SYNTHETIC trial with the
public functions (eq5d, qalys, resource_costs, cost_effectiveness), so the step is shown to
arrange, not compute: same arithmetic, 1e-9 relative. The public functions themselves are
validated against R in tests/economics.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_support import ANALYSES

import peerstats
from peerstats import datasets
from peerstats.exceptions import SpecError


def _independent() -> peerstats.economics.CostEffectiveness:
    eco = yaml.safe_load((ANALYSES / "peer_recovery.yaml").read_text())["economics"]
    folder = datasets.path("peer_recovery").parent
    a = pd.read_csv(folder / "assessments.csv")
    p = pd.read_csv(folder / "participants.csv")
    s = pd.read_csv(folder / "sessions.csv")
    p = p[p["randomised"] == 1].set_index("id")
    a["day"] = a["visit"].map(eco["visit_days"])
    a["u"] = peerstats.eq5d(a, value_set=eco["value_set"], columns=eco["dimensions"])
    q = peerstats.qalys(a, subject="id", utility="u", time="day")
    table = pd.DataFrame(eco["unit_costs"])
    items = list(table["item"])
    base = a["visit"] == "baseline"
    c = peerstats.resource_costs(a.loc[~base, ["id", "day", *items]], unit_costs=table,
                                 subject="id", time="day")  # fmt: skip
    c0 = peerstats.resource_costs(a.loc[base, ["id", *items]], unit_costs=table, subject="id")
    sessions = s.groupby("id")["attended"].sum().reindex(p.index).fillna(0) * eco["session_cost"]
    d = p[["arm", "site", "group"]].join(q).join(c["total"]).join(c0["total"].rename("c0"))
    d["total"] = d["total"] + sessions
    d = d.dropna(subset=["baseline_utility", "c0", "qaly", "total"])
    return peerstats.cost_effectiveness(
        d, cost="total", effect="qaly", arm="arm", reference="usual",
        covariates={"cost": ["c0", "site"], "effect": ["baseline_utility", "site"]},
        method="bootstrap", n_boot=eco["n_boot"], wtp=eco["wtp"], seed=179, cluster="group",
    )  # fmt: skip


def test_economics_results_recomputed_from_the_raw_files(example_runs):
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text())
    eco = res["economics"]
    ours = _independent()
    assert eco["n_analysed"] == ours.n and eco["currency"] == "DKK"
    for k in ("cost", "effect"):
        for col in ("estimate", "std_error", "ci_lower", "ci_upper"):
            assert eco["incremental"][k][col] == pytest.approx(
                ours.incremental.loc[k, col], rel=1e-9
            )
    got = pd.DataFrame(eco["nmb"]).T.astype(float)
    np.testing.assert_allclose(got[["estimate", "prob_ce"]].to_numpy(),
                               ours.nmb[["estimate", "prob_ce"]].to_numpy(), rtol=1e-9)  # fmt: skip


def test_report_has_the_cost_effectiveness_section(example_runs):
    folder = example_runs["peer_recovery"]
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "<h2 id='cost-effectiveness'>Cost-effectiveness</h2>" in html
    assert 'data-figure="ce_plane"' in html and 'data-figure="ceac"' in html
    assert "data-table='economics_nmb'" in html
    assert (folder / "figures" / "ceac.svg").exists()
    costs = pd.read_csv(folder / "tables" / "economics_costs.csv")
    assert {"intervention", "total", "qaly"} <= set(costs.columns)


def test_examples_without_economics_have_no_section(example_runs):
    html = (example_runs["icbt_peer"] / "report.html").read_text(encoding="utf-8")
    assert "cost-effectiveness" not in html
    assert "economics" not in json.loads((example_runs["icbt_peer"] / "results.json").read_text())


def test_economics_block_is_checked_by_the_schema():
    from peerstats.pipeline import read_analysis_spec

    raw = yaml.safe_load((ANALYSES / "peer_recovery.yaml").read_text())
    raw["trial"] = {"dataset": "peer_recovery"}
    del raw["economics"]["wtp"]
    raw["economics"]["unit_costs"][0]["unit_cost"] = -1
    with pytest.raises(SpecError) as err:
        read_analysis_spec(raw)
    assert "wtp" in str(err.value) and "unit_cost" in str(err.value)
