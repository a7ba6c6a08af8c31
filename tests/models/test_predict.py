"""fit.predict / fit.fitted / fit.residuals against R mmrm and nlme::gls on the FEV data.

Source of every expected number: tests/reference/r_predict/make_r_predict.R (R mmrm 0.3.18
``predict(conditional = TRUE | FALSE, interval = "confidence", se.fit = TRUE)``,
``fitted``, ``residuals(type = "response" | "pearson" | "normalized")``; nlme::gls residuals as
a second source), written to r_predict_reference.json. No expected value comes from peerstats.

Tolerances: both fits stop at a tight convergence criterion but not at the identical point
(R mmrm stops its optimiser at its own tolerance), so the covariance estimates differ in their
6th-7th significant digit. Predictions and fitted values: 1e-6 relative to the outcome's scale
(|y| ~ 40); standard errors: 1e-5 relative; residuals: 1e-6 x the residual SD scale (raw) or
1e-5 absolute (pearson and normalized residuals are of order 1). R mmrm is converged tightly in
the script (its -2 REML log-likelihood equals ours to 1e-10); nlme::gls stops 2.2e-7 above the
optimum whatever its controls, so residuals against gls use 1e-4 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).parents[1] / "reference"
FEV = REF / "sas_fev" / "fev_data.csv"
JSON = REF / "r_predict" / "r_predict_reference.json"
PRED_TOL = 1e-6 * 40
SE_RTOL = 1e-5
RAW_TOL = 1e-6 * 10
STD_TOL = 1e-5
GLS_TOL = 1e-4  # nlme::gls stops 2.2e-7 above the optimum of -2 l (see the JSON's neg2loglik)


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(JSON.read_text())


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FEV)


@pytest.fixture(scope="module")
def fits(fev) -> dict:
    kw = dict(subject="USUBJID", visit="AVISIT", reference={"ARMCD": "PBO"})
    return {
        "us": peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", fev, covariance="us", **kw),
        "ar1_group": peerstats.mmrm(
            "FEV1 ~ ARMCD * AVISIT", fev, covariance="ar1", group="ARMCD", **kw
        ),
        "us_weighted": peerstats.mmrm(
            "FEV1 ~ RACE + SEX + ARMCD * AVISIT", fev, covariance="us", weights="WEIGHT", **kw
        ),
    }


@pytest.mark.parametrize("model", ["us", "ar1_group"])
def test_conditional_predictions(fits, ref, fev, model):
    r = ref[model]["predict_conditional"]
    got = fits[model].predict(fev)
    assert list(got.columns) == ["prediction", "std_error"]
    assert got.index.equals(fev.index)
    np.testing.assert_allclose(got["prediction"], r["fit"], rtol=0, atol=PRED_TOL)
    np.testing.assert_allclose(got["std_error"], r["se"], rtol=SE_RTOL, atol=1e-12)
    # observed rows: the value itself with standard error 0
    obs = fev["FEV1"].notna().to_numpy()
    np.testing.assert_array_equal(got["prediction"][obs], fev["FEV1"][obs])
    assert np.all(got["std_error"][obs] == 0)
    # default data: the data of the fit
    pd.testing.assert_frame_equal(fits[model].predict(), got)


@pytest.mark.parametrize("model", ["us", "ar1_group"])
def test_marginal_predictions(fits, ref, fev, model):
    r = ref[model]["predict_marginal"]
    got = fits[model].predict(fev, conditional=False)
    np.testing.assert_allclose(got["prediction"], r["fit"], rtol=0, atol=PRED_TOL)
    # R mmrm 0.3.18's unconditional path labels diag(X V X') "se": it is the variance (its
    # conditional path takes the square root), so compare our squared standard errors with it
    np.testing.assert_allclose(got["std_error"] ** 2, r["se"], rtol=2 * SE_RTOL)


@pytest.mark.parametrize("model", ["us", "ar1_group", "us_weighted"])
def test_fitted_and_residuals_against_r_mmrm(fits, ref, fev, model):
    r = ref[model]
    fit = fits[model]
    rows = np.array(r["rows"]) - 1
    assert list(fit.fitted().index) == list(fev.index[rows])
    np.testing.assert_allclose(fit.fitted(), r["fitted"], rtol=0, atol=PRED_TOL)
    np.testing.assert_allclose(fit.residuals(), r["residuals_response"], rtol=0, atol=RAW_TOL)
    np.testing.assert_allclose(
        fit.residuals("pearson"), r["residuals_pearson"], rtol=0, atol=STD_TOL
    )
    np.testing.assert_allclose(
        fit.residuals("normalized"), r["residuals_normalized"], rtol=0, atol=STD_TOL
    )


def test_residuals_against_nlme_gls(fits, ref):
    r = ref["gls_us"]
    fit = fits["us"]
    np.testing.assert_allclose(fit.residuals(), r["residuals_response"], rtol=0, atol=GLS_TOL)
    np.testing.assert_allclose(
        fit.residuals("pearson"), r["residuals_pearson"], rtol=0, atol=GLS_TOL
    )
    np.testing.assert_allclose(
        fit.residuals("normalized"), r["residuals_normalized"], rtol=0, atol=GLS_TOL
    )


def test_same_optimum_as_r(fits, ref):
    for model in ("us", "ar1_group", "us_weighted"):
        assert abs(fits[model].neg2loglik - ref[model]["neg2loglik"]) < 1e-6


def test_predict_new_data(fits, fev):
    fit = fits["us"]
    base = fit.predict(fev)
    # a shuffled copy with a fresh index gives the same predictions row by row
    shuf = fev.sample(frac=1.0, random_state=3).reset_index()
    got = fit.predict(shuf.drop(columns="index"))
    np.testing.assert_allclose(got["prediction"], base["prediction"][shuf["index"]], atol=1e-9)
    # without the outcome column every row is predicted marginally
    marg = fit.predict(fev.drop(columns="FEV1"))
    np.testing.assert_allclose(marg, fit.predict(fev, conditional=False), atol=1e-9)
    # a subject's missing visit: its conditional mean moves with the subject's observed values
    subj = fev[fev["USUBJID"] == "PT1"].copy()
    shifted = subj.assign(FEV1=subj["FEV1"] + 5.0)
    a, b = fit.predict(subj), fit.predict(shifted)
    miss = subj["FEV1"].isna().to_numpy()
    assert np.all(b["prediction"][miss].to_numpy() > a["prediction"][miss].to_numpy())


def test_predict_errors(fits, fev):
    fit = fits["us"]
    with pytest.raises(ModelSpecificationError, match="not (levels|visits) of the fit"):
        fit.predict(fev.assign(AVISIT="VIS9"))
    with pytest.raises(ModelSpecificationError, match="not levels of the fit"):
        fit.predict(fev.assign(ARMCD="XYZ"))
    with pytest.raises(ModelSpecificationError, match="lacks column"):
        fit.predict(fev.drop(columns="USUBJID"))
    with pytest.raises(ModelSpecificationError, match="type="):
        fit.residuals("studentized")
    # rows with a missing covariate: NaN predictions, not an error
    got = fit.predict(fev.assign(SEX=np.where(fev.index == 1, np.nan, fev["SEX"])))
    assert np.isnan(got["prediction"].iloc[1])
