"""peerstats.mmrm against SAS PROC MIXED on the FEV data.

See tests/reference/sas_fev/*.txt for the source of every number (SAS listings published by the R
package mmrm, Apache-2.0); tests/reference/sas_fev/parse_sas.py transcribes them into
sas_fev.json. sas_weighted_ante1.json holds two more SAS outputs of the same package (weighted
ANTE(1), REML and ML), transcribed by hand with their source path and commit. No expected value
comes from peerstats.

Tolerances. SAS stops iterating at a relative Hessian criterion, so its covariance estimates sit
slightly off the exact optimum: our -2 log-likelihood is at or below SAS's in every listing
(e.g. sas_log 3397.5721966 vs SAS 3397.5722003), and the GLS estimates at SAS's printed
covariance parameters reproduce SAS's printed fixed effects to every digit. The tolerances
therefore combine SAS's printed precision with that optimisation slack:
- -2 (Res) Log Likelihood: from the Iteration History (8 decimals), absolute 1e-4;
- fixed-effect estimates, LSMEANS, differences, CI limits: relative 1e-4, or half a unit in the
  last printed digit, or 5e-4 x the standard error, whichever is largest;
- standard errors and t values: relative 2e-4, or half a unit in the last printed digit;
- covariance parameters: 1e-3 relative to their scale (the tolerance R mmrm holds for
  covariance elements against these listings): variances relative 1e-3; covariances 1e-3 x
  sqrt(var_i var_j); correlations absolute 1e-3; or half a unit in the last printed digit;
  their 95% limits (SAS "Lower"/"Upper") at the same tolerance;
- Satterthwaite degrees of freedom (printed as integers): within 0.5 of the printed value
  (+1e-6), i.e. they round to SAS's number. Exception: SAS's Satterthwaite df with a WEIGHT
  statement in sas_weighted.txt (UN, fixed effects) are not reproduced (ours are 130-190 where
  SAS prints 320-526), so those df tests (and the CI limits that use them) are xfail. Cause
  (tests/models/test_sas_weighted_df.py): SAS computed them with the unweighted derivative
  dR/dpsi instead of W^-1/2 dR/dpsi W^-1/2 of its own weighted model V = W^-1/2 R W^-1/2, and
  truncated them at the residual df 526; that formula reproduces all 47 printed df (within
  0.54). R mmrm and nlme agree with ours, and SAS's own weighted ANTE(1) runs
  (sas_weighted_ante1.json, REML and ML) use the weighted derivative and agree with ours.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats

REF = Path(__file__).parents[1] / "reference" / "sas_fev"
SAS = json.loads((REF / "sas_fev.json").read_text())

# listing -> (formula, covariance, group, weights, method)
CASES = {
    "sas_log_simple_reml": ("FEV1 ~ 1", "us", None, None, "reml"),
    "sas_log_simple": ("FEV1 ~ 1", "us", None, None, "ml"),
    "sas_log": ("FEV1 ~ RACE + SEX + ARMCD * AVISIT", "us", None, None, "ml"),
    "sas_cs_reml": ("FEV1 ~ 1", "cs", None, None, "reml"),
    "sas_csh_reml": ("FEV1 ~ 1", "csh", None, None, "reml"),
    "sas_ar1_reml": ("FEV1 ~ 1", "ar1", None, None, "reml"),
    "sas_ar1h_reml": ("FEV1 ~ 1", "ar1h", None, None, "reml"),
    "sas_toeph_reml": ("FEV1 ~ 1", "toeph", None, None, "reml"),
    "sas_adh_reml": ("FEV1 ~ 1", "adh", None, None, "reml"),
    "sas_group_cs_reml": ("FEV1 ~ 1", "cs", "ARMCD", None, "reml"),
    "sas_group_csh_reml": ("FEV1 ~ 1", "csh", "ARMCD", None, "reml"),
    "sas_group_ar1_reml": ("FEV1 ~ 1", "ar1", "ARMCD", None, "reml"),
    "sas_group_toeph_reml": ("FEV1 ~ 1", "toeph", "ARMCD", None, "reml"),
    "sas_weighted": ("FEV1 ~ RACE + SEX + ARMCD * AVISIT", "us", None, "WEIGHT", "reml"),
    "sas_coef_ci_reml_ar1": ("FEV1 ~ ARMCD + SEX", "ar1", None, None, "reml"),
}
# SAS names the same parameter differently with and without group=
ALIASES = {("cs", "Variance"): "Residual", ("ar1", "Residual"): "Variance"}


def _printed_tol(value: float, rel: float = 1e-4) -> float:
    """max(rel * |value|, half a unit in the last printed digit)."""
    exp = Decimal(repr(float(value))).normalize().as_tuple().exponent
    half_ulp = 0.5 * 10.0 ** min(int(exp), 0) if isinstance(exp, int) else 0.0
    return max(rel * abs(value), half_ulp) * (1 + 1e-9) + 1e-12


def _close(ours: float, sas: float, rel: float = 1e-4, se: float = 0.0) -> bool:
    return abs(ours - sas) <= max(_printed_tol(sas, rel), 5e-4 * se)


@cache
def fev() -> pd.DataFrame:
    return pd.read_csv(REF / "fev_data.csv")


@cache
def fitted(name: str):
    formula, cov, group, weights, method = CASES[name]
    ref = SAS[name]
    classes = ref["class_levels"]
    data = fev().copy()
    # visit order as SAS's class order (matters for ar1/toeph/adh), SAS reference = last level
    data["AVISIT"] = pd.Categorical(data["AVISIT"], categories=classes["AVISIT"])
    reference = {k: v[-1] for k, v in classes.items() if k in formula and k != "AVISIT"}
    if "AVISIT" in formula.split("~")[1]:
        reference["AVISIT"] = classes["AVISIT"][-1]
    return peerstats.mmrm(
        formula,
        data,
        subject="USUBJID",
        visit="AVISIT",
        covariance=cov,
        group=group,
        weights=weights,
        method=method,
        df="satterthwaite",
        reference=reference,
    )


def _term(rec: dict) -> str:
    levels = rec["levels"]
    if rec["effect"] == "Intercept":
        return "Intercept"
    parts = [f"{f}[T.{levels[f]}]" for f in rec["effect"].split("*")]
    return ":".join(parts)


def _coef_row(fit, rec):
    coef = fit.coef
    term = _term(rec)
    if term not in coef.index and ":" in term:
        term = ":".join(reversed(term.split(":")))
    return coef.loc[term]


NAMES = list(CASES)
SOLUTION = [(n, i) for n in NAMES for i in range(len(SAS[n]["solution"]))]


@pytest.mark.parametrize("name", NAMES)
def test_neg2loglik(name):
    fit = fitted(name)
    assert fit.converged
    assert abs(fit.neg2loglik - SAS[name]["neg2loglik"]) < 1e-4
    assert abs(-2 * fit.loglik - SAS[name]["neg2loglik"]) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_information_criteria(name):
    fit = fitted(name)
    stats = SAS[name]["fit_statistics"]
    assert abs(fit.aic - stats["AIC (Smaller is Better)"]) <= 0.05 + 1e-9
    assert abs(fit.bic - stats["BIC (Smaller is Better)"]) <= 0.05 + 1e-9


@pytest.mark.parametrize("name,i", SOLUTION)
def test_estimate(name, i):
    rec = SAS[name]["solution"][i]
    assert _close(_coef_row(fitted(name), rec)["estimate"], rec["estimate"], se=rec["std_error"])


@pytest.mark.parametrize("name,i", SOLUTION)
def test_std_error(name, i):
    rec = SAS[name]["solution"][i]
    assert _close(_coef_row(fitted(name), rec)["std_error"], rec["std_error"], rel=2e-4)


WEIGHTED_DF = pytest.mark.xfail(
    reason="SAS's df for WEIGHT + TYPE=UN use the unweighted dR/dpsi and are truncated at the "
    "residual df (reproduced in test_sas_weighted_df.py); ours use the weighted model's "
    "derivative, as R mmrm, nlme and SAS's weighted ANTE(1) runs",
    strict=True,
)


@pytest.mark.parametrize(
    "name,i",
    [pytest.param(n, i, marks=WEIGHTED_DF) if n == "sas_weighted" else (n, i) for n, i in SOLUTION],
)
def test_satterthwaite_df(name, i):
    rec = SAS[name]["solution"][i]
    assert abs(_coef_row(fitted(name), rec)["df"] - rec["df"]) <= 0.5 + 1e-6


@pytest.mark.parametrize("name,i", SOLUTION)
def test_t_value(name, i):
    rec = SAS[name]["solution"][i]
    assert _close(_coef_row(fitted(name), rec)["statistic"], rec["statistic"], rel=2e-4)


def test_coefficient_confidence_limits():
    name = "sas_coef_ci_reml_ar1"
    for rec in SAS[name]["solution"]:
        row = _coef_row(fitted(name), rec)
        assert _close(row["ci_lower"], rec["ci_lower"], se=rec["std_error"])
        assert _close(row["ci_upper"], rec["ci_upper"], se=rec["std_error"])


def _expected_cov_params(name):
    """SAS covariance parameters keyed by (our parameter name, group)."""
    cov = CASES[name][1]
    return {
        (ALIASES.get((cov, r["parm"]), r["parm"]), r["group"]): r["estimate"]
        for r in SAS[name]["cov_parms"]
    }


def _cov_close(ours: float, sas: float, scale: float) -> bool:
    return abs(ours - sas) <= max(_printed_tol(sas, 0.0), 1e-3 * scale)


@pytest.mark.parametrize("name", NAMES)
def test_covariance_parameters(name):
    fit = fitted(name)
    cov = CASES[name][1]
    if cov == "us":
        # UN(i,j) indexes SAS's class order of AVISIT; compare the matrix element
        order = SAS[name]["class_levels"]["AVISIT"]
        S = fit.covariance
        un = {
            tuple(int(x) for x in r["parm"][3:-1].split(",")): r["estimate"]
            for r in SAS[name]["cov_parms"]
        }
        for (i, j), value in un.items():
            scale = np.sqrt(un[(i, i)] * un[(j, j)])
            assert _cov_close(S.loc[order[i - 1], order[j - 1]], value, scale), (i, j)
        return
    ours = {(r.parameter, r.group): r.estimate for r in fit.cov_parameters.itertuples()}
    expected = _expected_cov_params(name)
    assert set(ours) == set(expected)
    for (parm, group), value in expected.items():
        if parm.startswith(("Var", "Residual")):
            scale = abs(value)
        elif parm == "CS":
            scale = value + expected[("Residual", group)]
        else:  # correlations: AR(1), ARH(1), CSH, TOEPH(k), Rho(k)
            scale = 1.0
        assert _cov_close(ours[(parm, group)], value, scale), (parm, group, value)


TYPE3 = [n for n in NAMES if SAS[n]["type3"]]


def _type3_rows(name):
    table = fitted(name).anova()
    for rec in SAS[name]["type3"]:
        term = rec["effect"].replace("*", ":")
        if term not in table.index:
            term = ":".join(reversed(term.split(":")))
        yield table.loc[term], rec


@pytest.mark.parametrize("name", TYPE3)
def test_type3_f_values(name):
    for row, rec in _type3_rows(name):
        assert row["num_df"] == rec["num_df"]
        assert abs(row["statistic"] - rec["f_value"]) <= _printed_tol(rec["f_value"], 2e-4)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=WEIGHTED_DF) if n == "sas_weighted" else n for n in TYPE3]
)
def test_type3_den_df(name):
    for row, rec in _type3_rows(name):
        assert abs(row["den_df"] - rec["den_df"]) <= 0.5 + 1e-6, (rec, row["den_df"])


def test_lsmeans_weighted():
    name = "sas_weighted"
    em = fitted(name).emmeans(["AVISIT", "ARMCD"])
    for rec in SAS[name]["lsmeans"]:
        row = em[(em.AVISIT == rec["AVISIT"]) & (em.ARMCD == rec["ARMCD"])].iloc[0]
        assert _close(row["estimate"], rec["estimate"], se=rec["std_error"])
        for col in ("std_error", "statistic"):
            assert _close(row[col], rec[col], rel=2e-4), (rec, col, row[col])


@WEIGHTED_DF
def test_lsmeans_df_and_ci_weighted():
    name = "sas_weighted"
    em = fitted(name).emmeans(["AVISIT", "ARMCD"])
    for rec in SAS[name]["lsmeans"]:
        row = em[(em.AVISIT == rec["AVISIT"]) & (em.ARMCD == rec["ARMCD"])].iloc[0]
        assert abs(row["df"] - rec["df"]) <= 0.5 + 1e-6
        for col in ("ci_lower", "ci_upper"):
            assert _close(row[col], rec[col], se=rec["std_error"]), (rec, col, row[col])


def test_per_visit_contrasts_weighted():
    """TRT - PBO at each visit = SAS's 'Differences of Least Squares Means' (same visit)."""
    name = "sas_weighted"
    con = fitted(name).contrasts(arm="ARMCD", by="AVISIT")
    same_visit = [r for r in SAS[name]["diffs"] if r["AVISIT"] == r["_AVISIT"]]
    assert len(con) == len(same_visit) == 4
    assert list(con.columns) == [
        "AVISIT",
        "contrast",
        "estimate",
        "std_error",
        "df",
        "statistic",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    for rec in same_visit:
        row = con[con.AVISIT == rec["AVISIT"]].iloc[0]
        assert row["contrast"] == "TRT - PBO"
        assert _close(row["estimate"], rec["estimate"], se=rec["std_error"])
        for col in ("std_error", "statistic"):
            assert _close(row[col], rec[col], rel=2e-4), (rec, col, row[col])


@WEIGHTED_DF
def test_per_visit_contrasts_df_and_ci_weighted():
    name = "sas_weighted"
    con = fitted(name).contrasts(arm="ARMCD", by="AVISIT")
    for rec in [r for r in SAS[name]["diffs"] if r["AVISIT"] == r["_AVISIT"]]:
        row = con[con.AVISIT == rec["AVISIT"]].iloc[0]
        assert abs(row["df"] - rec["df"]) <= 0.5 + 1e-6
        for col in ("ci_lower", "ci_upper"):
            assert _close(row[col], rec[col], se=rec["std_error"]), (rec, col, row[col])


def test_all_lsmean_differences_weighted():
    """Every pairwise difference SAS printed, as a contrast of two LSMEANS."""
    name = "sas_weighted"
    fit = fitted(name)
    from peerstats.models.emmeans import emmeans_matrix

    frame, L = emmeans_matrix(fit._design, ["AVISIT", "ARMCD"])
    key = list(zip(frame.AVISIT.astype(str), frame.ARMCD.astype(str)))
    for rec in SAS[name]["diffs"]:
        a = key.index((rec["AVISIT"], rec["ARMCD"]))
        b = key.index((rec["_AVISIT"], rec["_ARMCD"]))
        row = fit.test(L[a] - L[b]).iloc[0]
        assert _close(row["estimate"], rec["estimate"], se=rec["std_error"])
        assert _close(row["std_error"], rec["std_error"], rel=2e-4)


def test_counts():
    fit = fitted("sas_log")
    # SAS: 800 observations read, 537 used, 263 not used
    assert fit.n_obs == 537
    assert fit.n_dropped == 263
    assert fit.n_obs + fit.n_dropped == 800
    assert isinstance(fit.coef, pd.DataFrame)
    assert np.isfinite(fit.coef.to_numpy()).all()


def test_numeric_visit_codes_are_factors():
    """VISITN (1-4) as visit: the visit is a CLASS variable as in SAS, same fit as sas_log."""
    data = fev().copy()
    data["VISITN"] = pd.Categorical(data["VISITN"], categories=[2, 3, 4, 1])  # SAS order
    fit = peerstats.mmrm(
        "FEV1 ~ RACE + SEX + ARMCD * VISITN",
        data,
        subject="USUBJID",
        visit="VISITN",
        covariance="us",
        method="ml",
        reference={"ARMCD": "PBO", "RACE": "Asian", "SEX": "Male", "VISITN": 1},
    )
    assert abs(fit.neg2loglik - SAS["sas_log"]["neg2loglik"]) < 1e-4
    con = fit.contrasts(arm="ARMCD", by="VISITN")
    assert list(con.VISITN) == [2, 3, 4, 1]


@pytest.mark.parametrize("name", NAMES)
def test_covariance_parameter_limits(name):
    """SAS's 95% limits of the covariance parameters (chi-square for variances, Wald
    otherwise): checks the observed information that the Satterthwaite df are built on."""
    fit = fitted(name)
    cov = CASES[name][1]
    table = fit.cov_parameters
    ours = {(r.parameter, r.group): (r.ci_lower, r.ci_upper) for r in table.itertuples()}
    est = {(r.parameter, r.group): r.estimate for r in table.itertuples()}
    for r in SAS[name]["cov_parms"]:
        key = (ALIASES.get((cov, r["parm"]), r["parm"]), r["group"])
        parm = key[0]
        if parm.startswith("UN("):
            i, j = parm[3:-1].split(",")
            scale = np.sqrt(est[(f"UN({i},{i})", None)] * est[(f"UN({j},{j})", None)])
        elif parm.startswith(("Var", "Residual")):
            scale = abs(r["estimate"])
        elif parm == "CS":
            scale = est[("CS", r["group"])] + est[("Residual", r["group"])]
        else:
            scale = 1.0
        lo, hi = ours[key]
        assert _cov_close(lo, r["lower"], scale), (key, lo, r["lower"])
        assert _cov_close(hi, r["upper"], scale), (key, hi, r["upper"])


# ---- weighted ANTE(1), REML and ML: sas_weighted_ante1.json (hand-transcribed SAS output) ----
WANTE = json.loads((REF / "sas_weighted_ante1.json").read_text())["runs"]


@cache
def fitted_weighted_ante1(method: str):
    data = fev().copy()
    data["AVISIT"] = pd.Categorical(data["AVISIT"], categories=["VIS1", "VIS2", "VIS3", "VIS4"])
    return peerstats.mmrm(
        "FEV1 ~ 1",
        data,
        subject="USUBJID",
        visit="AVISIT",
        covariance="adh",
        weights="WEIGHT",
        method=method,
        df="satterthwaite",
    )


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_weighted_ante1(method):
    """SAS WEIGHT + ANTE(1): estimates, SE, Satterthwaite df, covariance parameters, limits."""
    ref = WANTE[method]
    fit = fitted_weighted_ante1(method)
    if "neg2loglik" in ref:
        assert abs(fit.neg2loglik - ref["neg2loglik"]) < 1e-4
    stats = ref["fit_statistics"]
    key = "-2 Res Log Likelihood" if method == "reml" else "-2 Log Likelihood"
    assert abs(fit.neg2loglik - stats[key]) <= 0.05 + 1e-9
    assert abs(fit.aic - stats["AIC (Smaller is Better)"]) <= 0.05 + 1e-9
    assert abs(fit.bic - stats["BIC (Smaller is Better)"]) <= 0.05 + 1e-9
    rec = ref["solution"][0]
    row = fit.coef.loc["Intercept"]
    assert _close(row["estimate"], rec["estimate"], se=rec["std_error"])
    assert _close(row["std_error"], rec["std_error"], rel=2e-4)
    assert _close(row["statistic"], rec["statistic"], rel=2e-4)
    assert abs(row["df"] - rec["df"]) <= 0.5 + 1e-6
    table = {r.parameter: r for r in fit.cov_parameters.itertuples()}
    for r in ref["cov_parms"]:
        scale = abs(r["estimate"]) if r["parm"].startswith("Var") else 1.0
        ours = table[r["parm"]]
        assert _cov_close(ours.estimate, r["estimate"], scale), r
        assert _cov_close(ours.ci_lower, r["lower"], scale), r
        assert _cov_close(ours.ci_upper, r["upper"], scale), r
