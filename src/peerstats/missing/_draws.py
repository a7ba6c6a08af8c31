"""Parameter draws of the imputation MMRM, one function per method (the inside of :func:`draws`).

Each returns the beta draws (S, p), the covariance draws (S, G, T, T) and, for the resampling
methods, the subject weights (jackknife, bootstrap) or bootstrap rows (bootstrap-ml) that the
analyse step uses. Bootstrap refits run locally or in chunks on a dask Client; the bootstrap
samples are always drawn here, so the draws do not depend on where the refits run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ConvergenceError, ModelSpecificationError


@dataclass
class _Model:
    """The fitted imputation model as the draws need it."""

    prep: Any  # the engine's prepared MMRM
    full: Any  # its fit on the full data
    n: int  # subjects (ours, including those without an observed outcome)
    T: int
    p: int
    G: int
    arm_of: np.ndarray
    n_arms: int
    eng_pos: np.ndarray  # position of each of our subjects among the engine's (-1: none)

    @property
    def full_sigma(self) -> np.ndarray:
        return np.stack([np.asarray(s) for s in self.full.sigmas])

    def engine_weights(self, w_ours: np.ndarray) -> np.ndarray:
        """Subject weights in the engine's subject order (subjects without an outcome drop)."""
        w = np.zeros(len(self.prep.subjects))
        ok = self.eng_pos >= 0
        w[self.eng_pos[ok]] = w_ours[ok]
        return w


def stratified_counts(rng: np.random.Generator, B: int, arm_of: np.ndarray, n_arms: int):
    """(B, n) bootstrap counts of subjects, resampled within arm."""
    n = len(arm_of)
    W = np.zeros((B, n))
    for a in range(n_arms):
        idx = np.flatnonzero(arm_of == a)
        draws = rng.integers(0, idx.size, size=(B, idx.size))
        for b in range(B):
            W[b] += np.bincount(idx[draws[b]], minlength=n)
    return W


def refit_chunk(prep, weights: np.ndarray) -> list:
    """Bootstrap refits of the prepared model, one per row of ``weights``: (beta, sigmas, error)
    with error None on success (run locally or as one task on a dask worker, BLAS one thread)."""
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=1):
        for w in weights:
            try:
                r = prep.refit(subject_weights=w)
            except (ConvergenceError, ModelSpecificationError) as exc:
                out.append((None, None, str(exc)))
                continue
            if not r.converged:
                out.append((None, None, "did not converge"))
                continue
            out.append((np.asarray(r.beta), np.stack([np.asarray(x) for x in r.sigmas]), None))
    return out


def _run_refits(prep, EW: np.ndarray, client) -> list:
    if client is None:
        return refit_chunk(prep, EW)
    # chunks of bootstrap refits on the workers (weights drawn here: same draws)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = max(1, math.ceil(len(EW) / (4 * n_workers)))
    [pf] = client.scatter([prep], broadcast=True, hash=False)
    futures = [
        client.submit(refit_chunk, pf, EW[s : s + size], pure=False)
        for s in range(0, len(EW), size)
    ]
    return [r for chunk in client.gather(futures) for r in chunk]


def bootstrap_refits(model: _Model, W: np.ndarray, client) -> tuple[np.ndarray, np.ndarray]:
    """(betas, sigmas) of the refits with subject weights W (B, n); every refit must converge."""
    EW = np.stack([model.engine_weights(w) for w in W])
    betas, sigmas, failed, first_error = [], [], 0, None
    for beta, sig, err in _run_refits(model.prep, EW, client):
        if err is not None or beta is None or not np.all(np.isfinite(beta)):
            failed += 1
            first_error = first_error or err
            continue
        betas.append(beta)
        sigmas.append(sig)
    if failed:
        raise ConvergenceError(
            f"the imputation model failed to converge in {failed} of {len(W)} bootstrap "
            "refits; peerstats does not pool over fewer sets. Simplify the covariance "
            "(covariance=) or the mean model."
            + (f" First error: {first_error}" if first_error is not None else "")
        )
    return np.stack(betas), np.stack(sigmas)


