"""The primary LMM on many completed datasets without a data frame per fit (issue 22).

The completed datasets of a Rubin's-rules imputation (bayes, approx-bayes; no resampling
weights) differ only in the imputed outcome values, so the primary partially nested model is
refitted on new responses (:class:`peerstats.models._lmm_many.ResponseRefitter`: designs,
blocks and likelihood built once) and only the per-visit contrasts' estimate, variance and df
are kept; Rubin's rules pool them as :func:`~peerstats.pipeline._sensitivity_model.pool_primary`
does. A refit the fast path cannot settle (it raised) is refitted by the analyser's plain
:func:`peerstats.lmm` path, which either fits it or fails as before (the analysis then fails
on that set, naming it; nothing is pooled over fewer sets).

In a tipping-point grid each imputation's refit starts from its optimum at the previous delta
(the same optimum, reached in fewer iterations); the MI analyses start from the primary fit's
variance parameters, as the plain path does, so their numbers are identical to it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError

__all__ = ["FastRefits", "fast_refits", "pool_fast", "pooled_fast", "warm_start"]

_RUBIN = ("bayes", "approx-bayes")


@dataclass
class FastRefits:
    """The refitter of one prepared design, its contrast keys ``(visit, contrast)`` and the
    rows of the completed datasets it uses."""

    refitter: Any
    keys: list[tuple[str, str]]
    prepared: Any
    by: str | None


def fast_refits(analyser: Any, imp: Any) -> FastRefits | None:
    """The fast path for ``imp``'s completed datasets, or None where it does not apply (not
    the LMM, not Rubin's rules, resampling weights or rows, a design the prepared model
    cannot reuse, a residual structure across visits)."""
    if analyser.kind != "lmm" or imp.method not in _RUBIN:
        return None
    if imp.weights is not None or imp.rows is not None:
        return None
    data0 = analyser.data(imp.datasets[0])
    fit = analyser._prepared(data0)
    prep = analyser.prepared
    if prep is None or getattr(fit, "__self__", None) is not prep or prep.d.structure is not None:
        return None
    visits = list(pd.unique(data0["visit"].astype(str)))
    by = "visit" if len(visits) > 1 else None
    fast = analyser._fast
    if fast is None or fast.prepared is not prep or fast.by != by:
        from peerstats.models._lmm_many import ResponseRefitter, contrast_rows

        try:
            keys, L = contrast_rows(prep.d.design, "arm", by, analyser.reference)
        except ModelSpecificationError:  # the plain path says what is wrong
            return None
        fast = FastRefits(ResponseRefitter(prep, L), keys, prep, by)
        analyser._fast = fast
    if by is None:
        fast.keys = [(visits[0], c) for _, c in fast.keys]
    return fast


def _responses(imp: Any, fast: FastRefits) -> np.ndarray | None:
    """(S, n_used) responses of the completed datasets on the model's rows, or None when a
    set's outcome is missing elsewhere than in the prepared data (other rows)."""
    Y = imp.completed().reshape(imp.n_imputations, -1)
    observed = fast.prepared._observed
    if Y.shape[1] != observed.size or not np.array_equal(
        ~np.isnan(Y), np.broadcast_to(observed, Y.shape)
    ):
        return None
    Yr = Y[:, fast.refitter.rows]
    return Yr if np.all(np.isfinite(Yr)) else None


def _start(analyser: Any, fast: FastRefits) -> np.ndarray | None:
    """The primary fit's variance parameters (None where their length does not fit: the plain
    path then starts from the moment-based start, and so does this one)."""
    if analyser.start is not None and analyser.start.size != fast.refitter.n_theta:
        analyser.start = None
    return analyser.start


def _plain(analyser: Any, imp: Any, i: int, keys: list) -> tuple[np.ndarray, ...]:
    """Set ``i`` by the analyser's plain path (peerstats.lmm): estimate, variance, df."""
    ct = analyser.contrasts(imp.datasets[i]).set_index(["visit", "contrast"]).loc[keys]
    se = ct["std_error"].to_numpy(float)
    return ct["estimate"].to_numpy(float), se**2, ct["df"].to_numpy(float)


