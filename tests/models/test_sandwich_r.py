"""Empirical covariances, between-within df and type II tests against R (issue 10.3, 10.4, 10.7).

Source of every expected number: tests/reference/r_sandwich/r_sandwich_reference.json, written
by make_r_sandwich.R (R nlme::gls / nlme::lme fits of the FEV data of the R package mmrm, with
clubSandwich::vcovCR, coef_test(test = "Satterthwaite"), Wald_test(test = "HTZ"), and
car::Anova(type = 2)). No expected value comes from peerstats.

Tolerances:
- covariance matrices of the fixed effects (model-based and CR0/CR2/CR3): max |ours - R| at most
  1e-6 x max |R| (R's REML optimum is polished with optim, msTol 1e-15: -2 log-likelihoods agree
  to 1e-9 relative; we observe <= 2e-7);
- standard errors, Satterthwaite df, HTZ F statistics and df, car's chi-square: relative 1e-6;
- car's type II chi-square: relative 1e-5. The coefficients agree with R's to 6e-7 absolute
  (1e-8 of the largest), which for SEX (0.33) is 2e-6 relative, doubled in b^2 / var; and
  car uses vcov(gls), whose elements differ from ours by up to 3.6e-7 relative (while the
  clubSandwich covariances built from the same fits agree to 3e-8);
- between-within and residual df: exact (integers).
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError, SingularFitWarning

REF = Path(__file__).parents[1] / "reference"
R = json.loads((REF / "r_sandwich" / "r_sandwich_reference.json").read_text())
REL = 1e-6
KINDS = {"CR0": "empirical", "CR2": "empirical-bias-reduced", "CR3": "jackknife"}
F0 = "FEV1 ~ RACE + SEX + ARMCD * AVISIT"
MODELS = {
    "us": dict(formula=F0, covariance="us"),
    "cs": dict(formula=F0, covariance="cs"),
    "us_w": dict(formula=F0, covariance="us", weights="WEIGHT"),
    "us_bl": dict(formula="FEV1 ~ FEV1_BL + RACE + SEX + ARMCD * AVISIT", covariance="us"),
}


@cache
def fev() -> pd.DataFrame:
    return pd.read_csv(REF / "sas_fev" / "fev_data.csv")


@cache
def fitted(name: str, vcov: str = "model", df: str = "satterthwaite"):
    if name == "lme_ri":
        return peerstats.lmm(F0 + " + (1 | USUBJID)", fev(), vcov=vcov, df=df)
    kw = dict(MODELS[name])
    formula = kw.pop("formula")
    return peerstats.mmrm(formula, fev(), subject="USUBJID", visit="AVISIT", vcov=vcov, df=df, **kw)


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


CASES = [(m, cr) for m in [*MODELS, "lme_ri"] for cr in KINDS]


@pytest.mark.parametrize("name", [*MODELS, "lme_ri"])
def test_coefficients_and_model_vcov(name):
    ref = R[name]
    fit = fitted(name)
    assert len(fit.params) == len(ref["terms"])  # R's coefficients, in the same order
    V = np.array(ref["vcov_model"])
    b = np.array(ref["coef"])
    assert np.max(np.abs(fit.params.to_numpy() - b)) <= REL * np.max(np.abs(b))
    assert np.max(np.abs(fit.vcov.to_numpy() - V)) <= REL * np.max(np.abs(V))


@pytest.mark.parametrize("name,cr", CASES)
def test_empirical_vcov(name, cr):
    fit = fitted(name, KINDS[cr])
    V = np.array(R[name][cr]["vcov"])
    assert fit.vcov_method == KINDS[cr]
    assert np.max(np.abs(fit.vcov.to_numpy() - V)) <= REL * np.max(np.abs(V))


@pytest.mark.parametrize("name,cr", CASES)
def test_empirical_se_and_satterthwaite_df(name, cr):
    coef = fitted(name, KINDS[cr]).coef
    assert _rel(coef["std_error"], R[name][cr]["se"]) <= REL
    assert _rel(coef["df"], R[name][cr]["df_satterthwaite"]) <= REL


@pytest.mark.parametrize("name,cr", CASES)
def test_htz_wald_test(name, cr):
    """Joint test of the ARMCD:AVISIT interaction: clubSandwich Wald_test(test = "HTZ"); the
    same hypothesis through anova() (type III and II coincide for the highest-order term)."""
    ref = R[name][cr]["wald_interaction"]
    fit = fitted(name, KINDS[cr])
    L = np.eye(len(fit.params))[ref["rows"]]
    res = fit.test(L).iloc[0]
    assert res["num_df"] == ref["htz_df_num"]
    assert _rel(res["statistic"], ref["htz_F"]) <= REL
    assert _rel(res["den_df"], ref["htz_df_den"]) <= REL
    a = fit.anova().loc["ARMCD:AVISIT"]
    assert _rel(a["statistic"], ref["htz_F"]) <= REL
    assert _rel(a["den_df"], ref["htz_df_den"]) <= REL


@pytest.mark.parametrize("cr", list(KINDS))
def test_asymptotic_chi_square(cr):
    """df='asymptotic': the Wald chi-square / q of clubSandwich's test = "chi-sq"."""
    ref = R["us"][cr]["wald_interaction"]
    fit = fitted("us", KINDS[cr], "asymptotic")
    L = np.eye(len(fit.params))[ref["rows"]]
    assert _rel(fit.test(L).iloc[0]["statistic"], ref["chisq_F"]) <= REL


