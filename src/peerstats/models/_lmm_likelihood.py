"""Closed-form REML/ML derivatives of a linear mixed model in its variance parameters.

For an LMM with independent residuals (one variance per level of ``residual_by``) the block
covariance is *linear* in the variance parameters psi (the entries of each random term's G_t,
lower triangle row-wise, then the residual variances):

    V_b(psi) = sum_k psi_k D_bk,   D_bk constant (:func:`peerstats.models._rancov.linear_basis`)

so the observed and expected information need no second derivative of V. With M = X'V^-1X,
C = M^-1, r = y - X beta_hat, pooled residual cross products R_b and Q_b = sum_i X_i C X_i' (REML;
0 under ML), W_b = n_b V_b^-1 - V_b^-1 (R_b + Q_b) V_b^-1 and Y_b = n_b V_b^-1 - 2 W_b:

    d(-2l)/dpsi_k          = sum_b <D_bk, W_b>
    d2(-2l)/dpsi_k dpsi_l  = sum_b tr(D_bk V_b^-1 D_bl Y_b) - tr(C P_k C P_l) [REML] - 2 u_k' C u_l
    expected information   = sum_b tr(D_bk V_b^-1 D_bl (n_b V_b^-1 - 2 V_b^-1 Q_b V_b^-1))
                             + tr(C P_k C P_l) [REML]

with P_k = X'V^-1 D_k V^-1 X and u_k = X'V^-1 D_k V^-1 r: the observed information of Wolfinger,
Tobias & Sall (1994), tr(P V_kl) - tr(P V_k P V_l) + 2 y'P V_k P V_l P y, on pooled statistics
(the same algebra as the MMRM's ``PatternLikelihood`` in :mod:`peerstats.models._reml`, with the
derivative matrices of a random-effects model). Checked against central differences of the
objective in tests/models/test_lmm_derivatives.py; the fits it drives are validated against
nlme and lme4 (tests/reference/r_lmm/, r_lmm_extra/).

Block types of different sizes are padded into a few *buckets* (V padded with the identity,
V^-1 zeroed there), so one evaluation is a handful of batched array operations, whatever the
number of distinct block sizes; the pooled statistics stay flat over the observed (block, j, l)
entries, so padding costs no memory there. scipy/statsmodels have no REML for this covariance
model with pooled statistics, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peerstats.models._pattern_likelihood import solve_fixed
from peerstats.models._rancov import BlockLayout, linear_basis

__all__ = ["LinearBlockLikelihood", "plan_buckets"]

LOG2PI = float(np.log(2 * np.pi))
_BUCKET_OVERHEAD = 3e5  # flop-equivalent of one extra batched call (numpy call overhead)


def plan_buckets(
    sizes: list[int], counts: list[int], overhead: float = _BUCKET_OVERHEAD
) -> list[list[int]]:
    """Group size classes (ascending ``sizes``, ``counts`` block types each) into buckets.

    A class joins the current bucket when padding the bucket's blocks up to the class's size
    costs less (in m^3 work) than one more batched call; large classes stay apart.
    """
    buckets: list[list[int]] = []
    n_in = 0
    top = 0
    for c, (m, b) in enumerate(zip(sizes, counts)):
        if buckets and n_in * (float(m) ** 3 - float(top) ** 3) <= overhead:
            buckets[-1].append(c)
            n_in += b
        else:
            buckets.append([c])
            n_in = b
        top = m
    return buckets


@dataclass
class _Bucket:
    """Block types padded to ``T`` observations: their basis and flat index of observed cells."""

    T: int
    counts: np.ndarray  # (B,)
    D: np.ndarray  # (K, B, T, T)
    mask: np.ndarray  # (B, T, T) 1 on observed cells
    eyepad: np.ndarray  # (B, T, T) identity on padded positions
    fb: np.ndarray  # flat cell -> block
    fj: np.ndarray  # flat cell -> row
    fl: np.ndarray  # flat cell -> column
    flat: slice  # its cells in the flat statistics
    members: list[int]  # the size classes in the bucket


def _bucket(layout: BlockLayout, members: list[int], bases: list[np.ndarray], f0: int) -> _Bucket:
    """Pad the size classes ``members`` into one bucket whose flat cells start at ``f0``."""
    classes = [layout.classes[c] for c in members]
    T = max(sc.m for sc in classes)
    B = sum(sc.counts.size for sc in classes)
    K = bases[0].shape[1]
    D = np.zeros((K, B, T, T))
    obs = np.zeros((B, T), dtype=bool)
    fb, fj, fl = [], [], []
    b0 = 0
    for sc, basis in zip(classes, bases):
        nb, m = sc.counts.size, sc.m
        D[:, b0 : b0 + nb, :m, :m] = np.moveaxis(basis, 1, 0)
        obs[b0 : b0 + nb, :m] = True
        bb, jj, ll = np.meshgrid(np.arange(nb), np.arange(m), np.arange(m), indexing="ij")
        fb.append((bb + b0).ravel())
        fj.append(jj.ravel())
        fl.append(ll.ravel())
        b0 += nb
    fb_all = np.concatenate(fb)
    mask = (obs[:, :, None] & obs[:, None, :]).astype(float)
    eyepad = np.eye(T)[None] * (~obs)[:, :, None]
    counts = np.concatenate([sc.counts for sc in classes])
    n_cells = fb_all.size
    return _Bucket(
        T, counts, D, mask, eyepad, fb_all, np.concatenate(fj), np.concatenate(fl),
        slice(f0, f0 + n_cells), members,
    )  # fmt: skip


def _flat_statistics(layout: BlockLayout, order: list[int], p: int):
    """Flat pooled statistics of the size classes in ``order``, with the transposed cell index."""
    SXX, SXy, Syy, ptr = [], [], [], []
    f0 = 0
    for c in order:
        sc = layout.classes[c]
        nb, m = sc.counts.size, sc.m
        SXX.append(sc.SXX.reshape(nb * m * m, p * p))
        SXy.append(sc.SXy.reshape(nb * m * m, p))
        Syy.append(sc.Syy.reshape(-1))
        bb, jj, ll = np.meshgrid(np.arange(nb), np.arange(m), np.arange(m), indexing="ij")
        ptr.append((bb * m * m + ll * m + jj).ravel() + f0)
        f0 += nb * m * m
    return np.concatenate(SXX), np.concatenate(SXy), np.concatenate(Syy), np.concatenate(ptr)


def finish_second_order(out: dict, H, E, P, u, reml: bool) -> None:
    """Add the fixed-effects terms -2 u'C u and -/+ tr(C P_k C P_l) (REML) to the block sums
    H and E, and store the observed Hessian, expected information and P_k in ``out``."""
    C = out["C"]
    H = H - 2 * (u @ C @ u.T)
    if reml:
        CP = C[None] @ P
        tcc = np.einsum("kab,lba->kl", CP, CP)
        H = H - tcc
        E = E + tcc
    out["hessian"] = (H + H.T) / 2
    out["expected"] = (E + E.T) / 2
    out["P"] = P


class LinearBlockLikelihood:
    """-2 log-likelihood (REML or ML), gradient, observed and expected information in psi.

    ``layout`` from :func:`~peerstats.models._rancov.build_blocks`; ``qs`` the numbers of
    columns of the random terms; ``n_res`` the number of residual variances. ``n_params`` is
    the length of psi: sum q(q+1)/2 + n_res.
    """

    def __init__(
        self, layout: BlockLayout, qs: list[int], n_res: int, method: str, statistics: bool = True
    ) -> None:
        self.method = method
        self.p = layout.classes[0].SXX.shape[-1]
        self.n_params = sum(q * (q + 1) // 2 for q in qs) + n_res
        bases = [linear_basis(layout, qs, n_res, c) for c in range(len(layout.classes))]
        # padding costs per block type with pooled statistics, per unit on the rows
        n = [sc.counts.size if statistics else int(sc.counts.sum()) for sc in layout.classes]
        groups = plan_buckets(
            [sc.m for sc in layout.classes], n, _BUCKET_OVERHEAD if statistics else 2e4
        )
        if statistics:  # the flat pooled statistics (RowLikelihood works on the rows instead)
            order = [c for g in groups for c in g]
            self.SXX, self.SXy, self.Syy, self.ptr = _flat_statistics(layout, order, self.p)
        self.buckets = []
        f0 = 0
        for g in groups:
            bk = _bucket(layout, g, [bases[c] for c in g], f0)
            self.buckets.append(bk)
            f0 = bk.flat.stop
        self.n_cells = f0

    # ---- pieces ---------------------------------------------------------------------------
    def _inverses(self, psi: np.ndarray):
        """Per bucket V^-1 (padding zeroed) and sum_b n_b log|V_b|; None if V is not PD."""
        out = []
        logdet = 0.0
        for bk in self.buckets:
            K, B, T = bk.D.shape[0], bk.counts.size, bk.T
            V = (psi @ bk.D.reshape(K, B * T * T)).reshape(B, T, T) + bk.eyepad
            try:
                Lc = np.linalg.cholesky(V)
            except np.linalg.LinAlgError:
                return None
            logdet += float(bk.counts @ np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum(axis=1))
            Li = np.linalg.inv(Lc)
            out.append((np.swapaxes(Li, 1, 2) @ Li) * bk.mask)
        return out, 2 * logdet

    def _fixed_effects(self, Vis):
        """w (V^-1 on the flat cells), M = X'V^-1X, its Cholesky, C = M^-1, beta, X'V^-1y,
        y'V^-1y; None if M is not positive definite."""
        w = np.empty(self.n_cells)
        for bk, Vi in zip(self.buckets, Vis):
            w[bk.flat] = Vi[bk.fb, bk.fj, bk.fl]
        p = self.p
        return solve_fixed(w, (w @ self.SXX).reshape(p, p), w @ self.SXy, float(w @ self.Syy))

    def _cells(self, flat: np.ndarray, bk: _Bucket) -> np.ndarray:
        """Scatter flat cell values of one bucket into (B, T, T)."""
        out = np.zeros((bk.counts.size, bk.T, bk.T))
        out[bk.fb, bk.fj, bk.fl] = flat[bk.flat]
        return out

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, psi: np.ndarray, order: int = 1) -> dict | None:
        """Objective without constants (``objective``), ``beta``, ``C``, ``M`` (order 0);
        ``rVr`` = r'V^-1 r; ``gradient`` (1); ``hessian``, ``expected``, ``P`` (2). None where V or
        X'V^-1X is not positive definite."""
        psi = np.asarray(psi, dtype=float)
        inv = self._inverses(psi)
        if inv is None:
            return None
        Vis, logdet = inv
        fe = self._fixed_effects(Vis)
        if fe is None:
            return None
        w, M, cM, C, beta, Xy, yVy = fe
        rvr = yVy - float(beta @ Xy)
        obj = logdet + rvr
        if self.method == "reml":
            obj += 2 * float(np.log(np.diagonal(cM)).sum())
        out = {"objective": obj, "beta": beta, "C": C, "M": M, "rVr": rvr}
        if order >= 1:
            self._first_order(out, Vis)
        if order >= 2:
            self._second_order(out, Vis)
        return out

    def _first_order(self, out: dict, Vis) -> None:
        """The gradient sum_b <D_bk, W_b>; keeps W_b per bucket for the second order."""
        beta, C = out["beta"], out["C"]
        Sb = self.SXy @ beta
        bc = np.outer(beta, beta)
        if self.method == "reml":
            bc = bc + C
        Rf = self.Syy - Sb - Sb[self.ptr] + self.SXX @ bc.reshape(-1)
        g = np.zeros(self.n_params)
        Ws = []
        for bk, Vi in zip(self.buckets, Vis):
            W = bk.counts[:, None, None] * Vi - Vi @ self._cells(Rf, bk) @ Vi
            Ws.append(W)
            g += bk.D.reshape(self.n_params, -1) @ W.reshape(-1)
        out["gradient"] = g
        out["_W"] = Ws

    def _second_order(self, out: dict, Vis) -> None:
        """Observed Hessian, expected information and P_k (see the module docstring)."""
        K, p, C, beta = self.n_params, self.p, out["C"], out["beta"]
        reml = self.method == "reml"
        H = np.zeros((K, K))
        E = np.zeros((K, K))
        Ef = np.empty((K, self.n_cells))
        Qf = self.SXX @ C.reshape(-1) if reml else None
        for bk, Vi, W in zip(self.buckets, Vis, out.pop("_W")):
            ViD = Vi[None] @ bk.D  # (K, B, T, T): V^-1 D_k
            Vn = bk.counts[:, None, None] * Vi
            H += ViD.reshape(K, -1) @ (bk.D @ (Vn - 2 * W)[None]).reshape(K, -1).T
            Ye = Vn - 2 * (Vi @ self._cells(Qf, bk) @ Vi) if reml else Vn
            E += ViD.reshape(K, -1) @ (bk.D @ Ye[None]).reshape(K, -1).T
            Ef[:, bk.flat] = (ViD @ Vi[None])[:, bk.fb, bk.fj, bk.fl]
        P = (Ef @ self.SXX).reshape(K, p, p)
        u = Ef @ (self.SXy - (self.SXX.reshape(-1, p) @ beta).reshape(-1, p))
        finish_second_order(out, H, E, P, u, reml)

    def second_order_terms(self, psi: np.ndarray) -> np.ndarray:
        """Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X, (K, K, p, p) (Kenward-Roger)."""
        inv = self._inverses(np.asarray(psi, dtype=float))
        if inv is None:
            raise ValueError("V is not positive definite at psi")
        K, p = self.n_params, self.p
        Qf = np.empty((K, K, self.n_cells))
        for bk, Vi in zip(self.buckets, inv[0]):
            ViD = Vi[None] @ bk.D
            A = ViD[:, None] @ ViD[None] @ Vi  # (K, K, B, T, T)
            Qf[:, :, bk.flat] = A[:, :, bk.fb, bk.fj, bk.fl]
        return (Qf.reshape(K * K, -1) @ self.SXX).reshape(K, K, p, p)
