"""peerstats.mmrm against R (nlme::gls, lme4/lmerTest/pbkrtest, emmeans) on three datasets.

Source of every expected number: tests/reference/r_mmrm/r_mmrm_reference.json, written by
tests/reference/r_mmrm/make_r_mmrm.R from the CSV files beside it (README.md there gives the R and
package versions and how to regenerate). No expected value comes from peerstats; CI has no R and
only reads the committed JSON.

Datasets: ``peer3`` (3 visits, 2 arms, 3 sites, baseline covariate, MAR dropout, n = 150),
``arm3_hetvar`` (4 visits, 3 arms, variances rising over visits, MAR + intermittent missingness,
n = 180) and ``fev`` (the FEV data of the SAS listings, as an R cross-check of the SAS fixtures).

Models: nlme::gls REML with us (corSymm + varIdent), cs, csh, ar1, ar1h and gls ML with us, all
with Satterthwaite df; the us REML model also with Kenward-Roger df (adjusted standard errors) in
both conventions below; and the compound-symmetry model as lmer ``(1 | subject)`` with lmerTest
Satterthwaite and pbkrtest Kenward-Roger df.

Tolerances and why:
- estimates, standard errors, marginal means, contrasts, CI limits: 1e-4 relative (the precision
  the SAS fixtures are held to). For values near zero the relative criterion is meaningless, so
  an estimate may also differ by 1e-4 x its standard error.
- -2 log-likelihood: 1e-3 absolute. The likelihood is flat at the optimum, so two optimisers that
  stop 1e-4 apart in the parameters agree to ~1e-6 here; 1e-4 relative of ~3000 (0.3) would be
  too loose to catch a wrong constant.
- covariance matrix elements: 1e-3 relative (the tolerance R mmrm holds against SAS for covariance
  elements; nlme stops up to ~3e-5 x sqrt(S_ii S_jj) from the optimum, see
  ``check_newton_step_scaled`` in the JSON), plus 1e-4 x the largest variance for near-zero
  elements.
- degrees of freedom: 1e-2 relative. The R Satterthwaite df come from numerical (Richardson)
  derivatives of the REML/ML likelihood at nlme's estimate; they agree with lmerTest to ~5e-6 on
  the cs model and round to SAS's printed integers on the FEV us/ML fit (sas_log.txt), but carry
  numerical-derivative and optimiser-stopping error.
- ML standard errors follow SAS: (X' V^-1 X)^-1 at the ML estimate. nlme's vcov() for an ML gls
  fit is larger by N / (N - p); the JSON keeps nlme's values as ``coef.std_error_nlme``.
- Kenward-Roger (us REML as gls, cs as lmer ``(1 | subject)``): the SAS / R mmrm convention, in
  which W
  (the covariance of the variance parameters) is the inverse *observed* REML information, so that
  a single contrast's KR df equal its Satterthwaite df (SAS/STAT documentation, "Kenward-Roger
  Degrees of Freedom Approximation": "By default, the observed information matrix of the
  covariance parameter estimates is used"; mmrm vignette "Kenward-Roger"). The JSON
  block ``kenward_roger`` holds it, computed with pbkrtest's own formulas (vcovAdj_internal,
  Lb_ddf) fed with that W (tests/reference/r_lmm/reml_generic.R). pbkrtest and lmerTest use the
  inverse *expected* information instead; their numbers are kept in ``kenward_roger_pbkrtest``
  (df 1-5% away, adjusted SEs up to ~4e-4) and are tested against
  ``peerstats.mmrm(..., kr_information="expected")`` at the same tolerances.
  CS is linear in (tau^2, sigma^2), SAS's own CS parameters: no second-derivative terms. For us
  the blocks sit in the ``us_reml`` entry; the covariance is parameterised linearly by the
  UN(i,j) elements of Sigma, as SAS (again no second-derivative terms), W comes from a numDeriv
  Hessian checked against the analytic observed information, and the expected information is
  pbkrtest's own (see ``kenward_roger_checks`` in the JSON). The two conventions differ by up to
  ~10% in df (FEV) and ~1e-3 in adjusted SEs on these data.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats

REF = Path(__file__).parents[1] / "reference" / "r_mmrm"
R = json.loads((REF / "r_mmrm_reference.json").read_text())

RTOL = 1e-4
LOGLIK_ATOL = 1e-3
COV_RTOL = 1e-3
DF_RTOL = 1e-2

# test case -> (peerstats covariance, method, df, JSON fit entry, block of that entry or None).
# A block (e.g. "kenward_roger") overrides the entry's coef / emmeans / contrasts; the entry's
# likelihood and covariance matrix are shared by all its blocks.
FITS = {
    "us_reml": ("us", "reml", "satterthwaite", "us_reml", None),
    "cs_reml": ("cs", "reml", "satterthwaite", "cs_reml", None),
    "csh_reml": ("csh", "reml", "satterthwaite", "csh_reml", None),
    "ar1_reml": ("ar1", "reml", "satterthwaite", "ar1_reml", None),
    "ar1h_reml": ("ar1h", "reml", "satterthwaite", "ar1h_reml", None),
    "us_ml": ("us", "ml", "satterthwaite", "us_ml", None),
    "us_reml_kenward_roger": ("us", "reml", "kenward-roger", "us_reml", "kenward_roger"),
    "us_reml_kenward_roger_pbkrtest": (
        "us",
        "reml",
        "kenward-roger",
        "us_reml",
        "kenward_roger_pbkrtest",
    ),
    "cs_lmer_satterthwaite": ("cs", "reml", "satterthwaite", "cs_lmer", "satterthwaite"),
    "cs_lmer_kenward_roger": ("cs", "reml", "kenward-roger", "cs_lmer", "kenward_roger"),
    "cs_lmer_kenward_roger_pbkrtest": (
        "cs",
        "reml",
        "kenward-roger",
        "cs_lmer",
        "kenward_roger_pbkrtest",
    ),
}
# fits that need the expected information (pbkrtest's convention)
EXPECTED_INFORMATION = {"cs_lmer_kenward_roger_pbkrtest", "us_reml_kenward_roger_pbkrtest"}
CASES = [(ds, fit) for ds in R["datasets"] for fit in FITS]
IDS = [f"{ds}-{fit}" for ds, fit in CASES]


# ---- helpers (no statistics here: only reading, name mapping and comparison) -----------------
def r_term_to_formulaic(term: str, factor_levels: dict[str, list[str]]) -> str:
    """R coefficient name -> formulaic's: ``armpeer:visitV2`` -> ``arm[T.peer]:visit[T.V2]``."""
    parts = []
    for part in term.split(":"):
        if part == "(Intercept)":
            parts.append("Intercept")
            continue
        for factor in sorted(factor_levels, key=len, reverse=True):
            level = part[len(factor) :]
            if part.startswith(factor) and level in factor_levels[factor]:
                parts.append(f"{factor}[T.{level}]")
                break
        else:
            parts.append(part)  # a numeric covariate keeps its name
    return ":".join(parts)


