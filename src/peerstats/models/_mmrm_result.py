"""Building the result of an MMRM fit: df options, inference at the optimum (Satterthwaite,
Kenward-Roger in SAS's covariance parameters), the covariance-parameter table, starting values.

Below both :mod:`peerstats.models.prepared` (which calls it from ``PreparedMMRM.fit``) and
:mod:`peerstats.models.mmrm` (the user-facing function), so that imports run one way.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from peerstats._dist import chi2_ppf
from peerstats.exceptions import ModelSpecificationError
from peerstats.models._ddf import DF_METHODS, Inference, between_within, kenward_roger_vcov
from peerstats.models._design import choice
from peerstats.models.results import MixedModelResult

__all__ = ["check_df_options", "build_result", "empirical_covariances", "inference_at_optimum"]


KR_VARIANTS: tuple[str, ...] = ("kenward-roger", "kenward-roger-linear", "kenward-roger-mmrm")
MMRM_DF_METHODS: tuple[str, ...] = DF_METHODS + KR_VARIANTS[1:]


def check_df_options(df: str, kr_information: str, method: str) -> tuple[str, str]:
    """The df / kr_information options, checked against each other and the method."""
    method = choice("method", method, ("reml", "ml"))
    df = choice("df", df, MMRM_DF_METHODS)
    kr_information = choice("kr_information", kr_information, ("observed", "expected"))
    if kr_information == "expected" and df not in KR_VARIANTS:
        raise ModelSpecificationError(
            "kr_information='expected' only applies to df='kenward-roger' (Satterthwaite df use "
            "the observed information, as SAS)"
        )
    if df in KR_VARIANTS and method != "reml":
        raise ModelSpecificationError(
            "Kenward-Roger degrees of freedom need method='reml' (the adjustment is derived for "
            "REML); use df='satterthwaite' with method='ml'"
        )
    return df, kr_information


def inference_at_optimum(engine, grouped, st, H, *, df: str, kr_information: str, n_obs, p):
    """Satterthwaite / Kenward-Roger / residual / asymptotic inference at the optimum."""
    C = st.Minv
    P = W = CA = None
    if df in ("satterthwaite",) + KR_VARIANTS:
        Hinv = np.linalg.inv(H)
        W = 2 * Hinv
        P = engine.jacobian_terms(st.theta)
        if df in KR_VARIANTS:
            kr_info = H if kr_information == "observed" else engine.expected_information(st.theta)
            P, Q, R, W = _kr_in_sas_parameters(engine, grouped, st.theta, P, kr_info)
            if df == "kenward-roger-linear":  # SAS ddfm=kr(linear), R mmrm Kenward-Roger-Linear
                R = None
            elif df == "kenward-roger-mmrm":  # R mmrm's default: R in mmrm's parameters
                P, Q, R, W = _kr_in_mmrm_parameters(engine, grouped, st.theta, P, Q, W)
            CA = kenward_roger_vcov(C, P, Q, R, W)
    return Inference(beta=st.beta, C=C, P=P, W=W, method=df, df_residual=float(n_obs - p), C_adj=CA)


def build_result(prep, engine, fit: dict, *, df: str, kr_information: str, seconds: float):
    """The MixedModelResult of a converged fit of a prepared model."""
    st = fit["state"]
    H = fit["hessian"]
    design = prep.design
    n_obs = len(design.y)
    p = design.X.shape[1]
    grouped = prep._grouped
    inference = inference_at_optimum(
        engine, grouped, st, H, df=df, kr_information=kr_information, n_obs=n_obs, p=p
    )
    if df == "between-within":  # SAS: with REPEATED TYPE=UN only, every effect is "between"
        bw = between_within(
            design.X,
            prep.subject_codes[design.rows],
            design.term_columns,
            all_between=prep.covariance == "us",
        )
        inference = dataclasses.replace(inference, bw=bw)
    info = prep._stats
    n_block_types = sum(len(sc.keys) for sc in info.classes)
    return MixedModelResult(
        formula=prep.formula,
        method=prep.method,
        df_method=df,
        covariance_type=prep.covariance,
        subject=prep.subject,
        visit=prep.visit,
        group=prep.group,
        weights=prep.weights,
        n_obs=n_obs,
        n_subjects=info.n_units,
        n_dropped=design.n_dropped,
        n_subjects_data=prep.n_subjects_data,
        converged=True,
        iterations=fit["iterations"],
        neg2loglik=st.objective,
        n_fixed=p,
        visits=prep.visits,
        group_levels=prep.group_levels,
        _design=design,
        _inference=inference,
        _sigmas=tuple(grouped.sigmas(st.theta)),
        _cov_table=functools.partial(_cov_parameter_table, grouped, st.theta, H),
        _theta=st.theta,
        _gradient=st.gradient,
        fit_info={
            "n_block_types": n_block_types,
            "n_evaluations": engine.n_evals,
            "seconds": seconds,
            "tried": fit["tried"],
        },
        _prepared=prep,
    )


def empirical_covariances(classes, G: int, T: int, units=None) -> list[np.ndarray]:
    """Per group, the covariance of OLS residuals across visits (pairwise), from the pooled
    sufficient statistics alone (no pass over the rows); with ``units`` (the subjects' padded
    rows, :class:`UnitArrays`) from those instead (the same sums, in another order)."""
    if units is not None:
        return _from_sums(*_unit_sums(units, [k for sc in classes for k in sc.keys], G, T))
    p = classes[0].SXX.shape[-1]
    XtX = np.zeros((p, p))
    Xty = np.zeros(p)
    for sc in classes:
        j = np.arange(sc.m)
        XtX += sc.SXX[:, j, j].sum(axis=(0, 1))
        Xty += sc.SXy[:, j, j].sum(axis=(0, 1))
    beta = np.linalg.lstsq(XtX, Xty, rcond=None)[0]
    S = np.zeros((G, T, T))
    N = np.zeros((G, T, T))
    bb = np.outer(beta, beta).reshape(-1)
    for sc in classes:
        B, m = sc.counts.size, sc.m
        Sb = (sc.SXy.reshape(B, m * m, p) @ beta).reshape(B, m, m)
        R = (
            sc.Syy
            - Sb
            - np.swapaxes(Sb, 1, 2)
            + (sc.SXX.reshape(B, m * m, p * p) @ bb).reshape(B, m, m)
        )
        # every block's entries added in block order (as a loop over np.ix_ would), at once
        gs = np.array([g for g, _ in sc.keys], dtype=np.int64)[:, None, None]
        vis = np.array([v for _, v in sc.keys], dtype=np.int64).reshape(B, m)
        at = (gs, vis[:, :, None], vis[:, None, :])
        np.add.at(S, at, R)
        np.add.at(N, at, np.broadcast_to(sc.counts[:, None, None], R.shape))
    return _from_sums(S, N)


def _unit_sums(units, block_keys, G: int, T: int):
    """Residual cross products S and pair counts N per group (G, T, T) of the OLS fit, from
    the subjects' padded rows (zeros at missing visits; frequency weights ``units.weight``)."""
    N_u, _, p = units.X.shape
    f = np.ones(N_u) if units.weight is None else units.weight
    Xf = units.X.reshape(N_u * T, p)
    Xw = Xf * np.repeat(f, T)[:, None]
    beta = np.linalg.lstsq(Xw.T @ Xf, Xw.T @ units.y.reshape(-1), rcond=None)[0]
    r = units.y - units.X @ beta
    observed = np.zeros((len(block_keys), T))  # the visits of each block type (group, visits)
    for b, (_, vis) in enumerate(block_keys):
        observed[b, list(vis)] = 1.0
    seen = observed[units.block]
    ug = np.array([g for g, _ in block_keys], dtype=np.int64)[units.block]
    S, N = np.zeros((G, T, T)), np.zeros((G, T, T))
    for g in range(G):
        sel = ug == g
        rw = r[sel] * f[sel, None]
        S[g] = rw.T @ r[sel]
        mw = seen[sel] * f[sel, None]
        N[g] = mw.T @ seen[sel]
    return S, N


