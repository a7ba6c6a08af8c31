"""fit.effect_size and peerstats.compare against R (issue 12, point 4/5).

Source of the expected numbers: tests/reference/r_effects/make_r_effects.R (nlme::gls,
emmeans ``eff_size`` with the SD treated as known, nlme ``anova``) on the FEV data of the R
package mmrm; the JSON it wrote is r_effects_reference.json.

Tolerances: differences, d and g 1e-4 relative (the printed precision of the SAS/R
references elsewhere; both sides optimise the same REML likelihood); likelihood-ratio
statistics 1e-3 absolute, their p-values 1e-3 relative; Hedges' J and the SD 1e-12 relative
(closed forms).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).resolve().parents[1] / "reference" / "r_effects"
R = json.loads((REF / "r_effects_reference.json").read_text(encoding="utf-8"))
DATA = REF.parent / "r_mmrm" / "fev_data.csv"


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    d = pd.read_csv(DATA)
    d["AVISIT"] = pd.Categorical(d["AVISIT"], categories=["VIS1", "VIS2", "VIS3", "VIS4"])
    d["ARMCD"] = pd.Categorical(d["ARMCD"], categories=["PBO", "TRT"])
    return d.rename(columns={"FEV1_BL": "FEV1_baseline"})


def _fit(fev, formula="FEV1 ~ FEV1_baseline + ARMCD * AVISIT", **kw):
    kw = {"covariance": "us", "df": "asymptotic", **kw}
    return peerstats.mmrm(formula, fev, subject="USUBJID", visit="AVISIT", **kw)


@pytest.fixture(scope="module")
def us_reml(fev):
    return _fit(fev)


def test_effect_size_matches_emmeans_eff_size(us_reml):
    es = us_reml.effect_size("ARMCD", by="AVISIT", sd="baseline")
    assert es["sd"].iloc[0] == pytest.approx(R["sd_baseline"], rel=1e-12)
    assert es["j"].iloc[0] == pytest.approx(R["hedges_j"], rel=1e-12)
    assert list(es["n_arm"].unique()) == [R["n"]["TRT"]]
    assert list(es["n_reference"].unique()) == [R["n"]["PBO"]]
    for ref, (_, row) in zip(R["effects"], es.iterrows()):
        assert str(row["AVISIT"]) == ref["visit"] and row["contrast"] == ref["contrast"]
        assert row["estimate"] == pytest.approx(ref["difference"], rel=1e-4)
        for ours, theirs in (
            ("d", "d"),
            ("d_ci_lower", "d_lower"),
            ("d_ci_upper", "d_upper"),
            ("g", "g"),
            ("g_ci_lower", "g_lower"),
            ("g_ci_upper", "g_upper"),
        ):
            assert row[ours] == pytest.approx(ref[theirs], rel=1e-4), ours
    assert "FEV1_baseline" in es["sd_source"].iloc[0]


def test_effect_size_given_sd_and_errors(us_reml):
    es = us_reml.effect_size("ARMCD", by="AVISIT", sd=10.0)
    assert (es["d"] * 10.0).tolist() == pytest.approx(es["estimate"].tolist(), rel=1e-12)
    assert set(es["sd_source"]) == {"given"}
    raw = us_reml.effect_size("ARMCD", by="AVISIT", sd="raw")
    assert raw["sd"].nunique() == 4  # one SD per visit
    with pytest.raises(ModelSpecificationError, match="positive number"):
        us_reml.effect_size("ARMCD", sd=-1)
    with pytest.raises(ModelSpecificationError, match="'baseline' or 'raw'"):
        us_reml.effect_size("ARMCD", sd="pooled")


def test_lmm_fit_has_effect_size():
    trial = peerstats.datasets.load("peer_recovery")
    res = peerstats.analyze(trial, outcome="qpr15")
    es = res.fit.effect_size("arm", by="visit", sd=res.sd_baseline)
    assert es["d"].tolist() == pytest.approx(res.contrasts["cohens_d"].tolist(), rel=1e-12)
    assert (es["g"].abs() < es["d"].abs()).all()


def test_compare_reml_covariance_structures_matches_nlme_anova(fev, us_reml):
    cs = _fit(fev, covariance="cs")
    tab = peerstats.compare(cs, us_reml, names=["cs", "us"])
    ref = R["lrt"]["reml_cov"]
    assert tab["lr_df"].iloc[1] == ref["df"]
    assert tab["lr_statistic"].iloc[1] == pytest.approx(ref["L_ratio"], abs=1e-3)
    assert tab["p_value"].iloc[1] == pytest.approx(ref["p_value"], rel=1e-3)
    assert list(tab["model"]) == ["cs", "us"] and tab["aic"].notna().all()


def test_compare_ml_fixed_effects_matches_nlme_anova(fev):
    full = _fit(fev, method="ml")
    main = _fit(fev, "FEV1 ~ FEV1_baseline + ARMCD + AVISIT", method="ml")
    tab = peerstats.compare(main, full)
    ref = R["lrt"]["ml_fixed"]
    assert tab["loglik"].iloc[0] == pytest.approx(ref["loglik_small"], abs=1e-3)
    assert tab["loglik"].iloc[1] == pytest.approx(ref["loglik_big"], abs=1e-3)
    assert tab["lr_df"].iloc[1] == ref["df"]
    assert tab["lr_statistic"].iloc[1] == pytest.approx(ref["L_ratio"], abs=1e-3)
    assert tab["p_value"].iloc[1] == pytest.approx(ref["p_value"], rel=1e-3)


def test_compare_refuses_reml_with_different_fixed_effects(fev, us_reml):
    main = _fit(fev, "FEV1 ~ FEV1_baseline + ARMCD + AVISIT")
    with pytest.raises(ModelSpecificationError, match="REML likelihoods of models with different"):
        peerstats.compare(main, us_reml)
    with pytest.raises(ModelSpecificationError, match="mix estimation methods"):
        peerstats.compare(_fit(fev, method="ml"), us_reml)
    with pytest.raises(ModelSpecificationError, match="at least two"):
        peerstats.compare(us_reml)
