"""Denominator degrees of freedom: Satterthwaite and Kenward-Roger (and residual, asymptotic).

All methods work on the quantities the engine returns at the REML/ML optimum:

- ``C``: model-based covariance of beta_hat, (X'V^-1X)^-1;
- ``P[k] = X'V^-1 dV_k V^-1 X``, so that dC/dtheta_k = C P_k C;
- ``W``: covariance of theta_hat, 2 H^-1 with H the observed Hessian of -2 log-likelihood
  (SAS PROC MIXED and R mmrm use the observed information; so do we).

Satterthwaite (Satterthwaite 1946; Giesbrecht & Burns 1985; SAS PROC MIXED DDFM=SATTERTHWAITE):
for a one-row contrast l, v = l'Cl, g_k = l'C P_k C l, df = 2 v^2 / (g'Wg). For a q-row L,
the F statistic is beta'L'(LCL')^-1 L beta / q and its df follows SAS: with LCL' = U D U',
each row u_m'L gives a one-row df nu_m, E = sum nu_m/(nu_m - 2) over nu_m > 2, and
df = 2E/(E - q) when E > q (else the smallest nu_m... SAS uses 0; we return min nu_m).

Kenward-Roger (Kenward & Roger 1997; pbkrtest; SAS DDFM=KR): adjusted covariance
Phi_A = C + 2C [sum_hj W_hj (Q_hj - P_h C P_j - R_hj / 4)] C, and the scaled F statistic with
df m and scale lambda as in Kenward & Roger (1997, section 4). The caller chooses the covariance
parameterisation in which P, Q, R and W are expressed (peerstats uses SAS's: see mmrm.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

__all__ = ["Inference", "DF_METHODS"]

DfMethod = Literal["satterthwaite", "kenward-roger", "residual", "asymptotic"]
DF_METHODS: tuple[str, ...] = ("satterthwaite", "kenward-roger", "residual", "asymptotic")


@dataclass(frozen=True)
class Inference:
    """Wald tests of linear hypotheses L beta = 0 with the chosen degrees-of-freedom method."""

    beta: np.ndarray
    C: np.ndarray  # model-based cov(beta_hat)
    P: np.ndarray | None  # (K, p, p)
    W: np.ndarray | None  # (K, K) covariance of theta_hat
    method: str
    df_residual: float
    C_adj: np.ndarray | None = None  # Kenward-Roger adjusted cov(beta_hat)

    @property
    def vcov(self) -> np.ndarray:
        """The covariance of beta_hat used for inference (Kenward-Roger adjusted if chosen)."""
        return self.C_adj if self.C_adj is not None else self.C

    def _sat_df(self, ell: np.ndarray) -> float:
        C, P, W = self.C, self.P, self.W
        v = float(ell @ C @ ell)
        Cl = C @ ell
        g = np.einsum("p,kpq,q->k", Cl, P, Cl)
        den = float(g @ W @ g)
        if den <= 0 or not np.isfinite(den):
            return float("inf")
        return 2 * v * v / den

    def _kr_terms(self, L: np.ndarray) -> tuple[float, float]:
        C, P, W = self.C, self.P, self.W
        M = L.T @ np.linalg.solve(L @ C @ L.T, L)
        T = np.einsum("pq,qr,krs,st->kpt", M, C, P, C, optimize=True)  # M C P_k C
        tr = np.einsum("kpp->k", T)
        A1 = float(tr @ W @ tr)
        A2 = float(np.einsum("hj,hpq,jqp->", W, T, T, optimize=True))
        return A1, A2

    def df_1d(self, ell: np.ndarray) -> float:
        """Degrees of freedom of the one-row contrast ``ell``."""
        if self.method == "asymptotic":
            return float("inf")
        if self.method == "residual":
            return self.df_residual
        if self.method == "kenward-roger":
            return self._kr_md(ell[None, :])[1]
        return self._sat_df(ell)

    def _kr_md(self, L: np.ndarray) -> tuple[float, float]:
        """(lambda, m) of Kenward & Roger (1997)."""
        q = L.shape[0]
        A1, A2 = self._kr_terms(L)
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2) if A2 > 0 else 0.0
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        E = 1 / (1 - A2 / q)
        V = 2 / q * (1 + c1 * B) / ((1 - c2 * B) ** 2 * (1 - c3 * B))
        rho = V / (2 * E * E)
        m = 4 + (q + 2) / (q * rho - 1)
        lam = m / (E * (m - 2))
        return float(lam), float(m)

    def test_1d(self, ell: np.ndarray, alpha: float = 0.05) -> dict:
        """estimate, std_error, df, statistic (t or z), p_value, ci_lower, ci_upper."""
        ell = np.asarray(ell, dtype=float)
        est = float(ell @ self.beta)
        se = float(np.sqrt(ell @ self.vcov @ ell))
        df = self.df_1d(ell)
        stat = est / se if se > 0 else np.nan
        if np.isfinite(df):
            p = 2 * stats.t.sf(abs(stat), df)
            crit = stats.t.ppf(1 - alpha / 2, df)
        else:
            p = 2 * stats.norm.sf(abs(stat))
            crit = stats.norm.ppf(1 - alpha / 2)
        return {
            "estimate": est,
            "std_error": se,
            "df": df,
            "statistic": stat,
            "p_value": float(p),
            "ci_lower": est - crit * se,
            "ci_upper": est + crit * se,
        }

    def test_md(self, L: np.ndarray) -> dict:
        """F test of L beta = 0: num_df, den_df, statistic (F), p_value."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = L.shape[0]
        Lb = L @ self.beta
        if self.method == "kenward-roger":
            lam, m = self._kr_md(L)
            F = float(Lb @ np.linalg.solve(L @ self.vcov @ L.T, Lb)) / q
            F *= lam
            return {"num_df": q, "den_df": m, "statistic": F, "p_value": float(stats.f.sf(F, q, m))}
        LCL = L @ self.C @ L.T
        F = float(Lb @ np.linalg.solve(LCL, Lb)) / q
        if self.method == "asymptotic":
            return {
                "num_df": q,
                "den_df": float("inf"),
                "statistic": F,
                "p_value": float(stats.chi2.sf(F * q, q)),
            }
        if self.method == "residual":
            den = self.df_residual
        elif q == 1:
            den = self._sat_df(L[0])
        else:
            w, U = np.linalg.eigh(LCL)
            nus = np.array([self._sat_df(U[:, m] @ L) for m in range(q)])
            big = nus > 2
            E = float(np.sum(nus[big] / (nus[big] - 2)))
            den = 2 * E / (E - q) if E > q else float(nus.min())
        return {
            "num_df": q,
            "den_df": float(den),
            "statistic": F,
            "p_value": float(stats.f.sf(F, q, den)),
        }


def kenward_roger_vcov(
    C: np.ndarray, P: np.ndarray, Q: np.ndarray, R: np.ndarray | None, W: np.ndarray
) -> np.ndarray:
    """Phi_A = C + 2C[sum_hj W_hj (Q_hj - P_h C P_j - R_hj/4)]C (Kenward & Roger 1997, eq. 6)."""
    inner = np.einsum("hj,hjpq->pq", W, Q) - np.einsum(
        "hj,hpq,qr,jrs->ps", W, P, C, P, optimize=True
    )
    if R is not None:
        inner = inner - 0.25 * np.einsum("hj,hjpq->pq", W, R)
    A = C + 2 * C @ inner @ C
    return (A + A.T) / 2
