"""Issue 24.5: a visit where everyone is missing is a warning in stderr, results.json and the
report, never a silent drop."""

import json

from hostile_corpus import copy_trial

from peerstats.cli import main


def test_a_visit_with_no_observed_outcome_is_warned_everywhere(tmp_path, capsys):
    trial = copy_trial(tmp_path / "trial")
    rows = trial.rows("assessments")
    h = rows[0]
    items = [h.index(f"gad_{k}") for k in range(1, 8)]  # GAD-7 is scored from its items
    for r in rows[1:]:
        if r[h.index("visit")] == "fu3":
            for k in items:
                r[k] = ""
    trial.write_rows("assessments", rows)
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
