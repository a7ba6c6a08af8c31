"""The prepared MMRM (prepare_mmrm / refit / jackknife) against independent full fits.

Expected values come from separate ``peerstats.mmrm()`` calls on re-built data sets (a subset,
duplicated rows, every leave-one-out set), whose every step (formula, factors, checks, pooled
statistics from the rows, optimisation from the empirical start) is independent of the refit
path under test (stored design, subtracted statistics, warm start). mmrm() itself is validated
against SAS PROC MIXED in test_mmrm_sas.py. Conditional moments are checked against a direct
dense computation (inverse of each subject's full covariance) written out in the test.

Tolerances:
- refit of the original data: identical (==) to the full fit (no iteration is taken);
- refits vs full fits on re-built data: both optimisations stop at a Newton decrement below
  1e-9 (in -2 log-likelihood units), so -2 log-likelihood agrees to 1e-6 absolute and fixed
  effects to 1e-5 x their standard error; model-based covariances to 1e-5 x se_i se_j, Sigma to 1e-5 x sqrt(Sigma_ii Sigma_jj);
- conditional moments vs the dense formula: 1e-10 relative (the same algebra, other order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ConvergenceError, ModelSpecificationError
from peerstats.models._predict import conditional_moments
from peerstats.models.prepared import Refit, prepare_mmrm

FEV = Path(__file__).parents[1] / "reference" / "sas_fev" / "fev_data.csv"
FORMULA = "FEV1 ~ RACE + SEX + ARMCD * AVISIT"
KW = dict(subject="USUBJID", visit="AVISIT", reference={"ARMCD": "PBO"})
LL_TOL = 1e-6
BETA_TOL = 1e-5  # x standard error
VCOV_RTOL = 1e-5
SIGMA_TOL = 1e-5  # x sqrt(Sigma_ii Sigma_jj)


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FEV)


@pytest.fixture(scope="module")
def prep(fev):
    return prepare_mmrm(FORMULA, fev, covariance="us", **KW)


@pytest.fixture(scope="module")
def full(fev):
    return peerstats.mmrm(FORMULA, fev, covariance="us", **KW)


def assert_same_fit(r: Refit, fit) -> None:
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    assert abs(r.neg2loglik - fit.neg2loglik) < LL_TOL
    np.testing.assert_array_less(np.abs(r.beta - fit.params.to_numpy()), BETA_TOL * se)
    scale = np.outer(se, se)
    np.testing.assert_array_less(np.abs(r.vcov - fit.vcov.to_numpy()) / scale, VCOV_RTOL)
    covs = fit.covariance if isinstance(fit.covariance, dict) else {"": fit.covariance}
    for S_r, S_f in zip(r.sigmas, covs.values()):
        d = np.sqrt(np.diag(S_f.to_numpy()))
        np.testing.assert_array_less(np.abs(S_r - S_f.to_numpy()) / np.outer(d, d), SIGMA_TOL)


def test_layout_attributes(prep, fev, full):
    assert prep.columns == list(full.params.index)
    assert prep.visits == ("VIS1", "VIS2", "VIS3", "VIS4")
    assert list(prep.subjects) == list(pd.unique(fev["USUBJID"]))
    assert prep.group_levels == ()
    assert prep.X_all.shape == (len(fev), len(prep.columns))
    assert not np.isnan(prep.X_all).any()  # missing-outcome rows have a design too
    np.testing.assert_array_equal(np.isnan(prep.y_all), fev["FEV1"].isna().to_numpy())
    np.testing.assert_array_equal(
        prep.subjects[prep.subject_codes].to_numpy(), fev["USUBJID"].to_numpy()
    )
    np.testing.assert_array_equal(np.array(prep.visits)[prep.visit_codes], fev["AVISIT"].to_numpy())
    # the design of new data with the same coding: every row, observed or not
    np.testing.assert_array_equal(prep.design_matrix(fev), prep.X_all)
    # the arm set to the reference arm: the ARMCD columns vanish
    ref = prep.design_matrix(fev.assign(ARMCD="PBO"))
    arm_cols = [j for j, c in enumerate(prep.columns) if "ARMCD" in c]
    assert arm_cols and np.all(ref[:, arm_cols] == 0)


def test_fit_equals_mmrm(prep, full):
    fit = prep.fit()
    assert fit.neg2loglik == full.neg2loglik
    np.testing.assert_array_equal(fit.params.to_numpy(), full.params.to_numpy())
    pd.testing.assert_frame_equal(fit.coef, full.coef)


def test_refit_original_outcome_is_the_full_fit(prep, full):
    for r in (prep.refit(), prep.refit(prep.y_all.copy())):
        assert r.converged and r.iterations == 0
        assert r.neg2loglik == full.neg2loglik
        np.testing.assert_array_equal(r.beta, full.params.to_numpy())
        np.testing.assert_array_equal(r.vcov, full._inference.C)
        np.testing.assert_array_equal(r.theta, full._theta)


def test_refit_subset_equals_mmrm_on_subset(prep, fev):
    keep = prep.subjects[::3]
    sub = fev[fev["USUBJID"].isin(keep)]
    expected = peerstats.mmrm(FORMULA, sub, covariance="us", **KW)
    assert_same_fit(prep.refit(drop=~prep.subjects.isin(keep)), expected)
    # integer indices give the same refit
    idx = np.flatnonzero(~prep.subjects.isin(keep))
    assert_same_fit(prep.refit(drop=idx), expected)
    # so do zero frequency weights
    assert_same_fit(prep.refit(subject_weights=prep.subjects.isin(keep).astype(float)), expected)


def test_weight_two_equals_duplicated_subject(prep, fev):
    w = np.ones(len(prep.subjects))
    w[[3, 50]] = 2.0
    dup = fev[fev["USUBJID"].isin(prep.subjects[[3, 50]])]
    dup = dup.assign(USUBJID=dup["USUBJID"] + "_copy")
    expected = peerstats.mmrm(FORMULA, pd.concat([fev, dup]), covariance="us", **KW)
    assert_same_fit(prep.refit(subject_weights=w), expected)


def test_refit_new_outcome_equals_mmrm(prep, fev):
    rng = np.random.default_rng(1)
    y = prep.y_all.copy()
    miss = np.isnan(y)
    y[miss] = 40 + rng.normal(0, 5, miss.sum())  # an "imputed" data set: patterns change
    y[rng.choice(len(y), 30, replace=False)] = np.nan
    expected = peerstats.mmrm(FORMULA, fev.assign(FEV1=y), covariance="us", **KW)
    assert_same_fit(prep.refit(y), expected)


@pytest.mark.parametrize(
    "covariance,group", [("us", None), ("ar1h", "ARMCD"), ("cs", None), ("toeph", None)]
)
def test_jackknife_equals_leave_one_out_fits(fev, covariance, group):
    subjects = pd.unique(fev["USUBJID"])[:40]
    small = fev[fev["USUBJID"].isin(subjects)]
    kw = dict(KW, covariance=covariance, group=group)
    prep = prepare_mmrm("FEV1 ~ ARMCD * AVISIT", small, **kw)
    jack = prep.jackknife()
    assert len(jack) == len(prep.subjects)
    every = 1 if covariance == "us" else 4  # every subject for us, every 4th otherwise
    for i in range(0, len(prep.subjects), every):
        rest = small[small["USUBJID"] != prep.subjects[i]]
        try:
            expected = peerstats.mmrm("FEV1 ~ ARMCD * AVISIT", rest, **kw)
        except ModelSpecificationError:
            continue
        assert_same_fit(jack[i], expected)


def test_jackknife_subject_without_outcome_is_the_full_fit(fev):
    subjects = pd.unique(fev["USUBJID"])[:40]
    small = fev[fev["USUBJID"].isin(subjects)].copy()
    small.loc[small["USUBJID"] == subjects[7], "FEV1"] = np.nan
    prep = prepare_mmrm("FEV1 ~ ARMCD * AVISIT", small, covariance="cs", **KW)
    fit = prep.fit()
    jack = prep.jackknife()
    assert jack[7].neg2loglik == fit.neg2loglik
    assert len(jack) == 40


def test_bad_refit_arguments(prep):
    n = len(prep.subjects)
    with pytest.raises(ModelSpecificationError, match="out of range"):
        prep.refit(drop=n)
    with pytest.raises(ModelSpecificationError, match="boolean drop mask"):
        prep.refit(drop=np.zeros(n - 1, dtype=bool))
    with pytest.raises(ModelSpecificationError, match="int index"):
        prep.refit(drop=[0.5])
    with pytest.raises(ModelSpecificationError, match="non-negative"):
        prep.refit(subject_weights=-np.ones(n))
    with pytest.raises(ModelSpecificationError, match="one value per subject"):
        prep.refit(subject_weights=np.ones(n + 1))
    with pytest.raises(ModelSpecificationError, match="one value per row"):
        prep.refit(np.ones(3))
    with pytest.raises(ModelSpecificationError, match="theta0"):
        prep.refit(theta0=np.ones(2))
    with pytest.raises(ModelSpecificationError, match="at least two subjects"):
        prep.refit(drop=np.arange(1, n))
    # a subset without any PBO subject: the arm columns are not estimable
    arm = prep.X_all[:, prep.columns.index("ARMCD[T.TRT]")]
    trt_subjects = np.unique(prep.subject_codes[arm == 1])
    with pytest.raises(ModelSpecificationError, match="all zero|rank deficient"):
        prep.refit(drop=np.setdiff1d(np.arange(n), trt_subjects))


def test_refit_that_cannot_converge_raises(prep):
    # an outcome the mean model fits exactly: the likelihood has no optimum (Sigma -> 0)
    y = prep.X_all @ np.arange(1.0, len(prep.columns) + 1)
    y[np.isnan(prep.y_all)] = np.nan
    with pytest.raises(ConvergenceError):
        prep.refit(y)


def test_conditional_moments_dense_formula(prep, full):
    beta = full.params.to_numpy()
    S = full.covariance.to_numpy()
    mu = prep.X_all @ beta
    mean, blocks = conditional_moments(mu, prep.y_all, prep.subject_codes, prep.visit_codes, S)
    # dense: per subject, condition the joint normal of all its rows
    for s in range(0, len(prep.subjects), 7):
        rows = np.flatnonzero(prep.subject_codes == s)
        v = prep.visit_codes[rows]
        miss = np.isnan(prep.y_all[rows])
        if not miss.any():
            assert s not in blocks
            continue
        Sv = S[np.ix_(v, v)]
        prec = np.linalg.inv(Sv)  # conditional via the precision matrix
        Pmm = prec[np.ix_(miss, miss)]
        cov = np.linalg.inv(Pmm)
        r_o = prep.y_all[rows][~miss] - mu[rows][~miss]
        cm = mu[rows][miss] - cov @ prec[np.ix_(miss, ~miss)] @ r_o
        got_rows, got_cov = blocks[s]
        np.testing.assert_array_equal(got_rows, rows[miss])
        np.testing.assert_allclose(mean[rows[miss]], cm, rtol=1e-10)
        np.testing.assert_allclose(got_cov, cov, rtol=1e-10)
        np.testing.assert_array_equal(mean[rows[~miss]], prep.y_all[rows][~miss])
    # a callable and a per-subject array give the same
    per = np.broadcast_to(S, (len(prep.subjects), 4, 4))
    mean2, _ = conditional_moments(mu, prep.y_all, prep.subject_codes, prep.visit_codes, per)
    mean3, _ = conditional_moments(
        mu, prep.y_all, prep.subject_codes, prep.visit_codes, lambda i: S
    )
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(mean, mean3)
