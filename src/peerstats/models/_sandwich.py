"""Empirical (cluster-robust, "sandwich") covariance of the fixed effects and its tests.

For a marginal Gaussian model fitted by generalised least squares with working covariance V
(block diagonal over independent clusters j: subjects in an MMRM, the highest grouping level of
a mixed model), beta_hat = C X'V^-1 y with C = (X'V^-1X)^-1 and residuals e = y - X beta_hat.
With W_j = V_j^-1:

    V_CR = C [ sum_j X_j' W_j A_j e_j e_j' A_j' W_j X_j ] C

- ``"empirical"``: A_j = I (CR0; SAS PROC MIXED ``EMPIRICAL``, Liang & Zeger 1986);
- ``"empirical-bias-reduced"``: A_j = D_j' B_j^-1/2 D_j, D_j'D_j = V_j (upper Cholesky factor),
  B_j = D_j (V_j - X_j C X_j') D_j' (CR2, Bell & McCaffrey 2002; Pustejovsky & Tipton 2018,
  with the working model as target, clubSandwich's default for ``gls``/``lme`` fits);
- ``"jackknife"``: A_j = (I - X_j C X_j' W_j)^-1 (CR3, the leave-one-cluster-out jackknife
  without its (J-1)/J factor, as clubSandwich and R mmrm).

Satterthwaite df (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018, clubSandwich
``coef_test(test = "Satterthwaite")``): for a contrast c, the estimate sum_j (g_j'e)^2 of
c'V_CR c with g_j = (I - H)_j' A_j' W_j X_j C c is a quadratic form in e; under the working
model its covariance is Omega = G'(V - X C X')G, and df = (tr Omega)^2 / tr(Omega^2). Multi-row
hypotheses use the Hotelling T^2 approximation "HTZ" of Pustejovsky & Tipton (2018, eq. 13):
nu = q(q+1) / sum_{s,t} [tr(P_st P_st) + tr(P_ss P_tt)] on the rows standardised by
E(C V_CR C')^-1/2, F = (nu - q + 1)/(nu q) Q ~ F(q, nu - q + 1).

Everything reduces to per-cluster p x p matrices K_j = X_j' A_j' W_j X_j and
D_j = X_j' W_j A_j V_j A_j' W_j X_j, so a df costs O(J p^2) after one pass over the clusters.

Validated against R clubSandwich (vcovCR, coef_test, Wald_test) on nlme::gls and nlme::lme
fits: tests/reference/r_sandwich/.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from peerstats import _dist
from peerstats.exceptions import ModelSpecificationError
from peerstats.models._ddf import Inference, asymptotic_test

__all__ = ["VCOV_METHODS", "ClusterTerms", "cluster_sandwich", "SandwichInference"]

VCOV_METHODS: tuple[str, ...] = ("model", "empirical", "empirical-bias-reduced", "jackknife")
SANDWICH_DF: tuple[str, ...] = ("satterthwaite", "residual", "between-within", "asymptotic")


def check_vcov(vcov: object, df: str) -> str:
    """Validate ``vcov=`` and its combination with ``df=``; returns the lower-case name."""
    if not isinstance(vcov, str) or vcov.lower() not in VCOV_METHODS:
        raise ModelSpecificationError(
            f"vcov={vcov!r} is not valid; choose one of {list(VCOV_METHODS)}"
        )
    vcov = vcov.lower()
    if vcov != "model" and df not in SANDWICH_DF:
        raise ModelSpecificationError(
            f"df={df!r} does not work with vcov={vcov!r}: Kenward-Roger adjusts the model-based "
            f"covariance; with an empirical covariance choose df from {list(SANDWICH_DF)}"
        )
    return vcov


@dataclass(frozen=True)
class ClusterTerms:
    """The empirical covariance and the per-cluster matrices its df need."""

    kind: str
    vcov: np.ndarray  # (p, p)
    K: np.ndarray  # (J, p, p)  X_j' A_j' W_j X_j
    D: np.ndarray  # (J, p, p)  X_j' W_j A_j V_j A_j' W_j X_j
    C: np.ndarray  # (p, p) model-based (X'V^-1X)^-1

    @property
    def n_clusters(self) -> int:
        return int(self.K.shape[0])

    # ---- Satterthwaite / HTZ ---------------------------------------------------------------
    def _omega_parts(self, R: np.ndarray):
        """For rows R (q, p) of L C: d (J,q,q), Q (J,q,p) and Omega (q,q)."""
        Q = np.einsum("jpr,ar->jap", self.K, R, optimize=True)
        d = np.einsum("ap,jpr,br->jab", R, self.D, R, optimize=True)
        e = np.einsum("jap,pr,jbr->jab", Q, self.C, Q, optimize=True)
        return d, Q, e, d.sum(axis=0) - e.sum(axis=0)

    def _trace_products(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Omega (q,q) and T[a,b,c,d] = tr(P_ab P_cd) for the J x J matrices
        P_ab = diag(d_ab) - Q_a' C Q_b of rows R."""
        d, Q, e, omega = self._omega_parts(R)
        C = self.C
        t1 = np.einsum("jab,jcd->abcd", d, d)
        t2 = np.einsum("jab,jcd->abcd", d, e)
        S = np.einsum("jbp,jcr->bcpr", Q, Q, optimize=True)  # sum_j Q_b Q_c'
        CS = np.einsum("pr,bcrs->bcps", C, S, optimize=True)  # C S_bc
        # tr(C S_bc C S_da)
        t4 = np.einsum("bcps,dasp->abcd", CS, CS, optimize=True)
        T = t1 - t2 - np.transpose(t2, (2, 3, 0, 1)) + t4
        return omega, T

    def satterthwaite_df(self, ell: np.ndarray) -> float:
        """df of the one-row contrast ``ell`` (Bell & McCaffrey 2002; clubSandwich)."""
        R = (self.C @ ell)[None, :]
        omega, T = self._trace_products(R)
        den = float(T[0, 0, 0, 0])
        if den <= 0 or not np.isfinite(den):
            return float("inf")
        return float(omega[0, 0] ** 2 / den)

    def htz(self, L: np.ndarray) -> float:
        """nu of the HTZ test of the rows of ``L`` (Pustejovsky & Tipton 2018)."""
        q = L.shape[0]
        R = L @ self.C
        _, _, _, omega = self._omega_parts(R)
        w, U = np.linalg.eigh((omega + omega.T) / 2)
        if w[0] <= 0:
            return float("nan")
        Rt = (U @ np.diag(w**-0.5) @ U.T) @ R
        _, T = self._trace_products(Rt)
        s = np.arange(q)
        # clubSandwich's total_variance_mat: sum_{s,t} <P_st, P_ts> + <P_ss, P_tt> (entrywise
        # products, <A, B> = tr(A'B)); P_ts = P_st', so <P_st, P_ts> = tr(P_st P_st)
        total = float(T[s[:, None], s[None, :], s[:, None], s[None, :]].sum()) + float(
            T[s[:, None], s[:, None], s[None, :], s[None, :]].sum()
        )
        return q * (q + 1) / total


