"""Spatial covariance (sp_exp, sp_gau, sp_pow with ``time=``) against R nlme::gls and R mmrm.

Source of every expected number: tests/reference/r_spatial/ (README.md there): the nlme fits in
r_spatial_nlme.json (make_r_spatial.R: gls with corExp / corGaus / corCAR1, 1-D and 2-D, REML
and ML) and the R mmrm fits in r_spatial_mmrm.json (make_r_spatial_mmrm.R: Satterthwaite df
and F test), both on the SYNTHETIC spatial_data.csv (150 subjects, 4 visits at subject-specific
days). No expected value comes from peerstats.

Tolerances and why:
- estimates, standard errors, covariance parameters (range / rho, Residual): 1e-5 relative
  (nlme run with tolerance 1e-10; the two optimisers agree to ~3e-8 here).
- -2 log-likelihood: 1e-5 absolute (~3e-9 relative; a wrong constant would be >= 0.1).
- Kenward-Roger (SAS convention, in SAS's parameters (range, Residual), written from the
  definition in R with numDeriv derivatives and pbkrtest's Lb_ddf; block ``kenward_roger``):
  adjusted SEs 1e-5 relative, df 1e-4 relative (Richardson derivatives); the covariance
  parameters' SEs (sqrt of that W, the inverse observed information) 1e-5 relative.
- empirical covariance (clubSandwich CR0 / CR2 / CR3 on the gls fit, subjects with >= 2
  observations; block ``sandwich``): covariance matrix 1e-5 x its largest entry, SEs and
  Satterthwaite df 1e-5 relative (the fits agree to ~1e-8; the sandwich itself is closed form).
- conditional predictions, normalized and Pearson residuals: against the textbook formulas
  (mu_m + S_mo S_oo^-1 (y_o - mu_o); L^-1 (y - mu), L L' = S) at nlme's estimates, with S the
  SP(EXP) covariance at the subject's own days: 1e-5 relative (the estimates agree to ~3e-8).
- R mmrm (automatic differentiation, nlminb): Satterthwaite df, F test, estimates, SEs,
  ranges 1e-5 relative, -2 log-likelihood 1e-5 absolute (observed: <= 1e-7 in df, ~1e-10 in
  estimates).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).parents[1] / "reference" / "r_spatial"
NLME = json.loads((REF / "r_spatial_nlme.json").read_text())
RMMRM = json.loads((REF / "r_spatial_mmrm.json").read_text())

RTOL = 1e-5
LOGLIK_ATOL = 1e-5
MMRM_RTOL = 1e-5
FORMULA = "score ~ baseline + arm * visit"
PLANNED = {"V1": 14, "V2": 42, "V3": 84, "V4": 168}

# nlme entry -> (peerstats covariance, time, method)
NLME_FITS = {
    "sp_exp": ("sp_exp", "day", "reml"),
    "sp_gau": ("sp_gau", "day", "reml"),
    "sp_pow": ("sp_pow", "day", "reml"),
    "sp_exp_2d": ("sp_exp", ("x1", "x2"), "reml"),
    "sp_exp_planned": ("sp_exp", "planned", "reml"),
    "sp_exp_ml": ("sp_exp", "day", "ml"),
}
SAS_NAME = {"sp_exp": "SP(EXP)", "sp_gau": "SP(GAU)", "sp_pow": "SP(POW)"}


@cache
def data() -> pd.DataFrame:
    d = pd.read_csv(REF / "spatial_data.csv")
    return d.assign(planned=d["visit"].map(PLANNED))


@cache
def fitted(
    covariance: str, time, method: str = "reml", group: str | None = None, df="satterthwaite"
):
    return peerstats.mmrm(
        FORMULA,
        data(),
        subject="id",
        visit="visit",
        covariance=covariance,
        time=list(time) if isinstance(time, tuple) else time,
        method=method,
        group=group,
        df=df,
    )


def r_term(term: str) -> str:
    """R's ``armpeer:visitV2`` -> formulaic's ``arm[T.peer]:visit[T.V2]``."""
    out = []
    for part in term.split(":"):
        if part == "(Intercept)":
            out.append("Intercept")
        elif part.startswith("arm"):
            out.append(f"arm[T.{part[3:]}]")
        elif part.startswith("visit"):
            out.append(f"visit[T.{part[5:]}]")
        else:
            out.append(part)
    return ":".join(out)


def test_reference_data_is_the_data_r_read():
    d = data()
    assert d["score"].notna().sum() == NLME["fits"]["sp_exp"]["n_obs"] == 509
    assert d.loc[d["score"].notna(), "id"].nunique() == NLME["fits"]["sp_exp"]["n_subjects"]
    # subject-specific times: nearly every subject has its own time vector
    assert d.groupby("id")["day"].apply(tuple).nunique() > 140


# ---- nlme::gls ---------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", list(NLME_FITS))
def test_coefficients_and_se_vs_nlme(entry):
    ref = NLME["fits"][entry]
    fit = fitted(*NLME_FITS[entry])
    terms = [r_term(t) for t in ref["coef"]["term"]]
    got = fit.coef.loc[terms]
    np.testing.assert_allclose(got["estimate"], ref["coef"]["estimate"], rtol=RTOL)
    np.testing.assert_allclose(got["std_error"], ref["coef"]["std_error"], rtol=RTOL)


@pytest.mark.parametrize("entry", list(NLME_FITS))
def test_loglik_vs_nlme(entry):
    fit = fitted(*NLME_FITS[entry])
    assert abs(fit.neg2loglik - NLME["fits"][entry]["minus2loglik"]) < LOGLIK_ATOL
    assert fit.n_obs == NLME["fits"][entry]["n_obs"]


@pytest.mark.parametrize("entry", list(NLME_FITS))
def test_covariance_parameters_vs_nlme(entry):
    ref = NLME["fits"][entry]
    covariance = NLME_FITS[entry][0]
    table = fitted(*NLME_FITS[entry]).cov_parameters.set_index("parameter")
    # SAS's names and order: the correlation parameter first, then Residual
    assert list(table.index) == [SAS_NAME[covariance], "Residual"]
    np.testing.assert_allclose(table.loc["Residual", "estimate"], ref["sigma2"], rtol=RTOL)
    np.testing.assert_allclose(table.loc[SAS_NAME[covariance], "estimate"], ref["value"], rtol=RTOL)
    assert (table["std_error"] > 0).all()


@pytest.mark.parametrize("entry", ["sp_exp", "sp_gau"])
def test_kenward_roger_vs_r_definition(entry):
    ref = NLME["fits"][entry]["kenward_roger"]
    assert abs(ref["check_loglik_vs_nlme"]) < 1e-8
    fit = fitted(entry, "day", "reml", None, "kenward-roger")
    got = fit.coef.loc[[r_term(t) for t in ref["coef"]["term"]]]
    np.testing.assert_allclose(got["std_error"], ref["coef"]["std_error"], rtol=RTOL)
    np.testing.assert_allclose(got["df"], ref["coef"]["df"], rtol=1e-4)
    # the KR adjustment is visible at this tolerance (else the test could not fail)
    plain = NLME["fits"][entry]["coef"]["std_error"]
    assert np.max(np.abs(np.asarray(ref["coef"]["std_error"]) / plain - 1)) > 10 * RTOL


@pytest.mark.parametrize("entry", ["sp_exp", "sp_gau"])
def test_covariance_parameter_se_vs_observed_information(entry):
    W = np.asarray(NLME["fits"][entry]["kenward_roger"]["W"])
    table = fitted(entry, "day").cov_parameters
    np.testing.assert_allclose(table["std_error"], np.sqrt(np.diag(W)), rtol=RTOL)


SANDWICH = {"sp_exp_sandwich": "day", "sp_exp_2d_sandwich": ("x1", "x2")}
CR = {"CR0": "empirical", "CR2": "empirical-bias-reduced", "CR3": "jackknife"}


@pytest.mark.parametrize("cr", list(CR))
@pytest.mark.parametrize("entry", list(SANDWICH))
def test_empirical_vcov_vs_clubsandwich(entry, cr):
    """Each subject's own covariance at its own times enters the sandwich."""
    ref = NLME["fits"][entry]
    d = data()
    d = d[d["score"].notna()]
    d = d[d.groupby("id")["score"].transform("size") > 1]
    time = SANDWICH[entry]
    fit = peerstats.mmrm(
        FORMULA,
        d,
        subject="id",
        visit="visit",
        covariance="sp_exp",
        time=list(time) if isinstance(time, tuple) else time,
        vcov=CR[cr],
    )
    assert fit.n_obs == ref["n_obs"] and fit.n_subjects == ref["n_subjects"]
    assert abs(fit.neg2loglik - ref["minus2loglik"]) < LOGLIK_ATOL
    terms = [r_term(t) for t in ref["coef"]["term"]]
    V = np.asarray(ref["sandwich"][cr]["vcov"])
    got = fit.vcov.loc[terms, terms].to_numpy()
    assert np.max(np.abs(got - V)) <= RTOL * np.max(np.abs(V))
    coef = fit.coef.loc[terms]
    np.testing.assert_allclose(coef["std_error"], ref["sandwich"][cr]["se"], rtol=RTOL)
    np.testing.assert_allclose(coef["df"], ref["sandwich"][cr]["df_satterthwaite"], rtol=RTOL)
    # the sandwich differs from the model-based SEs at this tolerance
    assert np.max(np.abs(coef["std_error"].to_numpy() / ref["coef"]["std_error"] - 1)) > 100 * RTOL


