"""peerstats.gee against R geepack (issue 16.3).

Source of every expected number: tests/reference/r_gee/r_gee_reference.json, written by
make_r_gee.R (geepack::geeglm with geese.control(epsilon = 1e-12) on MASS::epil, the epilepsy
seizure counts of Diggle, Liang & Zeger Table 8.10, Poisson; geepack::respiratory and
geepack::ohio, binary; the Mancl-DeRouen covariance computed in R by its published formula and,
for the independence working correlation, clubSandwich::vcovCR(glm, type = "CR3"); R emmeans
on the respiratory fit; synthetic bed-day counts with a follow-up offset generated and fitted in
R; MASS::glm.nb for the negative binomial theta). No expected value comes from peerstats.

Tolerances: estimates 1e-6 relative, standard errors (robust, naive, bias-reduced) 1e-5
relative, working-correlation parameters 1e-5 absolute (observed: <= 3e-10 everywhere once
geepack is run to epsilon 1e-12; with its default epsilon 1e-4 the ar1 fits differ by 1e-5).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ConvergenceError, DataValidationError, ModelSpecificationError

REF = Path(__file__).parents[1] / "reference" / "r_gee"
R = json.loads((REF / "r_gee_reference.json").read_text())
EST, SE = 1e-6, 1e-5


@cache
def _data(name: str) -> pd.DataFrame:
    d = pd.read_csv(REF / f"{name}.csv")
    if name == "respiratory":
        d["site"] = d["site"].astype(str)
        d["arm"] = pd.Categorical(d["arm"], categories=["placebo", "active"])
    if name == "ohio":
        d["wave"] = d["age"] + 3
    return d


CASES = {
    "epil": ("epil", "y ~ lbase + trt + lage + V4 + lbase:trt", "poisson", "subject", "period"),
    "resp": ("respiratory", "outcome ~ arm + site + sex + age + baseline", "binomial", "subj",
             "visit"),
    "ohio": ("ohio", "resp ~ age * smoke", "binomial", "id", "wave"),
}
KEYS = [k for k in R if k not in ("versions", "epil_glm_nb", "epil_gaussian_exchangeable",
                                   "resp_emmeans", "beddays_exchangeable")]


@cache
def _fit_robust(key: str):
    case, corstr = key.split("_", 1)
    data, formula, family, subject, visit = CASES[case]
    return peerstats.gee(formula, _data(data), subject=subject, family=family,
                         correlation=corstr, visit=visit)


def _fit(key: str, vcov: str = "robust"):
    return _fit_robust(key).with_vcov(vcov)


def test_with_vcov_equals_a_refit():
    key = "ohio_exchangeable"
    data, formula, family, subject, visit = CASES["ohio"]
    refit = peerstats.gee(formula, _data(data), subject=subject, correlation="exchangeable",
                          visit=visit, vcov="bias-reduced")
    pd.testing.assert_frame_equal(refit.coef, _fit(key, "bias-reduced").coef)


def _r_names(terms):
    return [t.replace("(Intercept)", "Intercept").replace("trtprogabide", "trt[T.progabide]")
            .replace("armactive", "arm[T.active]").replace("site2", "site[T.2]")
            .replace("sexM", "sex[T.M]") for t in terms]


@pytest.mark.parametrize("key", KEYS)
def test_estimates_match_geepack(key):
    fit = _fit(key)
    ref = pd.Series(R[key]["estimate"], index=_r_names(R[key]["terms"]))
    ours = fit.params.loc[ref.index]
    np.testing.assert_allclose(ours, ref, rtol=EST)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("vcov,ref_key", [("robust", "se_robust"), ("naive", "se_naive"),
                                          ("bias-reduced", "se_md")])
def test_standard_errors_match_geepack(key, vcov, ref_key):
    fit = _fit(key, vcov)
    ref = pd.Series(R[key][ref_key], index=_r_names(R[key]["terms"]))
    np.testing.assert_allclose(fit.coef["std_error"].loc[ref.index], ref, rtol=SE)


@pytest.mark.parametrize("key", [k for k in KEYS if R[k]["corstr"] != "independence"])
def test_working_correlation_matches_geepack(key):
    fit = _fit(key)
    alpha = np.atleast_1d(R[key]["alpha"])
    wc = fit.working_correlation
    ours = wc[np.triu_indices(wc.shape[0], 1)] if wc.ndim == 2 else np.atleast_1d(wc)
    np.testing.assert_allclose(ours, alpha, atol=1e-5)


@pytest.mark.parametrize("key", ["epil_independence", "resp_independence"])
def test_mancl_derouen_matches_clubsandwich_cr3(key):
    """Independence GEE = GLM: Mancl-DeRouen equals clubSandwich CR3 (R glm tolerance 1e-8,
    so 1e-5 relative)."""
    fit = _fit(key, "bias-reduced")
    ref = pd.Series(R[key]["se_cr3_clubsandwich"], index=_r_names(R[key]["terms"]))
    np.testing.assert_allclose(fit.coef["std_error"].loc[ref.index], ref, rtol=SE)


def test_bias_reduced_uses_t_on_clusters_minus_p():
    fit = _fit("epil_exchangeable", "bias-reduced")
    assert fit.df_method == "clusters-minus-p"
    assert fit.df == R["epil_exchangeable"]["n_clusters"] - 6
    assert (fit.coef["df"] == 59 - 6).all()
    assert "clusters - p = 53" in fit.summary()
    robust = _fit("epil_exchangeable")
    assert "df" not in robust.coef.columns and robust.df_method == "asymptotic"


def test_coef_columns_and_term_names():
    fit = _fit("resp_exchangeable")
    assert list(fit.coef.columns) == ["estimate", "std_error", "statistic", "p_value",
                                      "ci_lower", "ci_upper"]
    assert "arm[T.active]" in fit.coef.index and "Intercept" in fit.coef.index


def test_emmeans_response_and_contrasts():
    fit = _fit("resp_exchangeable")
    em = fit.emmeans("arm", type="response")
    link = fit.emmeans("arm", type="link")
    np.testing.assert_allclose(em["estimate"], 1 / (1 + np.exp(-link["estimate"])), rtol=1e-12)
    np.testing.assert_allclose(em["ci_lower"], 1 / (1 + np.exp(-link["ci_lower"])), rtol=1e-12)
    con = fit.contrasts("arm", scale="ratio")
    b = fit.params["arm[T.active]"]
    assert con["estimate"].iloc[0] == pytest.approx(np.exp(b), rel=1e-12)
    assert con["scale"].iloc[0] == "odds_ratio"
    diff = fit.contrasts("arm", scale="difference")
    assert diff["estimate"].iloc[0] == pytest.approx(
        em["estimate"].iloc[1] - em["estimate"].iloc[0], rel=1e-12)


def test_emmeans_and_contrasts_match_r_emmeans():
    """R emmeans on the geeglm fit (robust vcov): equal weights over site and sex, age and
    baseline at their means; 1e-6 relative."""
    ref = R["resp_emmeans"]
    fit = _fit("resp_exchangeable")
    em = fit.emmeans("arm", type="response")
    assert [str(a) for a in em["arm"]] == ref["arm"]
    for ours, theirs in [("estimate", "prob"), ("std_error", "se"), ("ci_lower", "lower"),
                         ("ci_upper", "upper")]:
        np.testing.assert_allclose(em[ours], ref[theirs], rtol=1e-6)
    orr = fit.contrasts("arm", scale="ratio").iloc[0]
    assert orr["estimate"] == pytest.approx(ref["odds_ratio"], rel=1e-6)
    assert orr["ci_lower"] == pytest.approx(ref["or_lower"], rel=1e-6)
    assert orr["ci_upper"] == pytest.approx(ref["or_upper"], rel=1e-6)
    assert orr["p_value"] == pytest.approx(ref["or_p"], rel=1e-5)
    rd = fit.contrasts("arm", scale="difference").iloc[0]
    assert rd["estimate"] == pytest.approx(ref["rd"], rel=1e-6)
    assert rd["std_error"] == pytest.approx(ref["rd_se"], rel=1e-6)
    assert rd["ci_lower"] == pytest.approx(ref["rd_lower"], rel=1e-6)


def test_predict_residuals_and_records():
    fit = _fit("epil_exchangeable")
    pred = fit.predict()
    np.testing.assert_allclose(pred["prediction"] + fit.residuals(), _data("epil")["y"])
    recs = fit.effect_records("trt", direction="fewer seizures favour progabide")
    assert recs[0].scale == "rate_ratio" and recs[0].n_analysed == 59
    assert recs[0].estimate == pytest.approx(fit.contrasts("trt")["estimate"].iloc[0])


def test_gaussian_exchangeable_matches_geepack():
    ref = R["epil_gaussian_exchangeable"]
    fit = peerstats.gee(CASES["epil"][1], _data("epil"), subject="subject", family="gaussian",
                        correlation="exchangeable", visit="period")
    names = _r_names(ref["terms"])
    np.testing.assert_allclose(fit.params.loc[names], ref["estimate"], rtol=EST)
    np.testing.assert_allclose(fit.coef["std_error"].loc[names], ref["se_robust"], rtol=SE)
    assert fit.scale == pytest.approx(ref["scale"], rel=SE)
    assert float(fit.working_correlation) == pytest.approx(ref["alpha"], abs=1e-5)


def test_negative_binomial_theta_matches_glm_nb():
    """The NB2 size held fixed in the GEE is the ML theta of MASS::glm.nb (1e-4 relative:
    glm.nb's theta iteration stops at its own tolerance)."""
    fit = peerstats.gee(CASES["epil"][1], _data("epil"), subject="subject",
                        family="negative_binomial", correlation="independence")
    assert fit.theta == pytest.approx(R["epil_glm_nb"]["theta"], rel=1e-4)
    ref = pd.Series(R["epil_glm_nb"]["estimate"], index=_r_names(R["epil_glm_nb"]["terms"]))
    np.testing.assert_allclose(fit.params.loc[ref.index], ref, rtol=1e-4)


@pytest.mark.parametrize("vcov,ref_key", [("robust", "se_robust"), ("naive", "se_naive"),
                                          ("bias-reduced", "se_md")])
def test_offset_for_unequal_follow_up_matches_geepack(vcov, ref_key):
    """Synthetic bed-day counts with follow-up years as offset (generated in make_r_gee.R)."""
    ref = R["beddays_exchangeable"]
    d = pd.read_csv(REF / "bed_days.csv")
    d["arm"] = pd.Categorical(d["arm"], categories=["usual", "peer"])
    fit = peerstats.gee("bed_days ~ arm", d, subject="pid", family="poisson", visit="period",
                        offset="log_years", vcov=vcov)
    names = ["Intercept", "arm[T.peer]"]
    np.testing.assert_allclose(fit.params.loc[names], ref["estimate"], rtol=EST)
    np.testing.assert_allclose(fit.coef["std_error"].loc[names], ref[ref_key], rtol=SE)


def test_outcome_not_binary_is_refused():
    d = _data("ohio").copy()
    d.loc[3, "resp"] = 2
    with pytest.raises(DataValidationError, match="0/1"):
        peerstats.gee("resp ~ age", d, subject="id")


def test_negative_or_fractional_count_is_refused():
    d = _data("epil").copy()
    d["y"] = d["y"].astype(float)
    d.loc[0, "y"] = -1
    d.loc[1, "y"] = 2.5
    with pytest.raises(DataValidationError) as err:
        peerstats.gee("y ~ trt", d, subject="subject", family="poisson")
    assert len(err.value.failures) == 2


def test_zero_exposure_offset_is_refused():
    d = _data("epil").copy()
    with np.errstate(divide="ignore"):
        d["logt"] = np.log(np.where(d.index == 5, 0.0, 2.0))
    with pytest.raises(ModelSpecificationError, match="exposure"):
        peerstats.gee("y ~ trt", d, subject="subject", family="poisson", offset="logt")


def test_bad_options_list_choices():
    with pytest.raises(ModelSpecificationError, match="exchangeable"):
        peerstats.gee("resp ~ age", _data("ohio"), subject="id", correlation="toeplitz")

def test_ar1_without_visit_uses_row_order_as_geepack():
    """geepack without waves numbers each cluster's rows 1..n_i: the ohio data are complete and
    sorted by age, so the fit equals the one with visit= (and geepack's)."""
    fit = peerstats.gee("resp ~ age * smoke", _data("ohio"), subject="id", correlation="ar1")
    ref = pd.Series(R["ohio_ar1"]["estimate"], index=_r_names(R["ohio_ar1"]["terms"]))
    np.testing.assert_allclose(fit.params.loc[ref.index], ref, rtol=EST)
    assert "data order" in fit.summary()


def test_separation_raises():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"id": np.repeat(np.arange(40), 2), "arm": np.repeat(["a", "b"], 40)})
    d["y"] = np.where(d["arm"] == "a", 0, rng.integers(0, 2, len(d)))
    with pytest.raises(ConvergenceError, match="separation"):
        peerstats.gee("y ~ arm", d, subject="id")


def test_display():
    fit = _fit("resp_exchangeable", "bias-reduced")
    assert "bias-reduced (Mancl-DeRouen 2001) / t on clusters - p" in repr(fit)
    assert "<table>" in fit._repr_html_()
    assert list(fit.to_frame().columns)[0] == "term"


def test_non_convergence_raises():
    data, formula, family, subject, visit = CASES["ohio"]
    with pytest.raises(ConvergenceError, match="did not converge in 2 iterations"):
        peerstats.gee(formula, _data(data), subject=subject, family=family, maxiter=2)
    with pytest.raises(ModelSpecificationError, match="maxiter"):
        peerstats.gee(formula, _data(data), subject=subject, family=family, maxiter=0)
