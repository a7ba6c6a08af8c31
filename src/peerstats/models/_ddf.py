"""Denominator degrees of freedom: Satterthwaite, Kenward-Roger, residual, between-within,
asymptotic.

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
df m and scale lambda as in Kenward & Roger (1997, section 4).

Residual (SAS DDFM=RESIDUAL): n - rank(X). Between-within (SAS DDFM=BETWITHIN): see
:class:`BetweenWithin`. With an empirical covariance of beta the df come from
:mod:`peerstats.models._sandwich`. The caller chooses the covariance
parameterisation in which P, Q, R and W are expressed (peerstats uses SAS's: see mmrm.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from peerstats import _dist

__all__ = ["Inference", "DF_METHODS", "asymptotic_test"]

DfMethod = Literal["satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"]
DF_METHODS: tuple[str, ...] = (
    "satterthwaite",
    "kenward-roger",
    "residual",
    "between-within",
    "asymptotic",
)


def asymptotic_test(F: float, q: int) -> dict:
    """The Wald test of ``q`` contrasts with no denominator df: F = chi-square / q, the p-value
    from chi-square(q)."""
    return {
        "num_df": q,
        "den_df": float("inf"),
        "statistic": F,
        "p_value": float(_dist.chi2_sf(F * q, q)),
    }


@dataclass(frozen=True)
class BetweenWithin:
    """Between-within df (SAS PROC MIXED DDFM=BETWITHIN; Schluchter & Elashoff 1990).

    SAS: "the residual degrees of freedom are divided into between-subject and within-subject
    portions. PROC MIXED then determines whether a fixed effect changes within any subject. If
    so, it assigns within-subject degrees of freedom to the effect; otherwise, it assigns the
    between-subject degrees of freedom to the effect. [...] One exception [...] is the case
    when you have specified no RANDOM statements and a REPEATED statement with the TYPE=UN
    option. In this case, all effects are assigned the between-subject degrees of freedom"
    (SAS/STAT User's Guide, PROC MIXED, MODEL statement, DDFM=BETWITHIN).

    between = J - rank(X_b), X_b the columns that are constant within every cluster
    (intercept included); within = n - J - (rank(X) - rank(X_b)); between + within =
    n - rank(X), SAS's residual df. ``term_df`` maps each term to its df, ``col_df`` each
    column. A general contrast gets the smallest df of the columns it involves (as R mmrm);
    an effect's F test gets the effect's df.
    """

    between: float
    within: float
    col_df: np.ndarray
    term_df: dict

    def df(self, L: np.ndarray) -> float:
        L = np.atleast_2d(L)
        used = np.any(np.abs(L) > 1e-12 * max(float(np.abs(L).max()), 1e-300), axis=0)
        return float(self.col_df[used].min()) if used.any() else float(self.col_df.min())


def between_within(
    X: np.ndarray,
    cluster: np.ndarray,
    term_columns: dict,
    *,
    all_between: bool = False,
) -> BetweenWithin:
    """Between-within df for design ``X`` with cluster codes ``cluster`` (one per row).

    A column is between-cluster when it is constant within every cluster. ``all_between``:
    SAS's exception for an unstructured R-side-only model (every effect gets the between df).
    """
    n, p = X.shape
    cluster = np.asarray(cluster)
    J = int(np.unique(cluster).size)
    order = np.argsort(cluster, kind="stable")
    cs = cluster[order]
    Xs = X[order]
    same = cs[1:] == cs[:-1]
    varies = np.any(np.abs(Xs[1:] - Xs[:-1])[same] > 1e-10 * (1 + np.abs(Xs).max(axis=0)), axis=0)
    col_term = {}
    for t, cols in term_columns.items():
        for c in cols:
            col_term[c] = t
    # an effect (term) is within-subject when any of its columns changes within a subject
    term_within = {t: bool(np.any(varies[list(cols)])) for t, cols in term_columns.items()}
    within_cols = np.array([term_within.get(col_term.get(j), bool(varies[j])) for j in range(p)])
    rank_b = np.linalg.matrix_rank(X[:, ~within_cols]) if (~within_cols).any() else 0
    rank = np.linalg.matrix_rank(X)
    between = float(J - rank_b)
    within = float(n - J - (rank - rank_b))
    if all_between:
        col_df = np.full(p, between)
        term_df = {t: between for t in term_columns}
    else:
        col_df = np.where(within_cols, within, between)
        term_df = {t: (within if w else between) for t, w in term_within.items()}
    return BetweenWithin(between=between, within=within, col_df=col_df, term_df=term_df)


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
    bw: BetweenWithin | None = None  # between-within df (df="between-within")

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
        if self.method == "between-within":
            return self.bw.df(ell)
        if self.method.startswith("kenward-roger"):
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
            p = 2 * _dist.t_sf(abs(stat), df)
            crit = _dist.t_ppf(1 - alpha / 2, df)
        else:
            p = 2 * _dist.norm_sf(abs(stat))
            crit = _dist.norm_ppf(1 - alpha / 2)
        return {
            "estimate": est,
            "std_error": se,
            "df": df,
            "statistic": stat,
            "p_value": float(p),
            "ci_lower": est - crit * se,
            "ci_upper": est + crit * se,
        }

    def _den_df(self, L: np.ndarray, term: str | None) -> float:
        """Denominator df of a residual / between-within F test (``term``: the effect tested)."""
        if self.method == "residual":
            return self.df_residual
        if self.method == "between-within":
            if term is not None and term in self.bw.term_df:
                return float(self.bw.term_df[term])
            return self.bw.df(L)
        raise ValueError(self.method)  # pragma: no cover

    def test_md(self, L: np.ndarray, *, term: str | None = None) -> dict:
        """F test of L beta = 0: num_df, den_df, statistic (F), p_value.

        ``term``: the model term the hypothesis tests (its between-within df).
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = L.shape[0]
        Lb = L @ self.beta
        if self.method.startswith("kenward-roger"):
            lam, m = self._kr_md(L)
            F = float(Lb @ np.linalg.solve(L @ self.vcov @ L.T, Lb)) / q
            F *= lam
            return {"num_df": q, "den_df": m, "statistic": F, "p_value": float(_dist.f_sf(F, q, m))}
        LCL = L @ self.C @ L.T
        F = float(Lb @ np.linalg.solve(LCL, Lb)) / q
        if self.method == "asymptotic":
            return asymptotic_test(F, q)
        if self.method in ("residual", "between-within"):
            den = self._den_df(L, term)
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
            "p_value": float(_dist.f_sf(F, q, den)),
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
