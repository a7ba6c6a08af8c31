"""The MMRM likelihood with closed-form gradient and observed Hessian (used by ``_reml``).

Split from :mod:`peerstats.models._reml` (issue 22.2): the engine pools subjects by missingness
pattern; this module evaluates -2 log-likelihood, its gradient, the observed Hessian and the
expected information on those pooled statistics, with every term's cost independent of the
number of subjects, except for one optional *subject path*.

Costs per second-order evaluation (B block types, L = sum_b m_b^2 pooled entries, K covariance
parameters, p fixed effects, T visits, N subjects):

- covariance-only terms sum_b tr(dSigma_k V_b^-1 dSigma_l Y_b) as D Omega D' with
  Omega = sum_b V_b^-1 (x) Y_b (a T^2 x T^2 matrix): O(B T^4 + K T^4 + K^2 T^2), instead of the
  K^2 T^2 products per block type of a direct evaluation;
- P_k = X'V^-1 dSigma_k V^-1 X and u_k = X'V^-1 dSigma_k V^-1 r, either from the pooled
  statistics (O(K L p^2)) or, when that is cheaper (many patterns: real trials with
  non-monotone missingness), per subject from U_i = V_i^-1 X_i (padded to T visits):
  P_k = sum_ac dSigma_k[a, c] Phi[a, c] with Phi = sum_i U_i[a]' U_i[c], one Gram matrix of
  the (N, T p) array U, O(N T^2 p^2), bounded by subjects x visits^2 and independent of the
  number of patterns. The two paths are algebraically identical (they differ only in the
  order of floating-point sums).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PatternLikelihood", "SizeClass", "UnitArrays", "units_cheaper"]

# the subject path also holds N x T x (p + 1) numbers: not beyond this many bytes
_UNIT_BYTES = 256 * 2**20


def solve_fixed(w, M, Xy, yVy):
    """(w, M, chol(M), C = M^-1, beta = C X'V^-1y, X'V^-1y, y'V^-1y) from the sums; None if
    M = X'V^-1X is not positive definite."""
    M = (M + M.T) / 2
    try:
        cM = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(cM)
    C = Li.T @ Li
    return w, M, cM, C, C @ Xy, Xy, yVy


def units_cheaper(N: int, T: int, p: int, K: int, L: int, B: int) -> bool:
    """Whether P_k, u_k cost fewer operations per subject (Gram of the (N, T p) array
    V^-1 X) than from the pooled statistics (K products with the (L, p^2) array), for N
    subjects, T visits, p fixed effects, K covariance parameters, L pooled entries and B
    block types; and the padded arrays stay small."""
    pooled = 2.0 * K * L * p * p + B * K * T**3
    subject = N * (T * p) ** 2 + 4.0 * N * T * T * p
    return subject < pooled and N * T * (p + 1) * 8 < _UNIT_BYTES


@dataclass
class UnitArrays:
    """Each unit's rows padded to the T visits (zeros where a visit is missing).

    ``X`` (N, T, p) and ``y`` (N, T) are already scaled by sqrt(row weight); ``block`` is the
    unit's block type in :class:`PatternLikelihood` order; ``weight`` its frequency weight
    (None: all 1).
    """

    X: np.ndarray
    y: np.ndarray
    block: np.ndarray
    weight: np.ndarray | None = None


@dataclass
class SizeClass:
    """Sufficient statistics of the block types that have ``m`` observations each."""

    m: int
    counts: np.ndarray  # (B,) number of units pooled in each block type
    SXX: np.ndarray  # (B, m, m, p, p)
    SXy: np.ndarray  # (B, m, m, p)
    Syy: np.ndarray  # (B, m, m)
    keys: list = field(default_factory=list)  # what each block type is (e.g. (group, visits))


class _LazySizeClass(SizeClass):
    """A :class:`SizeClass` whose pooled arrays are computed on first access: the
    likelihood's subject path never reads them (Kenward-Roger and the jackknife do); on
    mmrm's BCVA data (107 block types) they are 34 MB, most of the preparation's time."""

    def __init__(self, m: int, counts: np.ndarray, keys: list, flat: _FlatStats, a: int, z: int):
        self.m, self.counts, self.keys = m, counts, keys
        self._flat, self._span = flat, (a, z)

    def _view(self, name: str, *shape: int) -> np.ndarray:
        self._flat.ready()
        a, z = self._span
        return getattr(self._flat, name)[a:z].reshape(-1, self.m, self.m, *shape)

    SXX = property(lambda self: self._view("XX", self._flat.p, self._flat.p))
    SXy = property(lambda self: self._view("Xy", self._flat.p))
    Syy = property(lambda self: self._view("yy"))


def fixed_effects(sc: SizeClass) -> int:
    """p, the number of fixed effects of a size class (without computing lazy statistics)."""
    return sc._flat.p if isinstance(sc, _LazySizeClass) else sc.SXX.shape[-1]


class _FlatStats:
    """The pooled statistics of all block types in one flat (L, p^2) / (L, p) / (L,) buffer
    (L = sum_b m_b^2, blocks in order of ``sizes``): each size class's arrays are views into
    it, so the likelihood's flat layout needs no copy. With :meth:`defer` the buffers are
    filled on first access (:class:`_LazySizeClass`)."""

    def __init__(self, sizes: list[int], p: int) -> None:
        self.sizes, self.p = list(sizes), p
        self.offsets = np.concatenate([[0], np.cumsum(np.square(self.sizes))]).astype(int)
        self.L = int(self.offsets[-1])
        self.XX = np.empty((self.L, p * p))
        self.Xy = np.empty((self.L, p))
        self.yy = np.empty(self.L)
        self._fill = None

    def defer(self, fill) -> None:
        """``fill()`` writes every block's statistics; run on first access."""
        self._fill = fill

    def ready(self) -> None:
        if self._fill is not None:
            fill, self._fill = self._fill, None
            fill()

    def put(self, b: int, XX: np.ndarray, Xy: np.ndarray, yy: np.ndarray) -> None:
        """Block ``b``'s cross products XX (m, m, p, p), Xy (m, m, p), yy (m, m)."""
        m, p = yy.shape[0], self.p
        o = self.offsets[b]
        self.XX[o : o + m * m] = XX.reshape(m * m, p * p)
        self.Xy[o : o + m * m] = Xy.reshape(m * m, p)
        self.yy[o : o + m * m] = yy.reshape(m * m)

    def put_gram(self, b: int, G: np.ndarray, m: int) -> None:
        """Block ``b``'s cross products of [X | y], G (m (p + 1), m (p + 1)), written into the
        flat buffers through strided views (one copy each)."""
        p, o = self.p, self.offsets[b]
        G4 = G.reshape(m, p + 1, m, p + 1)
        self.XX[o : o + m * m].reshape(m, m, p, p)[...] = G4[:, :p, :, :p].transpose(0, 2, 1, 3)
        self.Xy[o : o + m * m].reshape(m, m, p)[...] = G4[:, :p, :, p].transpose(0, 2, 1)
        self.yy[o : o + m * m].reshape(m, m)[...] = G4[:, p, :, p]

    def classes(self, keys: list, counts: np.ndarray) -> list[SizeClass]:
        out = []
        sizes = np.array(self.sizes)
        p = self.p
        for m in np.unique(sizes):
            idx = np.flatnonzero(sizes == m)
            a, z = self.offsets[idx[0]], self.offsets[idx[-1]] + m * m
            B, cnt, kk = idx.size, np.asarray(counts[idx], dtype=float), [keys[i] for i in idx]
            if self._fill is not None:
                out.append(_LazySizeClass(int(m), cnt, kk, self, a, z))
                continue
            out.append(
                SizeClass(
                    m=int(m),
                    counts=cnt,
                    SXX=self.XX[a:z].reshape(B, m, m, p, p),
                    SXy=self.Xy[a:z].reshape(B, m, m, p),
                    Syy=self.yy[a:z].reshape(B, m, m),
                    keys=kk,
                )
            )
        return out


def _unit_arrays(X, y, unit, position, blocks, T, sw, fw) -> UnitArrays:
    """Each unit's rows padded to T visits, units in block order (``blocks``: per block type
    its global index, visits and rows ordered by unit and position), in one scatter."""
    sizes = np.array([len(vis) for _, vis, _ in blocks], dtype=np.int64)
    n_b = np.array([rows.size for _, _, rows in blocks], dtype=np.int64) // sizes
    N = int(n_b.sum())
    rows = np.concatenate([rows for _, _, rows in blocks])
    upos = np.repeat(np.arange(N), np.repeat(sizes, n_b))
    vpos = position[rows]
    Xp = np.zeros((N, T, X.shape[1]))
    yp = np.zeros((N, T))
    if sw is None:
        Xp[upos, vpos] = X[rows]
        yp[upos, vpos] = y[rows]
    else:
        w = sw[rows]
        Xp[upos, vpos] = X[rows] * w[:, None]
        yp[upos, vpos] = y[rows] * w
    bidx = np.repeat(np.array([gb for gb, _, _ in blocks], dtype=np.int64), n_b)
    first = np.concatenate([[0], np.cumsum(np.repeat(sizes, n_b))[:-1]])
    uid = unit[rows[first]] if N else np.zeros(0, dtype=np.int64)
    return UnitArrays(X=Xp, y=yp, block=bidx, weight=None if fw is None else fw[uid])


def batched_inverse(V: np.ndarray):
    """(V^-1, log|V|) of a stack of symmetric matrices (B, m, m) by Cholesky; None if one is
    not positive definite."""
    try:
        Lc = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return None
    logdet = 2 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum(axis=1)
    Li = np.linalg.inv(Lc)
    return np.swapaxes(Li, 1, 2) @ Li, logdet


def _layout(classes, T: int) -> dict:
    """Flat layout of the pooled statistics: one row per observed (block, j, l) entry."""
    keys = {k: [] for k in ("gb", "counts", "masks", "pb", "pj", "pl", "ptr", "bstart")}
    b0 = f0 = 0
    p = fixed_effects(classes[0])
    for sc in classes:
        B, m = sc.counts.size, sc.m
        vis = np.array([k[1] for k in sc.keys], dtype=np.int64).reshape(B, m)
        keys["gb"].append(np.array([k[0] for k in sc.keys], dtype=np.int64))
        keys["counts"].append(sc.counts)
        mk = np.zeros((B, T), dtype=bool)
        mk[np.arange(B)[:, None], vis] = True
        keys["masks"].append(mk)
        bb, jj, ll = np.meshgrid(np.arange(B), np.arange(m), np.arange(m), indexing="ij")
        keys["pb"].append((bb + b0).reshape(-1))
        keys["pj"].append(vis[bb, jj].reshape(-1))
        keys["pl"].append(vis[bb, ll].reshape(-1))
        keys["ptr"].append((bb * m * m + ll * m + jj).reshape(-1) + f0)
        keys["bstart"].append(f0 + np.arange(B) * m * m)
        b0 += B
        f0 += B * m * m
    out = {k: np.concatenate(v) for k, v in keys.items()}
    out["B"], out["p"], out["L"] = b0, p, f0
    return out


def _pooled_flat(classes, L: int):
    """The pooled statistics of all size classes as flat (L, p^2), (L, p), (L,) arrays."""
    p = fixed_effects(classes[0])
    SXX = _joined([sc.SXX.reshape(-1, p * p) for sc in classes], L)
    SXy = _joined([sc.SXy.reshape(-1, p) for sc in classes], L)
    return SXX, SXy, _joined([sc.Syy.reshape(-1) for sc in classes], L)


def _joined(parts: list[np.ndarray], L: int) -> np.ndarray:
    """The concatenation of ``parts`` (first axis), without a copy when they are consecutive
    views of one array of L rows (as pattern_statistics builds them)."""
    base = parts[0].base
    if (
        base is not None
        and base.shape[0] == L
        and base.flags.c_contiguous
        and all(x.base is base for x in parts)
        and parts[0].__array_interface__["data"][0] == base.__array_interface__["data"][0]
    ):
        step = base.strides[0]
        pos = base.__array_interface__["data"][0]
        for x in parts:
            if x.__array_interface__["data"][0] != pos:
                break
            pos += x.shape[0] * step
        else:
            return base.reshape(L, *parts[0].shape[1:])
    return np.concatenate(parts)


class PatternLikelihood:
    """The MMRM likelihood with closed-form gradient and observed Hessian, all block types at once.

    Every block type (group g, visits v) is embedded in the full T x T visit space (V padded
    with the identity where a visit is missing, V^-1 then zeroed there), so one batched
    Cholesky serves all patterns, and the pooled statistics are kept as one flat list of the
    observed (block, j, l) entries, so every contraction with X is one matrix product.
    With W_b = n_b V^-1 - V^-1 (R_b + Q_b) V^-1 (R_b the pooled residual cross products,
    Q_b = sum_i X_i C X_i' under REML, 0 under ML) and W_g = sum_{b in g} W_b:

        d(-2l)/dtheta_k = <dSigma_k, W_g>
        d2(-2l)/dtheta_k dtheta_l = <d2Sigma_kl, W_g> + sum_b tr(dSigma_k V_b^-1 dSigma_l Y_b)
                                     - tr(C P_k C P_l) [REML] - 2 u_k' C u_l

    with Y_b = n_b V_b^-1 - 2 W_b, P_k = X'V^-1 dV_k V^-1 X and u_k = X'V^-1 dV_k V^-1 r:
    the observed information of Wolfinger, Tobias & Sall (1994), tr(P V_kl) - tr(P V_k P V_l)
    + 2 y'P V_k P V_l P y - y'P V_kl P y, on pooled statistics. ``units``
    (:class:`UnitArrays`, optional) enables the subject path for P_k and u_k (see the module
    docstring), used when it costs fewer operations.
    """

    def __init__(self, classes: list[SizeClass], grouped, method: str, units=None) -> None:
        self.grouped = grouped
        self.method = method
        T = grouped.structure.n_visits
        self.T = T
        self.G = len(grouped.levels)
        self.Kg = grouped.structure.n_params
        self.K = self.G * self.Kg
        lay = _layout(classes, T)
        self.p, self.B = lay["p"], lay["B"]
        self.gb, self.counts = lay["gb"], lay["counts"]
        mask = lay["masks"].astype(float)
        self.maskmat = mask[:, :, None] * mask[:, None, :]
        self.eyepad = np.eye(T)[None] * (1 - mask)[:, :, None]
        self.pb, self.pj, self.pl = lay["pb"], lay["pj"], lay["pl"]
        self.ptr = lay["ptr"]
        self.bstart = lay["bstart"]  # first flat row of each block (m*m rows each)
        self.pg = self.gb[self.pb]
        self._classes, self._L, self._pooled = classes, lay["L"], None
        # group indicator (G, B) for summing W_b over the blocks of a group
        self.ind = (self.gb[None, :] == np.arange(self.G)[:, None]).astype(float)
        self.units = units

    def with_statistics(self, counts, SXX, SXy, Syy) -> PatternLikelihood:
        """The same layout with other pooled statistics (flat arrays, e.g. one unit removed);
        the subject path is dropped (its arrays describe the original data)."""
        new = object.__new__(PatternLikelihood)
        new.__dict__.update(self.__dict__)
        new.counts, new._pooled = counts, (SXX, SXy, Syy)
        new.units = None
        return new

    def _pooled_stats(self):
        """(SXX, SXy, Syy) flat, built on first use (the subject path does not use them)."""
        if self._pooled is None:
            self._pooled = _pooled_flat(self._classes, self._L)
        return self._pooled

    SXX = property(lambda self: self._pooled_stats()[0])
    SXy = property(lambda self: self._pooled_stats()[1])
    Syy = property(lambda self: self._pooled_stats()[2])

    def covariances(self, theta):
        sig = np.stack(self.grouped.sigmas(theta))  # (G, T, T)
        inv = batched_inverse(sig[self.gb] * self.maskmat + self.eyepad)
        if inv is None:
            return None
        Vi, logdet = inv
        Vi *= self.maskmat
        return Vi, logdet

    def _gls(self, Vi, logdet):
        """beta, C = (X'V^-1X)^-1, M and the objective without constants (None: M not PD)."""
        p = self.p
        w = Vi[self.pb, self.pj, self.pl]
        M = (w @ self.SXX).reshape(p, p)
        return self._solve(M, w @ self.SXy, float(w @ self.Syy), logdet)

    def _solve(self, M, Xy, yVy, logdet):
        """beta = M^-1 X'V^-1y, C = M^-1 and -2 l without constants; None if M is not PD."""
        solved = solve_fixed(None, M, Xy, yVy)
        if solved is None:
            return None
        _, M, cM, C, beta, _, _ = solved
        obj = float(self.counts @ logdet) + yVy - float(beta @ Xy)
        if self.method == "reml":
            obj += 2 * np.log(np.diagonal(cM)).sum()
        return {"beta": beta, "C": C, "M": M, "objective": obj}

    def _scatter(self, flat):
        """(B, T, T) array with the flat (block, j, l) entries ``flat``."""
        out = np.zeros((self.B, self.T, self.T))
        out[self.pb, self.pj, self.pl] = flat
        return out

    def _by_group(self, A):
        """Sum a (B, ...) array over the blocks of each group -> (G, ...)."""
        return (self.ind @ A.reshape(self.B, -1)).reshape(self.G, *A.shape[1:])

    def _gls_units(self, Vi, logdet):
        """:meth:`_gls` from the subjects' padded rows (U_i = V_i^-1 X_i kept for later)."""
        un = self.units
        N, T, p = un.X.shape
        Vb = Vi[un.block]
        U = np.matmul(Vb, un.X)  # (N, T, p)
        Vy = np.matmul(Vb, un.y[..., None])[..., 0]  # (N, T)
        Xf = un.X.reshape(N * T, p)
        Wf = Xf if un.weight is None else Xf * np.repeat(un.weight, T)[:, None]
        yw = un.y if un.weight is None else un.y * un.weight[:, None]
        M = Wf.T @ U.reshape(N * T, p)
        yVy = float(yw.reshape(-1) @ Vy.reshape(-1))
        out = self._solve(M, Wf.T @ Vy.reshape(-1), yVy, logdet)
        if out is not None:
            out["_U"] = (Vb, U, Vy)
        return out

    def _segment_sum(self, A):
        """Sum a per-subject (N, ...) array over the subjects of each block type -> (B, ...)."""
        un = self.units
        if un.weight is not None:
            A = A * un.weight.reshape(-1, *([1] * (A.ndim - 1)))
        return np.add.reduceat(A, np.searchsorted(un.block, np.arange(self.B)), axis=0)

    def _residual_terms(self, Vi, out):
        """V^-1 R_b V^-1 and (REML) V^-1 Q_b V^-1 per block type (Q_b = sum_i X_i C X_i'),
        with R_b the residual cross products; under ML the second is None."""
        beta, C = out["beta"], out["C"]
        if self.units is None:
            Sb = self.SXy @ beta
            bc = np.outer(beta, beta)
            Rf = self.Syy - Sb - Sb[self.ptr] + self.SXX @ bc.reshape(-1)
            VRV = Vi @ self._scatter(Rf) @ Vi
            if self.method != "reml":
                return VRV, None
            return VRV, Vi @ self._scatter(self.SXX @ C.reshape(-1)) @ Vi
        Vb, U, Vy = out["_U"]
        s = Vy - U @ beta  # V_i^-1 r_i, (N, T)
        out["_s"] = s
        VRV = self._segment_sum(s[:, :, None] * s[:, None, :])
        if self.method != "reml":
            return VRV, None
        return VRV, self._segment_sum(U @ C @ np.swapaxes(U, 1, 2))

    def evaluate(self, theta, order: int = 1):
        """Dictionary with objective, beta, C, M (order >= 0), gradient (>= 1), hessian, P,
        expected information (2); None if V or X'V^-1X is not positive definite."""
        cv = self.covariances(theta)
        if cv is None:
            return None
        Vi, logdet = cv
        out = (self._gls if self.units is None else self._gls_units)(Vi, logdet)
        if out is None or order < 1:
            return out
        VRV, VQV = self._residual_terms(Vi, out)
        W = self.counts[:, None, None] * Vi - VRV
        if VQV is not None:
            W -= VQV
        Wg = self._by_group(W)
        Wg = (Wg + np.swapaxes(Wg, 1, 2)) / 2
        dsigs = self.grouped.dsigmas(theta)
        D = np.stack(dsigs)  # (G, Kg, T, T)
        G, Kg, T = self.G, self.Kg, self.T
        out["gradient"] = (D.reshape(G, Kg, T * T) @ Wg.reshape(G, T * T, 1)).reshape(-1)
        if order >= 2:
            self._second_order(out, theta, Vi, W, Wg, D, dsigs, VQV)
        return out

    def _kron(self, Vi, Y):
        """Per group, Omega[(a, x), (c, d)] = sum_b V_b^-1[x, c] Y_b[d, a], so that
        sum_b tr(dSigma_k V_b^-1 dSigma_l Y_b) = vec(dSigma_k)' Omega vec(dSigma_l)."""
        T, G = self.T, self.G
        A = Vi.reshape(self.B, T * T)
        Yf = Y.reshape(self.B, T * T)
        out = np.empty((G, T * T, T * T))
        for g in range(G):
            sel = self.ind[g] > 0
            om = (A[sel].T @ Yf[sel]).reshape(T, T, T, T)  # [x, c, d, a]
            out[g] = om.transpose(3, 0, 1, 2).reshape(T * T, T * T)
        return out

    def _cov_terms(self, Vi, W, VQV, D):
        """Per group, sum_b tr(dSigma_k V_b^-1 dSigma_l Y_b) for the observed Hessian (Y_b)
        and the expected information (Y_b -> n_b V^-1 - 2 V^-1 Q_b V^-1, no residuals)."""
        n = self.counts[:, None, None]
        Y = n * Vi - 2 * W
        Ye = n * Vi
        if VQV is not None:
            Ye = Ye - 2 * VQV
        G, Kg, T = self.G, self.Kg, self.T
        Df = D.reshape(G, Kg, T * T)
        Dt = np.swapaxes(Df, 1, 2)
        return Df @ self._kron(Vi, Y) @ Dt, Df @ self._kron(Vi, Ye) @ Dt

    def _x_terms_pooled(self, Vi, out, D):
        """P_k and u_k from the pooled statistics."""
        p, K, G, Kg = self.p, self.K, self.G, self.Kg
        Ev = Vi[:, None] @ (D[self.gb] @ Vi[:, None])  # V^-1 dSigma_k V^-1, (B, Kg, T, T)
        Ef = Ev[self.pb, :, self.pj, self.pl]  # (L, Kg)
        if G > 1:
            Efull = np.zeros((Ef.shape[0], G, Kg))
            Efull[np.arange(Ef.shape[0]), self.pg] = Ef
            Ef = Efull.reshape(-1, K)
        P = (Ef.T @ self.SXX).reshape(K, p, p)
        Xr = self.SXy - (self.SXX.reshape(-1, p, p) @ out["beta"])
        return P, Ef.T @ Xr

    def _x_terms_units(self, Vi, out, D):
        """P_k and u_k per subject: U_i = V_i^-1 X_i, s_i = V_i^-1 r_i,
        P_k = sum_ac dSigma_k[a, c] sum_i U_i[a]' U_i[c], u_k = sum_ac dSigma_k[a, c] sum_i
        U_i[a]' s_i[c]."""
        un = self.units
        N, T, p = un.X.shape
        U, s = out["_U"][1], out["_s"]
        Uw = U if un.weight is None else U * un.weight[:, None, None]
        ug = self.gb[un.block]
        P = np.empty((self.K, p, p))
        u = np.empty((self.K, p))
        for g in range(self.G):
            sel = ug == g if self.G > 1 else slice(None)
            Uf = U[sel].reshape(-1, T * p)
            Uwf = Uw[sel].reshape(-1, T * p)
            Phi = (Uwf.T @ Uf).reshape(T, p, T, p).transpose(0, 2, 1, 3)  # [a, c, p, q]
            Psi = (Uwf.T @ s[sel]).reshape(T, p, T).transpose(0, 2, 1)  # [a, c, p]
            Dg = D[g].reshape(self.Kg, T * T)
            sl = slice(g * self.Kg, (g + 1) * self.Kg)
            P[sl] = (Dg @ Phi.reshape(T * T, p * p)).reshape(self.Kg, p, p)
            u[sl] = Dg @ Psi.reshape(T * T, p)
        return P, u

    def _second_order(self, out, theta, Vi, W, Wg, D, dsigs, VQV) -> None:
        """Add the observed Hessian, expected information and P_k to ``out``."""
        K, G, Kg, p = self.K, self.G, self.Kg, self.p
        C = out["C"]
        H = np.zeros((K, K))
        Einf = np.zeros((K, K))
        d2 = self.grouped.d2sigma_dots(theta, Wg, dsigs)
        H2g, E2g = self._cov_terms(Vi, W, VQV, D)
        for g in range(G):
            sl = slice(g * Kg, (g + 1) * Kg)
            H[sl, sl] = d2[g] + H2g[g]
            Einf[sl, sl] = E2g[g]
        terms = self._x_terms_units if self.units is not None else self._x_terms_pooled
        P, u = terms(Vi, out, D)
        H -= 2 * (u @ C @ u.T)
        if self.method == "reml":
            CP = C[None] @ P
            tcc = CP.reshape(K, p * p) @ np.swapaxes(CP, 1, 2).reshape(K, p * p).T
            H -= tcc
            Einf += tcc
        out["hessian"] = (H + H.T) / 2
        out["expected"] = (Einf + Einf.T) / 2
        out["P"] = P
