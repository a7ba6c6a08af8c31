"""Issue 24.5: a visit where everyone is missing is a DataWarning naming it, not a silent drop
(the model-level path; the report path is checked in the pipeline tests)."""

import pytest
from hostile_corpus import copy_trial

import peerstats
from peerstats.exceptions import DataWarning


def test_analyze_warns_when_a_visit_has_no_observed_outcome(tmp_path):
    trial = copy_trial(tmp_path / "trial")
    rows = trial.rows("assessments")
    h = rows[0]
    items = [h.index(f"gad_{k}") for k in range(1, 8)]  # GAD-7 is scored from its items
    for r in rows[1:]:
        if r[h.index("visit")] == "fu3":
            for k in items:
                r[k] = ""
    trial.write_rows("assessments", rows)
    t = peerstats.load_trial(trial.spec)
    with pytest.warns(DataWarning, match=r"\['fu3'\] have no observation of 'gad7'"):
        res = peerstats.analyze(t, outcome="gad7")
    assert list(res.contrasts["visit"].astype(str)) == ["post"]
