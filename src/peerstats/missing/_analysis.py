"""Per-visit ANCOVA on many completed datasets at once, and pooling by the method's rule.

Every completed set has the same design at a visit (arm + baseline covariates are complete);
only the outcome (and, for jackknife / bootstrap sets, the subject frequency weights) change.
So all sets are one least-squares solve: beta_s = (X'W_sX)^-1 X'W_s y_s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.missing.pooling import (
    pool_arrays,
    pool_bmlmi,
    pool_bootstrap,
    pool_jackknife,
)

__all__ = ["ancova_design", "ancova_many", "pool_by_method"]


def ancova_design(
    frame: pd.DataFrame, arm: str, arm_levels: Sequence[str], reference: str, covariates
) -> tuple[np.ndarray, list[str], list[str]]:
    """Design (n, q): intercept, one dummy per non-reference arm, covariates (factors as
    treatment-coded dummies). Returns X, column names, non-reference arms in order."""
    arms = frame[arm].astype(str).to_numpy()
    others = [a for a in arm_levels if a != reference]
    cols = [np.ones(len(frame))]
    names = ["(Intercept)"]
    for a in others:
        cols.append((arms == a).astype(float))
        names.append(f"{arm}[{a}]")
    for c in covariates:
        s = frame[c]
        if s.isna().any():
            raise ModelSpecificationError(
                f"covariate {c!r} is missing for {int(s.isna().sum())} subject(s) at some visit; "
                "analysis covariates must be complete (baseline values)"
            )
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            cat = s.astype("category")
            levels = list(cat.cat.categories)
            for lev in levels[1:]:
                cols.append((cat == lev).to_numpy(dtype=float))
                names.append(f"{c}[{lev}]")
        else:
            cols.append(s.to_numpy(dtype=float))
            names.append(c)
    X = np.column_stack(cols)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ModelSpecificationError(
            f"the analysis design {names} is rank deficient at a visit (a constant or "
            "collinear covariate, or an arm without subjects)"
        )
    return X, names, others


def ancova_many(X: np.ndarray, Y: np.ndarray, W: np.ndarray | None, n_arms_other: int):
    """OLS of every row of Y (S, n) on X (n, q), with frequency weights W (S, n) or None.

    Returns (beta (S, q), cov (S, q, q), df_residual (S,), xbar (S, q)).
    """
    S, n = Y.shape
    q = X.shape[1]
    if W is None:
        G = X.T @ X
        Gi = np.linalg.inv(G)
        beta = Y @ X @ Gi  # Gi symmetric
        R = Y - beta @ X.T
        dfr = np.full(S, float(n - q))
        s2 = (R**2).sum(axis=1) / dfr
        cov = s2[:, None, None] * Gi[None]
        xbar = np.broadcast_to(X.mean(axis=0), (S, q))
    else:
        G = np.einsum("sn,nq,nr->sqr", W, X, X, optimize=True)
        Xy = (W * Y) @ X
        Gi = np.linalg.inv(G)
        beta = np.einsum("sqr,sr->sq", Gi, Xy)
        R = Y - beta @ X.T
        dfr = W.sum(axis=1) - q
        s2 = (W * R**2).sum(axis=1) / dfr
        cov = s2[:, None, None] * Gi
        xbar = (W @ X) / W.sum(axis=1, keepdims=True)
    return beta, cov, dfr, xbar


def pool_by_method(
    method: str, est: np.ndarray, var: np.ndarray, dfc, *, level, D=None, bootstrap="percentile"
) -> dict:
    """Pool (S, k) estimates by the rule of the imputation method."""
    if method in ("bayes", "approx-bayes", "rubin"):
        return pool_arrays(est, var, dfc, level=level)
    if method == "condmean-jackknife":
        return pool_jackknife(est, level=level)
    if method == "condmean-bootstrap":
        return pool_bootstrap(est, level=level, type=bootstrap)
    if method == "bootstrap-ml":
        return pool_bmlmi(est, D, level=level)
    raise ModelSpecificationError(f"no pooling rule for method {method!r}")  # pragma: no cover
