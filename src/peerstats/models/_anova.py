"""Type II hypotheses (marginality), as R ``car::Anova(type = 2)`` builds them for Wald tests.

For a term t with coefficient columns c_t, its *relatives* are the other terms whose variables
include all of t's (the higher-order terms containing t). With H1 the rows of the identity for
the relatives' columns and H2 those for the relatives' and t's columns, the type II hypothesis
of t is the part of span(H2) orthogonal to span(H1) in the inner product of cov(beta_hat):
L = Q_perp' H2 with Q_perp the orthogonal complement of the column space of H2 V H1' (car's
``ConjComp``). So t is tested after every term not containing it and ignoring its
higher-order relatives, whatever the coding of the factors. The Wald statistic depends only on
span(L); the rows are car's basis. The hypothesis uses the covariance the fit tests with
(model-based, Kenward-Roger adjusted or empirical), as ``car::Anova(fit, vcov. = V)``.

Validated against car::Anova(type = 2) on nlme::gls fits (model-based and clubSandwich CR0
covariances): tests/reference/r_sandwich/.

SAS convention (``convention="sas"``, PROC MIXED ``HTYPE=2``): SAS's *containment* differs for
terms with continuous variables. Term u contains t when u has every CLASS variable of t plus at
least one more, and exactly the same continuous variables (SAS/STAT User's Guide, "Type II
Estimable Functions" and "Containment"). So ``ARMCD`` is not contained in ``ARMCD:FEV1_BL``
(which adds a continuous variable): SAS tests ``ARMCD`` adjusted for the interaction, i.e. the arm
difference at FEV1_BL = 0, while car tests it ignoring the interaction (F 0.031 against 21.6 on
the FEV data). The SAS hypothesis is built from the design, not the covariance: with X_t the
term's columns, X_r those of the terms containing it and M the projection off every other column,
L = [I | (X_t' M X_t)^-1 X_t' M X_r] (the type II estimable functions of Goodnight 1978; the
construction of R mmrm's ``h_type2_contrast``). Validated against SAS PROC MIXED HTYPE=2
listings published by R mmrm (design/anova/test2_1.csv, test2_2.csv):
tests/reference/sas_anova/.
"""

from __future__ import annotations

import numpy as np

from peerstats.exceptions import ModelSpecificationError

__all__ = ["type2_hypotheses", "type2_hypotheses_sas"]


def _variables(term: str) -> frozenset[str]:
    return frozenset(v.strip() for v in term.split(":"))


def _tested_terms(design) -> dict[str, list]:
    """Term -> its columns, for the terms besides the intercept that have columns."""
    terms = {t: list(c) for t, c in design.term_columns.items() if t not in ("1", "Intercept")}
    terms = {t: c for t, c in terms.items() if c}
    if not terms:
        raise ModelSpecificationError(
            f"type=2 needs at least one term besides the intercept to test; the formula "
            f"{design.formula!r} has none"
        )
    return terms


def type2_hypotheses(design, vcov: np.ndarray) -> dict[str, np.ndarray]:
    """Term -> L matrix (rows over the model's coefficients) of the type II hypothesis."""
    terms = _tested_terms(design)
    p = vcov.shape[0]
    eye = np.eye(p)
    out: dict[str, np.ndarray] = {}
    for t, cols in terms.items():
        vt = _variables(t)
        rel_cols = [c for u, cu in terms.items() if u != t and vt <= _variables(u) for c in cu]
        H2 = eye[rel_cols + cols]
        if not rel_cols:
            out[t] = H2
            continue
        H1 = eye[rel_cols]
        M = H2 @ vcov @ H1.T  # (k, r)
        Q, _ = np.linalg.qr(M, mode="complete")
        r = np.linalg.matrix_rank(M)
        L = (H2.T @ Q[:, r:]).T
        L = L[np.any(np.abs(L) > 1e-14, axis=1)]
        out[t] = L
    return out


def _sas_contains(u: str, t: str, factors) -> bool:
    """SAS containment: u has t's CLASS variables plus more, and the same continuous ones."""
    vu, vt = _variables(u), _variables(t)
    cu = frozenset(v for v in vu if v in factors)
    ct = frozenset(v for v in vt if v in factors)
    return vu - cu == vt - ct and ct < cu


def type2_hypotheses_sas(design) -> dict[str, np.ndarray]:
    """Term -> L matrix of SAS PROC MIXED's type II hypothesis (``HTYPE=2``), see module doc."""
    X = np.asarray(design.X, dtype=float)
    terms = _tested_terms(design)
    p = X.shape[1]
    out: dict[str, np.ndarray] = {}
    for t, cols in terms.items():
        rel = [
            c
            for u, cu in terms.items()
            if u != t and _sas_contains(u, t, design.factors)
            for c in cu
        ]
        L = np.zeros((len(cols), p))
        L[:, cols] = np.eye(len(cols))
        if rel:
            other = [j for j in range(p) if j not in set(cols) | set(rel)]
            X0, X1, X2 = X[:, other], X[:, cols], X[:, rel]
            if other:
                B, *_ = np.linalg.lstsq(X0, np.c_[X1, X2], rcond=None)
                R = np.c_[X1, X2] - X0 @ B
                X1, X2 = R[:, : len(cols)], R[:, len(cols) :]
            L[:, rel] = np.linalg.solve(X1.T @ X1, X1.T @ X2)
            L[np.abs(L) < 1e-12] = 0.0
        out[t] = L
    return out
