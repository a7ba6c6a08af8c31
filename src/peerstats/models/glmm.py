"""Generalised linear mixed models by maximum likelihood: ``peerstats.glmm``.

Binary (binomial: logit, probit, cloglog) and count (Poisson, NB2; log link, offset or exposure)
outcomes with lme4-style random terms, estimated by the Laplace approximation for any random
structure, or by adaptive Gauss-Hermite quadrature for one scalar random term (as glmer's
``nAGQ``); with no random term, a GLM. Zero-inflated and hurdle Poisson / NB2, with random
effects in the count part only. The random terms use the same parser and design code as :func:`peerstats.lmm`.

statsmodels has no maximum-likelihood GLMM, hence the engine in ``_glmm_engine`` (see its
docstring for the formulas).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from peerstats.exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    ModelSpecificationError,
    SingularFitWarning,
)
from peerstats.models._design import build_fixed_design, refuse_unknown, required_variables
from peerstats.models._glmm_checks import (
    check_empty_levels,
    numeric_column,
    offset_values,
    outcome_values,
    separation,
)
from peerstats.models._glmm_engine import (
    Problem,
    ReTerm,
    make_objective,
    theta_bounds,
    theta_start,
)
from peerstats.models._glmm_family import make_family
from peerstats.models._glmm_optim import maximise
from peerstats.models._glmm_result import GLMMResult
from peerstats.models._glmm_zero import ZeroFamily, ZeroObjective
from peerstats.models._random import (
    build_random_design,
    random_term_columns,
    random_term_data,
    split_formula,
)

__all__ = ["glmm"]


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str = "binomial",
    *,
    offset: str | np.ndarray | None = None,
    exposure: str | np.ndarray | None = None,
    weights: str | np.ndarray | None = None,
    nagq: int = 1,
    zero_inflation: str | None = None,
    hurdle: str | None = None,
    link: str | None = None,
    reference: Mapping[str, str] | None = None,
    level: float = 0.95,
    cluster: str | None = None,
) -> GLMMResult:
    """Fit a generalised linear mixed model by maximum likelihood.

    Parameters
    ----------
    formula : str
        ``"readmit ~ arm + site + (1 | id) + (0 + peer | group)"``: fixed effects as in
        formulaic, random terms as in lme4 (``(1 | g)``, ``(1 + t | g)``, ``(1 | a/b)``,
        crossed terms). A formula without random terms fits a GLM.
    data : DataFrame
        One row per observation. Rows with a missing outcome are left out (counted in
        ``n_dropped``); a missing covariate, grouping value, offset or weight is an error.
    family : {"binomial", "poisson", "negative_binomial"}
        Conditional distribution. ``negative_binomial`` is NB2, ``Var(y) = mu + mu^2 / theta``
        (R's ``theta``, glmmTMB's ``nbinom2``).
    offset : str or array, optional
        A column name or an array (one value per row of ``data``) added to the linear
        predictor (e.g. ``log(days)``).
    exposure : str or array, optional
        Follow-up on the count's scale; ``offset = log(exposure)``. Must be > 0.
    weights : str or array, optional
        Binomial: the number of trials, with the outcome the proportion of successes (R's
        ``glm(y/n ~ ., weights = n)``). Poisson / NB: prior (frequency) weights.
    nagq : int
        1: Laplace approximation. k > 1: adaptive Gauss-Hermite quadrature with k nodes, only
        with one scalar random term (as glmer).
    zero_inflation, hurdle : str, optional
        One-sided formula of the zero part (``"~ 1"``, ``"~ arm"``), Poisson / NB only. The
        zero part has fixed effects only (random terms act on the count part) and models the
        probability of a (structural) zero with a logit link.
    link : str, optional
        Binomial: ``"logit"`` (default), ``"probit"``, ``"cloglog"``. Counts: ``"log"``.
    reference : mapping, optional
        Reference levels of factors, e.g. ``{"arm": "control"}``.
    level : float
        Confidence level of the Wald intervals.
    cluster : str, optional
        A column: cluster-robust (sandwich) standard errors for a binomial or Poisson GLM (no
        random terms), CR1 convention ``G/(G-1) (n-1)/(n-p) H^-1 (sum_c S_c S_c') H^-1``
        (Stata's ``vce(cluster)``, R ``sandwich::vcovCL(type = "HC1")``, validated against the
        latter).

    Returns
    -------
    GLMMResult
        ``coef``, ``odds_ratio`` / ``rate_ratio``, ``zero_coef``, ``variance_components``,
        ``theta``, ``loglik``, ``aic``, ``bic``, ``emmeans``, ``contrasts``, ``predict``,
        ``residuals``, ``summary()``, ``effect_records()``.

    Raises
    ------
    DataValidationError
        Outcome not 0/1 (binomial) or not a count; missing, zero or infinite offset/exposure.
    ConvergenceError
        Separation (a level with no events, or a linear combination of covariates that predicts
        the outcome perfectly): the maximum-likelihood estimate does not exist.
    ModelSpecificationError
        Invalid options (family, link, nagq > 1 with several or vector random terms, ...).

    Notes
    -----
    Maximum likelihood over ``(beta, theta[, log theta_NB][, gamma])``; ``theta`` are the
    entries of the lower Cholesky factor of each random term's covariance (lme4's
    parameterisation). Standard errors are the square roots of the diagonal of the inverse
    Hessian of minus the log-likelihood over all parameters (finite differences), restricted to
    the fixed effects: glmer's default (``calc.derivs = TRUE``) and glmmTMB's convention.
    Wald z statistics, two-sided normal p-values and intervals ``estimate +/- z_(1-a/2) SE``.

    Validated (tests/reference/r_glmm/) against glmer at nAGQ = 9 and 25 on lme4's ``cbpp``,
    glmmTMB (exact Laplace) on ``cbpp``, HSAUR3's ``toenail`` (with the SAS values of lme4
    issue #289) and Salamanders (NB2), pscl ``zeroinfl`` / ``hurdle`` on ``bioChemists``,
    ``glm`` / ``MASS::glm.nb`` with offsets, glmmTMB zero-inflated NB and hurdle Poisson with a
    random intercept, ``sandwich::vcovCL`` (``cluster=``), and a synthetic partially nested binary trial
    (glmer and glmmTMB). glmer's Laplace optimum differs slightly from the exact Laplace optimum
    that glmmTMB, SAS and peerstats find (lme4 issues #289 and #998: its penalised IRLS stops at
    ``tolPwrss`` and leaves an error in the deviance); we match the latter.
    """
    from peerstats.models.lmm import _single_threaded_blas

    with _single_threaded_blas():
        fit = _glmm(formula, data, family, offset, exposure, weights, nagq, zero_inflation,
                    hurdle, link, reference, level)  # fmt: skip
    if cluster is not None:
        fit._set_robust(*_cluster_robust(fit, data, cluster))
    return fit


def _glmm(
    formula,
    data,
    family,
    offset,
    exposure,
    weights,
    nagq,
    zero_inflation,
    hurdle,
    link,
    reference,
    level,
) -> GLMMResult:
    t0 = time.perf_counter()
    spec = _validate_options(formula, data, family, link, nagq, zero_inflation, hurdle, level)
    fam, fixed, terms, zero_kind, zero_formula = spec
    design, rdata = _fixed_design(fixed, terms, data, reference, offset, exposure, weights)
    rows = np.asarray(design.rows)
    problem, off_label = _problem(fam, design, rdata, terms, data, offset, exposure, weights,
                                  zero_kind, nagq)  # fmt: skip
    Xz = _zero_design(zero_formula, data.iloc[rows]) if zero_kind else None
    beta0 = _glm_start(problem, design.columns)
    obj, phi0, bounds = _objective(problem, fam, zero_kind, Xz, beta0)
    opt = maximise(obj, phi0, bounds, canon=lambda phi: _canonical(phi, problem))
    _check_fit(opt, problem, obj)
    return GLMMResult(
        formula=formula,
        design=design,
        problem=problem,
        objective=obj,
        opt=opt,
        zero_kind=zero_kind,
        zero_formula=zero_formula,
        zero_X=Xz,
        offset_label=off_label,
        offset_arg=offset,
        exposure_arg=exposure,
        level=level,
        elapsed=time.perf_counter() - t0,
        rows_data=data.iloc[rows],
    )


def _problem(fam, design, rdata, terms, data, offset, exposure, weights, zero_kind, nagq):
    """The fitting problem (outcome, trials, prior weights, offset, random terms) and the
    offset's label."""
    rows = np.asarray(design.rows)
    pw = _weights(weights, data, rows)
    y, trials = outcome_values(fam, design, pw if fam.name == "binomial" else np.ones(len(rows)))
    if fam.name != "binomial":
        trials = np.ones_like(y)
    prior = pw if fam.name != "binomial" else np.ones_like(y)
    off, off_label = offset_values(offset, exposure, data, rows, len(data))
    if zero_kind is None:
        check_empty_levels(design, y, trials, fam)
    re_terms = _random_terms(terms, rdata)
    if nagq > 1 and re_terms[0].q != 1:
        raise ModelSpecificationError(
            f"nagq={nagq} needs a scalar random term; {terms[0]} has {re_terms[0].q} columns"
        )
    problem = Problem(
        X=design.X,
        y=y,
        trials=trials,
        pw=prior,
        offset=off,
        family=fam,
        terms=re_terms,
        nagq=int(nagq),
    )
    return problem, off_label