def bootstrap_rows(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the bootstrap samples with counts W (B, n): (rows (R,) subject of each row,
    indicators (B, R)). Rows 0..n-1 are copy 1 of every subject, then copy 2 of the subjects
    drawn at least twice in some sample, ...; sample b uses row (i, copy c) iff W[b, i] >= c,
    i.e. exactly the rows np.repeat(np.arange(n), W[b])."""
    Wi = np.rint(W).astype(np.int64)
    n = Wi.shape[1]
    top = Wi.max(axis=0)
    rows = np.concatenate(
        [np.arange(n)] + [np.flatnonzero(top >= c) for c in range(2, int(top.max()) + 1)]
    )
    copy = pd.Series(rows).groupby(rows).cumcount().to_numpy() + 1
    return rows, (Wi[:, rows] >= copy[None, :]).astype(float)


def bayes_draws(model: _Model, X_all, Yfit, g_of, n_par, rng, prior) -> tuple:
    """Posterior draws by data-augmentation Gibbs sampling (peerstats.missing._bayes)."""
    from peerstats.missing._bayes import BURN, CHAINS, THIN, gibbs_mmrm

    betas, sigmas = gibbs_mmrm(
        X_all.reshape(model.n, model.T, model.p),
        Yfit,
        g_of,
        model.G,
        np.asarray(model.full.beta),
        model.full_sigma,
        n_par,
        rng,
        prior=prior,
    )
    info = dict(
        sampler="data-augmentation Gibbs (flat beta, "
        + ("Jeffreys Sigma)" if prior == "jeffreys" else "rbmi inverse Wishart Sigma)"),
        prior=prior,
        burn=BURN,
        thin=THIN,
        chains=min(CHAINS, n_par),
    )
    return betas, sigmas, info


def jackknife_draws(model: _Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-data fit then one leave-one-subject-out refit per subject, and their weights."""
    try:
        refits = model.prep.jackknife()
    except (ConvergenceError, ModelSpecificationError) as exc:
        raise ConvergenceError(
            f"a leave-one-out refit of the imputation model failed ({exc}); the jackknife "
            "is not computed over fewer subjects"
        ) from exc
    bad = sum(1 for r in refits if not r.converged)
    if bad:
        raise ConvergenceError(
            f"the imputation model failed to converge in {bad} of {len(refits)} "
            "leave-one-out refits; the jackknife is not computed over fewer subjects"
        )
    n, T, full_sig = model.n, model.T, model.full_sigma
    jb = np.empty((n, model.p))
    js = np.empty((n, model.G, T, T))
    for i in range(n):
        if model.eng_pos[i] >= 0:
            r = refits[model.eng_pos[i]]
            jb[i] = r.beta
            js[i] = np.stack([np.asarray(s) for s in r.sigmas])
        else:  # no observed outcome: leaving the subject out does not change the fit
            jb[i] = model.full.beta
            js[i] = full_sig
    betas = np.vstack([np.asarray(model.full.beta)[None], jb])
    sigmas = np.concatenate([full_sig[None], js])
    weights = np.vstack([np.ones((1, n)), 1 - np.eye(n)])
    return betas, sigmas, weights


def resampling_draws(model: _Model, method: str, n_par: int, D, rng, client) -> tuple:
    """approx-bayes, condmean-bootstrap, bootstrap-ml: (betas, sigmas, weights, rows)."""
    W = stratified_counts(rng, n_par, model.arm_of, model.n_arms)
    b, s = bootstrap_refits(model, W, client)
    if method == "approx-bayes":
        return b, s, None, None
    if method == "condmean-bootstrap":
        betas = np.vstack([np.asarray(model.full.beta)[None], b])
        sigmas = np.concatenate([model.full_sigma[None], s])
        return betas, sigmas, np.vstack([np.ones((1, model.n)), W]), None
    # bootstrap-ml: a bootstrap sample is n rows: a subject drawn w times is w rows, each
    # imputed independently (von Hippel & Bartlett 2021; rbmi method_bmlmi), analysed unweighted
    rows, row_w = bootstrap_rows(W)
    return np.repeat(b, D, axis=0), np.repeat(s, D, axis=0), np.repeat(row_w, D, axis=0), rows
