"""peerstats.marginal_effect against R beeca, the Ge et al. SAS macro and R integrate (16.2).

Source of every expected number: tests/reference/r_marginal/r_marginal_reference.json, written
by make_r_marginal.R:
- beeca 0.2.0 ``get_marginal_effect(method = "Ge", type = "model-based" | "HC0")`` on beeca's
  trial01 (aval ~ trtp + bl_cov) and on a generated synthetic three-arm trial;
- ``beeca::ge_macro_trial01``: the Ge et al. (2011) SAS macro output on trial01;
- a random-intercept logistic model (beta, Var(beta) of the three-arm GLM, random-intercept
  variance 0.8): marginal risks by stats::integrate, Var by the integrated delta method.
- a repeated-measures geepack GEE (respiratory, exchangeable, robust vcov) standardised over
  the visit-4 rows, by g-computation and the delta method written out in base R.
No expected value comes from peerstats.

Tolerances: estimates and SEs 1e-6 relative against beeca (observed <= 3e-8: R's glm stops at
deviance tolerance 1e-8); the SAS macro prints its own fit (observed 2e-6 on the risks,
1e-3 on the SE because the macro's variance differs slightly), so 1e-5 absolute on the estimate
and 1e-3 relative on the SE; the GLMM integral 1e-8 relative (40-node Gauss-Hermite).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).parents[1] / "reference" / "r_marginal"
R = json.loads((REF / "r_marginal_reference.json").read_text())
REL = 1e-6
BEECA = {"risk_difference": "diff", "risk_ratio": "rr", "odds_ratio": "or"}
TYPES = {"ge": "model-based", "sandwich": "HC0"}


def _trial01(numeric: bool = True):
    d = pd.read_csv(REF / "trial01.csv")
    rhs = "trtp" if numeric else "C(trtp)"
    return smf.glm(f"aval ~ {rhs} + bl_cov", d, family=sm.families.Binomial()).fit()


def _three_arm() -> pd.DataFrame:
    d = pd.read_csv(REF / "three_arm.csv")
    d["arm"] = pd.Categorical(d["arm"], categories=["usual", "peer", "peer_plus"])
    return d


@pytest.mark.parametrize("numeric", [True, False])
@pytest.mark.parametrize("variance", ["ge", "sandwich"])
@pytest.mark.parametrize("contrast", list(BEECA))
def test_trial01_matches_beeca(numeric, variance, contrast):
    out = peerstats.marginal_effect(_trial01(numeric), arm="trtp", contrast=contrast,
                                    variance=variance)
    ref = R["trial01"]["beeca"][f"{TYPES[variance]}|{BEECA[contrast]}"]
    assert len(out) == 1
    assert out["estimate"].iloc[0] == pytest.approx(ref["estimate"], rel=REL)
    assert out["std_error"].iloc[0] == pytest.approx(ref["se"], rel=REL)
    np.testing.assert_allclose(out.attrs["means"]["estimate"], ref["means"], rtol=REL)
    if contrast != "risk_difference":  # the log-scale SE is beeca's logrr / logor SE
        log = R["trial01"]["beeca"][f"{TYPES[variance]}|log{BEECA[contrast]}"]
        assert out["std_error_log"].iloc[0] == pytest.approx(log["se"], rel=REL)


def test_trial01_matches_ge_sas_macro():
    out = peerstats.marginal_effect(_trial01(), arm="trtp", variance="sandwich")
    sas = R["trial01"]["ge_sas_macro"]
    assert out["estimate"].iloc[0] == pytest.approx(sas["diff"], abs=1e-5)
    assert out["std_error"].iloc[0] == pytest.approx(sas["se"], rel=1e-3)


@pytest.mark.parametrize("variance", ["ge", "sandwich"])
@pytest.mark.parametrize("contrast", list(BEECA))
def test_three_arm_categorical_matches_beeca(variance, contrast):
    fit = smf.glm("y ~ arm + site + severity", _three_arm(), family=sm.families.Binomial()).fit()
    out = peerstats.marginal_effect(fit, arm="arm", contrast=contrast, variance=variance)
    ref = R["three_arm"]["beeca"][f"{TYPES[variance]}|{BEECA[contrast]}"]
    assert list(out["arm"]) == ["peer", "peer_plus"]
    np.testing.assert_allclose(out["estimate"], ref["estimate"], rtol=REL)
    np.testing.assert_allclose(out["std_error"], ref["se"], rtol=REL)
    np.testing.assert_allclose(out.attrs["varcov_means"], ref["varcov_means"], rtol=REL,
                               atol=1e-12)


def test_gee_fit_independence_equals_beeca_hc0():
    """A GEE with one row per subject and independence: its robust covariance is HC0."""
    fit = peerstats.gee("y ~ arm + site + severity", _three_arm(), subject="id",
                        correlation="independence")
    out = peerstats.marginal_effect(fit, arm="arm")
    ref = R["three_arm"]["beeca"]["HC0|diff"]
    np.testing.assert_allclose(out["estimate"], ref["estimate"], rtol=REL)
    np.testing.assert_allclose(out["std_error"], ref["se"], rtol=REL)


@pytest.mark.parametrize("contrast,key", [("risk_difference", "rd"), ("risk_ratio", "rr"),
                                          ("odds_ratio", "or")])
def test_repeated_measures_gee_at_one_visit_matches_r(contrast, key):
    """1e-6 relative (geepack run to epsilon 1e-12)."""
    d = pd.read_csv(REF.parent / "r_gee" / "respiratory.csv")
    d["site"] = d["site"].astype(str)
    d["arm"] = pd.Categorical(d["arm"], categories=["placebo", "active"])
    d["visit_f"] = d["visit"].astype(str)
    fit = peerstats.gee("outcome ~ arm + site + sex + age + baseline + visit_f", d,
                        subject="subj", correlation="exchangeable", visit="visit")
    out = peerstats.marginal_effect(fit, arm="arm", contrast=contrast, at={"visit": 4})
    ref = R["gee_visit4"]
    np.testing.assert_allclose(out.attrs["means"]["estimate"], ref["means"], rtol=REL)
    assert out["estimate"].iloc[0] == pytest.approx(ref["estimate"][key], rel=REL)
    assert out["std_error"].iloc[0] == pytest.approx(ref["se"][key], rel=REL)
    assert f"{int((d['visit'] == 4).sum())} analysed rows" in out.attrs["method"]


class _RandomInterceptFit:
    """The protocol as a GLMM fit offers it (fixed values from the R reference)."""

    def __init__(self):
        g = R["glmm_integrated"]
        self._glm = smf.glm("y ~ arm + site + severity", _three_arm(),
                            family=sm.families.Binomial()).fit()
        self.fixed_params = np.array(g["beta"])
        self.fixed_vcov = np.array(g["vcov"])
        self.s2 = g["re_variance"]
        self.link = sm.families.links.Logit()
        self.data = _three_arm()
        self.family_name = "binomial"

    def model_matrix(self, data):
        from patsy import build_design_matrices

        return np.asarray(build_design_matrices([self._glm.model.data.model_spec], data)[0])

    def re_variance_per_row(self, data):
        return np.full(len(data), self.s2)


def test_glmm_protocol_averages_over_random_effects():
    g = R["glmm_integrated"]
    out = peerstats.marginal_effect(_RandomInterceptFit(), arm="arm")
    np.testing.assert_allclose(out.attrs["means"]["estimate"], g["means"], rtol=1e-8)
    np.testing.assert_allclose(out["estimate"], g["risk_difference"], rtol=1e-8)
    np.testing.assert_allclose(out["std_error"], g["se_risk_difference"], rtol=1e-8)
    assert "Gauss-Hermite" in out.attrs["method"]


def test_columns_and_reference():
    out = peerstats.marginal_effect(_trial01(), arm="trtp", contrast="odds_ratio")
    for col in ["estimate", "std_error", "ci_lower", "ci_upper", "p_value"]:
        assert col in out.columns
    assert out["ci_lower"].iloc[0] < out["estimate"].iloc[0] < out["ci_upper"].iloc[0]
    flipped = peerstats.marginal_effect(_trial01(), arm="trtp", reference=1)
    assert flipped["estimate"].iloc[0] == pytest.approx(
        -R["trial01"]["beeca"]["model-based|diff"]["estimate"], rel=REL)


def test_bad_input():
    fit = _trial01()
    with pytest.raises(ModelSpecificationError, match="risk_difference"):
        peerstats.marginal_effect(fit, arm="trtp", contrast="nnt")
    with pytest.raises(ModelSpecificationError, match="not a column"):
        peerstats.marginal_effect(fit, arm="treatment")
    with pytest.raises(ModelSpecificationError, match="no analysed rows"):
        peerstats.marginal_effect(fit, arm="trtp", at={"bl_cov": "nope"})
    with pytest.raises(ModelSpecificationError, match="lacks"):
        peerstats.marginal_effect(object(), arm="trtp")
    pois = smf.glm("aval ~ trtp", pd.read_csv(REF / "trial01.csv"),
                   family=sm.families.Poisson()).fit()
    with pytest.raises(ModelSpecificationError, match="binary"):
        peerstats.marginal_effect(pois, arm="trtp")
