"""Multiple imputation in rbmi's four steps, each alone (issue 23.3): draws -> impute_from_draws
-> analyse -> pool, and the pooled linear mixed model of ``analyse(model=...)`` (issue 20.3).

Outside references:
- Rubin's rules on fixed numbers: R ``mice::pool.scalar`` (mice 3.15.0), the hand-checkable
  case of tests/reference/r_mi/mice_pool.R (``scalar``: Q, U, n, k). Tolerance 1e-8 relative.
- Pooled LMM: R ``mice::pool`` of ``lmerTest::lmer`` fits of
  ``y ~ arm * visit + baseline + (0 + peer | group) + (1 | id)`` on the five SYNTHETIC
  completed datasets in tests/reference/r_mi_lmm/completed.csv (mi_lmm_reference.R, R 4.2.2,
  mice 3.15.0, lme4 1.1.31, lmerTest 3.1.3, broom.mixed 0.2.9.4). Relative tolerances (largest
  difference seen): per-set estimates 1e-7 (2.5e-9), per-set SEs 1e-5 (1.1e-6: two REML
  optimisers stop at slightly different variance components), pooled estimate 1e-8 (5e-10),
  pooled SE 1e-6 (1.8e-7), df, interval, p value and fmi 1e-5 (1.4e-6: the Barnard-Rubin df
  uses the first set's Satterthwaite df, which the two programs compute by different numerical
  derivatives).
The composition tests (draws then impute_from_draws equals impute) compare our own steps with
our own composition; they guard the refactor, the references above guard the numbers.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.missing._trial import ice_frame, make_trial

import peerstats
from peerstats.exceptions import ModelSpecificationError
from peerstats.missing import (
    Analyses,
    Draws,
    Imputations,
    analyse,
    draws,
    draws_multilevel,
    impute_from_draws,
    impute_multilevel,
    pool,
)

REFDIR = Path(__file__).parents[1] / "reference"
MICE = json.loads((REFDIR / "r_mi" / "mice_pool.json").read_text())
LMM_REF = json.loads((REFDIR / "r_mi_lmm" / "mi_lmm_reference.json").read_text())
LMM_MODEL = "y ~ arm * visit + baseline + (0 + peer | group) + (1 | id)"


@pytest.fixture(scope="module")
def trial():
    df, drop = make_trial(n=40, seed=7)
    return df, ice_frame(df, drop, ["JR", "CIR", "MAR"])


def _kw(ice, **kw):
    base = dict(subject="id", visit="visit", arm="arm", ice=ice, reference={"peer": "usual"})
    return {**base, **kw}


@pytest.mark.parametrize(
    "method, m",
    [("bayes", 3), ("condmean-jackknife", None), ("bootstrap-ml", (2, 2))],
)
def test_draws_then_impute_from_draws_is_impute(trial, method, m):
    df, ice = trial
    kw = _kw(ice, method=method, n_imputations=m, seed=5)
    d = draws("y ~ arm * visit + base", df, **kw)
    assert isinstance(d, Draws) and d.n_draws == d.parameters["beta"].shape[0]
    a = impute_from_draws(d)
    b = peerstats.impute("y ~ arm * visit + base", df, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    pd.testing.assert_frame_equal(a.analyse(covariates="base"), b.analyse(covariates="base"))
    # the impute step is repeatable: its random stream is kept in the draws
    np.testing.assert_array_equal(impute_from_draws(d).values, a.values)


def test_analyse_then_pool_is_imputations_analyse(trial):
    df, ice = trial
    imp = peerstats.impute(
        "y ~ arm * visit + base", df, **_kw(ice, method="bayes", n_imputations=3, seed=2)
    )
    an = analyse(imp, covariates="base")
    assert isinstance(an, Analyses) and an.n_sets == 3
    assert an.estimates.shape == (3, 3) and list(an.terms.columns) == ["visit", "contrast"]
    pd.testing.assert_frame_equal(pool(an), imp.analyse(covariates="base"))
    fn = lambda d: (d["y"].mean(), d["y"].var() / len(d))  # noqa: E731
    pd.testing.assert_frame_equal(pool(analyse(imp, fn)), imp.analyse(fn))


def test_pool_of_known_estimates_matches_mice_pool_scalar():
    sc = MICE["scalar"]
    an = Analyses.from_arrays(sc["Q"], sc["U"], df_complete=sc["n"] - sc["k"], terms=["theta"])
    row = pool(an).iloc[0]
    exp = sc["finite"]
    assert row["term"] == "theta"
    assert row["estimate"] == pytest.approx(exp["qbar"], rel=1e-8)
    assert row["std_error"] == pytest.approx(np.sqrt(exp["t"]), rel=1e-8)
    assert row["df"] == pytest.approx(exp["df"], rel=1e-8)
    assert row["fraction_missing_info"] == pytest.approx(exp["fmi"], rel=1e-8)


def test_multilevel_shares_the_steps():
    d = pd.read_csv(REFDIR / "r_jomo" / "pn_trial.csv")
    long = d.melt(
        id_vars=["id", "arm", "group", "baseline"],
        value_vars=["post", "fu3"],
        var_name="visit",
        value_name="y",
    )
    long["visit"] = pd.Categorical(long["visit"], ["post", "fu3"])
    kw = dict(
        subject="id",
        visit="visit",
        arm="arm",
        group="group",
        n_imputations=2,
        burn=5,
        thin=2,
        seed=3,
    )
    dr = draws_multilevel("y ~ arm + baseline", long, **kw)
    assert dr.values is not None and set(dr.parameters) == {"B", "Omega", "Sigma"}
    a = impute_from_draws(dr)
    b = impute_multilevel("y ~ arm + baseline", long, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert isinstance(a, Imputations) and a.info["source"] == "impute_multilevel"


# ---- failure paths, one or more per step --------------------------------------------------
def test_impute_from_draws_refuses_other_objects_and_mismatched_draws(trial):
    df, ice = trial
    d = draws("y ~ arm * visit + base", df, **_kw(ice, method="bayes", n_imputations=2, seed=1))
    imp = impute_from_draws(d)
    with pytest.raises(ModelSpecificationError, match="needs a Draws"):
        impute_from_draws(imp)
    short = {**d.parameters, "beta": d.parameters["beta"][:1]}
    with pytest.raises(ModelSpecificationError, match="mismatched draws: 1 beta draws but 2"):
        impute_from_draws(replace(d, parameters=short))
    narrow = {**d.parameters, "beta": d.parameters["beta"][:, :-1]}
    with pytest.raises(ModelSpecificationError, match="beta has"):
        impute_from_draws(replace(d, parameters=narrow))
    with pytest.raises(ModelSpecificationError, match="imputed values for"):
        impute_from_draws(replace(d, values=np.zeros((2, 1))))


def test_draws_checks_before_fitting(trial):
    df, ice = trial
    with pytest.raises(ModelSpecificationError, match="method='nope' is not valid"):
        draws("y ~ arm * visit + base", df, **_kw(ice, method="nope"))


def test_analyse_refuses_wrong_objects_and_arguments(trial):
    df, ice = trial
    d = draws("y ~ arm * visit + base", df, **_kw(ice, method="bayes", n_imputations=2, seed=1))
    imp = impute_from_draws(d)
    with pytest.raises(ModelSpecificationError, match="needs an Imputations"):
        analyse(d)
    with pytest.raises(ModelSpecificationError, match="fn= or model=, not both"):
        analyse(imp, lambda x: (1.0, 1.0), model="y ~ arm + (1 | id)")
    with pytest.raises(ModelSpecificationError, match="random terms"):
        analyse(imp, model="y ~ arm * visit")
    with pytest.raises(ModelSpecificationError, match="imputed outcome is 'y'"):
        analyse(imp, model="base ~ arm + (1 | id)")
    with pytest.raises(ModelSpecificationError, match="must not set \\['data'\\]"):
        analyse(imp, model="y ~ arm + (1 | id)", model_options={"data": df})
    with pytest.raises(ModelSpecificationError, match="model_options= needs model="):
        analyse(imp, model_options={"residual_by": "arm"})
    with pytest.raises(ModelSpecificationError, match="failed on 2 of 2"):
        analyse(imp, model="y ~ arm + nosuchcolumn + (1 | id)")


def test_pool_refuses_wrong_objects(trial):
    df, ice = trial
    imp = peerstats.impute(
        "y ~ arm * visit + base", df, **_kw(ice, method="bayes", n_imputations=2, seed=1)
    )
    with pytest.raises(ModelSpecificationError, match="analyse\\(imputations\\) first"):
        pool(imp)
    an = analyse(imp)
    with pytest.raises(ModelSpecificationError, match="do not pass variances"):
        pool(an, [1.0, 2.0])
    with pytest.raises(ModelSpecificationError, match="needs the variances"):
        pool([1.0, 2.0])
    with pytest.raises(ModelSpecificationError, match="level must be in"):
        pool(an, level=1.5)


def test_from_datasets_finds_the_imputed_cells():
    """Without ``missing=``, the cells that differ between the sets are the imputed ones: the
    pooled numbers equal those with the mask given (the mice reference of test_pool.py)."""
    from tests.missing.test_pool import _imputations

    given = _imputations()
    frames = list(given.datasets)
    found = Imputations.from_datasets(
        frames, outcome="y", subject="subject", visit="visit", arm="arm"
    )
    np.testing.assert_array_equal(found.target, given.target)
    pd.testing.assert_frame_equal(
        found.analyse(covariates="base"), given.analyse(covariates="base")
    )


# ---- the pooled linear mixed model against R mice::pool of lmer fits ------------------------
@pytest.fixture(scope="module")
def completed_lmm():
    c = pd.read_csv(REFDIR / "r_mi_lmm" / "completed.csv")
    c["arm"] = pd.Categorical(c["arm"], ["usual", "peer"])
    c["visit"] = pd.Categorical(c["visit"], ["post", "fu3"])
    sets = [g.drop(columns=".imp").reset_index(drop=True) for _, g in c.groupby(".imp")]
    imp = Imputations.from_datasets(sets, outcome="y", subject="id", visit="visit", arm="arm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of the five fits is singular (nor in lme4)
        an = analyse(imp, model=LMM_MODEL)
    return imp, an


def test_pooled_lmm_matches_mice_pool_of_lmer(completed_lmm):
    _, an = completed_lmm
    res = pool(an)
    assert res.attrs["model"] == LMM_MODEL
    assert list(res["visit"].astype(str)) == ["post", "fu3"]
    for k, v in enumerate(["post", "fu3"]):
        ref = LMM_REF["contrasts"][v]
        np.testing.assert_allclose(an.estimates.iloc[:, k], ref["per_set_estimate"], rtol=1e-7)
        np.testing.assert_allclose(
            np.sqrt(an.variances.iloc[:, k]), ref["per_set_std_error"], rtol=1e-5
        )
        row = res.iloc[k]
        assert row["contrast"] == "peer - usual"
        assert row["estimate"] == pytest.approx(ref["estimate"], rel=1e-8)
        assert row["std_error"] == pytest.approx(ref["std_error"], rel=1e-6)
        assert row["df"] == pytest.approx(ref["df"], rel=1e-5)
        assert row["ci_lower"] == pytest.approx(ref["ci_lower"], rel=1e-5)
        assert row["ci_upper"] == pytest.approx(ref["ci_upper"], rel=1e-5)
        assert row["p_value"] == pytest.approx(ref["p_value"], rel=1e-5)
        assert row["fraction_missing_info"] == pytest.approx(ref["fmi"], rel=1e-5)


def test_imputations_analyse_model_is_pool_of_analyse(completed_lmm, monkeypatch):
    """Imputations.analyse(model=...) passes model and model_options to the analyse step and
    pools its result (the fits themselves are those checked against R above; not refitted)."""
    import peerstats.missing.analyses as analyses_module

    imp, an = completed_lmm
    seen = {}

    def fake(imputations, model, model_options, df_complete):
        seen.update(model=model, options=model_options, imp=imputations)
        return an

    monkeypatch.setattr(analyses_module, "_analyse_lmm", fake)
    direct = imp.analyse(model=LMM_MODEL, model_options={"df": "satterthwaite"})
    assert seen == {"model": LMM_MODEL, "options": {"df": "satterthwaite"}, "imp": imp}
    pd.testing.assert_frame_equal(direct, pool(an))