def _from_sums(S: np.ndarray, N: np.ndarray) -> list[np.ndarray]:
    """Per group, S / N with the visits' variances filled where a pair is unobserved."""
    G = S.shape[0]
    out = []
    for g in range(G):
        with np.errstate(invalid="ignore", divide="ignore"):
            C = S[g] / N[g]
        C[N[g] < 2] = np.nan
        d = np.diag(C).copy()
        ok = np.isfinite(d) & (d > 0)
        fill = float(np.mean(d[ok])) if ok.any() else 1.0
        d[~ok] = fill
        C = np.where(np.isfinite(C), C, 0.0)
        np.fill_diagonal(C, d)
        out.append(C)
    return out


def _cov_parameter_table(grouped, theta, H) -> tuple:
    """SAS's covariance parameter table: estimate, standard error and 95% limits.

    Cov(psi) = J (2 H^-1) J' (delta method, J = dpsi/dtheta). Limits as SAS PROC MIXED: for
    variances (UN(i,i), Var(i), Residual, Variance) the Satterthwaite chi-square interval
    nu est / chi2_{nu, 1-a/2} .. nu est / chi2_{nu, a/2} with nu = 2 Z^2, Z = est / se; for
    covariances and correlations the Wald interval est -/+ z se.
    """
    rows = grouped.sas_table(theta)
    try:
        J = np.linalg.inv(grouped_jacobian_inverse(grouped, theta))
        cov = J @ (2 * np.linalg.inv(H)) @ J.T
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:  # pragma: no cover - H was checked positive definite
        se = np.full(len(rows), np.nan)
    z = 1.959963984540054  # stats.norm.ppf(0.975)
    est = np.array([r[2] for r in rows], dtype=float)
    is_var = np.array(
        [
            name.startswith(("Var(", "Residual", "Variance"))
            or (name.startswith("UN(") and name[3:-1].split(",")[0] == name[3:-1].split(",")[1])
            for name, _, _ in rows
        ],
        dtype=bool,
    )
    chi = is_var & (se > 0) & (est > 0)
    lo, hi = est - z * se, est + z * se
    if chi.any():  # one vectorised quantile call per tail
        nu = 2 * (est[chi] / se[chi]) ** 2
        lo[chi] = nu * est[chi] / chi2_ppf(0.975, nu)
        hi[chi] = nu * est[chi] / chi2_ppf(0.025, nu)
    return tuple(
        (name, grp, float(e), float(s_), float(a), float(b))
        for (name, grp, _), e, s_, a, b in zip(rows, est, se, lo, hi)
    )


