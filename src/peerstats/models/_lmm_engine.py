"""The REML/ML engine of ``peerstats.lmm`` with independent residuals: analytic derivatives,
profiled start, projected Newton to the boundary.

:class:`LMMEngine` keeps the interface of :class:`peerstats.models._reml.REMLEngine` (theta as in
:class:`~peerstats.models._rancov.RandomCovariance`, ``fit``, ``evaluate``, ``second``,
``jacobian_terms``, ``expected_information``) but every derivative is closed form
(:mod:`peerstats.models._lmm_likelihood` in the variance parameters psi, chained to theta by
:mod:`peerstats.models._lmm_params`), so no Hessian is taken by finite differences.

The fit (:meth:`LMMEngine._fit`):

1. *profiled start*: the starting covariance is rescaled by the factor that maximises the
   likelihood along its ray, c = r'V^-1 r / (n - p) (REML; n under ML), the residual variance
   profiled out as in nlme and lme4 (one evaluation);
2. *projected Newton-Raphson* in phi, where a one-column term (random intercept, the partially
   nested ``(0 + peer | group)``) is parameterised by its variance sigma^2_t >= 0: the observed
   Hessian where it is positive definite on the free parameters, else the expected information
   (Fisher scoring); steps are projected onto sigma^2_t >= 0 and backtracked (Armijo). A variance
   at 0 whose gradient points outwards (d(-2l)/dsigma^2_t >= 0, the Karush-Kuhn-Tucker condition
   of a boundary optimum) is held there, so a singular fit converges as fast as a regular one.
   Converged when the Newton decrement g'H^-1 g on the free parameters is below
   max(tol, 1e-12 |-2l|) with H positive definite; the last step is taken too;
3. if that stalls: the generic strategy of :class:`REMLEngine` (Fisher scoring, Newton, BFGS) in
   theta, with these analytic derivatives.

Validated through ``peerstats.lmm`` against nlme and lme4 (tests/reference/r_lmm/,
tests/reference/r_lmm_extra/); derivatives against central differences
(tests/models/test_lmm_derivatives.py).
"""

from __future__ import annotations

import numpy as np

from peerstats.exceptions import ConvergenceError
from peerstats.models._lmm_likelihood import LOG2PI, LinearBlockLikelihood
from peerstats.models._lmm_params import ParameterMap
from peerstats.models._lmm_units import choose_likelihood
from peerstats.models._rancov import RandomCovariance
from peerstats.models._reml import FitState, REMLEngine

__all__ = ["LMMEngine"]

_NEWTON = "projected Newton-Raphson in the variances (analytic observed Hessian)"


def _positive_definite(H: np.ndarray) -> bool:
    if H.size == 0:
        return True
    if not np.all(np.isfinite(H)):
        return False
    w = np.linalg.eigvalsh(H)
    return bool(w[0] > 1e-10 * max(abs(w[-1]), 1.0))


