"""Issue 20.1: the A/B coding of ``peerstats run --blinded`` comes from a secret kept in a
closed key file (``--key FILE``), not from the analysis spec's seed (which the report prints);
the same key file reproduces the same coding, and the secret never reaches the open report."""

from __future__ import annotations

import json

import pandas as pd

import peerstats
from peerstats.cli import main
from peerstats.pipeline._blind import blind_trial


def test_key_file_reproduces_the_coding_and_seed_does_not_decide_it(tmp_path):
    trial = peerstats.datasets.load("peer_recovery")
    key = tmp_path / "dmc.key"
    _, k1 = blind_trial(trial, key_file=key)
    assert key.is_file() and json.loads(key.read_text())["coding"] == k1
    _, k2 = blind_trial(trial, key_file=key)
    assert k1 == k2
    # without a key file the coding is drawn afresh: over 40 draws both codings occur
    seen = {blind_trial(trial, seed=179)[1]["peer"] for _ in range(40)}
    assert seen == {"A", "B"}


def test_secret_not_in_open_outputs(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "analysis: {name: dmc}\ntrial: {dataset: peer_recovery}\n"
        "primary: {outcome: qpr15, visit: post}\ntables: [consort]\nfigures: []\n"
    )
    key = tmp_path / "closed" / "dmc.key"
    key.parent.mkdir()
    out = tmp_path / "open"
    argv = ["run", str(spec), "--out", str(out), "--quiet", "--blinded", "--key", str(key)]
    assert main(argv) == 0
    secret = json.loads(key.read_text())["secret"]
    for f in out.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    res = json.loads((out / "results.json").read_text())
    assert "seed" not in res["blinded"]["arms"]


def test_closed_report_beside_the_open_one(tmp_path):
    """Issue 20.1: with --key a closed DMC report (by arm, with the code; flow not pooled) is
    written to <out>-closed, never inside the open folder; without --key none is written."""
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "analysis: {name: dmc}\ntrial: {dataset: peer_recovery}\n"
        "primary: {outcome: qpr15, visit: post}\ntables: [consort]\nfigures: []\n"
        "labels: {arms: {peer: peer support, usual: usual services}}\n"
    )
    key = tmp_path / "dmc.key"
    out = tmp_path / "open"
    assert main(["run", str(spec), "--out", str(out), "-q", "--blinded", "--key", str(key)]) == 0
    closed = tmp_path / "open-closed"
    assert (closed / "report.html").is_file() and not (out / "closed").exists()
    coding = json.loads(key.read_text())["coding"]
    res = json.loads((closed / "results.json").read_text())
    assert res["blinded"]["coding"] == {v: k for k, v in coding.items()}
    html = (closed / "report.html").read_text(encoding="utf-8")
    assert f"{coding['peer']} = peer support" in html and "data-closed" in html
    flow = pd.read_csv(closed / "tables" / "consort.csv")
    # by arm: the group-course reason sits with the peer arm's code, not pooled
    row = flow[flow["reason"] == "did not want to attend a group"]
    assert list(row["arm"]) == [coding["peer"]]
    open_html = (out / "report.html").read_text(encoding="utf-8")
    assert "peer support" not in open_html and "data-closed" not in open_html
    out2 = tmp_path / "open2"
    assert main(["run", str(spec), "--out", str(out2), "-q", "--blinded"]) == 0
    assert not (tmp_path / "open2-closed").exists()
