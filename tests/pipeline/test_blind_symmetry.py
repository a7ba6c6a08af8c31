"""Issue 20.1: the open DMC report must not reveal which coded arm is the intervention.

A trial is planted whose two arms hold the same participants (each randomised participant of
the bundled SYNTHETIC peer_recovery example's peer arm has a twin in the usual-services arm
with the same site, covariates, assessments, withdrawals and adverse events), so the only
difference between the arms is structure that exists in the intervention arm only: whether
the intervention was received (with reasons such as "did not want to attend a group"),
discontinuations with reasons, delivery groups and peers, session attendance. The blinded run
is made twice, with two key files that give the two possible codings (A = peer, B = usual and
A = usual, B = peer); every open output (report.html, results.json, tables/*.csv,
figures/*.svg, the text of tables/*.docx) must then be byte-identical. Only the manifest
(file hashes, times) is left out. No tolerances: exact equality."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.cli import main
from peerstats.pipeline._blind import blind_trial

ARM_ONLY = ("group", "peer", "received", "not_received_reason", "discontinued")


def _plant(folder: Path) -> Path:
    """The mirrored trial (SYNTHETIC): peer arm plus a twin of each peer participant in the
    usual arm, arm-only columns blank for the twins (not applicable to that arm)."""
    src = peerstats.datasets.path("peer_recovery").parent
    folder.mkdir()
    spec = (src / "spec.yaml").read_text(encoding="utf-8")
    (folder / "spec.yaml").write_text(spec, encoding="utf-8")
    (folder / "sessions.csv").write_bytes((src / "sessions.csv").read_bytes())
    part = pd.read_csv(src / "participants.csv", dtype=str, keep_default_na=False)
    peer = part[part["arm"] == "peer"]
    twin = peer.copy()
    twin["id"] = "T" + twin["id"]
    twin["arm"] = "usual"
    for col in (*ARM_ONLY, "discontinued_reason"):
        twin[col] = ""
    notrand = part[part["randomised"] != "1"]
    pd.concat([notrand, peer, twin]).to_csv(folder / "participants.csv", index=False)
    for name in ("assessments.csv", "adverse_events.csv"):
        tab = pd.read_csv(src / name, dtype=str, keep_default_na=False)
        mine = tab[tab["id"].isin(set(peer["id"]))]
        copy = mine.assign(id="T" + mine["id"])
        pd.concat([mine, copy]).to_csv(folder / name, index=False)
    return folder / "spec.yaml"


def _keys(trial_spec: Path, folder: Path) -> dict[str, Path]:
    """Two key files: one codes the peer arm A, the other B."""
    trial = peerstats.load_trial(trial_spec)
    found: dict[str, Path] = {}
    for i in range(64):
        key = folder / f"key{i}.json"
        key.write_text(json.dumps({"secret": f"planted-{i}"}), encoding="utf-8")
        _, coding = blind_trial(trial, key_file=key)
        found.setdefault(coding["peer"], key)
        if len(found) == 2:
            return found
    raise AssertionError("64 secrets gave one coding only")  # pragma: no cover


def _open_outputs(out: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or rel == "manifest.json":
            continue
        if p.suffix == ".docx":  # the zip carries times; compare the document's text
            with zipfile.ZipFile(p) as z:
                files[rel] = z.read("word/document.xml")
        else:
            files[rel] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def two_codings(tmp_path_factory):
    root = tmp_path_factory.mktemp("symmetry")
    trial_spec = _plant(root / "trial")
    spec = root / "dmc.yaml"
    spec.write_text(
        "analysis: {name: dmc}\n"
        f"trial: {trial_spec.as_posix()}\n"
        "primary: {outcome: qpr15, visit: post}\n"
        "tables: [consort, table_one, outcomes, harms]\n"
        "figures: [consort, trajectories]\n"
        "labels: {covariates: {age: Age (years)}}\n",
        encoding="utf-8",
    )
    keys = _keys(trial_spec, root)
    outs = {}
    for code, key in keys.items():
        out = root / f"open_peer_is_{code}"
        argv = ["run", str(spec), "--out", str(out), "-q", "--blinded", "--key", str(key)]
        assert main(argv) == 0
        outs[code] = _open_outputs(out)
    return outs


def test_planted_trial_has_arm_only_structure(two_codings):
    """The plant is what the test needs: received/discontinued rows exist for one arm only in
    the unblinded flow (so a naive blinded flow would differ between the codings)."""
    assert set(two_codings) == {"A", "B"}  # both codings were run
    src = peerstats.datasets.path("peer_recovery").parent
    part = pd.read_csv(src / "participants.csv")
    peer = part[part["arm"] == "peer"]
    assert peer["discontinued"].fillna(0).astype(int).sum() > 0
    assert peer["not_received_reason"].str.contains("group", na=False).any()


def test_open_outputs_identical_under_both_codings(two_codings):
    a, b = two_codings["A"], two_codings["B"]
    assert sorted(a) == sorted(b)
    assert any(name.endswith(".svg") for name in a) and any(n.endswith(".docx") for n in a)
    assert "tables/consort.csv" in a and "report.html" in a and "results.json" in a
    differ = [name for name in a if a[name] != b[name]]
    assert differ == []


def test_pooled_rows_carry_the_arm_only_boxes(two_codings):
    consort = two_codings["A"]["tables/consort.csv"].decode("utf-8")
    rows = [line.split(",") for line in consort.splitlines()[1:]]
    for line in rows:
        if line[1] in ("received", "not_received", "discontinued"):
            assert line[2] == "", line  # pooled, not by coded arm
    assert "did not want to attend a group" in consort
    res = json.loads(two_codings["A"]["results.json"])
    assert not any(k.startswith("allocation|received|A") for k in res["consort"])
    assert not any("|discontinued|B" in k for k in res["consort"])