class LMMEngine(REMLEngine):
    """REML/ML for ``RandomCovariance`` with independent residuals, closed-form derivatives.

    ``lik`` may be shared between engines of the same data (e.g. the refit with a variance
    fixed at zero).
    """

    def __init__(
        self,
        cov: RandomCovariance,
        *,
        n_obs: int,
        method: str = "reml",
        lik: LinearBlockLikelihood | None = None,
        X: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> None:
        if cov.structure is not None:  # pragma: no cover - guarded by the caller
            raise ValueError("LMMEngine needs independent residuals")
        layout = cov.layout
        self.classes = layout.classes
        self.cov = cov
        self.n_obs = n_obs
        self.method = method
        self.p = layout.classes[0].SXX.shape[-1]
        self.log_weight_sum = 0.0
        self.n_evals = 0
        self._pl = None
        if lik is None:
            lik = (
                LinearBlockLikelihood(layout, cov.qs, cov.n_res, method)
                if X is None
                else choose_likelihood(layout, X, y, cov.qs, cov.n_res, method)
            )
        self.lik = lik
        self.theta_map = ParameterMap(cov.qs, cov.n_res, squared=True)
        self.phi_map = ParameterMap(cov.qs, cov.n_res, squared=False)
        self._cache: tuple[bytes, int, dict | None] | None = None

    # ---- psi-level evaluation with a one-entry cache ---------------------------------------
    def _psi_eval(self, psi: np.ndarray, order: int) -> dict | None:
        key = psi.tobytes()
        if self._cache is not None and self._cache[0] == key and self._cache[1] >= order:
            return self._cache[2]
        self.n_evals += 1
        r = self.lik.evaluate(psi, order=order)
        self._cache = (key, order, r)
        return r

    def _constant(self) -> float:
        n, p = self.n_obs, self.p
        return (n - p) * LOG2PI if self.method == "reml" else n * LOG2PI

    def _in(self, pmap: ParameterMap, x_free: np.ndarray, order: int):
        """Evaluate at free coordinates of ``pmap``: (full x, psi result) or None."""
        x = self.cov.full(np.asarray(x_free, dtype=float))
        r = self._psi_eval(pmap.psi(x), order)
        return None if r is None else (x, r)

    def _derivatives(self, pmap: ParameterMap, x: np.ndarray, r: dict, order: int):
        """Gradient (and observed Hessian, expected information) in the free coordinates."""
        free = self.cov.free
        J = pmap.jacobian(x)[:, free]
        g = J.T @ r["gradient"]
        if order < 2:
            return g, None, None
        H = J.T @ r["hessian"] @ J + pmap.curvature(x, r["gradient"])[np.ix_(free, free)]
        E = J.T @ r["expected"] @ J
        return g, (H + H.T) / 2, (E + E.T) / 2

    def _fit_state(self, theta_free: np.ndarray, r: dict, g) -> FitState:
        return FitState(
            theta=np.asarray(theta_free, dtype=float),
            objective=float(r["objective"] + self._constant()),
            gradient=g,
            beta=r["beta"],
            M=r["M"],
            Minv=r["C"],
        )

    # ---- REMLEngine interface (theta) -----------------------------------------------------
    def evaluate(self, theta: np.ndarray, *, gradient: bool = True) -> FitState | None:
        ev = self._in(self.theta_map, theta, 1 if gradient else 0)
        if ev is None:
            return None
        g = self._derivatives(self.theta_map, *ev, 1)[0] if gradient else None
        return self._fit_state(theta, ev[1], g)

    def second(self, theta: np.ndarray, *, observed: bool = True):
        """(state, observed Hessian, expected information) in theta; None if not PD."""
        ev = self._in(self.theta_map, theta, 2)
        if ev is None:
            return None
        g, H, E = self._derivatives(self.theta_map, *ev, 2)
        return self._fit_state(theta, ev[1], g), H, E

    def hessian(self, theta: np.ndarray, h: float | None = None) -> np.ndarray:
        """Observed Hessian of -2 log-likelihood in theta (closed form; ``h`` is ignored)."""
        sec = self.second(theta)
        K = len(theta)
        return np.full((K, K), np.nan) if sec is None else sec[1]

    def expected_information(self, theta: np.ndarray) -> np.ndarray:
        """Expected information in theta, J' I(psi) J."""
        return self.second(theta)[2]

    def jacobian_terms(self, theta: np.ndarray) -> np.ndarray:
        """P_k = X'V^-1 dV/dtheta_k V^-1 X, (K, p, p)."""
        ev = self._in(self.theta_map, theta, 2)
        J = self.theta_map.jacobian(ev[0])[:, self.cov.free]
        return np.einsum("jk,jpq->kpq", J, ev[1]["P"])

    def psi_terms(self, psi: np.ndarray) -> dict:
        """At psi (all entries, e.g. ``LinearRandomCovariance.psi_hat``): P_k, Q_kl, the
        observed Hessian and the expected information of -2l in psi (Kenward-Roger)."""
        r = self.lik.evaluate(np.asarray(psi, dtype=float), order=2)
        return {
            "P": r["P"],
            "Q": self.lik.second_order_terms(psi),
            "observed": r["hessian"],
            "expected": r["expected"],
        }

    # ---- optimisation -----------------------------------------------------------------------
    def _profiled_start(self, phi: np.ndarray) -> np.ndarray:
        """phi rescaled so that its covariance is the best multiple c V of the start's:
        -2l(c V) = (n - p) log c + r'V^-1 r / c + const (REML; n under ML)."""
        r = self._psi_eval(self.phi_map.psi(phi), 0)
        if r is None:
            return phi
        c = r["rVr"] / (self.n_obs - (self.p if self.method == "reml" else 0))
        return self.phi_map.scaled(phi, c) if np.isfinite(c) and c > 0 else phi

    def _fit(self, theta0: np.ndarray, *, max_iter: int = 200, tol: float = 1e-9) -> dict:
        """Profiled start, projected Newton in phi; the generic strategy if that stalls."""
        free = self.cov.free
        theta_full = self.cov.full(np.asarray(theta0, dtype=float))
        phi = self._profiled_start(self.phi_map.to_phi(theta_full))
        if self._in(self.phi_map, phi[free], 2) is None:
            raise ConvergenceError(
                "the starting covariance is not positive definite", tried=["start"], gradient=None
            )
        phi_free, conv, it, r = _projected_newton(self, phi[free], max_iter=max_iter, tol=tol)
        theta = self.theta_map.to_theta(self.cov.full(phi_free))[free]
        tried = [_NEWTON]
        if not conv:
            out = REMLEngine._fit(self, theta, max_iter=max_iter, tol=tol)
            out["tried"] = tried + out["tried"]
            out["iterations"] += it
            return out
        # the same covariance in theta (psi(theta) = psi(phi) up to rounding): no new evaluation
        x = self.cov.full(theta)
        self._cache = (self.theta_map.psi(x).tobytes(), 2, r)
        g, H, _ = self._derivatives(self.theta_map, x, r, 2)
        st = self._fit_state(theta, r, g)
        return {"state": st, "hessian": H, "converged": True, "iterations": it, "tried": tried}


def _projected_newton(eng: LMMEngine, phi: np.ndarray, *, max_iter: int, tol: float):
    """Newton-Raphson in free phi with the variances of one-column terms bounded at 0.

    Returns (phi, converged, iterations, the order-2 result at phi). See the module docstring
    for the rules.
    """
    pmap = eng.phi_map
    bound = np.isin(eng.cov.free, pmap.var)
    phi = np.where(bound, np.maximum(phi, 0.0), phi)
    x, r = eng._in(pmap, phi, 2)
    for it in range(max_iter):
        g, H, E = eng._derivatives(pmap, x, r, 2)
        obj = r["objective"]
        act = ~(bound & (phi <= 0) & (g >= 0))
        step, dec, ok = _newton_step(g, H, E, act)
        if ok and 0 <= dec < max(tol, 1e-12 * abs(obj)):
            fin = eng._in(pmap, _project(phi + step, bound), 2)
            if fin is not None and fin[1]["objective"] <= obj + 1e-12 * max(1.0, abs(obj)):
                return _project(phi + step, bound), True, it, fin[1]
            return phi, True, it, r
        moved = _line_search(eng, phi, step, g, obj, bound)
        if moved is None:
            return phi, False, it, r
        phi, x, r = moved
    return phi, False, max_iter, r


def _newton_step(g, H, E, act):
    """Newton step on the free (non-active) parameters: observed Hessian if positive definite,
    else the expected information, else steepest descent. Returns (step, decrement, H PD)."""
    step = np.zeros_like(g)
    gf = g[act]
    Hf = H[np.ix_(act, act)]
    ok = _positive_definite(Hf)
    A = Hf if ok else E[np.ix_(act, act)]
    try:
        sf = -np.linalg.solve(A, gf)
    except np.linalg.LinAlgError:
        sf = -gf
    dec = float(-gf @ sf)
    if not np.isfinite(dec) or dec <= 0:
        sf = -gf / max(float(np.linalg.norm(gf)), 1.0)
        dec = float(-gf @ sf)
        ok = False
    step[act] = sf
    return step, dec, ok


def _project(phi: np.ndarray, bound: np.ndarray) -> np.ndarray:
    return np.where(bound, np.maximum(phi, 0.0), phi)


def _line_search(eng: LMMEngine, phi, step, g, obj, bound):
    """Backtracking (Armijo) along the projected step; the full step is evaluated to order 2
    at once. Returns (phi, x, result at order 2) or None."""
    log = np.isin(eng.cov.free, eng.phi_map.log)
    mx = float(np.max(np.abs(step[log]))) if log.any() else 0.0
    if mx > 5:  # at most a factor e^5 on a residual variance per step
        step = step * (5 / mx)
    t = 1.0
    for _ in range(40):
        cand = _project(phi + t * step, bound)
        ev = eng._in(eng.phi_map, cand, 2 if t == 1.0 else 0)
        if ev is not None and ev[1]["objective"] <= obj + 1e-4 * min(0.0, g @ (cand - phi)):
            if t != 1.0:
                ev = eng._in(eng.phi_map, cand, 2)
            return cand, ev[0], ev[1]
        t /= 2
    return None
