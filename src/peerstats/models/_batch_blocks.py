"""The engine's many-datasets path, its criterion: S data sets that share one block structure.

Power simulation, multiple imputation and users' own simulation studies fit the same model to
many data sets. Each data set s is ``y ~ N(X beta, V(psi))`` with V block diagonal over
independent units; V is *linear* in the covariance parameters psi (the entries of an
unstructured covariance per group, a group variance), ``V_b(psi) = sum_k psi_k D_bk`` with the
same basis matrices D_bk for every data set. So every array below carries a leading axis S (the
data sets) and one Fisher-scoring iteration for S data sets is a handful of batched numpy
operations.

Blocks come in two representations:

- *pooled* block types (MMRM: every unit of one group and missingness pattern): the sufficient
  statistics ``S_XX[j,l] = sum_i x_ij x_il'``, ``S_Xy``, ``S_yy`` and the number of units, as
  the single-fit engine keeps them (:func:`peerstats.models._reml.pattern_statistics`, whose
  :class:`~peerstats.models._reml.SizeClass` is the same layout without the leading S axis), so
  an iteration costs nothing per unit. The counts are shared by every data set (power: one
  draw of the dropout patterns per batch) or per data set (``(S, B)``,
  :func:`peerstats.mmrm_many`: a pattern a data set lacks has count 0 and zero statistics);
- *group* blocks (the delivery groups of the partially nested model): X and y per member and
  visit; V^-1 by Woodbury (block diagonal over members plus the group variance), so only T x T
  matrices are inverted.

The criterion, gradient and information are those of the single-fit engine
(:mod:`peerstats.models._reml`; Harville 1977; Wolfinger, Tobias & Sall 1994), in the linear
parameterisation:

    -2 l_REML = sum_b log|V_b| + log|M| + r'V^-1 r + const,   M = X'V^-1X
    g_k = sum_b tr(V_b^-1 D_bk) - r'V^-1 D_k V^-1 r - tr(M^-1 X'V^-1 D_k V^-1 X)
    I_kl ~ sum_b tr(V_b^-1 D_bk V_b^-1 D_bl)   (ML expected information, used for the steps)

Steps (:mod:`peerstats.models._batch`): Fisher scoring with step halving. Why a second
optimiser beside :class:`~peerstats.models._reml.REMLEngine`: that one works on one data set in
the structure's own parameters (log-Cholesky for ``us``); here every array carries the S axis and
the linear parameters make V, its derivatives and the information one einsum each. The
optimum is the same point (REML has one maximum in psi for these models); the answers equal
``peerstats.mmrm`` / ``peerstats.lmm`` on the same data (tests/design/test_simulation.py,
tests/models/test_mmrm_many.py) and R mmrm (tests/reference/mmrm_many/).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PooledBlocks", "GroupBlocks", "BatchCriterion", "batched_cholesky"]


def batched_cholesky(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of (S, ..., m, m); data sets whose matrices are not positive definite
    are flagged in ``bad`` (S,) and get identity factors."""
    S = A.shape[0]
    bad = np.zeros(S, dtype=bool)
    try:
        return np.linalg.cholesky(A), bad
    except np.linalg.LinAlgError:
        L = np.empty_like(A)
        eye = np.eye(A.shape[-1])
        for s in range(S):
            try:
                L[s] = np.linalg.cholesky(A[s])
            except np.linalg.LinAlgError:
                bad[s] = True
                L[s] = eye
        return L, bad


def _chol_inverse(V: np.ndarray):
    """Batched inverse and log-determinant of (S, B, m, m); failures flagged bad."""
    L, bad = batched_cholesky(V)
    logdet = 2 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, B)
    Li = np.linalg.inv(L)
    Vinv = np.swapaxes(Li, -1, -2) @ Li
    return Vinv, logdet, bad


