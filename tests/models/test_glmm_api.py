"""peerstats.glmm result API: marginal means, contrasts, predictions, the marginal-effect
protocol and effect records.

Expected values come from closed forms outside our code path: for a GLM with one factor the
ML fitted probability of each level is its observed proportion, the log odds ratio's SE is
Woolf's sqrt(1/a + 1/b + 1/c + 1/d), and a Poisson rate ratio's SE is sqrt(1/y1 + 1/y0).
Data are synthetic.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import peerstats as ps
from peerstats.effects import EffectRecord


@pytest.fixture(scope="module")
def trial():
    rng = np.random.default_rng(2016)
    n_subj, visits = 200, 3
    d = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n_subj), visits).astype(str),
            "visit": np.tile(["v1", "v2", "v3"], n_subj),
        }
    )
    d["arm"] = np.where(d["id"].astype(int) < 100, "control", "peer")
    d["peer"] = (d["arm"] == "peer").astype(int)
    d["group"] = np.where(d["peer"] == 1, "G" + (d["id"].astype(int) // 10).astype(str), None)
    b = rng.normal(0, 0.8, n_subj)[d["id"].astype(int)]
    eta = -0.5 + 0.4 * d["peer"] + b
    d["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    d["days"] = rng.integers(60, 200, len(d)).astype(float)
    d["count"] = rng.poisson(np.exp(-3 + 0.3 * d["peer"]) * d["days"])
    return d


def _fit(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ps.glmm(*a, **k)


def test_glm_emmeans_are_observed_proportions_with_logit_ci(trial):
    fit = _fit("y ~ arm", trial)
    em = fit.emmeans("arm")
    obs = trial.groupby("arm")["y"].mean()
    assert np.allclose(em["estimate"], obs.loc[em["arm"].astype(str)].to_numpy(), atol=1e-8)
    # CI on the logit scale, SE = 1/sqrt(n p (1-p)), back-transformed
    n = trial.groupby("arm")["y"].size().loc[em["arm"].astype(str)].to_numpy()
    p = em["estimate"].to_numpy()
    se_logit = 1 / np.sqrt(n * p * (1 - p))
    z = stats.norm.ppf(0.975)
    lo = 1 / (1 + np.exp(-(np.log(p / (1 - p)) - z * se_logit)))
    assert np.allclose(em["ci_lower"], lo, rtol=1e-5)
    link = fit.emmeans("arm", type="link")
    assert np.allclose(link["std_error"], se_logit, rtol=1e-5)


def test_glm_odds_ratio_matches_woolf(trial):
    fit = _fit("y ~ arm", trial)
    tab = pd.crosstab(trial["arm"], trial["y"])
    a, b = tab.loc["peer", 1], tab.loc["peer", 0]
    c, d = tab.loc["control", 1], tab.loc["control", 0]
    or_ = (a / b) / (c / d)
    se = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    ctr = fit.contrasts(arm="arm")
    assert ctr["estimate"].iloc[0] == pytest.approx(or_, rel=1e-6)
    assert ctr["std_error"].iloc[0] == pytest.approx(se, rel=1e-5)
    assert ctr["ci_upper"].iloc[0] == pytest.approx(
        np.exp(np.log(or_) + 1.959963984540054 * se), rel=1e-5
    )
    assert fit.odds_ratio.loc["arm[T.peer]", "estimate"] == pytest.approx(or_, rel=1e-6)
    rd = fit.contrasts(arm="arm", scale="difference")
    p1, p0 = a / (a + b), c / (c + d)
    assert rd["estimate"].iloc[0] == pytest.approx(p1 - p0, rel=1e-6)
    assert rd["std_error"].iloc[0] == pytest.approx(
        np.sqrt(p1 * (1 - p1) / (a + b) + p0 * (1 - p0) / (c + d)), rel=1e-5
    )


def test_poisson_rate_ratio_with_exposure(trial):
    fit = _fit("count ~ arm", trial, family="poisson", exposure="days")
    g = trial.groupby("arm")[["count", "days"]].sum()
    rr = (g.loc["peer", "count"] / g.loc["peer", "days"]) / (
        g.loc["control", "count"] / g.loc["control", "days"]
    )
    se = np.sqrt(1 / g.loc["peer", "count"] + 1 / g.loc["control", "count"])
    assert fit.rate_ratio.loc["arm[T.peer]", "estimate"] == pytest.approx(rr, rel=1e-6)
    assert fit.coef.loc["arm[T.peer]", "std_error"] == pytest.approx(se, rel=1e-5)
    em = fit.emmeans("arm")  # rates per day (offset 0)
    assert em["estimate"].iloc[0] == pytest.approx(
        g.loc["control", "count"] / g.loc["control", "days"], rel=1e-6
    )
    # score equation of a Poisson GLM with an intercept: residuals sum to 0
    assert abs(fit.residuals().sum()) < 1e-6 * trial["count"].sum()


def test_marginal_effect_protocol(trial):
    fit = _fit("y ~ arm + visit + (0 + peer | group) + (1 | id)", trial)
    X = fit.model_matrix(fit.data)
    assert np.allclose(X, fit._problem.X)
    assert X.shape[1] == len(fit.fixed_params) == len(fit.coef)
    V = fit.fixed_vcov
    assert V.shape == (X.shape[1], X.shape[1]) and np.allclose(V, V.T)
    assert np.allclose(np.sqrt(np.diag(V)), fit.coef["std_error"])
    assert fit.family_name == "binomial"
    assert np.allclose(fit.link.inverse(np.array([0.0])), 0.5)
    vc = fit.variance_components["variance"]
    var = fit.re_variance_per_row(fit.data)
    peer = fit.data["peer"].to_numpy() == 1
    assert np.allclose(var[peer], vc["group"] + vc["id"])
    assert np.allclose(var[~peer], vc["id"])
    # counterfactual rows: everyone in the peer arm (group unknown for controls)
    cf = fit.data.assign(arm="peer", peer=1)
    assert np.allclose(fit.re_variance_per_row(cf), vc["group"] + vc["id"])
    assert np.all(fit.model_matrix(cf)[:, list(fit.coef.index).index("arm[T.peer]")] == 1)
    assert np.allclose(_fit("y ~ arm", trial).re_variance_per_row(trial), 0.0)


def test_predict_and_residuals(trial):
    fit = _fit("y ~ arm + (1 | id)", trial)
    p = fit.predict()
    assert p.shape == (len(trial),) and np.all((p > 0) & (p < 1))
    eta = fit.predict(type="link")
    assert np.allclose(1 / (1 + np.exp(-eta)), p)
    marg = fit.predict(trial, conditional=False, type="link")
    assert np.allclose(marg, fit.model_matrix(trial) @ fit.fixed_params)
    new = trial.head(3).assign(id="new-person")
    assert np.allclose(fit.predict(new, type="link"), fit.model_matrix(new) @ fit.fixed_params)
    r = fit.residuals()
    assert np.allclose(r.to_numpy(), trial["y"].to_numpy() - p)
    rp = fit.residuals("pearson")
    assert np.allclose(rp.to_numpy(), r.to_numpy() / np.sqrt(p * (1 - p)))


def test_effect_records_and_summary(trial):
    fit = _fit("y ~ arm + visit + (1 | id)", trial)
    recs = fit.effect_records("arm", outcome_label="Readmission")
    assert len(recs) == 1 and isinstance(recs[0], EffectRecord)
    r = recs[0]
    assert r.scale == "odds_ratio" and r.comparison == "peer vs control"
    assert r.estimate == pytest.approx(fit.odds_ratio.loc["arm[T.peer]", "estimate"], rel=1e-10)
    by = fit.contrasts(arm="arm", by="visit")
    assert len(by) == 3 and np.allclose(by["estimate"], r.estimate)  # no interaction
    text = fit.summary()
    assert "Laplace" in text and "arm[T.peer]" in text and "Random effects" in text
    assert "<table" in fit._repr_html_()
    assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * 5)
    assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(len(trial)) * 5)


def test_compare_accepts_glmm_fits():
    """peerstats.compare on a GLM and the GLMM that adds (1 | herd) (cbpp): the likelihood-ratio
    statistic is twice the log-likelihood difference, the GLMM's log-likelihood being glmmTMB's
    (tests/reference/r_glmm/r_glmm_reference.json, 'cbpp_tmb')."""
    import json
    from pathlib import Path

    ref_dir = Path(__file__).parents[1] / "reference" / "r_glmm"
    ref = json.loads((ref_dir / "r_glmm_reference.json").read_text())
    cb = pd.read_csv(ref_dir / "cbpp.csv").astype({"herd": str, "period": str})
    glm = _fit("prop ~ period", cb, weights="size")
    mixed = _fit("prop ~ period + (1 | herd)", cb, weights="size")
    table = ps.compare(glm, mixed, names=["GLM", "GLMM"])
    assert list(table["n_params"]) == [4, 5]
    assert table["lr_statistic"].iloc[1] == pytest.approx(
        2 * (ref["cbpp_tmb"]["loglik"] - glm.loglik), abs=1e-6
    )
    assert table["lr_df"].iloc[1] == 1
