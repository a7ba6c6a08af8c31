"""Linear mixed models with lme4-style random effects, on the shared REML engine.

``peerstats.lmm`` fits ``y = X beta + Z b + e`` with ``b ~ N(0, G)`` (one unstructured ``G_t``
per random term, as lme4) and ``e ~ N(0, R)``, where ``R`` is iid (optionally with one variance
per level of ``residual_by``, nlme ``varIdent``) or a covariance structure across visits as in
:func:`peerstats.mmrm`. The marginal model ``y ~ N(X beta, Z G Z' + R)`` is fitted by the same
engine as the MMRM (:mod:`peerstats.models._reml`), with the covariance model of
:mod:`peerstats.models._rancov`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import (
    ConvergenceError,
    ModelSpecificationError,
    SingularFitWarning,
)
from peerstats.models._covariance import STRUCTURES, GroupedCovariance, make_structure
from peerstats.models._ddf import DF_METHODS, Inference, between_within, kenward_roger_vcov
from peerstats.models._design import (
    as_categorical,
    build_fixed_design,
    check_empty_levels,
    required_variables,
)
from peerstats.models._rancov import LinearRandomCovariance, RandomCovariance, build_blocks
from peerstats.models._random import RandomTerm, build_random_design, split_formula
from peerstats.models._reml import REMLEngine
from peerstats.models._sandwich import check_vcov, layout_blocks, sandwich_inference
from peerstats.models.results import MixedModelResult

__all__ = ["lmm", "LMMResult"]

ResidualName = Literal["iid", "us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "adh"]
MethodName = Literal["reml", "ml"]
DfName = Literal["satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"]
VcovName = Literal["model", "empirical", "empirical-bias-reduced", "jackknife"]
_KR_LINEAR = ("iid", "us", "cs", "toep")
_SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the relative Cholesky factor


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ModelSpecificationError(
            f"{name}={value!r} is not valid; choose one of {list(choices)}"
        )
    return value.lower()


@dataclass(frozen=True, repr=False, eq=False)
class LMMResult(MixedModelResult):
    """A fitted linear mixed model: the :class:`MixedModelResult` interface plus random effects.

    Create with :func:`peerstats.lmm`; do not instantiate directly. Adds
    :attr:`variance_components`, :attr:`icc`, :attr:`random_effects`, :attr:`singular` and
    :attr:`n_groups`.
    """

    random_terms: tuple[str, ...] = ()
    residual: str = "iid"
    residual_by: str | None = None
    singular: bool = False
    singular_components: tuple[str, ...] = ()
    n_clusters: int = 0
    _vc: tuple = ()
    _icc: tuple = ()
    _blups: Any = None
    _n_groups: tuple = ()

    # ---- random effects --------------------------------------------------------------------
    @property
    def variance_components(self) -> pd.DataFrame:
        """Variances (and covariances) of the random effects and the residual variance(s).

        Columns ``group, term, term2, variance, sd``: one row per variance (``term2`` empty,
        ``sd`` its square root) and per covariance (``term2`` the second term, ``variance`` the
        covariance, ``sd`` the correlation), as ``as.data.frame(VarCorr(fit))`` in lme4.
        Residual rows have ``group == "Residual"`` and, with ``residual_by``, ``term``
        ``"<column>=<level>"``.
        """
        return pd.DataFrame(list(self._vc), columns=["group", "term", "term2", "variance", "sd"])

    @property
    def icc(self) -> pd.Series:
        """Intraclass correlation per grouping factor.

        The share of an observation's marginal variance due to the grouping factor, averaged
        over the observations the term applies to: sigma^2_g / (sum of variances + residual)
        for random intercepts, and for the partially nested ``(0 + peer | group)`` the ICC among
        participants of the same delivery group, var(group) / (var(group) + other variances of
        those participants + their residual variance).
        """
        return pd.Series(dict(self._icc), name="icc", dtype=float)

    @property
    def random_effects(self) -> pd.DataFrame:
        """Predicted random effects (BLUPs, lme4 ``ranef``): ``group, level, term, estimate``."""
        return self._blups.copy()

    @property
    def n_groups(self) -> pd.Series:
        """Number of levels of each grouping factor."""
        return pd.Series(dict(self._n_groups), name="n_levels", dtype=int)

    # ---- fit statistics (lme4 conventions) ---------------------------------------------------
    @property
    def n_cov_params(self) -> int:
        """Number of covariance parameters (including those estimated at a boundary)."""
        return int(self.fit_info.get("n_cov_params", len(self._theta)))

    @property
    def aic(self) -> float:
        """AIC as lme4/nlme: -2 loglik + 2 (fixed effects + covariance parameters)."""
        return self.neg2loglik + 2 * (self.n_fixed + self.n_cov_params)

    @property
    def bic(self) -> float:
        """BIC as lme4: -2 loglik + log(n_obs) (fixed effects + covariance parameters)."""
        return self.neg2loglik + np.log(self.n_obs) * (self.n_fixed + self.n_cov_params)

    @property
    def covariance(self) -> pd.DataFrame | dict[str, pd.DataFrame] | None:
        """Residual covariance across visits (with a residual structure), else None."""
        if self.residual == "iid":
            return None
        return super().covariance

    @property
    def correlation(self) -> pd.DataFrame | dict[str, pd.DataFrame] | None:
        """Residual correlation across visits (with a residual structure), else None."""
        if self.residual == "iid":
            return None
        return super().correlation

    @property
    def cov_parameters(self) -> pd.DataFrame:
        """Covariance parameters: the variance components, then residual structure parameters."""
        vc = self.variance_components
        rows = [
            (f"{r.group}: {r.term}" + (f", {r.term2}" if r.term2 else ""), None, r.variance)
            for r in vc.itertuples()
        ]
        rows += list(self._cov_table)
        return pd.DataFrame(rows, columns=["parameter", "group", "estimate"])

    # ---- display ----------------------------------------------------------------------------
    def _header(self) -> list[tuple[str, str]]:
        res = self.residual + (f", by {self.residual_by}" if self.residual_by else "")
        groups = ", ".join(f"{k}: {v}" for k, v in self._n_groups)
        head = [
            ("Model", f"LMM  {self.formula}"),
            ("Residual", res),
            ("Method / df", f"{self.method.upper()} / {self.df_method}"),
            ("Observations", f"{self.n_obs} used, {self.n_dropped} dropped (missing outcome)"),
            ("Groups", groups),
            ("-2 log-lik / AIC / BIC", f"{self.neg2loglik:.4f} / {self.aic:.4f} / {self.bic:.4f}"),
            (
                "Converged",
                f"{self.converged} ({self.iterations} iterations)"
                + (f"; singular: {', '.join(self.singular_components)}" if self.singular else ""),
            ),
        ]
        return head

    def summary(self) -> str:
        """A plain-text report: model, fit statistics, coefficients, variance components."""
        lines = [f"{k:<24}{v}" for k, v in self._header()]
        lines += ["", "Fixed effects", self.coef.to_string(float_format=lambda x: f"{x:.4g}")]
        lines += [
            "",
            "Variance components",
            self.variance_components.fillna("").to_string(
                index=False, float_format=lambda x: f"{x:.5g}"
            ),
        ]
        if self._cov_table:
            lines += [
                "",
                "Residual covariance parameters",
                pd.DataFrame(
                    list(self._cov_table), columns=["parameter", "group", "estimate"]
                ).to_string(index=False, float_format=lambda x: f"{x:.5g}"),
            ]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"  {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self._header()
        )
        coef = self.coef.to_html(float_format=lambda x: f"{x:.4g}")
        vc = self.variance_components.fillna("").to_html(
            index=False, float_format=lambda x: f"{x:.5g}"
        )
        warn = "".join(f"<p>{html.escape(w)}</p>" for w in self.warnings)
        return (
            f"<div><table>{head}</table><h4>Fixed effects</h4>{coef}"
            f"<h4>Variance components</h4>{vc}{warn}</div>"
        )


def _single_threaded_blas():
    """Limit BLAS to one thread while fitting (the engine works on many small matrices, where
    OpenBLAS threading only adds overhead, badly so on a loaded machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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
    G_t = L_t L_t' with an unconstrained Cholesky factor, so a variance at zero is reached as an
    ordinary minimum; a variance component whose relative standard deviation falls below 1e-4
    (lme4's ``isSingular`` tolerance) is fixed at zero and the rest refitted. Random effects are
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


def _lmm(
    formula,
    data,
    *,
    residual,
    residual_by,
    subject,
    visit,
    method,
    df,
    reference,
    kr_information,
    vcov="model",
    start=None,
):
    t0 = time.perf_counter()
    kr_information = _choice("kr_information", kr_information, ("observed", "expected"))
    residual = _choice("residual", residual, ("iid", *STRUCTURES))
    method = _choice("method", method, ("reml", "ml"))
    df = _choice("df", df, DF_METHODS)
    vcov = check_vcov(vcov, df)
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not isinstance(formula, str):
        raise ModelSpecificationError(f"formula must be a string, not {type(formula).__name__}")
    fixed, terms = split_formula(formula)
    if not terms:
        raise ModelSpecificationError(
            f"formula {formula!r} has no random term such as (1 | id); use peerstats.mmrm for "
            "a model with only a residual covariance"
        )
    if residual != "iid" and (subject is None or visit is None):
        raise ModelSpecificationError(
            f"residual={residual!r} needs subject= and visit= (the structure is across visits "
            "within subject)"
        )
    if df == "kenward-roger" and residual not in _KR_LINEAR:
        raise ModelSpecificationError(
            f"df='kenward-roger' with residual={residual!r} is not available (only with "
            f"residual in {list(_KR_LINEAR)}, whose covariance is linear in its parameters); "
            "use df='satterthwaite'"
        )
    for name, col in (("residual_by", residual_by), ("subject", subject), ("visit", visit)):
        if col is not None and (not isinstance(col, str) or col not in data.columns):
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )
    # the variables of the random terms' left-hand sides must be present and non-missing
    lhs_vars: list[str] = []
    for t in terms:
        rhs = t.lhs
        if rhs.replace(" ", "") in ("1", "0", "-1"):
            continue
        lhs_vars += [v for v in required_variables(rhs) if v not in lhs_vars]
    group_cols = sorted({c for t in terms for c in t.group_columns})
    missing = [c for c in group_cols if c not in data.columns]
    if missing:
        raise ModelSpecificationError(
            f"grouping column(s) {missing} not found in data; columns are {list(data.columns)}"
        )
    extra = list(
        dict.fromkeys([*lhs_vars, *[c for c in (residual_by, subject, visit) if c is not None]])
    )
    if residual != "iid" and not isinstance(data[visit].dtype, pd.CategoricalDtype):
        # as in mmrm (SAS CLASS): the visit is a factor, also when stored as numbers
        data = data.assign(**{visit: as_categorical(data[visit], name=visit)})
    design = build_fixed_design(fixed, data, extra_columns=extra, reference=reference)
    check_empty_levels(design, data)
    used = design.data
    n_obs = len(used)
    p = design.X.shape[1]
    if n_obs - p <= 0:
        raise ModelSpecificationError(
            f"{n_obs} observations for {p} fixed effects: no residual degrees of freedom"
        )

    rows = getattr(design, "rows", None)
    rdata = data.iloc[np.asarray(rows)] if rows is not None else data.loc[used.index]
    # only the columns the random terms use; Arrow-backed strings as objects (much faster to
    # label and factorise row by row)
    rcols = list(dict.fromkeys([*group_cols, *lhs_vars]))
    rdata = pd.DataFrame(
        {
            c: rdata[c].astype(object) if pd.api.types.is_string_dtype(rdata[c]) else rdata[c]
            for c in rcols
        },
        index=rdata.index,
    )
    rdesigns = [build_random_design(rdata, t) for t in terms]
    for t, rd in zip(terms, rdesigns):
        if rd.n_levels == 0:
            raise ModelSpecificationError(f"random term {t} has no level with data")

    # ---- residual ------------------------------------------------------------------------
    if residual_by is not None:
        res_levels = [str(v) for v in as_categorical(data[residual_by]).cat.categories]
        res_code = pd.Categorical(used[residual_by].astype(str), categories=res_levels).codes
        res_code = np.asarray(res_code, dtype=np.int64)
        cnt = np.bincount(res_code, minlength=len(res_levels))
        thin = [res_levels[i] for i in range(len(res_levels)) if cnt[i] < 2]
        if thin:
            raise ModelSpecificationError(
                f"residual_by={residual_by!r}: level(s) {thin} have fewer than two observations; "
                "their residual variance cannot be estimated"
            )
    else:
        res_levels = [""]
        res_code = np.zeros(n_obs, dtype=np.int64)

    subj_codes = vpos = None
    visit_levels: list = []
    structure = None
    if residual != "iid":
        if isinstance(data[visit].dtype, pd.CategoricalDtype):
            visit_levels = list(data[visit].cat.categories)
        else:
            visit_levels = list(as_categorical(data[visit]).cat.categories)
        vpos = pd.Categorical(used[visit], categories=visit_levels).codes.astype(np.int64)
        subj_codes, _ = pd.factorize(used[subject], sort=False)
        subj_codes = subj_codes.astype(np.int64)
        T = len(visit_levels)
        dup = pd.Series(subj_codes * T + vpos).duplicated()
        if dup.any():
            rows = used.index[dup.to_numpy()].tolist()[:10]
            raise ModelSpecificationError(
                f"{int(dup.sum())} row(s) repeat a {subject!r} x {visit!r} combination (first "
                f"rows: {rows}); each subject can have one row per visit"
            )
        if residual_by is not None:
            per = pd.Series(res_code).groupby(subj_codes).nunique()
            if (per > 1).any():
                raise ModelSpecificationError(
                    f"residual_by={residual_by!r} must be constant within subject when "
                    f"residual={residual!r}"
                )
        structure = GroupedCovariance(make_structure(residual, T), tuple(res_levels))

    layout = build_blocks(
        design.X, design.y, rdesigns, res_code=res_code, subject=subj_codes, position=vpos
    )
    qs = [rd.q for rd in rdesigns]
    cov = RandomCovariance(layout, qs, n_res=len(res_levels), structure=structure)
    engine = REMLEngine(layout.classes, cov, n_obs=n_obs, method=method)
    theta0 = _start(design, rdesigns, res_code, len(res_levels), structure, subj_codes, vpos)
    if start is not None:  # a warm start (e.g. refits on imputed data), same length only
        start = np.asarray(start, dtype=float).ravel()
        if start.shape != theta0.shape or not np.all(np.isfinite(start)):
            raise ModelSpecificationError(
                f"start must be {theta0.size} finite variance parameters (the _theta of a fit "
                f"of the same model); got {start.size}"
            )
        theta0 = start

    # ---- fit -------------------------------------------------------------------------------
    fit = engine.fit(theta0)  # raises ConvergenceError if even the start fails
    tried: list[str] = list(fit["tried"])
    fixed: set[int] = set()
    for _ in range(sum(qs) + 1):
        zero = _zero_components(cov, fit["state"].theta) - fixed
        if not zero:
            break
        full = cov.full(fit["state"].theta)
        fixed |= zero
        cov = RandomCovariance(
            layout, qs, n_res=len(res_levels), structure=structure, fixed_zero=tuple(fixed)
        )
        engine = REMLEngine(layout.classes, cov, n_obs=n_obs, method=method)
        fit = engine.fit(full[cov.free])
        tried += ["refit with the zero variance component(s) fixed at 0"] + fit["tried"]
    st = fit["state"]
    if not fit["converged"]:
        raise ConvergenceError(
            "the REML/ML optimisation did not converge (-2 log-likelihood "
            f"{st.objective:.6f}); tried: " + "; ".join(tried) + ". Simplify the random "
            "effects (e.g. drop a random slope) or check the grouping columns.",
            tried=tried,
            gradient=st.gradient,
        )
    theta_full = cov.full(st.theta)
    Gs = cov.G_list(theta_full)

    # ---- singularity -----------------------------------------------------------------------
    warn_msgs: list[str] = []
    singular_names: list[str] = []
    for t, rd, G in zip(terms, rdesigns, Gs):
        ev = np.linalg.eigvalsh(G) if G.size else np.zeros(1)
        scale = max(float(np.max(np.diag(G))), 0.0)
        if scale == 0.0 or ev[0] <= 1e-8 * scale:
            singular_names.append(str(t))
            what = (
                "the variance of {t} is estimated at zero"
                if rd.q == 1
                else "the covariance matrix of {t} is singular (a variance at zero or a "
                "correlation at +-1)"
            ).format(t=t)
            warn_msgs.append(
                f"singular fit: {what}; the model is over-specified for these data (as lme4's "
                "isSingular)."
            )
    for msg in warn_msgs:
        warnings.warn(msg, SingularFitWarning, stacklevel=3)

    # ---- inference -------------------------------------------------------------------------
    C = st.Minv
    P = W = CA = None
    H = fit["hessian"]
    if vcov != "model":
        pass  # the empirical covariance's own df (see _sandwich)
    elif df == "satterthwaite":
        W = 2 * np.linalg.inv(H)
        P = engine.jacobian_terms(st.theta)
    elif df == "kenward-roger":
        lin = LinearRandomCovariance(cov, st.theta)
        eng2 = REMLEngine(layout.classes, lin, n_obs=n_obs, method=method)
        psi = lin.psi_hat
        P = eng2.jacobian_terms(psi)
        Q = eng2.second_order_terms(psi)
        if kr_information == "expected":
            info = eng2.expected_information(psi)
        else:
            h = 1e-5 * max(float(np.max(np.abs(psi))), 1e-12)
            info = eng2.hessian(psi, h=h)
        W = 2 * np.linalg.pinv(info)
        CA = kenward_roger_vcov(C, P, Q, None, W)
    bw = None
    if df == "between-within":
        bw = between_within(design.X, _block_of_rows(layout, n_obs), design.term_columns)
    inference = Inference(
        beta=st.beta, C=C, P=P, W=W, method=df, df_residual=float(n_obs - p), C_adj=CA, bw=bw
    )
    if vcov != "model":
        blocks = layout_blocks(
            design.X, design.y, st.beta, layout.rows, engine.cov.block_covariances(st.theta)
        )
        inference = sandwich_inference(inference, vcov, blocks)

    # ---- random effects, variance components, ICC -----------------------------------------
    blups, diagV = _blups(engine, layout, design, rdesigns, Gs, st.beta, st.theta)
    vc_rows = _variance_components(
        terms, rdesigns, Gs, cov, theta_full, residual, residual_by, res_levels
    )
    icc = _icc(terms, rdesigns, Gs, diagV)
    n_groups = []
    for t, rd in zip(terms, rdesigns):
        if t.group not in dict(n_groups):
            n_groups.append((t.group, rd.n_levels))

    sigmas: tuple = ()
    cov_table: tuple = ()
    if structure is not None:
        th_r = theta_full[cov.n_re :]
        sigmas = tuple(structure.sigmas(th_r))
        cov_table = tuple(structure.sas_table(th_r))
    n_subjects = int(pd.Series(used[subject]).nunique()) if subject is not None else layout.n_blocks
    elapsed = time.perf_counter() - t0
    kwargs = dict(
        formula=formula,
        method=method,
        df_method=df,
        covariance_type=residual,
        subject=subject,
        visit=visit,
        group=residual_by if residual != "iid" else None,
        weights=None,
        n_obs=n_obs,
        n_subjects=n_subjects,
        n_dropped=design.n_dropped,
        converged=True,
        iterations=fit["iterations"],
        neg2loglik=st.objective,
        n_fixed=p,
        visits=tuple(str(v) for v in visit_levels),
        group_levels=tuple(res_levels) if (residual != "iid" and residual_by) else (),
        _design=design,
        _inference=inference,
        _sigmas=sigmas,
        _cov_table=cov_table,
        _theta=st.theta,
        _gradient=st.gradient,
        warnings=tuple(warn_msgs),
        fit_info={
            "n_block_types": layout.n_block_types,
            "n_blocks": layout.n_blocks,
            "n_evaluations": engine.n_evals,
            "seconds": elapsed,
            "tried": tried,
            "n_cov_params": cov.n_full,
        },
        random_terms=tuple(str(t) for t in terms),
        residual=residual,
        residual_by=residual_by,
        singular=bool(singular_names),
        singular_components=tuple(singular_names),
        n_clusters=layout.n_blocks,
        vcov_method=vcov,
        _vc=tuple(vc_rows),
        _icc=tuple(icc),
        _blups=blups,
        _n_groups=tuple(n_groups),
        n_subjects_data=(int(data[subject].nunique()) if subject is not None else layout.n_blocks),
    )
    return _make_result(kwargs)


def _block_of_rows(layout, n: int) -> np.ndarray:
    """Independent cluster (block) of each row, from the block layout."""
    out = np.full(n, -1, dtype=np.int64)
    k = 0
    for rows_c in layout.rows:
        for rows in rows_c:
            u = rows.shape[0]
            out[rows] = (k + np.arange(u))[:, None]
            k += u
    return out


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


# ------------------------------------------------------------------------------------------
def _start(design, rdesigns, res_code, n_res, structure, subj, vpos) -> np.ndarray:
    """Starting values: OLS residual variance split between random effects and residual."""
    X, y = design.X, design.y
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    tot = float(np.var(r)) or 1.0
    share = 1.0 / (len(rdesigns) + 2)
    parts = []
    for rd in rdesigns:
        q = rd.q
        L = np.zeros((q, q))
        on = rd.codes >= 0
        for a in range(q):
            nz = on & (rd.Z[:, a] != 0)
            z2 = float(np.mean(rd.Z[nz, a] ** 2)) if nz.any() else 1.0
            L[a, a] = np.sqrt(share * tot / max(z2, 1e-12))
        parts.append([L[i, j] for i in range(q) for j in range(i + 1)])
    th = [v for part in parts for v in part]
    res_share = 1.0 - share * len(rdesigns)
    if structure is None:
        for g in range(n_res):
            sel = res_code == g
            v = float(np.var(r[sel])) if sel.sum() > 1 else tot
            th.append(np.log(max(v, 1e-8 * tot) * res_share))
        return np.array(th, dtype=float)
    T = structure.structure.n_visits
    covs = []
    for g in range(len(structure.levels)):
        S = np.zeros((T, T))
        for t in range(T):
            sel = (res_code == g) & (vpos == t)
            S[t, t] = (float(np.var(r[sel])) if sel.sum() > 1 else tot) * res_share
        covs.append(S)
    return np.r_[np.array(th, dtype=float), structure.start(covs)]


def _zero_components(cov: RandomCovariance, theta: np.ndarray) -> set[int]:
    """Full-vector indices of Cholesky columns at the boundary (lme4's isSingular rule).

    A diagonal entry L_jj whose size relative to the residual SD is below 1e-4 means G_t is
    singular in direction j; that column of L (L_jj and the entries below it, which then only
    duplicate later columns) is fixed at zero.
    """
    th = cov.full(theta)
    if cov.structure is None:
        sig = float(np.sqrt(np.mean(np.exp(th[cov.n_re :]))))
    else:
        sig = float(
            np.sqrt(np.mean([np.mean(np.diag(S)) for S in cov.structure.sigmas(th[cov.n_re :])]))
        )
    out: set[int] = set()
    k = 0
    for q, ng in zip(cov.qs, cov.n_g):
        idx = [(i, j) for i in range(q) for j in range(i + 1)]
        for j in range(q):
            if abs(th[k + idx.index((j, j))]) < _SINGULAR_TOL * sig:
                out |= {k + r for r, (i, jj) in enumerate(idx) if jj == j and i >= j}
        k += ng
    return out


def _blups(engine, layout, design, rdesigns, Gs, beta, theta):
    """BLUPs b = G Z' V^-1 (y - X beta) per level, and diag(V) per row."""
    n = len(design.y)
    w = np.zeros(n)
    diagV = np.zeros(n)
    r_all = design.y - design.X @ beta
    for c, (V, _) in enumerate(engine.cov.block_covariances(theta)):
        Vinv = np.linalg.inv(V)
        for t, rows in enumerate(layout.rows[c]):
            r = r_all[rows]  # (units, m)
            w[rows] = r @ Vinv[t]
            diagV[rows] = np.diag(V[t])[None, :]
    frames = []
    for rd, G in zip(rdesigns, Gs):
        on = rd.codes >= 0
        U = np.zeros((rd.n_levels, rd.q))
        for a in range(rd.q):
            U[:, a] = np.bincount(rd.codes[on], weights=rd.Z[on, a] * w[on], minlength=rd.n_levels)
        B = U @ G  # G symmetric: b_l = G u_l
        for a, col in enumerate(rd.columns):
            frames.append(
                pd.DataFrame(
                    {
                        "group": rd.term.group,
                        "level": list(rd.levels),
                        "term": col,
                        "estimate": B[:, a],
                    }
                )
            )
    blups = pd.concat(frames, ignore_index=True)
    return blups, diagV


def _variance_components(
    terms, rdesigns, Gs, cov, theta_full, residual, residual_by, res_levels
) -> list[tuple]:
    rows: list[tuple] = []
    for t, rd, G in zip(terms, rdesigns, Gs):
        q = rd.q
        for a in range(q):
            rows.append(
                (t.group, rd.columns[a], None, float(G[a, a]), float(np.sqrt(max(G[a, a], 0.0))))
            )
        for a in range(q):
            for b in range(a + 1, q):
                den = np.sqrt(G[a, a] * G[b, b])
                rows.append(
                    (
                        t.group,
                        rd.columns[a],
                        rd.columns[b],
                        float(G[a, b]),
                        float(G[a, b] / den) if den > 0 else float("nan"),
                    )
                )
    if residual == "iid":
        s2 = cov.residual_variances(theta_full)
        for g, lev in enumerate(res_levels):
            term = f"{residual_by}={lev}" if residual_by is not None else None
            rows.append(("Residual", term, None, float(s2[g]), float(np.sqrt(s2[g]))))
    return rows


def _icc(terms: list[RandomTerm], rdesigns, Gs, diagV) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    seen = {t.group for t in terms}
    names = {}
    for t in terms:
        names[str(t)] = t.group if sum(u.group == t.group for u in terms) == 1 else str(t)
    for t, rd, G in zip(terms, rdesigns, Gs):
        on = (rd.codes >= 0) & (np.abs(rd.Z).sum(axis=1) > 0)
        if not on.any():
            continue
        zgz = np.einsum("na,ab,nb->n", rd.Z[on], G, rd.Z[on])
        out.append((names[str(t)], float(zgz.mean() / diagV[on].mean())))
    del seen
    return out
