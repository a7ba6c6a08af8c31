"""Bad input gets a clear error and nothing is dropped silently (issue 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataValidationError, ModelSpecificationError


def _small(trial):
    return trial[["time", "event", "status", "arm", "age", "group"]].head(80).copy()


@pytest.mark.parametrize("fn", ["km", "cox", "rmst", "cif"])
def test_negative_and_missing_times_are_listed(trial, fn):
    d = _small(trial)
    d.loc[3, "time"] = -1.0
    d.loc[5, "time"] = np.nan
    with pytest.raises(DataValidationError) as err:
        _call(fn, d)
    checks = set(err.value.failures.check)
    assert {"negative_time", "missing_time"} <= checks
    assert "1 negative follow-up time" in str(err.value)


def _call(fn, d):
    if fn == "km":
        return peerstats.kaplan_meier(d, time="time", event="event", arm="arm")
    if fn == "cox":
        return peerstats.coxph("arm", d, time="time", event="event")
    if fn == "rmst":
        return peerstats.rmst(d, time="time", event="event", arm="arm", tau=5)
    return peerstats.cumulative_incidence(d, time="time", event="status", arm="arm", times=[3])


def test_event_at_time_zero_is_refused(trial):
    d = _small(trial)
    d.loc[0, ["time", "event"]] = [0.0, 1]
    with pytest.raises(DataValidationError, match="event\\(s\\) at time 0"):
        peerstats.coxph("arm", d, time="time", event="event")
    # a censoring at time 0 is allowed (it is in no risk set)
    d.loc[0, "event"] = 0
    peerstats.kaplan_meier(d, time="time", event="event", arm="arm")


def test_unknown_event_code(trial):
    d = _small(trial)
    d.loc[2, "event"] = 2
    with pytest.raises(DataValidationError, match="not in \\[0, 1\\]"):
        peerstats.kaplan_meier(d, time="time", event="event", arm="arm")
    d.loc[2, "status"] = -1
    with pytest.raises(DataValidationError, match="event code"):
        peerstats.cumulative_incidence(d, time="time", event="status", arm="arm", times=[3])


def test_missing_covariate_is_an_error_not_a_drop(trial):
    d = _small(trial)
    d.loc[4, "age"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing values"):
        peerstats.coxph("arm + age", d, time="time", event="event")


def test_all_censored_arm_hr_not_estimable(trial):
    d = _small(trial)
    d.loc[d.arm == "peer", "event"] = 0
    with pytest.raises(ModelSpecificationError, match="not estimable"):
        peerstats.coxph("arm + age", d, time="time", event="event")
    # Kaplan-Meier still describes it: survival stays at 1 in that arm, median not reached
    km = peerstats.kaplan_meier(d, time="time", event="event", arm="arm")
    assert np.isnan(km.median.loc["peer", "median"])
    assert km.at([3]).set_index("arm").loc["peer", "survival"] == 1.0


def test_options_are_checked(trial):
    d = _small(trial)
    with pytest.raises(ValueError, match="choose one of"):
        peerstats.coxph("arm", d, time="time", event="event", ties="exact")
    with pytest.raises(ModelSpecificationError, match="not both"):
        peerstats.coxph("arm", d, time="time", event="event", cluster="group", frailty="group")
    with pytest.raises(ModelSpecificationError, match="not in the data"):
        peerstats.coxph("arm", d, time="days", event="event")
    with pytest.raises(ModelSpecificationError, match="survRM2's rule"):
        peerstats.rmst(d, time="time", event="event", arm="arm", tau=1e6)
    with pytest.raises(ModelSpecificationError, match="cause 3 has no events"):
        peerstats.fine_gray("arm", d, time="time", event="status", cause=3)


def test_boolean_events_and_categorical_arm_order(trial):
    d = _small(trial)
    d["event"] = d.event.astype(bool)
    d["arm"] = pd.Categorical(d.arm, categories=["peer", "control"])
    km = peerstats.kaplan_meier(d, time="time", event="event", arm="arm")
    assert list(km.median.index) == ["peer", "control"]


def test_frailty_too_large_is_refused_with_advice():
    rng = np.random.default_rng(0)
    n = 200_000
    d = pd.DataFrame({"arm": rng.integers(0, 2, n), "time": rng.uniform(1, 10, n),
                      "event": rng.integers(0, 2, n), "group": rng.integers(0, 200, n)})
    with pytest.raises(ModelSpecificationError, match="use cluster="):
        peerstats.coxph("arm", d, time="time", event="event", frailty="group")


def test_zph_only_for_plain_cox(trial):
    fg = peerstats.fine_gray("arm", trial, time="time", event="status")
    with pytest.raises(ModelSpecificationError, match="zph"):
        fg.zph()


def test_rmst_tau_limit_follows_survrm2():
    """survRM2 1.0.4 rmst2: tau may reach the longer arm's last time only when the shorter
    arm's last observation is an event."""
    d = pd.DataFrame({"time": [1, 2, 3, 4, 1, 2, 5, 6], "event": [1, 0, 1, 1, 1, 1, 0, 1],
                      "arm": ["a"] * 4 + ["b"] * 4})
    assert peerstats.rmst(d, time="time", event="event", arm="arm", tau=6).tau == 6
    d.loc[3, "event"] = 0  # the shorter arm now ends censored at 4
    with pytest.raises(ModelSpecificationError, match=r"\(4\)"):
        peerstats.rmst(d, time="time", event="event", arm="arm", tau=4.5)
