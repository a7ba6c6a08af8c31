"""Parameterisations of an LMM's covariance and the chain rule between them.

Three coordinate systems describe the same covariance (``qs`` random terms, ``n_res`` residual
variances):

- psi (linear in V): the entries of each G_t (lower triangle, row-wise), the residual variances;
- theta (:class:`~peerstats.models._rancov.RandomCovariance`): the Cholesky factor L_t of each
  G_t (row-wise, unconstrained diagonal), log residual variances;
- phi (the optimiser's): as theta, except that a one-column term (a random intercept or the
  partially nested ``(0 + peer | group)``) is parameterised by its variance sigma^2_t >= 0, so a
  variance at zero is a bound the optimiser can reach in one projected step instead of a flat
  valley of L_t -> 0.

:class:`ParameterMap` gives psi, the Jacobian dpsi/dx and the curvature term
sum_j g_j d2psi_j/dx dx' for x = theta (``squared=True``: psi = L^2 for one-column terms) or
x = phi (``squared=False``), so that

    grad_x = J' grad_psi,   Hess_x = J' Hess_psi J + sum_j grad_psi_j d2psi_j/dx dx'.
"""

from __future__ import annotations

import numpy as np

from peerstats.models._rancov import cholesky_factor

__all__ = ["ParameterMap"]

_VAR, _CHOL, _LOG = 0, 1, 2


class ParameterMap:
    """psi(x), dpsi/dx and the curvature term, for x = theta (squared) or phi."""

    def __init__(self, qs: list[int], n_res: int, *, squared: bool) -> None:
        self.squared = squared
        self.blocks: list[tuple[int, int]] = []  # (offset, q) of terms with q > 1
        kinds: list[int] = []
        for q in qs:
            if q == 1:
                kinds.append(_VAR)
            else:
                self.blocks.append((len(kinds), q))
                kinds += [_CHOL] * (q * (q + 1) // 2)
        kinds += [_LOG] * n_res
        self.kind = np.array(kinds, dtype=np.int64)
        self.var = np.flatnonzero(self.kind == _VAR)
        self.log = np.flatnonzero(self.kind == _LOG)
        self.n = self.kind.size

    def psi(self, x: np.ndarray) -> np.ndarray:
        """psi from the full vector x."""
        out = np.array(x, dtype=float)
        if self.squared:
            out[self.var] = x[self.var] ** 2
        out[self.log] = np.exp(x[self.log])
        for k, q in self.blocks:
            L = cholesky_factor(x[k : k + q * (q + 1) // 2], q)
            out[k : k + q * (q + 1) // 2] = (L @ L.T)[np.tril_indices(q)]
        return out

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """dpsi/dx, (n, n) (row: psi entry, column: x entry)."""
        J = np.zeros((self.n, self.n))
        J[self.var, self.var] = 2 * x[self.var] if self.squared else 1.0
        J[self.log, self.log] = np.exp(x[self.log])
        for k, q in self.blocks:
            L = cholesky_factor(x[k : k + q * (q + 1) // 2], q)
            rows, cols = np.tril_indices(q)
            for r, (a, c) in enumerate(zip(rows, cols)):
                for s, (i, kk) in enumerate(zip(rows, cols)):
                    # d (L L')_{ac} / d L_{i kk} = [a = i] L_{c kk} + [c = i] L_{a kk}
                    J[k + r, k + s] = (a == i) * L[c, kk] + (c == i) * L[a, kk]
        return J

    def curvature(self, x: np.ndarray, g_psi: np.ndarray) -> np.ndarray:
        """sum_j g_psi_j d2 psi_j / dx dx', (n, n)."""
        out = np.zeros((self.n, self.n))
        if self.squared:
            out[self.var, self.var] = 2 * g_psi[self.var]
        out[self.log, self.log] = g_psi[self.log] * np.exp(x[self.log])
        for k, q in self.blocks:
            Gam = cholesky_factor(g_psi[k : k + q * (q + 1) // 2], q)
            Gam = Gam + Gam.T  # off-diagonal g_ij once each way, diagonal 2 g_ii
            rows, cols = np.tril_indices(q)
            for r, (i, kk) in enumerate(zip(rows, cols)):
                for s, (j, kk2) in enumerate(zip(rows, cols)):
                    if kk == kk2:
                        out[k + r, k + s] = Gam[i, j]
        return out

    def to_phi(self, theta: np.ndarray) -> np.ndarray:
        """phi from a full theta (variances of one-column terms)."""
        out = np.array(theta, dtype=float)
        out[self.var] = theta[self.var] ** 2
        return out

    def to_theta(self, phi: np.ndarray) -> np.ndarray:
        """theta from a full phi (L = sqrt(variance) >= 0 for one-column terms)."""
        out = np.array(phi, dtype=float)
        out[self.var] = np.sqrt(np.maximum(phi[self.var], 0.0))
        return out

    def scaled(self, x: np.ndarray, c: float) -> np.ndarray:
        """The x whose psi is c psi(x) (c > 0)."""
        out = np.array(x, dtype=float)
        lin = self.kind != _LOG
        if self.squared:
            out[lin] *= np.sqrt(c)
        else:
            out[self.var] *= c
            out[self.kind == _CHOL] *= np.sqrt(c)
        out[self.log] += np.log(c)
        return out
