"""Issue 20, items 3 and 4: every row of the primary/sensitivity comparison names its analysed
population by what it is ("ITT" only when every randomised participant is analysed), shows
n analysed / N randomised, and states its analysis model in words (so a reader sees when a
sensitivity analysis has no delivery-group effect). SYNTHETIC bundled trials.

Reference: ICH E9 (1998) section 5.2.1 (full analysis set) and ICH E9(R1); the counts are
checked against the trial's own randomised table, not against the pipeline's output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import peerstats
from peerstats.pipeline._sensitivity_run import fas_population, imputed_population


def _rows(out):
    res = json.loads((out / "results.json").read_text())
    return res["sensitivity"]["analyses"]


def test_itt_only_when_everyone_is_analysed():
    assert "ITT" not in fas_population(264, 304)
    assert "full analysis set" in fas_population(264, 304)
    assert "ITT" in fas_population(304, 304)
    assert "ITT" not in imputed_population(290, 304)
    assert "ITT" in imputed_population(304, 304)


def test_rows_name_population_n_of_randomised_and_model(example_runs):
    for name in ("peer_recovery", "icbt_peer", "social_inclusion"):
        trial = peerstats.datasets.load(name)
        rows = _rows(example_runs[name])
        assert rows, name
        n_rand = {r["n_randomised"] for r in rows.values()}
        assert len(n_rand) == 1, (name, n_rand)
        assert n_rand == {len(trial.randomised)}, name
        for key, r in rows.items():
            assert r["model"], (name, key)
            if "ITT" in r["population"]:
                assert r["n"] == r["n_randomised"], (name, key, r["population"])


def test_primary_population_in_peer_recovery_is_not_called_itt(example_runs):
    rows = _rows(example_runs["peer_recovery"])
    prim = [r for k, r in rows.items() if k.startswith("primary|")]
    assert all(r["n"] < r["n_randomised"] for r in prim)
    assert all("ITT" not in r["population"] for r in prim)
    assert all("full analysis set" in r["population"] for r in prim)


def test_report_table_shows_n_of_randomised_and_model(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text()
    m = re.search(r"<table data-table='sensitivity'>.*?</table>", html, re.S)
    assert m
    tab = m.group(0)
    assert "n analysed / N randomised" in tab
    assert "Analysis model" in tab
    assert "Rubin" in tab
    assert re.search(r"<td>\d+ / \d+</td>", tab)
    assert "all randomised (ITT)</td>" not in tab


def test_model_words_show_when_a_sensitivity_analysis_ignores_clustering(example_runs):
    """peer_recovery's peer arm is group-delivered: the primary model is the partially nested
    LMM, and the imputation rows refit it on each imputed data set and say so (issue 20.3;
    before they were per-visit ANCOVAs without the delivery group)."""
    rows = _rows(example_runs["peer_recovery"])
    for key, r in rows.items():
        if key.startswith("primary|"):
            assert r["model"].startswith("partially nested linear mixed model"), r["model"]
        if key.startswith(("mi-jr|", "mi-multilevel|")):
            assert "Rubin" in r["model"], r["model"]
            assert r["model"].startswith("partially nested linear mixed model"), r["model"]
            assert "as the primary analysis" in r["model"], r["model"]
        if key.startswith("cace|"):
            assert "cluster-robust standard errors by delivery group" in r["model"], r["model"]


def test_pipeline_cace_is_clustered_by_delivery_group_as_r_vcovcl(example_runs):
    """The CACE row's SE equals R AER::ivreg + sandwich::vcovCL by delivery group
    (tests/reference/r_cace_cluster/cace_cluster.json), relative tolerance 1e-6."""
    ref_path = Path(__file__).resolve().parents[1] / "reference" / "r_cace_cluster"
    ref = json.loads((ref_path / "cace_cluster.json").read_text())["results"]
    rows = _rows(example_runs["peer_recovery"])
    for v in ("post", "fu3"):
        r = rows[f"cace|{v}|peer - usual"]
        assert r["std_error"] == pytest.approx(ref[v]["std_error"], rel=1e-6)
        assert r["ci_lower"] == pytest.approx(ref[v]["ci_lower"], rel=1e-6)


def test_outcome_table_and_headline_show_n_of_randomised(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text()
    m = re.search(r"<table[^>]*>\s*<caption>Outcomes</caption>.*?</table>", html, re.S)
    body = m.group(0) if m else html
    assert "n analysed / N randomised" in body
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text())
    n_rand = sum(res["trial"]["n_randomised"].values())
    n_an = res["models"]["qpr15"]["n_subjects"]
    assert f"n analysed / N randomised = {n_an} / {n_rand}" in html
