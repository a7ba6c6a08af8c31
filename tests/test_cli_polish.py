"""CLI rough edges (issue 12, point 9). Synthetic data; no numeric tolerances."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
                "column": f"age{i}",  # one line per column and kind: 30 lines
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


def _nordic(tmp_path, text: str, encoding: str, **source) -> Path:
    import yaml

    (tmp_path / "p.csv").write_bytes(text.encode(encoding))
    (tmp_path / "a.csv").write_text("id;visit;qpr15\n1;baseline;30\n", encoding="utf-8")
    spec = {
        "trial": {"name": "Nordic (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": {"path": "p.csv", **source}, "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60}},
    }
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_one_column_read_names_the_delimiter_option(tmp_path):
    path = _nordic(tmp_path, "id;arm;ort\n1;usual;Malmö\n2;peer;Umeå\n", "utf-8")
    report = peerstats.validate(path)
    msg = " ".join(report.failures["message"])
    assert "set delimiter: ';'" in msg, msg
    assert "is not in p.csv" in msg and msg.count("Columns are") >= 1


def test_cp1252_file_names_the_encoding_option(tmp_path):
    path = _nordic(tmp_path, "id,arm,ort\n1,usual,Malmö\n2,peer,Umeå\n", "cp1252")
    report = peerstats.validate(path)
    msg = " ".join(report.failures["message"])
    assert "encoding: cp1252" in msg, msg


def test_decimal_commas_are_one_failure_with_a_count(tmp_path):
    from test_cli import write_trial

    rows = "\n".join(f"{i},baseline,\"{20 + i},5\"" for i in range(1, 51))
    path = write_trial(tmp_path, "id,visit,qpr15\n" + rows + "\n")
    part = "id,arm\n" + "\n".join(f"{i},{'usual' if i % 2 else 'peer'}" for i in range(1, 51))
    (tmp_path / "p.csv").write_text(part + "\n", encoding="utf-8")
    f = peerstats.validate(path).failures
    comma = f[f["message"].str.contains("decimal comma")]
    assert len(comma) == 1, comma
    assert "50 values are numbers with a decimal comma" in comma["message"].iloc[0]
