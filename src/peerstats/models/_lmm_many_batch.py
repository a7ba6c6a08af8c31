"""The LMM likelihood of many responses at once, for random-intercept-type models (private).

:class:`BatchedRows` evaluates the REML/ML objective, gradient, observed Hessian, expected
information and P_k of :class:`~peerstats.models._lmm_units.RowLikelihood` for S responses
y_1..y_S on the same design, each at its own variance parameters psi_s, with every array
carrying a leading axis s: one batched evaluation replaces S evaluations whose cost is mostly
the overhead of many small numpy calls. :func:`batched_newton` runs the projected
Newton-Raphson of :class:`~peerstats.models._lmm_engine.LMMEngine` (profiled start, the same
step rule ``_newton_step``, projection onto sigma^2_t >= 0, Armijo backtracking, the same
convergence test and final step) on all S problems together; a problem that stalls is left
to the caller. Only models whose random terms all have one column (random intercepts, the
partially nested ``(0 + peer | group)``) with independent residuals qualify: there phi, psi and
theta differ entry by entry (phi = psi except log residual variances; theta = sqrt of the
term variances), so the chain rule is elementwise.

Notes
-----
The formulas are those of :mod:`peerstats.models._lmm_likelihood` (Wolfinger, Tobias & Sall
1994 on the rows of each unit, :mod:`peerstats.models._lmm_units`); the batched products sum
in another order than the per-response ones, so the numbers agree with
:func:`peerstats.lmm`'s to rounding and the optimiser's tolerance
(tests/models/test_lmm_many.py). Validated against nlme through the pipeline's pooled numbers
(tests/reference/r_sens_primary/).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peerstats.models._lmm_engine import _newton_step
from peerstats.models._rancov import linear_basis

__all__ = ["BatchedRows", "batched_newton"]


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


@dataclass
class _Type:
    """One block type: m rows per unit, U units, its basis D (K, m, m), the row of each
    (position, unit) (m, U) and X as (m U, p) and (m, U p) (rows ordered position-major)."""

    m: int
    U: int
    D: np.ndarray
    rows: np.ndarray
    Xf: np.ndarray
    Xw: np.ndarray

    @property
    def Dk(self) -> np.ndarray:
        """The basis stacked (K m, m): D_k M for every k is one product ``Dk @ M``."""
        return self.D.reshape(-1, self.m)


def _cholesky(V: np.ndarray):
    """Batched Cholesky factors of V (S, m, m) and which are positive definite (the others are
    factored as the identity, so the batch stays computable; their problems are dropped)."""
    try:
        return np.linalg.cholesky(V), np.ones(V.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        ok = np.array([np.all(np.linalg.eigvalsh(v) > 0) for v in V]) & np.all(
            np.isfinite(V), axis=(1, 2)
        )
        V = np.where(ok[:, None, None], V, np.eye(V.shape[-1]))
        try:
            return np.linalg.cholesky(V), ok
        except np.linalg.LinAlgError:  # eigvalsh > 0 yet not factorable: drop every problem
            eye = np.broadcast_to(np.eye(V.shape[-1]), V.shape)
            return np.linalg.cholesky(eye), np.zeros_like(ok)


class BatchedRows:
    """The row likelihood of one design for S responses (see the module docstring); each
    block type's units are one (m, U p) matrix, so a product over all its units is one
    matrix product per response."""

    def __init__(self, layout, X: np.ndarray, qs: list[int], n_res: int, method: str) -> None:
        self.method, self.p = method, X.shape[1]
        self.types: list[_Type] = []
        for c in range(len(layout.classes)):
            basis = linear_basis(layout, qs, n_res, c)
            for b, rows in enumerate(layout.rows[c]):
                U, m = rows.shape
                Xm = X[rows.T]  # (m, U, p)
                self.types.append(
                    _Type(m, U, basis[b], rows.T, Xm.reshape(m * U, -1), Xm.reshape(m, -1))
                )
        self.K = self.types[0].D.shape[0]
        self.ys: list[np.ndarray] = []

    def set_responses(self, Y: np.ndarray) -> None:
        """The S responses (S, n rows of X)."""
        self.ys = [Y[:, t.rows] for t in self.types]

    def _fixed(self, psi: np.ndarray, sel: np.ndarray):
        """Per type V^-1 and V^-1 X; log|V| summed, M, X'V^-1y, y'V^-1y; PD problems."""
        S, K, p = psi.shape[0], self.K, self.p
        M, Xy, yVy, logdet = np.zeros((S, p, p)), np.zeros((S, p)), np.zeros(S), np.zeros(S)
        ok = np.ones(S, dtype=bool)
        parts = []
        for t, ys in zip(self.types, self.ys):
            Lc, good = _cholesky((psi @ t.D.reshape(K, -1)).reshape(S, t.m, t.m))
            ok &= good
            logdet += t.U * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum(axis=1)
            Li = np.linalg.inv(Lc)
            Vi = _swap(Li) @ Li
            y = ys[sel]
            A = Vi @ t.Xw  # (S, m, U p)
            Af = A.reshape(S, -1, p)
            M += t.Xf.T @ Af
            Xy += (_swap(Af) @ y.reshape(S, -1, 1))[..., 0]
            yVy += np.einsum("sx,sx->s", y.reshape(S, -1), (Vi @ y).reshape(S, -1))
            parts.append((Vi, A, y))
        return M, Xy, yVy, 2 * logdet, ok, parts

    def evaluate(self, psi: np.ndarray, sel: np.ndarray, order: int = 2) -> dict:
        """At psi (S, K) for the responses ``sel`` (S indices): ``ok`` (S,) where V and
        X'V^-1X are positive definite, ``objective`` (without constants; inf where not ok),
        ``beta``, ``C``, ``rVr``; order >= 1 ``gradient``; order 2 ``hessian``, ``expected``,
        ``P``."""
        M, Xy, yVy, logdet, ok, parts = self._fixed(psi, sel)
        M = (M + _swap(M)) / 2
        cM, pd_ = _cholesky(M)
        ok &= pd_
        Li = np.linalg.inv(cM)
        C = _swap(Li) @ Li
        beta = (C @ Xy[..., None])[..., 0]
        rvr = yVy - np.einsum("sp,sp->s", beta, Xy)
        obj = logdet + rvr
        if self.method == "reml":
            obj = obj + 2 * np.log(np.diagonal(cM, axis1=1, axis2=2)).sum(axis=1)
        out = {"ok": ok, "objective": np.where(ok, obj, np.inf), "beta": beta, "C": C, "rVr": rvr}
        if order >= 1:
            self._first_order(out, parts)
        if order >= 2:
            self._second_order(out, parts)
        return out

    def _first_order(self, out: dict, parts) -> None:
        """Gradient sum_b <D_bk, W_b> (S, K); keeps W and V^-1 r per type."""
        beta, C = out["beta"], out["C"]
        S, p = beta.shape
        g = np.zeros((S, self.K))
        out["_W"] = []
        for t, (Vi, A, y) in zip(self.types, parts):
            r = y - (t.Xf @ beta.T).T.reshape(S, t.m, t.U)
            s = Vi @ r  # (S, m, U)
            Qt = 0.0
            if self.method == "reml":  # sum_u A_u C A_u'
                Qt = (A.reshape(S, -1, p) @ C).reshape(S, t.m, -1) @ _swap(A)
            W = t.U * Vi - s @ _swap(s) - Qt
            out["_W"].append((W, s, Qt))
            g += W.reshape(S, -1) @ t.D.reshape(self.K, -1).T
        out["gradient"] = g

    def _second_order(self, out: dict, parts) -> None:
        """Observed Hessian, expected information (S, K, K) and P_k (S, K, p, p)."""
        K, p, C = self.K, self.p, out["C"]
        S = C.shape[0]
        reml = self.method == "reml"
        H, E = np.zeros((S, K, K)), np.zeros((S, K, K))
        P, u = np.zeros((S, K, p, p)), np.zeros((S, K, p))
        for t, (Vi, A, _), (W, s, Qt) in zip(self.types, parts, out.pop("_W")):
            ViD = (Vi[:, None] @ t.D[None]).reshape(S, K, -1)
            Vn = t.U * Vi
            H += ViD @ _swap((t.Dk @ (Vn - 2 * W)).reshape(S, K, -1))
            Ye = Vn - 2 * Qt if reml else Vn
            E += ViD @ _swap((t.Dk @ Ye).reshape(S, K, -1))
            DA = (t.Dk @ A).reshape(S, K, -1, p)  # D_k V^-1 X_u, one product per response
            P += _swap(A.reshape(S, 1, -1, p)) @ DA
            u += (_swap(DA) @ s.reshape(S, 1, -1, 1))[..., 0]
        H = H - 2 * (u @ C @ _swap(u))
        if reml:
            CP = C[:, None] @ P
            tcc = np.einsum("skab,slba->skl", CP, CP)
            H, E = H - tcc, E + tcc
        out["hessian"], out["expected"], out["P"] = (H + _swap(H)) / 2, (E + _swap(E)) / 2, P


class _Maps:
    """psi, the Jacobian diagonal and the curvature diagonal of phi (theta) for one-column
    terms: var entries ``var`` (phi = sigma^2, theta = sigma), log residual variances ``log``."""

    def __init__(self, n_var: int, n_res: int) -> None:
        self.var = np.arange(n_var)
        self.log = np.arange(n_var, n_var + n_res)

    def psi(self, x: np.ndarray, squared: bool = False) -> np.ndarray:
        out = np.array(x, dtype=float)
        if squared:
            out[:, self.var] = x[:, self.var] ** 2
        out[:, self.log] = np.exp(x[:, self.log])
        return out

    def chain(self, x, g, H, squared: bool = False):
        """Gradient and Hessian in x from those in psi (S, K), (S, K, K)."""
        jd = np.ones_like(x)
        cd = np.zeros_like(x)
        if squared:
            jd[:, self.var] = 2 * x[:, self.var]
            cd[:, self.var] = 2 * g[:, self.var]
        jd[:, self.log] = np.exp(x[:, self.log])
        cd[:, self.log] = g[:, self.log] * np.exp(x[:, self.log])
        Hx = jd[:, :, None] * H * jd[:, None, :]
        Hx[:, np.arange(x.shape[1]), np.arange(x.shape[1])] += cd
        return jd * g, (Hx + _swap(Hx)) / 2, jd


def batched_newton(
    lik: BatchedRows, phi0: np.ndarray, n_obs: int, n_var: int, *, tol: float = 1e-9,
    max_iter: int = 200,
):  # fmt: skip
    """Projected Newton in phi for every problem (rows of ``phi0``; response s for row s).

    ``n_var`` one-column terms come first in phi, then the log residual variances. Returns
    (phi (S, K), converged (S,), the order-2 results at phi as (S, ...) arrays). The rules are
    those of ``LMMEngine._fit`` (profiled start, projected steps, Armijo, the decrement test and
    the final step); a problem that stalls is not converged (no generic fallback here)."""
    S, K = phi0.shape
    maps = _Maps(n_var, K - n_var)
    sel = np.arange(S)
    r0 = lik.evaluate(maps.psi(phi0), sel, order=0)
    c = r0["rVr"] / (n_obs - (lik.p if lik.method == "reml" else 0))
    good = np.isfinite(c) & (c > 0) & r0["ok"]
    phi = np.array(phi0, dtype=float)
    phi[np.ix_(good, maps.var)] *= c[good, None]
    phi[np.ix_(good, maps.log)] += np.log(c[good])[:, None]
    bound = np.zeros(K, dtype=bool)
    bound[maps.var] = True
    phi = np.where(bound, np.maximum(phi, 0.0), phi)
    state = lik.evaluate(maps.psi(phi), sel, order=2)
    done, conv = ~state["ok"], np.zeros(S, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if not idx.size:
            break
        _iteration(lik, maps, (phi, state, done, conv), idx, bound, tol)
    return phi, conv, state


def _steps(maps: _Maps, x, state, idx, bound, tol):
    """Per problem: the Newton step of ``_newton_step``, whether it is the final one, the
    gradient in phi and the objective."""
    g, H, jd = maps.chain(x, state["gradient"][idx], state["hessian"][idx])
    E = jd[:, :, None] * state["expected"][idx] * jd[:, None, :]
    E = (E + _swap(E)) / 2
    obj = state["objective"][idx]
    act = ~(bound & (x <= 0) & (g >= 0))
    steps, dec, ok = _batched_newton_steps(g, H, E, act)
    final = ok & (dec >= 0) & (dec < np.maximum(tol, 1e-12 * np.abs(obj)))
    mx = np.max(np.abs(steps[:, maps.log]), axis=1) if maps.log.size else np.zeros(len(idx))
    scale = ~final & (mx > 5)
    steps[scale] *= (5 / mx[scale])[:, None]
    return steps, final, g, obj


def _batched_newton_steps(g, H, E, act):
    """``_newton_step`` of every problem: batched where all parameters are free and the
    matrices finite (the same LAPACK calls), one by one otherwise."""
    n = len(g)
    steps, dec, ok = np.zeros_like(g), np.zeros(n), np.zeros(n, dtype=bool)
    easy = act.all(axis=1) & np.isfinite(H).all(axis=(1, 2)) & np.isfinite(E).all(axis=(1, 2))
    j = np.flatnonzero(easy)
    if j.size:
        w = np.linalg.eigvalsh(H[j])
        pd_ = w[:, 0] > 1e-10 * np.maximum(np.abs(w[:, -1]), 1.0)
        A = np.where(pd_[:, None, None], H[j], E[j])
        try:
            sf = -np.linalg.solve(A, g[j][..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular E: the one-by-one rule (steepest descent)
            easy[:] = False
        else:
            d = np.einsum("sk,sk->s", -g[j], sf)
            descent = np.isfinite(d) & (d > 0)
            easy[j[~descent]] = False  # the one-by-one rule falls back to steepest descent
            k = j[descent]
            steps[k], dec[k], ok[k] = sf[descent], d[descent], pd_[descent]
    for i in np.flatnonzero(~easy):
        steps[i], dec[i], ok[i] = _newton_step(g[i], H[i], E[i], act[i])
    return steps, dec, ok


def _iteration(lik, maps, arrays, idx, bound, tol) -> None:
    """One Newton iteration of the problems ``idx`` (updates phi, state, done, conv)."""
    phi, state, done, conv = arrays
    x = phi[idx]
    steps, final, g, obj = _steps(maps, x, state, idx, bound, tol)
    t = np.ones(len(idx))
    pending = np.ones(len(idx), dtype=bool)
    for _ in range(40):
        j = np.flatnonzero(pending)
        cand = np.where(
            bound, np.maximum(x[j] + t[j, None] * steps[j], 0.0), x[j] + t[j, None] * steps[j]
        )
        rr = lik.evaluate(maps.psi(cand), idx[j], order=2)
        new = rr["objective"]
        fin = final[j]
        armijo = new <= obj[j] + 1e-4 * np.minimum(0.0, np.einsum("sk,sk->s", g[j], cand - x[j]))
        take = rr["ok"] & np.where(
            fin, new <= obj[j] + 1e-12 * np.maximum(1.0, np.abs(obj[j])), armijo
        )
        at = idx[j[take]]
        phi[at] = cand[take]
        for k, v in rr.items():
            state[k][at] = v[take]
        done[idx[j[fin]]] = True
        conv[idx[j[fin]]] = True
        pending[j[fin | take]] = False
        t[j[~(fin | take)]] /= 2
        if not pending.any():
            return
    done[idx[pending]] = True  # the line search failed: not converged