def cluster_sandwich(
    C: np.ndarray,
    blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    kind: str,
) -> ClusterTerms:
    """Empirical covariance of beta_hat from clusters grouped in blocks of equal covariance.

    ``blocks`` yields ``(X_b, e_b, V_b)``: X_b (U, m, p) and residuals e_b (U, m) of U clusters
    with m observations each, V_b (m, m) their common working covariance (or (U, m, m)).
    """
    p = C.shape[0]
    meat = np.zeros((p, p))
    Ks, Ds = [], []
    for Xb, eb, V in blocks:
        U, m, _ = Xb.shape
        V = np.broadcast_to(V, (U, m, m))
        Vinv = np.linalg.inv(V)
        WX = Vinv @ Xb  # (U, m, p)
        if kind == "empirical":
            F = WX  # A = I: F = A' W X
        else:
            XCX = Xb @ C @ np.swapaxes(Xb, 1, 2)  # (U, m, m)
            if kind == "jackknife":
                IH = np.eye(m) - XCX @ Vinv  # I - X C X' W
                A = np.linalg.inv(IH)
            elif kind == "empirical-bias-reduced":
                Lc = np.linalg.cholesky(V)  # V = Lc Lc'; R's chol gives D = Lc'
                D = np.swapaxes(Lc, 1, 2)
                B = D @ (V - XCX) @ Lc
                B = (B + np.swapaxes(B, 1, 2)) / 2
                w, Q = np.linalg.eigh(B)
                tol = 1e-12 * np.maximum(w.max(axis=1, keepdims=True), 1e-300)
                wi = np.where(w > tol, 1 / np.sqrt(np.where(w > tol, w, 1.0)), 0.0)
                Bm = (Q * wi[:, None, :]) @ np.swapaxes(Q, 1, 2)
                A = Lc @ Bm @ D
            else:  # pragma: no cover - validated by the caller
                raise ValueError(kind)
            F = np.swapaxes(A, 1, 2) @ WX  # A' W X  (U, m, p)
        u = np.einsum("ump,um->up", F, eb)
        meat += u.T @ u
        Ks.append(np.swapaxes(Xb, 1, 2) @ F)
        Ds.append(np.swapaxes(F, 1, 2) @ V @ F)
    K = np.concatenate(Ks)
    D = np.concatenate(Ds)
    if K.shape[0] < 2:
        raise ModelSpecificationError(
            f"an empirical covariance (vcov={kind!r}) needs at least 2 independent clusters "
            f"(subjects, or groups of the highest grouping level); the data have {K.shape[0]}. "
            "Use vcov='model'."
        )
    Vcr = C @ meat @ C
    return ClusterTerms(kind=kind, vcov=(Vcr + Vcr.T) / 2, K=K, D=D, C=C)