@dataclass
class PooledBlocks:
    """Block types of dimension m pooled over units (sufficient statistics per data set).

    ``counts`` is (B,) when every data set has the same units per block type, else (S, B).
    """

    D: np.ndarray  # (B, K, m, m)
    counts: np.ndarray  # (B,) or (S, B)
    SXX: np.ndarray  # (S, B, m, m, p, p)
    SXy: np.ndarray  # (S, B, m, m, p)
    Syy: np.ndarray  # (S, B, m, m)

    def units(self, x: np.ndarray) -> np.ndarray:
        """sum_b counts_b x_sb for x (S, B)."""
        if self.counts.ndim == 1:
            return x @ self.counts
        return (x * self.counts).sum(axis=1)

    def count_spec(self) -> str:
        """The einsum subscript of the counts."""
        return "b" if self.counts.ndim == 1 else "sb"

    def subset(self, idx: np.ndarray) -> PooledBlocks:
        counts = self.counts if self.counts.ndim == 1 else self.counts[idx]
        return PooledBlocks(self.D, counts, self.SXX[idx], self.SXy[idx], self.Syy[idx])


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

    def _member_inverses(self, psi: np.ndarray):
        """Inverse and log-determinant of a member's block for each number k of observed
        visits (a prefix: monotone dropout): (S, T+1, T, T), (S, T+1) and failures (S,)."""
        S = psi.shape[0]
        T = self.T
        Sig = (psi @ self.Ff).reshape(S, T, T)
        Ainv = np.zeros((S, T + 1, T, T))
        ldk = np.zeros((S, T + 1))
        bad = np.zeros(S, dtype=bool)
        for k in range(1, T + 1):
            L, b = batched_cholesky(Sig[:, :k, :k])
            bad |= b
            Li = np.linalg.inv(L)
            Ainv[:, k, :k, :k] = np.swapaxes(Li, 1, 2) @ Li
            ldk[:, k] = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        return Ainv, ldk, bad

    def inverse(self, psi: np.ndarray):
        """V^-1 in Woodbury form, V^-1 = R^-1 - c w w' with R block diagonal over members
        (R^-1 (S, G, Mm, T, T), zero on padding), w = R^-1 e (S, G, Mm, T), c = s / (1 + s q),
        q = e'R^-1 e (S, G); plus log|V| (S, G) and a failure flag (S,). Only T x T matrices
        (one per dropout pattern) are inverted."""
        G, Mm, T = self.obs.shape
        Ainv, ldk, bad = self._member_inverses(psi)
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


@dataclass
class _Sums:
    """What the blocks add up to at one psi: M = X'V^-1X, X'V^-1y, y'V^-1y, log|V|."""

    M: np.ndarray
    Xy: np.ndarray
    yVy: np.ndarray
    logdet: np.ndarray
    bad: np.ndarray


