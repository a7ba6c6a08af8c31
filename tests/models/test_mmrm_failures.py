"""Failure paths of peerstats.mmrm: every one raises a clear error that names the problem."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats import ConvergenceError, ModelSpecificationError

REF = Path(__file__).parents[1] / "reference" / "sas_fev"


@cache
def _fev() -> pd.DataFrame:
    return pd.read_csv(REF / "fev_data.csv")


@pytest.fixture
def fev() -> pd.DataFrame:
    return _fev().copy()


def fit(data, formula="FEV1 ~ ARMCD * AVISIT", **kw):
    opts = {"subject": "USUBJID", "visit": "AVISIT", "covariance": "us"} | kw
    return peerstats.mmrm(formula, data, **opts)


def test_one_subject_per_visit(fev):
    # every visit observed for exactly one subject
    subjects = fev.USUBJID.unique()[:4]
    d = fev[fev.USUBJID.isin(subjects)].copy()
    d["FEV1"] = np.nan
    for k, s in enumerate(subjects):
        d.loc[(d.USUBJID == s) & (d.AVISIT == f"VIS{k + 1}"), "FEV1"] = 40.0 + k
    with pytest.raises(ModelSpecificationError, match="single observation"):
        fit(d, "FEV1 ~ 1")


def test_collinear_covariates_are_named(fev):
    fev["BL2"] = 2 * fev["FEV1_BL"]
    with pytest.raises(ModelSpecificationError, match="rank deficient") as err:
        fit(fev, "FEV1 ~ FEV1_BL + BL2 + ARMCD * AVISIT")
    msg = str(err.value)
    assert "BL2" in msg and "FEV1_BL" in msg


def test_visit_nobody_attended(fev):
    fev.loc[fev.AVISIT == "VIS3", "FEV1"] = np.nan
    with pytest.raises(ModelSpecificationError, match="VIS3"):
        fit(fev)


def test_all_missing_arm(fev):
    fev.loc[fev.ARMCD == "TRT", "FEV1"] = np.nan
    with pytest.raises(ModelSpecificationError, match="TRT"):
        fit(fev)


@pytest.mark.parametrize(
    "option,value,valid",
    [
        ("covariance", "unstructured", "us"),
        ("method", "REMLX", "reml"),
        ("df", "kr", "kenward-roger"),
    ],
)
def test_bad_option_lists_valid_choices(fev, option, value, valid):
    with pytest.raises(ModelSpecificationError, match=valid) as err:
        fit(fev, **{option: value})
    assert repr(value) in str(err.value)


def test_bad_column_names(fev):
    with pytest.raises(ModelSpecificationError, match="not a column"):
        fit(fev, subject="ID")
    with pytest.raises(ModelSpecificationError, match="not a column"):
        fit(fev, group="ARM")
    with pytest.raises(ModelSpecificationError, match="not found"):
        fit(fev, "FEV1 ~ AGE + AVISIT")


def test_bad_reference_level(fev):
    with pytest.raises(ModelSpecificationError, match="levels are"):
        fit(fev, reference={"ARMCD": "placebo"})
    with pytest.raises(ModelSpecificationError, match="not factors"):
        fit(fev, reference={"SITE": "A"})


def test_missing_covariate_is_an_error_naming_rows(fev):
    row = fev.index[fev.FEV1.notna()][3]
    fev.loc[row, "RACE"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing values") as err:
        fit(fev, "FEV1 ~ RACE + ARMCD * AVISIT")
    assert str(row) in str(err.value) and "RACE" in str(err.value)


def test_duplicated_subject_visit(fev):
    d = pd.concat([fev, fev.iloc[[1]]])
    with pytest.raises(ModelSpecificationError, match="one row per visit"):
        fit(d)


def test_group_must_be_constant_within_subject(fev):
    fev["G"] = np.where(fev.AVISIT == "VIS1", "a", "b")
    with pytest.raises(ModelSpecificationError, match="constant within subject"):
        fit(fev, "FEV1 ~ 1", covariance="cs", group="G")


def test_nonpositive_weights(fev):
    fev["W"] = 1.0
    fev.loc[fev.index[1], "W"] = 0.0
    with pytest.raises(ModelSpecificationError, match="positive"):
        fit(fev, weights="W")


def test_singular_covariance_raises_convergence_error(fev):
    # within-subject variation exactly zero: the residual covariance is singular (rho -> 1)
    subj_level = fev.groupby("USUBJID")["FEV1_BL"].transform("first")
    fev["Y"] = np.where(fev.FEV1.notna(), subj_level, np.nan)
    with pytest.raises(ConvergenceError) as err:
        fit(fev, "Y ~ 1", covariance="cs")
    assert err.value.tried
    assert err.value.gradient is not None


def test_missing_outcomes_are_dropped_and_counted(fev):
    res = fit(fev, "FEV1 ~ 1", covariance="cs")
    assert (res.n_obs, res.n_dropped) == (537, 263)
    assert res.n_subjects == fev.loc[fev.FEV1.notna(), "USUBJID"].nunique()


def test_result_is_immutable(fev):
    res = fit(fev, "FEV1 ~ ARMCD", covariance="cs")
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.neg2loglik = 0.0  # type: ignore[misc]
    coef = res.coef
    coef.loc[:, "estimate"] = 0.0
    assert (res.coef["estimate"] != 0).all()


def test_reference_and_categorical_order(fev):
    res = fit(fev, "FEV1 ~ ARMCD", covariance="cs", reference={"ARMCD": "TRT"})
    assert "ARMCD[T.PBO]" in res.coef.index
    fev["ARMCD"] = pd.Categorical(fev.ARMCD, categories=["TRT", "PBO"])
    res2 = fit(fev, "FEV1 ~ ARMCD", covariance="cs")
    assert "ARMCD[T.PBO]" in res2.coef.index
    con = res2.contrasts(arm="ARMCD")
    assert con.contrast.tolist() == ["PBO - TRT"]
    with pytest.raises(ModelSpecificationError, match="levels are"):
        res2.contrasts(arm="ARMCD", reference="X")


def test_bad_emmeans_specs(fev):
    res = fit(fev, "FEV1 ~ ARMCD + FEV1_BL", covariance="cs")
    with pytest.raises(ModelSpecificationError, match="factors are"):
        res.emmeans("FEV1_BL")


def test_summary_and_html(fev):
    res = fit(fev, "FEV1 ~ ARMCD * AVISIT", covariance="ar1")
    text = res.summary()
    assert "AR(1)" in text and "REML" in text and "537 used" in text
    assert "<table>" in res._repr_html_()
    assert list(res.to_frame().columns)[:2] == ["term", "estimate"]


def test_kenward_roger_needs_reml(fev):
    with pytest.raises(ModelSpecificationError, match="method='reml'"):
        fit(fev, method="ml", df="kenward-roger")


def test_visit_pair_never_observed_together_us(fev):
    # nobody observed at both VIS1 and VIS4: UN(4,1) is not identified
    both = fev.groupby("USUBJID")["FEV1"].transform(lambda s: s.notna().iloc[0])
    fev.loc[(fev.AVISIT == "VIS4") & both.astype(bool), "FEV1"] = np.nan
    with pytest.raises(ModelSpecificationError, match="both visits"):
        fit(fev, "FEV1 ~ 1")


def test_kr_information_needs_kenward_roger():
    data = pd.DataFrame(
        {
            "id": np.repeat(np.arange(20), 2),
            "visit": np.tile(["v1", "v2"], 20),
            "y": np.random.default_rng(1).normal(size=40),
        }
    )
    with pytest.raises(ModelSpecificationError, match="only applies to df='kenward-roger'"):
        peerstats.mmrm(
            "y ~ visit",
            data,
            subject="id",
            visit="visit",
            covariance="cs",
            df="satterthwaite",
            kr_information="expected",
        )
    with pytest.raises(ModelSpecificationError, match="kr_information"):
        peerstats.mmrm(
            "y ~ visit",
            data,
            subject="id",
            visit="visit",
            covariance="cs",
            df="kenward-roger",
            kr_information="fisher",
        )


@pytest.mark.parametrize("covariance", ["ar1", "toep", "cs"])
def test_unused_visit_level_is_an_error_for_every_structure(covariance):
    """A Categorical visit level with no observed outcome would change the lags of ar1/toep
    (visits 2 and 4 would be two steps apart): refused, naming the visit (R mmrm drops it with a
    message; we do not change the analysis silently)."""
    rng = np.random.default_rng(2)
    n = 30
    d = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 3),
            "visit": pd.Categorical(np.tile([1, 2, 4], n), categories=[1, 2, 3, 4]),
            "y": rng.normal(size=3 * n),
        }
    )
    with pytest.raises(ModelSpecificationError, match=r"visit\(s\) \['3'\] of 'visit' have no"):
        peerstats.mmrm("y ~ visit", d, subject="id", visit="visit", covariance=covariance)
    d["visit"] = d["visit"].cat.remove_unused_categories()
    assert peerstats.mmrm(
        "y ~ visit", d, subject="id", visit="visit", covariance=covariance
    ).converged


def test_inline_factor_in_formula_is_refused():
    """C(x) would be taken as numeric by emmeans/type III (wrong marginal means)."""
    rng = np.random.default_rng(4)
    n = 30
    d = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 2),
            "visit": np.tile(["v1", "v2"], n),
            "male": np.repeat(rng.integers(0, 2, n), 2),
            "y": rng.normal(size=2 * n),
        }
    )
    with pytest.raises(ModelSpecificationError, match=r"\['C\(male\)'\]: write factors as columns"):
        peerstats.mmrm("y ~ C(male) + visit", d, subject="id", visit="visit")
