"""Posterior draws for the unstructured MMRM by data-augmentation Gibbs sampling.

Model: y_i ~ N(X_i beta, Sigma_g(i)) over the T visits, with a flat prior on beta and, for each
covariance group, one of two priors on Sigma_g (``prior=``):

- ``"jeffreys"`` (default): p(Sigma_g) ∝ |Sigma_g|^{-(T+1)/2} (Schafer 1997, the
  non-informative prior of the normal model);
- ``"rbmi"``: inverse Wishart(T + 2, Sigma_hat_g), Sigma_hat_g the REML estimate: the default
  of R rbmi's ``method_bayes`` and of the SAS "five macros" (Roger 2021): "We choose S equal to
  the estimated covariance matrix from the frequentist REML fit and nu = J + 2" (rbmi
  vignette stat_specs.Rmd, "Inverse Wishart prior for unstructured covariance matrix";
  rbmi inst/stan/covariance_priors/us_default.stan). Its prior mean is Sigma_hat_g; it pulls the
  posterior slightly towards the REML estimate, so standard errors after MI are a little smaller
  than under the Jeffreys prior (0.2-2% in the issue 20.8 comparison at M = 10,000).

The conditional posterior of Sigma_g is inverse Wishart(n_g, S_g) under the Jeffreys prior and
inverse Wishart(n_g + T + 2, S_g + Sigma_hat_g) under the rbmi prior (conjugacy), with S_g the
cross products of the completed residuals. One iteration
(Tanner & Wong 1987; Schafer 1997, ch. 5):

1. I-step: y_mis,i | y_obs,i, beta, Sigma ~ N(mu_M + S_MO S_OO^-1 (y_O - mu_O),
   S_MM - S_MO S_OO^-1 S_OM);
2. Sigma_g | beta, Y ~ inverse Wishart(n_g, sum_{i in g} r_i r_i') (r_i = y_i - X_i beta),
   drawn through the Bartlett decomposition;
3. beta | Sigma, Y ~ N(M^-1 sum_i X_i' Sigma^-1 y_i, M^-1), M = sum_i X_i' Sigma^-1 X_i
   (from pooled cross products of the complete design: no pass over subjects).

``chains`` chains run side by side as batched arrays (one numpy call serves all chains), each
started at the REML estimate, ``burn`` iterations discarded, then every ``thin``-th state kept.
The draws are exact posterior draws (up to MCMC convergence) of the model that the MMRM fits by
REML; with complete data the posterior is the conjugate closed form checked in
tests/missing/test_bayes.py.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from peerstats.exceptions import ConvergenceError, ModelSpecificationError
from peerstats.missing import _lapack as _la

__all__ = ["gibbs_mmrm", "BURN", "THIN", "CHAINS", "PRIORS"]

PRIORS: tuple[str, ...] = ("jeffreys", "rbmi")

BURN = 200
THIN = 5
CHAINS = 20


@lru_cache(maxsize=16)
def _bartlett_index(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions of the strict lower triangle and the diagonal of a T x T matrix, and
    0..T-1 (built once per T, not at every iteration)."""
    il = np.tril_indices(T, -1)
    return il[0] * T + il[1], np.arange(T) * (T + 1), np.arange(T)


