"""Issue 24.5: a visit where everyone is missing is a DataWarning naming it, not a silent drop
(the model-level path; the report path is checked in the pipeline tests)."""

import pytest
from hostile_corpus import copy_trial
from hostile_corpus2 import blank_gad7_at_fu3

import peerstats
from peerstats.exceptions import DataWarning


def test_analyze_warns_when_a_visit_has_no_observed_outcome(tmp_path):
    trial = copy_trial(tmp_path / "trial")
    blank_gad7_at_fu3(trial)
    t = peerstats.load_trial(trial.spec)
    with pytest.warns(DataWarning, match=r"\['fu3'\] have no observation of 'gad7'"):
        res = peerstats.analyze(t, outcome="gad7")
    assert list(res.contrasts["visit"].astype(str)) == ["post"]
