"""Multiple imputation of missing costs and QALYs, then the bootstrap ("MI then bootstrap").

Costs and QALYs are imputed jointly by :func:`peerstats.impute` (``method="bayes"``): each
participant's (cost, effect) pair is treated as two "visits" of an MMRM with unstructured
covariance, means by arm and covariates per outcome, i.e. a bivariate normal imputation model
conditional on arm and covariates, with posterior draws of its parameters (Gibbs sampler). The
outcomes are scaled by their observed SDs before imputation and scaled back (the model is
equivariant to that). Each completed dataset is then bootstrapped as by
:func:`peerstats.cost_effectiveness` (stratified by arm, clustered when asked).

Pooling ("MI then bootstrap, pooled sample", Schomaker & Heumann 2018; compared for
cost-effectiveness data by Brand et al. 2019, Stat Med 38:210-220): the point estimate is the mean
of the M complete-data estimates; the M x B replicates form one sample, from which the standard
errors, covariance, bias-corrected percentile intervals and the CEAC come.

A normal model can impute costs below 0 (costs are skewed): imputed negative costs are counted
in ``details["negative_imputed_costs"]`` and kept (truncating would bias the mean).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats.economics._bootstrap import bootstrap_increments

__all__ = ["impute_cost_effect"]


def impute_cost_effect(
    data: pd.DataFrame,
    *,
    cost: str,
    effect: str,
    arm: str,
    covariates: list[str],
    n_imputations: int,
    seed: np.random.SeedSequence,
) -> np.ndarray:
    """(M, n, 2) completed (cost, effect) per imputation, rows in ``data`` order."""
    from peerstats.missing.impute import impute

    n = len(data)
    scale = np.array([data[cost].std(), data[effect].std()])
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    base = pd.DataFrame({"sid": np.arange(n), "arm": data[arm].to_numpy()})
    for i, c in enumerate(covariates):
        base[f"x{i}"] = data[c].to_numpy()
    long = pd.concat([
        base.assign(visit="cost", y=data[cost].to_numpy(float) / scale[0]),
        base.assign(visit="effect", y=data[effect].to_numpy(float) / scale[1]),
    ], ignore_index=True)  # fmt: skip
    long["visit"] = pd.Categorical(long["visit"], ["cost", "effect"])
    rhs = " + ".join(["arm"] + [f"x{i}" for i in range(len(covariates))])
    imp = impute(f"y ~ visit * ({rhs})", long, subject="sid", visit="visit", arm="arm",
                 method="bayes", n_imputations=n_imputations, seed=seed)  # fmt: skip
    Y = imp.completed()  # (M, n, 2) in imp.subjects order
    order = np.asarray(imp.subjects, dtype=int)
    out = np.empty_like(Y)
    out[:, order, :] = Y
    return out * scale[None, None, :]


def mi_bootstrap(blocks, Y_m, *, col, arm_codes, cluster, n_boot, seed, client) -> tuple:
    """Point estimates (M, 2) and pooled replicates (M * n_boot, 2) over the M completed sets."""
    from peerstats.economics._bootstrap import increments

    M = Y_m.shape[0]
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(M)
    ones = np.ones((1, Y_m.shape[1]))
    ests, reps = [], []
    for m in range(M):
        ests.append(increments(blocks, Y_m[m], ones, col)[0])
        reps.append(bootstrap_increments(blocks, Y_m[m], col=col, arm_codes=arm_codes,
                                         cluster=cluster, n_boot=n_boot, seed=seeds[m],
                                         client=client))  # fmt: skip
    return np.array(ests), np.vstack(reps)


def seeds_for(seed: Any) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """Independent roots for the imputation and the bootstrap from one user seed."""
    imp, boot = np.random.SeedSequence(seed).spawn(2)
    return imp, boot
