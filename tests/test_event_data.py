"""Time-to-event data validation (issue 17, item 1): peerstats.event_data. Synthetic rows."""

from __future__ import annotations

import pandas as pd
import pytest

from peerstats.event_data import TimeToEventSpec, derive_time_to_event
from peerstats.exceptions import DataValidationError, SpecError

SPEC = dict(
    end="end_date", type="how_ended", start="randomised",
    types={"readmitted": "event", "end of study": "censored", "withdrew": "censored",
           "died": "competing", "moved abroad": "competing"},
    censoring_date="2025-06-30", censoring_reason="reason",
    reasons_that_are_events={"died": "died"}, unit="days",
)


def _data(changes=None):
    d = pd.DataFrame({
        "subject": ["P1", "P2", "P3", "P4"],
        "randomised": ["2024-01-10", "2024-02-01", "2024-03-05", "2024-03-05"],
        "end_date": ["2024-03-10", "2025-06-30", "2024-05-01", "2024-04-04"],
        "how_ended": ["readmitted", "end of study", "died", "withdrew"],
        "reason": [None, None, None, "moved house"],
    })
    for (i, col), v in (changes or {}).items():
        d.loc[i, col] = v
    return d


def test_derives_time_and_codes():
    out = derive_time_to_event(_data(), TimeToEventSpec(name="readmission", **SPEC))
    assert list(out.event) == [1, 0, 2, 0]
    assert list(out.time) == [60.0, 515.0, 57.0, 30.0]
    spec = TimeToEventSpec(name="readmission", **{**SPEC, "unit": "months"})
    assert derive_time_to_event(_data(), spec).time.iloc[0] == pytest.approx(60 / 30.4375)
    assert spec.codes["moved abroad"] == 3


def test_every_problem_is_listed_with_its_count():
    d = _data({(0, "end_date"): "2024-01-01",  # before randomisation
               (1, "end_date"): "2025-07-15",  # after the censoring date
               (2, "how_ended"): "hospitalised",  # unknown type
               (3, "reason"): "Died"})  # censoring that is really a death
    with pytest.raises(DataValidationError) as err:
        derive_time_to_event(d, TimeToEventSpec(name="readmission", **SPEC))
    checks = list(err.value.failures.check)
    assert checks == ["unknown_event_type", "event_before_start", "after_censoring_date",
                      "censoring_is_event"]
    assert "(1 participant(s))" in str(err.value)
    assert "hospitalised" in str(err.value)


def test_event_on_the_day_of_randomisation_and_missing_dates():
    d = _data({(0, "end_date"): "2024-01-10", (1, "end_date"): None})
    with pytest.raises(DataValidationError) as err:
        derive_time_to_event(d, TimeToEventSpec(name="readmission", **SPEC))
    assert set(err.value.failures.check) == {"event_at_start", "missing_end"}


def test_numeric_times_without_start():
    d = pd.DataFrame({"subject": [1, 2], "months": [3.5, -1.0], "how": ["event", "cens"]})
    spec = TimeToEventSpec(name="relapse", end="months", type="how", start=None,
                           types={"event": "event", "cens": "censored"}, unit="months")
    with pytest.raises(DataValidationError, match="before the start"):
        derive_time_to_event(d, spec)


@pytest.mark.parametrize("kw,msg", [
    ({"types": {"a": "censored"}}, "exactly one type must be the event"),
    ({"types": {"a": "event", "b": "maybe"}}, "must map to"),
    ({"types": {"a": "event"}, "reasons_that_are_events": {"x": "zz"}}, "not declared"),
    ({"types": {"a": "event"}, "unit": "hours"}, "unit"),
])
def test_bad_specs(kw, msg):
    with pytest.raises(SpecError, match=msg):
        TimeToEventSpec(name="x", end="e", type="t", **kw)
    with pytest.raises(SpecError, match="unknown key"):
        TimeToEventSpec.from_dict("x", {"end": "e", "type": "t", "types": {"a": "event"},
                                        "colour": "red"})


PARTICIPANTS_TTE = """id,arm,randomised,age,rand_date,end_date,how_ended,reason
001,usual,1,34,2024-01-10,2024-03-10,readmitted,
002,peer,1,45,2024-02-01,2024-01-20,readmitted,
003,peer,1,51,2024-02-01,2025-08-01,end of study,
004,usual,1,29,2024-03-01,2024-05-01,withdrew,died
"""
ASSESSMENTS_TTE = """id,visit,qpr15
001,baseline,30
002,baseline,28
003,baseline,33
004,baseline,20
"""


def _trial_spec(tte):
    return {
        "trial": {"name": "Tiny (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit", "randomised": "randomised"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline"],
        "covariates": ["age"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60}},
        "time_to_event": {"readmission": tte},
    }


def test_trial_validation_reports_time_to_event_problems(tmp_path):
    """validate(): the trial spec's time_to_event block is checked with the rest, rows as in
    the file (row 2: before randomisation; 3: after the censoring date; 4: a death coded as
    a censoring)."""
    from peerstats.data.validation import validate

    (tmp_path / "p.csv").write_text(PARTICIPANTS_TTE)
    (tmp_path / "a.csv").write_text(ASSESSMENTS_TTE)
    tte = {"end": "end_date", "type": "how_ended", "start": "rand_date",
           "types": {"readmitted": "event", "end of study": "censored", "withdrew": "censored",
                     "died": "competing"},
           "censoring_date": "2025-06-30", "censoring_reason": "reason",
           "reasons_that_are_events": {"died": "died"}, "subject": "id"}
    report = validate(_trial_spec(tte), base_dir=tmp_path)
    f = report.failures
    assert list(zip(f.check, f.row, strict=True)) == [
        ("event_before_start", 2), ("after_censoring_date", 3), ("censoring_is_event", 4)]
    assert report.trial is None
    clean = PARTICIPANTS_TTE.replace("2024-01-20", "2024-03-20").replace(
        "2025-08-01", "2025-06-01").replace("withdrew,died", "withdrew,moved")
    (tmp_path / "p.csv").write_text(clean)
    assert validate(_trial_spec(tte), base_dir=tmp_path).ok


def test_trial_spec_time_to_event_block_is_checked(tmp_path):
    from peerstats.data.validation import validate

    (tmp_path / "p.csv").write_text(PARTICIPANTS_TTE)
    (tmp_path / "a.csv").write_text(ASSESSMENTS_TTE)
    with pytest.raises(SpecError, match="time_to_event"):
        validate(_trial_spec({"end": "end_date", "type": "how_ended",
                              "types": {"readmitted": "event"}, "colour": "red"}),
                 base_dir=tmp_path)
    with pytest.raises(SpecError, match="exactly one type must be the event"):
        validate(_trial_spec({"end": "end_date", "type": "how_ended",
                              "types": {"readmitted": "censored"}}), base_dir=tmp_path)
