"""One REML/ML engine for marginal Gaussian models ``y ~ N(X beta, V)``, V block diagonal.

The engine sees the data only through *block types*: groups of independent units (subjects in
an MMRM; later delivery groups) that share one covariance ``V_b(theta)`` and one dimension. For
each block type it keeps the sufficient statistics

    S_XX[j,l] = sum_i x_ij x_il',  S_Xy[j,l] = sum_i x_ij y_il,  S_yy[j,l] = sum_i y_ij y_il

(sums over the units of the type; j, l index positions inside the block), so one evaluation of
the likelihood, its gradient and the Jacobian of ``(X'V^-1X)^-1`` costs nothing per unit. Block
types of the same dimension are processed as one batched array.

A covariance model is any object with ``n_params`` and
``block_covariances(theta) -> list[(V, dV)]`` aligned with the engine's size classes, where
``V`` is (B, m, m) and ``dV`` is (B, K, m, m) (``dV[b, k] = dV_b/dtheta_k``). The MMRM fast
path (:class:`PatternCovariance`) groups subjects by missingness pattern and covariance group;
random-effect models add their own covariance model with ``V_b = Z_b G Z_b' + R_b``.

Formulas (Harville 1977; Wolfinger, Tobias & Sall 1994), with M = X'V^-1X, r = y - X beta_hat:

    -2 l_ML   = sum_b log|V_b| + r'V^-1 r + n log(2 pi)
    -2 l_REML = sum_b log|V_b| + log|M| + r'V^-1 r + (n - p) log(2 pi)
    d(-2 l_REML)/dtheta_k = sum tr(V^-1 dV_k) - r'V^-1 dV_k V^-1 r - tr(M^-1 X'V^-1 dV_k V^-1 X)

SAS's WEIGHT statement (V_i = W_i^-1/2 Sigma W_i^-1/2) is a per-unit rescaling of X and y by
sqrt(w), so pattern pooling still applies; the log-likelihood gains -sum log w.
Validated against SAS PROC MIXED (tests/reference/sas_fev/).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from peerstats.exceptions import ConvergenceError
from peerstats.models._pattern_likelihood import (
    PatternLikelihood,
    SizeClass,
    UnitArrays,
    _FlatStats,
    _unit_arrays,
    batched_inverse,
    fixed_effects,
    units_cheaper,
)

__all__ = [
    "SizeClass",
    "CovarianceModel",
    "PatternCovariance",
    "REMLEngine",
    "FitState",
    "PatternLikelihood",
    "UnitArrays",
    "pattern_statistics",
]

LOG2PI = float(np.log(2 * np.pi))
_SMALL = 2_000_000  # up to this many numbers, [X | y] is copied once (see _fill_blocks)

_CONTROLLER = None


def blas_threads(*, large: bool = False):
    """Context manager choosing the BLAS threads of a step deliberately (threadpoolctl).

    The engine's work is small batched linear algebra (V_b of at most T x T, X'V^-1X of p x p),
    where a second BLAS thread only adds synchronisation, and on a busy machine
    oversubscription (OpenBLAS threads spinning against other processes) makes it several
    times slower; so every step runs with one BLAS thread. ``large=True`` keeps the library's
    threads when the machine has a core to spare (1-minute load average below cores - 0.5);
    the MMRM's pooled cross products no longer ask for it (on a shared 2-core machine the
    load average lags and a second thread made them 2-10 times slower). Without
    threadpoolctl nothing changes.
    """
    global _CONTROLLER
    if large:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this platform
            load = float(cores)
        if cores > 1 and load < cores - 0.5:
            return contextlib.nullcontext()
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            return contextlib.nullcontext()
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


class CovarianceModel(Protocol):
    n_params: int

    def block_covariances(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per size class: V (B, m, m) and dV (B, K, m, m)."""
        ...