def _kr_in_sas_parameters(engine, grouped, theta, P_theta, H_theta):
    """P, Q, R, W for Kenward-Roger in SAS's covariance parameterisation psi.

    ``H_theta`` is the observed Hessian of -2 l (SAS) or the expected information on the same
    scale (pbkrtest); both transform as below (the expected one exactly, everywhere).

    With J = dpsi/dtheta: dV/dpsi = dV/dtheta J^-1, so P_psi = J^-T P_theta and the observed
    Hessian transforms as J^-T H J^-1 (exact at the optimum, where the gradient vanishes);
    W = 2 H_psi^-1 is the inverse observed information (SAS, R mmrm). R needs
    d2 Sigma/dpsi2: zero for the linear structures (us, cs, toep), computed by central
    differences otherwise.
    """
    Jinv = grouped_jacobian_inverse(grouped, theta)
    P = np.einsum("kl,kpq->lpq", Jinv, P_theta)
    Q_theta = engine.second_order_terms(theta)
    Q = np.einsum("ka,lb,klpq->abpq", Jinv, Jinv, Q_theta, optimize=True)
    H = Jinv.T @ H_theta @ Jinv
    W = 2 * np.linalg.inv(H)
    R = None
    if grouped.structure.name not in ("us", "cs", "toep"):
        R = _second_derivative_terms(engine, grouped, theta)
    return P, Q, R, W


def _kr_in_mmrm_parameters(engine, grouped, theta, P, Q, W):
    """P, Q, R, W in R mmrm's covariance parameters phi (see
    :mod:`peerstats.models._kr_variants`), from P, Q, W in SAS's parameters psi."""
    from peerstats.models._kr_variants import mmrm_r_terms

    name = grouped.structure.name
    J, R = mmrm_r_terms(
        grouped,
        grouped.sigmas(theta),
        lambda S: _sas_from_sigma(name, S),
        lambda D2: _r_from_d2(engine, grouped, theta, D2),
    )
    P = np.einsum("kl,kpq->lpq", J, P)
    Q = np.einsum("ka,lb,klpq->abpq", J, J, Q, optimize=True)
    Jinv = np.linalg.inv(J)
    W = Jinv @ W @ Jinv.T
    return P, Q, R, W


