"""Generalised linear models of one row per participant, on statsmodels (a well-kept library;
no fitter of our own): logistic regression, negative binomial (NB2) and Poisson regression with
an offset, model-based or cluster-robust (delivery groups) covariances, and g-computation of
marginal risks for risk ratios and differences.

:class:`GLMFit` gives the statsmodels result the names the pipeline reads of every fit
(``coef``, ``test``, ``n_obs``, ``n_subjects``, ``subjects``, ``loglik``, ``aic``, ``bic``,
``converged``).

Notes
-----
- Negative binomial: theta (R's ``theta`` = 1 / statsmodels' alpha) by maximum likelihood
  (``statsmodels.discrete.NegativeBinomial``), then the coefficients and their covariance from
  the GLM at that theta (``statsmodels.genmod.families.NegativeBinomial``), as
  ``MASS::glm.nb`` reports them. Validated against R ``MASS::glm.nb`` in
  ``tests/pipeline/test_outcome_types.py`` (``tests/reference/r_binary_count``).
- Cluster-robust covariance (:func:`cluster_cov`): expected-information bread, score meat
  summed by cluster, G/(G-1) (N-1)/(N-K), as R ``sandwich::vcovCL(type = "HC1")``.
- Marginal risks by g-computation (standardisation over the analysed participants) with the
  delta-method variance of Ge et al. (2011, Drug Inf J 45:481): each participant's predicted
  risk with the arm set to ``a``, averaged; validated against R ``emmeans(...,
  counterfactuals = "arm")`` (same references).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats import _dist  # scipy.special, not scipy.stats (cold start, issue 22.3)
from peerstats.exceptions import ConvergenceError, ModelSpecificationError

__all__ = ["GLMFit", "GLMMFit", "fit_glm", "fit_glmm", "marginal_risks"]

try:  # statsmodels < 0.14 raises on perfect separation; later versions warn
    from statsmodels.tools.sm_exceptions import PerfectSeparationError as _Sep
except ImportError:  # pragma: no cover
    _Sep = ValueError
_FIT_ERRORS = (_Sep, ValueError, np.linalg.LinAlgError, RuntimeWarning)

_COLS = ["estimate", "std_error", "statistic", "p_value", "ci_lower", "ci_upper"]


@dataclass
class GLMFit:
    """A fitted GLM with the names the pipeline reads (see the module docstring)."""

    result: Any
    data: pd.DataFrame
    formula: str
    family: str
    vcov: str
    level: float = 0.95
    theta: float | None = None
    notes: list[str] = field(default_factory=list)
    cov: np.ndarray | None = None
    """Covariance of the coefficients (model-based, or cluster-robust)."""

    def __post_init__(self) -> None:
        if self.cov is None:
            self.cov = np.asarray(self.result.cov_params())

    @property
    def coef(self) -> pd.DataFrame:
        """Coefficients on the link scale with Wald z tests and CIs at ``level``."""
        r = self.result
        b, se = np.asarray(r.params), np.sqrt(np.diag(self.cov))
        z = _dist.norm_ppf(0.5 + self.level / 2)
        out = pd.DataFrame(
            {
                "estimate": b,
                "std_error": se,
                "statistic": b / se,
                "p_value": 2 * _dist.norm_sf(np.abs(b / se)),
                "ci_lower": b - z * se,
                "ci_upper": b + z * se,
            },
            index=pd.Index(list(r.params.index), name="term"),
        )
        return out

    def test(self, ell: np.ndarray, level: float = 0.95) -> pd.DataFrame:
        """Wald test and CI of ``ell' beta``."""
        ell = np.asarray(ell, dtype=float)
        est = float(ell @ np.asarray(self.result.params))
        se = float(np.sqrt(ell @ self.cov @ ell))
        z = _dist.norm_ppf(0.5 + level / 2)
        row = dict(
            zip(
                _COLS,
                [est, se, est / se, 2 * _dist.norm_sf(abs(est / se)), est - z * se, est + z * se],
            )
        )
        return pd.DataFrame([row])

    @property
    def n_obs(self) -> int:
        return int(self.result.nobs)

    @property
    def n_subjects(self) -> int:
        return int(self.data["subject"].nunique())

    @property
    def subjects(self) -> list[str]:
        """The analysed participants (CONSORT's analysed boxes)."""
        return list(self.data["subject"].astype(str))

    @property
    def loglik(self) -> float:
        return float(self.result.llf)

    @property
    def aic(self) -> float:
        k = len(self.result.params) + (1 if self.theta is not None else 0)
        return float(-2 * self.result.llf + 2 * k)

    @property
    def bic(self) -> float:
        k = len(self.result.params) + (1 if self.theta is not None else 0)
        return float(-2 * self.result.llf + np.log(self.n_obs) * k)

    @property
    def converged(self) -> bool:
        return bool(getattr(self.result, "converged", True))