def _gram_stats(Z: np.ndarray, m: int, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross products of Z (n, m, p+1) -> S_XX (m,m,p,p), S_Xy (m,m,p), S_yy (m,m)."""
    n = Z.shape[0]
    q = p + 1
    Zf = Z.reshape(n, m * q)
    chunk = max(1, 4_000_000 // (m * q))
    if n <= chunk:
        G = Zf.T @ Zf
    else:
        G = np.zeros((m * q, m * q))
        for s in range(0, n, chunk):
            Zc = Zf[s : s + chunk]
            G += Zc.T @ Zc
    G = G.reshape(m, q, m, q).transpose(0, 2, 1, 3)  # (m, m, q, q)
    return G[:, :, :p, :p], G[:, :, :p, p], G[:, :, p, p]


def _block_keys(unit, position, group):
    """Per unit code: whether it has rows, the block-type keys (group << 40 | pattern bit
    mask, sorted) and each unit's block-type index; with few possible keys (G 2^T) by counting
    into a table of them instead of sorting the units (same result as ``np.unique``)."""
    n_units = int(unit.max()) + 1 if unit.size else 0
    # pattern bit mask per unit: (unit, position) pairs are unique, so OR is a sum of powers of 2
    mask = np.bincount(unit, weights=np.ldexp(1.0, position), minlength=n_units).astype(np.int64)
    if np.ndim(group) == 0:  # one group code for every row
        ugroup = np.full(n_units, int(group), dtype=np.int64)
    else:
        ugroup = np.zeros(n_units, dtype=np.int64)
        ugroup[unit] = group
    T = int(position.max()) + 1 if position.size else 1
    G = int(ugroup.max()) + 1 if n_units else 1
    if G << T <= max(4 * n_units, 1 << 20):
        small = (ugroup << T) | mask
        seen = np.bincount(small, minlength=G << T) > 0
        found = np.flatnonzero(seen)
        ublock = (np.cumsum(seen) - 1)[small]
        ukeys = ((found >> T) << 40) | (found & ((1 << T) - 1))
        return mask > 0, ukeys, ublock
    ukeys, ublock = np.unique(ugroup * (np.int64(1) << 40) + mask, return_inverse=True)
    return mask > 0, ukeys, ublock.reshape(-1)


def _block_rows(unit, position, ublock, n_keys):
    """``rows(b, m)``: the rows of block type ``b`` (``m`` per unit) ordered by (unit,
    position). Rows sorted by unit and position (the usual layout): each unit's rows are one
    run, so only the units are sorted by block type; otherwise the rows are sorted."""
    n = unit.size
    within = unit * 64 + position
    if n and np.all(within[1:] > within[:-1]):
        ustart = np.zeros(ublock.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(unit, minlength=ublock.size), out=ustart[1:])
        uorder = np.argsort(ublock.astype(np.int16 if n_keys < 2**15 else np.int64), kind="stable")
        bstart = np.searchsorted(ublock[uorder], np.arange(n_keys + 1))

        def rows(b, m):
            first = ustart[uorder[bstart[b] : bstart[b + 1]]]
            return (first[:, None] + np.arange(m)).reshape(-1)

        return rows
    order = np.argsort(within, kind="stable")
    bid = ublock[unit[order]]
    bid = bid.astype(np.int16 if n_keys < 2**15 else np.int64)
    o2 = np.argsort(bid, kind="stable")
    order = order[o2]
    starts = np.searchsorted(bid[o2], np.arange(n_keys + 1))
    return lambda b, m: order[starts[b] : starts[b + 1]]


def _block_gram(X, y, rows, m, sw):
    """Cross products of one block type's rows: S_XX (m, m, p, p), S_Xy (m, m, p), S_yy (m, m),
    gathered in chunks into two small contiguous buffers (no n-sized temporaries)."""
    p = X.shape[1]
    n_b = rows.size // m
    chunk = max(1, min(n_b, 200_000 // (m * (p + 1))))  # buffers of 1.6 MB stay in cache
    xbuf, ybuf = np.empty((chunk * m, p)), np.empty(chunk * m)
    XX, Xy, yy = np.zeros((m * p, m * p)), np.zeros((m * p, m)), np.zeros((m, m))
    for s0 in range(0, n_b, chunk):
        r = rows[s0 * m : (s0 + chunk) * m]
        xb, yb = xbuf[: r.size], ybuf[: r.size]
        np.take(X, r, axis=0, out=xb, mode="clip")
        np.take(y, r, out=yb, mode="clip")
        if sw is not None:
            w = sw[r]
            xb *= w[:, None]
            yb *= w
        xf, yf = xb.reshape(-1, m * p), yb.reshape(-1, m)
        XX += xf.T @ xf
        Xy += xf.T @ yf
        yy += yf.T @ yf
    XX = XX.reshape(m, p, m, p).transpose(0, 2, 1, 3)
    return XX, Xy.reshape(m, p, m).transpose(0, 2, 1), yy


def _fill_blocks(flat, X, y, blocks, sw) -> None:
    """Every block type's cross products into ``flat`` (``blocks``: (index, visits, rows))."""
    p = X.shape[1]
    if sum(rows.size for _, _, rows in blocks) * (p + 1) > _SMALL:
        for gb, vis, rows in blocks:
            flat.put(gb, *_block_gram(X, y, rows, len(vis), sw))
        return
    # small data: [X | y] once, one product per block type (no per-block gathers of X, y)
    Z = np.empty((y.size, p + 1))
    Z[:, :p], Z[:, p] = X, y
    if sw is not None:
        Z *= sw[:, None]
    for gb, vis, rows in blocks:
        zf = Z[rows].reshape(-1, len(vis) * (p + 1))
        flat.put_gram(gb, zf.T @ zf, len(vis))


def pattern_statistics(
    X: np.ndarray,
    y: np.ndarray,
    unit: np.ndarray,
    position: np.ndarray,
    group: np.ndarray,
    weights: np.ndarray | None = None,
    unit_weights: np.ndarray | None = None,
    *,
    units: tuple[int, int] | None = None,
) -> tuple[list[SizeClass], dict]:
    """Pool units by (group, pattern of positions) and compute their sufficient statistics.

    ``unit``, ``position`` (0..T-1, T <= 40) and ``group`` are integer codes per row
    (``group`` may be one integer for all rows); each (unit, position) pair occurs at most
    once. With ``weights``, rows of X and y are multiplied
    by sqrt(w) first (SAS WEIGHT). ``unit_weights`` (one per unit code, > 0 for every unit that
    has rows) are frequency weights: unit i counts as f_i copies of itself (its cross products
    are multiplied by f_i and it adds f_i to its block type's count). Unit codes without rows are
    skipped. Each block type's rows are found from the units' runs (or one sort of the rows)
    and its cross products accumulated in chunks through small reusable buffers, so the memory
    beyond X stays small. ``units=(T, K)`` (visits, covariance parameters): also return each
    unit's padded rows (``info["units"]``, :class:`UnitArrays`) when the likelihood's subject
    path is cheaper than its pooled path (many patterns; see
    :mod:`peerstats.models._pattern_likelihood`), else None; the pooled statistics are then
    computed on first access only.
    """
    p = X.shape[1]
    unit = np.asarray(unit, dtype=np.int64)
    position = np.asarray(position, dtype=np.int64)
    present, ukeys, ublock = _block_keys(unit, position, group)
    block_rows = _block_rows(unit, position, ublock, len(ukeys))
    sw = None if weights is None else np.asarray(weights, dtype=float)
    fw = None if unit_weights is None else np.asarray(unit_weights, dtype=float)
    if fw is not None:
        sw = fw[unit] if sw is None else sw * fw[unit]
        ucount = np.bincount(ublock[present], weights=fw[: present.size][present],
                             minlength=len(ukeys))
    else:
        ucount = np.bincount(ublock[present], minlength=len(ukeys)).astype(float)
    if sw is not None:
        sw = np.sqrt(sw)
    # block types with rows, ordered by size (stable), as (key index, group, visits)
    todo = []
    T = int(position.max()) + 1 if position.size else 0
    for b, k in enumerate(ukeys):
        msk = int(k & ((1 << 40) - 1))
        if msk:  # 0: unit codes without rows
            todo.append((b, int(k >> 40), tuple(i for i in range(T) if msk >> i & 1)))
    todo.sort(key=lambda t: len(t[2]))
    flat = _FlatStats([len(vis) for _, _, vis in todo], p)
    blocks = [(gb, vis, block_rows(b, len(vis))) for gb, (b, _, vis) in enumerate(todo)]
    info = {"n_units": int(present.sum()), "n_block_types": len(blocks), "units": None}
    subject_path = units is not None and units_cheaper(
        info["n_units"], units[0], p, units[1], flat.L, len(blocks)
    )
    fill = functools.partial(_fill_blocks, flat, X, y, blocks, sw)
    if subject_path:  # the likelihood will not need the pooled statistics: on first use
        flat.defer(fill)
    else:
        fill()
    classes = flat.classes([(g, vis) for _, g, vis in todo], ucount[[t[0] for t in todo]])
    if subject_path:
        # the frequency weights enter U'diag(f)U; rows carry only sqrt(row weights)
        rw = None if weights is None else np.sqrt(np.asarray(weights, dtype=float))
        info["units"] = _unit_arrays(X, y, unit, position, blocks, units[0], rw, fw)
    return classes, info


class PatternCovariance:
    """MMRM covariance model: block type (group g, visits v) has V = Sigma_g(theta)[v, v]."""

    def __init__(self, grouped, classes: list[SizeClass]) -> None:
        self.grouped = grouped
        self.n_params = grouped.n_params
        self._index = []
        for sc in classes:
            gs = np.array([k[0] for k in sc.keys])
            vis = np.array([k[1] for k in sc.keys], dtype=int).reshape(len(sc.keys), sc.m)
            self._index.append((gs, vis))

    def block_covariances(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        sig = np.stack(self.grouped.sigmas(theta))  # (G, T, T)
        dsig = self.grouped.dsigmas(theta)  # G x (Kg, T, T)
        G = sig.shape[0]
        Kg = dsig[0].shape[0]
        T = sig.shape[1]
        # full derivative array (G, K, T, T): group g only depends on its own slice
        D = np.zeros((G, self.n_params, T, T))
        for g in range(G):
            D[g, g * Kg : (g + 1) * Kg] = dsig[g]
        out = []
        for gs, vis in self._index:
            rows = vis[:, :, None]
            cols = vis[:, None, :]
            V = sig[gs[:, None, None], rows, cols]
            dV = D[
                gs[:, None, None, None],
                np.arange(self.n_params)[None, :, None, None],
                rows[:, None],
                cols[:, None],
            ]
            out.append((V, dV))
        return out


@dataclass
class FitState:
    """Everything the engine computed at one theta."""

    theta: np.ndarray
    objective: float  # -2 log-likelihood (REML or ML), SAS convention
    gradient: np.ndarray | None
    beta: np.ndarray
    M: np.ndarray  # X'V^-1X
    Minv: np.ndarray  # model-based cov(beta_hat)


class REMLEngine:
    """REML/ML objective, gradient and information for pooled block statistics."""

    def __init__(
        self,
        classes: list[SizeClass],
        cov_model: CovarianceModel,
        *,
        n_obs: int,
        method: Literal["reml", "ml"] = "reml",
        log_weight_sum: float = 0.0,
        pattern: PatternLikelihood | None = None,
        units: UnitArrays | None = None,
    ) -> None:
        self.classes = classes
        self.cov = cov_model
        self.n_obs = n_obs
        self.method = method
        self.p = pattern.p if pattern is not None else fixed_effects(classes[0])
        self.log_weight_sum = log_weight_sum
        self.n_evals = 0
        if pattern is not None:
            self._pl = pattern
        elif isinstance(cov_model, PatternCovariance):
            self._pl = PatternLikelihood(classes, cov_model.grouped, method, units)
        else:
            self._pl = None

    def _order2(self, theta: np.ndarray):
        """The closed-form second-order evaluation, cached for the last theta (the fit's
        final Hessian, P_k and expected information then cost nothing more)."""
        theta = np.asarray(theta, dtype=float)
        cached = getattr(self, "_last2", None)
        if cached is not None and np.array_equal(cached[0], theta):
            return cached[1]
        self.n_evals += 1
        r = self._pl.evaluate(theta, order=2)
        self._last2 = (theta.copy(), r)
        return r

    def _constant(self) -> float:
        n, p = self.n_obs, self.p
        c = (n - p) * LOG2PI if self.method == "reml" else n * LOG2PI
        return c - self.log_weight_sum

    def _state(self, theta, r) -> FitState:
        return FitState(
            theta=np.asarray(theta, dtype=float),
            objective=float(r["objective"] + self._constant()),
            gradient=r.get("gradient"),
            beta=r["beta"],
            M=r["M"],
            Minv=r["C"],
        )

    def second(self, theta: np.ndarray, *, observed: bool = True):
        """(state, observed Hessian, expected information) at ``theta``; None if not PD.

        Closed form for the MMRM (:class:`PatternLikelihood`); other covariance models use
        central differences of the analytic gradient for the observed Hessian (skipped, None,
        with ``observed=False``).
        """
        theta = np.asarray(theta, dtype=float)
        if self._pl is not None:
            r = self._order2(theta)
            if r is None:
                return None
            return self._state(theta, r), r["hessian"], r["expected"]
        st = self.evaluate(theta)
        if st is None:
            return None
        H = self.hessian_differences(theta) if observed else None
        return st, H, self.expected_information(theta)

    # ------------------------------------------------------------------------------------
    def _inverses(self, theta):
        out = []
        for V, dV in self.cov.block_covariances(theta):
            inv = batched_inverse(V)
            if inv is None:
                return None
            out.append((V, dV, *inv))
        return out

    def evaluate(self, theta: np.ndarray, *, gradient: bool = True) -> FitState | None:
        """-2 log-likelihood at ``theta`` (None if V is not positive definite)."""
        self.n_evals += 1
        theta = np.asarray(theta, dtype=float)
        if self._pl is not None:
            r = self._pl.evaluate(theta, order=1 if gradient else 0)
            return None if r is None else self._state(theta, r)
        inv = self._inverses(theta)
        if inv is None:
            return None
        p = self.p
        M = np.zeros(p * p)
        Xy = np.zeros(p)
        yVy = 0.0
        logdet = 0.0
        for sc, (_, _, Vinv, ld) in zip(self.classes, inv):
            v = Vinv.reshape(-1)
            M += v @ sc.SXX.reshape(v.size, p * p)
            Xy += v @ sc.SXy.reshape(v.size, p)
            yVy += float(v @ sc.Syy.reshape(-1))
            logdet += float(sc.counts @ ld)
        M = M.reshape(p, p)
        M = (M + M.T) / 2
        from scipy import linalg  # only here (spatial structures): not on the usual cold path

        try:
            cM = linalg.cho_factor(M)
        except linalg.LinAlgError:
            return None
        beta = linalg.cho_solve(cM, Xy)
        Minv = linalg.cho_solve(cM, np.eye(p))
        rVr = yVy - beta @ Xy
        n = self.n_obs
        if self.method == "reml":
            obj = logdet + 2 * np.log(np.diag(cM[0])).sum() + rVr + (n - p) * LOG2PI
        else:
            obj = logdet + rVr + n * LOG2PI
        obj -= self.log_weight_sum
        grad = None
        if gradient:
            K = self.cov.n_params
            grad = np.zeros(K)
            bb = np.outer(beta, beta).reshape(-1)
            if self.method == "reml":
                bb = bb + Minv.reshape(-1)
            for sc, (_, dV, Vinv, _) in zip(self.classes, inv):
                B, m = sc.counts.size, sc.m
                A = Vinv[:, None] @ dV @ Vinv[:, None]  # (B, K, m, m)
                # tr(V^-1 dV_k), weighted by the number of units
                t1 = (sc.counts[:, None, None, None] * Vinv[:, None] * np.swapaxes(dV, 2, 3)).sum(
                    axis=(0, 2, 3)
                )
                Sb = (sc.SXy.reshape(B, m * m, p) @ beta).reshape(B, m, m)
                R = sc.Syy - Sb - np.swapaxes(Sb, 1, 2)
                R = R + (sc.SXX.reshape(B, m * m, p * p) @ bb).reshape(B, m, m)
                grad += t1 - (A.reshape(B, K, m * m) * R.reshape(B, 1, m * m)).sum(axis=(0, 2))
        return FitState(theta=theta, objective=float(obj), gradient=grad, beta=beta, M=M, Minv=Minv)

    # ------------------------------------------------------------------------------------
    def hessian(self, theta: np.ndarray, h: float | None = None) -> np.ndarray:
        """Observed Hessian of -2 log-likelihood: closed form for the MMRM
        (:class:`PatternLikelihood`), else central differences of the analytic gradient
        (step ``h`` relative, default 1e-4)."""
        if self._pl is not None and h is None:
            out = self.second(theta)
            K = len(theta)
            return np.full((K, K), np.nan) if out is None else out[1]
        return self.hessian_differences(theta, 1e-4 if h is None else h)

    def hessian_differences(self, theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
        """Observed Hessian by central differences of the analytic gradient (tests, lmm)."""
        K = len(theta)
        H = np.empty((K, K))
        for k in range(K):
            e = np.zeros(K)
            hk = h * max(1.0, abs(float(theta[k])))
            e[k] = hk
            sp = self.evaluate(theta + e)
            sm = self.evaluate(theta - e)
            if sp is None or sm is None:
                return np.full((K, K), np.nan)
            H[:, k] = (sp.gradient - sm.gradient) / (2 * hk)
        return (H + H.T) / 2

    def jacobian_terms(self, theta: np.ndarray) -> np.ndarray:
        """P_k = X'V^-1 dV_k V^-1 X, (K, p, p); d cov(beta_hat)/d theta_k = C P_k C."""
        if self._pl is not None:
            return self._order2(theta)["P"]
        inv = self._inverses(theta)
        K, p = self.cov.n_params, self.p
        P = np.zeros((K, p * p))
        for sc, (_, dV, Vinv, _) in zip(self.classes, inv):
            B, m = sc.counts.size, sc.m
            A = Vinv[:, None] @ dV @ Vinv[:, None]  # (B, K, m, m)
            A = np.swapaxes(A.reshape(B, K, m * m), 0, 1).reshape(K, B * m * m)
            P += A @ sc.SXX.reshape(B * m * m, p * p)
        return P.reshape(K, p, p)

    def second_order_terms(self, theta: np.ndarray) -> np.ndarray:
        """Q_kl = X'V^-1 dV_k V^-1 dV_l V^-1 X, (K, K, p, p) (Kenward-Roger)."""
        inv = self._inverses(theta)
        K = self.cov.n_params
        Q = np.zeros((K, K, self.p, self.p))
        for sc, (_, dV, Vinv, _) in zip(self.classes, inv):
            B = Vinv[:, None] @ dV  # (B, K, m, m) = V^-1 dV_k
            A = B[:, :, None] @ B[:, None] @ Vinv[:, None, None]  # (B,K,K,m,m)
            Q += np.einsum("bkljm,bjmpq->klpq", A, sc.SXX, optimize=True)
        return Q

    def expected_information(self, theta: np.ndarray) -> np.ndarray:
        """Expected information of theta for -2 l (REML or ML), i.e. 2 x Fisher information.

        I_kl = tr(P dV_k P dV_l) with P = V^-1 - V^-1 X C X'V^-1 (REML, C = M^-1) or V^-1 (ML):
        sum_b n_b tr(V^-1 dV_k V^-1 dV_l) - 2 tr(C Q_kl) + tr(C P_k C P_l), where
        tr(C Q_kl) only needs the pooled scalars <C, S_XX[j,l]>, so the cost is independent of
        the number of units and of order K^2 m^3 per block type.
        """
        if self._pl is not None:
            return self._order2(theta)["expected"]
        st = self.evaluate(theta, gradient=False)
        inv = self._inverses(theta)
        K, p = self.cov.n_params, self.p
        C = st.Minv
        info = np.zeros((K, K))
        P = np.zeros((K, p * p))
        for sc, (_, dV, Vinv, _) in zip(self.classes, inv):
            B, m = sc.counts.size, sc.m
            Bm = Vinv[:, None] @ dV  # (B, K, m, m): V^-1 dV_k
            BmT = np.swapaxes(Bm, 2, 3).reshape(B, K, m * m)
            Bw = Bm.reshape(B, K, m * m) * sc.counts[:, None, None]
            info += (Bw @ np.swapaxes(BmT, 1, 2)).sum(axis=0)
            if self.method == "reml":
                Qc = (sc.SXX.reshape(B, m * m, p * p) @ C.reshape(-1)).reshape(B, m, m)
                E = Bm @ (Vinv @ Qc)[:, None]  # (B, K, m, m): V^-1 dV_l V^-1 Qc
                ET = np.swapaxes(E, 2, 3).reshape(B, K, m * m)
                info -= 2 * (Bm.reshape(B, K, m * m) @ np.swapaxes(ET, 1, 2)).sum(axis=0)
                A = (Bm @ Vinv[:, None]).reshape(B, K, m * m)  # V^-1 dV_k V^-1
                A = np.swapaxes(A, 0, 1).reshape(K, B * m * m)
                P += A @ sc.SXX.reshape(B * m * m, p * p)
        if self.method == "reml":
            CP = C[None] @ P.reshape(K, p, p)
            info += np.einsum("kab,lba->kl", CP, CP)
        return (info + info.T) / 2

    # ------------------------------------------------------------------------------------
    def _line_search(self, theta, st, step, g, *, second_first: bool = False):
        """Backtracking (Armijo) along ``step``; ``second_first``: the full step is evaluated
        to second order (cached, so the caller's next :meth:`second` there costs nothing)."""
        mx = np.max(np.abs(step))
        if mx > 5:  # limit huge steps on the log / Cholesky scale
            step = step * (5 / mx)
        t = 1.0
        for _ in range(40):
            if second_first and t == 1.0:
                sec = self.second(theta + step)
                cand = None if sec is None else sec[0]
            else:
                cand = self.evaluate(theta + t * step)
            if cand is not None and cand.objective <= st.objective + 1e-4 * t * float(g @ step):
                return cand
            t /= 2
        return None

    @staticmethod
    def _positive_definite(H) -> bool:
        if not np.all(np.isfinite(H)):
            return False
        w = np.linalg.eigvalsh(H)
        return bool(w[0] > 1e-10 * max(abs(w[-1]), 1.0))

    def _newton(self, theta, sec, *, max_iter, tol, tried, iterations=0, polish_start=True):
        """Newton-Raphson with the observed Hessian (expected information where that is not
        positive definite) and a backtracking line search, from ``sec = second(theta)``.

        Converged when the Newton decrement g'H^-1g < max(tol, 1e-12 |-2 l|) with H positive
        definite; the last (tiny) step is taken too (quadratic convergence makes the estimates
        exact to ~decrement^2) unless ``polish_start`` is False and no step was taken yet.
        Returns (state, H, converged, iterations) with H the Hessian at the returned state.
        """
        st, H, E = sec
        for _ in range(max_iter):
            g = st.gradient
            ok = self._positive_definite(H)
            use_H = H if ok else E
            try:
                step = -np.linalg.solve(use_H, g)
            except np.linalg.LinAlgError:
                step = -g
            dec = float(-g @ step)
            if ok and 0 <= dec < max(tol, 1e-12 * abs(st.objective)):
                if iterations == 0 and not polish_start:
                    return st, H, True, iterations
                cand = self.second(theta + step)
                if cand is not None and cand[0].objective <= st.objective + 1e-12 * max(
                    1.0, abs(st.objective)
                ):
                    return cand[0], cand[1], True, iterations
                return st, H, True, iterations
            if not np.isfinite(dec) or dec <= 0:
                step = -g / max(np.linalg.norm(g), 1.0)
            mx = np.max(np.abs(step))
            if mx > 5:
                step = step * (5 / mx)
            # the full step with its Hessian in one evaluation; backtrack only if it fails
            sec = self.second(theta + step)
            if sec is None or sec[0].objective > st.objective + 1e-4 * float(g @ step):
                new = self._line_search(theta, st, step / 2, g)
                if new is None:
                    return st, H, False, iterations
                sec = self.second(new.theta)
                if sec is None:  # pragma: no cover - evaluate succeeded at the same theta
                    return new, H, False, iterations
            iterations += 1
            theta = sec[0].theta
            st, H, E = sec
        return st, H, False, iterations

    def refine(
        self,
        theta0: np.ndarray,
        *,
        hessian: np.ndarray | None = None,
        hessian_inverse: np.ndarray | None = None,
        max_iter: int = 50,
        tol: float = 1e-9,
    ) -> dict:
        """Warm-started optimisation for refits (start near the optimum).

        With ``hessian`` (the observed Hessian of a nearby fit, e.g. the full data's at its
        optimum), chord Newton steps: gradients only, the fixed Hessian for the steps and the
        decrement g'H^-1g, as long as each step shrinks the decrement tenfold; then (or without
        ``hessian``) Newton-Raphson with the observed Hessian (:meth:`_newton`). Converged at
        :meth:`fit`'s criterion, decrement < max(``tol``, 1e-12 |-2 l|), after which the last
        (tiny) step is taken too. A start that already meets the criterion is returned
        unchanged, so a refit of the original data reproduces the full fit exactly. Returns the
        dictionary of :meth:`fit` (``converged`` False when it stalls: the caller then runs
        :meth:`fit`; ``hessian`` may be None). ``hessian_inverse``: the inverse of a positive
        definite ``hessian``, when the caller refits many times from the same one. The caller
        chooses the BLAS threads (see :func:`blas_threads`).
        """
        theta = np.asarray(theta0, dtype=float)
        tried: list[str] = []
        fail = {"state": None, "hessian": None, "converged": False, "iterations": 0, "tried": tried}
        it = 0
        if hessian_inverse is None and hessian is not None and self._positive_definite(hessian):
            hessian_inverse = np.linalg.inv(hessian)
        if hessian_inverse is not None:
            tried.append("chord Newton steps with a nearby fit's observed Hessian")
            Hinv = hessian_inverse
            st = self.evaluate(theta)
            if st is None:
                return fail
            prev = np.inf
            for _ in range(max_iter):
                g = st.gradient
                step = -Hinv @ g
                dec = float(-g @ step)
                if not np.isfinite(dec) or dec < 0 or dec > 0.1 * prev:
                    break
                if dec < max(tol, 1e-12 * abs(st.objective)):
                    if it > 0:
                        fin = self.evaluate(theta + step, gradient=False)
                        if fin is not None and fin.objective <= st.objective + 1e-12 * max(
                            1.0, abs(st.objective)
                        ):
                            st = fin
                    return {
                        "state": st,
                        "hessian": None,
                        "converged": True,
                        "iterations": it,
                        "tried": tried,
                    }
                cand = self.evaluate(theta + step)
                if cand is None or cand.objective > st.objective + 1e-4 * float(g @ step):
                    break
                theta, st, prev = cand.theta, cand, dec
                it += 1
        tried.append("Newton-Raphson with the observed Hessian from a warm start")
        sec = self.second(theta)
        if sec is None:
            return fail
        st, H, conv, it = self._newton(
            theta, sec, max_iter=max_iter, tol=tol, tried=tried, iterations=it, polish_start=False
        )
        return {"state": st, "hessian": H, "converged": conv, "iterations": it, "tried": tried}

    def fit(self, theta0: np.ndarray, **kwargs) -> dict:
        """Minimise -2 log-likelihood from ``theta0`` (see :meth:`_fit`), one BLAS thread."""
        with blas_threads():
            return self._fit(theta0, **kwargs)

    def _scoring(self, theta, sec, max_iter: int):
        """Fisher scoring steps with a line search from ``sec = second(theta, observed=False)``
        until the Newton decrement is below one -2 l unit (closed-form Hessian; later with a
        finite-difference one, which costs 2K evaluations). Returns (theta, sec, iterations)."""
        iterations = 0
        for _ in range(max_iter):
            st, _, E = sec
            g = st.gradient
            try:
                step = -np.linalg.solve(E, g)
            except np.linalg.LinAlgError:
                break
            dec = float(-g @ step)
            switch = 1.0 if self._pl is not None else 1e-4 * max(1.0, 1e-6 * abs(st.objective))
            if not np.isfinite(dec) or dec < switch:
                break
            new = self._line_search(theta, st, step, g, second_first=self._pl is not None)
            if new is None:
                break
            iterations += 1
            theta = new.theta
            nxt = self.second(theta, observed=False)
            if nxt is None:  # pragma: no cover
                break
            sec = nxt
        return theta, sec, iterations

    def _fit(self, theta0: np.ndarray, *, max_iter: int = 200, tol: float = 1e-9) -> dict:
        """Minimise -2 log-likelihood from ``theta0``.

        Strategy: Fisher scoring (expected information) from the start, then Newton-Raphson with
        the observed Hessian (closed form for the MMRM; the expected information where it is not
        positive definite), both with a backtracking line search; BFGS and a Newton polish if
        that stalls. Converged when the Newton decrement g'H^-1g (the predicted distance to the
        optimum in -2 log-likelihood units) is below max(``tol``, 1e-12 |-2 log-likelihood|)
        with H positive definite; SAS's default criterion is g'H^-1g / |-2 log-likelihood| <
        1e-8, 10^4 times looser. The returned ``hessian`` is the observed Hessian at the
        returned estimate.
        """
        tried: list[str] = []
        theta = np.asarray(theta0, dtype=float)
        sec = self.second(theta, observed=False)
        if sec is None:
            raise ConvergenceError(
                "the starting covariance is not positive definite", tried=["start"], gradient=None
            )
        # phase 1: Fisher scoring (expected information: always positive definite)
        tried.append("Fisher scoring (expected information)")
        theta, sec, iterations = self._scoring(theta, sec, max_iter)
        if sec[1] is None:
            sec = self.second(theta)
        # phase 2: Newton-Raphson with the observed Hessian (its final value gives the df)
        tried.append("Newton-Raphson with the observed Hessian")
        st, H, converged, iterations = self._newton(
            theta, sec, max_iter=max_iter, tol=tol, tried=tried, iterations=iterations
        )
        theta = st.theta
        if not converged:
            tried.append("BFGS with analytic gradient")

            def fun(th):
                s = self.evaluate(th)
                if s is None:
                    return np.inf, np.zeros_like(th)
                return s.objective, s.gradient

            from scipy import optimize

            res = optimize.minimize(
                fun, theta, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 2000}
            )
            sec = self.second(res.x)
            if sec is not None and sec[0].objective <= st.objective:
                st, H, converged, iterations = self._newton(
                    res.x, sec, max_iter=20, tol=tol, tried=tried, iterations=iterations
                )
        if not converged and self._positive_definite(H):
            # last resort: SAS's own default criterion, g'H^-1g / |-2 l| < 1e-8, H pos. def.
            dec = float(st.gradient @ np.linalg.solve(H, st.gradient))
            if 0 <= dec < 1e-8 * max(1.0, abs(st.objective)):
                converged = True
                tried.append("accepted at SAS's relative Hessian criterion (1e-8)")
        return {
            "state": st,
            "hessian": H,
            "converged": converged,
            "iterations": iterations,
            "tried": tried,
        }
