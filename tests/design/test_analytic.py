"""Analytic power against outside references and closed forms (issue 11).

Tolerances:
- longpower (Lu, Luo & Chen 2008, normal approximation; tests/reference/power/
  longpower_reference.json, written by longpower_reference.R): power and phi to 1e-8 relative
  (the same formula evaluated in double precision; longpower's own tests use 1e-3 on its
  uniroot answers, so for its solved n and delta we allow 1e-4 relative).
- statsmodels TTestIndPower (ANCOVA with the residual SD): 2e-3 absolute in power (the t test
  uses 2n - 2 df, the ANCOVA 2n - 3); the exact ANCOVA closed form (non-central t, 2n - 3 df)
  to 1e-10.
- closed forms (compound symmetry average over visits; partially nested design effect
  1 + (m - 1) ICC; ICC 0 = unclustered SE) to 1e-10 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import peerstats
from peerstats import TrialDesign

REF = Path(__file__).resolve().parents[1] / "reference" / "power" / "longpower_reference.json"


@pytest.fixture(scope="module")
def longpower():
    return json.loads(REF.read_text())


def _llc_design(R, ra, rb=None, delta=0.5, allocation=None):
    T = len(ra)
    visits = [f"v{i}" for i in range(T)]
    drop = {v: 1 - r for v, r in zip(visits, ra)}
    if rb is not None:
        drop = {"a": drop, "b": {v: 1 - r for v, r in zip(visits, rb)}}
    return TrialDesign(
        visits=visits,
        arms=["a", "b"],
        sd=1.0,
        correlation=np.asarray(R, dtype=float),
        effect={visits[-1]: delta},
        dropout=drop,
        primary=visits[-1],
        baseline="response",
        df="asymptotic",
        allocation=allocation,
    )


def _one_tail(r):
    """longpower's power: the upper tail only, Phi(delta / SE - z_{1-alpha/2}) (it ignores the
    opposite tail, which our two-sided power includes)."""
    z = stats.norm.ppf(1 - r.alpha / 2)
    return stats.norm.cdf(r.effect / r.std_error - z)


def _cs(T, rho):
    R = np.full((T, T), rho)
    np.fill_diagonal(R, 1.0)
    return R


def test_longpower_power_mmrm_example_power(longpower):
    # man/power.mmrm.Rd: power.mmrm(N = 174, Ra = CS 0.25, ra = 1,.9,.8,.7, delta = 0.5)
    d = _llc_design(_cs(4, 0.25), [1, 0.9, 0.8, 0.7])
    r = peerstats.power(d, n=87)
    assert r.power == pytest.approx(
        _one_tail(r) + stats.norm.cdf(-r.effect / r.std_error - 1.959963984540054), rel=1e-12
    )
    assert _one_tail(r) == pytest.approx(longpower["power_mmrm_cs"]["power_N174"], rel=1e-8)


def test_longpower_power_mmrm_example_allocation(longpower):
    # power.mmrm(N = 174, ..., lambda = 2): Na = 116, Nb = 58 (identical arms: our control 58)
    d = _llc_design(_cs(4, 0.25), [1, 0.9, 0.8, 0.7], allocation=2.0)
    r = peerstats.power(d, n=58)
    assert r.n_per_arm == {"a": 58, "b": 116}
    assert _one_tail(r) == pytest.approx(longpower["power_mmrm_cs"]["power_N174_lambda2"], rel=1e-8)


def test_longpower_sample_size_example(longpower):
    d = _llc_design(_cs(4, 0.25), [1, 0.9, 0.8, 0.7])
    ss = peerstats.sample_size(d, power=0.8)
    n1 = longpower["power_mmrm_cs"]["n_for_power_0.8"]["n1"]  # 86.99 per arm
    assert ss.n == int(np.ceil(n1))
    # the continuous n at which the analytic power is 0.8 equals longpower's n1:
    # power is a function of the variance 2 phi / n, so phi from our SE at any n gives n1
    r = peerstats.power(d, n=100)
    phi = r.std_error**2 * 100 / 2
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert 2 * phi * z**2 / 0.5**2 == pytest.approx(n1, rel=1e-8)


def test_llc_table2_phi(longpower):
    # Lu, Luo & Chen (2008) Table 2 via longpower::power.mmrm.ar1 (also in longpower's
    # tests/testthat/tests.R): phi = n Var(last-visit arm mean) for sigma = 1
    for row in longpower["llc_table2_phi"]:
        J = row["J"]
        R = row["rho"] ** np.abs(np.subtract.outer(np.arange(J), np.arange(J)))
        d = _llc_design(R, list(np.linspace(1, 1 - row["aJ"], J)), delta=1.0)
        r = peerstats.power(d, n=100)
        phi = r.std_error**2 * 100 / 2
        assert phi == pytest.approx(row["phi"], rel=1e-8), row


def test_longpower_unequal_retention_by_arm(longpower):
    ref = longpower["unequal_retention"]
    R = ref["rho"] ** np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
    d = _llc_design(R, ref["ra"], ref["rb"], delta=ref["delta"], allocation=ref["Nb"] / ref["Na"])
    r = peerstats.power(d, n=ref["Na"])
    assert r.n_per_arm == {"a": ref["Na"], "b": ref["Nb"]}
    assert _one_tail(r) == pytest.approx(ref["power"], rel=1e-8)


@pytest.mark.parametrize("n,rho", [(30, 0.5), (64, 0.3), (150, 0.7)])
def test_ancova_special_case(n, rho):
    """No dropout, one follow-up, baseline covariate = ANCOVA: SE sigma sqrt(1-rho^2) sqrt(2/n)."""
    sigma, delta = 8.0, 3.0
    d = TrialDesign(
        visits=["baseline", "post"],
        arms=["c", "t"],
        sd=sigma,
        correlation=rho,
        effect={"post": delta},
        primary="post",
        baseline="covariate",
    )
    r = peerstats.power(d, n=n)
    sres = sigma * np.sqrt(1 - rho**2)
    assert r.std_error == pytest.approx(sres * np.sqrt(2 / n), rel=1e-10)
    assert r.df == pytest.approx(2 * n - 3, rel=1e-8)
    ncp = delta / (sres * np.sqrt(2 / n))
    tc = stats.t.ppf(0.975, 2 * n - 3)
    exact = stats.nct.sf(tc, 2 * n - 3, ncp) + stats.nct.cdf(-tc, 2 * n - 3, ncp)
    assert r.power == pytest.approx(exact, rel=1e-10)
    from statsmodels.stats.power import TTestIndPower

    sm = TTestIndPower().power(effect_size=delta / sres, nobs1=n, alpha=0.05, ratio=1.0)
    assert r.power == pytest.approx(sm, abs=2e-3)


def test_compound_symmetry_average_without_baseline():
    """Diggle et al. (2002): Var(mean over T visits of the difference) = 2 s^2 (1+(T-1)rho)/(nT)."""
    T, rho, sigma, n, delta = 4, 0.4, 5.0, 40, 2.0
    d = TrialDesign(
        visits=[f"w{i}" for i in range(T)],
        arms=["c", "t"],
        sd=sigma,
        correlation=rho,
        effect=delta,
        primary="average",
        baseline=None,
        df="asymptotic",
    )
    r = peerstats.power(d, n=n)
    var = 2 * sigma**2 * (1 + (T - 1) * rho) / (n * T)
    assert r.std_error == pytest.approx(np.sqrt(var), rel=1e-10)
    z = stats.norm.ppf(0.975)
    ncp = delta / np.sqrt(var)
    assert r.power == pytest.approx(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp), rel=1e-10)


@pytest.mark.parametrize("m,icc", [(5, 0.05), (10, 0.1), (8, 0.3)])
def test_partially_nested_design_effect(m, icc):
    """One visit, groups of m in the treated arm: Var = s^2/n_c + s^2 (1 + (m-1) ICC)/n_t."""
    sigma, n = 3.0, 40
    d = TrialDesign(
        visits=["post"],
        arms=["c", "t"],
        sd=sigma,
        correlation=0.0,
        effect=1.0,
        baseline=None,
        groups={"arm": "t", "size": m, "icc": icc},
    )
    r = peerstats.power(d, n=n)
    var = sigma**2 / n + sigma**2 * (1 + (m - 1) * icc) / n
    assert r.std_error**2 == pytest.approx(var, rel=1e-10)


def test_icc_zero_is_unclustered():
    base = dict(
        visits=["baseline", "post", "fu3"],
        arms=["usual", "peer"],
        sd=[10, 11, 12],
        correlation=("ar1", 0.6),
        effect={"post": 4, "fu3": 3},
        dropout={"usual": {"post": 0.1, "fu3": 0.2}, "peer": {"post": 0.15, "fu3": 0.3}},
        primary="fu3",
    )
    plain = peerstats.power(TrialDesign(**base), n=120)
    nested = peerstats.power(
        TrialDesign(**base, groups={"arm": "peer", "size": 10, "icc": 0.0}), n=120
    )
    assert nested.std_error == pytest.approx(plain.std_error, rel=1e-10)
    # the nested model has more covariance parameters (per-arm covariance), so slightly
    # different Satterthwaite df; power agrees closely
    assert nested.power == pytest.approx(plain.power, abs=2e-3)


def test_power_increases_with_n_and_icc_costs_power():
    d = TrialDesign(
        visits=["baseline", "post", "fu3"],
        arms=["usual", "peer"],
        sd=12,
        correlation=("ar1", 0.6),
        effect={"post": 5, "fu3": 4},
        dropout={"post": 0.15, "fu3": 0.25},
        primary="post",
    )
    curve = peerstats.power_curve(d, [40, 80, 120, 160])
    p = curve.table["power_analytic"].to_numpy()
    assert np.all(np.diff(p) > 0)
    g = d.replace(groups={"arm": "peer", "size": 10, "icc": 0.05})
    assert peerstats.power(g, n=120).power < peerstats.power(d, n=120).power


def test_sample_size_respects_whole_groups_and_allocation():
    d = TrialDesign(
        visits=["baseline", "post"],
        arms=["usual", "peer"],
        sd=12,
        correlation=0.5,
        effect={"post": 5},
        groups={"arm": "peer", "size": 10, "icc": 0.05},
        allocation=1.5,
    )
    ss = peerstats.sample_size(d, power=0.8)
    npeer = ss.n_per_arm["peer"]
    assert npeer % 10 == 0 and npeer == round(1.5 * ss.n)
    assert ss.power >= 0.8
    # the previous valid n does not reach the target
    k = ss.n - 1
    while not d.whole_groups(k):
        k -= 1
    assert peerstats.power(d, n=k).power < 0.8


def test_power_curve_over_effect():
    d = TrialDesign(
        visits=["baseline", "post"],
        arms=["c", "t"],
        sd=10,
        correlation=0.5,
        effect={"post": 4},
    )
    c = peerstats.power_curve(d, 80, effect=[0.0, 2.0, 4.0])
    assert c.table["power_analytic"].iloc[0] == pytest.approx(0.05, abs=1e-12)
    assert c.table["power_analytic"].iloc[2] == pytest.approx(peerstats.power(d, n=80).power)