def grouped_blocks(X, y, beta, cluster, position, key, cov_of_key, scale=None):
    """Yield (X_b, e_b, V_b) for clusters grouped by ``key`` (one per cluster) and the sorted
    positions they occupy; ``cov_of_key(key, positions)`` gives V_b. With ``scale`` (sqrt of SAS
    WEIGHTs per row) cluster i gets V_i = S_i^-1 V_b S_i^-1 (the model's covariance of the
    unweighted data; CR2 is not invariant to rescaling rows, CR0 and CR3 are)."""
    e = y - X @ beta
    order = np.lexsort((position, cluster))
    cl = cluster[order]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    sizes = np.diff(np.r_[starts, len(cl)])
    ids = cl[starts]
    pos_sorted = position[order]
    groups: dict = {}
    for s0, m, c in zip(starts, sizes, ids):
        pos = tuple(pos_sorted[s0 : s0 + m].tolist())
        groups.setdefault((key[c], pos), []).append(s0)
    for (k, pos), st in groups.items():
        m = len(pos)
        rows = order[np.asarray(st)[:, None] + np.arange(m)[None, :]]  # (U, m)
        V = cov_of_key(k, np.asarray(pos))
        if scale is not None:
            s = scale[rows]
            V = V[None] / (s[:, :, None] * s[:, None, :])
        yield X[rows], e[rows], V


@dataclass(frozen=True)
class SandwichInference(Inference):
    """Wald tests with an empirical covariance and its df (see the module docstring)."""

    cluster: ClusterTerms | None = None

    @property
    def vcov(self) -> np.ndarray:
        return self.cluster.vcov

    def df_1d(self, ell: np.ndarray) -> float:
        if self.method == "satterthwaite":
            return self.cluster.satterthwaite_df(np.asarray(ell, dtype=float))
        return super().df_1d(ell)

    def test_md(self, L: np.ndarray, *, term: str | None = None) -> dict:
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = L.shape[0]
        Lb = L @ self.beta
        Fstat = float(Lb @ np.linalg.solve(L @ self.vcov @ L.T, Lb)) / q
        if self.method == "asymptotic":
            return asymptotic_test(Fstat, q)
        if self.method == "satterthwaite":
            nu = self.cluster.htz(L)
            den = nu - q + 1
            Fstat *= max(den / nu, 0.0)
        else:
            den = self._den_df(L, term)
        p = float(_dist.f_sf(Fstat, q, den)) if den > 0 else float("nan")
        return {"num_df": q, "den_df": float(den), "statistic": Fstat, "p_value": p}


def sandwich_inference(base: Inference, kind: str, blocks) -> SandwichInference:
    """``base`` (model-based inference at the optimum) with the empirical covariance ``kind``."""
    terms = cluster_sandwich(base.C, blocks, kind)
    return SandwichInference(
        beta=base.beta,
        C=base.C,
        P=None,
        W=None,
        method=base.method,
        df_residual=base.df_residual,
        bw=base.bw,
        cluster=terms,
    )


def mmrm_blocks(X, y, beta, subject, visit, group, sigmas, weights=None):
    """Blocks of subjects sharing (group, visits) for :func:`cluster_sandwich` (MMRM).

    With SAS WEIGHTs, V_i = W_i^-1/2 Sigma W_i^-1/2 (per subject)."""
    subject = np.asarray(subject, dtype=np.int64)
    n_subj = int(subject.max()) + 1
    gkey = np.zeros(n_subj, dtype=np.int64)
    gkey[subject] = group
    scale = None if weights is None else np.sqrt(np.asarray(weights, dtype=float))
    return grouped_blocks(
        X,
        y,
        beta,
        subject,
        np.asarray(visit, dtype=np.int64),
        gkey,
        lambda g, pos: sigmas[g][np.ix_(pos, pos)],
        scale,
    )


def layout_blocks(X, y, beta, layout_rows, block_covariances):
    """Blocks for :func:`cluster_sandwich` from a mixed model's block layout (lmm): the
    independent clusters of the highest grouping level, pooled by identical structure."""
    e = y - X @ beta
    for rows_c, (V, _) in zip(layout_rows, block_covariances):
        for t, rows in enumerate(rows_c):
            yield X[rows], e[rows], V[t]