class BatchCriterion:
    """-2 l_REML, its gradient and information for S data sets sharing block structure (see
    the module docstring); :class:`peerstats.models._batch.BatchREML` adds the fitting."""

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

    # ---- criterion ---------------------------------------------------------------------------
    def _pooled_sums(self, psi: np.ndarray, acc: _Sums) -> list:
        S, p = psi.shape[0], self.p
        cache = []
        for blk in self.pooled:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, ld, b = _chol_inverse(V)
            acc.bad |= b
            SXX, SXy, Syy = blk.SXX, blk.SXy, blk.Syy
            Sb, Bn, m = SXX.shape[0], SXX.shape[1], SXX.shape[2]
            vf = Vinv.reshape(S, Bn * m * m)
            acc.M += np.einsum("sa,sapq->spq", vf, SXX.reshape(Sb, Bn * m * m, p, p))
            acc.Xy += np.einsum("sa,sap->sp", vf, SXy.reshape(Sb, Bn * m * m, p))
            acc.yVy += np.einsum("sa,sa->s", vf, Syy.reshape(Sb, Bn * m * m))
            acc.logdet += blk.units(ld)
            cache.append(Vinv)
        return cache

    def _group_sums(self, psi: np.ndarray, acc: _Sums) -> list:
        S, p = psi.shape[0], self.p
        gcache = []
        for blk in self.groups:
            Ri, w, c, q, ld, b = blk.inverse(psi)
            acc.bad |= b
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
            acc.M += Xf.transpose(0, 2, 1) @ VX.reshape(S, Sn, p)
            acc.Xy += (Xf.transpose(0, 2, 1) @ Vy.reshape(S, Sn, 1))[..., 0]
            acc.yVy += (y * Vy).sum(axis=(1, 2, 3))
            acc.logdet += ld.sum(axis=1)
            gcache.append((Ri, w, c, q, VX, Vy))
        return gcache

    def _criterion(self, acc: _Sums) -> dict:
        """GLS beta, its covariance C = M^-1 and -2 l_REML (up to a constant)."""
        M = (acc.M + np.swapaxes(acc.M, 1, 2)) / 2
        cM, b = batched_cholesky(M)
        bad = acc.bad | b
        cMi = np.linalg.inv(cM)
        C = np.swapaxes(cMi, 1, 2) @ cMi
        beta = np.einsum("spq,sq->sp", C, acc.Xy)
        obj = acc.logdet + 2 * np.log(np.diagonal(cM, axis1=1, axis2=2)).sum(axis=1) + acc.yVy
        obj -= np.einsum("sp,sp->s", beta, acc.Xy)
        obj[bad] = np.inf
        return {"obj": obj, "beta": beta, "C": C, "bad": bad}

    def _evaluate(self, psi: np.ndarray, grad: bool, info: bool) -> dict:
        """Criterion (and gradient / ML information) at psi (S, K) for every data set."""
        S, p, K = psi.shape[0], self.p, self.K
        acc = _Sums(
            np.zeros((S, p, p)), np.zeros((S, p)), np.zeros(S), np.zeros(S), np.zeros(S, bool)
        )
        cache = self._pooled_sums(psi, acc)
        gcache = self._group_sums(psi, acc)
        out = self._criterion(acc)
        if not (grad or info):
            return out
        g = np.zeros((S, K))
        Inf = np.zeros((S, K, K)) if info else None
        beta, C = out["beta"], out["C"]
        for blk, Vinv in zip(self.pooled, cache):
            self._pooled_gradient(blk, Vinv, beta, C, g, Inf)
        for blk, gc in zip(self.groups, gcache):
            self._group_gradient(blk, gc, beta, C, g)
            if info:
                self._group_information(blk, gc, Inf)
        out["grad"] = g
        out["info"] = Inf
        return out

    # ---- gradient and information --------------------------------------------------------------
    @staticmethod
    def _pooled_gradient(blk: PooledBlocks, Vinv, beta, C, g, Inf) -> None:
        cs = blk.count_spec()
        bb = np.einsum("sp,sq->spq", beta, beta) + C
        if blk.counts.ndim == 2:  # mmrm_many: batched matmul (the power path keeps its einsum)
            G = Vinv[:, :, None] @ blk.D[None]  # V^-1 D_k
        else:
            G = np.einsum("sbij,bkjl->sbkil", Vinv, blk.D)  # V^-1 D_k
        g += np.einsum(f"{cs},sbkii->sk", blk.counts, G)
        Sbt = np.einsum("sbijp,sp->sbij", blk.SXy, beta)
        R = blk.Syy - Sbt - np.swapaxes(Sbt, 2, 3) + np.einsum("sbijpq,spq->sbij", blk.SXX, bb)
        A = G @ Vinv[:, :, None]  # V^-1 D_k V^-1
        g -= np.einsum("sbkij,sbji->sk", A, R)
        if Inf is not None:
            Inf += np.einsum(f"{cs},sbkij,sblji->skl", blk.counts, G, G)

    @staticmethod
    def _group_flat(blk: GroupBlocks, Ri, w, c):
        """(N, cm, wf, Rf, ww): the group members flattened to N = G M rows per replicate,
        the group constant c per member, w_i, R_i^-1 and w_i w_j' as (S, N, T T)."""
        S = Ri.shape[0]
        Gn, Mm, T = blk.obs.shape
        N = Gn * Mm
        cm = np.broadcast_to(c[:, :, None], (S, Gn, Mm)).reshape(S, N)
        wf = w.reshape(S, N, T)
        Rf = Ri.reshape(S, N, T * T)
        ww = (wf[:, :, :, None] * wf[:, :, None, :]).reshape(S, N, T * T)
        return N, cm, wf, Rf, ww

    @staticmethod
    def _group_gradient(blk: GroupBlocks, gc, beta, C, g) -> None:
        Ri, w, c, q, VX, Vy = gc
        S, p = beta.shape
        Gn, Mm, T = blk.obs.shape
        Ff, gi = blk.Ff, blk.gidx
        N, cm, wf, Rf, ww = BatchCriterion._group_flat(blk, Ri, w, c)
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

    @staticmethod
    def _group_information(blk: GroupBlocks, gc, Inf) -> None:
        Ri, w, c, q, _, _ = gc
        S = Ri.shape[0]
        Gn, Mm, T = blk.obs.shape
        Ff, gi = blk.Ff, blk.gidx
        N, cm, wf, Rf, ww = BatchCriterion._group_flat(blk, Ri, w, c)
        # Z[a,d,b,c] = sum_ij B_ij[a,d] B_ij[b,c], B_ij = d_ij R_i^-1 - c w_i w_j'
        cw = cm[..., None] * ww
        Z = Rf.transpose(0, 2, 1) @ Rf - Rf.transpose(0, 2, 1) @ cw - cw.transpose(0, 2, 1) @ Rf
        Zp = Z.reshape(S, T, T, T, T).transpose(0, 1, 3, 4, 2).reshape(S, T * T, T * T)
        Om = (w[..., :, None] * w[..., None, :]).sum(axis=2).reshape(S, Gn, T * T)
        Zp += (Om * (c * c)[..., None]).transpose(0, 2, 1) @ Om
        Inf += Ff[None] @ Zp @ Ff.T[None]
        z = w * (1 - c * q)[:, :, None, None]  # V^-1 e per member
        zb = z.reshape(S, N, T)
        Igl = (zb.transpose(0, 2, 1) @ zb).reshape(S, T * T) @ Ff.T
        Inf[:, gi, :] += Igl
        Inf[:, :, gi] += Igl
        eVe = q - c * q * q
        Inf[:, gi, gi] += (eVe**2).sum(axis=1)

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

    def _g_contrasts(self, psi: np.ndarray, C: np.ndarray, L: np.ndarray) -> np.ndarray:
        """:meth:`_g_contrast` for every row of L (J, p) at once: (S, J, K)."""
        if self.groups:
            return np.stack([self._g_contrast(psi, C, ell) for ell in L], axis=1)
        S, J = psi.shape[0], L.shape[0]
        CL = np.einsum("spq,jq->sjp", C, L)  # (S, J, p)
        g = np.zeros((S, J, self.K))
        for blk in self.pooled:
            V = np.einsum("sk,bkij->sbij", psi, blk.D)
            Vinv, _, _ = _chol_inverse(V)
            A = np.einsum("sbij,bkjl,sblm->sbkim", Vinv, blk.D, Vinv, optimize=True)
            w = np.einsum("sbijpq,sap,saq->sabij", blk.SXX, CL, CL, optimize=True)
            g += np.einsum("sbkij,sabji->sak", A, w, optimize=True)
        return g

    # ---- data sets ------------------------------------------------------------------------
    def _n_trials(self) -> int:
        if self.pooled:
            return self.pooled[0].SXX.shape[0]
        return self.groups[0].X.shape[0]

    def _subset(self, idx: np.ndarray) -> BatchCriterion:
        if idx.size == self._n_trials() and np.array_equal(idx, np.arange(idx.size)):
            return self  # every data set: no copy of the statistics
        return type(self)(
            [b.subset(idx) for b in self.pooled],
            [b.subset(idx) for b in self.groups],
            K=self.K,
            p=self.p,
            nonneg=self.nonneg,
        )
