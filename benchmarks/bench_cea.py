"""Cost-effectiveness speed (issue 18).

    .venv/bin/python benchmarks/bench_cea.py [--repeat 5] [--blas-threads 1] [--no-mi]

* 5,000 bootstrap replicates of the SUR analysis (cost and QALYs on arm + baseline utility +
  stratum) on 300 participants: target < 5 s. The two equations share their regressors, so SUR
  equals equation-by-equation OLS (Zellner 1962) and each replicate is one weighted least-squares
  fit with two responses, done for a chunk of 250 replicates at once (peerstats.economics.
  _bootstrap). Peer in the same run: the per-replicate refit with linearmodels' SUR (the obvious
  loop), timed on 100 replicates and scaled to 5,000.
* MI x bootstrap: 20 imputations (peerstats.impute, bayes) x 1,000 replicates, target < 30 s.

Timings are interleaved (ours, peer, ours, ...); min and median of --repeat runs; the machine's
load average is printed (2 cores shared with other jobs: read ratios, not absolute seconds).
Data: synthetic (tests/reference/r_economics/make_cea_data.py).
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import _threads  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reference" / "r_economics"))

import numpy as np
import pandas as pd
from _common import blas_threads
from make_cea_data import make

import peerstats

KW = dict(cost="cost", effect="qaly", arm="arm", covariates=["u0", "stratum"])


def ours(d: pd.DataFrame) -> float:
    t0 = time.perf_counter()
    peerstats.cost_effectiveness(d, method="bootstrap", n_boot=5000, seed=1, **KW)
    return time.perf_counter() - t0


def peer_loop(d: pd.DataFrame, reps: int = 100) -> float:
    """linearmodels SUR refitted on each bootstrap sample (stratified by arm), scaled to 5,000."""
    from linearmodels.system import SUR

    X = pd.get_dummies(d[["u0", "stratum"]], drop_first=True, dtype=float)
    X.insert(0, "arm", (d["arm"] == "peer").astype(float))
    X.insert(0, "const", 1.0)
    Y = d[["cost", "qaly"]]
    rng = np.random.default_rng(1)
    arms = [np.flatnonzero(d["arm"] == a) for a in ("usual", "peer")]
    t0 = time.perf_counter()
    for _ in range(reps):
        idx = np.concatenate([rng.choice(a, len(a)) for a in arms])
        SUR.multivariate_ls(
            Y.iloc[idx].reset_index(drop=True), X.iloc[idx].reset_index(drop=True)
        ).fit(method="gls", cov_type="unadjusted", debiased=True)
    return (time.perf_counter() - t0) * 5000 / reps


def mi_boot(d: pd.DataFrame) -> float:
    rng = np.random.default_rng(2)
    d = d.copy()
    d.loc[rng.random(len(d)) < 0.2, "qaly"] = np.nan
    d.loc[rng.random(len(d)) < 0.2, "cost"] = np.nan
    t0 = time.perf_counter()
    peerstats.cost_effectiveness(d, method="bootstrap", n_boot=1000, n_imputations=20, seed=1, **KW)
    return time.perf_counter() - t0


def dask_identical(d: pd.DataFrame) -> None:
    """The bootstrap on a 2-process LocalCluster equals the in-process one (start-up not timed)."""
    from distributed import Client, LocalCluster

    kw = dict(method="bootstrap", n_boot=5000, seed=11, cluster="group", wtp=[30000], **KW)
    local = peerstats.cost_effectiveness(d, **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        remote = peerstats.cost_effectiveness(d, client=client, **kw)
        t = time.perf_counter() - t0
    same = np.array_equal(local.replicates.to_numpy(), remote.replicates.to_numpy())
    print(f"dask 2 processes, B = 5,000 clustered: {t:.2f} s; replicates identical: {same}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--blas-threads", default=None)
    ap.add_argument("--no-mi", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    a = ap.parse_args()
    d = make()
    d["arm"] = pd.Categorical(d["arm"], ["usual", "peer"])
    print(f"load average {os.getloadavg()}, BLAS {blas_threads()}, n = {len(d)}")
    ours(d)  # warm-up (imports)
    t_ours, t_peer, t_mi = [], [], []
    for _ in range(a.repeat):
        t_ours.append(ours(d))
        t_peer.append(peer_loop(d))
        if not a.no_mi:
            t_mi.append(mi_boot(d))
    rows = [("bootstrap SUR, B = 5,000 (ours)", t_ours, 5.0),
            ("same, linearmodels SUR per replicate (scaled)", t_peer, None)]  # fmt: skip
    if t_mi:
        rows.append(("MI x bootstrap, M = 20, B = 1,000 (ours)", t_mi, 30.0))
    for name, t, target in rows:
        tgt = (
            f"  target < {target:.0f} s: {'met' if min(t) < target else 'MISSED'}" if target else ""
        )
        print(f"{name:48s} min {min(t):7.2f} s  median {statistics.median(t):7.2f} s{tgt}")
    print(
        f"ratio peer / ours (medians): {statistics.median(t_peer) / statistics.median(t_ours):.0f}x"
    )
    if not a.no_dask:
        dask_identical(d)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
