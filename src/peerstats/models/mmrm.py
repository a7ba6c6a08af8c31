"""Mixed model for repeated measures (MMRM), as SAS PROC MIXED with a REPEATED statement.

``peerstats.mmrm`` fits y_i ~ N(X_i beta, Sigma_i) independently over subjects, where Sigma_i is
the structured covariance across visits (``us``, ``cs``, ``csh``, ``ar1``, ``ar1h``, ``toep``,
``toeph``, ``ad``, ``adh``) restricted to the visits subject i attended, or a spatial covariance
of subject-specific times (``sp_exp``, ``sp_gau``, ``sp_pow`` with ``time=``), optionally with
separate parameters per level of ``group`` (SAS ``group=``) and weights (SAS ``WEIGHT``:
Sigma_i = W_i^-1/2 Sigma W_i^-1/2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._ddf import DF_METHODS, Inference, between_within, kenward_roger_vcov
from peerstats.models._sandwich import check_vcov, mmrm_blocks, sandwich_inference
from peerstats.models.prepared import (
    CovarianceName,
    DfName,
    MethodName,
    choice,
    prepare_mmrm,
)
from peerstats.models.results import MixedModelResult

__all__ = ["mmrm"]

VcovName = Literal["model", "empirical", "empirical-bias-reduced", "jackknife"]
# structures whose Sigma is indexed by visit (the empirical covariance's blocks rely on it)
_VISIT_INDEXED = ("us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "adh", "ad")


def mmrm(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    covariance: CovarianceName = "us",
    group: str | None = None,
    weights: str | None = None,
    method: MethodName = "reml",
    df: DfName = "satterthwaite",
    reference: Mapping[str, str] | None = None,
    kr_information: Literal["observed", "expected"] = "observed",
    vcov: VcovName = "model",
    time: str | Sequence[str] | None = None,
) -> MixedModelResult:
    """Fit a mixed model for repeated measures (MMRM) by REML or ML.

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"FEV1 ~ RACE + SEX + ARMCD * AVISIT"``. Categorical columns use
        treatment coding with the first level (pandas Categorical order, else sorted) as
        reference.
    data : DataFrame
        Long data: one row per subject and visit. Rows with a missing outcome are dropped and
        counted (``n_dropped``); missing values in any other model column are an error.
    subject, visit : str
        Columns identifying the subject and the visit. Visit order (for ``ar1``, ``toep``,
        ``adh`` ... and the rows of ``covariance``) is the Categorical order, else sorted. The
        visit (and ``group``) column is a factor wherever it appears in the formula, also when
        stored as numbers (as a SAS CLASS variable): ``"y ~ arm * visit"`` has one mean per
        arm and visit, never a linear trend.
    covariance : {"us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh", "sp_exp", \
"sp_gau", "sp_pow"}
        Residual covariance across visits (SAS ``type=UN, CS, CSH, AR(1), ARH(1), TOEP, TOEPH,
        ANTE(1)``; ``ad`` is homogeneous antedependence, one variance and T-1 correlations, as
        R mmrm's ``ad``), or spatial in ``time`` (SAS ``type=SP(EXP)(time)``, ``SP(GAU)``,
        ``SP(POW)``: sigma^2 exp(-d/rho), sigma^2 exp(-d^2/rho^2), sigma^2 rho^d, d the
        Euclidean distance between a subject's times; see :mod:`peerstats.models._spatial`).
    group : str, optional
        Column (constant within subject, usually the arm) with separate covariance parameters
        per level (SAS ``group=``).
    weights : str, optional
        Column of positive weights (SAS ``WEIGHT``).
    method : {"reml", "ml"}
    df : {"satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"}
        Denominator degrees of freedom for t and F tests (SAS ``ddfm=``). ``residual`` is
        n_obs - rank(X) (SAS DDFM=RESIDUAL); ``between-within`` as SAS DDFM=BETWITHIN (with
        ``covariance="us"`` every effect gets the between-subject df, as SAS); ``asymptotic``
        uses the normal / chi-square distributions. With an empirical ``vcov``,
        ``satterthwaite`` means the df of Bell & McCaffrey / Pustejovsky & Tipton (clubSandwich)
        and multi-row tests use their HTZ test; Kenward-Roger is not available.
    reference : mapping, optional
        Reference level per factor, e.g. ``{"ARMCD": "PBO"}``.
    kr_information : {"observed", "expected"}
        Only with ``df="kenward-roger"``: the information matrix whose inverse estimates the
        covariance of the covariance parameters. ``"observed"`` (default) as SAS PROC MIXED and
        R mmrm; ``"expected"`` as pbkrtest / lmerTest (validated against pbkrtest on the
        compound-symmetry model, tests/reference/r_mmrm/).
    vcov : {"model", "empirical", "empirical-bias-reduced", "jackknife"}
        Covariance of the fixed effects used by every test, interval, marginal mean, contrast
        and ``anova``: ``model`` (X'V^-1X)^-1; ``empirical`` the CR0 sandwich clustered by
        subject (SAS ``EMPIRICAL``); ``empirical-bias-reduced`` Bell-McCaffrey CR2;
        ``jackknife`` CR3. SAS's default df with EMPIRICAL is ``df="between-within"``.
        Validated against R clubSandwich on nlme::gls fits (tests/reference/r_sandwich/); see
        :mod:`peerstats.models._sandwich`.
    time : str or list of str, optional
        Only (and required) with a spatial ``covariance``: a numeric column of subject-specific
        times, or several coordinate columns (Euclidean distance, SAS ``sp(exp)(c1 c2)``).
        Missing times on analysed rows and repeated times within a subject are errors. The
        ``covariance`` property then shows the covariance at each visit's mean time.

    Returns
    -------
    MixedModelResult
        ``coef``, ``covariance``, ``correlation``, ``cov_parameters``, ``loglik``, ``aic``,
        ``bic``, ``emmeans()``, ``contrasts()``, ``anova()``, ``summary()``.

    Raises
    ------
    ModelSpecificationError
        Unknown options, missing columns or covariates, rank-deficient design, duplicated
        subject-visit rows, a visit or group level without data.
    ConvergenceError
        The optimiser did not converge or the covariance is singular (``.tried``,
        ``.gradient``).

    Notes
    -----
    REML: -2 l = sum_i log|Sigma_i| + log|X'V^-1X| + r'V^-1 r + (n - p) log 2 pi (ML drops the
    second term and uses n; with weights, - sum log w is added, as SAS). Minimised from the
    covariance of OLS residuals by Fisher scoring, then Newton-Raphson with the observed
    Hessian, both in closed form (Wolfinger, Tobias & Sall 1994; checked against finite
    differences in tests/models/test_reml_derivatives.py); the sufficient statistics are pooled
    per (group, missingness pattern), so an iteration costs the same for 200 or 1,000,000
    subjects. ``peerstats.prepare_mmrm`` builds the same model once for cheap refits.
    Converged when the Newton decrement g'H^-1g < max(1e-9, 1e-12 |-2 l|) (SAS's default is
    a relative 1e-8: our -2 log-likelihood is at or below SAS's in every reference listing).
    ``n_subjects`` counts subjects with at least one observed outcome; BIC uses the number of
    subjects in the data, as SAS.

    Satterthwaite df as SAS PROC MIXED: the covariance of the covariance parameters is the
    inverse observed information (Hessian of the REML/ML criterion); multi-row F tests follow
    Fai & Cornelius (1996) as SAS. Kenward-Roger (Kenward & Roger 1997): adjusted covariance of
    beta and scaled F, with W = inverse *observed* information as SAS and R mmrm (so a single
    contrast's KR df equal its Satterthwaite df; pbkrtest/lmerTest use the expected information
    and differ by a few percent in df). Computed in SAS's covariance parameterisation: linear
    for ``us`` (UN(i,j)), ``cs`` (CS, Residual) and ``toep`` (TOEP(k), Residual), so the
    second-derivative term R vanishes (SAS ``ddfm=kr`` and ``kr(firstorder)`` coincide); for the
    non-linear structures (csh, ar1, ar1h, toeph, adh: variances and correlations) R is
    included by central differences, as SAS ``ddfm=kr`` (not ``kr(firstorder)``). Only REML.

    Validated against SAS PROC MIXED listings on the FEV data (tests/reference/sas_fev/:
    estimates, SEs, covariance parameters, -2 log-likelihood, Satterthwaite df, LSMEANS and
    their differences) and against R (tests/reference/r_mmrm/).

    Examples
    --------
    >>> fit = peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", fev, subject="USUBJID",
    ...                      visit="AVISIT", covariance="us", reference={"ARMCD": "PBO"})
    >>> fit.contrasts(arm="ARMCD", by="AVISIT")  # doctest: +SKIP
    """
    df, kr_information = check_df_options(df, kr_information, method)
    vcov = check_vcov(vcov, df)
    prep = prepare_mmrm(
        formula,
        data,
        subject=subject,
        visit=visit,
        covariance=covariance,
        group=group,
        weights=weights,
        method=method,
        reference=reference,
        time=time,
    )
    return with_vcov(prep.fit(df=df, kr_information=kr_information), vcov)


def with_vcov(result: MixedModelResult, vcov: str) -> MixedModelResult:
    """``result`` with the empirical covariance ``vcov`` (clustered by subject) in every test."""
    if vcov == "model":
        return result
    prep = result._prepared
    if result.covariance_type not in _VISIT_INDEXED and not hasattr(prep, "subject_sigmas"):
        # the blocks below index one Sigma per group by visit; structures whose covariance
        # depends on subject-specific times need their own per-subject V (spatial: below)
        raise ModelSpecificationError(
            f"vcov={vcov!r} is not available with covariance={result.covariance_type!r} yet; "
            f"use one of {list(_VISIT_INDEXED)} or vcov='model'"
        )
    design = result._design
    rows = design.rows
    w = None if prep._row_weights is None else prep._row_weights[rows]
    # spatial structures: each subject's own covariance at its times (issue 10.5)
    sigmas, key = result._sigmas, prep.group_codes[rows]
    if hasattr(prep, "subject_sigmas"):
        sigmas, key = prep.subject_sigmas(result._theta), prep.subject_codes[rows]
    blocks = mmrm_blocks(
        design.X,
        design.y,
        result._inference.beta,
        prep.subject_codes[rows],
        prep.visit_codes[rows],
        key,
        sigmas,
        w,
    )
    inference = sandwich_inference(result._inference, vcov, blocks)
    return dataclasses.replace(result, _inference=inference, vcov_method=vcov)


def check_df_options(df: str, kr_information: str, method: str) -> tuple[str, str]:
    """The df / kr_information options, checked against each other and the method."""
    method = choice("method", method, ("reml", "ml"))
    df = choice("df", df, DF_METHODS)
    kr_information = choice("kr_information", kr_information, ("observed", "expected"))
    if kr_information == "expected" and df != "kenward-roger":
        raise ModelSpecificationError(
            "kr_information='expected' only applies to df='kenward-roger' (Satterthwaite df use "
            "the observed information, as SAS)"
        )
    if df == "kenward-roger" and method != "reml":
        raise ModelSpecificationError(
            "Kenward-Roger degrees of freedom need method='reml' (the adjustment is derived for "
            "REML); use df='satterthwaite' with method='ml'"
        )
    return df, kr_information


def inference_at_optimum(engine, grouped, st, H, *, df: str, kr_information: str, n_obs, p):
    """Satterthwaite / Kenward-Roger / residual / asymptotic inference at the optimum."""
    C = st.Minv
    P = W = CA = None
    if df in ("satterthwaite", "kenward-roger"):
        Hinv = np.linalg.inv(H)
        W = 2 * Hinv
        P = engine.jacobian_terms(st.theta)
        if df == "kenward-roger":
            kr_info = H if kr_information == "observed" else engine.expected_information(st.theta)
            P, Q, R, W = _kr_in_sas_parameters(engine, grouped, st.theta, P, kr_info)
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
        _cov_table=_cov_parameter_table(grouped, st.theta, H),
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


def empirical_covariances(classes, G: int, T: int) -> list[np.ndarray]:
    """Per group, the covariance of OLS residuals across visits (pairwise), from the pooled
    sufficient statistics alone (no pass over the rows)."""
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
        for b, (g, vis) in enumerate(sc.keys):
            ix = np.ix_(vis, vis)
            S[g][ix] += R[b]
            N[g][ix] += sc.counts[b]
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
    from scipy import stats

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
        lo[chi] = nu * est[chi] / stats.chi2.ppf(0.975, nu)
        hi[chi] = nu * est[chi] / stats.chi2.ppf(0.025, nu)
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
    S = st.sigma(theta)
    T = st.n_visits
    name = st.name
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