def _objective(problem: Problem, fam, zero_kind, Xz, beta0):
    """The objective, its start (GLM fixed effects, lme4's theta = 1) and its bounds."""
    if zero_kind and problem.terms:  # random effects in the count part: the Laplace engine
        problem.family = ZeroFamily(fam, Xz, zero_kind)
        obj = make_objective(problem)
        phi0 = np.concatenate(
            [beta0, theta_start(problem), np.zeros(Xz.shape[1]), np.zeros(fam.n_extra)]
        )
        bounds = (
            [(None, None)] * problem.p
            + theta_bounds(problem)
            + [(None, None)] * (Xz.shape[1] + fam.n_extra)
        )
    elif zero_kind:
        obj = ZeroObjective(problem, Xz, zero_kind)
        phi0 = np.concatenate([beta0, np.zeros(Xz.shape[1]), np.zeros(fam.n_extra)])
        bounds = [(None, None)] * len(phi0)
    else:
        obj = make_objective(problem)
        phi0 = np.concatenate([beta0, theta_start(problem), np.zeros(fam.n_extra)])
        bounds = [(None, None)] * problem.p + theta_bounds(problem) + [(None, None)] * fam.n_extra
    return obj, phi0, bounds


def _validate_options(formula, data, family, link, nagq, zero_inflation, hurdle, level):
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not isinstance(formula, str):
        raise ModelSpecificationError(f"formula must be a string, not {type(formula).__name__}")
    fam = make_family(family, link)
    if not isinstance(nagq, (int, np.integer)) or isinstance(nagq, bool) or nagq < 1:
        raise ModelSpecificationError(f"nagq must be a whole number >= 1, got {nagq!r}")
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level must be between 0 and 1, got {level!r}")
    fixed, terms = split_formula(formula)
    if nagq > 1 and len(terms) != 1:
        raise ModelSpecificationError(
            f"nagq={nagq} (adaptive Gauss-Hermite quadrature) needs exactly one scalar random "
            f"term such as (1 | id); the formula has {[str(t) for t in terms]}. Use nagq=1 "
            "(Laplace) for other random structures, as glmer"
        )
    if zero_inflation is not None and hurdle is not None:
        raise ModelSpecificationError("give zero_inflation= or hurdle=, not both")
    zero_formula = zero_inflation if zero_inflation is not None else hurdle
    zero_kind = None
    if zero_formula is not None:
        zero_kind = "zero_inflation" if zero_inflation is not None else "hurdle"
        if fam.name == "binomial":
            raise ModelSpecificationError(
                f"{zero_kind}= needs a count family ('poisson' or 'negative_binomial')"
            )
        if not isinstance(zero_formula, str) or not zero_formula.strip().startswith("~"):
            raise ModelSpecificationError(
                f"{zero_kind}= takes a one-sided formula such as '~ 1' or '~ arm', "
                f"got {zero_formula!r}"
            )
        if nagq > 1:
            raise ModelSpecificationError("nagq > 1 needs a random term")
    return fam, fixed, terms, zero_kind, zero_formula


