"""peerstats.glmm against R (lme4 glmer, glmmTMB, pscl, MASS, glm) and SAS.

Source of every expected number: tests/reference/r_glmm/make_r_glmm.R, which wrote
r_glmm_reference.json (R and package versions inside) and the CSV data read here. SAS values for
toenail: lme4 issue #289 (https://github.com/lme4/lme4/issues/289), quoted in the JSON.

Tolerances (issue 16): estimates 1e-4 relative, standard errors 1e-3 relative, log-likelihood
1e-3 absolute, at the same quadrature. Where a reference's optimiser stops visibly short of the
optimum (our log-likelihood is higher at our estimates), the test says so and checks that our
optimum is at least as good, with the looser tolerance stated at the test.

Standard errors: the inverse Hessian of minus the log-likelihood over all parameters, beta
block (glmer's default calc.derivs = TRUE / use.hessian = TRUE; glmmTMB's sdreport).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats as ps

REF = Path(__file__).parents[1] / "reference" / "r_glmm"
R = json.loads((REF / "r_glmm_reference.json").read_text())


def _csv(name, **str_cols):
    d = pd.read_csv(REF / name)
    for c in str_cols.get("as_str", []):
        d[c] = d[c].astype(str)
    return d


def _fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ps.glmm(*args, **kw)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


def _check(fit, key, *, est_tol=1e-4, se_tol=1e-3, ll_tol=1e-3, ll=True):
    ref = R[key]
    p = len(fit.coef)
    assert _rel(fit.coef["estimate"], ref["coef"]["estimate"][:p]) < est_tol
    assert _rel(fit.coef["std_error"], ref["coef"]["std_error"][:p]) < se_tol
    if ll:
        assert abs(fit.loglik - ref["loglik"]) < ll_tol


# ---- data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cbpp():
    return _csv("cbpp.csv", as_str=["herd", "period"])


@pytest.fixture(scope="module")
def toenail():
    return _csv("toenail.csv", as_str=["patientID"])


@pytest.fixture(scope="module")
def counts():
    return _csv("counts_offset.csv", as_str=["id"])


# ---- binomial ------------------------------------------------------------------------------
def test_cbpp_laplace_matches_glmmtmb(cbpp):
    """glmmTMB (exact Laplace); tol 1e-4 est, 1e-3 SE, 1e-3 loglik."""
    fit = _fit("prop ~ period + (1 | herd)", cbpp, weights="size")
    _check(fit, "cbpp_tmb")
    assert (
        abs(fit.variance_components.loc["herd", "variance"] - R["cbpp_tmb"]["varcomp"]["herd"])
        < 1e-4 * R["cbpp_tmb"]["varcomp"]["herd"]
    )
    assert list(fit.coef.index) == ["Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]


def test_cbpp_glmer_laplace_is_slightly_short_of_the_optimum(cbpp):
    """glmer nAGQ=1 stops ~4e-4 (relative) from the Laplace optimum that glmmTMB and we find
    (lme4 issue #289): our log-likelihood is higher; estimates agree to 1e-3 relative."""
    fit = _fit("prop ~ period + (1 | herd)", cbpp, weights="size")
    ref = R["cbpp_laplace"]
    assert fit.loglik >= ref["loglik"]
    assert _rel(fit.coef["estimate"], ref["coef"]["estimate"]) < 1e-3


@pytest.mark.parametrize("k", [9, 25])
def test_cbpp_agq_matches_glmer(cbpp, k):
    """glmer nAGQ = 9 and 25: estimates 1e-4 relative, SEs 1e-3 relative, herd SD 1e-4."""
    fit = _fit("prop ~ period + (1 | herd)", cbpp, weights="size", nagq=k)
    _check(fit, f"cbpp_agq{k}", ll=False)
    sd = fit.variance_components.loc["herd", "sd"]
    assert abs(sd - np.atleast_1d(R[f"cbpp_agq{k}"]["theta"])[0]) < 1e-4 * sd


def test_cbpp_agq_loglik_in_lme4_convention(cbpp):
    """lme4's logLik for nAGQ > 1 omits the saturated binomial log-likelihood (lme4 issue
    #567); ours is the full log-likelihood: they differ by exactly that constant."""
    from scipy import stats

    fit = _fit("prop ~ period + (1 | herd)", cbpp, weights="size", nagq=25)
    k, n = cbpp["incidence"].to_numpy(), cbpp["size"].to_numpy()
    sat = stats.binom.logpmf(k, n, k / n).sum()
    assert abs((fit.loglik - sat) - R["cbpp_agq25"]["loglik"]) < 1e-3


def test_cbpp_probit_matches_glmer(cbpp):
    """glmer probit (Fisher weights in the Laplace determinant, as glmer)."""
    fit = _fit("prop ~ period + (1 | herd)", cbpp, weights="size", link="probit")
    _check(fit, "cbpp_probit")


def test_cbpp_cloglog_glm_matches_glm(cbpp):
    """R glm(binomial(cloglog)) without random effects."""
    fit = _fit("prop ~ period", cbpp, weights="size", link="cloglog")
    _check(fit, "cbpp_glm_cloglog")


def test_toenail_laplace_matches_sas_and_glmmtmb(toenail):
    """HSAUR3 toenail, y ~ treatment + visit + (1 | patient). SAS values of lme4 issue #289
    (printed to 4-7 digits: tolerance 1e-4 absolute on estimates, 1e-5 relative on the SD,
    0.01 on the log-likelihood, which SAS prints as -626.1650 vs glmmML -626.1627). glmmTMB's
    optimum is ~1.5e-4 relative short on the treatment effect in this flat likelihood; ours has
    the higher log-likelihood, so we compare to it at 5e-4."""
    fit = _fit("y ~ treat + visit + (1 | patientID)", toenail)
    sas = R["toenail_sas_issue289"]
    assert np.max(np.abs(fit.coef["estimate"].to_numpy() - sas["estimate"])) < 1e-4
    assert abs(fit.variance_components["sd"].iloc[0] - sas["RE_sd"]) < 1e-5 * sas["RE_sd"]
    assert abs(fit.loglik - sas["loglik"]) < 0.01
    ref = R["toenail_tmb"]
    assert fit.loglik >= ref["loglik"] - 1e-9
    _check(fit, "toenail_tmb", est_tol=5e-4)


def test_toenail_agq_matches_glmer(toenail):
    """glmer nAGQ = 20 (which warns of a gradient of 0.0036 at its optimum): our estimates
    within 1e-3 relative and SEs within 1e-3; our likelihood at glmer's estimates is lower."""
    fit = _fit("y ~ treat + visit + (1 | patientID)", toenail, nagq=20)
    _check(fit, "toenail_agq20", est_tol=1e-3, ll=False)
    ref = R["toenail_agq20"]
    phi = np.r_[ref["coef"]["estimate"], ref["theta"]]
    assert fit._obj.value(phi) >= fit._obj.value(fit._opt.phi)


def test_glm_binomial_interaction(toenail):
    """R glm(binomial) with an interaction."""
    _check(_fit("y ~ treat * time", toenail), "toenail_glm")


# ---- counts --------------------------------------------------------------------------------
def test_salamanders_nb2_matches_glmmtmb():
    """glmmTMB nbinom2 with a site intercept: estimates, SEs, loglik and theta."""
    sal = _csv("salamanders.csv")
    fit = _fit(
        "count ~ mined + cover + (1 | site)",
        sal,
        family="negative_binomial",
        reference={"mined": "yes"},
    )
    _check(fit, "sal_nb2_tmb")
    assert abs(fit.theta - R["sal_nb2_tmb"]["theta"]) < 1e-4 * fit.theta


def test_salamanders_poisson_matches_glmmtmb():
    sal = _csv("salamanders.csv")
    fit = _fit(
        "count ~ mined + cover + (1 | site)", sal, family="poisson", reference={"mined": "yes"}
    )
    _check(fit, "sal_pois_tmb")


def test_nb2_offset_random_intercept_matches_glmmtmb(counts):
    """Synthetic bed-days with follow-up days: offset = log(days) as a column."""
    fit = _fit(
        "beddays ~ arm + visit + (1 | id)", counts, family="negative_binomial", offset="logdays"
    )
    _check(fit, "counts_nb2_offset_tmb")
    assert abs(fit.theta - R["counts_nb2_offset_tmb"]["theta"]) < 1e-4 * fit.theta


def test_poisson_exposure_matches_glmmtmb(counts):
    """exposure= days is the same model as offset = log(days)."""
    fit = _fit("beddays ~ arm + visit + (1 | id)", counts, family="poisson", exposure="days")
    _check(fit, "counts_pois_offset_tmb")


def test_nb2_glm_matches_glm_nb_and_glmmtmb(counts):
    """MASS::glm.nb: estimates and theta (its SEs take theta as known and use the expected
    information, a different convention); glmmTMB nbinom2: everything."""
    fit = _fit(
        "beddays ~ arm + visit",
        counts,
        family="negative_binomial",
        offset=counts["logdays"].to_numpy(),
    )
    ref = R["counts_glmnb_offset"]
    assert _rel(fit.coef["estimate"], ref["coef"]["estimate"]) < 1e-4
    assert abs(fit.theta - ref["theta"]) < 1e-4 * ref["theta"]
    _check(fit, "counts_nb2_glm_tmb")


def test_poisson_glm_offset_matches_glm(counts):
    _check(
        _fit("beddays ~ arm + visit", counts, family="poisson", offset="logdays"),
        "counts_pois_glm_offset",
    )


# ---- zero-inflated and hurdle ----------------------------------------------------------------
@pytest.fixture(scope="module")
def bio():
    return _csv("biochemists.csv")


@pytest.fixture(scope="module")
def zi():
    return _csv("zi_beddays.csv")


def _check_zero(fit, key, sign=1.0):
    ref = R[key]["zero_coef"]
    est = np.atleast_1d(ref["estimate"])
    se = np.atleast_1d(ref["std_error"])
    assert _rel(fit.zero_coef["estimate"], sign * est) < 1e-4
    assert _rel(fit.zero_coef["std_error"], se) < 1e-3


def test_zip_biochemists_matches_pscl(bio):
    fit = _fit(
        "art ~ fem + mar + kid5 + phd + ment",
        bio,
        family="poisson",
        zero_inflation="~ fem + ment",
        reference={"mar": "Single"},
    )
    _check(fit, "bc_zip")
    _check_zero(fit, "bc_zip")


@pytest.mark.parametrize(
    "family,key", [("negative_binomial", "bc_hurdle_nb"), ("poisson", "bc_hurdle_pois")]
)
def test_hurdle_biochemists_matches_pscl(bio, family, key):
    """pscl's hurdle models P(y > 0): its zero coefficients are ours with the sign changed."""
    fit = _fit(
        "art ~ fem + mar + kid5 + phd + ment",
        bio,
        family=family,
        hurdle="~ fem + ment",
        reference={"mar": "Single"},
    )
    _check(fit, key, est_tol=2e-4)  # pscl's BFGS stops at ~1e-4 relative (reltol 1e-8)
    _check_zero(fit, key, sign=-1.0)
    if family == "negative_binomial":
        assert abs(fit.theta - R[key]["theta"]) < 1e-4 * fit.theta


@pytest.mark.parametrize("key", ["zi_zinb_pscl", "zi_zinb_tmb"])
def test_zinb_offset_matches_pscl_and_glmmtmb(zi, key):
    fit = _fit(
        "beddays ~ arm + age",
        zi,
        family="negative_binomial",
        offset="logdays",
        zero_inflation="~ arm",
    )
    _check(fit, key)
    _check_zero(fit, key)
    assert abs(fit.theta - R[key]["theta"]) < 1e-4 * fit.theta


def test_zip_intercept_only_zero_part_matches_pscl(zi):
    fit = _fit("beddays ~ arm + age", zi, family="poisson", offset="logdays", zero_inflation="~ 1")
    _check(fit, "zi_zip1_pscl")
    _check_zero(fit, "zi_zip1_pscl")


def test_hurdle_nb_matches_glmmtmb_truncated_nbinom2(zi):
    """glmmTMB truncated_nbinom2 + ziformula: the zero part models P(y = 0), as ours."""
    fit = _fit(
        "beddays ~ arm + age", zi, family="negative_binomial", offset="logdays", hurdle="~ arm"
    )
    _check(fit, "zi_hurdle_nb_tmb")
    _check_zero(fit, "zi_hurdle_nb_tmb")


# ---- partially nested binary trial --------------------------------------------------------
def test_partially_nested_binary_matches_glmmtmb():
    """Synthetic readmission trial: (0 + peer | group) + (1 | id), glmmTMB Laplace; glmer's
    Laplace optimum is again a little short (log-likelihood lower than ours)."""
    pn = _csv("pn_binary.csv")
    fit = _fit(
        "readmit ~ arm + visit + site + (0 + peer | group) + (1 | id)",
        pn,
        reference={"visit": "m12"},
    )
    _check(fit, "pn_binary_tmb")
    vc = fit.variance_components
    ref = R["pn_binary_tmb"]["varcomp"]
    assert abs(vc.loc["group", "variance"] - ref["group"]) < 1e-4 * ref["group"]
    assert abs(vc.loc["id", "variance"] - ref["id"]) < 1e-4 * ref["id"]
    assert fit.loglik >= R["pn_binary_glmer"]["loglik"]


# ---- cluster-robust standard errors --------------------------------------------------------
def test_cluster_robust_glm_matches_sandwich_vcovcl(toenail, counts):
    """sandwich::vcovCL(glm, cluster = ~ id, type = "HC1"): G/(G-1) (n-1)/(n-p) scaling;
    SEs within 1e-4 relative (same closed form, so tighter than the Hessian-based 1e-3)."""
    fit = _fit("y ~ treat * time", toenail, cluster="patientID")
    ref = R["toenail_glm_cr1"]
    assert _rel(fit.coef["estimate"], ref["estimate"]) < 1e-6
    assert _rel(fit.coef["std_error"], ref["std_error"]) < 1e-4
    assert "CR1" in fit.summary()
    fit = _fit("beddays ~ arm + visit", counts, family="poisson", offset="logdays", cluster="id")
    assert _rel(fit.coef["std_error"], R["counts_pois_glm_cr1"]["std_error"]) < 1e-4


def test_cluster_robust_refuses_random_terms(toenail):
    from peerstats.exceptions import ModelSpecificationError

    with pytest.raises(ModelSpecificationError, match="random term already models"):
        _fit("y ~ treat + (1 | patientID)", toenail, cluster="patientID")


# ---- zero-inflated / hurdle with a random intercept in the count part ----------------------
@pytest.fixture(scope="module")
def zire():
    return _csv("zi_re.csv", as_str=["id"])


def test_zinb_random_intercept_matches_glmmtmb(zire):
    """glmmTMB nbinom2 + ziformula = ~ arm + (1 | id) in the count part (exact Laplace)."""
    fit = _fit(
        "beddays ~ arm + (1 | id)",
        zire,
        family="negative_binomial",
        offset="logdays",
        zero_inflation="~ arm",
    )
    key = "zire_zinb_tmb"
    _check(fit, key)
    _check_zero(fit, key)
    assert abs(fit.theta - R[key]["theta"]) < 1e-4 * fit.theta
    vc = fit.variance_components.loc["id", "variance"]
    assert abs(vc - R[key]["varcomp"]["id"]) < 1e-4 * vc


def test_hurdle_poisson_random_intercept_matches_glmmtmb(zire):
    """glmmTMB truncated_poisson + ziformula = ~ 1 (zero part: P(y = 0), as ours)."""
    fit = _fit("beddays ~ arm + (1 | id)", zire, family="poisson", offset="logdays", hurdle="~ 1")
    key = "zire_hurdle_pois_tmb"
    _check(fit, key)
    _check_zero(fit, key)
    p = fit.predict()
    assert p.shape == (len(zire),) and np.all(p > 0)
