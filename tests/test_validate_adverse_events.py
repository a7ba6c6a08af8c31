"""Issue 20.5: validate checks what run needs from the adverse-event table, and its columns
can be mapped in the trial spec (``adverse_event_columns:``) as participants' columns can.
Before the fix a sheet with ``händelse`` / ``allvarlig`` passed validate and failed in run.
Data: a copy of the bundled SYNTHETIC peer_recovery trial."""

from __future__ import annotations

import shutil

import yaml

import peerstats
from peerstats.pipeline import read_analysis_spec
from peerstats.pipeline._display import display_labels, read_adverse_events


def _trial_copy(tmp_path, mapping=None):
    src = peerstats.datasets.path("peer_recovery").parent
    dst = tmp_path / "trial"
    shutil.copytree(src, dst)
    ae = dst / "adverse_events.csv"
    head, rest = ae.read_text().split("\n", 1)
    ae.write_text(head.replace("event", "händelse").replace("serious", "allvarlig") + "\n" + rest)
    raw = yaml.safe_load((dst / "spec.yaml").read_text())
    if mapping is not None:
        raw["adverse_event_columns"] = mapping
    (dst / "spec.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    return dst / "spec.yaml"


def test_unmapped_adverse_event_columns_fail_validate(tmp_path):
    report = peerstats.validate(_trial_copy(tmp_path))
    f = report.failures
    bad = f[f["table"] == "adverse_events"]
    assert set(bad["column"]) == {"event", "serious"}
    assert bad["message"].str.contains("adverse_event_columns").all()
    assert report.trial is None


def test_mapped_adverse_event_columns_validate_and_run(tmp_path):
    spec = _trial_copy(tmp_path, {"event": "händelse", "serious": "allvarlig"})
    report = peerstats.validate(spec)
    assert len(report.failures) == 0
    trial = report.trial
    aspec = read_analysis_spec(
        {
            "analysis": {"name": "ae"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
        }
    )
    table = read_adverse_events(trial, display_labels(trial, aspec))
    assert "any" in set(table.data["category"])