def _fixed_design(fixed, terms, data, reference, offset, exposure, weights):
    lhs_vars, group_cols = random_term_columns(terms, data)
    design = build_fixed_design(fixed, data, extra_columns=lhs_vars, reference=reference)
    return design, random_term_data(data, design.rows, [*group_cols, *lhs_vars])


def _weights(weights, data, rows) -> np.ndarray:
    if weights is None:
        return np.ones(len(rows))
    if isinstance(weights, str):
        w = numeric_column("weights", weights, data)
    else:
        w = np.asarray(weights, dtype=float).ravel()
        if len(w) != len(data):
            raise ModelSpecificationError(f"weights has {len(w)} values for {len(data)} rows")
    w = w[rows]
    if not np.isfinite(w).all() or (w < 0).any():
        raise ModelSpecificationError("weights must be finite and non-negative on analysed rows")
    return w


def _random_terms(terms, rdata) -> list[ReTerm]:
    out = []
    for t in terms:
        rd = build_random_design(rdata, t)
        if rd.n_levels == 0:
            raise ModelSpecificationError(f"random term {t} has no level with data")
        # levels whose term columns are 0 on every row (the control participants' own groups in
        # (0 + peer | group)) carry no random effect: leave them out of u
        on = rd.codes >= 0
        used = np.zeros(rd.n_levels, dtype=bool)
        used[np.unique(rd.codes[on & (np.abs(rd.Z).sum(axis=1) > 0)])] = True
        if not used.any():
            raise ModelSpecificationError(f"random term {t} is zero on every row")
        new = np.full(rd.n_levels, -1)
        new[used] = np.arange(int(used.sum()))
        codes = np.where(on, new[np.maximum(rd.codes, 0)], -1)
        levels = tuple(lv for lv, k in zip(rd.levels, used) if k)
        out.append(
            ReTerm(
                Z=np.where((codes >= 0)[:, None], rd.Z, 0.0),
                codes=codes,
                n_levels=len(levels),
                group=t.group,
                columns=rd.columns,
                levels=levels,
            )
        )
    return out