def test_contrasts_and_emmeans_use_empirical_vcov():
    """Per-visit arm differences and marginal means: SE = sqrt(l' V_CR2 l) with R's V_CR2."""
    fit = fitted("us", "empirical-bias-reduced")
    V = np.array(R["us"]["CR2"]["vcov"])
    names = list(fit.params.index)
    con = fit.contrasts("ARMCD", by="AVISIT")
    for _, row in con.iterrows():
        ell = np.zeros(len(names))
        ell[names.index("ARMCD[T.TRT]")] = 1
        if row["AVISIT"] != "VIS1":
            ell[names.index(f"ARMCD[T.TRT]:AVISIT[T.{row['AVISIT']}]")] = 1
        assert _rel(row["std_error"], np.sqrt(ell @ V @ ell)) <= REL
        assert _rel(row["estimate"], ell @ np.array(R["us"]["coef"])) <= REL
    em = fit.emmeans(["ARMCD", "AVISIT"])
    # PBO at VIS1 is the intercept plus the averaged RACE and SEX effects: equal weights
    ell = np.zeros(len(names))
    ell[0] = 1
    ell[names.index("RACE[T.Black or African American]")] = 1 / 3
    ell[names.index("RACE[T.White]")] = 1 / 3
    ell[names.index("SEX[T.Male]")] = 1 / 2
    first = em[(em["ARMCD"] == "PBO") & (em["AVISIT"] == "VIS1")].iloc[0]
    assert _rel(first["std_error"], np.sqrt(ell @ V @ ell)) <= REL


# ---- between-within and residual df ----------------------------------------------------------
def test_between_within_matches_nlme_lme():
    """nlme::lme assigns between-subject effects N_subjects - p_between - 1 df and within-subject
    effects n - N_subjects - p_within (192 and 334 here), as SAS's definition. Exception: nlme
    puts the intercept at the innermost level; SAS's rule (the intercept does not change within
    a subject) gives it the between df, as we do."""
    ref = R["lme_ri"]["nlme_df"]
    fit = fitted("lme_ri", "model", "between-within")
    assert fit.coef["df"].tolist()[1:] == ref[1:]
    assert fit.coef["df"].iloc[0] == ref[1]  # between: RACE's df
    a = fit.anova()
    assert a.loc["RACE", "den_df"] == ref[1] and a.loc["AVISIT", "den_df"] == ref[5]
    assert a.loc["ARMCD:AVISIT", "den_df"] == ref[-1]


