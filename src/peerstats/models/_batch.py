"""The engine's many-datasets path: :class:`BatchREML` fits S data sets that share one block
structure at once (criterion, gradient and information in :mod:`peerstats.models._batch_blocks`),
with their inference: Fisher scoring with step halving, then Satterthwaite / residual /
asymptotic df. Power simulation (:mod:`peerstats.design`) and :func:`peerstats.mmrm_many` call it.

The optimiser, one named step at a time:

1. :func:`_scoring_step`: the Fisher-scoring step ``-I^-1 g`` per active data set, with
   parameters held at zero removed (and released when the gradient points inwards);
   converged data sets (decrement below ``tol``) leave the active set;
2. :func:`_bounded`: the step is shortened so that non-negative parameters (a group variance)
   stop at 0 (lme4 and :func:`peerstats.lmm` fix a zero variance component the same way);
3. :func:`_line_search`: the full step is evaluated with gradient and information at once (it
   is accepted almost always); rejected steps are halved with criterion-only evaluations until
   V is positive definite and the criterion does not increase; data sets whose line search
   fails stop there (not converged);
4. :func:`_accept`: the new parameters and state.

At the optimum, Satterthwaite df for a contrast ``l`` use W = 2 H^-1 with H the observed Hessian
of -2 l_REML (forward differences of the analytic gradient, upward steps so that parameters held
at zero stay feasible), as :func:`peerstats.mmrm` (Satterthwaite 1946; SAS PROC MIXED
``ddfm=satterthwaite``): ``df = 2 (l'Cl)^2 / (g' W g)``, ``g_k = l'C X'V^-1 D_k V^-1 X C l``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peerstats.models._batch_blocks import BatchCriterion, GroupBlocks, PooledBlocks

__all__ = ["BatchREML", "PooledBlocks", "GroupBlocks", "optimise", "fit_contrasts", "Optimum"]

_STATE_KEYS = ("obj", "grad", "info", "beta", "C", "bad")


@dataclass
class Optimum:
    """Where the optimiser stopped, per data set."""

    state: dict  # obj, grad, info, beta, C, bad at psi
    psi: np.ndarray  # (S, K)
    fixed: np.ndarray  # (S, K) parameters held at zero
    converged: np.ndarray  # (S,)
    iterations: np.ndarray  # (S,)


def _hold_fixed(A: np.ndarray, fixed: np.ndarray) -> None:
    """Rows and columns of parameters held at zero become those of the identity (in place)."""
    for k in range(A.shape[-1]):
        rows = fixed[:, k]
        if rows.any():
            A[rows, k, :] = 0.0
            A[rows, :, k] = 0.0
            A[rows, k, k] = 1.0


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("skl,sl->sk", np.linalg.pinv(A), b)


def _scoring_step(st: dict, active: np.ndarray, fixed: np.ndarray, tol: float):
    """Step 1: the scoring step of the active data sets and which of them have converged."""
    g = st["grad"][active].copy()
    info = st["info"][active].copy()
    fx = fixed[active]
    # release held parameters whose gradient points into the interior
    release = fx & (g < 0)
    fx = fx & ~release
    fixed[active] = fx
    g[fx] = 0.0
    _hold_fixed(info, fx)
    step = -_solve(info, g)
    dec = -np.einsum("sk,sk->s", g, step)
    done = (dec >= 0) & (dec < tol * np.maximum(1.0, 1e-3 * np.abs(st["obj"][active])))
    done &= ~release.any(axis=1)
    return step, done


def _bounded(nonneg: np.ndarray, sub_psi: np.ndarray, step: np.ndarray):
    """Step 2: step length t (<= 1) so that non-negative parameters stop at zero."""
    t = np.ones(sub_psi.shape[0])
    neg = nonneg[None, :] & (sub_psi + step < 0)
    if neg.any():
        frac = np.where(neg, -sub_psi / np.where(step == 0, -1, step), 1.0)
        t = np.minimum(t, np.clip(frac.min(axis=1), 0.0, 1.0))
    new_psi = sub_psi + t[:, None] * step
    new_psi[neg & (new_psi < 0)] = 0.0
    return t, neg, new_psi


def _not_worse(obj: np.ndarray, obj0: np.ndarray) -> np.ndarray:
    return np.isfinite(obj) & (obj <= obj0 + 1e-9 * np.maximum(1, np.abs(obj0)))


def _line_search(fitter: BatchCriterion, active, sub_psi, step, t, new_psi, obj0):
    """Step 3: accept the full step or halve it; returns ok, first_ok and the full step's state."""
    sub = fitter._subset(active)
    trial = sub._evaluate(new_psi, grad=True, info=True)
    ok = _not_worse(trial["obj"], obj0)
    first_ok = ok.copy()
    for _h in range(30):
        if ok.all():
            break
        t[~ok] /= 2
        idx = np.nonzero(~ok)[0]
        cand = sub_psi[idx] + t[idx, None] * step[idx]
        tr2 = fitter._subset(active[idx])._evaluate(cand, grad=False, info=False)
        good = _not_worse(tr2["obj"], obj0[idx])
        new_psi[idx[good]] = cand[good]
        ok[idx[good]] = True
        if t[idx].max() < 1e-9:
            break
    return ok, first_ok, trial