def _zero_design(zero_formula: str, rows: pd.DataFrame) -> np.ndarray:
    """Design of the zero part on the analysed rows (its variables need not be in the count
    part; a missing value is an error, as for the count part)."""
    import formulaic

    rhs = zero_formula.strip()[1:].strip() or "1"
    if rhs not in ("1", "0 + 1", "1 + 0"):
        variables = required_variables(rhs)
        refuse_unknown(
            variables, rows.columns,
            lambda absent: f"zero part {zero_formula!r}: column(s) {absent} not in data; "
            f"columns are {list(rows.columns)}",
        )
        na = rows[variables].isna().any(axis=1)
        if na.any():
            raise ModelSpecificationError(
                f"zero part {zero_formula!r}: missing values on {int(na.sum())} analysed row(s) "
                f"(first: {list(rows.index[na][:10])}); peerstats does not drop them silently"
            )
    try:
        mm = formulaic.model_matrix(rhs, rows, na_action="raise")
    except Exception as exc:
        raise ModelSpecificationError(
            f"cannot build the zero part {zero_formula!r}: {exc}"
        ) from exc
    Xz = np.asarray(mm, dtype=float)
    return _ZeroX(Xz, [str(c) for c in mm.model_spec.column_names], mm.model_spec)


class _ZeroX(np.ndarray):
    """The zero-part design matrix carrying its column names and formulaic spec."""

    def __new__(cls, X, columns, spec):
        obj = np.asarray(X).view(cls)
        obj.columns = columns
        obj.spec = spec
        return obj

    def __array_finalize__(self, obj):
        self.columns = getattr(obj, "columns", None)
        self.spec = getattr(obj, "spec", None)


def _glm_start(problem: Problem, columns) -> np.ndarray:
    """Fixed effects of the GLM (Newton-Raphson; Poisson working model for the NB); a GLM that
    drifts to infinity is tested for separation."""
    fam = problem.family
    X, y = problem.X, problem.y
    beta = np.zeros(X.shape[1])
    extra = np.zeros(fam.n_extra)
    work = fam if fam.name != "negative_binomial" else make_family("poisson", "log")
    mean_y = np.clip((y.sum() + 0.5) / (problem.trials.sum() + 1.0), 1e-6, None)
    if fam.name == "binomial":
        mean_y = min(mean_y, 1 - 1e-6)
    beta[0] = (
        float(work.link(np.array([mean_y]))[0]) if columns and columns[0] == "Intercept" else 0.0
    )
    ll_old = -np.inf
    for _ in range(60):
        eta = X @ beta + problem.offset
        ll, s, h, _ = work.derivs(y, eta, extra, problem.trials, problem.pw)
        H = X.T @ (h[:, None] * X)
        try:
            step = np.linalg.solve(H, X.T @ s)
        except np.linalg.LinAlgError:
            break
        beta = beta + step
        if abs(ll.sum() - ll_old) < 1e-10 * (1 + abs(ll.sum())) and np.abs(step).max() < 1e-8:
            break
        ll_old = ll.sum()
    eta = X @ beta + problem.offset
    if fam.name == "binomial" and (np.abs(beta).max() > 12 or np.abs(eta).max() > 25):
        separation(X, y, problem.trials, list(columns))
    if not np.isfinite(beta).all():
        raise ConvergenceError("the GLM starting fit did not converge (non-finite estimates)")
    return beta


