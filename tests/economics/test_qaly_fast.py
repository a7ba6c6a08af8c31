"""economics/qaly._by_subject (issue 22): the participants' rows without a data frame each are
exactly pandas' ``groupby("s", sort=False)`` groups (same keys, order and values), so the QALYs
are bit for bit those of the per-group loop. Reference: pandas' groupby. Synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peerstats.economics.qaly import _by_subject


@pytest.mark.parametrize("seed", range(6))
def test_by_subject_matches_pandas_groupby(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    s = rng.choice([f"p{i}" for i in range(max(1, n // 3))], size=n).astype(object)
    if seed % 2:
        s[rng.integers(0, n)] = None  # a missing subject: groupby drops it
    frame = pd.DataFrame({"s": s, "t": rng.integers(0, 400, n).astype(float),
                          "u": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0.6, 0.3, n))})  # fmt: skip
    frame = frame.sort_values(["s", "t"], kind="mergesort")
    want = [(k, g["t"].to_numpy(float), g["u"].to_numpy(float))
            for k, g in frame.groupby("s", sort=False)]  # fmt: skip
    got = list(_by_subject(frame))
    assert [k for k, _, _ in got] == [k for k, _, _ in want]
    for (_, t1, u1), (_, t2, u2) in zip(got, want):
        assert np.array_equal(t1, t2) and np.array_equal(u1, u2, equal_nan=True)
