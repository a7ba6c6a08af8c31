"""`peerstats power design.yaml`: table on stdout, CSV + SVG written, progress on stderr,
exit codes as the other commands (0 ok, 2 spec error), no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from peerstats.cli import main

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "analyses" / "designs" / "peer_groups.yaml"


def test_power_analytic_table_and_files(tmp_path, capsys):
    assert main(["power", str(PEER), "--n", "60:100:20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "power_analytic" in out and "Groups            arm peer" in out
    table = pd.read_csv(tmp_path / "peer_groups_power.csv")
    assert table["n"].tolist() == [60, 80, 100]
    assert (tmp_path / "peer_groups_power.svg").read_text().lstrip().startswith("<?xml")


def test_power_simulation_progress_on_stderr(tmp_path, capsys):
    code = main(
        [
            "power",
            str(PEER),
            "--n",
            "40,60",
            "--simulate",
            "100",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    cap = capsys.readouterr()
    assert "simulating [" in cap.err and "2/2 chunks" in cap.err
    table = pd.read_csv(tmp_path / "peer_groups_power.csv")
    assert {"power_simulation", "mc_se", "type1_error"} <= set(table.columns)


def test_power_default_grid_around_sample_size(tmp_path, capsys):
    spec = yaml.safe_load(PEER.read_text())
    spec.pop("n")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["power", str(path), "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "peer_groups_power.csv")
    assert (table["n"] % 10 == 0).all()  # whole delivery groups of 10
    assert (table["power_analytic"] >= 0.9).any() and (table["power_analytic"] < 0.9).any()


def test_power_spec_errors_exit_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    spec = yaml.safe_load(PEER.read_text())
    spec["dropout"] = {"post": 0.3, "fu3": 0.1}
    bad.write_text(yaml.safe_dump(spec))
    assert main(["power", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "spec error" in err and "dropout/fu3" in err and "Traceback" not in err
    assert main(["power", str(PEER), "--n", "abc", "--out", str(tmp_path)]) == 2
    assert "--n 'abc'" in capsys.readouterr().err
    assert main(["power", str(PEER), "--n", "5", "--out", str(tmp_path)]) == 2
    assert "groups/size" in capsys.readouterr().err
    assert main(["power", str(tmp_path / "nope.yaml")]) == 2
    assert main(["power", str(PEER), "--simulate", "10", "--workers", "0"]) == 2
