"""Table 1 against hand-computed values."""

import math
import types

import numpy as np
import pandas as pd
import pytest

from peerstats.describe.table_one import standardised_difference, table_one


def _trial():
    part = pd.DataFrame(
        {
            "subject": [f"s{i}" for i in range(9)],
            "arm": ["usual"] * 4 + ["peer"] * 4 + [None],
            "randomised": [1] * 8 + [0],
            "age": [20.0, 30.0, 40.0, np.nan, 25.0, 35.0, 45.0, 55.0, 99.0],
            "gender": ["w", "w", "m", "m", "w", "m", "m", "m", "w"],
        }
    )
    spec = {
        "arms": {"levels": ["usual", "peer"], "reference": "usual"},
        "covariates": ["age", "gender"],
    }
    return types.SimpleNamespace(participants=part, assessments=None, spec=spec)


def _val(t, var, arm, stat, level=None):
    d = t.data
    d = d[(d.variable == var) & (d.arm == arm) & (d.statistic == stat)]
    d = d[d.level.isna()] if level is None else d[d.level == level]
    return d.value.iloc[0]


def test_numeric_summaries_by_hand():
    t = table_one(_trial())
    # usual ages 20, 30, 40 (one missing): mean 30, SD 10; peer 25..55: mean 40, SD sqrt(166.67)
    assert _val(t, "n", "usual", "n") == 4  # the non-randomised row is left out
    assert _val(t, "age", "usual", "mean") == pytest.approx(30.0)
    assert _val(t, "age", "usual", "sd") == pytest.approx(10.0)
    assert _val(t, "age", "peer", "sd") == pytest.approx(math.sqrt(500 / 3))
    assert _val(t, "age", "usual", "missing") == 1
    assert _val(t, "age", "Overall", "mean") == pytest.approx(250 / 7)
    # SMD = (40 - 30) / sqrt((100 + 166.67) / 2)
    assert _val(t, "age", "peer", "smd") == pytest.approx(10 / math.sqrt((100 + 500 / 3) / 2))


def test_categorical_counts_and_smd_by_hand():
    t = table_one(_trial())
    assert _val(t, "gender", "usual", "count", "w") == 2
    assert _val(t, "gender", "peer", "percent", "m") == pytest.approx(75.0)
    # two levels: |p1 - p0| / sqrt((p1 q1 + p0 q0) / 2) with p = share of "w" (levels sorted m, w)
    p1, p0 = 0.25, 0.5
    expected = abs(p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert _val(t, "gender", "peer", "smd") == pytest.approx(expected)


def test_median_iqr_matches_numpy_and_display():
    t = table_one(_trial(), nonnormal=["age"])
    q = np.percentile([25.0, 35.0, 45.0, 55.0], [25, 50, 75])
    assert _val(t, "age", "peer", "median") == pytest.approx(q[1])
    row = t.display[t.display.Characteristic.str.startswith("age")].iloc[0]
    assert row["peer (n = 4)"] == f"{q[1]:.1f} [{q[0]:.1f}, {q[2]:.1f}]"


def test_small_cell_suppression():
    t = table_one(_trial(), suppress_below=3)
    d = t.display.set_index("Characteristic")
    assert d.loc["  w", "usual (n = 4)"] == "<3"  # 2 of 4
    # peer: w 1 (<3) and m 3 of n = 4: showing m would give w = 4 - 3, so m is suppressed too
    assert d.loc["  w", "peer (n = 4)"] == "<3"
    assert d.loc["  m", "peer (n = 4)"] == "suppressed"
    assert d.loc["  missing", "usual (n = 4)"] == "<3"
    assert _val(t, "gender", "usual", "count", "w") == 2  # raw numbers stay in .data


def test_multilevel_smd_against_formula():
    rng = np.random.default_rng(0)
    a = pd.Series(rng.choice(list("abc"), 200, p=[0.2, 0.3, 0.5]))
    b = pd.Series(rng.choice(list("abc"), 200, p=[0.4, 0.3, 0.3]))
    pa = a.value_counts(normalize=True).sort_index().to_numpy()[1:]
    pb = b.value_counts(normalize=True).sort_index().to_numpy()[1:]
    S = (np.diag(pa) - np.outer(pa, pa) + np.diag(pb) - np.outer(pb, pb)) / 2
    expected = math.sqrt((pa - pb) @ np.linalg.inv(S) @ (pa - pb))
    assert standardised_difference(a, b, categorical=True) == pytest.approx(expected)


def test_renders_to_all_formats():
    t = table_one(_trial())
    assert "| Characteristic" in t.to_markdown()
    assert "<table" in t.to_html() and "<td>age, mean (SD)</td>" in t.to_html()
    assert r"\toprule" in t.to_latex() and r"n (\%)" in t.to_latex()


def test_suppressed_arm_cell_cannot_be_recovered_from_overall():
    """usual: w 5, m 1 (n 6); peer: w 5, m 5; Overall m 6 = 1 + 5 would reveal usual m, so
    Overall m is hidden, and so is one more Overall cell (else 16 - 10 recovers it)."""
    part = pd.DataFrame({
        "subject": [f"s{i}" for i in range(16)],
        "arm": ["usual"] * 6 + ["peer"] * 10,
        "randomised": 1,
        "gender": ["w"] * 5 + ["m"] + ["w"] * 5 + ["m"] * 5,
    })
    trial = types.SimpleNamespace(
        participants=part, assessments=None,
        spec={"arms": {"levels": ["usual", "peer"], "reference": "usual"}, "covariates": ["gender"]},
    )
    d = table_one(trial, suppress_below=3).display.set_index("Characteristic")
    assert d.loc["  m", "usual (n = 6)"] == "<3"
    assert d.loc["  w", "usual (n = 6)"] == "suppressed"  # 6 - 5 would give m
    assert d.loc["  m", "Overall (n = 16)"] == "suppressed"
    assert d.loc["  w", "Overall (n = 16)"] == "suppressed"
    assert d.loc["  m", "peer (n = 10)"] == "5 (50.0%)"
