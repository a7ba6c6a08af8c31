"""Feasibility rates and within-group change against hand formulas, scipy and pingouin."""

import math
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from peerstats.describe.feasibility import feasibility, wilson_ci, within_group_change


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(7, 9), (0, 12), (30, 30), (44, 68)])
def test_wilson_matches_formula(k, n):
    assert wilson_ci(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-12)


def _single_arm():
    part = pd.DataFrame(
        {
            "subject": list("abcdefghij"),
            "randomised": [0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
            "eligible": [0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            "received": [None, None, 1, 1, 1, 1, 1, 1, 1, 0],
        }
    )
    pre = {"c": 12, "d": 15, "e": 9, "f": 14, "g": 11, "h": 16, "i": 10, "j": 13}
    post = {"c": 8, "d": 10, "e": 9, "f": 7, "g": 6, "h": 12, "i": np.nan}
    fu = {"c": 7, "d": 9, "f": 8}
    rows = [{"subject": s, "visit": "pre", "gad7": v} for s, v in pre.items()]
    rows += [{"subject": s, "visit": "post", "gad7": v} for s, v in post.items()]
    rows += [{"subject": s, "visit": "fu3", "gad7": v} for s, v in fu.items()]
    sessions = pd.DataFrame(
        [
            {"subject": s, "session": k, "attended": int(k <= m)}
            for s, m in {"c": 8, "d": 6, "e": 4, "f": 3, "g": 8, "h": 1, "i": 0}.items()
            for k in range(1, 9)
        ]
    )
    spec = {
        "design": "single-arm",
        "arms": {"levels": ["icbt"]},
        "visits": ["pre", "post", "fu3"],
        "outcomes": {"gad7": {}},
    }
    return types.SimpleNamespace(
        participants=part, assessments=pd.DataFrame(rows), sessions=sessions, spec=spec
    )


def test_feasibility_rates_by_hand():
    t = feasibility(_single_arm())
    d = t.data.set_index(["measure", "visit"])
    assert d.loc[("eligible", None), ["numerator", "denominator"]].tolist() == [9, 10]
    assert d.loc[("recruited", None), ["numerator", "denominator"]].tolist() == [8, 10]
    assert d.loc[("consented_of_eligible", None), ["numerator", "denominator"]].tolist() == [8, 9]
    assert d.loc[("started", None), ["numerator", "denominator"]].tolist() == [7, 8]
    assert d.loc[("retained", "post"), ["numerator", "denominator"]].tolist() == [6, 8]
    assert d.loc[("retained", "fu3"), ["numerator", "denominator"]].tolist() == [3, 8]
    # adherence: default threshold ceil(8 / 2) = 4 sessions; c, d, e, g attended >= 4;
    # j has no session rows and counts as attending none
    adh = t.data[t.data.measure.str.startswith("adherent")].iloc[0]
    assert adh.measure == "adherent (>= 4 of 8 sessions)"
    assert (adh.numerator, adh.denominator) == (4, 8)
    lo, hi = _wilson_by_hand(4, 8)
    assert (adh.ci_lower, adh.ci_upper) == pytest.approx((lo, hi))
    assert t.attendance["mean"].iloc[0] == pytest.approx((8 + 6 + 4 + 3 + 8 + 1 + 0 + 0) / 8)
    assert "50.0 (" in t.to_markdown()


def test_within_group_change_matches_scipy_and_pingouin():
    import pingouin as pg

    t = within_group_change(_single_arm(), "gad7")
    row = t.data.set_index("visit").loc["post"]
    pre = np.array([12, 15, 9, 14, 11, 16], float)
    post = np.array([8, 10, 9, 7, 6, 12], float)
    res = stats.ttest_rel(post, pre)
    assert row.n == 6
    assert row.statistic == pytest.approx(res.statistic)
    assert row.p_value == pytest.approx(res.pvalue)
    ci = res.confidence_interval()
    assert (row.ci_lower, row.ci_upper) == pytest.approx((ci.low, ci.high))
    diff = post - pre
    assert row.d_z == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert row.d_baseline == pytest.approx(diff.mean() / pre.std(ddof=1))
    pgres = pg.ttest(post, pre, paired=True)
    assert row.statistic == pytest.approx(pgres["T"].iloc[0])
    # noncentral-t CI of d_z: t at the limits has the right tail probabilities
    n = 6
    assert stats.nct.cdf(row.statistic, n - 1, row.d_z_ci_lower * math.sqrt(n)) == pytest.approx(
        0.975, abs=1e-6
    )
    assert stats.nct.cdf(row.statistic, n - 1, row.d_z_ci_upper * math.sqrt(n)) == pytest.approx(
        0.025, abs=1e-6
    )
