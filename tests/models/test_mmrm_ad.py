"""Homogeneous antedependence (``covariance="ad"``) against R mmrm's ``ad``.

Source of every expected number: tests/reference/r_spatial/r_spatial_mmrm.json, written by
tests/reference/r_spatial/make_r_spatial_mmrm.R with R mmrm 0.3.18 (README.md there), on the
FEV data of the SAS listings (also with separate parameters per arm, mmrm
``ad(AVISIT | ARMCD / USUBJID)``) and on the SYNTHETIC spatial data (visits V1-V4). No expected
value comes from peerstats.

Tolerances and why (R mmrm fitted with nlminb, automatic-differentiation gradients; its default
first optimiser L-BFGS-B stopped 5e-6 above the optimum of -2 l on the grouped fit, 1e-3 off in
covariances, so the script asks for nlminb; observed agreement ~1e-11 in estimates and SEs and
<= 2.4e-6 in df):
- estimates, standard errors, covariance matrix, covariance parameters: 1e-5 relative;
  estimates and covariance elements near 0 also 1e-5 x their SE / the variance.
- Satterthwaite df (coefficients and the F test of the interaction): 1e-5 relative.
- -2 REML log-likelihood: 1e-5 absolute.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats

REF = Path(__file__).parents[1] / "reference" / "r_spatial"
R = json.loads((REF / "r_spatial_mmrm.json").read_text())

RTOL = 1e-5
DF_RTOL = 1e-5
LOGLIK_ATOL = 1e-5

# (dataset, entry) -> group column or None
CASES = {("fev", "ad"): None, ("fev", "ad_group"): "ARMCD", ("spatial", "ad"): None}
IDS = [f"{ds}-{e}" for ds, e in CASES]
FACTORS = {
    "fev": ["RACE", "SEX", "ARMCD", "AVISIT"],
    "spatial": ["arm", "visit"],
}


@cache
def data(ds: str) -> pd.DataFrame:
    return pd.read_csv(REF / R["datasets"][ds]["file"])


@cache
def fitted(ds: str, entry: str):
    info = R["datasets"][ds]
    return peerstats.mmrm(
        info["formula"],
        data(ds),
        subject=info["subject"],
        visit=info["visit"],
        covariance="ad",
        group=CASES[(ds, entry)],
    )


def r_term(ds: str, term: str) -> str:
    """R coefficient name -> formulaic's (``ARMCDTRT:AVISITVIS2`` -> ``ARMCD[T.TRT]:...``)."""
    d = data(ds)
    parts = []
    for part in term.split(":"):
        if part == "(Intercept)":
            parts.append("Intercept")
            continue
        for f in sorted(FACTORS[ds], key=len, reverse=True):
            levels = set(d[f].dropna().astype(str))
            if part.startswith(f) and part[len(f) :] in levels:
                parts.append(f"{f}[T.{part[len(f) :]}]")
                break
        else:
            parts.append(part)
    return ":".join(parts)


@pytest.mark.parametrize(("ds", "entry"), list(CASES), ids=IDS)
def test_coefficients_se_df_vs_r_mmrm(ds, entry):
    ref = R["datasets"][ds]["fits"][entry]
    assert ref["converged"]
    fit = fitted(ds, entry)
    got = fit.coef.loc[[r_term(ds, t) for t in ref["coef"]["term"]]]
    se = np.asarray(ref["coef"]["std_error"])
    est = np.asarray(ref["coef"]["estimate"])
    # 1e-5 relative, or 1e-5 x the standard error for estimates near 0
    tol = np.maximum(RTOL * np.abs(est), RTOL * se)
    np.testing.assert_array_less(np.abs(got["estimate"].to_numpy() - est), tol)
    np.testing.assert_allclose(got["std_error"], se, rtol=RTOL)
    np.testing.assert_allclose(got["df"], ref["coef"]["df"], rtol=DF_RTOL)


@pytest.mark.parametrize(("ds", "entry"), list(CASES), ids=IDS)
def test_loglik_vs_r_mmrm(ds, entry):
    fit = fitted(ds, entry)
    assert abs(fit.neg2loglik - R["datasets"][ds]["fits"][entry]["minus2loglik"]) < LOGLIK_ATOL
    # one variance and T - 1 correlations (per group level)
    T = len(fit.visits)
    assert fit.n_cov_params == T * (2 if CASES[(ds, entry)] else 1)


@pytest.mark.parametrize(("ds", "entry"), list(CASES), ids=IDS)
def test_covariance_vs_r_mmrm(ds, entry):
    ref = R["datasets"][ds]["fits"][entry]
    fit = fitted(ds, entry)
    table = fit.cov_parameters
    if CASES[(ds, entry)] is None:
        per_level = [(None, np.asarray(ref["covariance"]), fit.covariance, table)]
    else:
        per_level = [
            (
                lev,
                np.asarray(ref["covariance_by_group"][lev]),
                fit.covariance[lev],
                table[table["group"] == lev],
            )
            for lev in fit.group_levels
        ]
    for _, expected, got, sub in per_level:
        got = got.to_numpy()
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * expected[0, 0])
        np.testing.assert_allclose(np.diag(got), got[0, 0], rtol=1e-12)  # one variance
        # the parameter table: Variance, then the lag-1 correlations Rho(1..T-1)
        T = expected.shape[0]
        assert list(sub["parameter"]) == ["Variance"] + [f"Rho({k})" for k in range(1, T)]
        rho = [expected[k - 1, k] / expected[0, 0] for k in range(1, T)]
        np.testing.assert_allclose(sub["estimate"], [expected[0, 0], *rho], rtol=RTOL, atol=RTOL)
        assert (sub["std_error"] > 0).all()


@pytest.mark.parametrize(("ds", "entry"), list(CASES), ids=IDS)
def test_interaction_f_test_vs_r_mmrm(ds, entry):
    ft = R["datasets"][ds]["fits"][entry]["ftest"]
    fit = fitted(ds, entry)
    cols = list(fit.coef.index)
    L = np.zeros((len(ft["terms"]), len(cols)))
    for i, t in enumerate(ft["terms"]):
        L[i, cols.index(r_term(ds, t))] = 1.0
    res = fit.test(L).iloc[0]
    assert res["num_df"] == ft["num_df"]
    np.testing.assert_allclose(res["den_df"], ft["denom_df"], rtol=DF_RTOL)
    np.testing.assert_allclose(res["statistic"], ft["statistic"], rtol=RTOL)
