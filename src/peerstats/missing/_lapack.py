"""numpy.linalg's inv, cholesky and solve for the Gibbs samplers' inner loops (issue 22).

The two samplers (:mod:`._bayes`, :mod:`.multilevel`) factor and solve thousands of 2 x 2 to
9 x 9 matrices per run (about 11,000 calls in the bundled PEER analysis); each
``np.linalg`` call spends 2-3 microseconds on argument checks and on entering and leaving its
``np.errstate`` block, about as long as the LAPACK work itself. Inside :func:`lapack_block`
(one ``np.errstate`` for the whole loop, as ``np.linalg`` sets it for each call: an invalid
value raises :class:`numpy.linalg.LinAlgError`) :func:`inv`, :func:`cholesky` and
:func:`solve` call the same LAPACK-backed ufuncs of ``numpy.linalg._umath_linalg`` that
``np.linalg`` calls, with the same signature, on the same arrays: the same numbers, bit for bit
(tests/missing/test_lapack.py). Outside the block, or for arrays other than float64, or where
numpy lacks those ufuncs, they are ``np.linalg``'s functions.

Inside the block a failure raises LinAlgError with one message for all three (a singular or
not positive definite matrix), and any other operation producing an invalid value (NaN from
numbers) raises it too; overflow, division by zero and underflow are ignored, as np.linalg
ignores them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
from numpy.linalg import LinAlgError

try:  # the gufuncs np.linalg itself calls
    from numpy.linalg import _umath_linalg as _ul

    _INV, _CHOL, _SOLVE, _SOLVE1 = _ul.inv, _ul.cholesky_lo, _ul.solve, _ul.solve1
except (ImportError, AttributeError):  # pragma: no cover - another numpy: plain np.linalg
    _ul = None

__all__ = ["lapack_block", "inv", "cholesky", "solve"]

#: per thread (np.errstate is per thread too): how many lapack_block()s are open
_STATE = threading.local()


def _depth() -> int:
    return getattr(_STATE, "depth", 0)


def _raise(err: str, flag: int) -> None:
    raise LinAlgError(
        "an invalid value (NaN) in the sampler: a matrix is singular or not positive definite"
    )


@contextlib.contextmanager
def lapack_block() -> Iterator[None]:
    """A block in which :func:`inv`, :func:`cholesky` and :func:`solve` call LAPACK directly
    (see the module docstring)."""
    if _ul is None:
        yield
        return
    with np.errstate(call=_raise, invalid="call", over="ignore", divide="ignore",
                     under="ignore"):  # fmt: skip
        _STATE.depth = _depth() + 1
        try:
            yield
        finally:
            _STATE.depth -= 1


def inv(a: np.ndarray) -> np.ndarray:
    """``np.linalg.inv(a)``."""
    if _depth() and a.dtype == np.float64:
        return _INV(a, signature="d->d")
    return np.linalg.inv(a)


def cholesky(a: np.ndarray) -> np.ndarray:
    """``np.linalg.cholesky(a)`` (the lower factor)."""
    if _depth() and a.dtype == np.float64:
        return _CHOL(a, signature="d->d")
    return np.linalg.cholesky(a)


def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.solve(a, b)`` (``b`` of one dimension: a vector, as numpy >= 2 reads it)."""
    if _depth() and a.dtype == np.float64 and b.dtype == np.float64:
        if b.ndim == 1 and a.ndim == 2:
            return _SOLVE1(a, b, signature="dd->d")
        if b.ndim == a.ndim:
            return _SOLVE(a, b, signature="dd->d")
    return np.linalg.solve(a, b)
