"""Reference-based imputation strategies (Carpenter, Roger & Kenward 2013), as rbmi.

For subject i with intercurrent event (ICE) at visit index k (the first visit whose outcome is
not missing at random; k = T when the subject has no non-MAR ICE), own-arm marginal means
``mu_own`` and reference-arm means ``mu_ref`` (the same covariates with the arm set to the
reference arm), and covariances ``S_own`` (the subject's covariance group) and ``S_ref``:

* ``MAR``: mean mu_own, covariance S_own.
* ``JR`` (jump to reference): mean mu_own before k, mu_ref from k on; covariance
  :func:`compute_sigma`.
* ``CR`` (copy reference): mean mu_ref, covariance S_ref.
* ``CIR`` (copy increments in reference): mean mu_own before k, and
  mu_own[k-1] + (mu_ref[j] - mu_ref[k-1]) for j >= k; covariance :func:`compute_sigma`;
  with k = 0 the reference distribution.
* ``LMCF`` (last mean carried forward): mean mu_own before k, mu_own[k-1] from k on;
  covariance S_own (needs k >= 1).

JR and CIR with k = 0 use (mu_ref, S_ref); with k = T every strategy is MAR.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STRATEGIES", "compute_sigma", "strategy_means", "conditional_impute"]

STRATEGIES = ("MAR", "JR", "CR", "CIR", "LMCF")
NON_MAR = ("JR", "CR", "CIR", "LMCF")


def compute_sigma(s_own: np.ndarray, s_ref: np.ndarray, k: int) -> np.ndarray:
    """Covariance after an ICE at visit index k under JR/CIR (Carpenter et al. 2013; rbmi).

    Pre-ICE block from the own arm, the conditional law of the post-ICE visits given the
    pre-ICE ones from the reference arm:
    S11 = T11, S21 = R21 R11^-1 T11, S22 = R22 - R21 R11^-1 (R11 - T11) R11^-1 R12,
    with T = s_own, R = s_ref. Works on stacked (..., T, T) arrays.
    """
    s_own = np.asarray(s_own, dtype=float)
    s_ref = np.asarray(s_ref, dtype=float)
    T = s_own.shape[-1]
    if k >= T:
        return s_own
    if k <= 0:
        return s_ref
    a, b = slice(0, k), slice(k, T)
    T11 = s_own[..., a, a]
    R11 = s_ref[..., a, a]
    R21 = s_ref[..., b, a]
    R22 = s_ref[..., b, b]
    R11i = np.linalg.inv(R11)
    S21 = R21 @ R11i @ T11
    S22 = R22 - R21 @ R11i @ (R11 - T11) @ R11i @ np.swapaxes(R21, -1, -2)
    out = np.empty(np.broadcast_shapes(s_own.shape, s_ref.shape))
    out[..., a, a] = T11
    out[..., b, a] = S21
    out[..., a, b] = np.swapaxes(S21, -1, -2)
    out[..., b, b] = S22
    return out


def strategy_means(
    mu_own: np.ndarray, mu_ref: np.ndarray, ice: np.ndarray, strategy: np.ndarray
) -> np.ndarray:
    """Per-subject means under each subject's strategy.

    ``mu_own``, ``mu_ref``: (..., n, T) marginal means; ``ice``: (n,) first non-MAR visit index
    (T = none); ``strategy``: (n,) strategy names. Returns (..., n, T).
    """
    mu = np.array(mu_own, dtype=float, copy=True)
    n, T = mu.shape[-2:]
    j = np.arange(T)
    post = j[None, :] >= ice[:, None]  # (n, T)
    strategy = np.asarray(strategy)
    for s in NON_MAR:
        sel = (strategy == s) & (ice < T)
        if not sel.any():
            continue
        idx = np.flatnonzero(sel)
        k = ice[idx]
        P = post[idx]  # (m, T)
        own = mu_own[..., idx, :]
        ref = mu_ref[..., idx, :]
        if s == "JR":
            new = np.where(P, ref, own)
        elif s == "CR":
            new = ref
        elif s == "CIR":
            km1 = np.maximum(k - 1, 0)
            last_own = np.take_along_axis(
                own, np.broadcast_to(km1[:, None], own.shape[:-1] + (1,)), -1
            )
            last_ref = np.take_along_axis(
                ref, np.broadcast_to(km1[:, None], ref.shape[:-1] + (1,)), -1
            )
            new = np.where(P, last_own + ref - last_ref, own)
            new = np.where((k == 0)[:, None], ref, new)
        else:  # LMCF (k >= 1 checked on entry)
            km1 = np.maximum(k - 1, 0)
            last_own = np.take_along_axis(
                own, np.broadcast_to(km1[:, None], own.shape[:-1] + (1,)), -1
            )
            new = np.where(P, last_own, own)
        mu[..., idx, :] = new
    return mu


def conditional_impute(
    mu: np.ndarray,
    y: np.ndarray,
    cond: np.ndarray,
    target: np.ndarray,
    cov_key: np.ndarray,
    covs: dict,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Conditional means (``rng=None``) or draws of the target cells given the conditioning ones.

    mu : (D, n, T) strategy means per draw; y : (n, T) outcomes (NaN where missing);
    cond : (n, T) bool, cells conditioned on (observed and MAR); target : (n, T) bool, cells
    to impute; cov_key : (n,) int, index into ``covs``; covs : {key: (D, T, T)} covariance per
    draw. Returns (D, n_target) values in row-major order of ``target``.

    Subjects are grouped by (covariance, conditioning pattern, target pattern); each group is
    one batched solve over draws and subjects:
    E[y_M | y_O] = mu_M + S_MO S_OO^-1 (y_O - mu_O), Cov = S_MM - S_MO S_OO^-1 S_OM.
    """
    D, n, T = mu.shape
    pos = np.full((n, T), -1, dtype=np.int64)
    pos[target] = np.arange(int(target.sum()))
    out = np.empty((D, int(target.sum())))
    bits = 1 << np.arange(T)
    ckey = (cond * bits).sum(axis=1)
    tkey = (target * bits).sum(axis=1)
    key = (cov_key.astype(np.int64) << 2 * T) | (ckey << T) | tkey
    has = tkey > 0
    uk, inv = np.unique(key[has], return_inverse=True)
    subj_all = np.flatnonzero(has)
    for g in range(len(uk)):
        subj = subj_all[inv == g]
        ck = int(cov_key[subj[0]])
        Ob = np.flatnonzero(cond[subj[0]])
        M = np.flatnonzero(target[subj[0]])
        S = covs[ck]  # (D, T, T)
        mu_s = mu[:, subj, :]  # (D, m, T)
        if Ob.size:
            SOO = S[:, Ob[:, None], Ob[None, :]]
            SMO = S[:, M[:, None], Ob[None, :]]
            A = np.linalg.solve(SOO, np.swapaxes(SMO, 1, 2))  # (D, |Ob|, |M|)
            A = np.swapaxes(A, 1, 2)  # (D, |M|, |Ob|)
            r = y[subj][:, Ob][None] - mu_s[:, :, Ob]  # (D, m, |Ob|)
            mean = mu_s[:, :, M] + r @ np.swapaxes(A, 1, 2)
        else:
            A = None
            mean = mu_s[:, :, M]
        if rng is not None:
            C = S[:, M[:, None], M[None, :]]
            if A is not None:
                C = C - A @ S[:, Ob[:, None], M[None, :]]
            L = np.linalg.cholesky((C + np.swapaxes(C, 1, 2)) / 2)
            z = rng.standard_normal((D, subj.size, M.size))
            mean = mean + z @ np.swapaxes(L, 1, 2)
        out[:, pos[subj[:, None], M[None, :]]] = mean
    return out
