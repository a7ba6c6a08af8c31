"""Shared fixtures of the pipeline tests: each example analysis is run once per session.

The runs use the bundled SYNTHETIC example trials (``peerstats.datasets``) and the analysis
specs committed in ``analyses/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import pytest
from pipeline_support import ANALYSES, EXAMPLES

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def example_runs(tmp_path_factory) -> dict[str, Path]:
    """``{name: result folder}`` of every example analysis, run through ``peerstats run``."""
    from peerstats.cli import main

    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name in EXAMPLES:
        folder = base / name
        code = main(["run", str(ANALYSES / f"{name}.yaml"), "--out", str(folder), "--quiet"])
        assert code == 0, f"peerstats run {name} ended with {code}"
        out[name] = folder
    return out


@pytest.fixture()
def small_trial(tmp_path) -> Path:
    """A copy of the single-arm feasibility example (fast to run) that a test may edit."""
    from peerstats import datasets

    src = datasets.path("icbt_feasibility").parent
    dst = tmp_path / "trial"
    shutil.copytree(src, dst)
    return dst / "spec.yaml"
