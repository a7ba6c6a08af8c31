"""The non-parametric bootstrap of incremental cost and effect, vectorised and Dask-ready.

Each replicate resamples, within each arm (stratified by arm), the arm's resampling units:
participants, or delivery groups when ``cluster`` is given (participants without a group, e.g.
the usual-care arm of a partially nested trial, are their own unit). A replicate is a vector of
case weights w (how often each participant was drawn). Because the two equations of the SUR
share their regressors, SUR equals equation-by-equation OLS (Zellner 1962), so each replicate's
incremental cost and effect are the arm coefficients of one weighted least-squares fit with two
responses: beta_b = (X'W_bX)^{-1} X'W_bY, computed for a whole chunk of replicates at once.

Replicates come in chunks of a fixed size; chunk c draws from child c of
``numpy.random.SeedSequence(seed).spawn(n_chunks)``, BLAS is pinned to one thread inside every
chunk (threadpoolctl), so the replicates are identical in-process and on any number of Dask
workers (the pattern of ``peerstats.missing.tipping``).

Why our own code: statsmodels/linearmodels refit one model per replicate (seconds per thousand);
``scipy.stats.bootstrap`` has no stratified or clustered resampling and no bias-corrected
percentile (only BCa, which needs a jackknife of the whole fit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["bootstrap_increments", "bc_interval", "increments", "CHUNK"]

#: replicates per task (fixed, so the answer does not depend on the number of workers)
CHUNK = 250


def _units(arm_codes: np.ndarray, cluster: np.ndarray | None) -> list[tuple[np.ndarray, int]]:
    """Per arm: the unit index of each participant (-1 outside the arm) and the unit count."""
    out = []
    for a in np.unique(arm_codes):
        rows = np.flatnonzero(arm_codes == a)
        unit = np.full(len(arm_codes), -1)
        if cluster is None:
            unit[rows] = np.arange(len(rows))
        else:
            labels = [f"c:{c}" if c is not None and c == c and c != "" else f"i:{i}"
                      for i, c in zip(rows, cluster[rows])]  # fmt: skip
            _, codes = np.unique(labels, return_inverse=True)
            unit[rows] = codes
        out.append((unit, int(unit.max()) + 1))
    return out


def _weights(rng: np.random.Generator, units: list[tuple[np.ndarray, int]], b: int, n: int):
    """Case weights (b, n): how often each participant is drawn in each replicate."""
    W = np.zeros((b, n))
    for unit, k in units:
        draws = rng.integers(0, k, size=(b, k))
        counts = np.zeros((b, k))
        np.add.at(counts, (np.repeat(np.arange(b), k), draws.ravel()), 1.0)
        inside = unit >= 0
        W[:, inside] = counts[:, unit[inside]]
    return W


def _wls_many(X: np.ndarray, Y: np.ndarray, W: np.ndarray, col: int) -> np.ndarray:
    """Arm coefficients (b, q) of the weighted LS fits of Y (n, q) on X (n, p), weights W (b, n)."""
    XW = W[:, :, None] * X[None, :, :]  # (b, n, p)
    XtWX = np.einsum("bnp,nq->bpq", XW, X)
    XtWY = np.einsum("bnp,nk->bpk", XW, Y)
    try:
        beta = np.linalg.solve(XtWX, XtWY)
    except np.linalg.LinAlgError:  # a covariate level absent from some replicate
        beta = np.stack([np.linalg.pinv(A) @ r for A, r in zip(XtWX, XtWY)])
    return beta[:, col, :]


def increments(blocks, Y: np.ndarray, W: np.ndarray, col: int) -> np.ndarray:
    """(b, q) arm coefficients; ``blocks`` is [(X, response columns)]: one block when both
    equations share their regressors (SUR = OLS), one per equation otherwise (OLS each)."""
    out = np.empty((len(W), Y.shape[1]))
    for X, idx in blocks:
        out[:, idx] = _wls_many(X, Y[:, idx], W, col)
    return out


def run_chunk(payload: dict, seeds: Sequence[np.random.SeedSequence], sizes: Sequence[int]):
    """Replicates for a list of chunks; returns (sum(sizes), q) increments."""
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=1):
        # fresh copies: a deserialised buffer may be aligned differently (SIMD summation order)
        blocks = [(np.array(X, copy=True), list(idx)) for X, idx in payload["blocks"]]
        Y = np.array(payload["Y"], copy=True)
        for seed, size in zip(seeds, sizes):
            rng = np.random.default_rng(seed)
            W = _weights(rng, payload["units"], size, len(Y))
            out.append(increments(blocks, Y, W, payload["col"]))
    return np.vstack(out)


def bootstrap_increments(
    blocks: list,
    Y: np.ndarray,
    *,
    col: int,
    arm_codes: np.ndarray,
    cluster: np.ndarray | None,
    n_boot: int,
    seed: Any,
    client: Any = None,
) -> np.ndarray:
    """(n_boot, q) bootstrap replicates of the arm coefficient of each column of Y."""
    payload = {"blocks": blocks, "Y": Y, "col": col, "units": _units(arm_codes, cluster)}
    n_chunks = math.ceil(n_boot / CHUNK)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(n_chunks)
    sizes = [min(CHUNK, n_boot - c * CHUNK) for c in range(n_chunks)]
    if client is None:
        return run_chunk(payload, seeds, sizes)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    per_task = max(1, math.ceil(n_chunks / (2 * n_workers)))
    [pf] = client.scatter([payload], broadcast=True, hash=False)
    futures = [
        client.submit(run_chunk, pf, seeds[s : s + per_task], sizes[s : s + per_task], pure=False)
        for s in range(0, n_chunks, per_task)
    ]
    return np.vstack(client.gather(futures))


def bc_interval(replicates: np.ndarray, estimate: np.ndarray, level: float) -> np.ndarray:
    """Bias-corrected percentile intervals (Efron & Tibshirani 1993, section 14.3).

    ``replicates`` (B, m), ``estimate`` (m,). z0 = Phi^{-1}(#{theta_b < theta} + #{=}/2) / B);
    the limits are the Phi(2 z0 + z_{alpha/2}) and Phi(2 z0 + z_{1-alpha/2}) quantiles of the
    replicates (linear interpolation, R's type 7). Returns (m, 2); NaN where z0 is infinite.
    """
    R = np.asarray(replicates, dtype=float)
    est = np.asarray(estimate, dtype=float)
    below = (R < est).mean(axis=0) + 0.5 * (R == est).mean(axis=0)
    z0 = stats.norm.ppf(below)
    z = stats.norm.ppf([(1 - level) / 2, (1 + level) / 2])
    out = np.full((R.shape[1], 2), np.nan)
    for j in range(R.shape[1]):
        if np.isfinite(z0[j]):
            p = stats.norm.cdf(2 * z0[j] + z)
            out[j] = np.quantile(R[:, j], p)
    return out