def test_between_within_unstructured_all_between():
    """SAS: with only a REPEATED statement and TYPE=UN every effect gets the between-subject df:
    197 subjects with an outcome - rank(intercept, RACE, SEX, ARMCD) = 197 - 5 = 192."""
    fit = fitted("us", "empirical", "between-within")
    n_subj = R["us"]["n_subjects"]
    assert n_subj == 197
    assert set(fit.coef["df"]) == {n_subj - 5}
    assert set(fit.anova()["den_df"]) == {n_subj - 5}
    # not UN: the SAS split of the residual df (192 between + 334 within = n - rank(X))
    cs = fitted("cs", "model", "between-within").coef["df"]
    assert cs.iloc[1:5].tolist() == [192] * 4
    assert cs.iloc[5:].tolist() == [R["us"]["n_obs"] - n_subj - 6] * 6


def test_residual_df():
    """SAS DDFM=RESIDUAL: n - rank(X) = 537 - 11."""
    for vcov in ("model", "empirical"):
        fit = fitted("us", vcov, "residual")
        assert set(fit.coef["df"]) == {R["us"]["n_obs"] - len(R["us"]["terms"])}


# ---- type II tests: car::Anova(type = 2) ----------------------------------------------------
@pytest.mark.parametrize("name", ["us", "us_bl"])
@pytest.mark.parametrize("vcov", ["model", "empirical"])
def test_anova_type2_matches_car(name, vcov):
    key = "anova_type2" if vcov == "model" else "anova_type2_CR0"
    ref = R[name][key]
    a = fitted(name, vcov, "residual").anova(type=2)  # unscaled F = chi-square / q
    assert list(a.index) == ref["term"]
    assert a["num_df"].tolist() == ref["df"]
    assert _rel(a["statistic"] * a["num_df"], ref["chisq"]) <= 1e-5


def test_anova_type2_differs_from_type3_for_main_effects():
    """With an interaction, type II and III main-effect hypotheses differ (car vs SAS)."""
    fit = fitted("us")
    a2, a3 = fit.anova(type=2), fit.anova()
    assert abs(a2.loc["ARMCD:AVISIT", "statistic"] - a3.loc["ARMCD:AVISIT", "statistic"]) < 1e-9
    assert abs(a2.loc["AVISIT", "statistic"] - a3.loc["AVISIT", "statistic"]) > 1e-3


# ---- bad input ------------------------------------------------------------------------------
def test_unknown_vcov_names_the_choices():
    with pytest.raises(ModelSpecificationError, match="vcov='sandwich'.*'empirical'"):
        peerstats.mmrm(F0, fev(), subject="USUBJID", visit="AVISIT", vcov="sandwich")
    with pytest.raises(ModelSpecificationError, match="vcov='HC0'.*'jackknife'"):
        peerstats.lmm(F0 + " + (1 | USUBJID)", fev(), vcov="HC0")


def test_kenward_roger_with_empirical_vcov_is_refused():
    with pytest.raises(ModelSpecificationError, match="Kenward-Roger.*choose df from"):
        peerstats.mmrm(
            F0, fev(), subject="USUBJID", visit="AVISIT", vcov="empirical", df="kenward-roger"
        )


def test_sandwich_needs_two_clusters():
    """A crossed random effect (visit) links every subject into one independent cluster."""
    d = fev()[fev()["USUBJID"].isin(fev()["USUBJID"].unique()[:30])]
    with (
        warnings.catch_warnings(),
        pytest.raises(ModelSpecificationError, match="at least 2 independent clusters.*have 1\\."),
    ):
        warnings.simplefilter("ignore", SingularFitWarning)
        peerstats.lmm("FEV1 ~ ARMCD + (1 | USUBJID) + (1 | AVISIT)", d, vcov="empirical")


def test_type2_without_terms():
    fit = peerstats.mmrm("FEV1 ~ 1", fev(), subject="USUBJID", visit="AVISIT", covariance="cs")
    with pytest.raises(ModelSpecificationError, match="type=2 needs at least one term"):
        fit.anova(type=2)
    with pytest.raises(ModelSpecificationError, match="type=4 is not valid; choose 2 or 3"):
        fitted("cs").anova(type=4)
