"""kaplan_meier and rmst against R survival 3.5.3 (survfit, summary.survfit, survdiff) and
survRM2 1.0.4 (rmst2). Source: tests/reference/r_survival/reference.json."""

from __future__ import annotations

import numpy as np
import pytest

import peerstats

from .conftest import as_float


@pytest.fixture(scope="module")
def km(trial):
    return peerstats.kaplan_meier(trial, time="time", event="event", arm="arm")


def test_median_and_ci_with_not_reached(km, ref):
    r = ref["km"]
    np.testing.assert_allclose(km.median["median"], as_float(r["median"]), rtol=1e-12)
    np.testing.assert_allclose(km.median["ci_lower"], as_float(r["median_lower"]), rtol=1e-12)
    # the upper limit is not reached in either arm: NaN, as R's NA
    assert km.median["ci_upper"].isna().all() and np.isnan(as_float(r["median_upper"])).all()


def test_median_ci_reached(trial, ref):
    data = trial.assign(any_event=(trial.status > 0).astype(int))
    m = peerstats.kaplan_meier(data, time="time", event="any_event", arm="arm").median
    r = ref["km_any"]
    np.testing.assert_allclose(m["median"], r["median"], rtol=1e-12)
    np.testing.assert_allclose(m["ci_lower"], r["lower"], rtol=1e-12)
    np.testing.assert_allclose(m["ci_upper"], r["upper"], rtol=1e-12)


def test_at_times_greenwood_se_of_survival(km, ref):
    """R summary(survfit, times=)$std.err is the SE of S(t) (not of log S): 1e-10 absolute."""
    r = ref["km"]
    at = km.at([3, 6, 12, 18])
    assert list(at.columns[:6]) == ["arm", "time", "survival", "std_error", "ci_lower",
                                    "ci_upper"]
    assert list(at.arm) == r["at_arm"]
    for col, key in [("survival", "surv"), ("std_error", "std_err"), ("ci_lower", "lower"),
                     ("ci_upper", "upper"), ("n_risk", "n_risk")]:
        np.testing.assert_allclose(at[col], r[key], atol=1e-10)


def test_logrank(trial, rossi, ref, km):
    for key in ("statistic", "p_value"):
        assert km.logrank[key] == pytest.approx(ref["logrank"][key], rel=1e-10)
    assert km.logrank["df"] == 1
    strat = peerstats.kaplan_meier(trial, time="time", event="event", arm="arm", strata="site")
    assert strat.logrank["statistic"] == pytest.approx(ref["logrank_strata"]["statistic"],
                                                       rel=1e-10)
    r2 = peerstats.kaplan_meier(rossi, time="week", event="arrest", arm="fin")
    assert r2.logrank["statistic"] == pytest.approx(ref["logrank_rossi"]["statistic"], rel=1e-10)
    assert r2.median["median"].isna().all()  # R: NA (median not reached)


def test_plot_has_numbers_at_risk(km):
    import matplotlib

    matplotlib.use("Agg")
    ax = km.plot(risk_times=[0, 6, 12, 18, 24])
    texts = [t.get_text() for t in ax.texts]
    assert "Number at risk" in texts and "200" in texts
    assert len(ax.get_lines()) == 2


@pytest.mark.parametrize("key,data,kw", [
    ("rmst", "trial", {"time": "time", "event": "event", "arm": "arm", "tau": 18}),
    ("rmst_rossi", "rossi", {"time": "week", "event": "arrest", "arm": "fin", "tau": 40}),
])
def test_rmst_matches_survrm2(key, data, kw, trial, rossi, ref):
    """survRM2::rmst2: per-arm RMST and SE, difference and ratio with CI and p; 1e-10."""
    res = peerstats.rmst(trial if data == "trial" else rossi, **kw)
    r = ref[key]
    np.testing.assert_allclose(res.by_arm.rmst, r["rmst"], rtol=1e-10)
    np.testing.assert_allclose(res.by_arm.std_error, r["se"], rtol=1e-10)
    est, lo, hi, p = r["unadjusted"]
    for i, s in enumerate([res.difference, res.ratio]):
        np.testing.assert_allclose(
            [s.estimate, s.ci_lower, s.ci_upper, s.p_value], [est[i], lo[i], hi[i], p[i]],
            rtol=1e-10)
    recs = res.effect_records(outcome="time to readmission")
    assert [r.scale for r in recs] == ["rmst_difference", "rmst_ratio"]


def test_curve_reaching_zero(ref):
    """R: survfit(Surv(c(1,2,3,4), c(1,0,1,1)) ~ 1): std.err NaN and CI NA at S = 0."""
    import pandas as pd

    from .conftest import as_float

    r = ref["km_small"]
    d = pd.DataFrame({"t": [1, 2, 3, 4], "e": [1, 0, 1, 1], "arm": "a"})
    km = peerstats.kaplan_meier(d, time="t", event="e", arm="arm")
    at = km.at(r["time"])
    np.testing.assert_allclose(at.survival, r["surv"], rtol=1e-12)
    np.testing.assert_allclose(at.std_error, as_float(r["std_err"]), rtol=1e-12)
    np.testing.assert_allclose(at.ci_lower, as_float(r["lower"]), rtol=1e-12)
    np.testing.assert_allclose(at.ci_upper, as_float(r["upper"]), rtol=1e-12)
    np.testing.assert_allclose(km.median.loc["a", ["median", "ci_lower", "ci_upper"]].to_numpy(
        dtype=float), as_float(r["median"]))


def test_logrank_four_groups(trial, ref):
    """R: survdiff(Surv(time, event) ~ site) and ~ site + strata(arm): 3 df."""
    r = ref["logrank_sites"]
    lr = peerstats.kaplan_meier(trial, time="time", event="event", arm="site").logrank
    assert lr.statistic == pytest.approx(r["statistic"], rel=1e-10) and lr.df == 3
    lr2 = peerstats.kaplan_meier(trial, time="time", event="event", arm="site",
                                 strata="arm").logrank
    assert lr2.statistic == pytest.approx(r["strata_arm"], rel=1e-10)
