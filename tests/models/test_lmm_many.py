"""Refits of the primary LMM on many responses (models/_lmm_many.py, _lmm_many_batch.py, issue 22)
against the plain ``peerstats.lmm`` fit on the same data.

This is a self-consistency check of a fast path: the reference is ``peerstats.lmm`` itself,
run on each dataset (the LMM is validated against lme4/nlme in test_lmm_r.py, and the pooled
sensitivity numbers against nlme in tests/reference/r_sens_primary/). Data: the 20 completed
datasets of tests/reference/r_sens_primary/datasets.csv.gz (SYNTHETIC PEER example; set 12 has
its delivery-group variance at zero). Tolerances: one-by-one refits from the same start 1e-10
(the same arithmetic); batched refits 1e-7 relative (another summation order, and the optimum
reached to the engine's tolerance); batched likelihood derivatives 1e-9.
"""

import warnings

import numpy as np
import pytest

import peerstats
from peerstats.exceptions import ConvergenceError, ModelSpecificationError
from peerstats.models._lmm_fit import _engine
from peerstats.models._lmm_many import ResponseRefitter, contrast_rows
from peerstats.models._lmm_many_batch import BatchedRows
from peerstats.models._lmm_prepared import PreparedLMM

FORMULA = "qpr15 ~ qpr15_baseline + site + arm * visit + (1 | subject) + (0 + delivered | group)"
OPTIONS = {"subject": "subject", "df": "satterthwaite", "reference": {"arm": "usual"},
           "residual_by": "arm"}  # fmt: skip


@pytest.fixture(scope="module")
def datasets(sens_primary_sets):
    return sens_primary_sets


@pytest.fixture(scope="module")
def plain(datasets):
    """peerstats.lmm on every dataset: (fit, contrasts by visit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [peerstats.lmm(FORMULA, d, **OPTIONS) for d in datasets]
    return [(f, f.contrasts("arm", by="visit", reference="usual")) for f in fits]


@pytest.fixture(scope="module")
def refitter(datasets):
    prep = PreparedLMM(FORMULA, datasets[0], **OPTIONS)
    keys, L = contrast_rows(prep.d.design, "arm", "visit", "usual")
    return ResponseRefitter(prep, L), keys


def _y(rf, d):
    return d["qpr15"].to_numpy(float)[rf.rows]


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def test_contrast_rows_are_the_rows_of_contrasts(refitter, plain):
    rf, keys = refitter
    fit, ct = plain[0]
    assert keys == list(zip(ct["visit"].astype(str), ct["contrast"]))
    beta = fit.coef["estimate"].to_numpy(float)
    assert _rel(rf.L @ beta, ct["estimate"]) < 1e-12


def test_refit_from_the_same_start_equals_lmm(refitter, datasets, plain):
    """One by one from the primary's start: the numbers of peerstats.lmm(start=...) exactly
    (1e-10), including the singular set (its flag too)."""
    rf, _ = refitter
    start = plain[0][0]._theta
    n_singular = 0
    for d in datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = peerstats.lmm(FORMULA, d, start=start, **OPTIONS)
        ct = fit.contrasts("arm", by="visit", reference="usual")
        r = rf.refit(_y(rf, d), start)
        assert _rel(r.estimate, ct["estimate"]) < 1e-10
        assert _rel(r.variance, ct["std_error"] ** 2) < 1e-10
        assert _rel(r.df, ct["df"]) < 1e-10
        assert r.singular == fit.singular
        n_singular += r.singular
    assert n_singular == 1  # the data set whose group variance is at zero (r_sens_primary)


def test_batched_refits_equal_lmm(refitter, datasets, plain):
    """All 20 sets together from one start: every fit equals peerstats.lmm to 1e-7, the
    singular set too (its group variance held at zero by the projected Newton: the numbers of
    the refit with that component fixed at zero, df from the Hessian of the free components)."""
    rf, _ = refitter
    Y = np.stack([_y(rf, d) for d in datasets])
    starts = np.tile(plain[0][0]._theta, (len(Y), 1))
    out = rf.refit_many(Y, starts)
    for r, (fit, ct) in zip(out, plain):
        assert r is not None and r.singular == fit.singular
        assert _rel(r.estimate, ct["estimate"]) < 1e-7
        assert _rel(r.variance, ct["std_error"] ** 2) < 1e-7
        assert _rel(r.df, ct["df"]) < 1e-6


def test_batched_refits_from_other_starts_reach_the_same_optimum(refitter, datasets, plain):
    """Starts taken from the neighbouring set (as a tipping-point grid warm-starts from the
    neighbouring delta): the same optimum to 1e-6."""
    rf, _ = refitter
    regular = [i for i, (f, _) in enumerate(plain) if not f.singular][:6]
    Y = np.stack([_y(rf, datasets[i]) for i in regular])
    thetas = np.stack([plain[i][0]._theta for i in regular])
    out = rf.refit_many(Y, np.roll(thetas, 1, axis=0) * 1.3)
    for r, (_, ct) in zip(out, [plain[i] for i in regular]):
        assert r is not None
        assert _rel(r.estimate, ct["estimate"]) < 1e-6
        assert _rel(r.df, ct["df"]) < 1e-5


def test_batched_derivatives_equal_the_row_likelihood(refitter, datasets):
    """Objective, gradient, observed Hessian, expected information and P_k of BatchedRows
    against the engine's own likelihood at the same psi, response by response (1e-9)."""
    rf, _ = refitter
    d = rf.d
    psi = np.array([[4.0, 1.5, 30.0, 45.0], [0.5, 0.0, 20.0, 60.0], [9.0, 3.0, 25.0, 25.0]])
    Y = np.stack([_y(rf, dd) for dd in datasets[:3]])
    batch = BatchedRows(rf.layout, d.design.X, [1, 1], 2, "reml")
    batch.set_responses(Y)
    got = batch.evaluate(psi, np.arange(3), order=2)
    for s in range(3):
        rf._set_response(Y[s])
        ref = _engine(rf.layout, d, "reml", (), rf.lik).lik.evaluate(psi[s], order=2)
        for key in ("objective", "gradient", "hessian", "expected", "P", "beta", "C"):
            assert _rel(got[key][s], ref[key]) < 1e-9, key


