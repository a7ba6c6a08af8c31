"""Mediation against the product-of-coefficients closed form and R `mediation` on JOBS II.

References:
- closed form: for linear mediator and outcome models without interaction, ACME = beta_T (mediator
  model) x gamma_M (outcome model) and ADE = the outcome model's treatment coefficient (Imai, Keele
  & Tingley 2010, section 'linear structural equation models'); computed here with numpy least
  squares, tolerance 1e-8 (we hold 1e-10).
- tests/reference/r_effects19/mediation_reference.json (make_mediation.R): R mediation 4.5.x
  (github:kosukeimai/mediation) on its public JOBS II data (data(jobs), jobs.csv here), the models
  of the package vignette; quasi-Bayesian with 20000 simulations (R reports simulation means as
  point estimates), bootstrap with 2000 resamples; medsens on a rho grid of 0.01.
  Monte-Carlo tolerance: 4 standard errors of the difference. For a point estimate, the SE of R's
  simulation mean (sd / sqrt(20000)); for a 2.5% or 97.5% quantile, 2.67 sd sqrt(1/S + 1/S_R)
  (quantile SE of a normal, sqrt(p(1-p)) / phi(z_p) = 2.67 sd / sqrt(S)).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peerstats import mediation
from peerstats.exceptions import ModelSpecificationError, SpecError

REF_DIR = Path(__file__).parents[1] / "reference" / "r_effects19"
REF = json.loads((REF_DIR / "mediation_reference.json").read_text())
JOBS = pd.read_csv(REF_DIR / "jobs.csv")
MED = "job_seek ~ treat + econ_hard + sex + age"
OUT = "depress2 ~ treat + job_seek + econ_hard + sex + age"
ROWS = {"acme": "d_avg", "ade": "z_avg", "total": "tau", "acme_control": "d0",
        "acme_treated": "d1", "ade_control": "z0", "ade_treated": "z1"}
S = 4000
S_LOGIT = 1500


def _ols(y, X):
    return np.linalg.lstsq(X, y, rcond=None)[0]


def test_product_of_coefficients_exact():
    one = np.ones(len(JOBS))
    cov = JOBS[["econ_hard", "sex", "age"]].to_numpy()
    bm = _ols(JOBS["job_seek"].to_numpy(), np.column_stack([one, JOBS["treat"], cov]))
    by = _ols(JOBS["depress2"].to_numpy(),
              np.column_stack([one, JOBS["treat"], JOBS["job_seek"], cov]))
    res = mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treatment="treat",
                    mediator="job_seek", sims=50, seed=1)
    e = res.effects["estimate"]
    assert e["acme"] == pytest.approx(bm[1] * by[2], abs=1e-10)
    assert e["ade"] == pytest.approx(by[1], abs=1e-10)
    assert e["total"] == pytest.approx(bm[1] * by[2] + by[1], abs=1e-10)
    assert e["prop_mediated"] == pytest.approx(bm[1] * by[2] / (bm[1] * by[2] + by[1]), abs=1e-10)
    # and R's own product of coefficients
    assert e["acme"] == pytest.approx(REF["contcont"]["product_of_coefficients"], abs=1e-8)
    assert e["ade"] == pytest.approx(REF["contcont"]["direct_coefficient"], abs=1e-8)


def _compare(res, ref, sims_r, quantiles=True):
    for ours, theirs in ROWS.items():
        sd = res.effects.loc[ours, "std_error"]
        est_tol = 4 * sd / np.sqrt(sims_r) + 4 * sd / np.sqrt(res.sims) * 0.1
        assert res.effects.loc[ours, "estimate"] == pytest.approx(ref[theirs], abs=est_tol), ours
        if quantiles:
            q_tol = 4 * 2.67 * sd * np.sqrt(1 / res.sims + 1 / sims_r)
            lo, hi = ref[f"{theirs}_ci"] if f"{theirs}_ci" in ref else (None, None)
            if lo is None:
                continue
            assert res.effects.loc[ours, "ci_lower"] == pytest.approx(lo, abs=q_tol), ours
            assert res.effects.loc[ours, "ci_upper"] == pytest.approx(hi, abs=q_tol), ours


def test_jobs_linear_quasi_bayesian_equals_r():
    res = mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treatment="treat",
                    mediator="job_seek", sims=S, seed=20)
    _compare(res, REF["contcont"], REF["contcont"]["sims"])
    # the vignette's printed ACME for this model is -0.0157 (Imai et al., mediation vignette)
    assert res.effects.loc["acme", "estimate"] == pytest.approx(-0.0157, abs=5e-5)


def test_jobs_interaction_equals_r():
    res = mediation(JOBS, mediator_formula=MED,
                    outcome_formula="depress2 ~ treat + job_seek + treat:job_seek + econ_hard + sex + age",
                    treatment="treat", mediator="job_seek", sims=S, seed=21)
    assert res.interaction
    _compare(res, REF["interaction"], REF["interaction"]["sims"])


def test_jobs_logistic_outcome_equals_r():
    res = mediation(JOBS, mediator_formula=MED,
                    outcome_formula="work1 ~ treat + job_seek + econ_hard + sex + age",
                    treatment="treat", mediator="job_seek", sims=S_LOGIT, seed=22)
    _compare(res, REF["binary_outcome"], REF["binary_outcome"]["sims"])


def test_jobs_bootstrap_equals_r():
    res = mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treatment="treat",
                    mediator="job_seek", sims=400, seed=23, method="bootstrap")
    _compare(res, REF["contcont_boot"], REF["contcont_boot"]["sims"], quantiles=True)


def test_seed_reproducible():
    kw = dict(mediator_formula=MED, outcome_formula=OUT, treatment="treat", mediator="job_seek",
              sims=200)
    a = mediation(JOBS, seed=5, **kw).effects
    b = mediation(JOBS, seed=5, **kw).effects
    pd.testing.assert_frame_equal(a, b)


def test_sensitivity_rho_at_zero_equals_medsens():
    res = mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treatment="treat",
                    mediator="job_seek", sims=50, seed=1)
    sens = res.sensitivity()
    r = REF["medsens"]
    # medsens reports the grid rho (step 0.01) nearest ACME = 0: ours is within half a step
    assert abs(sens.rho_at_zero - r["err_cr_d"]) <= r["rho_by"] / 2 + 1e-12
    # the curve itself, on medsens's grid: R solves the SUR by iteration (tolerance on b 1e-4)
    curve = res.sensitivity(rho=np.asarray(r["rho"])).acme
    np.testing.assert_allclose(curve, r["d0"], atol=2e-4)
    assert sens.curve.shape[1] == 2
    import matplotlib

    matplotlib.use("Agg")
    assert sens.plot() is not None


def test_sensitivity_refuses_nonlinear():
    res = mediation(JOBS, mediator_formula=MED,
                    outcome_formula="work1 ~ treat + job_seek + econ_hard + sex + age",
                    treatment="treat", mediator="job_seek", sims=20, seed=1)
    with pytest.raises(ModelSpecificationError, match="linear"):
        res.sensitivity()


def test_mediator_identical_to_treatment_raises():
    d = JOBS.assign(copy_of_treat=JOBS["treat"] * 2 + 1)
    with pytest.raises(SpecError, match="identical to the treatment"):
        mediation(d, mediator_formula="copy_of_treat ~ treat + age",
                  outcome_formula="depress2 ~ treat + copy_of_treat + age",
                  treatment="treat", mediator="copy_of_treat")
    with pytest.raises(SpecError, match="cannot be the treatment"):
        mediation(JOBS, mediator_formula="treat ~ age", outcome_formula="depress2 ~ treat + age",
                  treatment="treat", mediator="treat")


def test_other_bad_input():
    kw = dict(treatment="treat", mediator="job_seek")
    with pytest.raises(SpecError, match="must contain the treatment"):
        mediation(JOBS, mediator_formula="job_seek ~ age", outcome_formula=OUT, **kw)
    with pytest.raises(SpecError, match="must contain 'job_seek'"):
        mediation(JOBS, mediator_formula=MED, outcome_formula="depress2 ~ treat + age", **kw)
    with pytest.raises(ModelSpecificationError, match="linearly"):
        mediation(JOBS, mediator_formula=MED,
                  outcome_formula="depress2 ~ treat + job_seek + I(job_seek**2)", **kw)
    with pytest.raises(SpecError, match="not a mediation method"):
        mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, method="delta", **kw)
    with pytest.raises(SpecError, match="treatment value"):
        mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treat_value=2, **kw)


MIXED = json.loads((REF_DIR / "mediation_mixed_reference.json").read_text())
WIDE = pd.read_csv(REF_DIR / "si_mediation_wide.csv")


def test_mixed_models_equal_r_mediation_lmer():
    """R mediation with lme4::lmer (random site intercept), mediation_mixed_reference.json
    (make_mediation_mixed.R, 5000 simulations): point estimates are the product of the REML fixed
    effects (lme4 vs peerstats.lmm, 1e-6), intervals within Monte-Carlo error as above."""
    res = mediation(WIDE, mediator_formula="empowerment_m4 ~ peer + sis_baseline + (1 | site)",
                    outcome_formula="sis_m8 ~ peer + empowerment_m4 + (1 | site)",
                    treatment="peer", mediator="empowerment_m4", sims=S, seed=24)
    assert min(MIXED["site_sd"]) > 0.01  # both random intercepts are really there
    assert res.effects.loc["acme", "estimate"] == pytest.approx(
        MIXED["product_of_coefficients"], abs=1e-6)
    assert res.effects.loc["ade", "estimate"] == pytest.approx(
        MIXED["fixef_outcome"]["peer"], abs=1e-6)
    _compare(res, MIXED, MIXED["sims"])


def test_mixed_logistic_or_bootstrap_refused():
    with pytest.raises(ModelSpecificationError, match="quasi-Bayesian"):
        mediation(WIDE, mediator_formula="empowerment_m4 ~ peer + (1 | site)",
                  outcome_formula="sis_m8 ~ peer + empowerment_m4", treatment="peer",
                  mediator="empowerment_m4", sims=10, method="bootstrap")


def test_effect_records():
    res = mediation(JOBS, mediator_formula=MED, outcome_formula=OUT, treatment="treat",
                    mediator="job_seek", sims=50, seed=1)
    recs = res.effect_records(outcome="depress2")
    assert [r.extra["effect"] for r in recs] == ["acme", "ade", "total"]
    assert recs[0].estimate == res.effects.loc["acme", "estimate"]
    assert recs[0].scale == "mean_difference"
