"""missing/_lapack (issue 22): inside lapack_block the samplers' inv, cholesky and solve are
np.linalg's, bit for bit (the reference: numpy.linalg itself, tolerance 0), and a singular or
indefinite matrix still raises LinAlgError. Synthetic matrices."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.linalg import LinAlgError

from peerstats.missing import _lapack as la


def _spd(rng, shape, m):
    a = rng.normal(size=(*shape, m, m))
    return a @ np.swapaxes(a, -1, -2) + m * np.eye(m)


@pytest.mark.parametrize("m", [1, 2, 3, 9])
@pytest.mark.parametrize("shape", [(), (4,), (3, 2)])
def test_same_numbers_as_np_linalg(m, shape):
    rng = np.random.default_rng(m * 10 + len(shape))
    a = _spd(rng, shape, m)
    at = np.swapaxes(a, -1, -2)  # a non-contiguous view, as the samplers pass
    b = rng.normal(size=(*shape, m, 2))
    with la.lapack_block():
        got = [la.inv(a), la.cholesky(a), la.solve(a, b), la.solve(at, b), la.inv(at)]
        vec = la.solve(a, b[..., 0]) if not shape else None
    want = [np.linalg.inv(a), np.linalg.cholesky(a), np.linalg.solve(a, b),
            np.linalg.solve(at, b), np.linalg.inv(at)]  # fmt: skip
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g, w)
    if vec is not None:
        assert np.array_equal(vec, np.linalg.solve(a, b[..., 0]))


def test_failures_raise_inside_and_outside_the_block():
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # indefinite
    sing = np.zeros((2, 2))
    with la.lapack_block():
        with pytest.raises(LinAlgError):
            la.cholesky(bad)
        with pytest.raises(LinAlgError):
            la.inv(sing)
        with pytest.raises(LinAlgError):
            la.solve(sing, np.ones((2, 1)))
    with pytest.raises(LinAlgError):  # outside: np.linalg's own
        la.cholesky(bad)
    assert la._depth() == 0


def test_the_block_is_per_thread():
    """Another thread is not inside this thread's block (np.errstate is per thread)."""
    import threading

    seen = []
    with la.lapack_block():
        t = threading.Thread(target=lambda: seen.append(la._depth()))
        t.start()
        t.join()
        assert la._depth() == 1
    assert seen == [0]
