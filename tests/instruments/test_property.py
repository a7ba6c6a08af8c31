"""Corrupting valid item data at random: a result with every row, or DataValidationError."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerstats.exceptions import DataValidationError
from peerstats.instruments import score

JUNK = st.one_of(
    st.none(),
    st.just(np.nan),
    st.integers(-5, 10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 6),
    edits=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6), JUNK), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_gad7_corruption_never_escapes(n, edits, seed):
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        rng.integers(0, 4, size=(n, 7)).astype(object), columns=[f"gad_{i}" for i in range(1, 8)]
    )
    for row, col, value in edits:
        data.iat[row % n, col] = value
    try:
        res = score(data, "GAD-7")
    except DataValidationError as err:
        assert len(err.failures) >= 1
        assert err.failures["row"].between(1, n).all()
        return
    assert res.total.index.equals(data.index)
    assert res.n_complete + res.n_prorated + res.n_missing == n
    ok = res.total.dropna()
    assert ((ok >= 0) & (ok <= 21)).all()
