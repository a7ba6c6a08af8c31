"""Issue 24.13: a Dask worker killed mid-run gives the same answer (pure seeded tasks are
retried) or, when no task can finish, a clear ScaleOutError within a bounded time."""

import os

import numpy as np
import pytest

from peerstats._scaleout import ScaleOutError, run_tasks
from peerstats.design import TrialDesign
from peerstats.design.simulate import run_scenarios

distributed = pytest.importorskip("dask.distributed")

DESIGN = dict(
    visits=["baseline", "post", "fu3"],
    arms=["usual", "peer"],
    sd=[10, 11, 12],
    correlation=("ar1", 0.6),
    effect={"post": 4, "fu3": 3},
    dropout={"usual": {"post": 0.1, "fu3": 0.2}, "peer": {"post": 0.15, "fu3": 0.3}},
    primary="fu3",
)


def _cluster():
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )


def _kill_one_worker(client) -> None:
    victim = sorted(client.scheduler_info()["workers"])[0]
    try:
        client.run(os._exit, 1, workers=[victim], wait=False)
    except Exception:  # the connection to the dying worker may close under us
        pass


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_run_gives_the_same_answer():
    d = TrialDesign(**DESIGN)
    scen = [(20, 1.0), (24, 1.0), (28, 1.0)]
    local, _ = run_scenarios(d, scen, n_sims=300, seed=11)  # 9 chunks of 100
    with _cluster() as cluster, distributed.Client(cluster) as client:
        killed = []

        def progress(done, total):
            if done >= 1 and not killed:
                killed.append(done)
                _kill_one_worker(client)

        remote, _ = run_scenarios(d, scen, n_sims=300, seed=11, client=client, progress=progress)
    assert killed  # the fault was injected
    for a, b in zip(local, remote):
        for k in a:
            assert np.array_equal(a[k], b[k], equal_nan=True), k


def _sleep_forever(payload, i):
    import time

    time.sleep(3600)
    return i


@pytest.mark.timeout(120)
def test_a_stalled_cluster_ends_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("PEERSTATS_DASK_STALL_TIMEOUT", "3")
    with _cluster() as cluster, distributed.Client(cluster) as client:
        with pytest.raises(ScaleOutError, match="stalled: no task finished in 3 s"):
            run_tasks(_sleep_forever, None, [(1,), (2,)], client=client, what="the test")


def _always_die(payload, i):
    os._exit(1)


@pytest.mark.timeout(180)
def test_a_task_that_kills_every_worker_is_a_clear_error():
    with _cluster() as cluster, distributed.Client(cluster) as client:
        with pytest.raises(ScaleOutError, match="worker processes died"):
            run_tasks(_always_die, None, [(1,)], client=client, retries=0, what="the test")
