"""A second outside check: lifelines (KaplanMeierFitter, CoxPHFitter, AalenJohansenFitter)
gives the same point estimates on the reference data (its CIs and variances follow other
conventions than R's, which is why peerstats does not return them)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import peerstats

# lifelines pins pandas < 3 and is not a dependency (pyproject: the bench extra); this second
# cross-check runs where it is installed. The R references (tests/survival) always run.
pytest.importorskip("lifelines")


def test_km_survival_equals_lifelines(trial):
    from lifelines import KaplanMeierFitter

    km = peerstats.kaplan_meier(trial, time="time", event="event", arm="arm")
    for arm, tab in km.tables.items():
        sub = trial[trial.arm == arm]
        kmf = KaplanMeierFitter().fit(sub.time, sub.event)
        theirs = kmf.survival_function_at_times(tab.time).to_numpy()
        np.testing.assert_allclose(tab.survival, theirs, atol=1e-12)


def test_cox_efron_equals_lifelines(rossi):
    from lifelines import CoxPHFitter

    cols = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter().fit(rossi[["week", "arrest", *cols]], "week", "arrest")
    fit = peerstats.coxph(" + ".join(cols), rossi, time="week", event="arrest")
    np.testing.assert_allclose(fit.coef.estimate, cph.params_[cols], rtol=1e-5)
    np.testing.assert_allclose(fit.coef.std_error, cph.standard_errors_[cols], rtol=1e-4)


def test_cif_near_lifelines_aalen_johansen(trial):
    """lifelines breaks tied event times by random jitter (it warns), so it agrees with cmprsk
    (and with us, 1e-10 in test_competing.py) only to ~1e-4 on data with ties: 1e-3 here."""
    from lifelines import AalenJohansenFitter

    cif = peerstats.cumulative_incidence(trial, time="time", event="status", arm="arm",
                                         times=[3, 6, 12])
    sub = trial[trial.arm == "peer"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ajf = AalenJohansenFitter(calculate_variance=False).fit(sub.time, sub.status,
                                                                event_of_interest=1)
    f = ajf.cumulative_density_
    theirs = [f[f.index <= t].iloc[-1, 0] for t in (3, 6, 12)]
    ours = cif.table.query("arm == 'peer' and cause == 1").cif
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
