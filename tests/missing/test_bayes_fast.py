"""The Gibbs sampler's einsum replacements (issue 22) give numpy's einsum numbers bit for bit.

``missing/_bayes.py`` computes two contractions per iteration as the matrix products that
``np.einsum(..., optimize=True)`` itself makes of them, without einsum's per-call path search.
The outside reference is numpy's own einsum on the same operands: the results must be equal
(tolerance 0: the pipeline's outputs are compared byte for byte, issue 22). Synthetic arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from peerstats.missing._bayes import _contract_design, _design_rows, _weight_rows


@pytest.mark.parametrize("G", [1, 2, 3])
@pytest.mark.parametrize("T", [1, 2, 3, 5])
@pytest.mark.parametrize("C", [1, 2, 20])
def test_contractions_equal_einsum_bit_for_bit(G: int, T: int, C: int) -> None:
    rng = np.random.default_rng(G * 100 + T * 10 + C)
    p, n = 9, 57
    Sinv = np.linalg.inv(rng.normal(size=(C, G, T, T)) + 4 * np.eye(T))
    SXX = rng.normal(size=(G, T, T, p, p))
    want = np.einsum("cgjk,gjkpq->cpq", Sinv, SXX, optimize=True)
    got = _contract_design(Sinv, SXX, _design_rows(SXX))
    assert got.shape == want.shape and np.array_equal(got, want)
    Yc = rng.normal(size=(C, n, T))
    gsub = rng.integers(0, G, n)
    want = np.einsum("cnj,cnjk->cnk", Yc, Sinv[:, gsub], optimize=True)
    got = _weight_rows(Yc, Sinv, gsub)
    assert got.shape == want.shape and np.array_equal(got, want)


def _reference_gibbs(X, Y, gsub, G, beta0, sigma0, n_draws, rng, burn, thin, chains):
    """The sampler's loop as it was before issue 22 (np.linalg per call, np.einsum with
    optimize=True, a copy of the residual rows per group), Jeffreys prior."""
    from peerstats.missing._bayes import _bartlett_index, _cross_products, _pattern_blocks

    n, T, p = X.shape
    C = max(1, min(chains, n_draws))
    per = -(-n_draws // C)
    obs = ~np.isnan(Y)
    n_g = np.bincount(gsub, minlength=G)
    SXX = _cross_products(X, gsub, G)
    blocks = _pattern_blocks(obs, gsub, X)
    Yc = np.broadcast_to(np.where(obs, Y, 0.0), (C, n, T)).copy()
    beta = np.tile(beta0, (C, 1))
    sig = np.tile(sigma0, (C, 1, 1, 1))
    rows = [np.flatnonzero(gsub == g) for g in range(G)]
    Xf = X.reshape(n * T, p)
    out_b, out_s = [], []
    for it in range(burn + per * thin):
        for g, Oc, Or, Mc, Mr, subj_c, subj, Xs in blocks:
            S = sig[:, g]
            mu = (Xs @ beta.T).transpose(2, 0, 1)
            if Or.size:
                SOM = S[:, Oc, Mr]
                A = np.linalg.solve(S[:, Oc, Or], SOM)
                mean = mu[:, :, Mr[0]] + (Yc[:, subj][:, :, Or[0]] - mu[:, :, Or[0]]) @ A
                Cm = S[:, Mc, Mr] - SOM.transpose(0, 2, 1) @ A
            else:
                mean, Cm = mu[:, :, Mr[0]], S[:, Mc, Mr]
            L = np.linalg.cholesky((Cm + Cm.transpose(0, 2, 1)) / 2)
            z = rng.standard_normal((C, subj.size, Mr.size))
            Yc[:, subj_c, Mr] = mean + z @ L.transpose(0, 2, 1)
        R = Yc - (Xf @ beta.T).T.reshape(C, n, T)
        for g in range(G):
            Rg = R[:, rows[g]]
            Sg = Rg.transpose(0, 2, 1) @ Rg
            low, diag, ar = _bartlett_index(T)
            U = np.linalg.cholesky(Sg)
            a = np.zeros((C, T * T))
            a[:, low] = rng.standard_normal((C, low.size))
            a[:, diag] = np.sqrt(rng.chisquare(float(n_g[g]) - ar, size=(C, T)))
            B = U @ np.linalg.inv(a.reshape(C, T, T)).transpose(0, 2, 1)
            sig[:, g] = B @ B.transpose(0, 2, 1)
        Sinv = np.linalg.inv(sig)
        Mm = np.einsum("cgjk,gjkpq->cpq", Sinv, SXX, optimize=True)
        W = np.einsum("cnj,cnjk->cnk", Yc, Sinv[:, gsub], optimize=True)
        rhs = W.reshape(C, n * T) @ Xf
        Lm = np.linalg.cholesky(Mm)
        mean = np.linalg.solve(Mm, rhs[..., None])[..., 0]
        zb = rng.standard_normal((C, p))
        beta = mean + np.linalg.solve(Lm.transpose(0, 2, 1), zb[..., None])[..., 0]
        if it >= burn and (it - burn) % thin == thin - 1:
            out_b.append(beta.copy())
            out_s.append(sig.copy())
    return np.stack(out_b).reshape(-1, p)[:n_draws], np.stack(out_s).reshape(-1, G, T, T)[:n_draws]


@pytest.mark.parametrize("G", [1, 2])
def test_sampler_draws_equal_the_pre_issue_22_loop_bit_for_bit(G: int) -> None:
    """Reference: the loop above (numpy's einsum and linalg as called before issue 22) on a
    synthetic problem with non-monotone missingness; tolerance 0."""
    from peerstats.missing._bayes import gibbs_mmrm

    rng = np.random.default_rng(7 + G)
    n, T, p = 60, 3, 4
    X = np.concatenate([np.ones((n, T, 1)), rng.normal(size=(n, T, p - 1))], axis=2)
    Y = X @ np.array([1.0, 0.5, -0.3, 0.2]) + rng.normal(size=(n, T))
    Y[rng.random((n, T)) < 0.2] = np.nan
    Y[np.all(np.isnan(Y), axis=1), 0] = 0.1
    gsub = (np.arange(n) % G).astype(np.intp)
    beta0, sigma0 = np.zeros(p), np.tile(np.eye(T), (G, 1, 1))
    kw = {"burn": 7, "thin": 2, "chains": 4}
    got = gibbs_mmrm(X, Y, gsub, G, beta0, sigma0, 8, np.random.default_rng(3), **kw)
    want = _reference_gibbs(X, Y, gsub, G, beta0, sigma0, 8, np.random.default_rng(3), **kw)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
