"""Site heterogeneity: REML meta-analysis against R metafor 3.8.1.

References (tests/reference/r_effects19/):
- meta_bcg_reference.json (make_meta.R): metafor's BCG data (dat.bcg), log risk ratios,
  rma(method = "REML"), z and Knapp-Hartung tests; tau^2 > 0. Tolerance 1e-8 (threshold 1e-12
  in R; same inputs).
- subgroups_reference.json (make_subgroups.R): per-site effects at m8 of the bundled synthetic
  `social_inclusion` trial from nlme::gls (unstructured: corSymm + varIdent) with site*arm*visit
  and emmeans, then rma(REML). Per-site estimates and SEs within 1e-5 (two REML optimisers);
  the meta-analysis on R's own per-site numbers within 1e-8; end to end within 1e-5.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from peerstats.effects.heterogeneity import meta_analysis, site_heterogeneity
from peerstats.exceptions import DataValidationError, SpecError

REF = Path(__file__).parents[1] / "reference" / "r_effects19"
BCG = json.loads((REF / "meta_bcg_reference.json").read_text())
SUB = json.loads((REF / "subgroups_reference.json").read_text())


@pytest.mark.parametrize("test", ["z", "knha"])
def test_bcg_equals_metafor(test):
    r = BCG[test]
    m = meta_analysis(BCG["yi"], np.sqrt(BCG["vi"]), test=test)
    assert r["tau2"] > 0.1
    for ours, theirs in [
        (m.tau2, "tau2"), (m.se_tau2, "se_tau2"), (m.i2, "I2"), (m.h2, "H2"), (m.q, "QE"),
        (m.q_p_value, "QEp"), (m.estimate, "estimate"), (m.std_error, "std_error"),
        (m.ci_lower, "ci_lower"), (m.ci_upper, "ci_upper"), (m.pi_lower, "pi_lower"),
        (m.pi_upper, "pi_upper"), (m.p_value, "p_value"),
    ]:
        assert ours == pytest.approx(r[theirs], rel=1e-8, abs=1e-10), theirs


def test_meta_on_r_site_estimates_equals_metafor():
    s = SUB["sites"]
    m = meta_analysis(s["estimate"], s["std_error"], labels=s["site"])
    r = s["rma"]
    assert m.tau2 == pytest.approx(r["tau2"], abs=1e-8)
    assert m.i2 == pytest.approx(r["I2"], abs=1e-8)
    for key in ["estimate", "std_error", "ci_lower", "ci_upper", "pi_lower", "pi_upper"]:
        assert getattr(m, key) == pytest.approx(r[key], rel=1e-8), key
    assert m.q == pytest.approx(r["QE"], rel=1e-8)
    assert m.se_tau2 == pytest.approx(r["se_tau2"], rel=1e-6)
    k = meta_analysis(s["estimate"], s["std_error"], test="knha")
    for key in ["std_error", "ci_lower", "ci_upper", "pi_lower", "pi_upper"]:
        assert getattr(k, key) == pytest.approx(s["rma_knha"][key], rel=1e-8), key


@pytest.fixture(scope="module")
def social_inclusion():
    import peerstats

    return peerstats.datasets.load("social_inclusion")


def test_site_effects_and_meta_equal_r(social_inclusion):
    h = site_heterogeneity(social_inclusion, outcome="sis", visit="m8")
    s = SUB["sites"]
    eff = h.effects.loc[s["site"]]
    np.testing.assert_allclose(eff["estimate"], s["estimate"], atol=1e-5)
    np.testing.assert_allclose(eff["std_error"], s["std_error"], atol=1e-5)
    assert h.meta.tau2 == pytest.approx(s["rma"]["tau2"], abs=1e-5)
    assert h.meta.i2 == pytest.approx(s["rma"]["I2"], abs=1e-5)
    assert h.meta.estimate == pytest.approx(s["rma"]["estimate"], abs=1e-5)
    assert h.meta.pi_upper == pytest.approx(s["rma"]["pi_upper"], abs=1e-5)


def test_meta_bad_input():
    with pytest.raises(SpecError, match="at least two"):
        meta_analysis([1.0], [0.5])
    with pytest.raises(SpecError, match="positive"):
        meta_analysis([1.0, 2.0], [0.5, 0.0])
    with pytest.raises(SpecError, match="same length"):
        meta_analysis([1.0, 2.0], [0.5])


def test_site_with_empty_arm_raises(social_inclusion):
    class View:
        spec = social_inclusion.spec
        participants = social_inclusion.participants
        a = social_inclusion.assessments.copy()
        drop = (a["site"].astype(str) == "Israel") & (a["arm"].astype(str) == "peer")
        assessments = a[~drop]

    with pytest.raises(DataValidationError, match="Israel x peer"):
        site_heterogeneity(View(), outcome="sis", visit="m8")


def test_random_site_effect_equals_nlme_lme(social_inclusion):
    """Reference: random_site_reference.json (make_random_site.R), nlme::lme with
    pdDiag(~ 0 + treated) by site + corSymm/varIdent, against the gls primary model. The REML
    likelihood is almost flat in the SD here (LRT 0.004), so the SD is compared through the
    likelihood: ours is at least R's (to 1e-8) and within 1e-6; the SD itself within 0.01, the
    m8 effect within 5e-5 and its SE within 3e-4 (it moves with the SD: 0.3059 vs 0.3077), the
    LRT and its p within 1e-5."""
    from peerstats import random_site_effect

    ref = json.loads((REF / "random_site_reference.json").read_text())
    r = random_site_effect(social_inclusion, outcome="sis", visit="m8")
    assert r.loglik >= ref["loglik"] - 1e-8
    assert r.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert r.loglik_null == pytest.approx(ref["loglik_null"], abs=1e-6)
    assert r.lrt == pytest.approx(ref["lrt"], abs=1e-5)
    assert r.p_value == pytest.approx(ref["p_value"], abs=1e-5)
    assert r.sd == pytest.approx(ref["sd"], abs=0.01)
    assert r.estimate == pytest.approx(ref["estimate_m8"], abs=5e-5)
    assert r.std_error == pytest.approx(ref["std_error_m8"], abs=3e-4)  # moves with the SD
    assert r.pi_lower < r.estimate - 1.96 * r.std_error
