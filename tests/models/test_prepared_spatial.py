"""The prepared MMRM with a spatial covariance: refits, weights, jackknife, subject covariances.

Expected values come from separate ``peerstats.mmrm()`` fits on re-built data sets (a subset,
duplicated subjects under new ids, a changed outcome), whose block types are rebuilt from the
rows, against the refit path under test (stored layout and coordinates, warm start).
``peerstats.mmrm`` with spatial covariances is validated against R nlme / R mmrm in
test_mmrm_spatial.py. ``subject_sigmas`` is checked against the SAS SP(EXP) formula written out
with nlme's estimates.

Tolerances (as tests/models/test_prepared.py): -2 log-likelihood 1e-6 absolute, fixed effects
1e-5 x their standard error, covariance parameters 1e-5 relative; subject covariances against
the formula at nlme's estimates 1e-5 relative (nlme's own precision).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError
from peerstats.models.prepared import prepare_mmrm

REF = Path(__file__).parents[1] / "reference" / "r_spatial"
NLME = json.loads((REF / "r_spatial_nlme.json").read_text())
FORMULA = "score ~ baseline + arm * visit"
KW = dict(subject="id", visit="visit", covariance="sp_exp", time="day")
LL_TOL = 1e-6
BETA_TOL = 1e-5


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "spatial_data.csv")


@pytest.fixture(scope="module")
def prep(data):
    return prepare_mmrm(FORMULA, data, **KW)


def assert_same(r, fit) -> None:
    se = fit.coef["std_error"].to_numpy()
    assert abs(r.neg2loglik - fit.neg2loglik) < LL_TOL
    np.testing.assert_array_less(np.abs(r.beta - fit.params.to_numpy()), BETA_TOL * se)
    np.testing.assert_allclose(r.theta, fit._theta, rtol=1e-5, atol=1e-5)


def test_refit_of_the_data_is_the_fit(prep, data):
    fit = peerstats.mmrm(FORMULA, data, **KW)
    assert abs(fit.neg2loglik - NLME["fits"]["sp_exp"]["minus2loglik"]) < 1e-5
    r = prep.refit()
    assert abs(r.neg2loglik - fit.neg2loglik) < 1e-9
    np.testing.assert_allclose(r.theta, fit._theta, rtol=1e-7)


def test_refit_without_subjects_equals_a_fit_on_the_subset(prep, data):
    drop = [0, 5, 17]
    r = prep.refit(drop=drop)
    gone = prep.subjects[drop]
    assert_same(r, peerstats.mmrm(FORMULA, data[~data["id"].isin(gone)], **KW))


def test_frequency_weight_two_equals_a_duplicated_subject(prep, data):
    w = np.ones(len(prep.subjects))
    w[3] = 2.0
    who = prep.subjects[3]
    dup = data[data["id"] == who].assign(id=f"{who}-copy")
    assert_same(
        prep.refit(subject_weights=w), peerstats.mmrm(FORMULA, pd.concat([data, dup]), **KW)
    )


def test_refit_on_a_new_outcome_recomputes_block_types(prep, data):
    """A new y with other missing rows: the block types (coordinates of the observed rows)
    change; the refit equals a fit on that data."""
    y = data["score"].to_numpy().copy()
    rng = np.random.default_rng(5)
    obs = np.flatnonzero(~np.isnan(y))
    y[rng.choice(obs, 40, replace=False)] = np.nan
    y[~np.isnan(y)] += rng.normal(0, 1, (~np.isnan(y)).sum())
    assert_same(prep.refit(y), peerstats.mmrm(FORMULA, data.assign(score=y), **KW))


def test_refit_needs_times_on_the_rows_it_uses(data):
    d = data.copy()
    miss = d.index[d["score"].isna()][0]
    d.loc[miss, "day"] = np.nan  # fine: that row's outcome is missing
    p = prepare_mmrm(FORMULA, d, **KW)
    y = d["score"].to_numpy().copy()
    y[miss] = 30.0
    with pytest.raises(ModelSpecificationError, match=r"missing \(or infinite\)"):
        p.refit(y)


def test_jackknife_entry_equals_leave_one_out_fit(data):
    d = data[data["id"].isin(sorted(data["id"].unique())[:40])]
    p = prepare_mmrm(FORMULA, d, **KW)
    jack = p.jackknife()
    assert len(jack) == len(p.subjects)
    for i in (0, 7):
        assert_same(jack[i], peerstats.mmrm(FORMULA, d[d["id"] != p.subjects[i]], **KW))


def test_subject_sigmas_at_own_times(prep, data):
    ref = NLME["fits"]["sp_exp"]
    S = prep.subject_sigmas()
    assert S.shape == (len(prep.subjects), 4, 4)
    for i in (0, 11, 42):
        days = data.loc[data["id"] == prep.subjects[i]].sort_values("visit")["day"].to_numpy()
        expected = ref["sigma2"] * np.exp(-np.abs(np.subtract.outer(days, days)) / ref["value"])
        np.testing.assert_allclose(S[i], expected, rtol=1e-5)
