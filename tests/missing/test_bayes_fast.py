"""The Gibbs sampler's einsum replacements (issue 22) give numpy's einsum numbers bit for bit.

``missing/_bayes.py`` computes two contractions per iteration as the matrix products that
``np.einsum(..., optimize=True)`` itself makes of them, without einsum's per-call path search.
The outside reference is numpy's own einsum on the same operands: the results must be equal
(tolerance 0: the pipeline's outputs are compared byte for byte, issue 22). Synthetic arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from peerstats.missing._bayes import _contract_design, _design_rows, _weight_rows


@pytest.mark.parametrize("G", [1, 2, 3])
@pytest.mark.parametrize("T", [1, 2, 3, 5])
@pytest.mark.parametrize("C", [1, 2, 20])
def test_contractions_equal_einsum_bit_for_bit(G: int, T: int, C: int) -> None:
    rng = np.random.default_rng(G * 100 + T * 10 + C)
    p, n = 9, 57
    Sinv = np.linalg.inv(rng.normal(size=(C, G, T, T)) + 4 * np.eye(T))
    SXX = rng.normal(size=(G, T, T, p, p))
    want = np.einsum("cgjk,gjkpq->cpq", Sinv, SXX, optimize=True)
    got = _contract_design(Sinv, SXX, _design_rows(SXX))
    assert got.shape == want.shape and np.array_equal(got, want)
    Yc = rng.normal(size=(C, n, T))
    gsub = rng.integers(0, G, n)
    want = np.einsum("cnj,cnjk->cnk", Yc, Sinv[:, gsub], optimize=True)
    got = _weight_rows(Yc, Sinv, gsub)
    assert got.shape == want.shape and np.array_equal(got, want)