def close(actual, expected, rtol, atol=0.0) -> None:
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def reference(ds: str, fit: str) -> dict:
    *_, source, block = FITS[fit]
    entry = R["datasets"][ds]["fits"][source]
    return entry if block is None else {**entry, **entry[block]}


@cache
def data(ds: str) -> pd.DataFrame:
    return pd.read_csv(REF / R["datasets"][ds]["file"])


@cache
def fitted(ds: str, fit: str):
    info = R["datasets"][ds]
    covariance, method, df, *_ = FITS[fit]
    return peerstats.mmrm(
        info["formula"],
        data(ds),
        subject=info["subject"],
        visit=info["visit"],
        covariance=covariance,
        method=method,
        df=df,
        **({"kr_information": "expected"} if fit in EXPECTED_INFORMATION else {}),
    )


def coef_frame(ds: str, fit: str) -> tuple[pd.DataFrame, dict]:
    ref = reference(ds, fit)["coef"]
    levels = R["datasets"][ds]["factor_levels"]
    terms = [r_term_to_formulaic(t, levels) for t in ref["term"]]
    got = fitted(ds, fit).coef
    missing = sorted(set(terms) - set(got.index))
    assert not missing, f"terms {missing} not in peerstats' coef index {list(got.index)}"
    return got.loc[terms], ref


# ---- the data the tests read are the data R read ---------------------------------------------
@pytest.mark.parametrize("ds", list(R["datasets"]))
def test_reference_data_matches_json(ds):
    info = R["datasets"][ds]
    d = data(ds)
    assert len(d) == info["n_rows"]
    assert d[info["outcome"]].notna().sum() == info["n_obs"]
    for factor, levels in info["factor_levels"].items():
        assert sorted(d[factor].dropna().astype(str).unique()) == levels
    for name, mean in (info["covariate_means"] or {}).items():  # R writes {} as []
        close(d.loc[d[info["outcome"]].notna(), name].mean(), mean, 1e-12)


def test_term_mapping():
    levels = {"arm": ["control", "peer"], "visit": ["V1", "V2"], "RACE": ["Asian", "Black x"]}
    assert r_term_to_formulaic("(Intercept)", levels) == "Intercept"
    assert r_term_to_formulaic("baseline", levels) == "baseline"
    assert r_term_to_formulaic("armpeer:visitV2", levels) == "arm[T.peer]:visit[T.V2]"
    assert r_term_to_formulaic("RACEBlack x", levels) == "RACE[T.Black x]"


# ---- counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ds", list(R["datasets"]))
def test_counts(ds):
    info = R["datasets"][ds]
    fit = fitted(ds, "us_reml")
    assert fit.n_obs == info["n_obs"]
    assert fit.n_subjects == info["n_subjects"]
    assert fit.n_dropped == info["n_dropped"]


