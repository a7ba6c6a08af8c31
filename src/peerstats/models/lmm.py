"""Linear mixed models with lme4-style random effects, on the shared REML engine.

``peerstats.lmm`` fits ``y = X beta + Z b + e`` with ``b ~ N(0, G)`` (one unstructured ``G_t``
per random term, as lme4) and ``e ~ N(0, R)``, where ``R`` is iid (optionally with one variance
per level of ``residual_by``, nlme ``varIdent``) or a covariance structure across visits as in
:func:`peerstats.mmrm`. The marginal model ``y ~ N(X beta, Z G Z' + R)`` is fitted by the same
engine interface as the MMRM (:mod:`peerstats.models._reml`), with the covariance model of
:mod:`peerstats.models._rancov`. With independent residuals (the partially nested models of
peer-support trials) the engine is :class:`peerstats.models._lmm_engine.LMMEngine`: closed-form
gradient, observed and expected information (:mod:`peerstats.models._lmm_likelihood`), a
profiled start and projected Newton steps that reach a zero variance directly (issue 22.1).

The steps: :mod:`._lmm_setup` (options, designs, residual layout), :mod:`._lmm_fit` (blocks,
engine, boundary refits), :mod:`._lmm_output` (singular warnings, inference, BLUPs, variance
components, ICC), :mod:`._lmm_result` (the result class).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from peerstats.models._lmm_fit import fit_covariance
from peerstats.models._lmm_output import blups, icc, inference, singular_terms, variance_components
from peerstats.models._lmm_result import LMMResult
from peerstats.models._lmm_setup import check_options, prepare

__all__ = ["lmm", "LMMResult"]

ResidualName = Literal["iid", "us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "adh"]
MethodName = Literal["reml", "ml"]
DfName = Literal["satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"]
VcovName = Literal["model", "empirical", "empirical-bias-reduced", "jackknife"]


def _single_threaded_blas():
    """Limit BLAS to one thread while fitting (the engine works on many small matrices, where
    OpenBLAS threading only adds overhead, badly so on a loaded machine). Uses the engine's
    cached threadpoolctl controller: a new ``threadpool_limits`` scans the loaded libraries,
    ~5-10 ms per call."""
    from peerstats.models._reml import blas_threads

    return blas_threads()


def lmm(
    formula: str,
    data: pd.DataFrame,
    *,
    residual: ResidualName = "iid",
    residual_by: str | None = None,
    subject: str | None = None,
    visit: str | None = None,
    method: MethodName = "reml",
    df: DfName = "satterthwaite",
    reference: Mapping[str, str] | None = None,
    kr_information: Literal["observed", "expected"] = "observed",
    vcov: VcovName = "model",
    start: np.ndarray | None = None,
) -> LMMResult:
    """Fit a linear mixed model with lme4-style random effects by REML or ML.

    Parameters
    ----------
    formula : str
        Fixed effects plus random terms, e.g.
        ``"qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group)"``. Random terms:
        ``(1 | g)``, ``(0 + x | g)`` (x numeric, e.g. a 0/1 arm indicator: the partially nested
        design), ``(1 + x | g)`` (correlated, unstructured ``G``), nested ``(1 | a/b)`` (=
        ``(1 | a) + (1 | a:b)``). A row may have a missing grouping value only where the term
        is zero (e.g. controls in ``(0 + peer | group)``).
    data : DataFrame
        One row per observation. Rows with a missing outcome are dropped and counted.
    residual : {"iid", "us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "adh"}
        ``iid`` (default): independent residuals. Otherwise a covariance across visits within
        subject as in :func:`peerstats.mmrm` (needs ``subject`` and ``visit``).
    residual_by : str, optional
        Column with separate residual variances per level (nlme ``varIdent(~ 1 | col)``); with
        a residual structure, separate structure parameters per level (SAS ``group=``).
    subject, visit : str, optional
        Subject and visit columns, required for a residual structure. With ``residual="iid"``
        ``subject`` is only used to count subjects (``n_subjects``; otherwise the number of
        independent clusters). With a residual structure the visit column is a factor wherever
        it appears in the formula, also when stored as numbers (as in :func:`peerstats.mmrm`
        and SAS CLASS); with ``residual="iid"`` the formula decides, as in lme4 (a numeric
        column is a linear trend).
    method : {"reml", "ml"}
    df : {"satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"}
        Satterthwaite as lmerTest; Kenward-Roger in the variance/covariance parameterisation
        (linear in V, as pbkrtest and SAS); ``residual`` n_obs - rank(X); ``between-within``
        as SAS DDFM=BETWITHIN with the independent clusters (the highest grouping level) as
        subjects; ``asymptotic`` normal / chi-square. With an empirical ``vcov``,
        ``satterthwaite`` is the df of Pustejovsky & Tipton (2018) (clubSandwich).
    reference : mapping, optional
        Reference level per factor, e.g. ``{"arm": "usual"}``.
    kr_information : {"observed", "expected"}
        Information matrix whose inverse estimates cov(theta_hat) in Kenward-Roger: the observed
        REML information (default; SAS PROC MIXED ``ddfm=kr`` and :func:`peerstats.mmrm`) or
        the expected information (pbkrtest / lmerTest ``ddf = "Kenward-Roger"``).

    vcov : {"model", "empirical", "empirical-bias-reduced", "jackknife"}
        Covariance of the fixed effects used by every test: model-based, or the CR0 / CR2
        (Bell-McCaffrey) / CR3 (jackknife) sandwich clustered by the independent clusters of the
        highest grouping level, as :func:`peerstats.mmrm` (validated against clubSandwich on
        ``nlme::lme``, tests/reference/r_sandwich/).

    start : array, optional
        Variance parameters to start the optimiser from: the ``_theta`` of an earlier fit of
        the same model (e.g. the primary fit, when refitting it on imputed datasets); the
        optimum is the same, reached in fewer iterations. Default: moment-based starts.
    Returns
    -------
    LMMResult
        ``coef``, ``loglik``, ``emmeans()``, ``contrasts()``, ``anova()``, ``summary()`` as
        :func:`peerstats.mmrm`, plus ``variance_components``, ``icc``, ``random_effects``,
        ``singular``.

    Raises
    ------
    ModelSpecificationError
        Bad options or formula, missing columns or covariates, rank-deficient fixed design,
        a random term with missing grouping values where it is not zero.
    ConvergenceError
        The optimiser did not converge (``.tried``, ``.gradient``).

    Warns
    -----
    SingularFitWarning
        A variance component is estimated at zero (or a random-effect covariance matrix is
        singular); the fit is returned with ``singular=True`` and the component named.

    Notes
    -----
    The marginal model is y ~ N(X beta, V), V = Z G Z' + R, block diagonal over independent
    clusters; -2 l_REML = sum_b log|V_b| + log|X'V^-1X| + r'V^-1 r + (n - p) log 2 pi (lme4's
    REML criterion and nlme's REML log-likelihood; ML drops the second term and uses n).
    G_t = L_t L_t' with an unconstrained Cholesky factor; with independent residuals a
    one-column term (random intercept, ``(0 + peer | group)``) is optimised in its variance
    sigma^2_t >= 0 by projected Newton-Raphson with the closed-form observed information (Fisher
    scoring where it is not positive definite), from the start rescaled by the profiled residual
    scale, so a variance at zero is reached in a few steps (Karush-Kuhn-Tucker: held at 0 while
    d(-2l)/dsigma^2_t >= 0). A variance component whose relative standard deviation falls below
    1e-4 (lme4's ``isSingular`` tolerance) is fixed at zero and the rest refitted. Random effects are
    the BLUPs G Z' V^-1 (y - X beta). Satterthwaite df use the observed information of the
    covariance parameters (lmerTest); Kenward-Roger (Kenward & Roger 1997) works in the
    variance/covariance parameterisation psi (V linear in psi, so no second-derivative term)
    with W = 2 I(psi)^-1, I the observed REML information by default (SAS) or the expected one
    (pbkrtest, ``kr_information="expected"``).

    Validated against lme4 + lmerTest + pbkrtest and nlme::lme (varIdent, corSymm, corAR1):
    tests/reference/r_lmm/ and tests/reference/r_lmm_extra/.

    Examples
    --------
    >>> fit = peerstats.lmm("qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group)",
    ...                     data, residual_by="arm")  # doctest: +SKIP
    >>> fit.variance_components  # doctest: +SKIP
    """
    with _single_threaded_blas():
        return _lmm(
            formula,
            data,
            residual=residual,
            residual_by=residual_by,
            subject=subject,
            visit=visit,
            method=method,
            df=df,
            reference=reference,
            kr_information=kr_information,
            vcov=vcov,
            start=start,
        )


def _lmm(formula, data, **options) -> LMMResult:
    """The steps of :func:`lmm`: check, prepare the designs, fit the covariance, then
    singularity, inference, random effects and the result."""
    t0 = time.perf_counter()
    opt, fixed, terms = check_options(formula, data, **options)
    d = prepare(data, opt, fixed, terms)
    return fit_prepared(formula, data, opt, d, t0)


def fit_prepared(formula, data, opt, d, t0: float) -> LMMResult:
    """The fit and the result of :func:`lmm` from checked options and prepared designs ``d``
    (shared by :class:`peerstats.models._lmm_prepared.PreparedLMM`, which reuses ``d`` with a
    new response)."""
    fc = fit_covariance(d, opt.method, opt.start)
    Gs = fc.cov.G_list(fc.theta_full)
    singular, warn_msgs = singular_terms(d, Gs)
    inf = inference(fc, d, opt)
    ranef, diagV = blups(fc, d, Gs)
    n_groups: dict[str, int] = {}
    for t, rd in zip(d.terms, d.rdesigns):
        n_groups.setdefault(t.group, rd.n_levels)
    sigmas: tuple = ()
    cov_table: tuple = ()
    if d.structure is not None:
        th_r = fc.theta_full[fc.cov.n_re :]
        sigmas = tuple(d.structure.sigmas(th_r))
        cov_table = tuple(d.structure.sas_table(th_r))
    st, subject, layout = fc.state, opt.subject, fc.layout
    structured = opt.residual != "iid"
    return _make_result(
        dict(
            formula=formula, method=opt.method, df_method=opt.df, covariance_type=opt.residual,
            subject=subject, visit=opt.visit, group=opt.residual_by if structured else None,
            weights=None, n_obs=d.n_obs, n_dropped=d.design.n_dropped, converged=True,
            n_subjects=(
                int(pd.Series(d.used[subject]).nunique()) if subject is not None
                else layout.n_blocks
            ),
            iterations=fc.fit["iterations"], neg2loglik=st.objective, n_fixed=d.p,
            visits=tuple(str(v) for v in d.visit_levels),
            group_levels=tuple(d.res_levels) if (structured and opt.residual_by) else (),
            _design=d.design, _inference=inf, _sigmas=sigmas, _cov_table=cov_table,
            _theta=st.theta, _gradient=st.gradient, warnings=tuple(warn_msgs),
            fit_info={
                "n_block_types": layout.n_block_types, "n_blocks": layout.n_blocks,
                "n_evaluations": fc.n_evals + fc.engine.n_evals, "seconds": time.perf_counter() - t0,
                "tried": fc.tried, "n_cov_params": fc.cov.n_full,
            },
            random_terms=tuple(str(t) for t in d.terms), residual=opt.residual,
            residual_by=opt.residual_by, singular=bool(singular),
            singular_components=tuple(singular), n_clusters=layout.n_blocks,
            vcov_method=opt.vcov, _vc=tuple(variance_components(fc, d, Gs, opt)),
            _icc=tuple(icc(d, Gs, diagV)), _blups=ranef, _n_groups=tuple(n_groups.items()),
            n_subjects_data=(
                int(data[subject].nunique()) if subject is not None else layout.n_blocks
            ),
        )  # fmt: skip
    )


def _make_result(kwargs: dict) -> LMMResult:
    """Build the result, tolerating base-class fields added later (filled with None)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(LMMResult)}
    for f in dataclasses.fields(LMMResult):
        if (
            f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            kwargs[f.name] = None
    return LMMResult(**{k: v for k, v in kwargs.items() if k in names})


def _lmm_defaults(options: dict) -> dict:
    """The keyword options of :func:`lmm` with its defaults filled in (``start`` excluded)."""
    import inspect

    from peerstats.exceptions import ModelSpecificationError

    params = inspect.signature(lmm).parameters
    bad = [k for k in options if k not in params or k in ("formula", "data", "start")]
    if bad:
        raise ModelSpecificationError(
            f"unknown lmm option(s) {bad}; valid: {[k for k in params][2:]}"
        )
    return {
        k: options.get(k, p.default)
        for k, p in params.items()
        if k not in ("formula", "data", "start")
    }
