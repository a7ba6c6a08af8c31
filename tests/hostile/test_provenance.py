"""Issue 24.8: manifest.json records the SHA-256 of the bytes the run read, even when an input
file is replaced while the run is going; and paths are relative (24.3)."""

import hashlib
import json

from hostile_corpus import copy_trial

from peerstats.cli import main


def test_a_file_replaced_during_the_run_keeps_the_digest_of_what_was_read(
    tmp_path, capsys, monkeypatch
):
    import importlib

    trial = copy_trial(tmp_path / "trial")
    part = trial.table("participants")
    original = hashlib.sha256(part.read_bytes()).hexdigest()
    steps = importlib.import_module("peerstats.pipeline.steps")
    real_fit = steps.fit_outcomes

    def replace_then_fit(*args, **kwargs):  # the file changes after it was read
        part.write_text(part.read_text(encoding="utf-8") + "\n", encoding="utf-8")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(steps, "fit_outcomes", replace_then_fit)
    out = tmp_path / "out"
    assert main(["run", str(trial.analysis), "--out", str(out), "-q"]) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    rec = manifest["inputs"]["participants"]
    assert rec["sha256"] == original
    assert hashlib.sha256(part.read_bytes()).hexdigest() != original
    assert rec["path"] == "participants.csv"  # relative to the analysis spec's folder
    assert str(tmp_path) not in json.dumps(manifest["inputs"])
