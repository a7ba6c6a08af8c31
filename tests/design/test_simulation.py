"""Power by simulation (issue 11): the batched fitter, agreement with the analytic power, the
scale-out with dask.

Tolerances:
- batched REML fits vs peerstats.mmrm / peerstats.lmm on the same simulated data (both
  validated against SAS and R): estimate and SE 1e-6 relative, Satterthwaite df 1e-3 relative
  (both use central differences of analytic gradients for the Hessian).
- simulated vs analytic power: within 2 Monte-Carlo SEs (fixed seeds; n_sims kept small for
  test time, so the check is coarse by design).
- dask LocalCluster (2 worker processes) vs in-process: identical bit for bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import peerstats
from peerstats import TrialDesign
from peerstats.design._model import AnalysisModel
from peerstats.design.simulate import run_scenarios

MMRM_DESIGN = dict(
    visits=["baseline", "post", "fu3"],
    arms=["usual", "peer"],
    sd=[10, 11, 12],
    correlation=("ar1", 0.6),
    effect={"post": 4, "fu3": 3},
    dropout={"usual": {"post": 0.1, "fu3": 0.2}, "peer": {"post": 0.15, "fu3": 0.3}},
    primary="fu3",
)


def _post(df):
    post = df[df.visit != "baseline"].copy()
    post["visit"] = post["visit"].cat.remove_unused_categories()
    return post


def test_batched_fits_equal_mmrm():
    m = AnalysisModel(TrialDesign(**MMRM_DESIGN))
    raw = m.draw(60, 3, np.random.default_rng(11))
    res = m.build(raw["y_alt"], raw).fit(m.psi_true, m.ell)
    for s in range(3):
        fit = peerstats.mmrm(
            "y ~ visit + arm:visit + baseline:visit",
            _post(m.to_frame(raw, s)),
            subject="subject",
            visit="visit",
            covariance="us",
        )
        row = fit.coef.loc["arm[T.peer]:visit[fu3]"]
        assert res["estimate"][s] == pytest.approx(row["estimate"], rel=1e-6)
        assert res["std_error"][s] == pytest.approx(row["std_error"], rel=1e-6)
        assert res["df"][s] == pytest.approx(row["df"], rel=1e-3)


def test_batched_fits_equal_lmm_partially_nested():
    d = TrialDesign(**MMRM_DESIGN, groups={"arm": "peer", "size": 8, "icc": 0.1})
    m = AnalysisModel(d)
    raw = m.draw(48, 3, np.random.default_rng(3))
    res = m.build(raw["y_alt"], raw).fit(m.psi_true, m.ell)
    for s in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", peerstats.SingularFitWarning)
            fit = peerstats.lmm(
                "y ~ visit + arm:visit + baseline:visit + (0 + delivered | group)",
                _post(m.to_frame(raw, s)),
                subject="subject",
                visit="visit",
                residual="us",
                residual_by="arm",
            )
        row = fit.coef.loc["arm[T.peer]:visit[fu3]"]
        assert res["estimate"][s] == pytest.approx(row["estimate"], rel=1e-6)
        assert res["std_error"][s] == pytest.approx(row["std_error"], rel=1e-6)
        assert res["df"][s] == pytest.approx(row["df"], rel=1e-3)


GRID = [
    (dict(MMRM_DESIGN), 60),
    (dict(MMRM_DESIGN, primary="post", correlation=0.5, dropout={"post": 0.2, "fu3": 0.4}), 40),
    (dict(MMRM_DESIGN, baseline="response", effect={"post": 5, "fu3": 5}), 50),
    (dict(MMRM_DESIGN, groups={"arm": "peer", "size": 10, "icc": 0.1}), 80),
]


@pytest.mark.parametrize("kw,n", GRID, ids=["mmrm-ar1", "mmrm-cs-dropout", "response", "nested"])
def test_simulation_agrees_with_analytic(kw, n):
    d = TrialDesign(**kw)
    sim = peerstats.power(d, n=n, method="simulation", n_sims=300, seed=20251130)
    ana = peerstats.power(d, n=n)
    assert sim.n_failed <= 3
    assert abs(sim.power - ana.power) <= 2 * sim.mc_se, (sim.power, ana.power, sim.mc_se)
    # unbiased estimate, SE close to the empirical SD, nominal-ish type I error
    assert abs(sim.bias) <= 3 * sim.bias_mc_se
    assert abs(sim.type1_error - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / 300)


def test_same_seed_same_answer_and_chunks_independent():
    d = TrialDesign(**MMRM_DESIGN)
    a = peerstats.power(d, n=30, method="simulation", n_sims=150, seed=5)
    b = peerstats.power(d, n=30, method="simulation", n_sims=150, seed=5)
    c = peerstats.power(d, n=30, method="simulation", n_sims=150, seed=6)
    assert a.power == b.power and a.bias == b.bias
    assert a.bias != c.bias


def test_dask_local_cluster_bit_for_bit():
    distributed = pytest.importorskip("dask.distributed")
    d = TrialDesign(**MMRM_DESIGN, groups={"arm": "peer", "size": 5, "icc": 0.05})
    scen = [(20, 1.0), (30, 1.0)]
    local, _ = run_scenarios(d, scen, n_sims=150, seed=123)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote, _ = run_scenarios(d, scen, n_sims=150, seed=123, client=client)
        curve = peerstats.power_curve(
            d, [20, 30], method="simulation", n_sims=150, seed=123, client=client
        )
    for a, b in zip(local, remote):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k], equal_nan=True), k
    inproc = peerstats.power_curve(d, [20, 30], method="simulation", n_sims=150, seed=123)
    assert inproc.table.equals(curve.table)
