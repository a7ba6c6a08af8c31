"""Conditional moments of a subject's missing visits given its observed ones (multivariate normal).

For subject i with observed rows o and missing rows m (visits), marginal means mu and covariance
Sigma_i over the visits:

    E[y_m | y_o] = mu_m + Sigma_mo Sigma_oo^-1 (y_o - mu_o)
    Var[y_m | y_o] = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om

(a subject with no observed row: mu_m and Sigma_mm). Subjects are grouped by their pattern of
(observed, missing) visits and each group is solved as one batched array, so the cost is a few
array operations per pattern, not per subject. This is SAS PROC MIXED's ``outp=`` conditional
mean and R mmrm's ``predict(conditional = TRUE)``; conditional-mean imputation and joint draws
(multiple imputation) use the same moments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from peerstats.exceptions import ModelSpecificationError

__all__ = ["conditional_moments", "ConditionalBlocks", "PatternBlock"]


@dataclass(frozen=True)
class PatternBlock:
    """Subjects sharing one pattern: their missing rows and conditional covariances.

    ``subjects`` (n,), ``rows`` (n, k) row positions of the missing rows (in visit order),
    ``cov`` (n, k, k) the conditional covariance of those rows given the observed ones.
    """

    subjects: np.ndarray
    rows: np.ndarray
    cov: np.ndarray


class ConditionalBlocks(Mapping):
    """Per subject code: ``(rows, cov)`` of its missing rows (a Mapping over subject codes).

    ``.blocks`` holds the same content grouped by pattern (:class:`PatternBlock`), the fast
    form for joint draws: ``mean[b.rows] + (cholesky(b.cov) @ z[..., None])[..., 0]``.
    """

    def __init__(self, blocks: list[PatternBlock]) -> None:
        self.blocks = blocks
        self._where = {}
        for j, b in enumerate(blocks):
            for i, s in enumerate(b.subjects):
                self._where[int(s)] = (j, i)

    def __getitem__(self, subject: int) -> tuple[np.ndarray, np.ndarray]:
        j, i = self._where[int(subject)]
        b = self.blocks[j]
        return b.rows[i], b.cov[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def conditional_moments(
    mu: np.ndarray,
    y: np.ndarray,
    subject_codes: np.ndarray,
    visit_codes: np.ndarray,
    sigma_of_subject: Callable[[int], np.ndarray] | np.ndarray,
) -> tuple[np.ndarray, ConditionalBlocks]:
    """Conditional means and covariances of the missing rows given each subject's observed rows.

    Parameters
    ----------
    mu : array (n_rows,)
        Marginal mean of every row (e.g. ``X_all @ beta``).
    y : array (n_rows,)
        Outcome, NaN where missing (the rows to predict).
    subject_codes, visit_codes : int arrays (n_rows,)
        Subject code (0..n_subjects-1) and visit position (0..T-1) of each row; rows with a
        negative code are left out (their mean is NaN).
    sigma_of_subject : callable or array
        ``sigma_of_subject(code) -> (T, T)``, an array (n_subjects, T, T), or one (T, T) matrix
        for every subject: each subject's covariance over all visits.

    Returns
    -------
    mean : array (n_rows,)
        ``y`` where observed, the conditional mean where missing (NaN for rows without codes).
    cov_blocks : ConditionalBlocks
        Per subject with a missing row: the row positions and conditional covariance (k, k).

    Notes
    -----
    Validated against R mmrm ``predict(conditional = TRUE)`` on the FEV data
    (tests/reference/r_predict/).
    """
    mu = np.asarray(mu, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    sc = np.asarray(subject_codes, dtype=np.int64).reshape(-1)
    vc = np.asarray(visit_codes, dtype=np.int64).reshape(-1)
    n = len(y)
    if not (len(mu) == len(sc) == len(vc) == n):
        raise ModelSpecificationError("mu, y, subject_codes and visit_codes must have equal length")
    valid = (sc >= 0) & (vc >= 0)
    mean = np.where(np.isnan(y), np.nan, y)
    mean[~valid] = np.nan
    n_subj = int(sc[valid].max()) + 1 if valid.any() else 0
    T = int(vc[valid].max()) + 1 if valid.any() else 0
    if callable(sigma_of_subject):
        sig = None
    else:
        sig = np.asarray(sigma_of_subject, dtype=float)
        if sig.ndim == 2:
            T = max(T, sig.shape[0])
        elif sig.ndim == 3:
            if sig.shape[0] < n_subj:
                raise ModelSpecificationError(
                    f"sigma_of_subject has {sig.shape[0]} subjects; codes go up to {n_subj - 1}"
                )
            T = max(T, sig.shape[1])
        else:
            raise ModelSpecificationError("sigma_of_subject must be (T, T) or (n_subjects, T, T)")
    if T > 62:
        raise ModelSpecificationError("at most 62 visits")
    rows = np.flatnonzero(valid)
    miss = np.isnan(y[rows])
    # pattern masks per subject: observed visits and missing visits
    bit = np.left_shift(np.int64(1), vc[rows])
    omask = np.zeros(n_subj, dtype=np.int64)
    mmask = np.zeros(n_subj, dtype=np.int64)
    np.bitwise_or.at(omask, sc[rows[~miss]], bit[~miss])
    np.bitwise_or.at(mmask, sc[rows[miss]], bit[miss])
    if np.any(omask & mmask):
        raise ModelSpecificationError("a subject has two rows at the same visit")
    # row position of (subject, visit)
    pos = np.full((n_subj, T), -1, dtype=np.int64)
    pos[sc[rows], vc[rows]] = rows
    has_missing = np.flatnonzero(mmask)
    blocks: list[PatternBlock] = []
    if has_missing.size == 0:
        return mean, ConditionalBlocks(blocks)
    key = omask[has_missing] * (np.int64(1) << 31) + mmask[has_missing] if T <= 31 else None
    if key is None:  # pragma: no cover - more than 31 visits
        key = np.array([hash((a, b)) for a, b in zip(omask[has_missing], mmask[has_missing])])
    ukeys, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    for u in range(len(ukeys)):
        subs = has_missing[inv == u]
        om, mm = int(omask[subs[0]]), int(mmask[subs[0]])
        ov = np.array([t for t in range(T) if om >> t & 1], dtype=np.int64)
        mv = np.array([t for t in range(T) if mm >> t & 1], dtype=np.int64)
        if sig is None:
            S = np.stack([np.asarray(sigma_of_subject(int(s)), dtype=float) for s in subs])
        elif sig.ndim == 2:
            S = np.broadcast_to(sig, (len(subs), *sig.shape))
        else:
            S = sig[subs]
        r_m = pos[subs][:, mv]  # (n, k)
        Smm = S[:, mv[:, None], mv[None, :]]
        if ov.size:
            r_o = pos[subs][:, ov]
            Soo = S[:, ov[:, None], ov[None, :]]
            Smo = S[:, mv[:, None], ov[None, :]]
            resid = y[r_o] - mu[r_o]  # (n, o)
            # K = Smo Soo^-1 via a batched solve of Soo K' = Som
            Kt = np.linalg.solve(Soo, np.swapaxes(Smo, 1, 2))  # (n, o, k)
            cm = mu[r_m] + np.einsum("nok,no->nk", Kt, resid)
            cov = Smm - Smo @ Kt
        else:
            cm = mu[r_m]
            cov = np.array(Smm, copy=True)
        cov = (cov + np.swapaxes(cov, 1, 2)) / 2
        mean[r_m] = cm
        blocks.append(PatternBlock(subjects=subs, rows=r_m, cov=cov))
    return mean, ConditionalBlocks(blocks)
