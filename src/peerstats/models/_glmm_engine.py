"""Laplace and adaptive Gauss-Hermite marginal likelihoods of a GLMM (internal).

Notation as lme4 (Bates et al. 2015, J Stat Softw 67(1), section 5): the random effects are
``b = Lambda(theta) u`` with spherical ``u ~ N(0, I)``; per random term ``Lambda`` is the lower
Cholesky factor ``L`` of that term's q x q covariance, repeated for every level of its grouping
factor. For given ``phi = (beta, theta, extra)`` the conditional modes ``u_hat`` maximise

    h(u) = sum_i log p(y_i | eta_i) - |u|^2 / 2,   eta = X beta + offset + Z Lambda u,

by Newton steps with step halving (penalised IRLS), and

    Laplace:  log L = h(u_hat) - 1/2 log det(I + Lambda' Z' W Z Lambda)

with ``W`` the family's Laplace weight (see ``_glmm_family``). For a single scalar random term
the adaptive Gauss-Hermite rule with k nodes replaces the determinant term per cluster j by

    log L_j = log s_j + h_j(u_j) + log sum_k w_k exp(h_j(u_j + s_j z_k) - h_j(u_j) + z_k^2 / 2),

``s_j = (1 + sum_i lambda^2 z_ij^2 W_ij)^(-1/2)``, nodes and weights of the normal density (the
rule lme4's ``glmerAGQ`` evaluates); k = 1 is the Laplace approximation.

Why our own code: statsmodels has no maximum-likelihood GLMM (its ``BinomialBayesMixedGLM`` is
variational Bayes). The scalar random-intercept case is vectorised over clusters (closed-form
per-cluster Newton steps, bincount sums) with an analytic gradient; any other structure uses
sparse ``Z Lambda`` and a Cholesky (dense for small q, sparse LU otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from peerstats.models._glmm_family import Family

__all__ = ["ReTerm", "Problem", "make_objective", "theta_to_cov", "theta_bounds", "theta_start"]

_MAX_DENSE = 150


@dataclass(frozen=True)
class ReTerm:
    """One random term: values Z (n x q), level codes (n,), number of levels, names."""

    Z: np.ndarray
    codes: np.ndarray
    n_levels: int
    group: str
    columns: tuple[str, ...]
    levels: tuple[str, ...]

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    @property
    def n_theta(self) -> int:
        return self.q * (self.q + 1) // 2


@dataclass
class Problem:
    """Everything the likelihood needs (arrays on the analysed rows)."""

    X: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    pw: np.ndarray
    offset: np.ndarray
    family: Family
    terms: list[ReTerm] = field(default_factory=list)
    nagq: int = 1

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def n_theta(self) -> int:
        return sum(t.n_theta for t in self.terms)

    @property
    def n_params(self) -> int:
        return self.p + self.n_theta + self.family.n_extra

    def split(self, phi):
        p, nt = self.p, self.n_theta
        return phi[:p], phi[p : p + nt], phi[p + nt :]

    @property
    def scalar(self) -> bool:
        return len(self.terms) == 1 and self.terms[0].q == 1


def theta_to_L(theta: np.ndarray, q: int) -> np.ndarray:
    """Lower-triangular factor from its column-major lower-triangle entries (lme4 order)."""
    L = np.zeros((q, q))
    rows, cols = [], []
    for c in range(q):
        for r in range(c, q):
            rows.append(r)
            cols.append(c)
    L[rows, cols] = theta
    return L


def theta_to_cov(problem: Problem, theta: np.ndarray) -> list[np.ndarray]:
    out, k = [], 0
    for t in problem.terms:
        L = theta_to_L(theta[k : k + t.n_theta], t.q)
        out.append(L @ L.T)
        k += t.n_theta
    return out


def theta_bounds(problem: Problem) -> list[tuple[float | None, float | None]]:
    """Diagonal entries of each L are >= 0 (lme4's lower bounds), the rest free."""
    out = []
    for t in problem.terms:
        for c in range(t.q):
            for r in range(c, t.q):
                out.append((0.0, None) if r == c else (None, None))
    return out


def theta_start(problem: Problem) -> np.ndarray:
    out = []
    for t in problem.terms:
        for c in range(t.q):
            for r in range(c, t.q):
                out.append(1.0 if r == c else 0.0)
    return np.asarray(out, dtype=float)


class GLMObjective:
    """No random term: minus the log-likelihood of a GLM, analytic gradient in beta."""

    def __init__(self, problem: Problem):
        self.pr = problem
        self.modes = None

    def _parts(self, phi):
        pr = self.pr
        beta, _, extra = pr.split(phi)
        eta = pr.X @ beta + pr.offset
        return eta, extra

    def value(self, phi) -> float:
        pr = self.pr
        eta, extra = self._parts(phi)
        return -float(pr.family.loglik(pr.y, eta, extra, pr.trials, pr.pw).sum())

    def grad(self, phi) -> np.ndarray | None:
        if self.pr.family.n_extra:
            return None
        pr = self.pr
        eta, extra = self._parts(phi)
        _, s, _, _ = pr.family.derivs(pr.y, eta, extra, pr.trials, pr.pw)
        return -(pr.X.T @ s)

    def eta(self, phi) -> np.ndarray:
        return self._parts(phi)[0]


class ScalarObjective:
    """One scalar random term: everything vectorised over clusters."""

    def __init__(self, problem: Problem):
        self.pr = problem
        t = problem.terms[0]
        self.J = t.n_levels + 1  # last level: rows with no random effect (z = 0)
        self.codes = np.where(t.codes >= 0, t.codes, t.n_levels)
        self.z = np.where(t.codes >= 0, t.Z[:, 0], 0.0)
        self.z2 = self.z * self.z
        self.u = np.zeros(self.J)
        if problem.nagq > 1:
            nodes, weights = np.polynomial.hermite_e.hermegauss(problem.nagq)
            self.nodes, self.weights = nodes, weights / np.sqrt(2.0 * np.pi)

    def _sum(self, v):
        return np.bincount(self.codes, weights=v, minlength=self.J)

    def modes(self, eta0, sig, extra, u=None):
        """Conditional modes u_hat (vectorised Newton with per-cluster step halving)."""
        pr = self.pr
        u = self.u.copy() if u is None else u.copy()
        fam = pr.family

        def hval(uu):
            eta = eta0 + sig * self.z * uu[self.codes]
            ll, s, h, w = fam.derivs(pr.y, eta, extra, pr.trials, pr.pw)
            return self._sum(ll) - 0.5 * uu * uu, s, h, w, eta

        f, s, h, w, eta = hval(u)
        for _ in range(100):
            g = sig * self._sum(self.z * s) - u
            H = 1.0 + sig * sig * self._sum(self.z2 * h)
            step = g / H
            if np.max(np.abs(step)) < 1e-11:
                break
            for _half in range(30):
                un = u + step
                fn, sn, hn, wn, etan = hval(un)
                bad = fn < f - 1e-12 * (1.0 + np.abs(f))
                if not bad.any():
                    break
                step = np.where(bad, step * 0.5, step)
            u, f, s, h, w, eta = un, fn, sn, hn, wn, etan
        return u, f, s, h, w, eta

    def _state(self, phi):
        pr = self.pr
        beta, theta, extra = pr.split(phi)
        sig = float(theta[0])
        eta0 = pr.X @ beta + pr.offset
        u, f, s, h, w, eta = self.modes(eta0, sig, extra)
        self.u = u
        return beta, sig, extra, eta0, u, f, s, h, w, eta

    def value(self, phi) -> float:
        beta, sig, extra, eta0, u, f, s, h, w, eta = self._state(phi)
        D = 1.0 + sig * sig * self._sum(self.z2 * w)
        if self.pr.nagq <= 1:
            return -float(f.sum() - 0.5 * np.log(D).sum())
        return -float(self._agq(eta0, sig, extra, u, f, D).sum())

    def _agq(self, eta0, sig, extra, u, f, D):
        pr = self.pr
        sd = 1.0 / np.sqrt(D)
        acc = np.zeros((len(self.nodes), self.J))
        for k, zk in enumerate(self.nodes):
            uk = u + sd * zk
            eta = eta0 + sig * self.z * uk[self.codes]
            ll = pr.family.loglik(pr.y, eta, extra, pr.trials, pr.pw)
            acc[k] = self._sum(ll) - 0.5 * uk * uk - f + 0.5 * zk * zk
        m = acc.max(axis=0)
        lse = m + np.log((self.weights[:, None] * np.exp(acc - m)).sum(axis=0))
        return np.log(sd) + f + lse

    def grad(self, phi) -> np.ndarray | None:
        """Analytic gradient of minus the Laplace log-likelihood (families without extra
        parameters; the derivative of W in eta by a central difference)."""
        pr = self.pr
        if pr.family.n_extra or pr.nagq > 1:
            return None
        beta, sig, extra, eta0, u, f, s, h, w, eta = self._state(phi)
        eps = 1e-6
        wp = pr.family.derivs(pr.y, eta + eps, extra, pr.trials, pr.pw)[3]
        wm = pr.family.derivs(pr.y, eta - eps, extra, pr.trials, pr.pw)[3]
        dw = (wp - wm) / (2 * eps)
        z, z2, X = self.z, self.z2, pr.X
        D = 1.0 + sig * sig * self._sum(z2 * w)
        Hobs = 1.0 + sig * sig * self._sum(z2 * h)
        # d u_hat / d beta (J x p) and d u_hat / d sigma (J)
        du_db = -sig * _bincount_matrix(self.codes, (z * h)[:, None] * X, self.J) / Hobs[:, None]
        du_ds = (self._sum(z * s) - sig * u * self._sum(z2 * h)) / Hobs
        c = (sig * sig) / D  # per cluster factor of the log-det derivative
        a = z2 * dw * c[self.codes]
        deta_db = X + (sig * z)[:, None] * du_db[self.codes]
        g_beta = X.T @ s - 0.5 * (a @ deta_db)
        deta_ds = z * u[self.codes] + sig * z * du_ds[self.codes]
        g_sig = (s * z * u[self.codes]).sum() - 0.5 * (
            (2.0 * sig / D * self._sum(z2 * w)).sum() + (a * deta_ds).sum()
        )
        return -np.concatenate([g_beta, [g_sig]])

    def eta(self, phi) -> np.ndarray:
        return self._state(phi)[-1]

    def ranef(self, phi) -> list[np.ndarray]:
        _, sig, *_ = self._state(phi)
        return [(sig * self.u[:-1])[:, None]]


def _bincount_matrix(codes, M, J):
    return np.column_stack(
        [np.bincount(codes, weights=M[:, j], minlength=J) for j in range(M.shape[1])]
    )


class GeneralObjective:
    """Any set of random terms: sparse Z Lambda, Newton on u with a Cholesky per step."""

    def __init__(self, problem: Problem):
        self.pr = problem
        rows, cols, self.offsets = [], [], []
        off = 0
        n = problem.X.shape[0]
        for t in problem.terms:
            self.offsets.append(off)
            on = t.codes >= 0
            r = np.repeat(np.flatnonzero(on), t.q)
            c = (off + t.codes[on][:, None] * t.q + np.arange(t.q)[None, :]).ravel()
            rows.append(r)
            cols.append(c)
            off += t.n_levels * t.q
        self.Q = off
        self.rows = np.concatenate(rows)
        self.cols = np.concatenate(cols)
        self.n = n
        self.u = np.zeros(self.Q)

    def A(self, theta) -> sp.csc_matrix:
        vals, k = [], 0
        for t in self.pr.terms:
            L = theta_to_L(theta[k : k + t.n_theta], t.q)
            k += t.n_theta
            on = t.codes >= 0
            vals.append((t.Z[on] @ L).ravel())
        return sp.csc_matrix((np.concatenate(vals), (self.rows, self.cols)), shape=(self.n, self.Q))

    def _factor(self, A, d):
        M = (A.T @ sp.diags(d) @ A).tocsc() + sp.identity(self.Q, format="csc")
        if self.Q <= _MAX_DENSE:
            from scipy.linalg import cho_factor

            c = cho_factor(M.toarray(), lower=True)
            logdet = 2.0 * np.log(np.diag(c[0])).sum()
            return (lambda b: _cho_solve(c, b)), logdet
        from scipy.sparse.linalg import splu

        lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        logdet = float(np.log(np.abs(lu.U.diagonal())).sum())
        return lu.solve, logdet

    def modes(self, eta0, A, extra):
        pr = self.pr
        fam = pr.family
        u = self.u.copy()

        def hval(uu):
            eta = eta0 + A @ uu
            ll, s, h, w = fam.derivs(pr.y, eta, extra, pr.trials, pr.pw)
            return ll.sum() - 0.5 * uu @ uu, s, h, w, eta

        f, s, h, w, eta = hval(u)
        for _ in range(100):
            g = A.T @ s - u
            solve, _ = self._factor(A, h)
            step = solve(g)
            if np.max(np.abs(step)) < 1e-11:
                break
            for _half in range(40):
                fn, sn, hn, wn, etan = hval(u + step)
                if fn >= f - 1e-12 * (1.0 + abs(f)):
                    break
                step = step * 0.5
            u, f, s, h, w, eta = u + step, fn, sn, hn, wn, etan
        self._sh = (s, h)
        return u, f, w, eta

    def _state(self, phi):
        pr = self.pr
        beta, theta, extra = pr.split(phi)
        A = self.A(theta)
        eta0 = pr.X @ beta + pr.offset
        u, f, w, eta = self.modes(eta0, A, extra)
        self.u = u
        return A, u, f, w, eta

    def value(self, phi) -> float:
        A, u, f, w, eta = self._state(phi)
        _, logdet = self._factor(A, w)
        return -float(f - 0.5 * logdet)

    def _dA(self, k: int):
        """d(Z Lambda)/d theta_k (sparse n x Q): entry (r, c) of one term's factor L."""
        j = 0
        for t, off in zip(self.pr.terms, self.offsets):
            if k < j + t.n_theta:
                r, c = _lower_entry(t.q, k - j)
                on = np.flatnonzero(t.codes >= 0)
                cols = off + t.codes[on] * t.q + c
                return sp.csc_matrix((t.Z[on, r], (on, cols)), shape=(self.n, self.Q))
            j += t.n_theta
        raise IndexError(k)

    def grad(self, phi):
        """Analytic gradient of minus the Laplace log-likelihood (no extra parameters; dense
        n x q intermediate, so only for moderate sizes)."""
        pr = self.pr
        if pr.family.n_extra or self.Q > 3000 or self.n * self.Q > 5e7:
            return None
        A, u, f, w, eta = self._state(phi)
        s, h = self._sh
        eps = 1e-6
        dw = (
            pr.family.derivs(pr.y, eta + eps, None, pr.trials, pr.pw)[3]
            - pr.family.derivs(pr.y, eta - eps, None, pr.trials, pr.pw)[3]
        ) / (2 * eps)
        Hsolve, _ = self._factor(A, h)
        AM = _a_minv(A, w, self.Q)  # A M^-1, dense n x Q
        c = dw * np.asarray(A.multiply(AM).sum(axis=1)).ravel()  # w' * diag(A M^-1 A')
        X = pr.X
        dU = -Hsolve(np.asarray(A.T @ (h[:, None] * X)))
        g_beta = X.T @ s - 0.5 * c @ (X + A @ dU)
        WAM = w[:, None] * AM
        g_theta = []
        for k in range(pr.n_theta):
            dA = self._dA(k).tocoo()
            deta_u = dA @ u
            du = Hsolve(dA.T @ s - A.T @ (h * deta_u))
            deta = deta_u + A @ du
            tr = 2.0 * float((WAM[dA.row, dA.col] * dA.data).sum())
            g_theta.append(s @ deta_u - 0.5 * (tr + c @ deta))
        return -np.concatenate([g_beta, g_theta])

    def eta(self, phi) -> np.ndarray:
        return self._state(phi)[-1]

    def ranef(self, phi) -> list[np.ndarray]:
        pr = self.pr
        _, theta, _ = pr.split(phi)
        self._state(phi)
        out, k = [], 0
        for t, off in zip(pr.terms, self.offsets):
            L = theta_to_L(theta[k : k + t.n_theta], t.q)
            k += t.n_theta
            uu = self.u[off : off + t.n_levels * t.q].reshape(t.n_levels, t.q)
            out.append(uu @ L.T)
        return out


def _a_minv(A, w, Q) -> np.ndarray:
    """A M^-1 with M = I + A' W A, through a dense Cholesky inverse (LAPACK potri)."""
    from scipy.linalg import cholesky, lapack

    M = (A.T @ sp.diags(w) @ A).toarray() + np.eye(Q)
    Minv, info = lapack.dpotri(cholesky(M, lower=True), lower=1)
    if info != 0:  # pragma: no cover - M is positive definite by construction
        Minv = np.linalg.inv(M)
    Minv = np.tril(Minv) + np.tril(Minv, -1).T
    return np.asarray(A @ Minv)


def _lower_entry(q: int, k: int) -> tuple[int, int]:
    """(row, column) of the k-th column-major lower-triangle entry of a q x q matrix."""
    for c in range(q):
        for r in range(c, q):
            if k == 0:
                return r, c
            k -= 1
    raise IndexError(k)


def _cho_solve(c, b):
    from scipy.linalg import cho_solve

    return cho_solve(c, b)


def make_objective(problem: Problem):
    """The objective (minus the log-likelihood) suited to the random-effect structure."""
    if not problem.terms:
        return GLMObjective(problem)
    if problem.scalar:
        return ScalarObjective(problem)
    return GeneralObjective(problem)
