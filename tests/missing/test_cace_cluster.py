"""CACE with cluster-robust SEs by delivery group (issue 20.3) against R: AER::ivreg +
sandwich::vcovCL(type = "HC1") on the bundled peer_recovery trial (SYNTHETIC), reference in
tests/reference/r_cace_cluster/ (cace_cluster.R, data from make_data.py). Tolerance 1e-6
(relative; estimates and SEs agree to ~1e-12 in practice)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

HERE = Path(__file__).resolve().parents[1] / "reference" / "r_cace_cluster"
REF = json.loads((HERE / "cace_cluster.json").read_text())["results"]
KEYS = ["estimate", "std_error", "statistic", "p_value", "ci_lower", "ci_upper", "df"]


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(HERE / "cace_cluster_data.csv")


def test_dataframe_cluster_matches_vcovcl(data):
    got = peerstats.cace(
        data,
        outcome="qpr15",
        received="received5",
        covariates=["qpr15_baseline", "site"],
        reference="usual",
        se="cluster",
        cluster="cluster",
    ).effects.set_index("visit")
    for v, ref in REF.items():
        assert int(got.loc[v, "n"]) == ref["n"]
        for k in KEYS:
            assert got.loc[v, k] == pytest.approx(ref[k], rel=1e-6, abs=1e-10), (v, k)


def test_trial_clusters_by_delivery_group(data):
    """A Trial's default clusters are the delivery groups (own cluster without a group)."""
    trial = peerstats.datasets.load("peer_recovery")
    got = peerstats.cace(trial, outcome="qpr15", compliance=5, se="cluster")
    eff = got.effects.set_index("visit")
    for v, ref in REF.items():
        assert eff.loc[v, "std_error"] == pytest.approx(ref["std_error"], rel=1e-6)
    plain = peerstats.cace(trial, outcome="qpr15", compliance=5).effects.set_index("visit")
    assert not (plain["std_error"] - eff["std_error"]).abs().lt(1e-6).any()


def test_cluster_needs_a_column(data):
    with pytest.raises(ModelSpecificationError, match="cluster="):
        peerstats.cace(data, outcome="qpr15", received="received5", reference="usual", se="cluster")
    with pytest.raises(ModelSpecificationError, match="not in the data"):
        peerstats.cace(
            data,
            outcome="qpr15",
            received="received5",
            reference="usual",
            se="cluster",
            cluster="nope",
        )