def _accept(
    fitter: BatchCriterion, opt: Optimum, active, sub_psi, new_psi, neg, ok, first_ok, trial
):
    """Step 4: store the new parameters and state; returns the data sets still active."""
    stuck = ~ok
    new_psi[stuck] = sub_psi[stuck]
    hit = neg & (new_psi <= 1e-12 * np.maximum(1.0, np.abs(sub_psi)))
    new_psi[hit] = 0.0
    opt.fixed[active[hit.any(axis=1)]] |= hit[hit.any(axis=1)]
    opt.psi[active] = new_psi
    opt.iterations[active] += 1
    active = active[~stuck]
    if active.size == 0:
        return active
    st = opt.state
    took = first_ok[~stuck]  # accepted full steps: their state is already computed
    for key in _STATE_KEYS:
        st[key][active[took]] = trial[key][~stuck][took]
    redo = active[~took]
    if redo.size:
        new_st = fitter._subset(redo)._evaluate(opt.psi[redo], grad=True, info=True)
        for key in _STATE_KEYS:
            st[key][redo] = new_st[key]
    return active


def optimise(fitter: BatchCriterion, psi0, *, max_iter: int = 60, tol: float = 1e-10) -> Optimum:
    """REML estimates of every data set from ``psi0`` (K,) or (S, K)."""
    S, K = fitter._n_trials(), fitter.K
    psi = np.broadcast_to(np.asarray(psi0, float), (S, K)).copy()
    opt = Optimum(
        state=fitter._evaluate(psi, grad=True, info=True),
        psi=psi,
        fixed=np.zeros((S, K), dtype=bool),
        converged=np.zeros(S, dtype=bool),
        iterations=np.zeros(S, dtype=int),
    )
    active = np.arange(S)
    for _ in range(max_iter):
        if active.size == 0:
            break
        step, done = _scoring_step(opt.state, active, opt.fixed, tol)
        opt.converged[active[done]] = True
        active, step = active[~done], step[~done]
        if active.size == 0:
            break
        sub_psi = opt.psi[active]
        t, neg, new_psi = _bounded(fitter.nonneg, sub_psi, step)
        obj0 = opt.state["obj"][active]
        ok, first_ok, trial = _line_search(fitter, active, sub_psi, step, t, new_psi, obj0)
        active = _accept(fitter, opt, active, sub_psi, new_psi, neg, ok, first_ok, trial)
    return opt


# ---- inference ---------------------------------------------------------------------------------
def observed_hessian(fitter: BatchCriterion, opt: Optimum) -> np.ndarray:
    """Observed Hessian of -2 l_REML at the optimum by forward differences of the analytic
    gradient; parameters held at zero get identity rows and columns."""
    psi, g0 = opt.psi, opt.state["grad"]
    S, K = psi.shape
    H = np.empty((S, K, K))
    scale = np.maximum(np.abs(psi).max(axis=1, keepdims=True), 1e-8)
    for k in range(K):
        h = 1e-6 * np.maximum(np.abs(psi[:, k]), scale[:, 0] * 1e-2)
        up = psi.copy()
        up[:, k] += h
        gp = fitter._evaluate(up, grad=True, info=False)["grad"]
        H[:, :, k] = (gp - g0) / h[:, None]
    H = (H + np.swapaxes(H, 1, 2)) / 2
    _hold_fixed(H, opt.fixed)
    return H


