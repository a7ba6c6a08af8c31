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
- *group* blocks (the delivery groups of the partially nested model): X and y per member and
  visit; V^-1 by Woodbury (block diagonal over members plus the group variance), so only T x T
  matrices are inverted.

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

__all__ = ["PooledBlocks", "GroupBlocks", "BatchREML"]


@dataclass
class PooledBlocks:
    """Block types of dimension m pooled over units (sufficient statistics per trial)."""

    D: np.ndarray  # (B, K, m, m)
    counts: np.ndarray  # (B,)
    SXX: np.ndarray  # (S, B, m, m, p, p)
    SXy: np.ndarray  # (S, B, m, m, p)
    Syy: np.ndarray  # (S, B, m, m)


@dataclass
class GroupBlocks:
    """Delivery groups of up to ``Mm`` members with T visits each (partially nested model).

    Group g's covariance is block diagonal over its members, each block ``sum_k psi_k F_k``
    restricted to the member's observed visits, plus ``psi[gidx] * e e'`` (e: the visits with a
    group effect, over the observed rows). Unobserved (padding) rows get an identity block and
    zero X and y, so they change nothing.
    """

    F: np.ndarray  # (K, T, T) member-level basis (zero for parameters of other arms)
    gidx: int
    gvec: np.ndarray  # (T,) 1 where the group effect applies
    obs: np.ndarray  # (G, Mm, T) bool
    X: np.ndarray  # (S, G, Mm, T, p)
    y: np.ndarray  # (S, G, Mm, T)

    def __post_init__(self) -> None:
        G, Mm, T = self.obs.shape
        self.T = T
        self.Mm = Mm
        self.m = Mm * T
        o = self.obs.reshape(G, Mm * T).astype(float)
        self.e = o * np.tile(self.gvec, Mm)[None, :]  # (G, m): e over the observed rows
        self.Ff = self.F.reshape(self.F.shape[0], T * T)  # (K, T*T)

    def inverse(self, psi: np.ndarray):
        """V^-1 in Woodbury form, V^-1 = R^-1 - c w w' with R block diagonal over members
        (R^-1 (S, G, Mm, T, T), zero on padding), w = R^-1 e (S, G, Mm, T), c = s / (1 + s q),
        q = e'R^-1 e (S, G); plus log|V| (S, G) and a failure flag (S,). Only T x T matrices
        (one per dropout pattern) are inverted."""
        S = psi.shape[0]
        G, Mm, T = self.obs.shape
        Sig = (psi @ self.Ff).reshape(S, T, T)
        Ainv = np.zeros((S, T + 1, T, T))
        ldk = np.zeros((S, T + 1))
        bad = np.zeros(S, dtype=bool)
        for k in range(1, T + 1):
            sub = Sig[:, :k, :k]
            try:
                L = np.linalg.cholesky(sub)
            except np.linalg.LinAlgError:
                L = np.empty_like(sub)
                for s_ in range(S):
                    try:
                        L[s_] = np.linalg.cholesky(sub[s_])
                    except np.linalg.LinAlgError:
                        bad[s_] = True
                        L[s_] = np.eye(k)
            Li = np.linalg.inv(L)
            Ainv[:, k, :k, :k] = np.swapaxes(Li, 1, 2) @ Li
            ldk[:, k] = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        kmem = self.obs.sum(axis=2)  # (G, Mm): observed visits are a prefix (monotone dropout)
        Rinv = Ainv[:, kmem]  # (S, G, Mm, T, T)
        ldR = ldk[:, kmem].sum(axis=2)  # (S, G)
        em = self.e.reshape(G, Mm, T)
        w = (Rinv @ em[None, :, :, :, None])[..., 0]  # (S, G, Mm, T)
        q = (em[None] * w).sum(axis=(2, 3))  # e'R^-1 e
        sg = psi[:, self.gidx][:, None]
        den = 1 + sg * q
        bad |= (den <= 0).any(axis=1)
        c = sg / np.where(den > 0, den, 1.0)
        logdet = ldR + np.log(np.where(den > 0, den, 1.0))
        return Rinv, w, c, q, logdet, bad

    def subset(self, idx: np.ndarray) -> GroupBlocks:
        return GroupBlocks(self.F, self.gidx, self.gvec, self.obs, self.X[idx], self.y[idx])


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
        groups: list[GroupBlocks],
        *,
        K: int,
        p: int,
        nonneg: np.ndarray | None = None,
    ) -> None:
        self.pooled = pooled
        self.groups = groups
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
        gcache = []
        for blk in self.groups:
            Ri, w, c, q, ld, b = blk.inverse(psi)
            bad |= b
            X, y = blk.X, blk.y  # (S, G, Mm, T, p), (S, G, Mm, T)
            RX = Ri @ X
            Ry = (Ri @ y[..., None])[..., 0]
            Gn_, mT = X.shape[1], X.shape[2] * X.shape[3]
            hX = (w.reshape(S, Gn_, 1, mT) @ X.reshape(S, Gn_, mT, p))[:, :, 0, :]
            hy = (w * y).sum(axis=(2, 3))
            VX = RX - c[:, :, None, None, None] * w[..., None] * hX[:, :, None, None, :]
            Vy = Ry - c[:, :, None, None] * w * hy[:, :, None, None]
            Sn = X.shape[1] * X.shape[2] * X.shape[3]
            Xf = X.reshape(S, Sn, p)
            M += Xf.transpose(0, 2, 1) @ VX.reshape(S, Sn, p)
            Xy += (Xf.transpose(0, 2, 1) @ Vy.reshape(S, Sn, 1))[..., 0]
            yVy += (y * Vy).sum(axis=(1, 2, 3))
            logdet += ld.sum(axis=1)
            gcache.append((Ri, w, c, q, VX, Vy))
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
        Inf = np.zeros((S, K, K)) if info else None
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
                Inf += np.einsum("b,sbkij,sblji->skl", blk.counts, G, G)
        for blk, (Ri, w, c, q, VX, Vy) in zip(self.groups, gcache):
            Gn, Mm, T = blk.obs.shape
            N = Gn * Mm
            Ff = blk.Ff
            gi = blk.gidx
            cm = np.broadcast_to(c[:, :, None], (S, Gn, Mm)).reshape(S, N)
            wf = w.reshape(S, N, T)
            Rf = Ri.reshape(S, N, T * T)
            ww = (wf[:, :, :, None] * wf[:, :, None, :]).reshape(S, N, T * T)
            # tr(V^-1 D_k): sum of the member diagonal blocks of V^-1
            diag = Rf.sum(axis=1) - (cm[..., None] * ww).sum(axis=1)
            g += diag @ Ff.T
            eVe = q - c * q * q
            g[:, gi] += eVe.sum(axis=1)
            u = Vy - (VX.reshape(S, -1, p) @ beta[:, :, None]).reshape(Vy.shape)
            ub = u.reshape(S, N, T)
            g -= (ub.transpose(0, 2, 1) @ ub).reshape(S, T * T) @ Ff.T
            em = blk.e.reshape(Gn, Mm, T)
            g[:, gi] -= (np.einsum("gmt,sgmt->sg", em, u) ** 2).sum(axis=1)
            VXb = VX.reshape(S, N, T, p)
            VXC = (VXb.reshape(S, N * T, p) @ C).reshape(S, N, T, p)
            Wd = VXC.transpose(0, 2, 1, 3).reshape(S, T, N * p) @ VXb.transpose(0, 1, 3, 2).reshape(
                S, N * p, T
            )
            g -= Wd.reshape(S, T * T) @ Ff.T
            hv = (blk.e[None, :, None, :] @ VX.reshape(S, Gn, Mm * T, p))[:, :, 0, :]
            g[:, gi] -= ((hv @ C) * hv).sum(axis=(1, 2))
            if info:
                # Z[a,d,b,c] = sum_ij B_ij[a,d] B_ij[b,c], B_ij = d_ij R_i^-1 - c w_i w_j'
                cw = cm[..., None] * ww
                Z = (
                    Rf.transpose(0, 2, 1) @ Rf
                    - Rf.transpose(0, 2, 1) @ cw
                    - cw.transpose(0, 2, 1) @ Rf
                )
                Zp = Z.reshape(S, T, T, T, T).transpose(0, 1, 3, 4, 2).reshape(S, T * T, T * T)
                Om = (w[..., :, None] * w[..., None, :]).sum(axis=2).reshape(S, Gn, T * T)
                Zp += (Om * (c * c)[..., None]).transpose(0, 2, 1) @ Om
                Inf += Ff[None] @ Zp @ Ff.T[None]
                z = w * (1 - c * q)[:, :, None, None]  # V^-1 e per member
                zb = z.reshape(S, N, T)
                Igl = (zb.transpose(0, 2, 1) @ zb).reshape(S, T * T) @ Ff.T
                Inf[:, gi, :] += Igl
                Inf[:, :, gi] += Igl
                Inf[:, gi, gi] += (eVe**2).sum(axis=1)
        out["grad"] = g
        out["info"] = Inf
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
        for blk in self.groups:
            Gn, Mm, T = blk.obs.shape
            Ri, w, c, q, _, _ = blk.inverse(psi)
            xl = (blk.X.reshape(S, -1, self.p) @ Cl[:, :, None]).reshape(blk.X.shape[:-1])
            z = (Ri @ xl[..., None])[..., 0] - c[:, :, None, None] * w * np.einsum(
                "sgmt,sgmt->sg", w, xl
            )[:, :, None, None]
            zb = z.reshape(S, Gn * Mm, T)
            g += (zb.transpose(0, 2, 1) @ zb).reshape(S, T * T) @ blk.Ff.T
            em = blk.e.reshape(Gn, Mm, T)
            g[:, blk.gidx] += (np.einsum("gmt,sgmt->sg", em, z) ** 2).sum(axis=1)
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
            ok = np.isfinite(trial["obj"]) & (
                trial["obj"] <= obj0 + 1e-9 * np.maximum(1, np.abs(obj0))
            )
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
            g0 = self._evaluate(psi, None, grad=True, info=False)["grad"]
            dfs = self._satterthwaite(psi, fixed, C, ell, var, g0)
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

    def _satterthwaite(self, psi, fixed, C, ell, var, g0) -> np.ndarray:
        """Satterthwaite df with W = 2 H^-1, H the observed Hessian of -2 l_REML by forward
        differences of the analytic gradient (``g0`` at psi); upward steps, so parameters
        held at zero stay feasible."""
        S, K = psi.shape
        H = np.empty((S, K, K))
        scale = np.maximum(np.abs(psi).max(axis=1, keepdims=True), 1e-8)
        for k in range(K):
            h = 1e-6 * np.maximum(np.abs(psi[:, k]), scale[:, 0] * 1e-2)
            up = psi.copy()
            up[:, k] += h
            gp = self._evaluate(up, None, grad=True, info=False)["grad"]
            H[:, :, k] = (gp - g0) / h[:, None]
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
        return self.groups[0].X.shape[0]

    def _subset(self, idx: np.ndarray) -> BatchREML:
        return BatchREML(
            [PooledBlocks(b.D, b.counts, b.SXX[idx], b.SXy[idx], b.Syy[idx]) for b in self.pooled],
            [b.subset(idx) for b in self.groups],
            K=self.K,
            p=self.p,
            nonneg=self.nonneg,
        )
