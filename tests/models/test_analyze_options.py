"""analyze() takes covariance, covariates and the random part (issue 12, point 4).

Expected values: the same model written out by hand with peerstats.mmrm / peerstats.lmm (the
model choice is what is tested here; the engine is validated against SAS/R elsewhere).
Tolerance 1e-8 relative (identical fits).
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataWarning, SpecError


@pytest.fixture(scope="module")
def trial():
    return peerstats.datasets.load("social_inclusion")


def _post(trial, outcome="sis", covariates=()):
    a = trial.assessments
    post = a[a["visit"].astype(str) != "baseline"].copy()
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=["m4", "m8"])
    post["arm"] = pd.Categorical(post["arm"].astype(str), categories=["waitlist", "peer"])
    post["site"] = post["site"].astype(str)
    if covariates:
        post = post.merge(trial.participants[["subject", *covariates]], on="subject")
    return post[post[f"{outcome}_baseline"].notna()]


def test_covariance_and_covariates(trial):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        res = peerstats.analyze(trial, outcome="sis", covariance="cs", covariates=["age"])
    assert "age" in res.formula and "cs covariance" in res.formula
    post = _post(trial, covariates=["age"])
    hand = peerstats.mmrm(
        "sis ~ sis_baseline + site + age + arm * visit",
        post,
        subject="subject",
        visit="visit",
        covariance="cs",
        reference={"arm": "waitlist"},
    )
    assert res.fit.params.sort_index().tolist() == pytest.approx(
        hand.params.sort_index().tolist(), rel=1e-8
    )
    assert res.fit.covariance_type == "cs"


def test_random_part_turns_mmrm_into_lmm(trial):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        res = peerstats.analyze(trial, outcome="sis", random="(1 | subject)")
    assert res.model == "lmm" and "(1 | subject)" in res.formula
    assert "cohens_d" in res.contrasts.columns


def test_unknown_covariate_is_refused(trial):
    with pytest.raises(SpecError, match="not columns of the participants"):
        peerstats.analyze(trial, outcome="sis", covariates=["shoe_size"])
