"""Causal mediation analysis: ACME, ADE, total effect, proportion mediated, and sensitivity.

The estimands and the quasi-Bayesian / bootstrap algorithms are those of Imai, Keele & Tingley
(2010, Psychological Methods 15:309) as implemented in R ``mediation::mediate``; the sensitivity
analysis is Imai, Keele & Yamamoto (2010, Statistical Science 25:51), R ``medsens``.

Written here because statsmodels' ``Mediation`` reports simulation means as point estimates and
has no sensitivity analysis. Here point estimates are the plug-in values (exact for linear models,
where the ACME is the product of coefficients), and intervals come from simulation. Expectations
over the mediator are computed exactly (linear or binary outcome with a linear mediator: the
outcome is linear in the mediator, or Gauss-Hermite quadrature over its normal error; binary
mediator: a two-point sum) instead of R's single random mediator draw per unit, which removes
one layer of Monte-Carlo noise without changing the estimand.

Validated in ``tests/effects/test_mediation.py`` against R ``mediation`` on the JOBS II data
(``tests/reference/r_effects19/``) and against the product-of-coefficients closed form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import SummaryAsRepr
from peerstats.effects._printable import SummaryRepr
from peerstats.exceptions import ModelSpecificationError, SpecError

__all__ = ["mediation", "MediationResult", "MediationSensitivity"]

Family = Literal["auto", "gaussian", "binomial"]
_ROWS = (
    "acme",
    "ade",
    "total",
    "prop_mediated",
    "acme_control",
    "acme_treated",
    "ade_control",
    "ade_treated",
    "prop_mediated_control",
    "prop_mediated_treated",
)
_GH_NODES = 16


@dataclass
class _Model:
    """One fitted GLM: its formula, family, coefficients, covariance and design builder."""

    formula: str
    family: str
    coef: np.ndarray
    vcov: np.ndarray
    sigma: float
    spec: Any
    y: np.ndarray
    X: np.ndarray
    names: list[str]
    mixed: bool = False
    layout: Any = None  # the fast layout when formulaic was not needed (``spec`` then None)
    rhs: str = ""
    train: pd.DataFrame | None = None  # the fit's rows (formulaic's spec, if ever needed)

    def design(self, data: pd.DataFrame) -> np.ndarray:
        """The design of ``data`` under the fitted coding (formulaic's values and layout)."""
        if self.layout is not None:
            X = self.layout.matrix(data)
            if X is not None:
                return np.asfortranarray(X)
        if self.spec is None:
            import formulaic

            self.spec = formulaic.model_matrix(self.rhs, self.train, na_action="raise").model_spec
        return np.asarray(self.spec.get_model_matrix(data), dtype=float)


def _fast_matrix(rhs: str, data: pd.DataFrame) -> tuple[Any, np.ndarray | None]:
    """The design of columns summed and multiplied without formulaic (issue 22):
    :mod:`peerstats.models._fast_design` builds formulaic's columns, names and values bit for bit,
    here laid out as formulaic's (column-major), so every product downstream is the same. Text
    columns are factors with their sorted values as levels, the first the reference (formulaic's
    coding of a text column). None for anything else (categorical or boolean columns, functions
    of columns, missing values): formulaic builds it."""
    from peerstats.models._fast_design import fast_layout, simple_terms

    terms = simple_terms(rhs)
    if terms is None:
        return None, None
    used, factors = data, {}
    for v in dict.fromkeys(x for t in terms for x in t):
        if v not in data.columns or not _text_column(data[v]):
            continue
        if used is data:
            used = data.copy()
        levels = sorted(data[v].unique())
        used[v] = pd.Categorical(data[v], categories=levels)
        factors[v] = levels
    layout = fast_layout(rhs, used, factors)
    X = layout.matrix(data) if layout is not None else None
    return (layout, None) if X is None else (layout, np.asfortranarray(X))


def _text_column(col: pd.Series) -> bool:
    """Strings only (object or string dtype), none missing."""
    if isinstance(col.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_string_dtype(col.dtype) or col.dtype == object
    ):
        return False
    return bool(col.map(lambda x: isinstance(x, str)).all())


def _fit_arrays(y: np.ndarray, X: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray, float]:
    if family == "gaussian":
        coef, rss, rank, _ = np.linalg.lstsq(X, y, rcond=None)
        if rank < X.shape[1]:
            raise ModelSpecificationError("the linear model's design is rank deficient")
        resid = y - X @ coef
        scale = float(resid @ resid) / (y.size - X.shape[1])
        return coef, scale * np.linalg.inv(X.T @ X), float(np.sqrt(scale))
    # GLM directly, not statsmodels.api (imports every model and the graphics: cold start);
    # only for a logistic model (statsmodels and formulaic cost ~1 s to import the first time)
    from statsmodels.genmod import families
    from statsmodels.genmod.generalized_linear_model import GLM

    res = GLM(y, X, family=families.Binomial()).fit()
    if not res.converged:
        from peerstats.exceptions import ConvergenceError

        raise ConvergenceError("the logistic model did not converge")
    return res.params, res.cov_params(), float("nan")


_RANDOM = re.compile(r"\+?\s*\(\s*[^()|]*\|[^()]*\)")


def _fit(formula: str, data: pd.DataFrame, family: Family, role: str) -> _Model:
    from peerstats.models._design import _split_formula

    lhs, rhs = _split_formula(formula)
    mixed = bool(_RANDOM.search(rhs))
    fixed_rhs = _RANDOM.sub("", rhs).strip().strip("+").strip() if mixed else rhs
    y = data[lhs].to_numpy(dtype=float)
    binary = bool(np.isin(np.unique(y), [0.0, 1.0]).all())
    if family == "auto":
        family = "binomial" if binary and not mixed else "gaussian"
    if family == "binomial" and not binary:
        raise ModelSpecificationError(f"the {role} model is logistic but {lhs!r} is not 0/1")
    if mixed and family != "gaussian":
        raise ModelSpecificationError(
            f"the {role} model has random effects: only linear mixed models (peerstats.lmm) are "
            "supported in mediation; a logistic mixed model is not"
        )
    layout, X = _fast_matrix(fixed_rhs, data)
    if X is None:  # formulaic imported only when needed (0.1-0.3 s the first time)
        import formulaic

        mm = formulaic.model_matrix(fixed_rhs, data, na_action="raise")
        X, spec, names, layout = np.asarray(mm, dtype=float), mm.model_spec, list(mm.columns), None
    else:
        spec, names = None, list(layout.columns)
    if mixed:
        coef, vcov, sigma = _fit_lmm(formula, data, names)
    else:
        coef, vcov, sigma = _fit_arrays(y, X, family)
    return _Model(formula, family, np.asarray(coef), np.asarray(vcov), sigma, spec, y, X,
                  names, mixed, layout, fixed_rhs, data)


def _fit_lmm(formula: str, data: pd.DataFrame, columns: list[str]) -> tuple:
    """Fixed effects, their covariance and the residual SD of a REML ``peerstats.lmm`` fit."""
    from peerstats.models.lmm import lmm

    fit = lmm(formula, data)
    params = fit.params
    if sorted(params.index) != sorted(columns):
        raise ModelSpecificationError(
            f"the mixed model's fixed effects {list(params.index)} do not match the design "
            f"columns {columns}"
        )
    vc = fit.variance_components
    sigma = float(vc.loc[vc["group"] == "Residual", "sd"].iloc[0])
    return (params[columns].to_numpy(), fit.vcov.loc[columns, columns].to_numpy(), sigma)


def _columns(formula: str, data: pd.DataFrame) -> list[str]:
    """Data columns a formula names (word tokens that are columns)."""
    tokens = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", formula))
    return [c for c in data.columns if c in tokens]


def _check_inputs(
    data: Any,
    mediator_formula: str,
    outcome_formula: str,
    treatment: str,
    mediator: str,
    control_value: Any,
    treat_value: Any,
) -> pd.DataFrame:
    """Validate the call; return the complete-case rows both models use."""
    from peerstats.models._design import _split_formula

    if not isinstance(data, pd.DataFrame):
        raise SpecError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    for name, role in [(treatment, "treatment"), (mediator, "mediator")]:
        if name not in data.columns:
            raise SpecError(
                f"{role} {name!r} is not a column of data; columns are {list(data.columns)}"
            )
    if mediator == treatment:
        raise SpecError("the mediator cannot be the treatment itself")
    used = sorted(set(_columns(mediator_formula, data)) | set(_columns(outcome_formula, data)))
    d = data[used].dropna()
    if d[mediator].nunique() > 1 and (
        pd.Series(pd.factorize(d[mediator])[0]).equals(pd.Series(pd.factorize(d[treatment])[0]))
    ):
        raise SpecError(
            f"the mediator {mediator!r} is identical to the treatment {treatment!r} (a recoding of "
            "it); a mediator must be measured after treatment and vary within arms"
        )
    m_lhs, m_rhs = _split_formula(mediator_formula)
    if m_lhs != mediator:
        raise SpecError(
            f"the mediator formula's outcome is {m_lhs!r}, not the mediator {mediator!r}"
        )
    if treatment not in _columns(m_rhs, d):
        raise SpecError(f"the mediator formula must contain the treatment {treatment!r}")
    o_lhs, o_rhs = _split_formula(outcome_formula)
    for name in (treatment, mediator):
        if name not in _columns(o_rhs, d):
            raise SpecError(f"the outcome formula must contain {name!r}")
    if o_lhs in (treatment, mediator):
        raise SpecError("the outcome cannot be the treatment or the mediator")
    values = set(d[treatment].unique())
    for v in (control_value, treat_value):
        if v not in values:
            raise SpecError(
                f"treatment value {v!r} not found in {treatment!r}; values are {sorted(values)}"
            )
    if len(d) < 10:
        raise SpecError(f"only {len(d)} complete rows; mediation needs more data")
    return d.reset_index(drop=True)


@dataclass
class _Designs:
    """Counterfactual designs: mediator X_M(t) and outcome A_t + m B_t for t in (0, 1)."""

    xm: tuple[np.ndarray, np.ndarray]
    a: tuple[np.ndarray, np.ndarray]
    b: tuple[np.ndarray, np.ndarray]


def _designs(
    d: pd.DataFrame,
    med: _Model,
    out: _Model,
    treatment: str,
    mediator: str,
    values: tuple[Any, Any],
) -> _Designs:
    xm, a, b = [], [], []
    for v in values:
        dt = d.assign(**{treatment: v})
        xm.append(med.design(dt))
        x0, x1, x2 = (out.design(dt.assign(**{mediator: float(m)})) for m in (0, 1, 2))
        if np.abs(x2 - 2 * x1 + x0).max() > 1e-8 * max(1.0, np.abs(x2).max()):
            raise ModelSpecificationError(
                f"the mediator {mediator!r} must enter the outcome model linearly (interactions "
                "with treatment or covariates are fine; powers and splines of it are not)"
            )
        a.append(x0)
        b.append(x1 - x0)
    if np.allclose(xm[0], xm[1]):
        raise ModelSpecificationError("the mediator model does not depend on the treatment")
    return _Designs(tuple(xm), tuple(a), tuple(b))


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def _mean_outcome(
    lin_a: np.ndarray,
    lin_b: np.ndarray,
    mu: np.ndarray,
    sigma: float,
    med_family: str,
    out_family: str,
) -> np.ndarray:
    """E over units and over M ~ F(mu) of E[Y | t, M]; arrays n x S, returns S."""
    if out_family == "gaussian":
        return (lin_a + lin_b * mu).mean(axis=0)
    if med_family == "binomial":
        return (mu * _expit(lin_a + lin_b) + (1 - mu) * _expit(lin_a)).mean(axis=0)
    x, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    w = w / w.sum()
    total = np.zeros(lin_a.shape[1])
    for xk, wk in zip(x, w):
        total += wk * _expit(lin_a + lin_b * (mu + sigma * xk)).mean(axis=0)
    return total


def _effects(
    des: _Designs,
    med: _Model,
    out: _Model,
    theta_m: np.ndarray,
    theta_y: np.ndarray,
    sigma: np.ndarray | float,
) -> dict[str, np.ndarray]:
    """d0, d1, z0, z1, tau for each parameter draw (theta arrays S x p)."""
    mu = []
    for t in (0, 1):
        eta = des.xm[t] @ theta_m.T
        mu.append(eta if med.family == "gaussian" else _expit(eta))
    ey = {}
    for t in (0, 1):
        la, lb = des.a[t] @ theta_y.T, des.b[t] @ theta_y.T
        for tm in (0, 1):
            ey[t, tm] = _mean_outcome(la, lb, mu[tm], sigma, med.family, out.family)
    d0, d1 = ey[0, 1] - ey[0, 0], ey[1, 1] - ey[1, 0]
    z0, z1 = ey[1, 0] - ey[0, 0], ey[1, 1] - ey[0, 1]
    tau = ey[1, 1] - ey[0, 0]
    return {"d0": d0, "d1": d1, "z0": z0, "z1": z1, "tau": tau}


def _table(eff: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ten reported quantities from d0, d1, z0, z1, tau (each a vector)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n0, n1 = eff["d0"] / eff["tau"], eff["d1"] / eff["tau"]
    return {
        "acme": (eff["d0"] + eff["d1"]) / 2,
        "ade": (eff["z0"] + eff["z1"]) / 2,
        "total": eff["tau"],
        "prop_mediated": (n0 + n1) / 2,
        "acme_control": eff["d0"],
        "acme_treated": eff["d1"],
        "ade_control": eff["z0"],
        "ade_treated": eff["z1"],
        "prop_mediated_control": n0,
        "prop_mediated_treated": n1,
    }


def _simulate_qb(des, med, out, sims, rng) -> dict[str, np.ndarray]:
    tm = rng.multivariate_normal(med.coef, med.vcov, size=sims, method="cholesky")
    ty = rng.multivariate_normal(out.coef, out.vcov, size=sims, method="cholesky")
    chunks = [
        _effects(des, med, out, tm[i : i + 250], ty[i : i + 250], med.sigma)
        for i in range(0, sims, 250)
    ]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _simulate_boot(des: _Designs, med: _Model, out: _Model, sims: int, rng) -> dict:
    """Nonparametric bootstrap: resample rows, refit both models, recompute the plug-in effects.

    The counterfactual designs of a resample are the resampled rows of the full-data designs
    (formula terms are row-wise), so nothing is rebuilt from the formulas.
    """
    draws: dict[str, list[float]] = {k: [] for k in ("d0", "d1", "z0", "z1", "tau")}
    n = med.y.size
    for _ in range(sims):
        idx = rng.integers(0, n, size=n)
        cm, _, sm = _fit_arrays(med.y[idx], med.X[idx], med.family)
        co, _, _ = _fit_arrays(out.y[idx], out.X[idx], out.family)
        sub = _Designs(tuple(x[idx] for x in des.xm), tuple(x[idx] for x in des.a),
                       tuple(x[idx] for x in des.b))
        eff = _effects(sub, med, out, np.asarray(cm)[None, :], np.asarray(co)[None, :], sm)
        for k in draws:
            draws[k].append(float(eff[k][0]))
    return {k: np.asarray(v) for k, v in draws.items()}


def mediation(
    data: pd.DataFrame,
    *,
    mediator_formula: str,
    outcome_formula: str,
    treatment: str,
    mediator: str,
    sims: int = 1000,
    seed: int | None = None,
    method: Literal["quasi-bayesian", "bootstrap"] = "quasi-bayesian",
    control_value: Any = 0,
    treat_value: Any = 1,
    level: float = 0.95,
    mediator_family: Family = "auto",
    outcome_family: Family = "auto",
) -> MediationResult:
    """Average causal mediation effect (ACME), direct effect (ADE), total effect, proportion mediated.

    Parameters
    ----------
    data : DataFrame
        One row per participant; rows missing any variable of either formula are dropped.
    mediator_formula, outcome_formula : str
        Model formulas, e.g. ``"hope ~ arm + hope_0 + site"`` and ``"qpr ~ arm + hope + qpr_0"``.
        The outcome formula may contain a treatment-by-mediator interaction; the mediator must
        enter it linearly. lme4-style random terms such as ``(1 | site)`` make a linear mixed
        model (:func:`peerstats.lmm`, REML); the effects are then those of the fixed part
        (quasi-Bayesian only, linear outcome model).
    treatment, mediator : str
        Column names. ``control_value`` / ``treat_value`` are the treatment's two values.
    sims : int
        Simulation draws (quasi-Bayesian) or bootstrap resamples.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.
    method : {"quasi-bayesian", "bootstrap"}
        Quasi-Bayesian: coefficients drawn from their asymptotic normal distribution (King,
        Tomz & Wittenberg 2000); bootstrap: rows resampled and both models refitted,
        percentile intervals.
    level : float
        Confidence level.
    mediator_family, outcome_family : {"auto", "gaussian", "binomial"}
        ``auto``: logistic when the variable is 0/1, otherwise linear (OLS).

    Returns
    -------
    MediationResult
        ``.effects`` indexed by ``acme, ade, total, prop_mediated`` (averages over the two
        treatment conditions) and their ``_control`` / ``_treated`` versions, with columns
        ``estimate, std_error, ci_lower, ci_upper, p_value``.

    Notes
    -----
    With Y(t, M(t')) the potential outcomes: ACME(t) = E[Y(t, M(1)) - Y(t, M(0))], ADE(t) =
    E[Y(1, M(t)) - Y(0, M(t))], total = E[Y(1, M(1)) - Y(0, M(0))], prop_mediated(t) =
    ACME(t) / total (Imai, Keele & Tingley 2010). Point estimates are plug-in values; for linear
    models without interaction ACME = beta_T(mediator model) x gamma_M(outcome model).
    Intervals are percentiles of the simulated effects; p is 2 min(Pr(draw > 0), Pr(draw < 0))
    as in R ``mediation``. Validated against R ``mediation`` 4.5 on JOBS II and the product of
    coefficients (``tests/effects/test_mediation.py``).
    """
    if method not in ("quasi-bayesian", "bootstrap"):
        raise SpecError(
            f"{method!r} is not a mediation method; methods are ['quasi-bayesian', 'bootstrap']"
        )
    if not 0 < level < 1:
        raise SpecError(f"level must be between 0 and 1, got {level!r}")
    if int(sims) < 2:
        raise SpecError(f"sims must be at least 2, got {sims!r}")
    d = _check_inputs(
        data, mediator_formula, outcome_formula, treatment, mediator, control_value, treat_value
    )
    med = _fit(mediator_formula, d, mediator_family, "mediator")
    out = _fit(outcome_formula, d, outcome_family, "outcome")
    values = (control_value, treat_value)
    des = _designs(d, med, out, treatment, mediator, values)
    if (med.mixed or out.mixed) and (method == "bootstrap" or out.family != "gaussian"):
        raise ModelSpecificationError(
            "with a mixed (random-intercept) model, mediation supports the quasi-Bayesian method "
            "with a linear outcome model (the effects are then the fixed-effect ones, exactly)"
        )
    point = _table(_effects(des, med, out, med.coef[None, :], out.coef[None, :], med.sigma))
    rng = np.random.default_rng(seed)
    if method == "quasi-bayesian":
        draws = _table(_simulate_qb(des, med, out, int(sims), rng))
    else:
        draws = _table(_simulate_boot(des, med, out, int(sims), rng))
    effects = _summarise(point, draws, level)
    return MediationResult(
        effects=effects,
        draws=pd.DataFrame(draws),
        method=method,
        sims=int(sims),
        level=level,
        n=len(d),
        treatment=treatment,
        mediator=mediator,
        _med=med,
        _out=out,
        _data=d,
        _designs=des,
    )


def _summarise(point: dict, draws: dict, level: float) -> pd.DataFrame:
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for k in _ROWS:
        s = draws[k][np.isfinite(draws[k])]
        p = 2 * min((s > 0).mean(), (s < 0).mean()) if s.size else np.nan
        rows.append(
            {
                "estimate": float(point[k][0]),
                "std_error": float(np.std(s, ddof=1)),
                "ci_lower": float(np.quantile(s, lo)),
                "ci_upper": float(np.quantile(s, hi)),
                "p_value": float(min(p, 1.0)),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(_ROWS, name="effect"))


@dataclass(repr=False, eq=False)
class MediationResult(SummaryRepr):
    """Result of :func:`mediation` (``effects`` table, simulation ``draws``, provenance)."""

    effects: pd.DataFrame
    draws: pd.DataFrame
    method: str
    sims: int
    level: float
    n: int
    treatment: str
    mediator: str
    _med: _Model = field(repr=False)
    _out: _Model = field(repr=False)
    _data: pd.DataFrame = field(repr=False)
    _designs: _Designs = field(repr=False)

    @property
    def coef(self) -> pd.Series:
        """Point estimates of the effects."""
        return self.effects["estimate"]

    @property
    def interaction(self) -> bool:
        """True when the ACME differs between the treated and control conditions."""
        e = self.effects["estimate"]
        return not np.isclose(e["acme_control"], e["acme_treated"], rtol=1e-10, atol=1e-12)

    def summary(self) -> str:
        """Plain-text table of the effects."""
        rows = list(_ROWS) if self.interaction else list(_ROWS[:4])
        head = (
            f"Causal mediation analysis ({self.method}, {self.sims} simulations, n = {self.n})\n"
            f"treatment: {self.treatment}; mediator: {self.mediator}; "
            f"{self.level:.0%} intervals\n"
        )
        return head + self.effects.loc[rows].to_string()

    def effect_records(self, *, outcome: str | None = None) -> list:
        """ACME, ADE and total effect as :class:`~peerstats.effects.EffectRecord` objects."""
        from peerstats.effects.record import EffectRecord

        words = {"acme": "indirect effect through", "ade": "direct effect, not through",
                 "total": "total effect; mediator"}
        out = []
        for key in ("acme", "ade", "total"):
            r = self.effects.loc[key]
            out.append(EffectRecord(
                outcome=outcome or self._out.formula.split("~")[0].strip(),
                scale="mean_difference" if self._out.family == "gaussian" else "risk_difference",
                estimate=r["estimate"], ci_lower=r["ci_lower"], ci_upper=r["ci_upper"],
                p_value=r["p_value"], comparison=f"{self.treatment}: treated vs control",
                population=f"complete cases (n = {self.n})", n_analysed=self.n,
                estimand=f"{key.upper()} ({words[key]} {self.mediator})",
                model=f"causal mediation analysis ({self.method}, {self.sims} simulations)",
                level=self.level, std_error=r["std_error"], extra={"effect": key},
            ))
        return out

    def sensitivity(self, *, rho: np.ndarray | None = None) -> MediationSensitivity:
        """ACME as a function of the mediator-outcome error correlation rho (Imai, Keele &
        Yamamoto 2010), for a linear mediator and a linear outcome model without interaction.

        Notes
        -----
        Closed form (IKY 2010, Theorem 2): ACME(rho) = beta2 (sigma_R / sigma_M)
        [rho_t - rho sqrt((1 - rho_t^2) / (1 - rho^2))], where beta2 is the treatment coefficient
        of the mediator model, sigma_M and sigma_R the residual scales of the mediator model and
        of the outcome model without the mediator, and rho_t the correlation of their residuals;
        ACME = 0 at rho = rho_t. Checked against R ``medsens`` (``tests/effects``).
        """
        return _sensitivity(self, rho)


@dataclass(repr=False, eq=False)
class MediationSensitivity(SummaryAsRepr):
    """The ACME over rho, the rho at which it is zero, and R^2 thresholds."""

    rho: np.ndarray
    acme: np.ndarray
    rho_at_zero: float
    r2_star_at_zero: float
    r2_tilde_at_zero: float

    @property
    def curve(self) -> pd.DataFrame:
        """Columns ``rho`` and ``acme``."""
        return pd.DataFrame({"rho": self.rho, "acme": self.acme})

    def summary(self) -> str:
        return (
            f"Sensitivity of the ACME to mediator-outcome confounding: ACME = 0 at rho = "
            f"{self.rho_at_zero:.4f} (R2* = {self.r2_star_at_zero:.4f}, R2~ = "
            f"{self.r2_tilde_at_zero:.4f})"
        )

    def plot(self, *, ax: Any = None) -> Any:
        """ACME against rho with the zero line and the rho at which the ACME vanishes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        ax.plot(self.rho, self.acme, color="black")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.axvline(self.rho_at_zero, color="0.5", ls="--", lw=0.8)
        ax.set_xlabel("Sensitivity parameter ρ (mediator–outcome error correlation)")
        ax.set_ylabel("Average causal mediation effect")
        ax.set_title(f"ACME = 0 at ρ = {self.rho_at_zero:.3f}", fontsize=10)
        return ax


def _sensitivity(res: MediationResult, rho: np.ndarray | None) -> MediationSensitivity:
    med, out, des = res._med, res._out, res._designs
    if med.family != "gaussian" or out.family != "gaussian" or res.interaction:
        raise ModelSpecificationError(
            "the sensitivity analysis is implemented for a linear mediator and a linear outcome "
            "model without treatment-by-mediator interaction"
        )
    beta2 = float(((des.xm[1] - des.xm[0]) @ med.coef).mean())
    med_cols = np.abs(des.b[0]).max(axis=0) > 0
    X_r = out.X[:, ~med_cols]
    e_r = out.y - X_r @ np.linalg.lstsq(X_r, out.y, rcond=None)[0]
    e_m = med.y - med.X @ med.coef
    rho_t = float(np.corrcoef(e_m, e_r)[0, 1])
    scale = float(np.linalg.norm(e_r) / np.linalg.norm(e_m))
    grid = np.linspace(-0.99, 0.99, 199) if rho is None else np.asarray(rho, dtype=float)
    acme = beta2 * scale * (rho_t - grid * np.sqrt((1 - rho_t**2) / (1 - grid**2)))
    r2_m = 1 - e_m.var() / med.y.var()
    r2_y = 1 - (out.y - out.X @ out.coef).var() / out.y.var()
    return MediationSensitivity(grid, acme, rho_t, rho_t**2, rho_t**2 * (1 - r2_m) * (1 - r2_y))
