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
"""

from __future__ import annotations

import numpy as np

from peerstats.exceptions import ModelSpecificationError

__all__ = ["type2_hypotheses"]


def _variables(term: str) -> frozenset[str]:
    return frozenset(v.strip() for v in term.split(":"))


def type2_hypotheses(design, vcov: np.ndarray) -> dict[str, np.ndarray]:
    """Term -> L matrix (rows over the model's coefficients) of the type II hypothesis."""
    terms = {t: list(c) for t, c in design.term_columns.items() if t not in ("1", "Intercept")}
    terms = {t: c for t, c in terms.items() if c}
    if not terms:
        raise ModelSpecificationError(
            f"type=2 needs at least one term besides the intercept to test; the formula "
            f"{design.formula!r} has none"
        )
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
