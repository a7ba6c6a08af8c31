"""Residual covariance structures across visits, and their grouped (per-level) versions.

Each structure maps an unconstrained parameter vector ``theta`` to a positive-definite
``T x T`` covariance ``Sigma(theta)`` over the ordered visits and gives its derivatives
``dSigma/dtheta_k``; ``sas_parameters`` turns ``theta`` into the covariance parameters SAS PROC
MIXED prints (``UN(i,j)``, ``CS``/``Residual``, ``Var(i)``, ``AR(1)``, ``TOEPH(k)``, ``Rho(k)``...).

Derivatives use complex-step differentiation of ``Sigma``, exact to machine precision for these
analytic maps (Martins, Sturdza & Alonso 2003); ``us`` has a closed form.

Parameterisations (all unconstrained, so every ``theta`` gives a valid covariance):

- ``us``: Sigma = L L', L lower triangular with ``log`` diagonal (T(T+1)/2 parameters).
- ``cs``: variance v = exp(t0), correlation rho = -1/(T-1) + T/(T-1) expit(t1).
- ``csh``: standard deviations exp(t_i), one correlation as in ``cs``.
- ``ar1``/``ar1h``: Sigma_ij = v rho^|i-j| (or s_i s_j rho^|i-j|), rho = tanh(t).
- ``toep``/``toeph``: Toeplitz correlations from partial autocorrelations tanh(t_k) by the
  Durbin-Levinson recursion (always positive definite).
- ``adh`` (SAS ANTE(1)): Sigma_ij = s_i s_j prod_{k=i}^{j-1} rho_k, rho_k = tanh(t_k).
- ``ad`` (homogeneous antedependence, R mmrm's ``ad``): Sigma_ij = v prod_{k=i}^{j-1} rho_k,
  v = exp(t0), rho_k = tanh(t_k): one variance and T-1 correlations (SAS has no homogeneous
  ANTE(1); its parameters are named ``Variance`` and ``Rho(k)`` here, as in ``adh``).

Spatial structures (``sp_exp``, ``sp_gau``, ``sp_pow``), whose covariance depends on
subject-specific times rather than on the visit index, live in
:mod:`peerstats.models._spatial`.

Estimates do not depend on the parameterisation; Satterthwaite and Kenward-Roger degrees of
freedom are invariant to it at the optimum (the gradient vanishes there).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "STRUCTURES",
    "CovarianceStructure",
    "GroupedCovariance",
    "make_structure",
]

CovarianceName = Literal["us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh"]
STRUCTURES: tuple[str, ...] = ("us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh")
_H = 1e-30  # complex step


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-8), 1 - 1e-8)
    return float(np.log(p / (1 - p)))


def _atanh(r: float) -> float:
    return float(np.arctanh(np.clip(r, -0.95, 0.95)))


def _durbin_levinson(phi):
    """Autocorrelations rho_1..rho_n from partial autocorrelations phi_1..phi_n."""
    n = len(phi)
    rho = [None] * n
    a: list = []
    for k in range(n):
        if k == 0:
            rho[0] = phi[0]
            a = [phi[0]]
            continue
        num = sum(a[j] * rho[k - 1 - j] for j in range(k))
        den = 1 - sum(a[j] * rho[j] for j in range(k))
        rho[k] = phi[k] * den + num
        a = [a[j] - phi[k] * a[k - 1 - j] for j in range(k)] + [phi[k]]
    return rho


def _partial_from_acf(rho: np.ndarray) -> np.ndarray:
    """Partial autocorrelations from autocorrelations (inverse Durbin-Levinson)."""
    n = len(rho)
    phi = np.zeros(n)
    a = np.zeros(0)
    for k in range(n):
        if k == 0:
            phi[0] = rho[0]
            a = np.array([rho[0]])
            continue
        num = rho[k] - sum(a[j] * rho[k - 1 - j] for j in range(k))
        den = 1 - sum(a[j] * rho[j] for j in range(k))
        phi[k] = np.clip(num / den, -0.95, 0.95) if den > 0 else 0.0
        a = np.array([a[j] - phi[k] * a[k - 1 - j] for j in range(k)] + [phi[k]])
    return phi


@dataclass(frozen=True)
class CovarianceStructure:
    """A covariance structure over ``n_visits`` ordered visits."""

    name: str
    n_visits: int

    # ---- parameter bookkeeping -------------------------------------------------------------
    @property
    def n_params(self) -> int:
        T = self.n_visits
        return {
            "us": T * (T + 1) // 2,
            "cs": 2,
            "csh": T + 1,
            "ar1": 2,
            "ar1h": T + 1,
            "toep": T,
            "toeph": 2 * T - 1,
            "ad": T,
            "adh": 2 * T - 1,
        }[self.name]

    def sas_names(self) -> list[str]:
        """Covariance parameter names as SAS PROC MIXED prints them."""
        T = self.n_visits
        if self.name == "us":
            return [f"UN({i + 1},{j + 1})" for i in range(T) for j in range(i + 1)]
        if self.name == "cs":
            return ["CS", "Residual"]
        if self.name == "csh":
            return [f"Var({i + 1})" for i in range(T)] + ["CSH"]
        if self.name == "ar1":
            return ["Variance", "AR(1)"]
        if self.name == "ar1h":
            return [f"Var({i + 1})" for i in range(T)] + ["ARH(1)"]
        if self.name == "toep":
            return [f"TOEP({k + 1})" for k in range(1, T)] + ["Residual"]
        if self.name == "toeph":
            return [f"Var({i + 1})" for i in range(T)] + [f"TOEPH({k})" for k in range(1, T)]
        if self.name == "ad":
            return ["Variance"] + [f"Rho({k})" for k in range(1, T)]
        return [f"Var({i + 1})" for i in range(T)] + [f"Rho({k})" for k in range(1, T)]

    def sas_parameters(self, theta: np.ndarray) -> np.ndarray:
        """Covariance parameters on SAS's scale, in the order of :meth:`sas_names`."""
        S = self.sigma(theta)
        T = self.n_visits
        sd = np.sqrt(np.diag(S))
        corr = S / np.outer(sd, sd)
        if self.name == "us":
            return np.array([S[i, j] for i in range(T) for j in range(i + 1)])
        if self.name == "cs":
            cs = S[0, 1] if T > 1 else 0.0
            return np.array([cs, S[0, 0] - cs])
        if self.name == "csh":
            return np.r_[sd**2, corr[0, 1] if T > 1 else 0.0]
        if self.name == "ar1":
            return np.array([S[0, 0], corr[0, 1] if T > 1 else 0.0])
        if self.name == "ar1h":
            return np.r_[sd**2, corr[0, 1] if T > 1 else 0.0]
        if self.name == "toep":
            return np.r_[[S[0, k] for k in range(1, T)], S[0, 0]]
        if self.name == "toeph":
            return np.r_[sd**2, [corr[0, k] for k in range(1, T)]]
        if self.name == "ad":
            return np.r_[S[0, 0], [corr[k - 1, k] for k in range(1, T)]]
        return np.r_[sd**2, [corr[k - 1, k] for k in range(1, T)]]

    # ---- the map theta -> Sigma ------------------------------------------------------------
    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """``Sigma(theta)``, a T x T covariance matrix (complex input allowed)."""
        T = self.n_visits
        th = np.asarray(theta)
        dtype = np.result_type(th.dtype, float)
        name = self.name
        if name == "us":
            ri, ci = _tril(T)  # row-wise, as theta is ordered
            L = np.zeros((T, T), dtype=dtype)
            L[ri, ci] = np.where(ri == ci, np.exp(th), th)
            return L @ L.T
        lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
        if name in ("cs", "csh"):
            if T > 1:
                lo = -1.0 / (T - 1)
                rho = lo + (1 - lo) * _expit(th[-1])
            else:
                rho = 0.0 * th[-1]
            R = np.where(lag == 0, 1.0 + 0 * rho, rho + 0 * lag)
            return _scale(name, th, R, T)
        if name in ("ar1", "ar1h"):
            rho = np.tanh(th[-1])
            R = np.ones((T, T), dtype=dtype)
            for d in range(1, T):
                R = np.where(lag == d, rho**d, R)
            return _scale(name, th, R, T)
        if name in ("toep", "toeph"):
            phi = np.tanh(th[1:] if name == "toep" else th[T:])
            rhos = _durbin_levinson(list(phi)) if T > 1 else []
            R = np.ones((T, T), dtype=dtype)
            for d in range(1, T):
                R = np.where(lag == d, rhos[d - 1], R)
            return _scale(name, th, R, T)
        if name in ("ad", "adh"):
            rho = np.tanh(th[1:] if name == "ad" else th[T:])
            R = np.ones((T, T), dtype=dtype)
            for i in range(T):
                for j in range(i + 1, T):
                    v = rho[i]
                    for k in range(i + 1, j):
                        v = v * rho[k]
                    R[i, j] = v
                    R[j, i] = v
            return _scale(name, th, R, T)
        raise ValueError(name)  # pragma: no cover

    def dsigma(self, theta: np.ndarray) -> np.ndarray:
        """``dSigma/dtheta_k`` stacked as a (K, T, T) array."""
        theta = np.asarray(theta, dtype=float)
        K, T = self.n_params, self.n_visits
        if self.name == "us":
            # dSigma_k = E_k L' + L E_k' with E_k = c_k e_i e_j' (c_k = L_ii on the diagonal)
            ri, ci, c, _ = _us_index(theta, T)
            L = np.zeros((T, T))
            L[ri, ci] = np.where(ri == ci, c, theta)
            A = np.zeros((K, T, T))
            A[np.arange(K), ri, :] = c[:, None] * L[:, ci].T
            return A + np.swapaxes(A, 1, 2)
        return _complex_step(self.sigma, theta, K, T)

    def d2sigma(self, theta: np.ndarray) -> np.ndarray:
        """``d2 Sigma / dtheta_k dtheta_l`` stacked as a (K, K, T, T) array.

        Closed form for ``us`` (Sigma = L L') and for the structures Sigma = S R(phi) S
        (heterogeneous: S = diag(exp(theta_sd))) or v R(phi) (homogeneous): the variance
        parts are exact, d2R/dphi2 is analytic for ``cs``, ``csh``, ``ar1``, ``ar1h``,
        ``ad`` and ``adh`` and central differences of complex-step first derivatives for the
        Durbin-Levinson map of ``toep`` / ``toeph`` (relative error ~1e-10). A structure
        without a closed form falls back to :func:`d2sigma_by_differences`.
        """
        theta = np.asarray(theta, dtype=float)
        name, T = self.name, self.n_visits
        if name == "us":
            return _d2_us(theta, T, self.dsigma(theta))
        if name not in _SRS:
            return d2sigma_by_differences(self, theta)
        hetero = name in ("csh", "ar1h", "toeph", "adh")
        ns = T if hetero else 1
        R, dR, d2R = _corr_derivatives(name, T, theta[ns:])
        return _d2_scaled(theta[:ns], R, dR, d2R, hetero)

    def d2sigma_dot(
        self, theta: np.ndarray, W: np.ndarray, dsig: np.ndarray | None = None
    ) -> np.ndarray:
        """(K, K) matrix sum_ab d2Sigma[k, l, a, b] W[a, b] for a symmetric (T, T) ``W``.

        What the observed information needs; for ``us`` it is formed without the (K, K, T, T)
        array (E_k E_l' is non-zero only when the two Cholesky entries share a column).
        """
        theta = np.asarray(theta, dtype=float)
        if self.name == "us":
            T = self.n_visits
            ri, ci, c, diag = _us_index(theta, T)
            H = 2 * np.outer(c, c) * (ci[:, None] == ci[None, :]) * W[ri[:, None], ri[None, :]]
            d = self.dsigma(theta) if dsig is None else dsig
            kd = np.flatnonzero(diag)
            H[kd, kd] += d[kd].reshape(len(kd), -1) @ W.reshape(-1)
            return H
        K = self.n_params
        return self.d2sigma(theta).reshape(K, K, -1) @ W.reshape(-1)

    # ---- SAS's parameterisation (for Kenward-Roger) -----------------------------------------
    def sigma_from_sas(self, psi: np.ndarray) -> np.ndarray:
        """``Sigma`` as a function of SAS's covariance parameters (order of :meth:`sas_names`).

        Analytic (complex-step friendly): linear in psi for ``us``, ``cs`` and ``toep``.
        """
        T = self.n_visits
        psi = np.asarray(psi)
        dtype = np.result_type(psi.dtype, float)
        name = self.name
        lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
        if name == "us":
            S = np.zeros((T, T), dtype=dtype)
            k = 0
            for i in range(T):
                for j in range(i + 1):
                    S[i, j] = psi[k]
                    S[j, i] = psi[k]
                    k += 1
            return S
        if name == "cs":
            return psi[0] * np.ones((T, T), dtype=dtype) + psi[1] * np.eye(T)
        if name == "toep":
            S = psi[T - 1] * np.eye(T, dtype=dtype)
            for d in range(1, T):
                S = np.where(lag == d, psi[d - 1], S)
            return S
        if name == "ar1":
            R = np.ones((T, T), dtype=dtype)
            for d in range(1, T):
                R = np.where(lag == d, psi[1] ** d, R)
            return psi[0] * R
        if name == "ad":
            R = np.ones((T, T), dtype=dtype)
            for i in range(T):
                for j in range(i + 1, T):
                    v = psi[1 + i]
                    for k in range(i + 1, j):
                        v = v * psi[1 + k]
                    R[i, j] = v
                    R[j, i] = v
            return psi[0] * R
        sd = np.sqrt(psi[:T])
        R = np.ones((T, T), dtype=dtype)
        if name == "csh":
            R = np.where(lag == 0, R, psi[T] + 0 * R)
        elif name == "ar1h":
            for d in range(1, T):
                R = np.where(lag == d, psi[T] ** d, R)
        elif name == "toeph":
            for d in range(1, T):
                R = np.where(lag == d, psi[T + d - 1], R)
        else:  # adh
            for i in range(T):
                for j in range(i + 1, T):
                    v = psi[T + i]
                    for k in range(i + 1, j):
                        v = v * psi[T + k]
                    R[i, j] = v
                    R[j, i] = v
        return np.outer(sd, sd) * R

    def d2sigma_sas(self, psi: np.ndarray, h: float = 1e-5) -> np.ndarray:
        """Second derivatives d2 Sigma / dpsi_k dpsi_l, (K, K, T, T); zero for linear structures.

        Central differences of complex-step first derivatives (error O(h^2) relative).
        """
        K, T = self.n_params, self.n_visits
        out = np.zeros((K, K, T, T))
        if self.name in ("us", "cs", "toep"):
            return out
        psi = np.asarray(psi, dtype=float)

        def first(ps):
            return _complex_step(self.sigma_from_sas, ps, K, T)

        for l_ in range(K):
            step = h * max(1.0, abs(psi[l_]))
            e = np.zeros(K)
            e[l_] = step
            out[:, l_] = (first(psi + e) - first(psi - e)) / (2 * step)
        return (out + np.swapaxes(out, 0, 1)) / 2

    # ---- starting values -------------------------------------------------------------------
    def start(self, S: np.ndarray) -> np.ndarray:
        """Unconstrained parameters approximating an empirical covariance ``S``."""
        T = self.n_visits
        S = np.asarray(S, dtype=float)
        d = np.clip(np.diag(S), 1e-8 * max(np.max(np.diag(S)), 1e-8), None)
        sd = np.sqrt(d)
        C = S / np.outer(sd, sd)
        C = np.clip(C, -0.9, 0.9)
        np.fill_diagonal(C, 1.0)
        name = self.name
        mean_off = float(C[np.triu_indices(T, 1)].mean()) if T > 1 else 0.0
        lag1 = float(np.mean([C[i, i + 1] for i in range(T - 1)])) if T > 1 else 0.0
        if name == "us":
            # make the start positive definite
            w, V = np.linalg.eigh(C)
            C = (V * np.clip(w, 0.05, None)) @ V.T
            Dh = np.sqrt(np.diag(C))
            C = C / np.outer(Dh, Dh)
            L = np.linalg.cholesky(C * np.outer(sd, sd))
            return np.array(
                [np.log(L[i, j]) if i == j else L[i, j] for i in range(T) for j in range(i + 1)]
            )
        lo = -1.0 / (T - 1) if T > 1 else -1.0
        if name == "cs":
            return np.array([np.log(d.mean()), _logit((mean_off - lo) / (1 - lo))])
        if name == "csh":
            return np.r_[np.log(sd), _logit((mean_off - lo) / (1 - lo))]
        if name == "ar1":
            return np.array([np.log(d.mean()), _atanh(lag1)])
        if name == "ar1h":
            return np.r_[np.log(sd), _atanh(lag1)]
        if name in ("toep", "toeph"):
            acf = np.array([np.mean(np.diag(C, k)) for k in range(1, T)])
            phi = np.arctanh(_partial_from_acf(acf)) if T > 1 else np.zeros(0)
            if name == "toep":
                return np.r_[np.log(d.mean()), phi]
            return np.r_[np.log(sd), phi]
        if name == "ad":
            return np.r_[np.log(d.mean()), [_atanh(C[k, k + 1]) for k in range(T - 1)]]
        return np.r_[np.log(sd), [_atanh(C[k, k + 1]) for k in range(T - 1)]]


