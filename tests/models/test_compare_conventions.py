"""peerstats.compare(convention="r" | "sas") against nlme and SAS (issue 20.7).

Sources: tests/reference/r_compare/r_compare_reference.json (nlme::anova AIC/BIC, written by
make_r_compare.R there) and the SAS PROC MIXED "Information Criteria" of the FEV listings in
tests/reference/sas_fev/ (transcribed in sas_fev.json by parse_sas.py).
Tolerances: against nlme 1e-3 absolute (both optimise the same likelihood; the
likelihood-ratio tests in test_effects_r.py hold the same); against SAS half a unit of the
printed last digit (0.05) plus 1e-3 for SAS's optimisation slack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).resolve().parents[1] / "reference"
R = json.loads((REF / "r_compare" / "r_compare_reference.json").read_text())
SAS = json.loads((REF / "sas_fev" / "sas_fev.json").read_text())


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    d = pd.read_csv(REF / "sas_fev" / "fev_data.csv")
    d["AVISIT"] = pd.Categorical(d["AVISIT"], categories=["VIS1", "VIS2", "VIS3", "VIS4"])
    d["ARMCD"] = pd.Categorical(d["ARMCD"], categories=["PBO", "TRT"])
    return d


def _fit(fev, formula="FEV1 ~ FEV1_BL + ARMCD * AVISIT", **kw):
    kw = {"covariance": "us", "df": "asymptotic", **kw}
    return peerstats.mmrm(formula, fev, subject="USUBJID", visit="AVISIT", **kw)


@pytest.mark.parametrize("case", ["reml_cov", "ml_fixed"])
def test_compare_r_convention_matches_nlme(fev, case):
    if case == "reml_cov":
        fits = [_fit(fev, covariance="cs"), _fit(fev)]
    else:
        fits = [_fit(fev, "FEV1 ~ FEV1_BL + ARMCD + AVISIT", method="ml"), _fit(fev, method="ml")]
    tab = peerstats.compare(*fits)  # default convention "r"
    ref = R[case]
    assert list(tab["n_params"]) == ref["df"]
    assert list(tab["bic_n"]) == ref["nobs"]
    for i in range(2):
        assert tab["aic"].iloc[i] == pytest.approx(ref["AIC"][i], abs=1e-3)
        assert tab["bic"].iloc[i] == pytest.approx(ref["BIC"][i], abs=1e-3)
    assert set(tab["convention"]) == {"r"} and "nlme" in tab.attrs["convention"]


def test_compare_sas_convention_matches_sas_listings(fev):
    """REML: intercept-only AR(1), CS and UN (sas_ar1_reml, sas_cs_reml, sas_log_simple_reml)."""
    keys = {"ar1": "sas_ar1_reml", "cs": "sas_cs_reml", "us": "sas_log_simple_reml"}
    fits = [_fit(fev, "FEV1 ~ 1", covariance=c, reference=None) for c in keys]
    tab = peerstats.compare(*fits, convention="sas")
    for i, key in enumerate(keys.values()):
        fs = SAS[key]["fit_statistics"]
        assert tab["aic"].iloc[i] == pytest.approx(fs["AIC (Smaller is Better)"], abs=0.051)
        assert tab["bic"].iloc[i] == pytest.approx(fs["BIC (Smaller is Better)"], abs=0.051)
    # SAS counts the 3 subjects without any FEV1 (Subjects 200 in every listing)
    assert set(tab["bic_n"]) == {200}
    assert "SAS" in tab.attrs["convention"]


def test_compare_sas_convention_ml_counts_fixed_effects(fev):
    """ML, FEV1 ~ RACE + SEX + ARMCD * AVISIT, UN (sas_log: AIC 3439.6, BIC 3508.8)."""
    f = "FEV1 ~ RACE + SEX + ARMCD * AVISIT"
    fits = [_fit(fev, f, method="ml"), _fit(fev, f, method="ml", covariance="cs")]
    tab = peerstats.compare(*fits, convention="sas")
    fs = SAS["sas_log"]["fit_statistics"]
    assert tab["aic"].iloc[0] == pytest.approx(fs["AIC (Smaller is Better)"], abs=0.051)
    assert tab["bic"].iloc[0] == pytest.approx(fs["BIC (Smaller is Better)"], abs=0.051)


def test_compare_bic_uses_analysed_observations_not_input_rows(fev):
    """Issue 20.7: BIC's n is the analysed n (537 FEV1 values of 800 rows; N - p under REML)."""
    fits = [_fit(fev, covariance="cs"), _fit(fev)]
    tab = peerstats.compare(*fits)
    assert set(tab["bic_n"]) == {537 - fits[0].n_fixed}


def test_compare_rejects_unknown_convention(fev):
    fits = [_fit(fev, covariance="cs"), _fit(fev)]
    with pytest.raises(ModelSpecificationError, match="'r', 'sas'"):
        peerstats.compare(*fits, convention="stata")
