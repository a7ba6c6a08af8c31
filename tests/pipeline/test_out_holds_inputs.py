"""``--out`` must never be a folder that holds the analysis' own inputs (``--force`` would
delete them). The manifest records inputs relative to the analysis spec's folder, so the check
resolves them there, not against the working directory (a bug found in session 4)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from peerstats.exceptions import SpecError
from peerstats.pipeline.run import _inputs_inside, write_results


def _run(spec_dir: Path, rel: str) -> SimpleNamespace:
    return SimpleNamespace(
        spec=SimpleNamespace(source=spec_dir / "analysis.yaml"),
        manifest={"inputs": {"participants": {"path": rel, "sha256": "0"}}},
    )


def test_inputs_are_resolved_from_the_spec_folder_not_the_working_directory(tmp_path, monkeypatch):
    spec_dir = tmp_path / "study"
    (spec_dir / "results" / "data").mkdir(parents=True)
    (spec_dir / "results" / "data" / "participants.csv").write_text("id\n1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = _run(spec_dir, "results/data/participants.csv")
    assert _inputs_inside(run, spec_dir / "results") == ["results/data/participants.csv"]
    assert _inputs_inside(run, spec_dir / "other") == []


def test_write_results_refuses_an_out_folder_holding_an_input(tmp_path, monkeypatch):
    spec_dir = tmp_path / "study"
    data = spec_dir / "results" / "data"
    data.mkdir(parents=True)
    (data / "participants.csv").write_text("id\n1\n")
    # an earlier results folder (which --force may replace) that someone put an input into
    (spec_dir / "results" / "manifest.json").write_text('{"results_format": "peerstats-results/1"}')
    monkeypatch.chdir(tmp_path)
    run = _run(spec_dir, "results/data/participants.csv")
    with pytest.raises(SpecError, match="contains input files") as e:
        write_results(run, spec_dir / "results", force=True)
    assert str(tmp_path) not in str(e.value).split(": ", 1)[1]  # shown as the manifest shows it
    assert (data / "participants.csv").exists()