_SRS = ("cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh")


def d2sigma_by_differences(structure, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d2 Sigma / dtheta2 (K, K, T, T) by central differences of the structure's ``dsigma``.

    The fallback for structures without closed-form second derivatives (error O(h^2)
    relative when ``dsigma`` is exact, e.g. by complex steps).
    """
    theta = np.asarray(theta, dtype=float)
    K = len(theta)
    T = structure.n_visits
    out = np.empty((K, K, T, T))
    for l_ in range(K):
        step = h * max(1.0, abs(theta[l_]))
        e = np.zeros(K)
        e[l_] = step
        out[:, l_] = (structure.dsigma(theta + e) - structure.dsigma(theta - e)) / (2 * step)
    return (out + np.swapaxes(out, 0, 1)) / 2


def _scale(name: str, th, R, T: int):
    """v R (homogeneous: v = exp(theta_0)) or S R S (heterogeneous: S = diag(exp(theta_sd)))."""
    if name in ("cs", "ar1", "toep", "ad"):
        return np.exp(th[0]) * R
    sd = np.exp(th[:T])
    return np.outer(sd, sd) * R


@functools.lru_cache(maxsize=64)
def _tril(T: int) -> tuple[np.ndarray, np.ndarray]:
    ri, ci = np.tril_indices(T)
    ri.setflags(write=False)
    ci.setflags(write=False)
    return ri, ci


def _us_index(theta, T):
    """Row, column, dL/dtheta and is-diagonal of each Cholesky parameter of ``us``."""
    ri, ci = _tril(T)  # row-wise: (0,0), (1,0), (1,1), ... as in sigma()
    diag = ri == ci
    c = np.where(diag, np.exp(np.where(diag, theta, 0.0)), 1.0)
    return ri, ci, c, diag


def _d2_us(theta, T, dsig):
    ri, ci, c, diag = _us_index(theta, T)
    K = len(theta)
    out = np.zeros((K, K, T, T))
    kk, ll = np.nonzero(ci[:, None] == ci[None, :])
    val = c[kk] * c[ll]
    np.add.at(out, (kk, ll, ri[kk], ri[ll]), val)
    np.add.at(out, (kk, ll, ri[ll], ri[kk]), val)
    kd = np.flatnonzero(diag)
    out[kd, kd] += dsig[kd]
    return out


def _corr_matrix(name: str, T: int, t) -> np.ndarray:
    """The correlation matrix R(phi) of an S R S structure (complex-step friendly)."""
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    dtype = np.result_type(np.asarray(t).dtype, float)
    if name in ("cs", "csh"):
        lo = -1.0 / (T - 1)
        rho = lo + (1 - lo) * _expit(t[0])
        return np.where(lag == 0, 1.0 + 0 * rho, rho + 0 * lag)
    if name in ("ar1", "ar1h"):
        rho = np.tanh(t[0])
        R = np.ones((T, T), dtype=dtype)
        for d in range(1, T):
            R = np.where(lag == d, rho**d, R)
        return R
    if name in ("toep", "toeph"):
        rhos = _durbin_levinson(list(np.tanh(t))) if T > 1 else []
        R = np.ones((T, T), dtype=dtype)
        for d in range(1, T):
            R = np.where(lag == d, rhos[d - 1], R)
        return R
    rho = np.tanh(t)  # ad, adh
    R = np.ones((T, T), dtype=dtype)
    for i in range(T):
        v = 1.0 + 0 * rho[0] if T > 1 else 1.0
        for j in range(i + 1, T):
            v = v * rho[j - 1]
            R[i, j] = v
            R[j, i] = v
    return R


def _corr_derivatives(name: str, T: int, t: np.ndarray):
    """R, dR/dphi (Kc, T, T) and d2R/dphi2 (Kc, Kc, T, T) of an S R S structure."""
    t = np.asarray(t, dtype=float)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    if name in ("cs", "csh"):
        return _cs_derivatives(T, t, lag)
    if name in ("ar1", "ar1h"):
        return _ar1_derivatives(t, lag)
    if name in ("ad", "adh"):
        return _ad_derivatives(name, T, t)
    return _toep_derivatives(name, T, t)


def _cs_derivatives(T: int, t: np.ndarray, lag: np.ndarray):
    lo = -1.0 / (T - 1)
    e = _expit(t[0])
    rho = lo + (1 - lo) * e
    d1 = (1 - lo) * e * (1 - e)
    d2 = d1 * (1 - 2 * e)
    off = (lag > 0).astype(float)
    R = np.where(lag == 0, 1.0, rho)
    return R, (d1 * off)[None], (d2 * off)[None, None]


def _ar1_derivatives(t: np.ndarray, lag: np.ndarray):
    rho = np.tanh(t[0])
    r1 = 1 - rho**2  # drho/dt
    r2 = -2 * rho * r1  # d2rho/dt2
    L = lag.astype(float)
    R = rho**L
    pm1 = np.where(lag >= 1, rho ** np.maximum(L - 1, 0), 0.0)
    pm2 = np.where(lag >= 2, rho ** np.maximum(L - 2, 0), 0.0)
    dR = L * pm1 * r1
    d2R = L * (L - 1) * pm2 * r1**2 + L * pm1 * r2
    return R, dR[None], d2R[None, None]


def _ad_derivatives(name: str, T: int, t: np.ndarray):
    """Antedependence: R_ab = prod_{k=a}^{b-1} rho_k, rho = tanh(t)."""
    Kc = len(t)
    rho = np.tanh(t)
    r1 = 1 - rho**2
    r2 = -2 * rho * r1
    R = _corr_matrix(name, T, t)
    dR = np.zeros((Kc, T, T))
    d2R = np.zeros((Kc, Kc, T, T))
    for a in range(T):
        for b in range(a + 1, T):
            inc = np.arange(a, b)
            vals = rho[inc]
            n = len(inc)
            # products leaving out one / two factors (no division: rho may be 0)
            ex1 = np.array([np.prod(np.delete(vals, i)) for i in range(n)])
            dR[inc, a, b] = dR[inc, b, a] = ex1 * r1[inc]
            for i in range(n):
                for j in range(n):
                    if i == j:
                        v = ex1[i] * r2[inc[i]]
                    else:
                        v = np.prod(np.delete(vals, [i, j])) * r1[inc[i]] * r1[inc[j]]
                    d2R[inc[i], inc[j], a, b] = d2R[inc[i], inc[j], b, a] = v
    return R, dR, d2R


def _complex_step(f, theta: np.ndarray, K: int, T: int) -> np.ndarray:
    """``d f / dtheta_k`` (k < K) of a (T, T) matrix function, stacked (K, T, T): complex-step
    derivatives ``Im f(theta + i h e_k) / h`` (exact to rounding, no subtraction)."""
    out = np.empty((K, T, T))
    for k in range(K):
        t = theta.astype(complex)
        t[k] += 1j * _H
        out[k] = f(t).imag / _H
    return out


def _toep_derivatives(name: str, T: int, t: np.ndarray):
    """toep / toeph: complex-step first derivatives, central differences of them."""
    Kc = len(t)

    def first(tt):
        return _complex_step(lambda z: _corr_matrix(name, T, z), tt, Kc, T)

    R = _corr_matrix(name, T, t)
    dR = first(t)
    d2R = np.empty((Kc, Kc, T, T))
    for k in range(Kc):
        step = 1e-5 * max(1.0, abs(t[k]))
        e = np.zeros(Kc)
        e[k] = step
        d2R[:, k] = (first(t + e) - first(t - e)) / (2 * step)
    return R, dR, (d2R + np.swapaxes(d2R, 0, 1)) / 2


def _d2_scaled(ts, R, dR, d2R, hetero: bool) -> np.ndarray:
    """d2 Sigma for Sigma = S R S (hetero, S = diag(exp(ts))) or exp(ts[0]) R."""
    T = R.shape[0]
    Kc = dR.shape[0]
    if hetero:
        s = np.exp(ts)
        ss = np.outer(s, s)
        Sig = ss * R
        eye = np.eye(T)
        A = eye[:, :, None] + eye[:, None, :]  # A[i, a, b] = d_ai + d_bi
        K = T + Kc
        out = np.zeros((K, K, T, T))
        out[:T, :T] = Sig * A[:, None] * A[None, :]
        cross = A[:, None] * (ss * dR)[None]  # (T, Kc, T, T)
        out[:T, T:] = cross
        out[T:, :T] = np.swapaxes(cross, 0, 1)
        out[T:, T:] = ss * d2R
        return out
    v = np.exp(ts[0])
    out = np.zeros((1 + Kc, 1 + Kc, T, T))
    out[0, 0] = v * R
    out[0, 1:] = v * dR
    out[1:, 0] = v * dR
    out[1:, 1:] = v * d2R
    return out


@dataclass(frozen=True)
class GroupedCovariance:
    """One :class:`CovarianceStructure` with separate parameters per group level (SAS group=).

    With a single level (no ``group=``) it is the structure itself. ``theta`` is the
    concatenation of the per-level parameter vectors in level order.
    """

    structure: CovarianceStructure
    levels: tuple[str, ...] = ("",)

    @property
    def n_params(self) -> int:
        return self.structure.n_params * len(self.levels)

    def slices(self) -> list[slice]:
        k = self.structure.n_params
        return [slice(g * k, (g + 1) * k) for g in range(len(self.levels))]

    def sigmas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [self.structure.sigma(theta[s]) for s in self.slices()]

    def dsigmas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [self.structure.dsigma(theta[s]) for s in self.slices()]

    def d2sigma_dots(self, theta: np.ndarray, Ws: np.ndarray, dsigs=None) -> list[np.ndarray]:
        """Per level, (K_g, K_g) = sum_ab d2Sigma_g[k, l, a, b] W_g[a, b] (symmetric W_g).

        Uses the structure's ``d2sigma_dot`` / ``d2sigma`` when it has them, else central
        differences of ``dsigma`` (:func:`d2sigma_by_differences`).
        """
        st = self.structure
        out = []
        for g, (s, W) in enumerate(zip(self.slices(), Ws)):
            th = theta[s]
            if hasattr(st, "d2sigma_dot"):
                out.append(st.d2sigma_dot(th, W, None if dsigs is None else dsigs[g]))
            else:
                K = len(th)
                d2 = st.d2sigma(th) if hasattr(st, "d2sigma") else d2sigma_by_differences(st, th)
                out.append(d2.reshape(K, K, -1) @ W.reshape(-1))
        return out

    def start(self, covs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([self.structure.start(S) for S in covs])

    def sas_table(self, theta: np.ndarray) -> list[tuple[str, str | None, float]]:
        rows = []
        names = self.structure.sas_names()
        for lev, s in zip(self.levels, self.slices()):
            vals = self.structure.sas_parameters(theta[s])
            for n, v in zip(names, vals):
                rows.append((n, lev if len(self.levels) > 1 else None, float(v)))
        return rows


def make_structure(name: str, n_visits: int) -> CovarianceStructure:
    """Look up a structure by name, with an error listing the valid names."""
    from peerstats.exceptions import ModelSpecificationError

    if name not in STRUCTURES:
        raise ModelSpecificationError(
            f"covariance={name!r} is not a covariance structure; choose one of {list(STRUCTURES)}"
        )
    if name in ("cs", "csh") and n_visits < 2:
        raise ModelSpecificationError(f"covariance={name!r} needs at least two visits")
    return CovarianceStructure(name, n_visits)
