"""Issue 22: item columns that are already numbers are taken as floats directly
(``instruments._scoring._item_values``); the result must be bit for bit what the general
conversion through Python objects and ``pandas.to_numeric`` (the reference) gives. Synthetic
values, including -0.0, infinities, NaN, huge and tiny magnitudes and large integers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peerstats.instruments._scoring import _item_values


def _through_objects(raw: pd.Series) -> np.ndarray:
    missing = raw.isna().to_numpy()
    values = pd.to_numeric(raw.astype(object).where(~missing, None), errors="coerce")
    return np.array(values, dtype=float)


def _columns() -> list[pd.Series]:
    r = np.random.default_rng(22)
    x = r.normal(size=1000) * 10.0 ** r.integers(-300, 300, 1000)
    x[::7] = np.nan
    x[1], x[2], x[3] = -0.0, np.inf, -np.inf
    return [
        pd.Series(x),
        pd.Series(np.round(x)),
        pd.Series(r.integers(0, 5, 300).astype(float)),  # item responses with gaps
        pd.Series(r.integers(-(10**17), 10**17, 300)),
        pd.Series(r.integers(0, 5, 50).astype(np.uint8)),
        pd.Series([np.nan] * 4),
        pd.Series([], dtype=float),
    ]


@pytest.mark.parametrize("k", range(7))
def test_numeric_item_columns_give_the_same_bits(k):
    raw = _columns()[k]
    fast, ref = _item_values(raw), _through_objects(raw)
    assert fast.dtype == ref.dtype == np.float64
    assert fast.tobytes() == ref.tobytes()
    assert fast.flags.writeable and not np.shares_memory(fast, raw.to_numpy())
