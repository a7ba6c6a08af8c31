"""The shortcuts of the subgroup analysis (issue 22, speed) give the numbers of the plain path,
bit for bit, on the bundled SYNTHETIC trials (peer_recovery: partially nested LMM;
social_inclusion: MMRM).

The reference of each test is the straightforward computation the shortcut replaces, done here
with the public API or the code path the shortcut avoids:
- the refit of :class:`Refitter` against ``peerstats.analyze`` with the recoded participant
  column as a covariate and the interaction term (what ``subgroups`` called per variable);
- the contrast rows coded from the fast layout against the reference-grid frame through
  ``design.matrix``;
- the batched t tests against ``fit.test`` one contrast at a time;
- ``primary=`` against the refit of the primary model;
- :func:`peerstats.pipeline.mechanisms.wide_frame` against a per-column pandas construction.
The subgroup effects themselves are validated against R in ``test_subgroups.py``.
Tolerance: none (``assert_array_equal``: equal floats, NaN where NaN).
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats import subgroups
from peerstats.effects import _subgroup_grid as grid_mod
from peerstats.effects._subgroup_refit import Refitter, _TrialView
from peerstats.exceptions import DataWarning, SpecError

# the module (peerstats.effects.subgroups is also the name of the function)
sg = importlib.import_module("peerstats.effects.subgroups")
CASES = {"peer_recovery": ("qpr15", "post"), "social_inclusion": ("sis", "m8")}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    name = request.param
    trial = peerstats.datasets.load(name)
    outcome, visit = CASES[name]
    return name, trial, outcome, visit


def _plain_fit(trial, outcome, var, recoded, covariates=()):
    """What subgroups did per variable before Refitter: analyze with the recoded column."""
    part = trial.participants.copy()
    part[var] = recoded
    view = _TrialView(trial, part)
    covs = list(dict.fromkeys([*covariates, var]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return peerstats.analyze(view, outcome=outcome, covariates=covs,
                                 terms=[f"{var} * arm * visit"]).fit


def _same_fit(a, b):
    assert list(a.params.index) == list(b.params.index)
    np.testing.assert_array_equal(a.params.to_numpy(), b.params.to_numpy())
    np.testing.assert_array_equal(np.asarray(a.vcov), np.asarray(b.vcov))
    assert a.loglik == b.loglik and a.n_obs == b.n_obs
    ell = np.linspace(-1, 1, len(a.params))
    pd.testing.assert_frame_equal(a.test(ell), b.test(ell), check_exact=True)


@pytest.mark.parametrize("var", ["gender", "age"])
def test_refitter_equals_analyze(case, var):
    _, trial, outcome, _ = case
    known = sg._known_variables(trial, ["gender", "age"])
    refit = Refitter(trial, outcome, [], "satterthwaite", {v: k[2] for v, k in known.items()})
    assert set(refit.fast) == {"gender", "age"}  # both take the shared-rows path
    got = refit.fit(var, f"{var} * arm * visit")
    _same_fit(got, _plain_fit(trial, outcome, var, known[var][2]))


@pytest.mark.parametrize("var", ["gender", "age", "other"])
def test_refitter_with_covariates_equals_analyze(case, var):
    """Covariates age and gender (as social_inclusion's spec): a subgroup variable that is a
    covariate too gets rows of its own (the covariate recoded), another one the shared rows."""
    name, trial, outcome, _ = case
    if var == "other":
        var = {"peer_recovery": "living_alone", "social_inclusion": "diagnosis"}[name]
    by = ["gender", "age", var]
    known = sg._known_variables(trial, by)
    refit = Refitter(trial, outcome, ["age", "gender"], "satterthwaite",
                     {v: k[2] for v, k in known.items()})
    assert refit.own == ["gender", "age"] and refit.fast == [v for v in by if v not in refit.own]
    got = refit.fit(var, f"{var} * arm * visit")
    _same_fit(got, _plain_fit(trial, outcome, var, known[var][2], covariates=["age", "gender"]))


def test_refitter_uses_analyze_for_an_assessment_column(case):
    """A numeric column of the assessments (the outcome's baseline here) is refitted by
    analyze itself (the model reads the assessments' column, not a participant one)."""
    _, trial, outcome, _ = case
    var = f"{outcome}_baseline"
    refit = Refitter(trial, outcome, [], "satterthwaite", {var: trial.participants["subject"]})
    assert refit.fast == [] and refit.own == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        want = peerstats.analyze(trial, outcome=outcome, terms=[f"{var} * arm * visit"]).fit
    _same_fit(refit.fit(var, f"{var} * arm * visit"), want)


def test_refit_missing_subgroup_value_raises_as_analyze(case):
    _, trial, outcome, _ = case
    known = sg._known_variables(trial, ["gender"])
    col = known["gender"][2].copy()
    col.iloc[:5] = np.nan
    refit = Refitter(trial, outcome, [], "satterthwaite", {"gender": col})
    with pytest.raises(peerstats.ModelSpecificationError, match="covariate 'gender' is missing"):
        refit.fit("gender", "gender * arm * visit")


@pytest.mark.parametrize("var", ["gender", "age"])
def test_coded_contrast_rows_equal_the_grid_frame(case, var):
    _, trial, outcome, visit = case
    known = sg._known_variables(trial, [var])
    fit = Refitter(trial, outcome, [], "satterthwaite", {var: known[var][2]}).fit(
        var, f"{var} * arm * visit")
    design = fit._design
    arms = [str(a) for a in trial.spec.arms.levels]
    ref = str(trial.spec.arms.reference or arms[0])
    trt = [a for a in arms if a != ref][0]
    values = (list(design.factors[var]) if var in design.factors
              else [*np.linspace(20, 60, 41), 1.0, 0.0, 33.5])
    assert design.fast is not None and grid_mod._coded_grid(design, var, values) is not None
    got = grid_mod.diff_rows(fit, var, visit, ref, trt, values)
    X, grid, keeps = grid_mod._framed_grid(design, var, values)
    t, r = grid_mod.arm_mask(grid, visit, trt), grid_mod.arm_mask(grid, visit, ref)
    want, start = [], 0
    for keep in keeps:  # one value's grid at a time, as the frame path reads them
        Xg = X[start : start + int(keep.sum())]
        start += int(keep.sum())
        want.append(Xg[t[keep]].mean(axis=0) - Xg[r[keep]].mean(axis=0))
    np.testing.assert_array_equal(got, np.vstack(want))


def test_batched_tests_equal_fit_test(case):
    _, trial, outcome, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fit = peerstats.analyze(trial, outcome=outcome).fit
    L = np.random.default_rng(1).normal(size=(7, len(fit.params)))
    got = sg._tests(fit, L, 0.9)
    want = pd.concat([fit.test(ell, level=0.9) for ell in L], ignore_index=True)[sg._TIDY]
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_primary_given_equals_primary_refitted(case):
    _, trial, outcome, visit = case
    by = ["gender", "age"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        plain = subgroups(trial, outcome=outcome, visit=visit, by=by)
        primary = peerstats.analyze(trial, outcome=outcome)
        given = subgroups(trial, outcome=outcome, visit=visit, by=by, primary=primary)
    pd.testing.assert_series_equal(given.overall, plain.overall, check_exact=True)
    pd.testing.assert_frame_equal(given.table, plain.table, check_exact=True)
    pd.testing.assert_frame_equal(given.interactions, plain.interactions, check_exact=True)


def test_primary_of_another_outcome_or_without_contrasts_is_refused(case):
    _, trial, outcome, visit = case
    other = [o for o in trial.spec.outcome_names if o != outcome][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        wrong = peerstats.analyze(trial, outcome=other)
    with pytest.raises(SpecError, match="not the outcome"):
        subgroups(trial, outcome=outcome, visit=visit, by=["gender"], primary=wrong)
    with pytest.raises(SpecError, match="contrasts"):
        subgroups(trial, outcome=outcome, visit=visit, by=["gender"], primary=wrong.fit)


def test_empty_cells_listed_level_then_arm(case):
    cells = pd.DataFrame({
        "subject": range(6),
        "arm": ["a", "b", "a", "a", "b", np.nan],
        "level": ["x", "x", "y", "z", np.nan, "z"],
    })
    with pytest.raises(peerstats.DataValidationError, match=r"\['y x b', 'z x b'\]"):
        sg._check_cells(cells, "v", ["a", "b"])


def test_wide_frame_equals_per_column_construction(case):
    from peerstats.pipeline.mechanisms import wide_frame

    _, trial, outcome, visit = case
    base = str(trial.spec.visits[0])
    cols = [(outcome, visit), (outcome, base), ("empowerment", visit)]
    cols = [c for c in cols if c[0] in trial.assessments.columns]
    covs = ["age"]
    got = wide_frame(trial, cols, covs)
    a = trial.assessments
    first = a.drop_duplicates("subject").set_index("subject")
    ref = str(trial.spec.arms.reference or trial.spec.arms.levels[0])
    want = pd.DataFrame(index=first.index)
    want["treated"] = (first["arm"].astype(str) != ref).astype(int)
    for o, v in cols:
        rows = a[a["visit"].astype(str) == str(v)].drop_duplicates("subject")
        want[f"{o}_{v}"] = rows.set_index("subject")[o].reindex(want.index)
    part = trial.participants.drop_duplicates("subject").set_index("subject")
    for c in covs:
        want[c] = part[c].reindex(want.index)
    pd.testing.assert_frame_equal(got, want.reset_index(), check_exact=True)