def _cluster_robust(fit: GLMMResult, data: pd.DataFrame, cluster: str):
    """CR1 sandwich covariance of the fixed effects of a GLM, clustered on ``cluster``."""
    pr = fit._problem
    if pr.terms or fit.zero_kind or pr.family.n_extra:
        raise ModelSpecificationError(
            "cluster= (cluster-robust standard errors) is available for binomial and Poisson "
            "GLMs without random terms or a zero part; a random term already models the "
            "clustering"
        )
    if not isinstance(cluster, str) or cluster not in data.columns:
        raise ModelSpecificationError(
            f"cluster={cluster!r} is not a column of data; columns are {list(data.columns)}"
        )
    labels = fit.data[cluster]
    if labels.isna().any():
        raise ModelSpecificationError(f"cluster column {cluster!r} is missing on analysed rows")
    codes = pd.factorize(labels)[0]
    G = int(codes.max()) + 1
    if G < 2:
        raise ModelSpecificationError("cluster-robust standard errors need at least 2 clusters")
    eta = pr.X @ fit.fixed_params + pr.offset
    _, s, _, _ = pr.family.derivs(pr.y, eta, None, pr.trials, pr.pw)
    S = np.column_stack(
        [np.bincount(codes, weights=pr.X[:, j] * s, minlength=G) for j in range(pr.p)]
    )
    Hinv = np.linalg.inv(fit._opt.hessian)
    n, p = pr.X.shape
    V = G / (G - 1) * (n - 1) / (n - p) * Hinv @ (S.T @ S) @ Hinv
    return V, f"cluster-robust (CR1) on {cluster!r}, {G} clusters"


def _canonical(phi: np.ndarray, problem: Problem) -> np.ndarray:
    """Flip the sign of each Cholesky column whose diagonal is negative (same likelihood)."""
    phi = phi.copy()
    k = problem.p
    for t in problem.terms:
        block = phi[k : k + t.n_theta]
        pos = 0
        for c in range(t.q):
            n_c = t.q - c  # entries (c..q-1, c)
            if block[pos] < 0:
                block[pos : pos + n_c] *= -1
            pos += n_c
        phi[k : k + t.n_theta] = block
        k += t.n_theta
    return phi


def _check_fit(opt, problem, obj) -> None:
    if not np.isfinite(opt.value):
        raise ConvergenceError("the likelihood is not finite at the estimates")
    beta = opt.phi[: problem.p]
    if np.abs(beta[1:]).max(initial=0.0) > 20:
        warnings.warn(
            "a fixed effect is larger than 20 on the link scale: probably a combination of "
            "factor levels with no events (quasi-complete separation); its estimate and "
            "standard error are not meaningful",
            ConvergenceWarning,
            stacklevel=3,
        )
    if not opt.converged:
        warnings.warn(
            f"the optimiser did not converge ({opt.message}); check the estimates",
            ConvergenceWarning,
            stacklevel=3,
        )
    _, theta, _ = problem.split(opt.phi)
    k = problem.p
    zero = [t.group for t in problem.terms for _ in range(t.n_theta)]
    for j, (lo, _) in enumerate(theta_bounds(problem)):
        if lo is not None and not opt.free[k + j]:
            warnings.warn(
                f"singular fit: the random-effect standard deviation of {zero[j]!r} is "
                "estimated at 0 (boundary of the parameter space); its standard errors are "
                "computed with it held at 0",
                SingularFitWarning,
                stacklevel=3,
            )
    ev = np.linalg.eigvalsh(opt.hessian) if opt.hessian.size else np.array([1.0])
    if ev.min() <= 0:
        warnings.warn(
            "the Hessian is not positive definite at the estimates: standard errors "
            "are not reliable (a boundary or near-unidentified parameter)",
            ConvergenceWarning,
            stacklevel=3,
        )