def _check_events(data: pd.DataFrame, family: str) -> None:
    """An arm with no events (or only events) makes the arm's ratio inestimable."""
    for arm, sub in data.groupby("arm", observed=True):
        y = sub["y"].to_numpy()
        if family == "binomial" and (y.sum() == 0 or y.sum() == len(y)):
            what = "no events" if y.sum() == 0 else "only events"
            raise ModelSpecificationError(
                f"arm {arm!r} has {what} ({int(y.sum())} of {len(y)}): the model's arm effect "
                "is not estimable (complete separation); report the counts, or use an exact "
                "or penalised method"
            )
        if family != "binomial" and y.sum() == 0:
            raise ModelSpecificationError(
                f"arm {arm!r} has no events (all {len(y)} counts are 0): the rate ratio is not "
                "estimable"
            )


def cluster_cov(result: Any, clusters: pd.Series) -> np.ndarray:
    """Cluster-robust covariance ``B^-1 M B^-1 G/(G-1) (N-1)/(N-K)`` with the expected
    information as the bread ``B`` (IRLS weights) and ``M`` the sum over clusters of the
    outer products of the summed score contributions: R ``sandwich::vcovCL(type = "HC1")``.
    (statsmodels' ``cov_type="cluster"`` uses the observed information, which differs from
    the expected one for non-canonical links such as the negative binomial's log link.)"""
    m = result.model
    b = np.asarray(result.params)
    bread = np.linalg.inv(-m.hessian(b, observed=False))
    scores = m.score_obs(b)
    codes = pd.factorize(clusters)[0]
    summed = np.zeros((codes.max() + 1, scores.shape[1]))
    np.add.at(summed, codes, scores)
    n, k, g = scores.shape[0], scores.shape[1], summed.shape[0]
    adj = g / (g - 1) * (n - 1) / (n - k)
    return adj * bread @ (summed.T @ summed) @ bread


def _nb_theta(formula: str, data: pd.DataFrame, offset: Any) -> float:
    """R's theta (1 / alpha) of an NB2 model by maximum likelihood."""
    # the model class itself, not statsmodels.formula.api (which imports every model: cold
    # start, issue 22.3); smf.negativebinomial is this class's from_formula
    from statsmodels.discrete.discrete_model import NegativeBinomial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = NegativeBinomial.from_formula(formula, data, offset=offset, loglike_method="nb2")
        r = m.fit(disp=0, maxiter=500, method="bfgs", gtol=1e-10)
        r = m.fit(start_params=r.params, disp=0, maxiter=100, method="newton", tol=1e-12)
    if not r.mle_retvals.get("converged", True):
        raise ConvergenceError(f"the negative binomial model ({formula}) did not converge")
    return 1.0 / float(r.params["alpha"])


def fit_glm(
    data: pd.DataFrame, terms: list[str], *, family: str, vcov: str = "model", level: float = 0.95
) -> GLMFit:
    """Fit ``y ~ arm + terms`` (logistic, negative binomial or Poisson; offset log(exposure)
    when the data have an ``exposure`` column) to the rows with a response.

    Raises
    ------
    ModelSpecificationError
        An arm without events (or complete separation).
    ConvergenceError
        The fit did not converge.
    """
    # GLM and its families directly, not statsmodels.api / statsmodels.formula.api (which
    # import every model and the graphics: cold start, issue 22.3); smf.glm is GLM.from_formula
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    d = data[data["y"].notna()].copy()
    d = d.dropna(subset=terms)
    _check_events(d, family)
    formula = "y ~ " + " + ".join(["arm", *terms])
    offset = np.log(d["exposure"].to_numpy(float)) if "exposure" in d.columns else None
    theta = None
    if family == "binomial":
        fam = families.Binomial()
    elif family == "poisson":
        fam = families.Poisson()
    else:
        theta = _nb_theta(formula, d, offset)
        fam = families.NegativeBinomial(alpha=1.0 / theta)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=RuntimeWarning)
        try:
            res = GLM.from_formula(formula, d, family=fam, offset=offset).fit(tol=1e-12)
        except _FIT_ERRORS as exc:  # separation, overflow, a singular design
            raise ModelSpecificationError(
                f"the {family} model ({formula}) could not be fitted: {exc}"
            ) from exc
    if not res.converged:
        raise ConvergenceError(f"the {family} model ({formula}) did not converge")
    cov = cluster_cov(res, d["cluster"]) if vcov == "cluster" else None
    return GLMFit(res, d, formula, family, vcov, level=level, theta=theta, cov=cov)


