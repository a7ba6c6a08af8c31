"""Issue 20.9: "(primary)" marks the primary outcome at the primary visit only, not every
visit of the primary outcome (the outcomes table of a peer_recovery run, SYNTHETIC data)."""

from __future__ import annotations

import pandas as pd

from peerstats.cli import main


def test_primary_marked_once(tmp_path):
    spec = tmp_path / "prim.yaml"
    spec.write_text(
        "analysis: {name: prim}\ntrial: {dataset: peer_recovery}\n"
        "primary: {outcome: qpr15, visit: post}\ntables: [outcomes]\nfigures: []\n"
    )
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    disp = pd.read_csv(tmp_path / "out" / "tables" / "display" / "outcomes.csv")
    marked = disp[disp["Outcome"].str.contains(r"\(primary\)")]
    assert len(marked) == 1 and marked["Visit"].iloc[0] == "post"
    assert (disp["Outcome"] == "QPR-15").sum() >= 1  # the follow-up row, unmarked
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("(primary)</td>") == 1


def test_headline_note_has_no_made_up_example(tmp_path):
    """Issue 20.9: the headline footnote used to contain a made-up example ("1.8 points lower
    (95% CI 0.4 to 3.2)") whatever the trial."""
    spec = tmp_path / "prim.yaml"
    spec.write_text(
        "analysis: {name: prim}\ntrial: {dataset: peer_recovery}\n"
        "primary: {outcome: qpr15, visit: post}\ntables: [outcomes]\nfigures: []\n"
    )
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "1.8 points lower" not in html and "0.4 to 3.2" not in html
    assert "model: , " not in html


def test_blinded_headline_has_no_empty_model(tmp_path):
    """Issue 20.1: the blinded headline printed "model: , degrees of freedom;"."""
    spec = tmp_path / "prim.yaml"
    spec.write_text(
        "analysis: {name: prim}\ntrial: {dataset: peer_recovery}\n"
        "primary: {outcome: qpr15, visit: post}\ntables: [outcomes]\nfigures: []\n"
    )
    out = tmp_path / "blind"
    assert main(["run", str(spec), "--out", str(out), "--quiet", "--blinded"]) == 0
    html = (out / "report.html").read_text()
    assert "model: , " not in html and " degrees of freedom; estimates are descriptive" not in html
