"""peerstats.cace against R AER::ivreg (and sandwich::vcovHC HC1) on the same data.

Source of the numbers: tests/reference/r_cace/cace_reference.R (AER 1.2.10, sandwich 3.0.2)
run on tests/reference/r_cace/cace_data.csv (post-baseline QPR-15 of the SYNTHETIC
peer_recovery trial; receipt computed with plain pandas in make_data.py).

Tolerances: estimate, SE, statistic, CI limits to 1e-8 absolute and relative (rtol 1e-8);
p-values to 1e-8 relative; df and n exactly. SE convention matched: "unadjusted" =
summary(ivreg) (homoskedastic, RSS/(n - k)); "robust" = vcovHC(type = "HC1"); t(n - k) in both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError, SpecError

REF = Path(__file__).resolve().parents[1] / "reference" / "r_cace"
RTOL = 1e-8
ATOL = 1e-8


@pytest.fixture(scope="module")
def reference():
    return json.loads((REF / "cace_reference.json").read_text())["results"]


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(REF / "cace_data.csv")
    d["arm"] = pd.Categorical(d["arm"], categories=["usual", "peer"])
    d["visit"] = pd.Categorical(d["visit"], categories=["post", "fu3"])
    return d


@pytest.fixture(scope="module")
def trial():
    return peerstats.datasets.load("peer_recovery")


def _check(row, ref, se_key):
    assert row["n"] == ref["n"]
    assert row["df"] == ref["df"]
    np.testing.assert_allclose(row["estimate"], ref["estimate"], rtol=RTOL, atol=ATOL)
    r = ref[se_key]
    for k in ("std_error", "statistic", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(row[k], r[k], rtol=RTOL, atol=ATOL, err_msg=k)
    np.testing.assert_allclose(row["p_value"], r["p_value"], rtol=RTOL)


@pytest.mark.parametrize("se,se_key", [("unadjusted", "unadjusted"), ("robust", "robust_hc1")])
@pytest.mark.parametrize("receipt", ["received5", "received_col"])
def test_dataframe_matches_aer(data, reference, receipt, se, se_key):
    res = peerstats.cace(
        data,
        outcome="qpr15",
        received=receipt,
        covariates=["qpr15_baseline", "site"],
        reference="usual",
        se=se,
    )
    eff = res.effects.set_index("visit")
    for v in ("post", "fu3"):
        _check(eff.loc[v], reference[f"{receipt}|{v}"], se_key)


@pytest.mark.parametrize(
    "compliance,receipt",
    [(5, "received5"), ({"sessions": 5}, "received5"), ({"column": "received"}, "received_col")],
)
def test_trial_matches_aer(trial, reference, compliance, receipt):
    """A Trial: baseline + strata as covariates, receipt from the compliance rule."""
    res = peerstats.cace(trial, outcome="qpr15", compliance=compliance)
    eff = res.effects.set_index("visit")
    assert list(eff.index) == ["post", "fu3"]
    for v in ("post", "fu3"):
        _check(eff.loc[v], reference[f"{receipt}|{v}"], "unadjusted")
    assert (eff["contrast"] == "peer - usual").all()
    assert "<table" in res._repr_html_()
    assert "2SLS" in res.summary()


def test_cace_exceeds_itt_when_compliance_is_partial(trial):
    """The Wald ratio: CACE ~ ITT / compliance; with partial receipt the CACE is larger."""
    res = peerstats.cace(trial, outcome="qpr15", compliance=5)
    itt = peerstats.analyze(trial, outcome="qpr15").contrasts.set_index("visit")
    eff = res.effects.set_index("visit")
    assert (eff["compliance"] < 1).all()
    assert eff.loc["post", "estimate"] > itt.loc["post", "estimate"]


def test_bad_input(trial, data):
    with pytest.raises(SpecError, match="'attended_hours'.*participants table; columns are"):
        peerstats.cace(trial, outcome="qpr15", compliance={"column": "attended_hours"})
    with pytest.raises(SpecError, match="unknown key.*'visits'.*allowed keys are"):
        peerstats.cace(trial, outcome="qpr15", compliance={"visits": 5})
    with pytest.raises(SpecError, match="sessions=0"):
        peerstats.cace(trial, outcome="qpr15", compliance={"sessions": 0})
    with pytest.raises(SpecError, match="reference arm 'control' is not an arm; arms are"):
        peerstats.cace(trial, outcome="qpr15", compliance=5, reference="control")
    with pytest.raises(ModelSpecificationError, match="se='hc3' is not valid; choose one of"):
        peerstats.cace(trial, outcome="qpr15", compliance=5, se="hc3")
    with pytest.raises(
        ModelSpecificationError, match=r"column\(s\) \['dose'\] are not in the data"
    ):
        peerstats.cace(data, outcome="qpr15", received="dose")
    with pytest.raises(ModelSpecificationError, match="compliance= is required"):
        peerstats.cace(trial, outcome="qpr15")
    with pytest.raises(SpecError, match="'qpr' is not an outcome"):
        peerstats.cace(trial, outcome="qpr", compliance=5)


@pytest.mark.parametrize("cov", ["unadjusted", "robust", "clustered"])
def test_first_stage_f_equals_linearmodels_diagnostics(data, cov):
    """The first-stage F is computed as linearmodels' ``first_stage.diagnostics["f.stat"]``
    without its other columns (issue 22, speed): the two must agree exactly, for every
    covariance."""
    from linearmodels.iv import IV2SLS

    from peerstats.missing.cace import _first_stage_f

    sub = data[data["visit"] == "post"].dropna(subset=["qpr15", "qpr15_baseline"])
    exog = pd.DataFrame({"const": 1.0, "base": sub["qpr15_baseline"]}, index=sub.index)
    z = (sub["arm"] == "peer").astype(float).rename("randomised")
    d = sub["received5"].astype(float).rename("received")
    model = IV2SLS(sub["qpr15"], exog, d.to_frame(), z.to_frame())
    kw = {"clusters": pd.Series(np.arange(len(sub)) // 3, index=sub.index)}
    res = model.fit(cov_type=cov, debiased=True, **(kw if cov == "clustered" else {}))
    expected = float(res.first_stage.diagnostics.loc["received", "f.stat"])
    assert _first_stage_f(res) == expected
