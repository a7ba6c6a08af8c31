"""The fast paths of MMRM data preparation (issue 22.4) give what their plain versions give.

- ``factorize_ids`` (ids' runs) against ``pandas.factorize(sort=False)``, the reference it
  replaces, on sorted, unsorted, repeated, integer, object, categorical and missing ids;
- ``pattern_statistics``: rows in unit order (units ordered by block type, no row sort) against
  the same rows shuffled (the sorting path), the small-data path ([X | y] once) against the
  chunked path, and the lazily filled pooled statistics of the subject path against eager ones;
- repeated fits in one process leave no memory behind (no per-fit cache), measured with
  tracemalloc on a small trial.

Synthetic data only.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.models import _prepared_checks, _reml
from peerstats.models._prepared_checks import factorize_ids


def _id_cases():
    rng = np.random.default_rng(7)
    perm = rng.permutation(300)
    return {
        "sorted strings": pd.Series(np.repeat([f"S{i:04d}" for i in range(300)], 4)),
        "runs out of order": pd.Series(np.repeat([f"S{i:04d}" for i in perm], 3)),
        "an id in two runs": pd.Series(["b", "b", "a", "a", "b", "c"]),
        "integers in runs": pd.Series(np.repeat(perm, 2)),
        "integers repeated": pd.Series(rng.integers(0, 30, 200)),
        "object strings": pd.Series(["x", "x", "y", "z", "z"], dtype=object),
        "categorical": pd.Series(pd.Categorical(["q", "q", "p", "p"])),
        "missing id": pd.Series(["a", None, "a", "b"]),
        "floats": pd.Series([2.0, 2.0, 1.0]),
        "one row": pd.Series(["only"]),
    }


@pytest.mark.parametrize("case", list(_id_cases()))
def test_factorize_ids_equals_pandas_factorize(case, monkeypatch):
    monkeypatch.setattr(_prepared_checks, "_RUNS_FROM", 1)  # the runs path also on small ids
    col = _id_cases()[case].rename("id")
    codes, uniques = factorize_ids(col)
    ref_codes, ref_uniques = pd.factorize(col, sort=False)
    ref_uniques = pd.Index(ref_uniques, name="id")
    np.testing.assert_array_equal(codes, ref_codes)
    assert codes.dtype == np.int64
    assert uniques.equals(ref_uniques) and uniques.dtype == ref_uniques.dtype
    assert uniques.name == "id"


def _rows(n=400, T=6, p=4, seed=3, drop=0.25):
    """Rows of units in (unit, visit) order with random missing visits, two groups."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n), T)
    pos = np.tile(np.arange(T), n)
    keep = rng.random(n * T) > drop
    unit, pos = unit[keep], pos[keep]
    X = rng.standard_normal((unit.size, p))
    y = rng.standard_normal(unit.size)
    group = rng.integers(0, 2, n)[unit]
    return X, y, unit, pos, group


def _assert_same(a, b, tol=1e-12):
    assert [sc.keys for sc in a] == [sc.keys for sc in b]
    for sa, sb in zip(a, b):
        np.testing.assert_array_equal(sa.counts, sb.counts)
        for name in ("SXX", "SXy", "Syy"):
            np.testing.assert_allclose(getattr(sa, name), getattr(sb, name), rtol=tol, atol=tol)


@pytest.mark.parametrize("weighted", [False, True])
def test_pattern_statistics_row_order_and_size_paths(weighted, monkeypatch):
    X, y, unit, pos, group = _rows()
    rng = np.random.default_rng(11)
    w = rng.random(y.size) + 0.5 if weighted else None
    fw = rng.integers(1, 4, unit.max() + 1).astype(float) if weighted else None
    sorted_rows, _ = _reml.pattern_statistics(X, y, unit, pos, group, w, fw)
    perm = rng.permutation(y.size)  # shuffled rows: the sorting path
    shuffled, _ = _reml.pattern_statistics(
        X[perm], y[perm], unit[perm], pos[perm], group[perm], None if w is None else w[perm], fw
    )
    _assert_same(sorted_rows, shuffled)
    monkeypatch.setattr(_reml, "_SMALL", 0)  # the chunked path for large data
    _assert_same(sorted_rows, _reml.pattern_statistics(X, y, unit, pos, group, w, fw)[0])


def test_pattern_statistics_one_group_code():
    X, y, unit, pos, _ = _rows()
    a, _ = _reml.pattern_statistics(X, y, unit, pos, np.zeros_like(unit))
    b, _ = _reml.pattern_statistics(X, y, unit, pos, 0)
    _assert_same(a, b, tol=0)


def test_subject_path_pooled_statistics_on_first_use():
    # many patterns: the subject path is chosen and the pooled statistics are deferred
    X, y, unit, pos, group = _rows(n=300, T=8, p=3, drop=0.3)
    lazy, info = _reml.pattern_statistics(X, y, unit, pos, group, units=(8, 36))
    assert info["units"] is not None
    eager, info0 = _reml.pattern_statistics(X, y, unit, pos, group)
    assert info0["units"] is None
    _assert_same(eager, lazy, tol=0)


def _trial(n=120, seed=5):
    rng = np.random.default_rng(seed)
    T = 4
    arm = np.where(rng.random(n) < 0.5, "control", "peer")
    base = rng.normal(20, 5, n)
    y = base[:, None] * 0.7 + rng.normal(0, 4, (n, T)) + (arm == "peer")[:, None] * 2.0
    y[rng.random((n, T)) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "id": np.repeat([f"P{i:03d}" for i in range(n)], T),
            "arm": np.repeat(arm, T),
            "visit": np.tile([f"V{j}" for j in range(T)], n),
            "baseline": np.repeat(base, T),
            "y": y.ravel(),
        }
    )


def test_repeated_fits_leave_no_memory_behind():
    d = _trial()

    def fit():
        f = peerstats.mmrm("y ~ baseline + arm * visit", d, subject="id", visit="visit")
        f.contrasts("arm", by="visit")

    fit()  # first call: imports, bounded caches (formula parsing, structures)
    gc.collect()
    tracemalloc.start()
    try:
        fit()
        gc.collect()
        after_one = tracemalloc.get_traced_memory()[0]
        for _ in range(6):
            fit()
        gc.collect()
        after_seven = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # a per-fit cache of this model (its design alone is 100s of KB) would grow by MBs
    assert after_seven - after_one < 100_000, (after_one, after_seven)
