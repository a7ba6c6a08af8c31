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
