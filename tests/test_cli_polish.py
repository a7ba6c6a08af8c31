"""CLI rough edges (issue 12, point 9). Synthetic data; no numeric tolerances."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

import peerstats
from peerstats.cli import main
from peerstats.exceptions import DataValidationError


def test_validate_into_head_has_no_broken_pipe_traceback():
    spec = peerstats.datasets.path("peer_recovery")
    cmd = f"{sys.executable} -m peerstats.cli validate {spec} | head -1"
    done = subprocess.run(
        cmd, shell=True, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"}
    )
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stdout.startswith("Trial spec:")


def test_more_problems_names_the_failures_option():
    failures = pd.DataFrame(
        [
            {
                "table": "participants",
                "row": i,
                "column": "age",
                "check": "out_of_range",
                "message": "too old",
            }
            for i in range(30)
        ]
    )
    text = str(DataValidationError(failures, max_shown=5))
    assert "and 25 more" in text and "--failures FILE" in text and "(see .failures)" not in text


def test_wrong_visit_in_a_wide_column_is_said_once(tmp_path):
    import yaml

    from test_cli import write_trial  # the small trial the CLI tests use

    path = write_trial(tmp_path)
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    (tmp_path / "wide.csv").write_text(
        "id,qpr15_baseline,qpr15_T2\n1,20,21\n2,22,23\n", encoding="utf-8"
    )
    spec["data"]["assessments"] = {"path": "wide.csv", "layout": "wide"}
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    report = peerstats.validate(path)
    msgs = [m for m in report.failures["message"] if "'T2'" in m]
    assert msgs, report.failures
    assert msgs[0].startswith("'T2' is not a visit") and msgs[0].endswith(".")
    assert "column 'qpr15_T2'" not in msgs[0]


def test_demo_runs_the_example_analysis(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--trial", "icbt_feasibility", "--out", str(out), "-q"]) == 0
    assert (out / "report.html").is_file() and (out / "results.json").is_file()
    assert f"Report: {out.resolve() / 'report.html'}" in capsys.readouterr().out
    # a second demo replaces the first
    assert main(["demo", "--trial", "icbt_feasibility", "--out", str(out), "-q"]) == 0
