"""The estimand block, the sensitivity analyses and the report section "Estimand and missing
data" (issue 9.6), on the bundled SYNTHETIC trials.

The numbers of each sensitivity analysis are checked against outside references in
tests/missing/ (AER::ivreg for CACE, jomo for multilevel MI) and by the mi tests (mice for
pooling); here the pipeline's arrangement is checked: the primary row equals the primary
analysis exactly (same numbers, tolerance 0), the complete-case and per-protocol rows equal
peerstats.analyze on the restricted trial (tolerance 1e-12, same code path re-run), the CACE
row equals peerstats.cace, and the tipping delta lies inside the grid cell where the
conclusion changes. Bad specs raise SpecError naming the value and the allowed ones, before any
model is fitted.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from pipeline_support import ANALYSES

import peerstats
from peerstats.exceptions import SpecError
from peerstats.pipeline import read_analysis_spec, run_analysis
from peerstats.pipeline.sensitivity import check_data

BASE = {
    "analysis": {"name": "sens"},
    "trial": {"dataset": "peer_recovery"},
    "primary": {"outcome": "qpr15", "visit": "post"},
    "tables": ["outcomes"],
    "figures": [],
}


def _spec(**extra):
    return read_analysis_spec({**BASE, **extra})


@pytest.fixture(scope="module")
def trial():
    return peerstats.datasets.load("peer_recovery")


# ---------------------------------------------------------------- the peer_recovery report
def test_results_hold_the_estimand_and_every_sensitivity_analysis(example_runs, trial):
    out = example_runs["peer_recovery"]
    res = json.loads((out / "results.json").read_text())
    est = res["estimand"]
    assert est["intercurrent_events"] == [
        {
            "event": "discontinued the PEER course",
            "strategy": "treatment policy",
            "missing_data": "JR",
        }
    ]
    assert res["missing_data"]["assumption"] == "MAR"
    md = res["missing_data"]["by_arm_visit"]
    # 145 randomised to peer support; 118 with QPR-15 at post (README of the dataset)
    assert md["peer|post"]["n_randomised"] == 145 and md["peer|post"]["n_observed"] == 118
    rows = res["sensitivity"]["analyses"]
    names = {k.split("|")[0] for k in rows}
    assert names == {"primary", "mi-jr", "mi-multilevel", "complete-case", "per-protocol", "cace"}
    prim = res["primary"]["contrasts"]["peer - usual"]
    row = rows["primary|post|peer - usual"]
    for k in ("estimate", "std_error", "ci_lower", "ci_upper", "p_value"):
        assert row[k] == prim[k]
    # complete case and per protocol: the primary model on the restricted trial
    cc = peerstats.analyze(peerstats.complete_case(trial, "qpr15"), outcome="qpr15")
    pp = peerstats.analyze(peerstats.per_protocol(trial, {"sessions": 5}), outcome="qpr15")
    for key, ta in (("complete-case", cc), ("per-protocol", pp)):
        ref = ta.contrasts.set_index("visit").loc["post"]
        np.testing.assert_allclose(
            rows[f"{key}|post|peer - usual"]["estimate"], ref["estimate"], rtol=1e-12
        )
        np.testing.assert_allclose(
            rows[f"{key}|post|peer - usual"]["std_error"], ref["std_error"], rtol=1e-12
        )
    cace = peerstats.cace(trial, outcome="qpr15", compliance=5).effects.set_index("visit")
    np.testing.assert_allclose(
        rows["cace|post|peer - usual"]["estimate"], cace.loc["post", "estimate"], rtol=1e-12
    )
    # JR after discontinuation pulls the estimate towards zero compared with MAR MI
    assert (
        rows["mi-jr|post|peer - usual"]["estimate"] < rows["primary|post|peer - usual"]["estimate"]
    )
    imputed = res["sensitivity"]["imputed"]["mi-jr"]
    assert imputed["peer|post"]["n_imputed"] >= imputed["peer|post"]["n_missing"]
    tp = res["tipping_point"]["tipping-point"]
    grid = sorted(r["delta_peer"] for r in tp["table"])
    assert grid[0] <= tp["tipping_delta"] <= grid[-1]
    flip = tp["tipping"][0]
    assert flip["from_grid"] <= tp["tipping_delta"] <= flip["from_grid"] + 2


def test_tables_and_figures_are_written(example_runs):
    out = example_runs["peer_recovery"]
    sens = pd.read_csv(out / "tables" / "sensitivity.csv")
    assert {"analysis", "visit", "estimate", "ci_lower", "ci_upper", "p_value", "n"} <= set(
        sens.columns
    )
    assert (out / "tables" / "missing_data.csv").is_file()
    assert (out / "tables" / "tipping_point_tipping-point.csv").is_file()
    assert (out / "figures" / "sensitivity_forest.svg").is_file()
    assert (out / "figures" / "tipping_point.svg").is_file()


def test_report_section_uses_labels_and_states_the_assumption(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text()
    assert "<h2 id='estimand'>Estimand and missing data</h2>" in html
    sec = html[html.index("<h2 id='estimand'>") : html.index("<h2 id='models'>")]
    assert "missing at random (MAR)" in sec
    assert "jump to reference (JR)" in sec
    assert "peer support \u2212 usual services" in sec  # labels, not codes
    assert "peer - usual" not in sec
    assert "post-treatment" in sec and "3-month follow-up" in sec
    assert sec.count("data-figure=") >= 2  # forest-style figure and tipping-point figure
    assert "< 0.001" in sec or "&lt; 0.001" in sec
    assert re.search(r"data-tipping>Tipping point", sec)


def test_no_participant_identifier_reaches_the_outputs(example_runs, trial):
    ids = set(trial.participants["subject"].astype(str))
    pattern = re.compile(r"\bPR\d{3}\b")
    out = example_runs["peer_recovery"]
    for p in [out / "results.json", out / "report.html", *sorted((out / "tables").glob("*.csv"))]:
        found = set(pattern.findall(p.read_text())) & ids
        assert not found, (p.name, sorted(found)[:3])


# ---------------------------------------------------------------- bad specs
@pytest.mark.parametrize(
    "sensitivity,message",
    [
        (
            [{"method": "multiple-imputation", "strategy": "XR"}],
            r"sensitivity/0/strategy: 'XR' is not one of \['estimand', 'MAR', 'JR'",
        ),
        ([{"method": "bootstrap"}], r"sensitivity/0/method: 'bootstrap' is not one of"),
        ([{"method": "cace"}], r"sensitivity/0: method 'cace' needs a compliance rule"),
        ([{"method": "tipping-point"}], r"'tipping-point' needs a delta grid"),
        (
            [{"method": "complete-case", "n_imputations": 5}],
            r"\['n_imputations'\] do not apply to method 'complete-case'",
        ),
        (
            [{"method": "multiple-imputation", "strategy": "estimand"}],
            r"strategy 'estimand' takes the strategies of the estimand's intercurrent events",
        ),
        (
            [{"method": "multiple-imputation", "imputation": "mice"}],
            r"'mice' is not one of \['bayes', 'approx-bayes'",
        ),
        (
            [{"method": "multiple-imputation", "n_imputations": 1}],
            r"sensitivity/0/n_imputations: 1 is less than the minimum of 2",
        ),
        ([{"method": "per-protocol", "compliance": {"visits": 5}}], r"sensitivity/0/compliance"),
    ],
)
def test_bad_sensitivity_entries_are_spec_errors(sensitivity, message):
    with pytest.raises(SpecError, match=message):
        _spec(sensitivity=sensitivity)


def test_bad_estimand_entries_are_spec_errors():
    with pytest.raises(SpecError, match=r"'stopped' is not one of \['treatment policy'"):
        _spec(estimand={"intercurrent_events": [{"event": "x", "strategy": "stopped"}]})
    with pytest.raises(SpecError, match=r"missing_data: 'JR' is an imputation assumption"):
        _spec(
            estimand={
                "intercurrent_events": [
                    {"event": "x", "strategy": "composite", "missing_data": "JR"}
                ]
            }
        )
    with pytest.raises(SpecError, match=r"'composite' has no imputation-based analysis"):
        _spec(
            estimand={"intercurrent_events": [{"event": "x", "strategy": "composite"}]},
            sensitivity=[{"method": "multiple-imputation", "strategy": "estimand"}],
        )


def test_spec_errors_that_need_the_trial_spec(trial):
    cases = [
        (
            {
                "sensitivity": [
                    {"method": "multiple-imputation", "strategy": "JR", "reference": "control"}
                ]
            },
            r"sensitivity/0/reference: 'control' is not an arm; arms are \['usual', 'peer'\]",
        ),
        (
            {"sensitivity": [{"method": "tipping-point", "delta": {"course": [0, 1]}}]},
            r"sensitivity/0/delta: 'course' is not an arm",
        ),
        (
            {"sensitivity": [{"method": "tipping-point", "delta": {"peer": [0]}, "visit": "fu6"}]},
            r"sensitivity/0/visit: 'fu6' is not a post-baseline visit; those are \['post', 'fu3'\]",
        ),
        (
            {
                "estimand": {
                    "intercurrent_events": [
                        {"event": "x", "strategy": "hypothetical", "visit": "baseline"}
                    ]
                }
            },
            r"visit: 'baseline' is the baseline",
        ),
    ]
    for extra, message in cases:
        spec = _spec(**extra)
        with pytest.raises(SpecError, match=message):
            spec.check_against(trial.spec)


def test_data_errors_are_raised_before_fitting(trial):
    spec = _spec(sensitivity=[{"method": "cace", "compliance": {"column": "attended_hours"}}])
    with pytest.raises(
        SpecError,
        match=r"'attended_hours' is not in the participants table; "
        r"columns are \[",
    ):
        check_data(spec, trial)
    spec = _spec(
        estimand={
            "intercurrent_events": [
                {"event": "stopped", "strategy": "hypothetical", "column": "stopped_course"}
            ]
        }
    )
    with pytest.raises(SpecError, match=r"column: 'stopped_course' is not in the participants"):
        check_data(spec, trial)


def test_multilevel_imputation_needs_a_group_delivered_arm():
    spec = read_analysis_spec(
        {
            **BASE,
            "trial": {"dataset": "icbt_peer"},
            "primary": {"outcome": "gad7", "visit": "post"},
            "sensitivity": [{"method": "multilevel-imputation"}],
        }
    )
    ts = peerstats.read_spec(spec.trial_path)
    with pytest.raises(SpecError, match="'multilevel-imputation' needs a group-delivered arm"):
        spec.check_against(ts)


# ---------------------------------------------------------------- a small run, progress on stderr
def test_small_trial_run_with_progress_lines(tmp_path):
    """iCBT example (MMRM primary): per-protocol, CACE, MI (JR, condmean-jackknife) and a 2-D
    tipping grid; one progress line per sensitivity analysis."""
    import io

    from peerstats.pipeline import Progress

    raw = yaml_load(ANALYSES / "icbt_peer.yaml")
    raw["tables"] = ["outcomes"]
    raw["figures"] = ["tipping_point"]
    raw["responders"] = []
    raw["secondary"] = {"outcomes": []}
    raw["sensitivity"] = [
        {"method": "per-protocol", "compliance": {"sessions": 4}},
        {"method": "cace", "compliance": 4},
        # per-visit ANCOVA: the primary model refitted per participant / cell is slow (20.3)
        {
            "method": "multiple-imputation",
            "imputation": "condmean-jackknife",
            "strategy": "JR",
            "analysis_model": "ancova",
        },
        {
            "method": "tipping-point",
            "n_imputations": 5,
            "delta": {"icbt_peer": [-6, -3, 0], "icbt": [0, 3]},
            "analysis_model": "ancova",
        },
    ]
    spec = read_analysis_spec(raw, base_dir=ANALYSES)
    stream = io.StringIO()
    run = run_analysis(spec, progress=Progress(stream=stream))
    lines = [x for x in stream.getvalue().splitlines() if x.startswith("sensitivity ")]
    assert len(lines) == 4 and all("done" in x for x in lines)
    rows = run.results["sensitivity"]["analyses"]
    assert {k.split("|")[0] for k in rows} == {
        "primary",
        "per-protocol",
        "cace",
        "multiple-imputation",
    }
    tp = run.results["tipping_point"]["tipping-point"]
    assert len(tp["table"]) == 6 and tp["arms"] == ["icbt_peer", "icbt"]
    assert "tipping_point" in run.figures and "sensitivity_forest" not in run.figures
    assert "Estimand and missing data" in run.report_html


def yaml_load(path):
    import yaml

    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- intercurrent events -> ice
def test_intercurrent_events_become_the_ice_frame(trial):
    """Treatment policy: the first missing visit at or after the event (observed outcomes kept);
    hypothetical: the event visit for everyone who had it (later outcomes set aside). Expected
    participants from plain pandas on the trial's frames."""
    from peerstats.pipeline.sensitivity import _ice_frame, _post_frame

    grid, _, _ = _post_frame(trial, "qpr15")
    part = trial.randomised
    stopped = set(part.loc[part["discontinued"].fillna(False).astype(bool), "subject"].astype(str))
    wide = grid.pivot(index="subject", columns="visit", values="qpr15")[["post", "fu3"]]
    with_missing = {s for s in stopped if s in wide.index and wide.loc[s].isna().any()}
    for strategy, expected in (
        ("treatment policy", with_missing),
        ("hypothetical", stopped & set(wide.index)),
    ):
        spec = _spec(
            estimand={
                "intercurrent_events": [
                    {
                        "event": "stopped the course",
                        "column": "discontinued",
                        "strategy": strategy,
                        "missing_data": "JR",
                    }
                ]
            },
            sensitivity=[{"method": "multiple-imputation", "strategy": "estimand"}],
        )
        ice, text = _ice_frame(spec.sensitivity[0], spec.estimand, trial, grid, "usual", "qpr15")
        assert set(ice["subject"]) == expected
        assert (ice["strategy"] == "JR").all()
        assert f"({len(expected)} participant(s)" in text
        if strategy == "hypothetical":
            assert (ice["visit"] == "post").all()
        else:
            first = wide.loc[sorted(expected)].isna().idxmax(axis=1)
            assert dict(zip(ice["subject"], ice["visit"])) == first.astype(str).to_dict()
