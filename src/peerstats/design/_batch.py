"""A batched REML fitter: many simulated trials that share one block structure, fitted at once.

Power simulation fits the same model to thousands of simulated trials that share the design and
(within a batch) the missingness patterns. Each trial is ``y ~ N(X beta, V(psi))`` with V block
diagonal over independent units; V is *linear* in the covariance parameters psi (the entries of
an unstructured covariance, a group variance), ``V_b(psi) = sum_k psi_k D_bk`` with the same
basis matrices D_bk for every trial of the batch. So every array below carries a leading axis S
(the trials) and one Fisher-scoring iteration for S trials is a handful of batched numpy
operations.

Blocks come in two representations:

- *pooled* block types (MMRM: every subject of one arm and missingness pattern): the sufficient
  statistics ``S_XX[j,l] = sum_i x_ij x_il'``, ``S_Xy``, ``S_yy`` and the number of units, as the
  engine (:mod:`peerstats.models._reml`) keeps them, so an iteration costs nothing per subject;
- *row* blocks (one delivery group of the partially nested model: count 1): X (m, p), y (m,).

The criterion, gradient and information are those of the engine (Harville 1977; Wolfinger, Tobias
& Sall 1994), in the linear parameterisation:

    -2 l_REML = sum_b log|V_b| + log|M| + r'V^-1 r + const,   M = X'V^-1X
    g_k = sum_b tr(V_b^-1 D_bk) - r'V^-1 D_k V^-1 r - tr(M^-1 X'V^-1 D_k V^-1 X)
    I_kl ~ sum_b tr(V_b^-1 D_bk V_b^-1 D_bl)   (ML expected information, used for the steps)

Steps: Fisher scoring with step halving (V positive definite and the criterion not increasing),
from the true parameters of the simulation; parameters flagged non-negative (a group variance)
are held at 0 when a step would make them negative and released when the gradient points
inwards (lme4 and :func:`peerstats.lmm` fix a zero variance component the same way). At the
optimum, Satterthwaite df for the contrast ``l`` use W = 2 H^-1 with H the observed Hessian of
-2 l_REML (central differences of the analytic gradient), as :func:`peerstats.mmrm`; the
answers equal ``peerstats.mmrm`` / ``peerstats.lmm`` on the same data
(tests/design/test_batch.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PooledBlocks", "RowBlocks", "BatchREML"]


@dataclass
class PooledBlocks:
    """Block types of dimension m pooled over units (sufficient statistics per trial)."""

    D: np.ndarray  # (B, K, m, m)
    counts: np.ndarray  # (B,)
    SXX: np.ndarray  # (S, B, m, m, p, p)
    SXy: np.ndarray  # (S, B, m, m, p)
    Syy: np.ndarray  # (S, B, m, m)


@dataclass
class RowBlocks:
    """Blocks of dimension m with one unit each (rows kept)."""

    D: np.ndarray  # (B, K, m, m)
    X: np.ndarray  # (S, B, m, p)
    y: np.ndarray  # (S, B, m)


def _chol_inverse(V: np.ndarray):
    """Batched inverse and log-determinant of (S, B, m, m); None rows flagged bad."""
    S = V.shape[0]
    bad = np.zeros(S, dtype=bool)
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        L = np.empty_like(V)
        for s in range(S):
            try:
                L[s] = np.linalg.cholesky(V[s])
            except np.linalg.LinAlgError:
                bad[s] = True
                L[s] = np.eye(V.shape[-1])[None]
    logdet = 2 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, B)
    Li = np.linalg.inv(L)
    Vinv = np.swapaxes(Li, -1, -2) @ Li
    return Vinv, logdet, bad


class BatchREML:
    """REML for S trials sharing block structure; see the module docstring."""

    def __init__(
        self,
        pooled: list[PooledBlocks],
        rows: list[RowBlocks],
        *,
        K: int,
        p: int,
        nonneg: np.ndarray | None = None,
    ) -> None:
        self.pooled = pooled
        self.rows = rows
        self.K = K
        self.p = p
        self.nonneg = np.zeros(K, dtype=bool) if nonneg is None else np.asarray(nonneg, bool)

    # ------------------------------------------------------------------------------------
    def _evaluate(self, psi: np.ndarray, sel: np.ndarray | None, grad: bool, info: bool):
        """Criterion (and gradient / ML information) at psi (S', K) for trials ``sel``."""
        S = psi.shape[0]
        p, K = self.p, self.K
        M = np.zeros((S, p, p))
        Xy = np.zeros((S, p))
        yVy = np.zeros(S)
        logdet = np.zeros(S)
        bad = np.zeros(S, dtype=bool)
        cache = []
        for blk in self.pooled:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, ld, b = _chol_inverse(V)
            bad |= b
            SXX = blk.SXX if sel is None else blk.SXX[sel]
            SXy = blk.SXy if sel is None else blk.SXy[sel]
            Syy = blk.Syy if sel is None else blk.Syy[sel]
            Sb, Bn, m = SXX.shape[0], SXX.shape[1], SXX.shape[2]
            vf = Vinv.reshape(S, Bn * m * m)
            M += np.einsum("sa,sapq->spq", vf, SXX.reshape(Sb, Bn * m * m, p, p))
            Xy += np.einsum("sa,sap->sp", vf, SXy.reshape(Sb, Bn * m * m, p))
            yVy += np.einsum("sa,sa->s", vf, Syy.reshape(Sb, Bn * m * m))
            logdet += ld @ blk.counts
            cache.append((Vinv, SXX, SXy, Syy))
        rcache = []
        for blk in self.rows:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, ld, b = _chol_inverse(V)
            bad |= b
            X = blk.X if sel is None else blk.X[sel]
            y = blk.y if sel is None else blk.y[sel]
            VX = Vinv @ X  # (S, B, m, p)
            M += np.einsum("sbip,sbiq->spq", X, VX)
            Xy += np.einsum("sbip,sbi->sp", VX, y)
            yVy += np.einsum("sbi,sbij,sbj->s", y, Vinv, y)
            logdet += ld.sum(axis=1)
            rcache.append((Vinv, X, y, VX))
        M = (M + np.swapaxes(M, 1, 2)) / 2
        try:
            cM = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            cM = np.empty_like(M)
            for s in range(S):
                try:
                    cM[s] = np.linalg.cholesky(M[s])
                except np.linalg.LinAlgError:
                    bad[s] = True
                    cM[s] = np.eye(p)
        cMi = np.linalg.inv(cM)
        C = np.swapaxes(cMi, 1, 2) @ cMi
        beta = np.einsum("spq,sq->sp", C, Xy)
        obj = logdet + 2 * np.log(np.diagonal(cM, axis1=1, axis2=2)).sum(axis=1) + yVy
        obj -= np.einsum("sp,sp->s", beta, Xy)
        obj[bad] = np.inf
        out = {"obj": obj, "beta": beta, "C": C, "bad": bad}
        if not (grad or info):
            return out
        g = np.zeros((S, K))
        I = np.zeros((S, K, K)) if info else None
        bb = np.einsum("sp,sq->spq", beta, beta) + C
        for blk, (Vinv, SXX, SXy, Syy) in zip(self.pooled, cache):
            Sb, Bn, m = SXX.shape[0], SXX.shape[1], SXX.shape[2]
            G = np.einsum("sbij,bkjl->sbkil", Vinv, blk.D)  # V^-1 D_k
            g += np.einsum("b,sbkii->sk", blk.counts, G)
            Sbt = np.einsum("sbijp,sp->sbij", SXy, beta)
            R = Syy - Sbt - np.swapaxes(Sbt, 2, 3) + np.einsum("sbijpq,spq->sbij", SXX, bb)
            A = G @ Vinv[:, :, None]  # V^-1 D_k V^-1
            g -= np.einsum("sbkij,sbji->sk", A, R)
            if info:
                I += np.einsum("b,sbkij,sblji->skl", blk.counts, G, G)
        for blk, (Vinv, X, y, VX) in zip(self.rows, rcache):
            G = np.einsum("sbij,bkjl->sbkil", Vinv, blk.D)
            g += np.einsum("sbkii->sk", G)
            u = np.einsum("sbij,sbj->sbi", Vinv, y) - np.einsum("sbip,sp->sbi", VX, beta)
            g -= np.einsum("sbi,bkij,sbj->sk", u, blk.D, u)
            Wm = np.einsum("sbip,spq,sbjq->sbij", VX, C, VX)  # V^-1 X C X' V^-1
            g -= np.einsum("bkij,sbji->sk", blk.D, Wm)
            if info:
                I += np.einsum("sbkij,sblji->skl", G, G)
        out["grad"] = g
        out["info"] = I
        return out

    def _g_contrast(self, psi: np.ndarray, C: np.ndarray, ell: np.ndarray) -> np.ndarray:
        """g_k = (Cl)' X'V^-1 D_k V^-1 X (Cl), (S, K)."""
        S = psi.shape[0]
        Cl = C @ ell  # (S, p)
        g = np.zeros((S, self.K))
        for blk in self.pooled:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, _, _ = _chol_inverse(V)
            w = np.einsum("sbijpq,sp,sq->sbij", blk.SXX, Cl, Cl)
            A = np.einsum("sbij,bkjl,sblm->sbkim", Vinv, blk.D, Vinv)
            g += np.einsum("sbkij,sbji->sk", A, w)
        for blk in self.rows:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, _, _ = _chol_inverse(V)
            z = np.einsum("sbij,sbjp,sp->sbi", Vinv, blk.X, Cl)
            g += np.einsum("sbi,bkij,sbj->sk", z, blk.D, z)
        return g

    # ------------------------------------------------------------------------------------
    def fit(
        self,
        psi0: np.ndarray,
        ell: np.ndarray,
        *,
        df: str = "satterthwaite",
        max_iter: int = 60,
        tol: float = 1e-10,
    ) -> dict:
        """Fit every trial from ``psi0`` (K,) or (S, K); test the contrast ``ell``.

        Returns a dict of (S,) arrays: ``estimate``, ``std_error``, ``df``, ``converged``,
        ``iterations``, and ``psi`` (S, K).
        """
        S = self._n_trials()
        K = self.K
        psi = np.broadcast_to(np.asarray(psi0, float), (S, K)).copy()
        fixed = np.zeros((S, K), dtype=bool)
        conv = np.zeros(S, dtype=bool)
        iters = np.zeros(S, dtype=int)
        st = self._evaluate(psi, None, grad=True, info=True)
        active = np.arange(S)
        for _ in range(max_iter):
            if active.size == 0:
                break
            sub = self._subset(active)
            g = st["grad"][active].copy()
            info = st["info"][active].copy()
            fx = fixed[active]
            # release held parameters whose gradient points into the interior
            release = fx & (g < 0)
            fx = fx & ~release
            fixed[active] = fx
            g[fx] = 0.0
            for k in range(K):
                rows = fx[:, k]
                if rows.any():
                    info[rows, k, :] = 0.0
                    info[rows, :, k] = 0.0
                    info[rows, k, k] = 1.0
            try:
                step = -np.linalg.solve(info, g[..., None])[..., 0]
            except np.linalg.LinAlgError:
                step = -np.einsum("skl,sl->sk", np.linalg.pinv(info), g)
            dec = -np.einsum("sk,sk->s", g, step)
            done = (dec >= 0) & (dec < tol * np.maximum(1.0, 1e-3 * np.abs(st["obj"][active])))
            done &= ~release.any(axis=1)
            conv[active[done]] = True
            keep = ~done
            active, step, sub_psi = active[keep], step[keep], psi[active[keep]]
            if active.size == 0:
                break
            # hold non-negative parameters at zero instead of stepping below it
            t = np.ones(active.size)
            neg = self.nonneg[None, :] & (sub_psi + step < 0)
            if neg.any():
                frac = np.where(neg, -sub_psi / np.where(step == 0, -1, step), 1.0)
                t = np.minimum(t, np.clip(frac.min(axis=1), 0.0, 1.0))
            obj0 = st["obj"][active]
            new_psi = sub_psi + t[:, None] * step
            new_psi[neg & (new_psi < 0)] = 0.0
            sub = self._subset(active)
            trial = sub._evaluate(new_psi, None, grad=False, info=False)
            ok = np.isfinite(trial["obj"]) & (trial["obj"] <= obj0 + 1e-9 * np.maximum(1, np.abs(obj0)))
            for _h in range(30):
                if ok.all():
                    break
                t[~ok] /= 2
                idx = np.nonzero(~ok)[0]
                cand = sub_psi[idx] + t[idx, None] * step[idx]
                sub2 = self._subset(active[idx])
                tr2 = sub2._evaluate(cand, None, grad=False, info=False)
                good = np.isfinite(tr2["obj"]) & (
                    tr2["obj"] <= obj0[idx] + 1e-9 * np.maximum(1, np.abs(obj0[idx]))
                )
                new_psi[idx[good]] = cand[good]
                ok[idx[good]] = True
                if t[idx].max() < 1e-9:
                    break
            # trials whose line search failed stop here (not converged)
            stuck = ~ok
            new_psi[stuck] = sub_psi[stuck]
            hit = neg & (new_psi <= 1e-12 * np.maximum(1.0, np.abs(sub_psi)))
            new_psi[hit] = 0.0
            fixed[active[hit.any(axis=1)]] |= hit[hit.any(axis=1)]
            psi[active] = new_psi
            iters[active] += 1
            active = active[~stuck]
            if active.size == 0:
                break
            new_st = self._subset(active)._evaluate(psi[active], None, grad=True, info=True)
            for key in ("obj", "grad", "info", "beta", "C", "bad"):
                st[key][active] = new_st[key]
        final = self._evaluate(psi, None, grad=False, info=False)
        beta, C = final["beta"], final["C"]
        ell = np.asarray(ell, float)
        est = beta @ ell
        var = np.einsum("p,spq,q->s", ell, C, ell)
        se = np.sqrt(np.maximum(var, 0.0))
        if df == "satterthwaite":
            dfs = self._satterthwaite(psi, fixed, C, ell, var)
        else:
            dfs = np.full(S, np.inf)
        return {
            "estimate": est,
            "std_error": se,
            "df": dfs,
            "converged": conv & ~final["bad"],
            "iterations": iters,
            "psi": psi,
            "at_zero": fixed.any(axis=1),
        }

    def _satterthwaite(self, psi, fixed, C, ell, var) -> np.ndarray:
        S, K = psi.shape
        H = np.empty((S, K, K))
        scale = np.maximum(np.abs(psi).max(axis=1, keepdims=True), 1e-8)
        for k in range(K):
            h = 1e-5 * np.maximum(np.abs(psi[:, k]), scale[:, 0] * 1e-2)
            e = np.zeros((S, K))
            e[:, k] = h
            up = psi + e
            dn = psi - e
            # one-sided at a parameter held at zero
            dn[fixed[:, k], k] = psi[fixed[:, k], k]
            gp = self._evaluate(up, None, grad=True, info=False)["grad"]
            gm = self._evaluate(dn, None, grad=True, info=False)["grad"]
            H[:, :, k] = (gp - gm) / (up[:, k] - dn[:, k])[:, None]
        H = (H + np.swapaxes(H, 1, 2)) / 2
        g = self._g_contrast(psi, C, ell)
        g[fixed] = 0.0
        for k in range(K):
            rows = fixed[:, k]
            if rows.any():
                H[rows, k, :] = 0.0
                H[rows, :, k] = 0.0
                H[rows, k, k] = 1.0
        try:
            Wg = np.linalg.solve(H, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            Wg = np.einsum("skl,sl->sk", np.linalg.pinv(H), g)
        den = 2 * np.einsum("sk,sk->s", g, Wg)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(den > 0, 2 * var**2 / den, np.inf)
        return out

    # ------------------------------------------------------------------------------------
    def _n_trials(self) -> int:
        if self.pooled:
            return self.pooled[0].SXX.shape[0]
        return self.rows[0].X.shape[0]

    def _subset(self, idx: np.ndarray) -> BatchREML:
        return BatchREML(
            [PooledBlocks(b.D, b.counts, b.SXX[idx], b.SXy[idx], b.Syy[idx]) for b in self.pooled],
            [RowBlocks(b.D, b.X[idx], b.y[idx]) for b in self.rows],
            K=self.K,
            p=self.p,
            nonneg=self.nonneg,
        )