def test_bad_inputs_are_refused_and_bad_starts_left_out(refitter, datasets, plain):
    rf, _ = refitter
    y = _y(rf, datasets[0])
    with pytest.raises(ModelSpecificationError, match="finite values"):
        rf.refit(np.r_[y[:-1], np.nan], None)
    with pytest.raises(ModelSpecificationError, match="finite values"):
        rf.refit(y[:-1], None)
    with pytest.raises(ModelSpecificationError, match="4 finite variance parameters"):
        rf.refit(y, np.ones(3))
    starts = np.tile(plain[0][0]._theta, (2, 1))
    starts[1, 0] = np.nan  # no start for the second response: not batched
    out = rf.refit_many(np.stack([y, y]), starts)
    assert out[0] is not None and out[1] is None


def test_non_convergence_is_raised_not_hidden(refitter, datasets, monkeypatch):
    """A refit whose optimiser stalls raises ConvergenceError (as peerstats.lmm), and the
    batched path leaves a stalled problem to the caller instead of reporting it."""
    import peerstats.models._lmm_many_batch as mb
    from peerstats.models._reml import REMLEngine

    rf, _ = refitter
    y = _y(rf, datasets[1])

    def stall(self, theta0, **kw):
        out = REMLEngine._fit(self, theta0, max_iter=0)
        out["converged"] = False
        return out

    monkeypatch.setattr(REMLEngine, "fit", stall)
    with pytest.raises(ConvergenceError, match="did not converge"):
        rf.refit(y, None)
    monkeypatch.undo()
    # no Newton step is ever taken: max_iter iterations pass without convergence, and the
    # problem is left to the caller (whose one-by-one refit raises or fits it)
    monkeypatch.setattr(mb, "_iteration", lambda *a, **k: None)
    out = rf.refit_many(np.stack([y]), np.array([[2.0, 1.0, 3.0, 3.0]]))
    assert out == [None]


def test_a_component_near_but_not_at_zero_is_left_to_the_boundary_refit(
    refitter, datasets, plain, monkeypatch
):
    """A variance below the singularity tolerance that the Newton did not hold at zero needs
    the refit with it fixed at zero (which moves the optimum): the batch leaves it (None).
    With the tolerance raised so that every fit has such a variance (the participant variance
    is never at zero here), no problem is settled by the batch."""
    import peerstats.models._lmm_many as lm

    rf, _ = refitter
    monkeypatch.setattr(lm, "_SINGULAR_TOL", 10.0)
    Y = np.stack([_y(rf, d) for d in datasets])
    out = rf.refit_many(Y, np.tile(plain[0][0]._theta, (len(Y), 1)))
    assert all(r is None for r in out)


def test_a_covariance_that_is_not_positive_definite_drops_only_its_problem(refitter, datasets):
    """psi with a negative residual variance for one response: that problem is flagged (not
    ok, objective inf), the others are evaluated as alone (1e-12)."""
    rf, _ = refitter
    Y = np.stack([_y(rf, dd) for dd in datasets[:3]])
    batch = BatchedRows(rf.layout, rf.d.design.X, [1, 1], 2, "reml")
    batch.set_responses(Y)
    psi = np.array([[4.0, 1.5, 30.0, 45.0], [4.0, 1.5, -30.0, 45.0], [9.0, 3.0, 25.0, 25.0]])
    got = batch.evaluate(psi, np.arange(3), order=2)
    assert got["ok"].tolist() == [True, False, True] and np.isinf(got["objective"][1])
    alone = batch.evaluate(psi[[0, 2]], np.array([0, 2]), order=2)
    for key in ("objective", "gradient", "hessian"):
        assert _rel(got[key][[0, 2]], alone[key]) < 1e-12, key
