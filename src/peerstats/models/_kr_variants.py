"""Kenward-Roger variants: SAS ``ddfm=kr``, SAS ``ddfm=kr(linear)`` and R mmrm's default.

The Kenward-Roger adjusted covariance (Kenward & Roger 1997, eq. 6)

    Phi_A = C + 2C [sum_hj W_hj (Q_hj - P_h C P_j - R_hj / 4)] C

is invariant to the parameterisation of the covariance parameters except for its
second-derivative term R_hj = X'V^-1 (d2V / dpsi_h dpsi_j) V^-1 X: P and Q transform with the
Jacobian and W with its inverse, R does not. So the three published variants differ only in R:

- ``df="kenward-roger"``: SAS PROC MIXED ``ddfm=kr``: R in SAS's covariance parameters
  (UN(i,j), CS, AR(1) rho and variances, ...): zero for the linear structures (us, cs, toep),
  non-zero for the others (see :mod:`peerstats.models._mmrm_result`).
- ``df="kenward-roger-linear"``: SAS ``ddfm=kr(linear)`` and R mmrm's
  ``vcov = "Kenward-Roger-Linear"``: R dropped (V treated as linear in its parameters). Equal to
  ``kenward-roger`` for us, cs, toep.
- ``df="kenward-roger-mmrm"``: R mmrm's default ``method = "Kenward-Roger"``: R in mmrm's own
  unconstrained parameters (log standard deviations; for ``us`` the rows of the unit-lower
  Cholesky factor, Sigma = D U U' D; correlations through rho = t / sqrt(1 + t^2), for cs
  rho = logit^-1(t)(1 + a) - a with a = 1 / (T - 1)), as mmrm's covariance.h. Non-zero R for
  every structure, so it differs from SAS even for ``us`` (mmrm's documentation says so).

The degrees of freedom (P and W only) are the same for all three. Validated: SAS ``kr`` and
``kr(linear)`` LSMEANS differences on the FEV data for seven structures (SAS listings published by
R mmrm, tests/reference/sas_kr/) and R mmrm ``Kenward-Roger`` / ``Kenward-Roger-Linear``
(tests/reference/r_kr/).

Not offered: SAS ``ddfm=kr2`` (``KENWARDROGER2``, Kenward & Roger 2009's improved precision
approximation). No outside numbers exist to check it against (issue 20.8): R mmrm has not coded
it (openpharma/mmrm discussion #513), pbkrtest and lmerTest implement the 1997 method, and the
public SAS programs that request ``ddfm=kr2`` come without listings of its results.
"""

from __future__ import annotations

import numpy as np

from peerstats.exceptions import ModelSpecificationError

__all__ = ["MMRM_PARAMETERISED", "mmrm_r_terms"]

MMRM_PARAMETERISED: tuple[str, ...] = ("us", "cs", "csh", "ar1", "ar1h")


def _ar1_corr(rho, T):
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    return rho**lag


def mmrm_sigma(name: str, phi: np.ndarray, T: int) -> np.ndarray:
    """Sigma (T, T) from R mmrm's unconstrained parameters ``phi`` (complex-step friendly)."""
    if name == "us":
        sd = np.exp(phi[:T])
        U = np.eye(T, dtype=phi.dtype)
        k = T
        for i in range(T):
            for j in range(i):
                U[i, j] = phi[k]
                k += 1
        L = sd[:, None] * U
        return L @ L.T
    if name in ("ar1", "cs"):
        sd = np.exp(phi[0]) * np.ones(T)
    else:
        sd = np.exp(phi[:T])
    t = phi[-1]
    if name in ("cs", "csh"):
        a = 1.0 / (T - 1)
        rho = (1.0 / (1.0 + np.exp(-t))) * (1 + a) - a
        Rm = (1 - rho) * np.eye(T) + rho * np.ones((T, T))
    else:
        Rm = _ar1_corr(t / np.sqrt(1 + t * t), T)
    return sd[:, None] * Rm * sd[None, :]


def mmrm_phi(name: str, S: np.ndarray) -> np.ndarray:
    """R mmrm's parameters of the covariance matrix ``S`` (the inverse of :func:`mmrm_sigma`)."""
    T = S.shape[0]
    if name == "us":
        L = np.linalg.cholesky(S)
        sd = np.diag(L)
        off = [L[i, j] / sd[i] for i in range(T) for j in range(i)]
        return np.r_[np.log(sd), off]
    d = np.sqrt(np.diag(S))
    rho = S[0, 1] / (d[0] * d[1])
    if name in ("cs", "csh"):
        a = 1.0 / (T - 1)
        q = (rho + a) / (1 + a)
        t = np.log(q / (1 - q))
    else:
        t = rho / np.sqrt(1 - rho * rho)
    sds = np.log(d[:1]) if name in ("ar1", "cs") else np.log(d)
    return np.r_[sds, t]


def _derivatives(name, phi, T, sas_of_sigma):
    """J = dpsi/dphi (K, K) by complex step and d2 Sigma / dphi2 (K, K, T, T) by central
    differences of complex-step first derivatives."""
    K = len(phi)
    h = 1e-30
    J = np.zeros((K, K))
    d1 = np.zeros((K, T, T))
    for a in range(K):
        z = phi.astype(complex)
        z[a] += 1j * h
        S = mmrm_sigma(name, z, T)
        d1[a] = S.imag / h
        J[:, a] = sas_of_sigma(S).imag / h
    d2 = np.zeros((K, K, T, T))
    step = 1e-5 * np.maximum(1.0, np.abs(phi))
    for b in range(K):
        for sign in (1, -1):
            ph = phi.copy()
            ph[b] += sign * step[b]
            for a in range(K):
                z = ph.astype(complex)
                z[a] += 1j * h
                d2[a, b] += sign * mmrm_sigma(name, z, T).imag / h / (2 * step[b])
    return J, (d2 + np.swapaxes(d2, 0, 1)) / 2


def mmrm_r_terms(grouped, sigmas, sas_of_sigma, r_from_d2):
    """(J, R_phi) for R mmrm's Kenward-Roger: the Jacobian dpsi/dphi (block diagonal over the
    groups) and the second-derivative terms in mmrm's parameters.

    ``sas_of_sigma(S)``: SAS parameters psi of a covariance matrix; ``r_from_d2(D2)``: the R
    terms X'V^-1 D2 V^-1 X of per-group second derivatives D2 (G, K, K, T, T).
    """
    name = grouped.structure.name
    if name not in MMRM_PARAMETERISED:
        raise ModelSpecificationError(
            f"df='kenward-roger-mmrm' is available for covariance in {list(MMRM_PARAMETERISED)} "
            f"(R mmrm's parameterisation of {name!r} is not implemented); use "
            "df='kenward-roger' (SAS ddfm=kr) or 'kenward-roger-linear'"
        )
    K = grouped.n_params
    T = grouped.structure.n_visits
    J = np.zeros((K, K))
    D2 = np.zeros((len(grouped.levels), K, K, T, T))
    for g, (sl, S) in enumerate(zip(grouped.slices(), sigmas)):
        phi = mmrm_phi(name, np.asarray(S, dtype=float))
        Jg, d2 = _derivatives(name, phi, T, sas_of_sigma)
        J[sl, sl] = Jg
        D2[g, sl, sl] = d2
    return J, r_from_d2(D2)