def marginal_risks(fit: GLMFit, arms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Risks standardised over the analysed participants with each arm set in turn, and their
    gradients with respect to the coefficients (rows): g-computation, Ge et al. (2011).

    The model has the arm as a main effect only (``y ~ arm + ...``): setting the arm is
    setting its treatment-coded columns ``arm[T.<level>]`` of the design matrix."""
    r = fit.result
    names = list(r.params.index)
    x0 = np.asarray(r.model.exog, dtype=float)
    arm_cols = {n[len("arm[T.") : -1]: j for j, n in enumerate(names) if n.startswith("arm[T.")}
    b = np.asarray(r.params)
    risks, grads = [], []
    for a in arms:
        x = x0.copy()
        for level, j in arm_cols.items():
            x[:, j] = 1.0 if level == a else 0.0
        p = 1 / (1 + np.exp(-(x @ b)))
        risks.append(p.mean())
        grads.append((p * (1 - p)) @ x / len(p))
    return np.asarray(risks), np.asarray(grads)


def wald_test(ell: np.ndarray, beta: np.ndarray, cov: np.ndarray, level: float) -> pd.DataFrame:
    """Wald z test and CI of ``ell' beta`` (one row, tidy columns)."""
    ell = np.asarray(ell, dtype=float)
    est = float(ell @ beta)
    se = float(np.sqrt(ell @ cov @ ell))
    z = _dist.norm_ppf(0.5 + level / 2)
    p = 2 * _dist.norm_sf(abs(est / se))
    return pd.DataFrame([dict(zip(_COLS, [est, se, est / se, p, est - z * se, est + z * se]))])


@dataclass
class GEEFit:
    """A :func:`peerstats.gee` fit of one row per participant clustered by delivery group
    (participants without a group are clusters of one), with the names the pipeline reads.
    Marginal risks (risk ratio / difference) come from :func:`peerstats.marginal_effect`."""

    gee: Any
    data: pd.DataFrame
    formula: str
    family: str
    vcov: str
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    @property
    def coef(self) -> pd.DataFrame:
        """Coefficients on the link scale, the GEE's covariance and df convention."""
        return self.gee.coef_table(self.level)

    @property
    def cov(self) -> np.ndarray:
        return np.asarray(self.gee.vcov)

    def test(self, ell: np.ndarray, level: float = 0.95) -> pd.DataFrame:
        """Wald test and CI of ``ell' beta`` (normal)."""
        return wald_test(ell, np.asarray(self.gee.params), self.cov, level)

    theta = property(lambda self: self.gee.theta)
    n_obs = property(lambda self: int(self.gee.n_obs))
    n_subjects = property(lambda self: int(self.data["subject"].nunique()))
    subjects = property(lambda self: list(self.data["subject"].astype(str)))
    loglik = property(lambda self: float("nan"))  # no likelihood (estimating equations)
    aic = bic = loglik
    converged = property(lambda self: True)  # peerstats.gee raises ConvergenceError


def fit_gee(
    data: pd.DataFrame, terms: list[str], *, family: str, vcov: str = "robust", level: float = 0.95
) -> GEEFit:
    """``peerstats.gee(y ~ arm + terms)`` with delivery groups as clusters (exchangeable
    working correlation; offset log(exposure) for counts)."""
    import peerstats

    d = data[data["y"].notna()].dropna(subset=terms).copy()
    _check_events(d, family)
    d = d.sort_values(["cluster", "subject"], kind="stable").reset_index(drop=True)
    if "exposure" in d.columns:
        d["log_exposure"] = np.log(d["exposure"].to_numpy(float))
    formula = "y ~ " + " + ".join(["arm", *terms])
    fit = peerstats.gee(
        formula,
        d,
        subject="cluster",
        family=family,
        correlation="exchangeable",
        vcov="bias-reduced" if vcov == "bias-reduced" else "robust",
        offset="log_exposure" if "exposure" in d.columns else None,
        reference={"arm": str(d["arm"].cat.categories[0])},
    )
    return GEEFit(fit, d, formula, family, vcov, level=level, notes=list(fit.warnings))


@dataclass
class GLMMFit:
    """A :func:`peerstats.glmm` fit of one row per participant with a random intercept for the
    delivery group in the group-delivered arm only (the partially nested GLMM; participants
    without a group carry no group effect), with the names the pipeline reads. Marginal risks
    come from :func:`peerstats.marginal_effect`, averaged over the group effect."""

    glmm: Any
    data: pd.DataFrame
    formula: str
    family: str
    vcov: str = "model"
    level: float = 0.95
    notes: list[str] = field(default_factory=list)

    @property
    def coef(self) -> pd.DataFrame:
        """Coefficients on the link scale, Wald z (the GLMM's convention), CIs at ``level``."""
        b, se = np.asarray(self.glmm.fixed_params), np.sqrt(np.diag(self.cov))
        z = _dist.norm_ppf(0.5 + self.level / 2)
        return pd.DataFrame(
            {"estimate": b, "std_error": se, "statistic": b / se,
             "p_value": 2 * _dist.norm_sf(np.abs(b / se)),
             "ci_lower": b - z * se, "ci_upper": b + z * se},
            index=pd.Index(list(self.glmm.coef.index), name="term"),
        )

    @property
    def cov(self) -> np.ndarray:
        return np.asarray(self.glmm.fixed_vcov)

    def test(self, ell: np.ndarray, level: float = 0.95) -> pd.DataFrame:
        """Wald test and CI of ``ell' beta`` (normal)."""
        return wald_test(ell, np.asarray(self.glmm.fixed_params), self.cov, level)

    theta = property(lambda self: getattr(self.glmm, "theta", None))
    n_obs = property(lambda self: int(len(self.data)))
    n_subjects = property(lambda self: int(self.data["subject"].nunique()))
    subjects = property(lambda self: list(self.data["subject"].astype(str)))
    loglik = property(lambda self: float(self.glmm.loglik))
    aic = property(lambda self: float(self.glmm.aic))
    bic = property(lambda self: float(self.glmm.bic))
    converged = property(lambda self: True)  # peerstats.glmm raises ConvergenceError

    delivered_arms: tuple[str, ...] = ()

    @property
    def gee(self) -> Any:
        """The fit :func:`peerstats.marginal_effect` reads (named as for the GEE adapter): the
        GLMM with its ``delivered`` indicator following the arm, so that a participant set to
        a group-delivered arm is averaged over the group effect too."""
        return _ArmLinked(self.glmm, self.delivered_arms)


class _ArmLinked:
    """A GLMM seen by :func:`peerstats.marginal_effect`: ``delivered`` is recomputed from
    ``arm`` in every counterfactual data set (everything else is the GLMM's)."""

    def __init__(self, fit: Any, delivered_arms: tuple[str, ...]) -> None:
        self._fit, self._arms = fit, delivered_arms

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fit, name)

    def re_variance_per_row(self, data: pd.DataFrame) -> np.ndarray:
        linked = data.assign(delivered=data["arm"].astype(str).isin(self._arms).astype(float))
        return self._fit.re_variance_per_row(linked)


