"""peerstats.analyze: the primary model picked from the trial spec, with Cohen's d.

Expected numbers come from R (tests/reference/r_lmm_extra/r_lmm_extra.json, keys
``analyze_pn`` and ``analyze_mmrm``, written by make_r_lmm_extra.R from
trial_participants.csv / trial_assessments.csv beside it): nlme::lme with varIdent for the
partially nested model (Satterthwaite df from the dense REML likelihood in the script), gls us
for the MMRM, pooled baseline SD, ICC and design effect computed in R. Tolerances: 1e-4
relative (estimates, SEs, CIs, d, ICC), 1e-2 relative (df). The bundled example trials are
only checked to run and to choose the right model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import (
    DataWarning,
    ModelSpecificationError,
    PeerstatsWarning,
    SpecError,
)

REF = Path(__file__).parents[1] / "reference" / "r_lmm_extra"
R = json.loads((REF / "r_lmm_extra.json").read_text())
RTOL = 1e-4
DF_RTOL = 1e-2


def spec(group_delivered: bool) -> dict:
    columns = {"subject": "id", "arm": "arm", "visit": "visit", "site": "site"}
    if group_delivered:
        columns["group"] = "group"
    return {
        "trial": {"name": "lmm fixture trial", "design": "parallel", "synthetic": True},
        "data": {"participants": "trial_participants.csv", "assessments": "trial_assessments.csv"},
        "columns": columns,
        "arms": {
            "reference": "control",
            "levels": ["control", "peer"],
            "group_delivered": ["peer"] if group_delivered else [],
        },
        "visits": ["baseline", "v1", "v2", "v3"],
        "strata": ["site"],
        "outcomes": {"y": {"column": "y"}},
    }


@cache
def pn_result():
    trial = peerstats.load_trial(spec(True), base_dir=REF)
    return peerstats.analyze(trial, outcome="y")


@pytest.fixture(scope="module")
def mmrm_result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trial")
    pd.read_csv(REF / "trial_participants.csv").drop(columns="group").to_csv(
        tmp / "trial_participants.csv", index=False
    )
    shutil.copy(REF / "trial_assessments.csv", tmp / "trial_assessments.csv")
    trial = peerstats.load_trial(spec(False), base_dir=tmp)
    return peerstats.analyze(trial, outcome="y")


def rel(a, b, rtol, what=""):
    np.testing.assert_allclose(
        np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=0, err_msg=what
    )


def test_partially_nested_contrasts_match_r():
    res = pn_result()
    assert res.model == "partially nested lmm"
    ref = pd.DataFrame(R["analyze_pn"]["contrasts_satterthwaite"])
    ct = res.contrasts
    assert list(ct["visit"].astype(str)) == list(ref["visit"])
    for col in (
        "estimate",
        "std_error",
        "ci_lower",
        "ci_upper",
        "cohens_d",
        "d_ci_lower",
        "d_ci_upper",
    ):
        rel(ct[col], ref[col], RTOL, col)
    rel(ct["df"], ref["df"], DF_RTOL, "df")
    assert res.fit.loglik == pytest.approx(R["analyze_pn"]["loglik"], rel=RTOL)


def test_partially_nested_icc_design_effect_sd():
    res = pn_result()
    ref = R["analyze_pn"]
    rel(res.sd_baseline, ref["sd_pooled_baseline"], 1e-10, "pooled baseline SD")
    rel(res.icc, ref["icc_group"], RTOL, "group ICC")
    rel(res.mean_group_size, ref["mean_group_size"], 1e-12, "mean group size")
    rel(res.design_effect, ref["design_effect"], RTOL, "design effect")
    assert res.n_groups == 12
    assert "pooled baseline SD" in res.sd_description


def test_d_is_difference_over_sd():
    ct = pn_result().contrasts
    sd = pn_result().sd_baseline
    np.testing.assert_allclose(ct["cohens_d"], ct["estimate"] / sd, rtol=1e-14)
    np.testing.assert_allclose(ct["d_ci_lower"], ct["ci_lower"] / sd, rtol=1e-14)


def test_mmrm_when_not_group_delivered(mmrm_result):
    res = mmrm_result
    assert res.model == "mmrm"
    assert res.icc is None and res.design_effect is None
    ref = pd.DataFrame(R["analyze_mmrm"]["contrasts"])
    rel(res.contrasts["estimate"], ref["estimate"], RTOL, "estimate")
    rel(res.contrasts["std_error"], ref["std_error"], RTOL, "std_error")
    rel(res.contrasts["cohens_d"], ref["cohens_d"], RTOL, "d")
    assert res.fit.loglik == pytest.approx(R["analyze_mmrm"]["loglik"], rel=RTOL)


def test_n_analysed_matches_model():
    res = pn_result()
    a = pd.read_csv(REF / "trial_assessments.csv")
    post = a[(a.visit != "baseline") & a.y.notna()]
    assert res.n_obs == len(post) == res.fit.n_obs
    p = pd.read_csv(REF / "trial_participants.csv").set_index("id")
    per_arm = post.groupby(p.loc[post.id, "arm"].to_numpy())["id"].nunique()
    assert res.n_analysed.to_dict() == per_arm.to_dict()


def test_display():
    res = pn_result()
    text = res.summary()
    assert "Cohen's d" in text and "design effect" in text
    assert repr(res) == text
    assert "<table" in res._repr_html_()
    assert list(res.to_frame().columns[:3]) == ["visit", "contrast", "estimate"]


def test_unknown_outcome():
    trial = peerstats.load_trial(spec(True), base_dir=REF)
    with pytest.raises(SpecError, match=r"'qpr' is not an outcome; outcomes are \['y'\]"):
        peerstats.analyze(trial, outcome="qpr")


# ---- bundled example trials -------------------------------------------------------------------
def _datasets():
    from peerstats import datasets

    return [n for n in datasets.list_datasets() if n != "peer_supporter_survey"]


@pytest.mark.parametrize("name", _datasets())
def test_runs_on_every_bundled_trial(name):
    from peerstats import datasets

    trial = datasets.load(name)
    for outcome in trial.spec.outcome_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PeerstatsWarning)
            res = peerstats.analyze(trial, outcome=outcome)
        assert len(res.contrasts) >= 1
        assert np.isfinite(res.contrasts["estimate"]).all()
        assert np.isfinite(res.contrasts["cohens_d"]).all()
        if trial.spec.design == "single-arm":
            assert res.model == "single-arm mmrm"
        elif trial.spec.arms.group_delivered:
            assert res.model == "partially nested lmm"
            assert res.icc is not None and 0 <= res.icc < 1
            assert res.design_effect == pytest.approx(1 + (res.mean_group_size - 1) * res.icc)
        else:
            assert res.model == "mmrm"


def test_missing_baseline_is_reported_not_silent():
    from peerstats import datasets

    trial = datasets.load("social_inclusion")
    a = trial.assessments
    missing = a[
        (a.visit.astype(str) != trial.spec.visits[0]) & a["sis"].notna() & a["sis_baseline"].isna()
    ]
    if missing.empty:
        pytest.skip("the bundled data have no post-baseline score without baseline")
    with pytest.warns(DataWarning, match="without a baseline"):
        res = peerstats.analyze(trial, outcome="sis")
    assert any("without a baseline" in n for n in res.notes)


def test_single_post_visit_partially_nested_matches_r(tmp_path):
    # baseline + v3 only, no strata: the Candlish et al. (2018) model of R's pn_het_single
    a = pd.read_csv(REF / "trial_assessments.csv")
    a[a.visit.isin(["baseline", "v3"])].to_csv(tmp_path / "trial_assessments.csv", index=False)
    shutil.copy(REF / "trial_participants.csv", tmp_path / "trial_participants.csv")
    sp = spec(True)
    sp["visits"] = ["baseline", "v3"]
    sp["strata"] = []
    trial = peerstats.load_trial(sp, base_dir=tmp_path)
    res = peerstats.analyze(trial, outcome="y")
    ref = R["pn_het_single"]
    assert "(1 | subject)" not in res.formula
    assert res.model == "partially nested lmm"
    assert list(res.contrasts["visit"].astype(str)) == ["v3"]
    coef = pd.DataFrame(ref["coef"]).set_index("term").loc["armpeer"]
    rel(res.contrasts["estimate"], [coef["estimate"]], RTOL, "estimate")
    rel(res.contrasts["std_error"], [coef["std_error"]], RTOL, "std_error")
    rel(res.contrasts["df"], [coef["df_satterthwaite"]], DF_RTOL, "df")
    vc = ref["varcomp"]
    rel(res.icc, vc["group_var"] / (vc["group_var"] + vc["resid_var_peer"]), RTOL, "icc")
    rel(res.sd_baseline, R["analyze_pn"]["sd_pooled_baseline"], 1e-10, "sd")


def test_group_delivered_without_groups_is_an_error(tmp_path):
    p = pd.read_csv(REF / "trial_participants.csv")
    p["group"] = np.nan
    p.to_csv(tmp_path / "trial_participants.csv", index=False)
    shutil.copy(REF / "trial_assessments.csv", tmp_path / "trial_assessments.csv")
    try:
        trial = peerstats.load_trial(spec(True), base_dir=tmp_path)
    except peerstats.PeerstatsError:
        pytest.skip("the data layer already refuses a group-delivered arm without groups")
    with pytest.raises(ModelSpecificationError, match="no analysed participant has a delivery"):
        peerstats.analyze(trial, outcome="y")


def test_single_arm_change_by_hand(tmp_path):
    # complete data, two visits: the MMRM change from baseline is the paired mean difference,
    # with SE sd(diff) / sqrt(n) and df n - 1; d = mean change / SD(baseline)
    pre = np.array([12.0, 15, 9, 11, 14, 10, 13])
    post = np.array([9.0, 14, 6, 10, 9, 8, 12])
    ids = [f"F{i}" for i in range(len(pre))]
    pd.DataFrame({"id": ids, "arm": "peer"}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame(
        {"id": ids * 2, "visit": ["pre"] * 7 + ["post"] * 7, "y": np.r_[pre, post]}
    ).to_csv(tmp_path / "a.csv", index=False)
    sp = {
        "trial": {"name": "single", "design": "single-arm", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"levels": ["peer"]},
        "visits": ["pre", "post"],
        "outcomes": {"y": {"column": "y"}},
    }
    res = peerstats.analyze(peerstats.load_trial(sp, base_dir=tmp_path), outcome="y")
    diff = post - pre
    n = len(diff)
    row = res.contrasts.iloc[0]
    assert res.model == "single-arm mmrm"
    assert row["estimate"] == pytest.approx(diff.mean(), rel=1e-8)
    assert row["std_error"] == pytest.approx(diff.std(ddof=1) / np.sqrt(n), rel=1e-6)
    assert row["df"] == pytest.approx(n - 1, rel=1e-4)
    assert res.sd_baseline == pytest.approx(pre.std(ddof=1), rel=1e-12)
    assert row["cohens_d"] == pytest.approx(diff.mean() / pre.std(ddof=1), rel=1e-8)


def test_missing_outcome_rows_are_counted_by_the_model_not_pre_dropped():
    """Post-baseline rows with a baseline but no outcome reach the model, which drops and counts
    them (fit.n_dropped), as SAS/R report; counted here with pandas."""
    import warnings

    import peerstats

    trial = peerstats.datasets.load("peer_recovery")
    a = trial.assessments
    post = a[(a["visit"] != "baseline") & a["qpr15_baseline"].notna()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", peerstats.DataWarning)
        res = peerstats.analyze(trial, outcome="qpr15")
    assert res.fit.n_dropped == int(post["qpr15"].isna().sum()) > 0
    assert res.fit.n_obs == int(post["qpr15"].notna().sum())