def _refit_all(imp, analyser, fast, Y, warm) -> tuple[np.ndarray, ...]:
    """Every set refitted: (S, k) estimates, variances, df, and (S, K) optima (NaN rows where
    the plain path fitted the set). Raises as :meth:`Imputations.analyse` when a set fails."""
    S, k = Y.shape[0], len(fast.keys)
    E, V, D = np.empty((S, k)), np.empty((S, k)), np.empty((S, k))
    thetas = np.full((S, fast.refitter.n_theta), np.nan)
    failed = []
    base = _start(analyser, fast)
    starts = np.full((S, fast.refitter.n_theta), np.nan)
    for i in range(S):
        start = warm[i] if warm is not None and np.all(np.isfinite(warm[i])) else base
        if start is not None:
            starts[i] = start
    from peerstats.models._reml import blas_threads

    with blas_threads():  # many small matrices: one BLAS thread, as every lmm fit
        batch = fast.refitter.refit_many(Y, starts)
    for i in range(S):
        start = starts[i] if np.all(np.isfinite(starts[i])) else None
        try:
            r = batch[i] or fast.refitter.refit(Y[i], start)
        except Exception:  # noqa: BLE001 - the plain path fits the set or says why not
            try:
                E[i], V[i], D[i] = _plain(analyser, imp, i, fast.keys)
            except Exception as exc:  # noqa: BLE001 - reported below, never pooled over
                failed.append((i, exc))
            continue
        analyser.n_fits += 1
        analyser.n_singular += r.singular
        E[i], V[i], D[i], thetas[i] = r.estimate, r.variance, r.df, r.theta
    if failed:
        i, exc = failed[0]
        raise ModelSpecificationError(
            f"the analysis failed on {len(failed)} of {S} completed datasets (first: set {i}: "
            f"{exc!r}); peerstats does not pool over fewer sets"
        )
    return E, V, D, thetas


def _warn_singular(analyser: Any, before: tuple[int, int], stacklevel: int = 3) -> None:
    """One warning counting the singular fits since ``before`` (n_fits, n_singular)."""
    n_sing = analyser.n_singular - before[1]
    if n_sing:
        from peerstats.exceptions import SingularFitWarning

        warnings.warn(
            f"the primary model's fit was singular (a variance component estimated at zero) on "
            f"{n_sing} of {analyser.n_fits - before[0]} imputed data sets",
            SingularFitWarning,
            stacklevel=stacklevel,
        )


def pool_fast(
    imp: Any, analyser: Any, fast: FastRefits, warm: np.ndarray | None = None
) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    """The pooled table of :func:`pool_primary` by the fast path, and the optima of the sets
    (the warm starts of the next tipping-point cell); (None, None) when the responses do not
    fit the prepared design (the caller takes the plain path)."""
    from peerstats.missing.pooling import POOL_COLUMNS

    pooled, thetas = pooled_fast(imp, analyser, fast, warm)
    if pooled is None:
        return None, None
    cols = {"visit": [v for v, _ in fast.keys], "contrast": [c for _, c in fast.keys]}
    cols.update((c, pooled[c]) for c in POOL_COLUMNS)
    return pd.DataFrame(cols), thetas


def pooled_fast(
    imp: Any,
    analyser: Any,
    fast: FastRefits,
    warm: np.ndarray | None = None,
    *,
    stacklevel: int = 5,
) -> tuple[dict[str, np.ndarray] | None, np.ndarray | None]:
    """:func:`pool_fast` without the table: the pooled columns (``POOL_COLUMNS``, one value
    per key of ``fast.keys``) and the optima; (None, None) where the fast path does not fit.
    ``stacklevel`` of the singular-fit warning: the default (5) names the caller of
    :func:`pool_fast`'s caller, 4 the caller of this function's caller."""
    from peerstats.missing.pooling import POOL_COLUMNS, _check_pool_options, pool_arrays

    _check_pool_options(analyser.level, "percentile")
    Y = _responses(imp, fast)
    if Y is None:
        return None, None
    before = (analyser.n_fits, analyser.n_singular)
    E, V, D, thetas = _refit_all(imp, analyser, fast, Y, warm)
    _warn_singular(analyser, before, stacklevel=stacklevel)
    dfc = np.mean(D, axis=0)
    dfc = None if not np.all(np.isfinite(dfc)) else dfc
    pooled = pool_arrays(E, V, dfc, level=analyser.level)
    return {c: np.atleast_1d(pooled[c]) for c in POOL_COLUMNS}, thetas


def warm_start(done: list, cell: np.ndarray) -> np.ndarray | None:
    """Per imputation, the start of the refits of grid cell ``cell`` from the cells ``done``
    (cell, optima): the previous optimum, moved along the line through the last two optima
    when the last three cells are on one line (a 1-D grid); None before the first cell. Only
    the start changes: the optimum is the same, reached in fewer Newton steps."""
    if not done or done[-1][1] is None:
        return None
    c1, t1 = done[-1]
    if len(done) < 2 or done[-2][1] is None:
        return t1
    c0, t0 = done[-2]
    step0, step1 = np.asarray(c1) - np.asarray(c0), np.asarray(cell) - np.asarray(c1)
    k = float(step1 @ step0) / float(step0 @ step0) if np.any(step0) else 0.0
    if not np.allclose(step1, k * step0) or not 0 < k <= 2:
        return t1
    pred = t1 + k * (t1 - t0)
    return np.where(np.isfinite(pred), pred, t1)
