"""The LMM likelihood of :mod:`peerstats.models._lmm_likelihood` on the rows themselves.

Pooled statistics cost m^2 p^2 numbers per block type; a block type with few units (a delivery
group is a block of its own, 10-20 rows) is cheaper on its rows, m p numbers per unit. With
A_u = V_b^-1 X_u, s_u = V_b^-1 r_u per unit u of block type b:

    M = sum_u X_u' A_u,   W_b = n_b V_b^-1 - sum_u s_u s_u' - sum_u A_u C A_u' (REML),
    P_k = sum_u A_u' D_bk A_u,   u_k = sum_u A_u' D_bk s_u,
    Q_kl = sum_u (D_bk A_u)' V_b^-1 (D_bl A_u)

and the gradient, observed and expected information follow as in ``LinearBlockLikelihood``
(whose interface this class shares; ``V_b^-1 Q_b V_b^-1 = sum_u A_u C A_u'``).
:func:`choose_likelihood` takes whichever representation needs less work.
"""

from __future__ import annotations

import numpy as np

from peerstats.models._lmm_likelihood import (
    LinearBlockLikelihood,
    _Bucket,
    finish_second_order,
    solve_fixed,
)
from peerstats.models._rancov import BlockLayout

__all__ = ["RowLikelihood", "choose_likelihood"]


def choose_likelihood(layout: BlockLayout, X, y, qs, n_res, method):
    """Rows when sum over units of m (m + p) is below the pooled sum of m^2 p^2."""
    p = X.shape[1]
    rows = sum(float(sc.counts.sum()) * sc.m * (sc.m + p) for sc in layout.classes)
    pooled = sum(sc.counts.size * float(sc.m) ** 2 * p * p for sc in layout.classes)
    if rows < pooled:
        return RowLikelihood(layout, X, y, qs, n_res, method)
    return LinearBlockLikelihood(layout, qs, n_res, method)


class RowLikelihood(LinearBlockLikelihood):
    """``LinearBlockLikelihood`` evaluated on the rows of every unit (see the module doc)."""

    def __init__(self, layout, X, y, qs, n_res, method) -> None:
        super().__init__(layout, qs, n_res, method, statistics=False)
        self.units = [self._units(layout, bk, X, y) for bk in self.buckets]

    def _units(self, layout, bk: _Bucket, X, y):
        """Padded rows of the bucket's units: X (U, T, p), y (U, T), block of each unit and
        the start of each block's units."""
        rows = [r for c in bk.members for r in layout.rows[c]]  # per block type: (units, m)
        U = sum(r.shape[0] for r in rows)
        Xu = np.zeros((U, bk.T, self.p))
        yu = np.zeros((U, bk.T))
        ub = np.repeat(np.arange(len(rows)), [r.shape[0] for r in rows])
        u0 = 0
        for r in rows:
            n, m = r.shape
            Xu[u0 : u0 + n, :m] = X[r]
            yu[u0 : u0 + n, :m] = y[r]
            u0 += n
        starts = np.r_[0, np.cumsum([r.shape[0] for r in rows])[:-1]]
        return Xu, yu, ub, starts

    def _fixed_effects(self, Vis):
        p = self.p
        M = np.zeros((p, p))
        Xy = np.zeros(p)
        yVy = 0.0
        self._A = []
        for (Xu, yu, ub, _), Vi in zip(self.units, Vis):
            ViU = Vi[ub]
            A = ViU @ Xu
            self._A.append((ViU, A))
            A2 = A.reshape(-1, p)
            M += Xu.reshape(-1, p).T @ A2
            Xy += A2.T @ yu.reshape(-1)
            yVy += float(yu.reshape(-1) @ (ViU @ yu[..., None]).reshape(-1))
        return solve_fixed(None, M, Xy, yVy)

    def _first_order(self, out: dict, Vis) -> None:
        beta, C = out["beta"], out["C"]
        reml = self.method == "reml"
        g = np.zeros(self.n_params)
        Ws, self._s, self._Qt = [], [], []
        for bk, (Xu, yu, _, starts), (ViU, A), Vi in zip(self.buckets, self.units, self._A, Vis):
            s = (ViU @ (yu - Xu @ beta)[..., None])[..., 0]  # (U, T): V^-1 r
            R = np.add.reduceat(s[:, :, None] * s[:, None, :], starts, axis=0)
            Qt = np.add.reduceat(A @ C @ np.swapaxes(A, 1, 2), starts, axis=0) if reml else 0.0
            W = bk.counts[:, None, None] * Vi - R - Qt
            Ws.append(W)
            self._s.append(s)
            self._Qt.append(Qt)
            g += bk.D.reshape(self.n_params, -1) @ W.reshape(-1)
        out["gradient"] = g
        out["_W"] = Ws

    def _second_order(self, out: dict, Vis) -> None:
        K, p = self.n_params, self.p
        reml = self.method == "reml"
        H = np.zeros((K, K))
        E = np.zeros((K, K))
        P = np.zeros((K, p, p))
        u = np.zeros((K, p))
        for bk, (_, _, ub, _), (_, A), Vi, W, s, Qt in zip(
            self.buckets, self.units, self._A, Vis, out.pop("_W"), self._s, self._Qt
        ):
            ViD = Vi[None] @ bk.D
            Vn = bk.counts[:, None, None] * Vi
            H += ViD.reshape(K, -1) @ (bk.D @ (Vn - 2 * W)[None]).reshape(K, -1).T
            Ye = Vn - 2 * Qt if reml else Vn
            E += ViD.reshape(K, -1) @ (bk.D @ Ye[None]).reshape(K, -1).T
            DA = (bk.D[:, ub] @ A[None]).reshape(K, -1, p)  # (K, U*T, p)
            P += A.reshape(1, -1, p).transpose(0, 2, 1) @ DA
            u += np.einsum("kxp,x->kp", DA, s.reshape(-1))
        finish_second_order(out, H, E, P, u, reml)

    def second_order_terms(self, psi: np.ndarray) -> np.ndarray:
        """Q_kl = sum_u (D_k A_u)' V^-1 (D_l A_u), (K, K, p, p) (Kenward-Roger)."""
        out = self.evaluate(np.asarray(psi, dtype=float), order=0)
        if out is None:
            raise ValueError("V is not positive definite at psi")
        K, p = self.n_params, self.p
        Q = np.zeros((K, K, p, p))
        for bk, (_, _, ub, _), (ViU, A) in zip(self.buckets, self.units, self._A):
            DA = bk.D[:, ub] @ A[None]  # (K, U, T, p)
            ViDA = (ViU[None] @ DA).reshape(K, -1, p)
            Q += np.einsum("kxa,lxb->klab", DA.reshape(K, -1, p), ViDA)
        return Q
