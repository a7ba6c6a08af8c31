"""Responder analysis: RC index, categories, RD and NNT by hand and by statsmodels."""

import math
import types

import numpy as np
import pandas as pd
import pytest

from peerstats.describe.responder import reliable_change, responder_analysis, risk_difference


def test_reliable_change_formula():
    rc = reliable_change([10.0], [4.0], sd=5.0, reliability=0.9)
    assert rc[0] == pytest.approx(-6.0 / (5.0 * math.sqrt(2) * math.sqrt(0.1)))


def _trial():
    # GAD-7 (lower is better), sd fixed to 4, r = 0.92 -> SE_diff = 4 * sqrt(2) * sqrt(0.08) = 1.6
    # reliable change needs |delta| > 1.96 * 1.6 = 3.136
    base = {"u1": 12, "u2": 14, "u3": 9, "u4": 11, "p1": 15, "p2": 12, "p3": 10, "p4": 13}
    post = {"u1": 11, "u2": 10, "u3": 13, "u4": 11, "p1": 8, "p2": 7, "p3": 9, "p4": 9}
    # usual: u2 improved (-4) but 10 is not < 10 -> not recovered; u3 deteriorated (+4)
    # peer: p1 (-7, 15 -> 8 recovered), p2 (-5, 12 -> 7 recovered), p4 (-4, 13 -> 9 recovered)
    rows = []
    for s in base:
        arm = "usual" if s.startswith("u") else "peer"
        rows += [
            {"subject": s, "arm": arm, "visit": "pre", "gad7": base[s]},
            {"subject": s, "arm": arm, "visit": "post", "gad7": post[s]},
        ]
    part = pd.DataFrame({"subject": list(base), "arm": [s[0] for s in base]})
    spec = {
        "arms": {"levels": ["usual", "peer"], "reference": "usual"},
        "visits": ["pre", "post"],
        "outcomes": {"gad7": {"instrument": "GAD-7"}},
    }
    return types.SimpleNamespace(participants=part, assessments=pd.DataFrame(rows), spec=spec)


def test_categories_by_hand():
    t = responder_analysis(
        _trial(), "gad7", sd=4.0, reliability=0.92, cutoff=10, higher_is_better=False
    )
    d = t.data.set_index(["arm", "category"])
    assert d.loc[("usual", "improved"), "count"] == 1
    assert d.loc[("usual", "deteriorated"), "count"] == 1
    assert d.loc[("usual", "recovered"), "count"] == 0
    assert d.loc[("peer", "improved"), "count"] == 3
    assert d.loc[("peer", "recovered"), "count"] == 3
    c = t.comparison.set_index("category")
    assert c.loc["improved", "risk_difference"] == pytest.approx(3 / 4 - 1 / 4)
    assert c.loc["improved", "nnt"] == pytest.approx(2.0)


def test_defaults_from_the_instrument_definition():
    t = responder_analysis(_trial(), "gad7", sd=4.0)
    # GAD-7 definition: alpha 0.92, caseness 10, lower is better
    assert t.parameters == {"sd": 4.0, "reliability": 0.92, "cutoff": 10, "higher_is_better": False}


def test_risk_difference_matches_statsmodels_newcombe():
    from statsmodels.stats.proportion import confint_proportions_2indep

    r = risk_difference(30, 50, 20, 50)
    lo, hi = confint_proportions_2indep(30, 50, 20, 50, method="newcomb", compare="diff")
    assert (r["rd_ci_lower"], r["rd_ci_upper"]) == pytest.approx((lo, hi))
    assert r["nnt"] == pytest.approx(5.0)
    assert (r["nnt_ci_lower"], r["nnt_ci_upper"]) == pytest.approx((1 / hi, 1 / lo))
    assert r["nnt_ci_through_infinity"] == bool(lo < 0 < hi)
    assert np.isfinite(r["nnt"])


def test_nnt_display_names_benefit_and_harm():
    """Altman (1998): NNT = 1/|RD|, labelled by direction; values worked out by hand."""
    from peerstats.describe.responder import _nnt_label

    assert _nnt_label("improved", 1 / 0.143) == "NNTB 7.0"       # 14.3 points more improvement
    assert _nnt_label("deteriorated", -1 / 0.043) == "NNTB 23.3"  # 4.3 points less deterioration
    assert _nnt_label("deteriorated", 1 / 0.05) == "NNTH 20.0"
    assert _nnt_label("improved", -1 / 0.10) == "NNTH 10.0"
    assert _nnt_label("recovered", float("inf")) == "\u221e"


def test_unknown_visit_is_an_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'Post' is not a post-baseline visit; did you mean 'post'"):
        responder_analysis(_trial(), "gad7", visit="Post", sd=4.0)