# ---- fixed effects ---------------------------------------------------------------------------
@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_estimate(ds, fit):
    got, ref = coef_frame(ds, fit)
    diff = np.abs(got["estimate"].to_numpy() - np.asarray(ref["estimate"]))
    bound = RTOL * np.abs(ref["estimate"]) + RTOL * np.asarray(ref["std_error"])
    assert np.all(diff <= bound), pd.DataFrame(
        {"peerstats": got["estimate"].to_numpy(), "R": ref["estimate"], "diff": diff},
        index=got.index,
    )


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_std_error(ds, fit):
    got, ref = coef_frame(ds, fit)
    close(got["std_error"], ref["std_error"], RTOL)


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_df(ds, fit):
    got, ref = coef_frame(ds, fit)
    close(got["df"], ref["df"], DF_RTOL)


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_statistic_and_p_value(ds, fit):
    got, ref = coef_frame(ds, fit)
    close(got["statistic"], ref["statistic"], RTOL, atol=RTOL)
    # p-values move with df; compare on the scale where 1e-2 relative df error is small
    close(got["p_value"], ref["p_value"], 2e-2, atol=1e-6)


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_confidence_interval(ds, fit):
    got, ref = coef_frame(ds, fit)
    se = np.asarray(ref["std_error"])
    # the CI half-width carries the t quantile, which moves with df (1e-2): 1e-3 x SE
    for col in ("ci_lower", "ci_upper"):
        diff = np.abs(got[col].to_numpy() - np.asarray(ref[col]))
        assert np.all(diff <= RTOL * np.abs(ref[col]) + 1e-3 * se), (col, diff)


# ---- likelihood and covariance ---------------------------------------------------------------
@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_minus2loglik(ds, fit):
    ref = reference(ds, fit)
    got = -2 * fitted(ds, fit).loglik
    assert abs(got - ref["minus2loglik"]) <= LOGLIK_ATOL, (got, ref["minus2loglik"])


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_covariance_matrix(ds, fit):
    ref = reference(ds, fit)["covariance"]
    expected = np.asarray(ref["matrix"], dtype=float)
    got = fitted(ds, fit).covariance
    assert isinstance(got, pd.DataFrame)
    assert [str(v) for v in got.index] == ref["visits"]
    close(got.to_numpy(), expected, COV_RTOL, atol=1e-4 * np.max(np.diag(expected)))


# ---- marginal means and per-visit contrasts --------------------------------------------------
@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_emmeans(ds, fit):
    info = R["datasets"][ds]
    arm, visit = info["arm"], info["visit"]
    ref = pd.DataFrame(reference(ds, fit)["emmeans"])
    got = fitted(ds, fit).emmeans([arm, visit])
    got = got.assign(arm=got[arm].astype(str), visit=got[visit].astype(str))
    merged = ref.merge(got, on=["arm", "visit"], suffixes=("_r", ""), validate="1:1")
    assert len(merged) == len(ref)
    close(merged["estimate"], merged["estimate_r"], RTOL)
    close(merged["std_error"], merged["std_error_r"], RTOL)
    close(merged["df"], merged["df_r"], DF_RTOL)
    se = merged["std_error_r"].to_numpy()
    for col in ("ci_lower", "ci_upper"):
        diff = np.abs(merged[col] - merged[f"{col}_r"]).to_numpy()
        assert np.all(diff <= RTOL * np.abs(merged[f"{col}_r"]).to_numpy() + 1e-3 * se)


@pytest.mark.parametrize(("ds", "fit"), CASES, ids=IDS)
def test_contrasts(ds, fit):
    info = R["datasets"][ds]
    arm, visit = info["arm"], info["visit"]
    ref = pd.DataFrame(reference(ds, fit)["contrasts"])
    got = fitted(ds, fit).contrasts(arm=arm, by=visit)
    got = got.assign(visit=got[visit].astype(str), contrast=got["contrast"].astype(str))
    merged = ref.merge(got, on=["visit", "contrast"], suffixes=("_r", ""), validate="1:1")
    assert len(merged) == len(ref), (list(ref["contrast"].unique()), list(got["contrast"].unique()))
    se = merged["std_error_r"].to_numpy()
    diff = np.abs(merged["estimate"] - merged["estimate_r"]).to_numpy()
    assert np.all(diff <= RTOL * np.abs(merged["estimate_r"]).to_numpy() + RTOL * se)
    close(merged["std_error"], merged["std_error_r"], RTOL)
    close(merged["df"], merged["df_r"], DF_RTOL)
    close(merged["statistic"], merged["statistic_r"], RTOL, atol=RTOL)
    close(merged["p_value"], merged["p_value_r"], 2e-2, atol=1e-6)
