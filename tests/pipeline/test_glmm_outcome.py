"""``model: glmm`` in the analysis spec (issue 16.5): the partially nested GLMMs of the bundled
SYNTHETIC peer_recovery trial (readmission: logistic; bed-days: NB2 with log follow-up days as
offset), random intercept for the delivery group in the peer arm only.

Reference: glmmTMB 1.1.5 (Laplace) on the rows the pipeline analysed,
tests/reference/r_pipeline_glmm/make_r_pipeline_glmm.R -> r_pipeline_glmm.json. Tolerances as
issue 16: estimates 1e-4 relative, SEs 1e-3 relative, log-likelihood 1e-3 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REF = Path(__file__).resolve().parents[1] / "reference" / "r_pipeline_glmm"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run():
    from peerstats.pipeline import run_analysis

    raw = yaml.safe_load((ROOT / "analyses" / "peer_recovery.yaml").read_text(encoding="utf-8"))
    for o in ("readmission", "bed_days"):
        raw["outcomes"][o]["model"] = "glmm"
        raw["outcomes"][o].pop("vcov", None)
    raw.update(sensitivity=[], tables=["outcomes"], figures=[])
    for k in ("economics", "subgroups", "mediation"):
        raw.pop(k, None)
    return run_analysis(raw)


@pytest.mark.parametrize("outcome", ["readmission", "bed_days"])
def test_pipeline_glmm_equals_glmmtmb(run, outcome):
    ref = json.loads((REF / "r_pipeline_glmm.json").read_text())[outcome]
    fit = run.fits[outcome].fit
    data = pd.read_csv(REF / f"{outcome}.csv")  # the reference was fitted on these rows
    assert sorted(fit.data["subject"].astype(str)) == sorted(data["subject"].astype(str))
    coef = fit.coef
    est = coef["estimate"].to_numpy()
    np.testing.assert_allclose(est, ref["estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(coef["std_error"].to_numpy(), ref["std_error"], rtol=1e-3)
    assert abs(fit.loglik - ref["loglik"]) < 1e-3
    assert run.results["models"][outcome]["model"].startswith("generalised linear mixed model")


def test_glmm_records_read_as_ratios_with_direction(run):
    effects = run.results["effects"]
    text = json.dumps(effects)
    assert "readmission" in text and "bed_days" in text
    recs = [r for r in run.records if r.outcome in ("readmission", "bed_days")]
    scales = {r.outcome: r.scale for r in recs}
    assert scales == {"readmission": "odds_ratio", "bed_days": "rate_ratio"}
    for r in recs:
        assert r.ci_lower < r.estimate < r.ci_upper and r.direction


def test_glmm_risk_difference_averages_both_counterfactual_arms_over_the_group_effect():
    """With everyone set to the group-delivered arm, everyone's risk is averaged over the
    delivery-group effect (the pipeline's ``delivered`` follows the arm): the same number as
    one 0/1 treatment column driving both the fixed and the random part."""
    import peerstats
    from peerstats.pipeline import run_analysis

    raw = yaml.safe_load((ROOT / "analyses" / "peer_recovery.yaml").read_text(encoding="utf-8"))
    raw["outcomes"]["readmission"].update(model="glmm", scale="risk_difference")
    raw["outcomes"]["readmission"].pop("vcov", None)
    raw["secondary"]["outcomes"] = ["readmission"]
    raw["outcomes"] = {"readmission": raw["outcomes"]["readmission"]}
    raw.update(sensitivity=[], tables=["outcomes"], figures=[])
    for k in ("economics", "subgroups", "mediation"):
        raw.pop(k, None)
    rec = next(r for r in run_analysis(raw).records if r.outcome == "readmission")
    d = pd.read_csv(REF / "readmission.csv")
    d["peer"] = (d["arm"] == "peer").astype(float)
    d["dgroup"] = d["dgroup"].where(d["peer"] > 0, None)
    fit = peerstats.glmm("y ~ peer + site + (0 + peer | dgroup)", d, family="binomial")
    me = peerstats.marginal_effect(fit, arm="peer", contrast="risk_difference").iloc[0]
    assert rec.scale == "risk_difference"
    assert rec.estimate == pytest.approx(me["estimate"], rel=1e-5)
    assert rec.std_error == pytest.approx(me["std_error"], rel=1e-4)
