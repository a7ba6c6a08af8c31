"""peerstats.coxph against R survival 3.5.3 ``coxph`` / ``cox.zph``.

Source of every expected number: tests/reference/r_survival/make_reference.R -> reference.json.
Tolerances (issue 17): coefficients 1e-6 relative, SEs 1e-5 relative; log-likelihoods 1e-8.
"""

from __future__ import annotations

import numpy as np
import pytest

import peerstats

ROSSI = "fin + age + race + wexp + mar + paro + prio"

CASES = {
    "rossi_efron": ("rossi", ROSSI, {"time": "week", "event": "arrest"}),
    "rossi_breslow": ("rossi", ROSSI, {"time": "week", "event": "arrest", "ties": "breslow"}),
    "rossi_strata": ("rossi", "~ fin + age + prio",
                     {"time": "week", "event": "arrest", "strata": "wexp"}),
    "trial_efron": ("trial", "arm + age", {"time": "time", "event": "event"}),
    "trial_breslow": ("trial", "arm + age", {"time": "time", "event": "event", "ties": "breslow"}),
    "trial_strata": ("trial", "arm + age", {"time": "time", "event": "event", "strata": "site"}),
    "trial_cluster": ("trial", "arm + age", {"time": "time", "event": "event",
                                             "cluster": "group"}),
    "trial_strata_cluster": ("trial", "arm + age", {"time": "time", "event": "event",
                                                    "strata": "site", "cluster": "group"}),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, rossi, trial, ref):
    data, rhs, kw = CASES[request.param]
    fit = peerstats.coxph(rhs, rossi if data == "rossi" else trial, **kw)
    return fit, ref[request.param]


def test_coefficients(case):
    fit, r = case
    np.testing.assert_allclose(fit.coef.estimate, r["estimate"], rtol=1e-6)
    np.testing.assert_allclose(fit.coef.hazard_ratio, np.exp(r["estimate"]), rtol=1e-6)


def test_standard_errors(case):
    fit, r = case
    np.testing.assert_allclose(fit.coef.std_error, r["std_error"], rtol=1e-5)


def test_ci_and_p(case):
    fit, r = case
    np.testing.assert_allclose(fit.coef.ci_lower, r["ci_lower"], rtol=1e-5)
    np.testing.assert_allclose(fit.coef.ci_upper, r["ci_upper"], rtol=1e-5)
    np.testing.assert_allclose(fit.coef.p_value, r["p_value"], rtol=1e-5)


def test_loglik(case):
    fit, r = case
    assert fit.loglik_null == pytest.approx(r["loglik"][0], abs=1e-8)
    assert fit.loglik == pytest.approx(r["loglik"][1], abs=1e-8)


def test_cluster_keeps_naive_se(trial, ref):
    fit = peerstats.coxph("arm + age", trial, time="time", event="event", cluster="group")
    np.testing.assert_allclose(fit.coef.naive_std_error, ref["trial_cluster"]["naive_se"],
                               rtol=1e-5)
    # robust and naive differ here (groups nested in arms): the robust one is reported
    assert fit.coef.std_error.iloc[0] > 1.5 * fit.coef.naive_std_error.iloc[0]


