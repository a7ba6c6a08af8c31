"""Tipping point: the grid re-uses one set of imputations, the tipping delta is where the
conclusion changes, and a dask LocalCluster of 2 worker processes gives identical numbers."""

import numpy as np
import pytest
from tests.missing._trial import ice_frame, make_trial

import peerstats


@pytest.fixture(scope="module")
def imp():
    df, drop = make_trial(n=80, seed=41, dropout=0.35, effect=(1.0, 2.5, 4.0))
    return peerstats.impute(
        "y ~ arm * visit + base",
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="bayes",
        n_imputations=20,
        ice=ice_frame(df, drop, ["JR", "MAR"]),
        reference={"peer": "usual"},
        seed=7,
    )


def test_one_d_grid(imp):
    grid = np.linspace(-12, 0, 13)
    tp = peerstats.tipping_point(imp, grid, covariates=["base"])
    t = tp.table
    assert list(t.columns[:2]) == ["delta_peer", "estimate"]
    # delta 0 reproduces analyse(); estimates move linearly with delta (shared imputations)
    ref = imp.analyse(covariates=["base"])
    assert t["estimate"].iloc[-1] == pytest.approx(ref["estimate"].iloc[-1], rel=1e-12)
    assert np.allclose(np.diff(t["estimate"], 2), 0, atol=1e-10)
    td = tp.tipping_delta
    assert grid[0] < td < grid[-1]
    sig = t.set_index("delta_peer")["significant"]
    assert sig.loc[0.0] and not sig.loc[-12.0]
    # at the interpolated tipping delta the confidence limit is (about) zero
    again = peerstats.tipping_point(imp, [td], covariates=["base"]).table
    assert abs(again["ci_lower"].iloc[0]) < 0.05
    ax = tp.plot()
    assert ax.get_xlabel().startswith("delta")
    assert "Tipping point" in repr(tp)


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_two_d_grid_and_dask_identical(imp, client):
    grids = {"usual": np.linspace(0, 6, 4), "peer": np.linspace(-8, 0, 5)}
    local = peerstats.tipping_point(imp, grids, covariates=["base"])
    assert len(local.table) == 20
    assert list(local.tipping.columns) == ["delta_usual", "delta_peer"]
    remote = peerstats.tipping_point(imp, grids, covariates=["base"], client=client, chunk_size=3)
    np.testing.assert_array_equal(
        local.table.to_numpy(dtype=float), remote.table.to_numpy(dtype=float)
    )
    ax = local.plot()
    assert ax.get_ylabel() == "delta, arm peer"


def test_bootstrap_refits_on_workers(client):
    """approx-bayes with client=: the refits run on the workers, the draws are the same."""
    df, drop = make_trial(n=40, seed=42, dropout=0.3)
    kw = dict(
        subject="id", visit="visit", arm="arm", method="approx-bayes", n_imputations=6, seed=5
    )
    a = peerstats.impute("y ~ arm * visit + base", df, **kw)
    b = peerstats.impute("y ~ arm * visit + base", df, client=client, **kw)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-9, atol=1e-9)
    assert b.client is client
    import pickle

    assert pickle.loads(pickle.dumps(b)).client is None
