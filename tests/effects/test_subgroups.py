"""Subgroups from the primary MMRM with a treatment-by-subgroup interaction, against R.

Reference: tests/reference/r_effects19/subgroups_reference.json (make_subgroups.R) on the
analysed rows of the bundled synthetic trial `social_inclusion` (si_subgroup_data.csv):
- `gls`: nlme::gls, corSymm + varIdent (unstructured), REML; emmeans trt.vs.ctrl within each
  level at m8: estimates and SEs, tolerance 2e-5: gls stops at a REML log-likelihood 3e-8 below
  ours on the diagnosis model (-3440.86907646597 vs -3440.86907643380), which moves one estimate
  by 1.1e-5; R mmrm (below) converges further and is held to 1e-5.
- `mmrm`: R mmrm 0.3.18, us(visit | subject), Satterthwaite; emmeans contrasts (df) and the
  interaction F test by mmrm::df_md on emmeans' linfct; tolerance 1e-5 (df relative 1e-4).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from peerstats import subgroups
from peerstats.exceptions import DataValidationError, SpecError

REF = json.loads(
    (Path(__file__).parents[1] / "reference" / "r_effects19" / "subgroups_reference.json").read_text()
)


@pytest.fixture(scope="module")
def trial():
    import peerstats

    return peerstats.datasets.load("social_inclusion")


@pytest.fixture(scope="module")
def result(trial):
    return subgroups(trial, outcome="sis", visit="m8", by=["gender", "diagnosis", "age"])


def _rows(result, var):
    return result.table[result.table["variable"] == var].set_index("level")


@pytest.mark.parametrize("var", ["gender", "diagnosis"])
def test_subgroup_effects_equal_gls_emmeans(result, var):
    r = REF["gls"][var]
    got = _rows(result, var).loc[r["level"]]
    np.testing.assert_allclose(got["estimate"], r["estimate"], atol=2e-5)
    np.testing.assert_allclose(got["std_error"], r["std_error"], atol=2e-5)


@pytest.mark.parametrize("var", ["gender", "diagnosis"])
def test_subgroup_df_and_interaction_equal_r_mmrm(result, var):
    r = REF["mmrm"][var]
    got = _rows(result, var).loc[r["level"]]
    np.testing.assert_allclose(got["estimate"], r["estimate"], atol=1e-5)
    np.testing.assert_allclose(got["df"], r["df"], rtol=1e-4)
    np.testing.assert_allclose(got["ci_lower"], r["ci_lower"], atol=1e-5)
    np.testing.assert_allclose(got["p_value"], r["p_value"], atol=1e-5)
    it = result.interactions.loc[var]
    assert it["num_df"] == r["interaction"]["num_df"]
    assert it["den_df"] == pytest.approx(r["interaction"]["den_df"], rel=1e-4)
    assert it["F"] == pytest.approx(r["interaction"]["F"], abs=1e-5)
    assert it["p_value"] == pytest.approx(r["interaction"]["p_value"], abs=1e-5)


def test_continuous_modifier_equals_r_mmrm(result):
    r = REF["mmrm"]["age"]
    got = _rows(result, "age")
    np.testing.assert_allclose(got["estimate"], r["estimate"], atol=1e-5)
    np.testing.assert_allclose(got["std_error"], r["std_error"], atol=1e-5)
    it = result.interactions.loc["age"]
    assert it["slope"] == pytest.approx(r["slope"]["estimate"], abs=1e-6)
    assert it["p_value"] == pytest.approx(r["slope"]["p_value"], abs=1e-5)
    curve = result.curves["age"]
    assert (curve["ci_lower"] < curve["estimate"]).all() and len(curve) > 10


def test_overall_and_reporting(result):
    assert result.overall["estimate"] == pytest.approx(REF["mmrm"]["overall"]["estimate"], abs=1e-5)
    assert result.n_tested == 3
    assert "exploratory" in result.warning and "3 subgroup" in result.warning
    n = _rows(result, "gender")["n"]
    assert n.sum() == result.n_overall  # every analysed participant has a gender
    recs = result.effect_records()
    assert len(recs) == len(result.table) and recs[0].extra["exploratory"]


def test_forest_and_curve_draw(result):
    import matplotlib

    matplotlib.use("Agg")
    ax = result.plot()
    labels = [t.get_text() for t in ax.texts]
    assert any(s.startswith("Overall") for s in labels)
    assert any("interaction p" in s for s in labels)
    assert any("woman" in s for s in labels)
    assert result.plot(curve="age") is not None


class _View:
    def __init__(self, trial, participants=None, assessments=None):
        self.spec = trial.spec
        self.participants = trial.participants if participants is None else participants
        self.assessments = trial.assessments if assessments is None else assessments


def test_one_level_raises(trial):
    p = trial.participants.assign(everyone="yes")
    with pytest.raises(DataValidationError, match="at least two"):
        subgroups(_View(trial, participants=p), outcome="sis", by=["everyone"])


def test_empty_cell_raises(trial):
    p = trial.participants.copy()
    p["gender"] = p["gender"].astype(object)
    p.loc[(p["gender"] == "non-binary") & (p["arm"].astype(str) == "peer"), "gender"] = "woman"
    with pytest.raises(DataValidationError, match="non-binary x peer"):
        subgroups(_View(trial, participants=p), outcome="sis", by=["gender"])


def test_unknown_variable_and_visit(trial):
    with pytest.raises(SpecError, match="not a column"):
        subgroups(trial, outcome="sis", by=["shoe_size"])
    with pytest.raises(SpecError, match="post-baseline visit"):
        subgroups(trial, outcome="sis", visit="baseline", by=["gender"])


def test_from_a_fit_with_the_interaction_equals_r_mmrm():
    """A peerstats.mmrm fit with gender * arm * visit, used as it is (no refit)."""
    import pandas as pd

    import peerstats

    d = pd.read_csv(
        Path(__file__).parents[1] / "reference" / "r_effects19" / "si_subgroup_data.csv"
    )
    d["arm"] = pd.Categorical(d["arm"], categories=["waitlist", "peer"])
    fit = peerstats.mmrm(
        "sis ~ sis_baseline + site + arm * visit + gender * arm * visit", d, subject="subject",
        visit="visit", covariance="us", reference={"arm": "waitlist"},
    )
    res = subgroups(fit, outcome="sis", visit="m8", by=["gender"])
    r = REF["mmrm"]["gender"]
    got = _rows(res, "gender").loc[r["level"]]
    np.testing.assert_allclose(got["estimate"], r["estimate"], atol=1e-5)
    np.testing.assert_allclose(got["df"], r["df"], rtol=1e-4)
    assert res.interactions.loc["gender", "F"] == pytest.approx(r["interaction"]["F"], abs=1e-5)
    with pytest.raises(SpecError, match="not in the fitted model"):
        subgroups(fit, outcome="sis", visit="m8", by=["diagnosis"])


def test_trial_analysis_is_refused_with_advice(trial):
    import peerstats

    primary = peerstats.analyze(trial, outcome="sis")
    with pytest.raises(SpecError, match="pass the Trial"):
        subgroups(primary, outcome="sis", by=["gender"])