def test_cause_specific_cox_censors_other_causes(trial, ref):
    """R: coxph(Surv(time, status == 1) ~ arm + age)."""
    data = trial.assign(cause1=(trial.status == 1).astype(int))
    fit = peerstats.coxph("arm + age", data, time="time", event="cause1")
    np.testing.assert_allclose(fit.coef.estimate, ref["cause_specific"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(fit.coef.std_error, ref["cause_specific"]["std_error"], rtol=1e-5)


@pytest.mark.parametrize("ties,key", [("efron", "trial_frailty"),
                                      ("breslow", "trial_frailty_breslow")])
def test_gamma_frailty(trial, ref, ties, key):
    """R: coxph(Surv(time, event) ~ arm + age + frailty(group)), method "em".

    theta follows R's search step by step (1e-6 relative). Coefficients 2e-5 relative: R's
    inner loop stops at a relative change of 1e-9 in the penalised likelihood, ours runs to the
    optimum (our penalised likelihood is the higher one). std_error is R's se(coef).
    """
    fit = peerstats.coxph("arm + age", trial, time="time", event="event", frailty="group",
                          ties=ties)
    r = ref[key]
    assert fit.theta == pytest.approx(r["theta"], rel=1e-6)
    np.testing.assert_allclose(fit.coef.estimate, r["estimate"], rtol=2e-5)
    np.testing.assert_allclose(fit.coef.std_error, r["se"], rtol=1e-5)
    if "se2" in r:
        np.testing.assert_allclose(fit.coef.se2, r["se2"], rtol=1e-5)
        assert fit.loglik == pytest.approx(r["loglik"][1], abs=1e-3)
        np.testing.assert_allclose(fit._fit["history"][:, 0], r["history"][0], rtol=1e-5)
        np.testing.assert_allclose(fit.frailties, r["frail"], atol=1e-4)


def test_zph_matches_cox_zph(rossi, ref):
    """R: cox.zph(coxph(Surv(week, arrest) ~ ..., Rossi)), transform "km"; 1e-6 relative."""
    z = peerstats.coxph(ROSSI, rossi, time="week", event="arrest").zph()
    r = ref["rossi_zph"]
    assert list(z.table.index[-1:]) == ["GLOBAL"]
    np.testing.assert_allclose(z.table.statistic, r["chisq"], rtol=1e-6)
    np.testing.assert_allclose(z.table.df, r["df"])
    np.testing.assert_allclose(z.table.p_value, r["p"], rtol=1e-5)


def test_zph_plot_returns_axes(rossi):
    import matplotlib

    matplotlib.use("Agg")
    z = peerstats.coxph("fin + age", rossi, time="week", event="arrest").zph()
    ax = z.plot("age")
    assert "age" in ax.get_ylabel()
    assert len(ax.lines) == 1


def test_effect_record_is_a_hazard_ratio(trial):
    fit = peerstats.coxph("arm + age", trial, time="time", event="event")
    (rec,) = fit.effect_records(outcome="readmission")
    assert rec.scale == "hazard_ratio" and rec.is_ratio
    assert rec.estimate == pytest.approx(fit.coef.hazard_ratio.iloc[0])
    assert rec.ci_lower < rec.estimate < rec.ci_upper
    assert "Efron" in rec.model or "efron" in rec.model


def test_rats_litter_frailty():
    """R: coxph(Surv(time, status) ~ rx + frailty(litter), survival::rats): 100 litters."""
    import json

    import pandas as pd

    from .conftest import REF

    r = json.loads((REF / "reference.json").read_text())["rats_frailty"]
    rats = pd.read_csv(REF / "rats.csv")
    fit = peerstats.coxph("rx", rats, time="time", event="status", frailty="litter")
    assert fit.theta == pytest.approx(r["theta"], rel=1e-6)
    np.testing.assert_allclose(fit.coef.estimate, r["estimate"], rtol=2e-5)
    np.testing.assert_allclose(fit.coef.std_error, r["se"], rtol=1e-5)
    np.testing.assert_allclose(fit.coef.se2, r["se2"], rtol=1e-5)
    assert fit.loglik == pytest.approx(r["loglik"][1], abs=1e-3)


def test_veteran_factor_with_r_level_order(ref):
    """R: coxph(Surv(time, status) ~ trt + celltype + karno + age, survival::veteran); the
    factor's levels in R's order (a pandas Categorical keeps its order)."""
    import pandas as pd

    from .conftest import REF

    vet = pd.read_csv(REF / "veteran.csv")
    vet["celltype"] = pd.Categorical(vet.celltype,
                                     categories=["squamous", "smallcell", "adeno", "large"])
    fit = peerstats.coxph("trt + celltype + karno + age", vet, time="time", event="status")
    np.testing.assert_allclose(fit.coef.estimate, ref["veteran"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(fit.coef.std_error, ref["veteran"]["std_error"], rtol=1e-5)
    km = peerstats.kaplan_meier(vet, time="time", event="status", arm="trt").median
    np.testing.assert_allclose(km["median"], ref["veteran_km"]["median"])  # 52.5: midpoint rule
    np.testing.assert_allclose(km["ci_lower"], ref["veteran_km"]["lower"])
    np.testing.assert_allclose(km["ci_upper"], ref["veteran_km"]["upper"])
