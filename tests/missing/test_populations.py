"""Complete-case and per-protocol populations and the compliance rule.

Expected counts come from plain pandas on the raw CSV files of the SYNTHETIC bundled trials
(not from peerstats' Trial): exact integers, tolerance 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError, SpecError
from peerstats.missing.populations import compliance


@pytest.fixture(scope="module")
def trial():
    return peerstats.datasets.load("peer_recovery")


@pytest.fixture(scope="module")
def raw():
    folder = Path(peerstats.datasets.path("peer_recovery")).parent
    part = pd.read_csv(folder / "participants.csv")
    part = part[part["randomised"] == 1]
    sess = pd.read_csv(folder / "sessions.csv").groupby("id")["attended"].sum()
    return part, sess


def test_compliance_from_sessions_and_from_a_column(trial, raw):
    part, sess = raw
    peer = part.loc[part["arm"] == "peer", "id"]
    got = compliance(trial, 5)
    assert int(got.sum()) == int((sess.reindex(peer).fillna(0) >= 5).sum())
    assert got[part.loc[part["arm"] == "usual", "id"]].sum() == 0  # one-sided non-compliance
    by_col = compliance(trial, {"column": "received"})
    assert int(by_col.sum()) == int(((part["arm"] == "peer") & (part["received"] == 1)).sum())
    by_min = compliance(trial, {"column": "age", "min": 40})
    assert int(by_min.sum()) == int(((part["arm"] == "peer") & (part["age"] >= 40)).sum())


def test_per_protocol_population(trial, raw):
    part, sess = raw
    pp = peerstats.per_protocol(trial, {"sessions": 5})
    n = pp.randomised.groupby(pp.randomised["arm"].astype(str)).size()
    peer = part.loc[part["arm"] == "peer", "id"]
    assert n["usual"] == int((part["arm"] == "usual").sum())
    assert n["peer"] == int((sess.reindex(peer).fillna(0) >= 5).sum())
    assert set(pp.assessments["subject"]) <= set(pp.randomised["subject"])
    # participants not randomised stay (CONSORT enrolment is about the trial)
    assert len(pp.participants) - len(pp.randomised) == int(
        (~trial.participants["randomised"]).sum()
    )


def test_complete_case_population(trial):
    folder = Path(peerstats.datasets.path("peer_recovery")).parent
    a = pd.read_csv(folder / "assessments.csv", usecols=["id", "visit"])
    per = a.groupby("id")["visit"].nunique()
    cc = peerstats.complete_case(trial, "qpr15")
    # every visit attended and the QPR-15 total scored (prorated at 80%) at each
    scored = trial.assessments.dropna(subset=["qpr15"]).groupby("subject")["visit"].nunique()
    assert len(cc.randomised) == int((scored == 3).sum())
    assert len(cc.randomised) <= int((per == 3).sum())


def test_bad_definitions(trial):
    with pytest.raises(SpecError, match=r"compliance definition True is not valid"):
        compliance(trial, True)
    with pytest.raises(SpecError, match=r"give exactly one of 'sessions'.*or 'column'"):
        compliance(trial, {"sessions": 5, "column": "received"})
    with pytest.raises(SpecError, match=r"'min' goes with 'column'"):
        compliance(trial, {"sessions": 5, "min": 2})
    with pytest.raises(SpecError, match=r"column 'gender' must be 0/1 \(or give 'min'\)"):
        compliance(trial, {"column": "gender"})
    with pytest.raises(SpecError, match=r"reference arm 'control' is not an arm"):
        peerstats.per_protocol(trial, 5, reference="control")
    with pytest.raises(ModelSpecificationError, match="no participant outside the reference arm"):
        peerstats.per_protocol(trial, 11)
    with pytest.raises(SpecError, match=r"'qpr' is not an outcome"):
        peerstats.complete_case(trial, "qpr")


def test_sessions_need_a_session_table():
    si = peerstats.datasets.load("social_inclusion")
    assert si.sessions is None
    with pytest.raises(SpecError, match="has no sessions table"):
        compliance(si, 5)


def test_single_arm_trial_has_no_per_protocol_comparison():
    feas = peerstats.datasets.load("icbt_feasibility")
    with pytest.raises(ModelSpecificationError, match="has one arm"):
        peerstats.per_protocol(feas, 2)


def test_remembered_compliance_computes_a_rule_once_per_block(trial, monkeypatch):
    """Issue 22: inside remembered_compliance() the same trial and rule are computed once
    (per protocol and CACE of a run); the answers equal those outside the block, are copies,
    and nothing is remembered after it."""
    from peerstats.missing import populations

    want = compliance(trial, 5)
    calls = []
    real = populations._compliance

    def counted(*args):
        calls.append(args[1].sessions)
        return real(*args)

    monkeypatch.setattr(populations, "_compliance", counted)
    with populations.remembered_compliance():
        a = compliance(trial, {"sessions": 5})
        a.iloc[:] = -1  # the caller's copy: not what the block remembers
        b = compliance(trial, 5)
        c = compliance(trial, 3)
    assert calls == [5, 3]
    pd.testing.assert_series_equal(b, want)
    assert (c >= b).all()  # at least 3 sessions: everyone with at least 5, and more
    compliance(trial, 5)
    assert calls == [5, 3, 5]  # nothing kept after the block
    assert populations._MEMO == []
