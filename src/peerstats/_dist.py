"""Tail probabilities and quantiles of t, normal, F and chi-square without ``scipy.stats``.

Importing :mod:`scipy.stats` costs 0.5-2 s of cold start (issue 22), and the model engine only
needs six functions of it. These wrappers call the SAME :mod:`scipy.special` routines that
``scipy.stats`` calls internally (scipy 1.17 ``_continuous_distns.py``: ``t._sf`` is
``stdtr(df, -x)``, ``t._ppf`` is ``stdtrit``, ``norm`` uses ``ndtr``/``ndtri``, ``f._sf`` is
``fdtrc``, ``f._ppf`` is ``fdtri``, ``chi2._sf`` is ``chdtrc``), so the numbers are bit-identical.
They also reproduce the argument handling of ``rv_continuous``: NaN for invalid parameters
(degrees of freedom <= 0 or NaN), the support's ends at probabilities 0 and 1 and, for F and
chi-square, 1 below the support.
``tests/test_dist.py`` checks them against ``scipy.stats`` (exact equality).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

__all__ = ["t_sf", "t_ppf", "norm_sf", "norm_ppf", "f_sf", "f_isf", "chi2_sf"]


def _out(value: np.ndarray) -> Any:
    """Return a numpy float for 0-d results (as ``scipy.stats`` does), else the array."""
    return value[()] if value.ndim == 0 else value


def _valid(*dfs: Any) -> np.ndarray:
    ok = np.asarray(True)
    for d in dfs:
        ok = ok & (np.asarray(d, dtype=float) > 0)
    return ok


def t_sf(x: Any, df: Any) -> Any:
    """Upper tail of Student's t (``scipy.stats.t.sf``); ``df = inf`` gives the normal."""
    x = np.asarray(x, dtype=float)
    df = np.asarray(df, dtype=float)
    return _out(np.where(_valid(df), special.stdtr(df, -x), np.nan))


def t_ppf(q: Any, df: Any) -> Any:
    """Quantile of Student's t (``scipy.stats.t.ppf``)."""
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = _valid(df) & (q >= 0) & (q <= 1)
    res = np.where(q == 0, -np.inf, np.where(q == 1, np.inf, special.stdtrit(df, q)))
    return _out(np.where(ok, res, np.nan))


def norm_sf(x: Any) -> Any:
    """Upper tail of the standard normal (``scipy.stats.norm.sf``)."""
    return _out(np.asarray(special.ndtr(-np.asarray(x, dtype=float))))


def norm_ppf(q: Any) -> Any:
    """Quantile of the standard normal (``scipy.stats.norm.ppf``)."""
    q = np.asarray(q, dtype=float)
    res = np.where(q == 0, -np.inf, np.where(q == 1, np.inf, special.ndtri(q)))
    return _out(np.where((q >= 0) & (q <= 1), res, np.nan))


def _sf_nonneg(x: np.ndarray, ok: np.ndarray, tail: np.ndarray) -> Any:
    """Apply rv_continuous's rules on support [0, inf): 1 below it, NaN for bad args or x."""
    res = np.where(x < 0, 1.0, tail)
    res = np.where(ok & ~np.isnan(x), res, np.nan)
    return _out(np.asarray(res, dtype=float))


def f_sf(x: Any, dfn: Any, dfd: Any) -> Any:
    """Upper tail of the F distribution (``scipy.stats.f.sf``)."""
    x = np.asarray(x, dtype=float)
    dfn = np.asarray(dfn, dtype=float)
    dfd = np.asarray(dfd, dtype=float)
    with np.errstate(invalid="ignore"):
        tail = special.fdtrc(dfn, dfd, np.where(x < 0, 0.0, x))
    return _sf_nonneg(x, _valid(dfn, dfd), tail)


def f_isf(q: Any, dfn: Any, dfd: Any) -> Any:
    """Inverse upper tail of F (``scipy.stats.f.isf``: ``fdtri(dfn, dfd, 1 - q)``)."""
    q = np.asarray(q, dtype=float)
    dfn = np.asarray(dfn, dtype=float)
    dfd = np.asarray(dfd, dtype=float)
    ok = _valid(dfn, dfd) & (q >= 0) & (q <= 1)
    res = np.where(q == 0, np.inf, np.where(q == 1, 0.0, special.fdtri(dfn, dfd, 1.0 - q)))
    return _out(np.where(ok, res, np.nan))


def chi2_ppf(q: Any, df: Any) -> Any:
    """Quantile of chi-square (``scipy.stats.chi2.ppf``: ``2 gammaincinv(df / 2, q)``)."""
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = _valid(df) & (q >= 0) & (q <= 1)
    res = np.where(q == 1, np.inf, 2.0 * special.gammaincinv(df / 2.0, q))
    return _out(np.where(ok, res, np.nan))


def chi2_sf(x: Any, df: Any) -> Any:
    """Upper tail of chi-square (``scipy.stats.chi2.sf``)."""
    x = np.asarray(x, dtype=float)
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        tail = special.chdtrc(df, np.where(x < 0, 0.0, x))
    return _sf_nonneg(x, _valid(df), tail)