def fit_glmm(
    data: pd.DataFrame, terms: list[str], *, family: str, level: float = 0.95
) -> GLMMFit:
    """``peerstats.glmm(y ~ arm + terms + (0 + delivered | group))``: the delivery group's
    random intercept applies to participants with a group only (partially nested design);
    log(exposure) is the offset of counts. Laplace approximation (lme4's default)."""
    import peerstats

    d = data[data["y"].notna()].dropna(subset=terms).copy().reset_index(drop=True)
    _check_events(d, family)
    grouped = d["cluster"].astype(str).str.startswith("g:")
    d["delivered"] = grouped.astype(float)
    d["dgroup"] = d["cluster"].where(grouped, None)
    random = " + (0 + delivered | dgroup)" if grouped.sum() and d.loc[grouped, "dgroup"].nunique() > 1 else ""
    formula = "y ~ " + " + ".join(["arm", *terms]) + random
    fit = peerstats.glmm(
        formula,
        d,
        family=family,
        exposure="exposure" if "exposure" in d.columns else None,
        reference={"arm": str(d["arm"].cat.categories[0])},
        level=level,
    )
    notes = [] if random else ["no delivery groups with more than one level: fitted as a GLM"]
    arms = tuple(sorted(set(d.loc[grouped, "arm"].astype(str))))
    return GLMMFit(fit, d, formula, family, level=level, notes=notes, delivered_arms=arms)
