"""The report section "Heterogeneity and mechanisms" (issue 19) from the analysis spec's
``subgroups:``, ``mediation:`` and ``multiplicity: strategy:`` blocks.

The numbers are the public API's (validated in tests/effects/ against R); here: the blocks reach
results.json, tables, figures and the report, and bad blocks fail clearly. Data: the bundled
SYNTHETIC trial social_inclusion.
"""

from __future__ import annotations

import numpy as np
import pytest

from peerstats.exceptions import SpecError
from peerstats.pipeline import run_analysis

BASE = {
    "analysis": {"name": "mechanisms"},
    "trial": {"dataset": "social_inclusion"},
    "primary": {"outcome": "sis", "visit": "m8"},
    "secondary": {"outcomes": ["empowerment"]},
    "tables": ["outcomes"],
    "figures": ["forest"],
}
STRATEGY = {
    "method": "fixed_sequence",
    "hypotheses": [{"outcome": "sis", "visit": "m8"}, {"outcome": "empowerment", "visit": "m8"}],
}


@pytest.fixture(scope="module")
def run():
    spec = {
        **BASE,
        "subgroups": {"by": ["gender"], "sites": True},
        "mediation": {"mediator": {"outcome": "empowerment", "visit": "m4"},
                      "outcome": {"outcome": "sis", "visit": "m8"}, "sims": 200, "seed": 3},
        "multiplicity": {"method": "holm", "strategy": STRATEGY},
    }
    return run_analysis(spec)


def test_results_tables_figures_and_report(run):
    res = run.results["heterogeneity_and_mechanisms"]
    assert set(res) == {"subgroups", "mediation", "multiplicity"}
    assert res["subgroups"]["n_tested"] == 1 and "exploratory" in res["subgroups"]["warning"]
    assert {"subgroups", "site_effects", "mediation", "multiplicity"} <= set(run.tables)
    assert {"subgroups_forest", "site_forest", "mediation_sensitivity"} <= set(run.figures)
    html = run.report_html
    assert "Heterogeneity and mechanisms" in html and "interaction" in html
    # fixed sequence on the records' own p-values: running maximum in the order given
    recs = {r.outcome: r.p_value for r in run.records if str(r.visit) == "m8"}
    got = run.tables["multiplicity"]["adjusted_p"].to_numpy()
    np.testing.assert_allclose(got, np.maximum.accumulate([recs["sis"], recs["empowerment"]]))


def test_no_blocks_no_section():
    run = run_analysis(BASE)
    assert "heterogeneity_and_mechanisms" not in run.results
    assert "Heterogeneity and mechanisms" not in run.report_html


def test_strategy_naming_no_effect_fails():
    bad = {**STRATEGY, "hypotheses": [{"outcome": "sis", "visit": "m12"}]}
    with pytest.raises(SpecError, match="matches 0 effects"):
        run_analysis({**BASE, "multiplicity": {"strategy": bad}})


def test_schema_rejects_unknown_subgroup_key():
    with pytest.raises(SpecError):
        run_analysis({**BASE, "subgroups": {"by": ["gender"], "split_at_median": True}})
