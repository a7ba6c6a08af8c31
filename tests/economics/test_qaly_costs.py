"""QALYs (area under the curve) and costs (resource use x unit costs): hand-computed values,
the stated rules for dates, gaps, discounting and bad input, and the figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataValidationError, SpecError


def _long():
    return pd.DataFrame({
        "id": [1, 1, 1, 2, 2, 2, 3, 3, 3],
        "day": [0, 182, 365] * 3,
        "u": [0.5, 0.7, 0.9, 0.6, np.nan, 0.8, 1.0, 1.0, 1.0],
    })  # fmt: skip


def test_qalys_are_the_trapezoid_area_in_years():
    q = peerstats.qalys(_long(), subject="id", utility="u", time="day")
    # id 1: (0.5+0.7)/2*182 + (0.7+0.9)/2*183 = 109.2 + 146.4 = 255.6 days
    assert q.loc[1, "qaly"] == pytest.approx(255.6 / 365.25)
    assert np.isnan(q.loc[2, "qaly"])  # a gap is never interpolated
    assert q.loc[3, "qaly"] == pytest.approx(365 / 365.25)
    assert q.loc[1, "baseline_utility"] == 0.5 and q.loc[2, "n_assessments"] == 3


def test_actual_dates_are_used_when_present():
    d = _long()
    d["date"] = pd.to_datetime(["2025-01-01", "2025-08-01", "2026-01-01"] * 3)
    d.loc[8, "date"] = pd.NaT  # id 3's last visit: scheduled day 365 is used
    q = peerstats.qalys(d, subject="id", utility="u", time="day", date="date")
    # id 1: Jan 1 -> Aug 1 = 212 days, Aug 1 -> Jan 1 = 153 days
    assert q.loc[1, "qaly"] == pytest.approx(
        ((0.5 + 0.7) / 2 * 212 + (0.7 + 0.9) / 2 * 153) / 365.25
    )
    assert q.loc[1, "follow_up_days"] == 365 and q.loc[3, "follow_up_days"] == 365


def test_qalys_beyond_a_year_are_discounted_by_year():
    d = pd.DataFrame({"id": [1, 1, 1], "day": [0, 365.25, 730.5], "u": [1.0, 1.0, 1.0]})
    q = peerstats.qalys(d, subject="id", utility="u", time="day", discount_rate=0.035)
    assert q.loc[1, "qaly"] == pytest.approx(1 + 1 / 1.035)


def test_utility_above_one_is_an_error():
    d = _long()
    d.loc[4, "u"] = 1.2
    with pytest.raises(DataValidationError, match="above 1"):
        peerstats.qalys(d, subject="id", utility="u", time="day")


UNIT = pd.DataFrame({"item": ["gp", "inpatient_day", "peer_session"],
                     "unit_cost": [39.0, 427.0, 25.5],
                     "category": ["primary care", "hospital", "intervention"]})  # fmt: skip


def _use():
    return pd.DataFrame({"id": [1, 1, 2, 2], "day": [182, 365, 182, 730],
                         "gp": [2, 1, 0, 3], "inpatient_day": [0, 3, 1, np.nan],
                         "peer_session": [6, 4, 0, 0]})  # fmt: skip


def test_costs_are_use_times_unit_cost_by_category():
    c = peerstats.resource_costs(_use(), unit_costs=UNIT, subject="id", time="day")
    assert c.loc[1, "primary care"] == 3 * 39.0
    assert c.loc[1, "hospital"] == 3 * 427.0
    assert c.loc[1, "intervention"] == 10 * 25.5
    assert c.loc[1, "total"] == 3 * 39.0 + 3 * 427.0 + 10 * 25.5
    assert np.isnan(c.loc[2, "hospital"]) and np.isnan(c.loc[2, "total"])  # missing never 0


def test_costs_in_the_second_year_are_discounted_once():
    use = _use().fillna(0)
    c = peerstats.resource_costs(use, unit_costs=UNIT, subject="id", time="day", discount_rate=0.03)
    assert c.loc[2, "primary care"] == pytest.approx(3 * 39.0 / 1.03)  # day 730: year 2
    assert c.loc[2, "hospital"] == pytest.approx(427.0)  # day 182: not discounted


def test_missing_unit_costs_are_named():
    with pytest.raises(SpecError, match=r"\['peer_session'\]"):
        peerstats.resource_costs(_use(), unit_costs={"gp": 39, "inpatient_day": 427},
                                 subject="id", time="day")  # fmt: skip
    with pytest.raises(SpecError, match=">= 0"):
        peerstats.resource_costs(
            _use(),
            unit_costs={"gp": -1, "inpatient_day": 1, "peer_session": 1},
            subject="id",
            time="day",
        )


def test_negative_use_is_listed():
    u = _use()
    u.loc[0, "gp"] = -2
    with pytest.raises(DataValidationError) as err:
        peerstats.resource_costs(u, unit_costs=UNIT, subject="id", time="day")
    assert err.value.failures["column"].tolist() == ["gp"]


@pytest.mark.parametrize("method", ["sur", "bootstrap"])
def test_plane_and_ceac_draw(method):
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"arm": np.repeat(["a", "b"], 60), "q": rng.normal(0.8, 0.1, 120),
                      "c": rng.gamma(2.0, 500.0, 120)})  # fmt: skip
    res = peerstats.cost_effectiveness(d, cost="c", effect="q", arm="arm", method=method,
                                       n_boot=200, seed=1, wtp=[0, 20000])  # fmt: skip
    ax = res.plot_plane()
    assert ax.get_title() == "Cost-effectiveness plane" and len(ax.lines) >= 3
    ax = res.plot_ceac()
    y = ax.lines[0].get_ydata()
    assert ((0 <= y) & (y <= 1)).all() and len(y) == 201
    from peerstats.economics import acceptability

    np.testing.assert_allclose(acceptability(res, res.nmb.index), res.nmb["prob_ce"])
    ax = res.plot_evpi()
    assert (ax.lines[0].get_ydata() >= -1e-12).all()


def test_evpi_bootstrap_formula_and_sur_normal_closed_form():
    from types import SimpleNamespace

    from peerstats.economics import evpi

    # hand example: INB replicates -2, -1, 1, 4 at wtp = 1 (effect 0 -> INB = -cost)
    reps = pd.DataFrame({"cost": [2.0, 1.0, -1.0, -4.0], "effect": [0.0] * 4})
    res = SimpleNamespace(replicates=reps)
    # E[max(INB, 0)] = 5/4; max(E[INB], 0) = max(2/4, 0) = 0.5
    assert evpi(res, [1.0])[0] == pytest.approx(1.25 - 0.5)
    # SUR closed form against a large normal sample of INB (independent check, 0.5% rel)
    inc = pd.DataFrame({"estimate": [100.0, 0.01]}, index=["cost", "effect"])
    cov = pd.DataFrame([[2500.0, -0.1], [-0.1, 4e-5]], index=inc.index, columns=inc.index)
    sur = SimpleNamespace(replicates=None, incremental=inc, covariance=cov)
    draws = np.random.default_rng(0).multivariate_normal([100.0, 0.01], cov.to_numpy(), 400_000)
    mc = SimpleNamespace(replicates=pd.DataFrame(draws, columns=["cost", "effect"]))
    w = [5000.0, 10000.0, 20000.0]
    np.testing.assert_allclose(evpi(sur, w), evpi(mc, w), rtol=5e-3)


def test_eq_vas_is_an_ordinary_score():
    from peerstats.instruments import score

    d = pd.DataFrame({"eqvas_1": [0, 75, 100, np.nan]})
    res = score(d, "EQ VAS")
    assert res.total.iloc[:3].tolist() == [0, 75, 100] and np.isnan(res.total.iloc[3])
    with pytest.raises(DataValidationError):
        score(pd.DataFrame({"eqvas_1": [101]}), "EQ-VAS")
