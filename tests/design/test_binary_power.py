"""Power for binary and count designs (issue 16.6) against outside references.

Sources and tolerances:
- R ``stats::power.prop.test`` (pooled null variance; tests/reference/power/
  binary_count_reference.json from binary_count_reference.R): 1e-10 relative (the same closed
  form in double precision); a cluster-randomised design with DE = 1 + (m - 1) ICC in both arms
  against power.prop.test(n = n / DE): 1e-10;
- statsmodels ``NormalIndPower`` with ``proportion_effectsize`` (arcsine test): 1e-10;
- ``MKmisc::power.nb.test`` (Zhu & Lakkis 2014, approaches 1-3, the help-page examples that
  reproduce their Tables I-III): power 1e-10 relative, n for 80% power 1e-8 relative (via our
  power at R's non-integer n);
- statsmodels GEE (independence, robust SE) on one simulated trial: the closed-form analysis of
  the simulation equals it to 1e-8;
- simulated power within 4 Monte-Carlo SE of the analytic power without groups (400 trials).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats import TrialDesign
from peerstats.design.binary import analytic_power_outcome
from peerstats.exceptions import SpecError

REF = json.loads((Path(__file__).resolve().parents[1] / "reference" / "power"
                  / "binary_count_reference.json").read_text())


def _binary(p0, p1, **kw):
    return TrialDesign(outcome="binary", control_rate=p0, effect={"risk_difference": p1 - p0},
                       **kw)


@pytest.mark.parametrize("case", REF["power_prop_test"], ids=lambda c: f"{c['p0']}-{c['p1']}")
def test_two_proportions_match_power_prop_test(case):
    res = peerstats.power(_binary(case["p0"], case["p1"]), int(case["n"]))
    assert res.power == pytest.approx(case["power"], rel=1e-10)


def test_cluster_design_effect_matches_power_prop_test_on_n_over_de():
    c = REF["cluster"]
    d = _binary(c["p0"], c["p1"], groups={"arm": "both", "size": c["size"], "icc": c["icc"]})
    assert peerstats.power(d, c["n"]).power == pytest.approx(c["power"], rel=1e-10)


def test_arcsine_matches_statsmodels_normalindpower():
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    d = _binary(0.38, 0.29, test="arcsine", allocation=1.5)
    h = proportion_effectsize(0.29, 0.38)
    ref = NormalIndPower().power(h, nobs1=120, alpha=0.05, ratio=1.5)
    assert peerstats.power(d, 120).power == pytest.approx(ref, rel=1e-10)


def test_odds_ratio_effect_gives_the_right_risk():
    d = TrialDesign(outcome="binary", control_rate=0.38, effect={"odds_ratio": 0.66})
    p1 = d.rates[1]
    assert (p1 / (1 - p1)) / (0.38 / 0.62) == pytest.approx(0.66, rel=1e-12)


@pytest.mark.parametrize("case", REF["power_nb_test"],
                         ids=lambda c: f"mu{c['mu0']}-rr{c['RR']}-a{c['approach']}")
def test_negative_binomial_matches_power_nb_test(case):
    d = TrialDesign(outcome="count", control_rate=case["mu0"], effect={"rate_ratio": case["RR"]},
                    dispersion=1 / case["theta"], exposure=case["duration"],
                    allocation=case["ratio"], approach=case["approach"])
    assert peerstats.power(d, 120).power == pytest.approx(case["power_at_120"], rel=1e-10)
    # R's n for 80% power is non-integer: our closed form at that n gives 0.8
    from peerstats.design import binary

    pw = binary._count_power(d, case["n_for_80"], case["n_for_80"] * case["ratio"], 1.0, 1.0,
                             1.0)[0]
    assert pw == pytest.approx(0.8, rel=1e-8)


def test_partially_nested_inflates_only_the_grouped_arm():
    base = _binary(0.38, 0.29)
    g = _binary(0.38, 0.29, groups={"arm": "intervention", "size": 10, "icc": 0.05})
    r = analytic_power_outcome(g, 200)
    assert r["design_effect"] == pytest.approx((1.0, 1.45))
    assert r["power"] < analytic_power_outcome(base, 200)["power"]
    lat = _binary(0.38, 0.29, groups={"arm": "intervention", "size": 10, "icc": 0.05,
                                      "scale": "latent"})
    assert 0 < lat.icc_proportion("intervention") < 0.05  # latent ICC > proportion ICC


def test_sample_size_reaches_target():
    d = TrialDesign(outcome="count", control_rate=1.5, effect={"rate_ratio": 0.7},
                    dispersion=0.8)
    ss = peerstats.sample_size(d, 0.8)
    assert ss.power >= 0.8 > analytic_power_outcome(d, ss.n - 1)["power"]


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.DomainWarning")
def test_simulation_analysis_equals_statsmodels_gee():
    """The closed-form analysis of a simulated trial is statsmodels' independence GEE."""
    import statsmodels.api as sm

    from peerstats.design import _outcome_sim as sim

    d = _binary(0.38, 0.29, groups={"arm": "intervention", "size": 6, "icc": 0.1})
    rng = np.random.default_rng(5)
    ys, cls = [], []
    for arm, rate in zip(d.arms, d.rates):
        y, cl = sim._binary_arm(d, arm, rate, 60, 1, rng, rng.random((1, 60)))
        ys.append(y)
        cls.append(cl)
    est, se = sim._analyse("binary", ys, cls, 1.0)
    frame = pd.DataFrame({"y": np.concatenate([ys[0][0], ys[1][0]]),
                          "arm": np.repeat([0.0, 1.0], 60),
                          "g": np.concatenate([cls[0], 1000 + cls[1]])})
    fit = sm.GEE(frame["y"], sm.add_constant(frame[["arm"]]), groups=frame["g"],
                 family=sm.families.Binomial(sm.families.links.Identity()),
                 cov_struct=sm.cov_struct.Independence()).fit()
    assert est[0] == pytest.approx(fit.params["arm"], rel=1e-8)
    assert se[0] == pytest.approx(fit.bse["arm"], rel=1e-8)