def satterthwaite(fitter: BatchCriterion, opt: Optimum, H: np.ndarray, ell, var, g=None):
    """Satterthwaite df of the contrast ``ell`` (p,) given the observed Hessian ``H`` (and
    its g_k, when computed already)."""
    g = fitter._g_contrast(opt.psi, opt.state["C"], ell) if g is None else g.copy()
    g[opt.fixed] = 0.0
    Wg = _solve(H, g)
    den = 2 * np.einsum("sk,sk->s", g, Wg)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 2 * var**2 / den, np.inf)


def _df(fitter, opt, H, ell, var, df: str, df_residual, g) -> np.ndarray:
    if df == "satterthwaite":
        return satterthwaite(fitter, opt, H, ell, var, g)
    if df == "residual":
        return np.broadcast_to(np.asarray(df_residual, float), var.shape).copy()
    return np.full(var.shape, np.inf)


def fit_contrasts(
    fitter: BatchCriterion,
    psi0,
    L: np.ndarray,
    *,
    df: str = "satterthwaite",
    df_residual=None,
    max_iter: int = 60,
    tol: float = 1e-10,
) -> dict:
    """Fit every data set and test each row of ``L`` (n_contrasts, p).

    Returns ``estimate``, ``std_error``, ``df`` (S, n_contrasts) and ``converged``,
    ``iterations``, ``at_zero`` (S,), ``psi`` (S, K), ``beta`` (S, p), ``C`` (S, p, p).
    ``df_residual`` (scalar or (S,)) is used with ``df="residual"``.
    """
    opt = optimise(fitter, psi0, max_iter=max_iter, tol=tol)
    beta, C = opt.state["beta"], opt.state["C"]
    L = np.atleast_2d(np.asarray(L, float))
    H = gs = None
    if df == "satterthwaite":
        H = observed_hessian(fitter, opt)
        gs = fitter._g_contrasts(opt.psi, C, L)  # (S, J, K)
    est = beta @ L.T
    var = np.einsum("jp,spq,jq->sj", L, C, L)
    dfs = np.column_stack(
        [
            _df(fitter, opt, H, ell, var[:, j], df, df_residual, None if gs is None else gs[:, j])
            for j, ell in enumerate(L)
        ]
    )
    return {**_columns(opt, est, var, dfs), "beta": beta, "C": C}


def _fit_one_contrast(fitter: BatchCriterion, psi0, ell, *, df: str, max_iter: int, tol: float):
    """:meth:`BatchREML.fit`: one contrast, (S,) arrays (the power simulation's call)."""
    opt = optimise(fitter, psi0, max_iter=max_iter, tol=tol)
    beta, C = opt.state["beta"], opt.state["C"]
    ell = np.asarray(ell, float)
    var = np.einsum("p,spq,q->s", ell, C, ell)
    if df == "satterthwaite":
        dfs = satterthwaite(fitter, opt, observed_hessian(fitter, opt), ell, var)
    else:
        dfs = np.full(var.shape, np.inf)
    return _columns(opt, beta @ ell, var, dfs)


def _columns(opt, est, var, dfs) -> dict:
    """The per-replicate result columns of a batched fit: estimate, SE, df, convergence."""
    return {
        "estimate": est,
        "std_error": np.sqrt(np.maximum(var, 0.0)),
        "df": dfs,
        "converged": opt.converged & ~opt.state["bad"],
        "iterations": opt.iterations,
        "psi": opt.psi,
        "at_zero": opt.fixed.any(axis=1),
    }


class BatchREML(BatchCriterion):
    """REML fits of S data sets sharing block structure (see the module docstring)."""

    def fit(self, psi0, ell, *, df: str = "satterthwaite", max_iter: int = 60, tol=1e-10):
        """Fit every data set from ``psi0`` (K,) or (S, K); test the contrast ``ell``.

        Returns a dict of (S,) arrays: ``estimate``, ``std_error``, ``df``, ``converged``,
        ``iterations``, ``at_zero`` and ``psi`` (S, K).
        """
        return _fit_one_contrast(self, psi0, ell, df=df, max_iter=max_iter, tol=tol)

    def fit_contrasts(self, psi0, L, **kwargs) -> dict:
        """:func:`fit_contrasts` of this fitter."""
        return fit_contrasts(self, psi0, L, **kwargs)
