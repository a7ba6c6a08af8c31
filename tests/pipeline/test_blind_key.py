"""Issue 20.1: the A/B coding of ``peerstats run --blinded`` comes from a secret kept in a
closed key file (``--key FILE``), not from the analysis spec's seed (which the report prints);
the same key file reproduces the same coding, and the secret never reaches the open report."""

from __future__ import annotations

import json

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