def _inv_wishart(nu: np.ndarray | float, S: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws from IW(nu, S) for stacked scale matrices S (C, T, T): Sigma = B B', B = U A^-T,
    S = U U' (Cholesky), A the Bartlett factor of a Wishart(nu, I)."""
    C, T, _ = S.shape
    low, diag, ar = _bartlett_index(T)
    U = _la.cholesky(S)
    a = np.zeros((C, T * T))
    a[:, low] = rng.standard_normal((C, low.size))
    a[:, diag] = np.sqrt(rng.chisquare(nu - ar, size=(C, T)))
    A = a.reshape(C, T, T)
    B = U @ _la.inv(A).transpose(0, 2, 1)
    return B @ B.transpose(0, 2, 1)


def _cross_products(X: np.ndarray, gsub: np.ndarray, G: int) -> np.ndarray:
    """Pooled cross products of the complete design per group: SXX[g, j, k] = sum X_ij' X_ik."""
    _, T, p = X.shape
    SXX = np.zeros((G, T, T, p, p))
    for g in range(G):
        Xg = X[gsub == g]
        SXX[g] = np.einsum("ijp,ikq->jkpq", Xg, Xg, optimize=True)
    return SXX


def _pattern_blocks(obs: np.ndarray, gsub: np.ndarray, X: np.ndarray) -> list:
    """Imputation groups per (group, pattern) with something missing: (group, observed visits
    (|O|, 1) and (1, |O|), missing visits (|M|, 1) and (1, |M|), subjects (m, 1) and (m,), the
    subjects' design X[subj]): every index built once, not at every iteration."""
    T = obs.shape[1]
    bits = (obs * (1 << np.arange(T))).sum(axis=1)
    key = gsub.astype(np.int64) * (1 << T) + bits
    blocks = []
    for k in np.unique(key):
        subj = np.flatnonzero(key == k)
        o = obs[subj[0]]
        if o.all():
            continue
        Ob, M = np.flatnonzero(o), np.flatnonzero(~o)
        blocks.append(
            (
                int(gsub[subj[0]]),
                Ob[:, None],
                Ob[None, :],
                M[:, None],
                M[None, :],
                subj[:, None],
                subj,
                X[subj],
            )
        )
    return blocks


def _i_step(blocks, beta, sig, Yc, rng) -> None:
    """y_mis | y_obs, beta, Sigma for every chain (Yc (C, n, T) updated in place)."""
    C = Yc.shape[0]
    for g, Oc, Or, Mc, Mr, subj_c, subj, Xs in blocks:
        S = sig[:, g]
        mu = (Xs @ beta.T).transpose(2, 0, 1)  # (C, m, T)
        if Or.size:
            SOM = S[:, Oc, Mr]
            A = _la.solve(S[:, Oc, Or], SOM)  # (C, |Ob|, |M|)
            mean = mu[:, :, Mr[0]] + (Yc[:, subj][:, :, Or[0]] - mu[:, :, Or[0]]) @ A
            Cm = S[:, Mc, Mr] - SOM.transpose(0, 2, 1) @ A
        else:
            mean = mu[:, :, Mr[0]]
            Cm = S[:, Mc, Mr]
        L = _la.cholesky((Cm + Cm.transpose(0, 2, 1)) / 2)
        z = rng.standard_normal((C, subj.size, Mr.size))
        Yc[:, subj_c, Mr] = mean + z @ L.transpose(0, 2, 1)


def _design_rows(SXX: np.ndarray) -> np.ndarray:
    """SXX (G, T, T, p, p) laid out as numpy's einsum lays it out for the product of
    :func:`_contract_design`: (p p, G T T), C order (built once per sampler run)."""
    G, T, _, p, _ = SXX.shape
    return SXX.transpose(3, 4, 0, 1, 2).reshape(p * p, G * T * T)


def _contract_design(Sinv: np.ndarray, SXX: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``np.einsum("cgjk,gjkpq->cpq", Sinv, SXX, optimize=True)`` computed as numpy's einsum
    computes it (the path ``gjkpq,cgjk->cpq``: one product (p p, G T T) @ (G T T, C) of the
    same operands in the same memory layout; ``rows`` = :func:`_design_rows`) without its
    per-call path search: the same product, so the same numbers, bit for bit
    (tests/missing/test_bayes_fast.py). Shapes with a dimension of 1 (which einsum squeezes)
    go through einsum itself."""
    C, G, T, _ = Sinv.shape
    p = SXX.shape[-1]
    if min(C, T, p) < 2:
        return np.einsum("cgjk,gjkpq->cpq", Sinv, SXX, optimize=True)
    A = Sinv.transpose(1, 2, 3, 0).reshape(G * T * T, C)
    return (rows @ A).reshape(p, p, C).transpose(2, 0, 1)


def _weight_rows(Yc: np.ndarray, Sinv: np.ndarray, gsub: np.ndarray) -> np.ndarray:
    """``np.einsum("cnj,cnjk->cnk", Yc, Sinv[:, gsub], optimize=True)`` as numpy's einsum
    computes it (path ``cnjk,cnj->cnk``: the batch of (T, T) @ (T, 1) products S' y, the
    transposed matrices copied to C order) without its per-call path search, and with the
    transposed matrices gathered in one ``np.take`` (the same array as the copy of the
    gathered ones, made in one pass): the same numbers, bit for bit."""
    C, n, T = Yc.shape
    if min(C, n, T) < 2:
        return np.einsum("cnj,cnjk->cnk", Yc, Sinv[:, gsub], optimize=True)
    a = np.take(Sinv.transpose(0, 1, 3, 2), gsub, axis=1).reshape(C * n, T, T)
    return (a @ Yc.reshape(C * n, T, 1)).reshape(C, n, T)


def _beta_step(sig, SXX, Yc, gsub, Xf, rng, rows=None) -> np.ndarray:
    """beta | Sigma, Y ~ N(M^-1 sum_i X_i' Sigma^-1 y_i, M^-1) for every chain."""
    C, n, T = Yc.shape
    p = Xf.shape[1]
    Sinv = _la.inv(sig)  # (C, G, T, T)
    Mm = _contract_design(Sinv, SXX, _design_rows(SXX) if rows is None else rows)
    W = _weight_rows(Yc, Sinv, gsub)
    rhs = W.reshape(C, n * T) @ Xf  # (C, p)
    Lm = _la.cholesky(Mm)
    mean = _la.solve(Mm, rhs[..., None])[..., 0]
    z = rng.standard_normal((C, p))
    # beta = mean + Lm^-T z  (Cov = M^-1)
    return mean + _la.solve(Lm.transpose(0, 2, 1), z[..., None])[..., 0]


def gibbs_mmrm(
    X: np.ndarray,
    Y: np.ndarray,
    gsub: np.ndarray,
    n_groups: int,
    beta0: np.ndarray,
    sigma0: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
    *,
    burn: int = BURN,
    thin: int = THIN,
    chains: int = CHAINS,
    prior: str = "jeffreys",
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws (betas (n_draws, p), sigmas (n_draws, G, T, T)).

    X : (n, T, p) design of every subject at every visit; Y : (n, T) outcome, NaN = missing;
    gsub : (n,) covariance group per subject; beta0, sigma0 (G, T, T): starting values (the
    REML estimates; ``sigma0`` is also the scale of the ``prior="rbmi"`` inverse Wishart).
    """
    if prior not in PRIORS:
        raise ModelSpecificationError(f"prior={prior!r} is not valid; choose one of {list(PRIORS)}")
    n, T, p = X.shape
    nu0, S0 = (0.0, 0.0) if prior == "jeffreys" else (T + 2.0, np.asarray(sigma0, dtype=float))
    G = n_groups
    C = max(1, min(chains, n_draws))
    per = math.ceil(n_draws / C)
    obs = ~np.isnan(Y)
    n_g = np.bincount(gsub, minlength=G)
    if np.any(n_g < T + 1):
        raise ConvergenceError(
            f"the Bayesian imputation model needs more subjects than visits in every covariance "
            f"group (subjects per group {n_g.tolist()}, visits {T})"
        )
    SXX = _cross_products(X, gsub, G)
    rows = _design_rows(SXX)
    blocks = _pattern_blocks(obs, gsub, X)
    Yc = np.broadcast_to(np.where(obs, Y, 0.0), (C, n, T)).copy()
    beta = np.tile(np.asarray(beta0, dtype=float), (C, 1))
    sig = np.tile(np.asarray(sigma0, dtype=float), (C, 1, 1, 1))
    group_rows = [np.flatnonzero(gsub == g) for g in range(G)]
    # a group of every subject in order: R itself is the copy R[:, rows] (same C layout)
    whole = [r.size == n and bool(np.all(r == np.arange(n))) for r in group_rows]
    out_b = np.empty((per, C, p))
    out_s = np.empty((per, C, G, T, T))
    Xf = X.reshape(n * T, p)
    kept = 0
    with _la.lapack_block():  # LAPACK without np.linalg's per-call overhead: same numbers
        for it in range(burn + per * thin):
            _i_step(blocks, beta, sig, Yc, rng)
            R = Yc - (Xf @ beta.T).T.reshape(C, n, T)
            for g in range(G):  # Sigma | beta, Y
                Rg = R if whole[g] and R.flags.c_contiguous else R[:, group_rows[g]]
                Sg = Rg.transpose(0, 2, 1) @ Rg
                if prior == "rbmi":
                    Sg = Sg + S0[g]
                sig[:, g] = _inv_wishart(float(n_g[g]) + nu0, Sg, rng)
            beta = _beta_step(sig, SXX, Yc, gsub, Xf, rng, rows)
            if it >= burn and (it - burn) % thin == thin - 1:
                out_b[kept] = beta
                out_s[kept] = sig
                kept += 1
    betas = out_b.reshape(per * C, p)[:n_draws]
    sigmas = out_s.reshape(per * C, G, T, T)[:n_draws]
    if not (np.all(np.isfinite(betas)) and np.all(np.isfinite(sigmas))):
        raise ConvergenceError("the Gibbs sampler produced non-finite draws")
    return betas, sigmas
