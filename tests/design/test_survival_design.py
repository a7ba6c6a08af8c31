"""Time-to-event power (issue 17, item 5) against R powerSurvEpi 0.1.5 and R's numerical
integration: tests/reference/power_survival/make_reference.R -> reference.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import peerstats
from peerstats.design.survival import SurvivalDesign
from peerstats.exceptions import SpecError

REF = json.loads((Path(__file__).resolve().parents[1] / "reference" / "power_survival"
                  / "reference.json").read_text())


@pytest.mark.parametrize("case", REF["schoenfeld"], ids=lambda c: f"hr{c['hr']}-p{c['p']:.2f}")
def test_schoenfeld_events_and_power(case):
    """numDEpi.default (events, ceiling) and powerEpi.default (200 events); 1e-10."""
    d = peerstats.TrialDesign(outcome="time_to_event", hazard_ratio=case["hr"],
                              control_median=12, allocation=case["p"])
    assert d.events_required(case["power"]) == pytest.approx(case["events"], rel=1e-10)
    assert math.ceil(d.events_required(case["power"])) == case["events_ceiling"]
    assert d.power_from_events(200) == pytest.approx(case["power_at_200"], rel=1e-10)


def test_schoenfeld_published_example():
    """Schoenfeld (1983) / Collett (2015) 10.2: HR 0.7, 80%, 1:1 -> 247 events."""
    d = SurvivalDesign(hazard_ratio=0.7, control_median=12)
    assert math.ceil(d.events_required(0.8)) == 247


@pytest.mark.parametrize("case", REF["freedman"], ids=lambda c: f"hr{c['hr']}-k{c['k']}")
def test_freedman_matches_powerct(case):
    """ssizeCT.default (nE, nC at 80%) and powerCT.default (150k : 150); 1e-10."""
    k = case["k"]
    d = SurvivalDesign(hazard_ratio=case["hr"], control_median=12, allocation=k / (1 + k),
                       method="freedman")
    m = d.events_required(0.8)
    denom = k * case["pE"] + case["pC"]
    assert [math.ceil(m * k / denom), math.ceil(m / denom)] == case["ssize"]
    events = 150 * k * case["pE"] + 150 * case["pC"]
    assert d.power_from_events(events) == pytest.approx(case["power"], rel=1e-10)


@pytest.mark.parametrize("case", REF["pevent"], ids=lambda c: f"m{c['median']}-hr{c['hr']}")
def test_probability_of_event_matches_integration(case):
    d = SurvivalDesign(hazard_ratio=0.7, control_median=case["median"],
                       accrual=case["accrual"], follow_up=case["follow_up"],
                       dropout=1 - math.exp(-case["dropout_hazard"] * 12), dropout_time=12)
    lam = math.log(2) / case["median"] * case["hr"]
    assert d.p_event(lam) == pytest.approx(case["p"], rel=1e-9)


def test_power_and_sample_size_dispatch():
    d = peerstats.TrialDesign(outcome="time_to_event", hazard_ratio=0.7, control_median=12,
                              accrual=12, follow_up=12, dropout=0.1)
    ss = peerstats.sample_size(d, 0.8)
    assert ss.power >= 0.8 and peerstats.power(d, ss.n - 1).power < 0.8
    assert ss.events >= d.events_required(0.8)


@pytest.mark.parametrize("kw,msg", [
    ({"hazard_ratio": 1.0, "control_median": 12}, "no effect"),
    ({"hazard_ratio": 0.7}, "one of control_median"),
    ({"hazard_ratio": 0.7, "control_median": 12, "method": "lakatos"}, "schoenfeld"),
    ({"hazard_ratio": 0.7, "control_event_rate": 1.2}, "control_event_rate"),
])
def test_bad_designs(kw, msg):
    with pytest.raises(SpecError, match=msg):
        SurvivalDesign(**kw)


def test_simulated_power_matches_schoenfeld_without_frailty():
    """Without group variation the simulated power of the Cox test is the analytic one
    (Schoenfeld's approximation), within 3.5 Monte Carlo SEs."""
    from peerstats.design.survival_sim import simulate_survival_power

    d = SurvivalDesign(hazard_ratio=0.6, control_median=10, accrual=6, follow_up=12)
    analytic = d.power(200).power
    sim = simulate_survival_power(d, 200, analysis="cox", n_sims=300, seed=11)
    assert abs(sim.power - analytic) < 3.5 * math.sqrt(analytic * (1 - analytic) / 300)
    assert sim.mean_events == pytest.approx(d.expected_events(200), rel=0.05)
    one = simulate_survival_power(d, 200, analysis="cox", n_sims=20, seed=5)
    assert simulate_survival_power(d, 200, analysis="cox", n_sims=20, seed=5) == one


def test_group_frailty_costs_power_with_the_robust_variance():
    from peerstats.design.survival_sim import simulate_survival_power

    d = SurvivalDesign(hazard_ratio=0.6, control_median=10, accrual=6, follow_up=12)
    plain = simulate_survival_power(d, 200, group_size=10, n_sims=100, seed=3)
    frail = simulate_survival_power(d, 200, group_size=10, frailty_variance=1.0, n_sims=100,
                                    seed=3)
    assert frail.power < plain.power
    with pytest.raises(SpecError, match="analysis"):
        simulate_survival_power(d, 200, analysis="gee")
