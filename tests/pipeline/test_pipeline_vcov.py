"""`model.vcov` and `model.df: between-within` in an analysis spec reach the fit (issue 10.3/10.4).

Plumbing only: the numbers of the empirical covariances and between-within df are checked
against R in tests/models/test_sandwich_r.py. Here the pipeline's primary contrast must equal
what peerstats.analyze gives with the same options (relative 1e-9), and differ from the
model-based fit.
"""

from __future__ import annotations

import pytest

import peerstats
from peerstats.exceptions import SpecError
from peerstats.pipeline.run import run_analysis

BASE = {
    "analysis": {"name": "x"},
    "trial": {"dataset": "icbt_peer"},
    "primary": {"outcome": "gad7", "visit": "post"},
    "figures": [],
    "tables": ["outcomes"],
}


def _contrast(model: dict) -> dict:
    res = run_analysis({**BASE, "model": model}).results["primary"]["contrasts"]
    return res["icbt_peer - icbt"]


def test_vcov_and_between_within_reach_the_fit():
    got = _contrast({"type": "auto", "vcov": "empirical", "df": "between-within"})
    model = _contrast({"type": "auto"})
    trial = peerstats.datasets.load("icbt_peer")
    ta = peerstats.analyze(trial, outcome="gad7", vcov="empirical", df="between-within")
    assert ta.fit.vcov_method == "empirical"
    row = ta.contrasts[ta.contrasts["visit"].astype(str) == "post"].iloc[0]
    for key in ("estimate", "std_error", "df", "ci_lower", "ci_upper"):
        assert got[key] == pytest.approx(float(row[key]), rel=1e-9)
    assert got["std_error"] != pytest.approx(model["std_error"], rel=1e-4)
    assert got["df"] == int(got["df"])  # between-subject df: an integer
    explicit = _contrast({"type": "mmrm", "covariance": "us", "vcov": "jackknife"})
    assert explicit["std_error"] > got["std_error"]  # CR3 inflates CR0


def test_unknown_vcov_in_a_spec_is_a_spec_error():
    with pytest.raises(SpecError, match="vcov"):
        run_analysis({**BASE, "model": {"type": "mmrm", "vcov": "HC3"}})