def grouped_jacobian_inverse(grouped, theta) -> np.ndarray:
    """(dpsi/dtheta)^-1 for the grouped structure (block diagonal over groups)."""
    K = grouped.n_params
    J = np.zeros((K, K))
    st = grouped.structure
    h = 1e-30
    for s in grouped.slices():
        th = theta[s]
        for k in range(len(th)):
            t = th.astype(complex)
            t[k] += 1j * h
            J[s, s.start + k] = _sas_complex(st, t).imag / h
    return np.linalg.inv(J)


def _sas_complex(st, theta) -> np.ndarray:
    """SAS parameters as an analytic function of theta (complex-step friendly)."""
    if hasattr(st, "sas_complex"):  # spatial structures
        return st.sas_complex(theta)
    return _sas_from_sigma(st.name, st.sigma(theta))


def _sas_from_sigma(name: str, S) -> np.ndarray:
    """SAS's covariance parameters of the structure ``name`` from its matrix ``S``."""
    T = S.shape[0]
    d = np.array([S[i, i] for i in range(T)])
    if name == "us":
        return np.array([S[i, j] for i in range(T) for j in range(i + 1)])
    if name == "cs":
        return np.array([S[0, 1], S[0, 0] - S[0, 1]])
    if name == "ar1":
        return np.array([S[0, 0], S[0, 1] / S[0, 0]])
    if name in ("csh", "ar1h"):
        return np.r_[d, S[0, 1] / np.sqrt(d[0] * d[1])]
    if name == "toep":
        return np.r_[[S[0, k] for k in range(1, T)], S[0, 0]]
    if name == "toeph":
        return np.r_[d, [S[0, k] / np.sqrt(d[0] * d[k]) for k in range(1, T)]]
    if name == "ad":
        return np.r_[d[0], [S[k - 1, k] / d[0] for k in range(1, T)]]
    return np.r_[d, [S[k - 1, k] / np.sqrt(d[k - 1] * d[k]) for k in range(1, T)]]


def _second_derivative_terms(engine, grouped, theta) -> np.ndarray:
    """R_hj = X'V^-1 (d2V/dpsi_h dpsi_j) V^-1 X in SAS's parameters psi (Kenward-Roger)."""
    K, p = grouped.n_params, engine.p
    st = grouped.structure
    if hasattr(engine.cov, "block_second_derivatives_sas"):  # spatial: per block type
        R = np.zeros((K, K, p, p))
        d2s = engine.cov.block_second_derivatives_sas(theta)
        for sc, (_, _, Vinv, _), d2 in zip(engine.classes, engine._inverses(theta), d2s):
            B, m = sc.counts.size, sc.m
            A = Vinv[:, None, None] @ d2 @ Vinv[:, None, None]
            A = np.moveaxis(A.reshape(B, K * K, m * m), 0, 1).reshape(K * K, B * m * m)
            R += (A @ sc.SXX.reshape(B * m * m, p * p)).reshape(K, K, p, p)
        return R
    T = st.n_visits
    D2 = np.zeros((len(grouped.levels), K, K, T, T))
    for g, sl in enumerate(grouped.slices()):
        psi = st.sas_parameters(theta[sl])
        D2[g, sl, sl] = st.d2sigma_sas(psi)
    return _r_from_d2(engine, grouped, theta, D2)


def _r_from_d2(engine, grouped, theta, D2) -> np.ndarray:
    """R_hj = X'V^-1 D2_hj V^-1 X from per-group second derivatives D2 (G, K, K, T, T)."""
    K, p = grouped.n_params, engine.p
    R = np.zeros((K, K, p, p))
    inv = engine._inverses(theta)
    for sc, (_, _, Vinv, _), (gs, vis) in zip(engine.classes, inv, engine.cov._index):
        B, m = sc.counts.size, sc.m
        d2 = D2[
            gs[:, None, None, None, None],
            np.arange(K)[None, :, None, None, None],
            np.arange(K)[None, None, :, None, None],
            vis[:, None, None, :, None],
            vis[:, None, None, None, :],
        ]  # (B, K, K, m, m)
        A = Vinv[:, None, None] @ d2 @ Vinv[:, None, None]
        A = np.moveaxis(A.reshape(B, K * K, m * m), 0, 1).reshape(K * K, B * m * m)
        R += (A @ sc.SXX.reshape(B * m * m, p * p)).reshape(K, K, p, p)
    return R
