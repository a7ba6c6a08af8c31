"""The time_to_event outcome type through the registry (issue 17): a copy of the peer_recovery
example with a synthetic time to first admission added (seeded; no real participants)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.pipeline import run_analysis


@pytest.fixture(scope="module")
def tte_trial(tmp_path_factory):
    from peerstats import datasets

    dst = tmp_path_factory.mktemp("tte") / "trial"
    shutil.copytree(datasets.path("peer_recovery").parent, dst)
    part = pd.read_csv(dst / "participants.csv", dtype=str)
    rng = np.random.default_rng(17)
    fu = pd.to_numeric(part["followup_days"], errors="coerce")
    readm = pd.to_numeric(part["readmitted_12m"], errors="coerce")
    days = np.where(readm == 1, np.ceil(fu * rng.uniform(0.05, 1, len(part))), fu)
    part["days_to_admission"] = pd.Series(days).where(fu.notna()).map(
        lambda v: "" if pd.isna(v) else str(int(v)))
    part["admission_status"] = readm.map(lambda v: "" if pd.isna(v) else str(int(v)))
    part.to_csv(dst / "participants.csv", index=False)
    return dst / "spec.yaml", part


def _spec(trial, **outcome):
    return {
        "analysis": {"name": "tte"},
        "trial": str(trial),
        "primary": {"outcome": "qpr15", "visit": "post"},
        "secondary": {"outcomes": ["admission"]},
        "outcomes": {"admission": {"type": "time_to_event", "column": "days_to_admission",
                                   "status": "admission_status", "label": "Time to admission",
                                   "event": "admissions", "higher_is_better": False,
                                   **outcome}},
        "tables": ["outcomes"],
        "figures": ["trajectories"],
    }


def _effect(run):
    return run.results["effects"]["admission||peer - usual"]


def test_cox_through_the_pipeline_equals_coxph(tte_trial):
    trial, part = tte_trial
    run = run_analysis(_spec(trial, model="cox", vcov="cluster"))
    rec = _effect(run)
    assert rec["scale"] == "hazard_ratio"
    # the same model called directly on the randomised participants with a follow-up
    used = part[(part.randomised == "1") & (part.days_to_admission != "")
                & (part.admission_status != "")].copy()
    used["time"] = used.days_to_admission.astype(float)
    used["event"] = used.admission_status.astype(int)
    used["arm"] = pd.Categorical(used.arm, categories=["usual", "peer"])
    used["cluster"] = np.where(used.group.notna(), "g:" + used.group.astype(str), "s:" + used.id)
    direct = peerstats.coxph("arm + site", used, time="time", event="event", cluster="cluster")
    assert rec["estimate"] == pytest.approx(direct.coef.hazard_ratio.iloc[0], rel=1e-10)
    assert rec["ci_upper"] == pytest.approx(direct.coef.ci_upper.iloc[0], rel=1e-10)
    assert rec["n_analysed"] == len(used)
    assert rec["events_peer"] == int(used.event[used.arm == "peer"].sum())
    assert "outcomes_time_to_event" in run.tables
    assert "consort_outcomes" in run.tables
    assert "Cox proportional hazards" in run.report_html
    assert "survival_admission" in run.figures and "Number at risk" in run.figures[
        "survival_admission"]


def test_rmst_and_fine_gray(tte_trial):
    trial, _ = tte_trial
    rm = _effect(run_analysis(_spec(trial, model="rmst", tau=300)))
    assert rm["scale"] == "rmst_difference" and rm["estimate"] > 0  # fewer, later admissions
    fg = _effect(run_analysis(_spec(trial, model="fine_gray")))
    assert fg["scale"] == "subdistribution_hazard_ratio"


def test_spec_problems_are_reported(tte_trial):
    trial, _ = tte_trial
    with pytest.raises(peerstats.SpecError, match="tau"):
        run_analysis(_spec(trial, model="rmst"))
