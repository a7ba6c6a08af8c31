"""The peerstats command: validate, demo, --version. Synthetic data."""

import subprocess
import sys

import pytest
import yaml

import peerstats
import peerstats.datasets
from peerstats.cli import main


def write_trial(tmp_path, assessments="id,visit,qpr15\n1,baseline,30\n2,baseline,28\n"):
    (tmp_path / "p.csv").write_text("id,arm\n1,usual\n2,peer\n")
    (tmp_path / "a.csv").write_text(assessments)
    spec = {
        "trial": {"name": "CLI (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60}},
    }
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_validate_clean_exits_0(tmp_path, capsys):
    assert main(["validate", str(write_trial(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "Validation passed" in out and "participants: 2 rows" in out


def test_validate_with_problems_exits_1_and_lists_them(tmp_path, capsys):
    path = write_trial(tmp_path, "id,visit,qpr15\n1,baseline,61\n2,bsaeline,28\n3,post,1\n")
    failures = tmp_path / "out" / "failures.csv"
    failures.parent.mkdir()
    assert main(["validate", str(path), "--failures", str(failures)]) == 1
    out = capsys.readouterr().out
    assert "3 problems found" in out
    assert "[out_of_range] assessments row 1, column 'qpr15'" in out
    assert "did you mean 'baseline'?" in out
    assert "Problems by check:" in out
    assert failures.read_text().count("\n") == 4  # header + 3 problems


def test_validate_spec_error_exits_2(tmp_path, capsys):
    path = tmp_path / "trial.yaml"
    path.write_text("trial: {name: x, design: crossover}\n")
    assert main(["validate", str(path)]) == 2
    assert "spec error" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"peerstats {peerstats.__version__}"


def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "peerstats.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"peerstats {peerstats.__version__}"


def test_demo_without_datasets_fails_clearly(monkeypatch, capsys):
    monkeypatch.delattr(peerstats.datasets, "load", raising=False)
    assert main(["demo", "--summary"]) == 1
    assert "bundled example trials are not available" in capsys.readouterr().err


def test_demo_prints_summary_and_spec_location(tmp_path, monkeypatch, capsys):
    path = write_trial(tmp_path)
    calls = []

    def fake_load(name):
        calls.append(name)
        return peerstats.load_trial(path)

    monkeypatch.setattr(peerstats.datasets, "load", fake_load, raising=False)
    assert main(["demo", "--summary"]) == 0
    out = capsys.readouterr().out
    assert calls == ["peer_recovery"]
    assert "Randomised per arm: usual 1, peer 1" in out
    assert f"The trial spec is {path.resolve()}" in out


def test_demo_reports_invalid_bundled_data(tmp_path, monkeypatch, capsys):
    path = write_trial(tmp_path, "id,visit,qpr15\n1,baseline,99\n")
    monkeypatch.setattr(
        peerstats.datasets, "load", lambda name: peerstats.load_trial(path), raising=False
    )
    assert main(["demo", "--summary"]) == 1
    assert "failed validation" in capsys.readouterr().err


def test_ctrl_c_ends_without_a_traceback(monkeypatch, capsys):
    """Ctrl-C during a command: one line on stderr, exit status 130, no traceback."""
    import peerstats.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_validate", interrupted)
    assert main(["validate", "whatever.yaml"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "peerstats validate: interrupted"
    assert "Traceback" not in err
