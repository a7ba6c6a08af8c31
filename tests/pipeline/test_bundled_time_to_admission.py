"""The bundled peer_recovery example's time to first psychiatric admission (issue 17; SYNTHETIC
data): consistent with the registry columns, and its cause-specific Cox model (death and moving
abroad censored; robust by delivery group) equal to R ``survival::coxph``
(tests/reference/r_pipeline_tte: make_r_pipeline_tte.R -> r_pipeline_tte.json). Tolerances:
coefficients 1e-6 relative, SEs 1e-5 relative (issue 17), log partial likelihood 1e-8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import peerstats

REF = json.loads(
    (Path(__file__).resolve().parents[1] / "reference" / "r_pipeline_tte" / "r_pipeline_tte.json")
    .read_text()
)


@pytest.fixture(scope="module")
def part():
    return peerstats.datasets.load("peer_recovery").randomised


def test_admission_status_agrees_with_readmission_within_12_months(part):
    both = part.dropna(subset=["readmitted_12m", "admission_status"])
    assert ((both["readmitted_12m"] == 1) == (both["admission_status"] == 1)).all()
    assert set(part["admission_status"].dropna().astype(int)) <= {0, 1, 2, 3}
    assert (part["admission_days"].dropna() <= 365).all()


def test_bundled_run_equals_r_coxph(example_runs):
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text())
    model = res["models"]["time_to_admission"]
    coef = model["coefficients"]  # a list of rows, R's term order
    est = np.array([row["estimate"] for row in coef])
    se = np.array([row["std_error"] for row in coef])
    np.testing.assert_allclose(est, REF["estimate"], rtol=1e-6)
    np.testing.assert_allclose(se, REF["robust_se"], rtol=1e-5)
    rec = res["effects"]["time_to_admission||peer - usual"]
    assert rec["scale"] == "hazard_ratio"
    assert rec["estimate"] == pytest.approx(np.exp(REF["estimate"][0]), rel=1e-6)
    assert rec["n_analysed"] == REF["n"]
