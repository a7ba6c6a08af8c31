"""Issue 24.5: a visit where everyone is missing is a warning in stderr, results.json and the
report, never a silent drop."""

import json

from hostile_corpus import copy_trial
from hostile_corpus2 import blank_gad7_at_fu3

from peerstats.cli import main


def test_a_visit_with_no_observed_outcome_is_warned_everywhere(tmp_path, capsys):
    trial = copy_trial(tmp_path / "trial")
    blank_gad7_at_fu3(trial)
    out = tmp_path / "result"
    code = main(["run", str(trial.analysis), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    needle = "['fu3'] have no observation of 'gad7'"
    assert needle in err
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert needle in json.dumps(results, ensure_ascii=False)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "have no observation of" in report and "fu3" in report
