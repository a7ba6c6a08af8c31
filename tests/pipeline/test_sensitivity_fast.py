"""The fast path of the imputation-based sensitivity analyses (pipeline/_sensitivity_fast.py,
issue 22): the primary LMM refitted on the responses of the completed datasets must pool to
the numbers of the plain path (a peerstats.lmm call per completed data frame), keep the
singular-fit warning, and report a set that cannot be fitted instead of pooling over fewer.

Self-consistency checks of a fast path (plain path = the reference here; the pooled numbers
are validated against nlme::lme in test_sensitivity_primary_model.py, r_sens_primary). Data:
the 20 completed datasets of tests/reference/r_sens_primary (SYNTHETIC PEER example). Tolerance
1e-7 relative (batched refits reach the optimum to the engine's tolerance).
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
import peerstats.pipeline._sensitivity_fast as sf
import peerstats.pipeline._sensitivity_model as sm
from peerstats.exceptions import ConvergenceError, ModelSpecificationError, SingularFitWarning
from peerstats.pipeline import run_analysis

REF = Path(__file__).parents[1] / "reference" / "r_sens_primary"


@pytest.fixture(scope="module")
def primary_run():
    spec = {
        "analysis": {"name": "fast", "title": "fast path (synthetic)"},
        "trial": {"dataset": "peer_recovery"},
        "primary": {"outcome": "qpr15", "visit": "post"},
        "tables": [],
        "figures": [],
        "seed": 179,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_analysis(spec)


@pytest.fixture(scope="module")
def imp():
    d = pd.read_csv(REF / "datasets.csv.gz", dtype={"subject": str, "group": str})
    sets = [g.drop(columns="imputation").reset_index(drop=True) for _, g in d.groupby("imputation")]
    for g in sets:
        g["visit"] = pd.Categorical(g["visit"], categories=["post", "fu3"])
        g["arm"] = pd.Categorical(g["arm"], categories=["usual", "peer"])
    return peerstats.Imputations.from_datasets(
        sets, outcome="qpr15", subject="subject", visit="visit", arm="arm",
        missing=sets[0]["imputed"].to_numpy(bool),
    )  # fmt: skip


def _analyser(run):
    return sm.primary_analyser(run, "qpr15", "usual", "primary model")


def _pooled(imp, analyser, *, fast: bool):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if fast:
            out = sm.pool_primary(imp, analyser)
        else:
            orig = sm.fast_refits
            sm.fast_refits = lambda *a: None
            try:
                out = sm.pool_primary(imp, analyser)
            finally:
                sm.fast_refits = orig
    return out, [str(w.message) for w in caught if issubclass(w.category, SingularFitWarning)]


def test_fast_path_pools_to_the_plain_path(primary_run, imp):
    """Every pooled column and the singular-fit warning, fast vs plain (and the fast path
    is taken: no data frame fit is counted by the prepared model)."""
    an = _analyser(primary_run)
    fast, w_fast = _pooled(imp, an, fast=True)
    assert an._fast is not None and an._fast.refitter.n_refits == len(imp.datasets)
    plain, w_plain = _pooled(imp, _analyser(primary_run), fast=False)
    assert list(fast.columns) == list(plain.columns)
    assert fast[["visit", "contrast"]].equals(plain[["visit", "contrast"]])
    for c in fast.columns[2:]:
        a, b = fast[c].to_numpy(float), plain[c].to_numpy(float)
        assert np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) < 1e-7, c
    assert w_fast == w_plain
    assert w_fast == [
        "the primary model's fit was singular (a variance component estimated at zero) on "
        "1 of 20 imputed data sets"
    ]


def test_tipping_grid_equals_the_plain_path(primary_run, imp):
    """Three deltas, warm-started from the previous cells: the table of the plain path."""
    grid = {"peer": [-8.0, -4.0, 0.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = sm.tipping(imp, _analyser(primary_run), grid, "post").table
        orig = sm.fast_refits
        sm.fast_refits = lambda *a: None
        try:
            plain = sm.tipping(imp, _analyser(primary_run), grid, "post").table
        finally:
            sm.fast_refits = orig
    for c in ("estimate", "std_error", "df", "p_value", "ci_lower", "ci_upper"):
        a, b = fast[c].to_numpy(float), plain[c].to_numpy(float)
        assert np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) < 1e-7, c
    assert fast["estimate"].is_monotonic_increasing  # the delta moves the estimate


def test_a_set_the_fast_path_cannot_fit_goes_to_the_plain_path(primary_run, imp, monkeypatch):
    """Set 3 fails in the fast path: the plain peerstats.lmm path fits it; same numbers."""
    an = _analyser(primary_run)
    ref, _ = _pooled(imp, an, fast=True)
    rf = an._fast.refitter
    y3 = imp.completed().reshape(imp.n_imputations, -1)[3][rf.rows]
    monkeypatch.setattr(rf, "refit_many", lambda Y, starts: [None] * len(Y))
    real = rf.refit

    def refit(y, start=None):
        if np.array_equal(y, y3):
            raise ConvergenceError("stalled", tried=["test"], gradient=None)
        return real(y, start)

    monkeypatch.setattr(rf, "refit", refit)
    n_before = an.n_fits
    got, _ = _pooled(imp, an, fast=True)
    assert an.n_fits - n_before == 20  # 19 fast refits + 1 plain fit
    for c in ("estimate", "std_error", "df"):
        assert np.allclose(got[c], ref[c], rtol=1e-7, atol=0), c


def test_a_set_nothing_can_fit_is_reported_not_hidden(primary_run, imp, monkeypatch):
    """Non-convergence on one imputed set in both paths: the analysis fails and names the set
    (peerstats never pools over fewer sets)."""
    an = _analyser(primary_run)
    _pooled(imp, an, fast=True)
    rf = an._fast.refitter
    y5 = imp.completed().reshape(imp.n_imputations, -1)[5][rf.rows]
    monkeypatch.setattr(rf, "refit_many", lambda Y, starts: [None] * len(Y))
    real = rf.refit

    def refit(y, start=None):
        if np.array_equal(y, y5):
            raise ConvergenceError("stalled", tried=["test"], gradient=None)
        return real(y, start)

    def plain(d):
        raise ConvergenceError("the REML/ML optimisation did not converge", tried=[], gradient=None)

    monkeypatch.setattr(rf, "refit", refit)
    monkeypatch.setattr(an, "contrasts", plain)
    with pytest.raises(ModelSpecificationError, match=r"failed on 1 of 20 completed datasets "
                       r"\(first: set 5: ConvergenceError"):  # fmt: skip
        sm.pool_primary(imp, an)


def test_warm_start_extrapolates_along_a_line():
    t0, t1 = np.array([[1.0, 2.0]]), np.array([[2.0, 3.0]])
    done = [(np.array([-4.0]), t0), (np.array([-2.0]), t1)]
    assert np.allclose(sf.warm_start(done, np.array([0.0])), [[3.0, 4.0]])
    assert sf.warm_start([], np.array([0.0])) is None
    # not on the line (a 2-D grid's next row): the previous optimum
    done2 = [(np.array([0.0, 0.0]), t0), (np.array([0.0, 1.0]), t1)]
    assert np.array_equal(sf.warm_start(done2, np.array([1.0, 0.0])), t1)


def test_pooled_fast_is_the_pooled_table_without_the_table(primary_run, imp):
    """Issue 22: the tipping grid reads the pooled columns of pooled_fast; they are the
    numbers of pool_fast's table exactly (same refits, same pooling; tolerance 0)."""
    from peerstats.missing.pooling import POOL_COLUMNS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a1, a2 = _analyser(primary_run), _analyser(primary_run)
        table, th1 = sf.pool_fast(imp, a1, sf.fast_refits(a1, imp))
        fast2 = sf.fast_refits(a2, imp)
        cols, th2 = sf.pooled_fast(imp, a2, fast2)
    assert list(table["visit"]) == [v for v, _ in fast2.keys]
    assert list(table["contrast"]) == [c for _, c in fast2.keys]
    for c in POOL_COLUMNS:
        assert np.array_equal(table[c].to_numpy(float), cols[c], equal_nan=True), c
    assert np.array_equal(th1, th2, equal_nan=True)