# ---- predictions and residuals at each subject's own times --------------------------------------
def _nlme_mean_and_cov(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """x beta and the SP(EXP) covariance of some rows of one subject at nlme's estimates."""
    ref = NLME["fits"]["sp_exp"]
    b = dict(zip(ref["coef"]["term"], ref["coef"]["estimate"]))
    peer = (rows["arm"] == "peer").to_numpy(float)
    mu = b["(Intercept)"] + b["baseline"] * rows["baseline"].to_numpy() + b["armpeer"] * peer
    for v in ("V2", "V3", "V4"):
        at = (rows["visit"] == v).to_numpy(float)
        mu = mu + at * (b[f"visit{v}"] + peer * b[f"armpeer:visit{v}"])
    t = rows["day"].to_numpy(float)
    S = ref["sigma2"] * np.exp(-np.abs(np.subtract.outer(t, t)) / ref["value"])
    return mu, S


def test_conditional_predictions_use_the_subjects_own_times():
    d = data()
    fit = fitted("sp_exp", "day")
    pred = fit.predict()
    who = d.loc[d["score"].isna(), "id"].unique()[:6]
    for sid in who:
        rows = d[d["id"] == sid]
        mu, S = _nlme_mean_and_cov(rows)
        o = rows["score"].notna().to_numpy()
        m = ~o
        expected = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(
            S[np.ix_(o, o)], rows["score"].to_numpy()[o] - mu[o]
        )
        got = pred.loc[rows.index[m], "prediction"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=RTOL)
        np.testing.assert_allclose(pred.loc[rows.index[o], "prediction"], rows["score"][o])
    marginal = fit.predict(conditional=False)
    rows = d[d["id"] == who[0]]
    np.testing.assert_allclose(
        marginal.loc[rows.index, "prediction"], _nlme_mean_and_cov(rows)[0], rtol=RTOL
    )


def test_predictions_for_new_data_read_its_times():
    """New data with other times: the conditional mean follows those times."""
    d = data()
    fit = fitted("sp_exp", "day")
    sid = d.loc[d["score"].isna(), "id"].unique()[0]
    rows = d[d["id"] == sid].copy()
    rows["day"] = rows["day"] + np.arange(len(rows)) * 3  # stretch this subject's calendar
    mu, S = _nlme_mean_and_cov(rows)
    o = rows["score"].notna().to_numpy()
    m = ~o
    expected = mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(
        S[np.ix_(o, o)], rows["score"].to_numpy()[o] - mu[o]
    )
    got = fit.predict(rows).loc[rows.index[m], "prediction"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # a missing time where the outcome is missing: no conditional prediction for that row
    rows2 = rows.copy()
    rows2.loc[rows2.index[m][0], "day"] = np.nan
    assert np.isnan(fit.predict(rows2).loc[rows2.index[m][0], "prediction"])
    rows3 = rows.copy()
    rows3.loc[rows3.index[o][0], "day"] = np.nan
    with pytest.raises(ModelSpecificationError, match=r"need the time of every observed row"):
        fit.predict(rows3)


def test_normalized_residuals_use_the_subjects_own_times():
    d = data()
    fit = fitted("sp_exp", "day")
    res = fit.residuals(type="normalized")
    for sid in d["id"].unique()[:5]:
        rows = d[(d["id"] == sid) & d["score"].notna()]
        mu, S = _nlme_mean_and_cov(rows)
        expected = np.linalg.solve(np.linalg.cholesky(S), rows["score"].to_numpy() - mu)
        np.testing.assert_allclose(res.loc[rows.index], expected, rtol=RTOL, atol=RTOL)
    pearson = fit.residuals(type="pearson")
    rows = d[d["score"].notna()].head(8)
    mu, _ = _nlme_mean_and_cov(rows)
    sd = np.sqrt(NLME["fits"]["sp_exp"]["sigma2"])
    np.testing.assert_allclose(pearson.loc[rows.index], (rows["score"] - mu) / sd, rtol=RTOL)


def test_subjects_sharing_times_pool_into_block_types():
    """At the planned days every subject with the same visits shares one covariance: the fit
    (checked against nlme above) uses one block type per missingness pattern, while the
    subject-specific days give about one block type per subject."""
    planned = fitted("sp_exp", "planned")
    actual = fitted("sp_exp", "day")
    d = data()
    patterns = d[d["score"].notna()].groupby("id")["visit"].apply(tuple).nunique()
    assert planned.fit_info["n_block_types"] == patterns
    assert actual.fit_info["n_block_types"] > 140


def test_summary_covariance_is_at_mean_visit_times():
    fit = fitted("sp_exp", "day")
    ref = NLME["fits"]["sp_exp"]
    d = data()
    t = d[d["score"].notna()].groupby("visit")["day"].mean().to_numpy()
    expected = ref["sigma2"] * np.exp(-np.abs(np.subtract.outer(t, t)) / ref["value"])
    np.testing.assert_allclose(fit.covariance.to_numpy(), expected, rtol=RTOL)


# ---- R mmrm: Satterthwaite df ------------------------------------------------------------------
MMRM_FITS = {
    "sp_exp": ("sp_exp", "day", None),
    "sp_gau": ("sp_gau", "x1", None),  # in weeks: mmrm's optimisers fail on days (README)
    "sp_exp_2d": ("sp_exp", ("x1", "x2"), None),
    "sp_exp_group": ("sp_exp", "day", "arm"),
}
# (mmrm entry, peerstats covariance): mmrm's sp_exp entries also check our sp_pow twin
MMRM_CASES = [(e, MMRM_FITS[e][0]) for e in MMRM_FITS] + [
    (e, "sp_pow") for e in MMRM_FITS if MMRM_FITS[e][0] == "sp_exp"
]


@pytest.mark.parametrize(
    ("entry", "covariance"), MMRM_CASES, ids=[f"{e}-{c}" for e, c in MMRM_CASES]
)
def test_satterthwaite_df_vs_r_mmrm(entry, covariance):
    """mmrm's sp_exp is sigma^2 rho^d (SAS SP(POW)); the df are the same for our sp_exp and
    sp_pow fits (the same model in two parameterisations)."""
    ref = RMMRM["datasets"]["spatial"]["fits"][entry]
    assert ref["converged"]
    _, time, group = MMRM_FITS[entry]
    fit = fitted(covariance, time, "reml", group)
    got = fit.coef.loc[[r_term(t) for t in ref["coef"]["term"]]]
    np.testing.assert_allclose(got["estimate"], ref["coef"]["estimate"], rtol=MMRM_RTOL)
    np.testing.assert_allclose(got["std_error"], ref["coef"]["std_error"], rtol=MMRM_RTOL)
    np.testing.assert_allclose(got["df"], ref["coef"]["df"], rtol=MMRM_RTOL)
    assert abs(fit.neg2loglik - ref["minus2loglik"]) < LOGLIK_ATOL
    ft = ref["ftest"]
    cols = list(fit.coef.index)
    L = np.zeros((len(ft["terms"]), len(cols)))
    for i, t in enumerate(ft["terms"]):
        L[i, cols.index(r_term(t))] = 1.0
    res = fit.test(L).iloc[0]
    np.testing.assert_allclose(res["num_df"], ft["num_df"])
    np.testing.assert_allclose(res["den_df"], ft["denom_df"], rtol=MMRM_RTOL)
    np.testing.assert_allclose(res["statistic"], ft["statistic"], rtol=MMRM_RTOL)


def test_range_vs_r_mmrm():
    ref = RMMRM["datasets"]["spatial"]["fits"]
    exp_ = fitted("sp_exp", "day").cov_parameters.set_index("parameter")["estimate"]
    gau = fitted("sp_gau", "x1").cov_parameters.set_index("parameter")["estimate"]
    np.testing.assert_allclose(exp_["SP(EXP)"], ref["sp_exp"]["range_exp"], rtol=MMRM_RTOL)
    np.testing.assert_allclose(exp_["Residual"], ref["sp_exp"]["sigma2"], rtol=MMRM_RTOL)
    np.testing.assert_allclose(gau["SP(GAU)"], ref["sp_gau"]["range_gau"], rtol=MMRM_RTOL)


def test_group_parameters_vs_r_mmrm():
    """sp_exp(day | arm / id): mmrm's theta per arm is (log sigma^2, logit rho), rho^d."""
    ref = RMMRM["datasets"]["spatial"]["fits"]["sp_exp_group"]["theta_by_group"]
    table = fitted("sp_exp", "day", "reml", "arm").cov_parameters
    for lev, (t0, t1) in ref.items():
        sub = table[table["group"] == lev].set_index("parameter")["estimate"]
        rho = 1 / (1 + np.exp(-t1))
        np.testing.assert_allclose(sub["Residual"], np.exp(t0), rtol=MMRM_RTOL)
        np.testing.assert_allclose(sub["SP(EXP)"], -1 / np.log(rho), rtol=MMRM_RTOL)


# ---- bad input ---------------------------------------------------------------------------------
def _fit(d, **kw):
    args = {"subject": "id", "visit": "visit", "covariance": "sp_exp", "time": "day"} | kw
    return peerstats.mmrm(FORMULA, d, **args)


def test_spatial_without_time_is_an_error():
    with pytest.raises(ModelSpecificationError, match=r"needs time="):
        _fit(data(), time=None)


def test_time_with_a_visit_structure_is_an_error():
    with pytest.raises(ModelSpecificationError, match=r"time= only applies to the spatial"):
        _fit(data(), covariance="ar1")


def test_time_column_not_in_data():
    with pytest.raises(ModelSpecificationError, match=r"not columns of data"):
        _fit(data(), time="days")


def test_non_numeric_time_is_an_error():
    d = data().assign(day=lambda x: pd.to_datetime("2026-01-01") + pd.to_timedelta(x.day, "D"))
    with pytest.raises(ModelSpecificationError, match=r"must be numeric"):
        _fit(d)
    with pytest.raises(ModelSpecificationError, match=r"must be numeric"):
        _fit(data().assign(day=data()["day"].astype(str)))


def test_duplicated_time_within_subject_is_an_error():
    d = data().copy()
    i = d.index[(d["id"] == "Q001") & (d["visit"] == "V2")][0]
    d.loc[i, "day"] = d.loc[i - 1, "day"]
    with pytest.raises(ModelSpecificationError, match=r"share their time.*'Q001'"):
        _fit(d)
    # in 2-D only the full coordinate vector counts: equal x1 with different x2 is fine
    d2 = data().copy()
    d2.loc[i, "x1"] = d2.loc[i - 1, "x1"]
    assert d2.loc[i, "x2"] != d2.loc[i - 1, "x2"]
    _fit(d2, time=["x1", "x2"])


def test_missing_time_is_an_error_only_on_analysed_rows():
    d = data().copy()
    observed = d.index[d["score"].notna()]
    d.loc[observed[3], "day"] = np.nan
    with pytest.raises(ModelSpecificationError, match=r"missing \(or infinite\) on 1 row"):
        _fit(d)
    # a missing time where the outcome is missing too does not matter
    d = data().copy()
    unobserved = d.index[d["score"].isna()]
    d.loc[unobserved[:5], "day"] = np.nan
    fit = _fit(d)
    assert abs(fit.neg2loglik - NLME["fits"]["sp_exp"]["minus2loglik"]) < LOGLIK_ATOL


def test_bad_time_argument():
    with pytest.raises(ModelSpecificationError, match=r"column name or a non-empty list"):
        _fit(data(), time=[])
    with pytest.raises(ModelSpecificationError, match=r"names a column twice"):
        _fit(data(), time=["x1", "x1"])
