"""Binary and count outcomes through the outcome-type registry (issues 16.5 and 23.1).

Reference values: ``tests/reference/r_binary_count/r_binary_count.json``, written by
``make_r_binary_count.R`` (R ``glm``, ``MASS::glm.nb``, ``sandwich::vcovCL(type = "HC1")`` and
``emmeans(..., counterfactuals = "arm")``) on the bundled SYNTHETIC peer_recovery trial.
Tolerances: estimates 1e-6 relative (both fits converge to 1e-12), standard errors 1e-5
relative, log-likelihoods 1e-6 absolute, theta 1e-4 relative (R's glm.nb alternates theta and
IRLS steps to its own tolerance).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataValidationError, ModelSpecificationError, SpecError
from peerstats.pipeline import read_analysis_spec
from peerstats.pipeline._display import directions, display_labels
from peerstats.pipeline.outcomes import REGISTRY, Context, outcome_type
from peerstats.pipeline.outcomes._data import analysis_data

REF = json.loads(
    (
        Path(__file__).resolve().parents[1] / "reference" / "r_binary_count" / "r_binary_count.json"
    ).read_text()
)
R_TERM = {"Intercept": "(Intercept)", "arm[T.peer]": "armpeer"}

READMISSION = {
    "type": "binary",
    "column": "readmitted_12m",
    "label": "Readmission within 12 months",
    "event": "readmissions",
    "higher_is_better": False,
}
BED_DAYS = {
    "type": "count",
    "column": "bed_days",
    "exposure": "followup_days",
    "event": "bed-days",
    "higher_is_better": False,
}


def _spec(**outcomes):
    return read_analysis_spec(
        {
            "analysis": {"name": "t"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
            "secondary": {"outcomes": list(outcomes)},
            "outcomes": outcomes,
            "labels": {"arms": {"peer": "peer support", "usual": "usual services"}},
        }
    )


@pytest.fixture(scope="module")
def trial():
    return peerstats.load_trial(peerstats.datasets.path("peer_recovery"))


def _context(spec, trial):
    rand = trial.randomised
    return Context(
        spec=spec,
        trial=trial,
        labels=display_labels(trial, spec),
        directions=directions(trial),
        n_randomised=rand["arm"].astype(str).value_counts().to_dict(),
    )


def _fit(trial, name, definition):
    spec = _spec(**{name: definition})
    spec.check_against(trial.spec)
    adapter = outcome_type(definition["type"])
    fitted = adapter.fit(trial, name, spec)
    return adapter, fitted, _context(spec, trial)


def _r_term(term: str) -> str:
    return R_TERM.get(term, term.replace("site[T.", "site").rstrip("]"))


@pytest.mark.parametrize("vcov", ["model", "cluster"])
def test_logistic_matches_r_glm(trial, vcov):
    _, fitted, _ = _fit(trial, "readmission", {**READMISSION, "vcov": vcov})
    ref = REF["binary"][f"coef_{vcov}"]
    coef = fitted.fit.coef
    assert len(coef) == len(ref)
    for term, row in coef.iterrows():
        r = ref[_r_term(term)]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-6, abs=1e-7)
        assert row["std_error"] == pytest.approx(r["std_error"], rel=1e-5)
    assert fitted.fit.loglik == pytest.approx(REF["binary"]["loglik"], abs=1e-6)
    assert fitted.fit.n_obs == REF["binary"]["n"]


@pytest.mark.parametrize("vcov", ["model", "cluster"])
@pytest.mark.parametrize("scale", ["risk_difference", "risk_ratio"])
def test_standardised_risks_match_emmeans_counterfactuals(trial, vcov, scale):
    adapter, fitted, ctx = _fit(trial, "readmission", {**READMISSION, "vcov": vcov, "scale": scale})
    (rec,) = adapter.records(fitted, ctx)
    ref = REF["binary"][f"marginal_{vcov}"]
    assert rec.extra["risk_usual"] == pytest.approx(ref["risk_usual"], rel=1e-6)
    assert rec.extra["risk_peer"] == pytest.approx(ref["risk_peer"], rel=1e-6)
    if scale == "risk_difference":
        assert rec.estimate == pytest.approx(ref["risk_difference"], rel=1e-6)
        assert rec.std_error == pytest.approx(ref["risk_difference_se"], rel=1e-5)
    else:
        assert math.log(rec.estimate) == pytest.approx(ref["log_risk_ratio"], rel=1e-6)
        assert rec.std_error == pytest.approx(ref["log_risk_ratio_se"], rel=1e-5)
        assert rec.ci_lower < rec.estimate < rec.ci_upper < 1  # a ratio, on its own scale
    assert rec.scale == scale and rec.contrast == "peer - usual"


@pytest.mark.parametrize("vcov", ["model", "cluster"])
def test_negative_binomial_with_offset_matches_glm_nb(trial, vcov):
    adapter, fitted, ctx = _fit(trial, "bed_days", {**BED_DAYS, "vcov": vcov})
    ref = REF["count"]
    for term, row in fitted.fit.coef.iterrows():
        r = ref[f"coef_{vcov}"][_r_term(term)]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-6, abs=1e-7)
        assert row["std_error"] == pytest.approx(r["std_error"], rel=1e-5)
    assert fitted.fit.theta == pytest.approx(ref["theta"], rel=1e-4)
    assert fitted.fit.loglik == pytest.approx(ref["loglik"], abs=1e-6)
    (rec,) = adapter.records(fitted, ctx)
    b = ref[f"coef_{vcov}"]["armpeer"]["estimate"]
    assert rec.scale == "rate_ratio" and rec.estimate == pytest.approx(math.exp(b), rel=1e-6)
    assert "offset(log(followup_days))" in fitted.formula


def test_poisson_matches_r_glm(trial):
    _, fitted, _ = _fit(trial, "bed_days", {**BED_DAYS, "model": "poisson"})
    for term, row in fitted.fit.coef.iterrows():
        r = REF["count"]["poisson_coef_model"][_r_term(term)]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-6, abs=1e-7)
        assert row["std_error"] == pytest.approx(r["std_error"], rel=1e-5)
    assert fitted.fit.loglik == pytest.approx(REF["count"]["poisson_loglik"], abs=1e-6)


def test_record_words_per_arm_counts_and_consort(trial):
    adapter, fitted, ctx = _fit(trial, "readmission", READMISSION)
    (rec,) = adapter.records(fitted, ctx)
    rand = trial.randomised
    y = rand.set_index("subject")["readmitted_12m"]
    arm = rand.set_index("subject")["arm"].astype(str)
    for a in ("usual", "peer"):
        obs = y[(arm == a) & y.notna()]
        assert rec.extra[f"n_{a}"] == len(obs) and rec.extra[f"events_{a}"] == int(obs.sum())
        c = fitted.consort[a]
        assert c["randomised"] == int((arm == a).sum())
        assert c["analysed"] == len(obs)
        assert c["analysed"] + sum(c["not_analysed"].values()) == c["randomised"]
    assert rec.direction == "fewer readmissions favour peer support"
    assert rec.comparison == "peer support vs usual services"
    assert rec.n_analysed == fitted.fit.n_subjects and rec.n_randomised == len(rand)
    assert rec.visit is None and rec.outcome_type == "binary" and rec.is_ratio
    table = adapter.table([rec], ctx)
    assert "fewer readmissions favour peer support" in table.render("html")


def test_binary_derived_from_a_scale_threshold(trial):
    d = {"type": "binary", "from": {"outcome": "wsas", "below": 10}, "visit": "post"}
    spec = _spec(wsas_low=d)
    spec.check_against(trial.spec)
    frame, _ = analysis_data(trial, spec.outcome_defs["wsas_low"], spec)
    a = trial.assessments
    post = a[a["visit"].astype(str) == "post"].set_index("subject")["wsas"]
    x = post.reindex(frame["subject"])
    np.testing.assert_array_equal(frame["y"].isna().to_numpy(), x.isna().to_numpy())
    np.testing.assert_array_equal(frame["y"].dropna().to_numpy(), (x.dropna() < 10).to_numpy(float))


def _fake(trial, **columns):
    part = trial.randomised.copy()
    for k, v in columns.items():
        part[k] = v
    return SimpleNamespace(spec=trial.spec, randomised=part, assessments=trial.assessments)


def test_values_that_are_not_binary_are_listed(trial):
    spec = _spec(readmission=READMISSION)
    vals = trial.randomised["readmitted_12m"].astype(object).copy()
    vals.iloc[[0, 3]] = ["maybe", 2]
    with pytest.raises(DataValidationError) as exc:
        analysis_data(_fake(trial, readmitted_12m=vals), spec.outcome_defs["readmission"], spec)
    assert list(exc.value.failures["check"]) == ["binary", "binary"]
    assert set(exc.value.failures["value"]) == {"maybe", "2"}


def test_yes_no_text_is_read_as_one_and_zero(trial):
    spec = _spec(readmission=READMISSION)
    y = trial.randomised["readmitted_12m"]
    text = y.map({1.0: "Yes", 0.0: "no"})
    frame, _ = analysis_data(_fake(trial, readmitted_12m=text), spec.outcome_defs["readmission"], spec)
    np.testing.assert_array_equal(frame["y"].to_numpy(), y.to_numpy())


@pytest.mark.parametrize("bad", [-1, 2.5, "many"])
def test_counts_must_be_non_negative_whole_numbers(trial, bad):
    spec = _spec(bed_days=BED_DAYS)
    vals = trial.randomised["bed_days"].astype(object).copy()
    vals.iloc[1] = bad
    with pytest.raises(DataValidationError, match="non-negative whole numbers"):
        analysis_data(_fake(trial, bed_days=vals), spec.outcome_defs["bed_days"], spec)


@pytest.mark.parametrize("bad", [0, np.nan])
def test_zero_or_missing_exposure_is_refused(trial, bad):
    spec = _spec(bed_days=BED_DAYS)
    e = trial.randomised["followup_days"].astype(float).copy()
    known = np.flatnonzero(trial.randomised["bed_days"].notna().to_numpy())[0]
    e.iloc[known] = bad
    with pytest.raises(DataValidationError) as exc:
        analysis_data(_fake(trial, followup_days=e), spec.outcome_defs["bed_days"], spec)
    assert list(exc.value.failures["check"]) == ["exposure"]


def test_an_arm_without_events_is_not_estimable(trial):
    from peerstats.pipeline.outcomes._glm import fit_glm

    spec = _spec(readmission=READMISSION)
    y = trial.randomised["readmitted_12m"].where(trial.randomised["arm"].astype(str) != "peer", 0)
    frame, terms = analysis_data(_fake(trial, readmitted_12m=y), spec.outcome_defs["readmission"], spec)
    with pytest.raises(ModelSpecificationError, match="'peer' has no events"):
        fit_glm(frame, terms, family="binomial")


def test_glmm_is_accepted_and_an_arm_without_events_is_refused(trial):
    """``model: glmm`` passes the spec check (the fit itself: test_glmm_outcome.py); an arm
    without events is refused before fitting, as for the GLM."""
    from peerstats.pipeline.outcomes._glm import fit_glmm

    spec = _spec(readmission={**READMISSION, "model": "glmm"})
    assert not spec.check_against(trial.spec)
    y = trial.randomised["readmitted_12m"].where(trial.randomised["arm"].astype(str) != "peer", 0)
    frame, terms = analysis_data(_fake(trial, readmitted_12m=y), spec.outcome_defs["readmission"], spec)
    with pytest.raises(ModelSpecificationError, match="'peer' has no events"):
        fit_glmm(frame, terms, family="binomial")


def test_gee_by_delivery_group_matches_geepack(trial):
    """geepack::geeglm, exchangeable within delivery groups, robust SE (1e-4 relative: both
    iterate to their own tolerances)."""
    adapter, fitted, ctx = _fit(trial, "readmission", {**READMISSION, "model": "gee"})
    for term, row in fitted.fit.coef.iterrows():
        r = REF["binary"]["gee"][_r_term(term)]
        assert row["estimate"] == pytest.approx(r["estimate"], rel=1e-4, abs=1e-6)
        assert row["std_error"] == pytest.approx(r["std_error"], rel=1e-4)
    (rec,) = adapter.records(fitted, ctx)
    b = REF["binary"]["gee"]["armpeer"]["estimate"]
    assert rec.scale == "odds_ratio" and rec.estimate == pytest.approx(math.exp(b), rel=1e-4)
    assert "generalised estimating equations" in adapter.model_record(fitted, ctx.spec)["model"]


def test_gee_vcov_choices_are_checked():
    with pytest.raises(SpecError, match="a GEE's covariance is 'robust' or 'bias-reduced'"):
        _spec(readmission={**READMISSION, "model": "gee", "vcov": "cluster"})


def test_spec_problems_are_collected():
    with pytest.raises(SpecError) as exc:
        _spec(readmission={"type": "binary", "column": "x", "scale": "rate_ratio", "exposure": "d"})
    msg = str(exc.value)
    assert "is not a binary scale" in msg and "only count outcomes have an exposure" in msg
    with pytest.raises(SpecError, match="type"):
        _spec(readmission={"type": "ordinal", "column": "x"})


def test_registry_lists_the_types_and_refuses_unknown_ones():
    assert {"continuous", "binary", "count"} <= set(REGISTRY)
    with pytest.raises(SpecError, match="is not an outcome type; types are"):
        outcome_type("survival")


def test_bundled_run_reports_binary_and_count_outcomes(example_runs):
    folder = example_runs["peer_recovery"]
    res = json.loads((folder / "results.json").read_text())
    read = res["effects"]["readmission||peer - usual"]
    assert read["scale"] == "odds_ratio" and read["estimate"] < 1
    assert res["effects"]["bed_days||peer - usual"]["scale"] == "rate_ratio"
    assert {"readmission", "bed_days"} <= set(res["consort_outcomes"])  # and time to event
    html = (folder / "report.html").read_text()
    assert "fewer readmissions favour peer support" in html
    assert "forest_ratios" in html
    tidy = pd.read_csv(folder / "tables" / "outcomes_binary.csv")
    assert list(tidy["outcome"]) == ["readmission"]


def test_reliable_improvement_follows_jacobson_truax(trial):
    """RC = (post - baseline) / (SD_baseline sqrt(2) sqrt(1 - r)) (Jacobson & Truax 1991),
    SD_baseline pooled over arms; WSAS: lower is better, so improvement is RC < -1.96."""
    d = {"type": "binary", "from": {"outcome": "wsas", "reliable_improvement": 0.8}, "visit": "post"}
    spec = _spec(wsas_improved=d)
    frame, _ = analysis_data(trial, spec.outcome_defs["wsas_improved"], spec)
    a = trial.assessments
    base = a[a["visit"].astype(str) == "baseline"]
    groups = [g["wsas"].dropna().to_numpy() for _, g in base.groupby(base["arm"].astype(str))]
    sd = math.sqrt(
        sum((len(g) - 1) * g.var(ddof=1) for g in groups) / sum(len(g) - 1 for g in groups)
    )
    wide = a.pivot_table(index="subject", columns="visit", values="wsas", observed=True)
    change = (wide["post"] - wide["baseline"]).reindex(frame["subject"])
    expected = (change / (sd * math.sqrt(2) * math.sqrt(0.2)) < -1.96).astype(float)
    expected[change.isna()] = np.nan
    np.testing.assert_array_equal(frame["y"].to_numpy(), expected.to_numpy())
    assert 0 < np.nansum(frame["y"]) < frame["y"].notna().sum()