def test_count_simulation_analysis_equals_statsmodels_gee():
    import statsmodels.api as sm

    from peerstats.design import _outcome_sim as sim

    d = TrialDesign(outcome="count", control_rate=1.5, effect={"rate_ratio": 0.7},
                    dispersion=0.8, exposure=2.0,
                    groups={"arm": "intervention", "size": 5, "icc": 0.1})
    rng = np.random.default_rng(6)
    ys, cls = [], []
    for arm, rate in zip(d.arms, d.rates):
        y, cl = sim._count_arm(d, arm, rate, 50, 1, rng)
        ys.append(y)
        cls.append(cl)
    est, se = sim._analyse("count", ys, cls, 2.0)
    frame = pd.DataFrame({"y": np.concatenate([ys[0][0], ys[1][0]]),
                          "arm": np.repeat([0.0, 1.0], 50),
                          "g": np.concatenate([cls[0], 1000 + cls[1]])})
    fit = sm.GEE(frame["y"], sm.add_constant(frame[["arm"]]), groups=frame["g"],
                 family=sm.families.Poisson(), offset=np.full(100, np.log(2.0)),
                 cov_struct=sm.cov_struct.Independence()).fit()
    assert est[0] == pytest.approx(fit.params["arm"], rel=1e-8)
    assert se[0] == pytest.approx(fit.bse["arm"], rel=1e-8)


@pytest.mark.parametrize("outcome", ["binary", "count"])
def test_simulated_power_agrees_with_analytic(outcome):
    if outcome == "binary":
        d = _binary(0.38, 0.26)
    else:
        d = TrialDesign(outcome="count", control_rate=1.5, effect={"rate_ratio": 0.7},
                        dispersion=0.8)
    sim = peerstats.power(d, 150, method="simulation", n_sims=400, seed=11)
    ana = peerstats.power(d, 150)
    assert abs(sim.power - ana.power) < 4 * sim.mc_se
    assert sim.type1_error < 0.05 + 4 * np.sqrt(0.05 * 0.95 / 400)


def test_simulation_same_on_dask_and_locally():
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    d = _binary(0.38, 0.29, groups={"arm": "intervention", "size": 8, "icc": 0.05})
    local = peerstats.power(d, 80, method="simulation", n_sims=150, seed=3)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as lc, Client(lc) as c:
        dist = peerstats.power(d, 80, method="simulation", n_sims=150, seed=3, client=c)
    assert dist.power == local.power and dist.type1_error == local.type1_error


def test_bad_inputs_name_the_field():
    with pytest.raises(SpecError, match="control_rate"):
        TrialDesign(outcome="binary", control_rate=1.2, effect={"odds_ratio": 0.7})
    with pytest.raises(SpecError, match="effect"):
        TrialDesign(outcome="binary", control_rate=0.3, effect={"hazard_ratio": 0.7})
    with pytest.raises(SpecError, match="outside"):
        TrialDesign(outcome="binary", control_rate=0.9, effect={"risk_difference": 0.2})
    with pytest.raises(SpecError, match="dispersion"):
        TrialDesign(outcome="count", control_rate=1.0, effect={"rate_ratio": 0.7},
                    dispersion=-1)
    with pytest.raises(SpecError, match="outcome"):
        TrialDesign(outcome="ordinal", control_rate=0.3, effect={"odds_ratio": 0.7})
    with pytest.raises(SpecError, match="icc"):
        _binary(0.3, 0.2, groups={"arm": "intervention", "size": 5, "icc": 1.5})


def test_power_curve_and_sample_size_for_outcome_designs():
    d = _binary(0.38, 0.29, groups={"arm": "intervention", "size": 10, "icc": 0.05})
    curve = peerstats.power_curve(d, [100, 200, 300], method="simulation", n_sims=100, seed=1)
    t = curve.to_frame()
    assert list(t["n"]) == [100, 200, 300]
    assert t["power_analytic"].is_monotonic_increasing
    assert {"power_simulation", "mc_se", "type1_error"} <= set(t.columns)
    ss = peerstats.sample_size(d, 0.8)
    assert ss.power >= 0.8 and ss.n_groups == len(d.groups_of(ss.n_per_arm["intervention"]))
    with pytest.raises(SpecError, match="continuous"):
        peerstats.power_curve(d, 100, effect=[0.1, 0.2])
