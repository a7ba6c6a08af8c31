"""Heterogeneity of the treatment effect across sites or countries.

Per-site effects come from one model: the primary model of :func:`peerstats.analyze` with
``site * arm * visit`` added (the site-specific arm contrast at the visit, equal-weight marginal
means). Their random-effects meta-analysis (tau^2 by REML, I^2, H^2, Cochran's Q, the pooled
effect and the prediction interval of a new site's effect) follows R ``metafor::rma(method =
"REML")`` (Viechtbauer 2010, J Stat Softw 36(3)); statsmodels' ``combine_effects`` offers only
DerSimonian-Laird and Paule-Mandel, so REML is written here (Fisher scoring, Viechtbauer 2005).

Validated in ``tests/effects/test_heterogeneity.py`` against metafor on the per-site estimates of
the bundled ``social_inclusion`` trial (``tests/reference/r_effects19/``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.effects._printable import SummaryRepr
from peerstats.exceptions import ConvergenceError, DataWarning, SpecError

__all__ = [
    "meta_analysis", "MetaAnalysis", "site_heterogeneity", "SiteHeterogeneity",
    "random_site_effect", "RandomSiteEffect",
]


def _reml_tau2(y: np.ndarray, v: np.ndarray, tol: float = 1e-12, maxiter: int = 1000) -> tuple:
    """REML tau^2 by Fisher scoring; returns (tau2, trace(PP) at the estimate)."""
    k = y.size
    tau2 = max(0.0, float(np.var(y, ddof=1) - v.mean()))  # metafor's start (Hedges' estimator)
    for _ in range(maxiter):
        w = 1.0 / (v + tau2)
        P = np.diag(w) - np.outer(w, w) / w.sum()
        Py = P @ y
        trPP = float(np.sum(P * P.T))
        step = (float(Py @ Py) - float(np.trace(P))) / trPP
        new = max(0.0, tau2 + step)
        if abs(new - tau2) < tol * max(1.0, tau2):
            tau2 = new
            break
        tau2 = new
    else:
        raise ConvergenceError(f"REML estimate of tau^2 did not converge in {maxiter} iterations")
    w = 1.0 / (v + tau2)
    P = np.diag(w) - np.outer(w, w) / w.sum()
    return tau2, float(np.sum(P * P.T)), k


@dataclass(frozen=True, repr=False)
class MetaAnalysis(SummaryRepr):
    """Random-effects meta-analysis (create with :func:`meta_analysis`)."""

    estimates: pd.DataFrame
    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    pi_lower: float
    pi_upper: float
    p_value: float
    tau2: float
    se_tau2: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p_value: float
    k: int
    test: str
    level: float

    @property
    def tau(self) -> float:
        """Between-site SD of the effect."""
        return float(np.sqrt(self.tau2))

    def to_frame(self) -> pd.DataFrame:
        keys = ["estimate", "std_error", "ci_lower", "ci_upper", "pi_lower", "pi_upper",
                "p_value", "tau2", "tau", "se_tau2", "i2", "h2", "q", "q_df", "q_p_value", "k"]
        return pd.DataFrame({k: [getattr(self, k)] for k in keys})

    def summary(self) -> str:
        return (
            f"Random-effects meta-analysis (REML, {self.test} test), k = {self.k}\n"
            f"pooled {self.estimate:.4f} [{self.ci_lower:.4f}, {self.ci_upper:.4f}], "
            f"prediction interval [{self.pi_lower:.4f}, {self.pi_upper:.4f}]\n"
            f"tau^2 = {self.tau2:.4f} (SE {self.se_tau2:.4f}), I^2 = {self.i2:.1f}%, "
            f"H^2 = {self.h2:.3f}, Q = {self.q:.3f} on {self.q_df} df (p = {self.q_p_value:.4f})"
        )


def meta_analysis(
    estimates: Any,
    std_errors: Any,
    *,
    labels: Any = None,
    test: Literal["z", "knha"] = "z",
    level: float = 0.95,
) -> MetaAnalysis:
    """Random-effects meta-analysis of effect estimates, tau^2 by REML.

    Parameters
    ----------
    estimates, std_errors : array-like
        One effect and its standard error per site (or study).
    labels : array-like, optional
        Names of the sites.
    test : {"z", "knha"}
        Normal intervals (metafor's default) or the Knapp-Hartung t intervals.
    level : float
        Confidence level (also of the prediction interval).

    Notes
    -----
    tau^2 maximises the restricted likelihood (Fisher scoring: tau^2 += (y'PPy - tr P) / tr PP,
    P = W - W11'W / 1'W1, W = diag 1/(v_i + tau^2), truncated at 0); SE(tau^2) = sqrt(2 / tr PP).
    I^2 = 100 tau^2 / (tau^2 + s^2), H^2 = (tau^2 + s^2) / s^2 with the typical within-site
    variance s^2 = (k - 1) sum w / ((sum w)^2 - sum w^2), w = 1/v_i (Higgins & Thompson 2002).
    Q = sum w (y - ybar_FE)^2. Prediction interval: mu +/- crit sqrt(SE^2 + tau^2) (Riley,
    Higgins & Deeks 2011, as metafor's ``predict``). Equal to R ``metafor::rma(method="REML")``
    (``tests/effects/test_heterogeneity.py``).
    """
    y = np.asarray(estimates, dtype=float).ravel()
    se = np.asarray(std_errors, dtype=float).ravel()
    if y.shape != se.shape:
        raise SpecError("estimates and std_errors must have the same length")
    if y.size < 2:
        raise SpecError("a meta-analysis needs at least two sites")
    if not (np.isfinite(y).all() and np.isfinite(se).all()) or (se <= 0).any():
        raise SpecError("estimates must be finite and standard errors finite and positive")
    if test not in ("z", "knha"):
        raise SpecError(f"{test!r} is not a test; tests are ['z', 'knha']")
    v = se**2
    tau2, trPP, k = _reml_tau2(y, v)
    w_fe = 1.0 / v
    mu_fe = float(np.sum(w_fe * y) / w_fe.sum())
    q = float(np.sum(w_fe * (y - mu_fe) ** 2))
    s2 = (k - 1) * w_fe.sum() / (w_fe.sum() ** 2 - np.sum(w_fe**2))
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / w.sum())
    se_mu = float(np.sqrt(1.0 / w.sum()))
    if test == "knha":
        se_mu = float(np.sqrt(np.sum(w * (y - mu) ** 2) / ((k - 1) * w.sum())))
        crit = float(stats.t.ppf(0.5 + level / 2, k - 1))
        p = float(2 * stats.t.sf(abs(mu / se_mu), k - 1))
    else:
        crit = float(stats.norm.ppf(0.5 + level / 2))
        p = float(2 * stats.norm.sf(abs(mu / se_mu)))
    half_pi = crit * np.sqrt(se_mu**2 + tau2)
    names = list(labels) if labels is not None else [str(i + 1) for i in range(k)]
    est = pd.DataFrame({"estimate": y, "std_error": se, "weight": 100 * w / w.sum()},
                       index=pd.Index(names, name="site"))
    return MetaAnalysis(
        estimates=est, estimate=mu, std_error=se_mu, ci_lower=mu - crit * se_mu,
        ci_upper=mu + crit * se_mu, pi_lower=mu - half_pi, pi_upper=mu + half_pi, p_value=p,
        tau2=tau2, se_tau2=float(np.sqrt(2.0 / trPP)), i2=100 * tau2 / (tau2 + s2),
        h2=(tau2 + s2) / s2, q=q, q_df=k - 1, q_p_value=float(stats.chi2.sf(q, k - 1)), k=k,
        test=test, level=level,
    )


@dataclass(frozen=True, repr=False)
class SiteHeterogeneity(SummaryRepr):
    """Per-site treatment effects and their meta-analysis (create with
    :func:`site_heterogeneity`)."""

    outcome: str
    visit: str
    site: str
    effects: pd.DataFrame
    meta: MetaAnalysis
    reference: str
    treatment: str

    def summary(self) -> str:
        return (f"Treatment effect ({self.treatment} - {self.reference}) on {self.outcome} at "
                f"{self.visit} by {self.site}\n{self.effects.to_string()}\n{self.meta.summary()}")

    def plot(self, *, ax: Any = None) -> Any:
        """Per-site forest with the pooled effect and its prediction interval."""
        from peerstats.effects._subgroup_plot import site_forest

        return site_forest(self, ax=ax)


def site_heterogeneity(
    trial: Any,
    *,
    outcome: str,
    visit: str | None = None,
    site: str = "site",
    df: str = "satterthwaite",
    level: float = 0.95,
    test: Literal["z", "knha"] = "z",
) -> SiteHeterogeneity:
    """Treatment effect in each site (one model, site-by-arm-by-visit interaction) and their
    REML random-effects meta-analysis (I^2, tau^2, prediction interval).

    Notes
    -----
    Model: the primary model of :func:`peerstats.analyze` plus ``site * arm * visit``; each site's
    effect is the arm contrast of equal-weight marginal means at ``visit`` within the site. The
    meta-analysis is :func:`meta_analysis`. Every site needs analysed participants in both arms.
    """
    from peerstats.effects.subgroups import _check_cells, _diff_rows, _tests
    from peerstats.models.analyze import analyze

    spec = trial.spec
    post = list(spec.visits)[1:]
    many = len(post) > 1
    visit = str(visit if visit is not None else post[-1])
    if visit not in post:
        raise SpecError(f"{visit!r} is not a post-baseline visit; visits are {post}")
    a = trial.assessments
    if site not in a.columns:
        raise SpecError(f"{site!r} is not a column of the assessments; columns are {list(a.columns)}")
    arms = [str(x) for x in spec.arms.levels]
    ref = str(spec.arms.reference or arms[0])
    trt = [x for x in arms if x != ref][0]
    rows = a[(a["visit"].astype(str) == visit) & a[outcome].notna()]
    if f"{outcome}_baseline" in rows.columns:
        rows = rows[rows[f"{outcome}_baseline"].notna()]
    cells = rows[["subject", "arm"]].assign(level=rows[site].astype(str))
    _check_cells(cells, site, arms)
    term = f"{site} * arm * visit" if many else f"{site} * arm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fit = analyze(trial, outcome=outcome, df=df, level=level, terms=[term]).fit
    order = [str(x) for x in (fit._design.natural_order.get(site) or fit._design.factors[site])]
    L = _diff_rows(fit, site, visit if many else None, ref, trt, order)
    res = _tests(fit, L, level)  # fit.test of each row, one frame (issue 22)
    res.index = pd.Index(order, name=site)
    res["n"] = cells.groupby("level")["subject"].nunique().reindex(order).to_numpy()
    meta = meta_analysis(res["estimate"], res["std_error"], labels=order, test=test, level=level)
    return SiteHeterogeneity(outcome, visit, site, res, meta, ref, trt)


@dataclass(frozen=True, repr=False)
class RandomSiteEffect(SummaryRepr):
    """A random treatment-by-site effect in the primary model (create with
    :func:`random_site_effect`)."""

    outcome: str
    visit: str
    site: str
    sd: float
    estimate: float
    std_error: float
    pi_lower: float
    pi_upper: float
    loglik: float
    loglik_null: float
    lrt: float
    p_value: float
    level: float
    fit: Any

    def summary(self) -> str:
        return (
            f"Random treatment-by-{self.site} effect on {self.outcome}: SD {self.sd:.4f}; effect at "
            f"{self.visit} {self.estimate:.4f} (SE {self.std_error:.4f}), {self.level:.0%} "
            f"prediction interval for a new {self.site} [{self.pi_lower:.4f}, {self.pi_upper:.4f}]"
            f"\nREML likelihood-ratio test of SD = 0: {self.lrt:.4f}, p = {self.p_value:.4f} "
            "(boundary: 0.5 chi2(0) + 0.5 chi2(1))"
        )


def random_site_effect(
    trial: Any,
    *,
    outcome: str,
    visit: str | None = None,
    site: str = "site",
    level: float = 0.95,
) -> RandomSiteEffect:
    """The primary model with a random treatment-by-site effect: its SD, the prediction
    interval of a new site's effect, and the likelihood-ratio test against the primary model.

    Notes
    -----
    Model: the primary MMRM (unstructured residual covariance across visits) plus
    ``(0 + treated | site)``, ``treated`` = 1 in the treatment arm; REML (``peerstats.lmm``).
    LRT: 2 (l_REML(random) - l_REML(primary)), same fixed effects, p from the boundary mixture
    0.5 chi2(0) + 0.5 chi2(1) (Self & Liang 1987). Prediction interval: estimate +/- z
    sqrt(SE^2 + SD^2) (Higgins, Thompson & Spiegelhalter 2009, normal quantile as metafor).
    Validated against ``nlme::lme`` (``tests/effects/test_heterogeneity.py``).
    """
    from peerstats.effects._subgroup_refit import _TrialView
    from peerstats.models.analyze import analyze

    spec = trial.spec
    post = list(spec.visits)[1:]
    visit = str(visit if visit is not None else post[-1])
    if visit not in post:
        raise SpecError(f"{visit!r} is not a post-baseline visit; visits are {post}")
    if spec.arms.group_delivered:
        raise SpecError("random_site_effect supports trials without group-delivered arms")
    arms = [str(x) for x in spec.arms.levels]
    ref = str(spec.arms.reference or arms[0])
    a = trial.assessments
    if site not in a.columns:
        raise SpecError(f"{site!r} is not a column of the assessments; columns are {list(a.columns)}")
    if "treated" in a.columns:
        raise SpecError("the assessments already have a column 'treated'")
    view = _TrialView(trial, trial.participants)
    view.assessments = a.assign(treated=(a["arm"].astype(str) != ref).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        null = analyze(trial, outcome=outcome, level=level)
        alt = analyze(view, outcome=outcome, level=level, covariance="us",
                      random=f"(0 + treated | {site})")
    vc = alt.fit.variance_components
    sd = float(vc.loc[vc["group"] == site, "sd"].iloc[0])
    row = alt.contrasts[alt.contrasts["visit"].astype(str) == visit].iloc[0]
    lrt = max(0.0, 2 * (alt.fit.loglik - null.fit.loglik))
    half = float(stats.norm.ppf(0.5 + level / 2)) * np.sqrt(row["std_error"] ** 2 + sd**2)
    return RandomSiteEffect(
        outcome=outcome, visit=visit, site=site, sd=sd, estimate=float(row["estimate"]),
        std_error=float(row["std_error"]), pi_lower=float(row["estimate"] - half),
        pi_upper=float(row["estimate"] + half), loglik=float(alt.fit.loglik),
        loglik_null=float(null.fit.loglik), lrt=lrt,
        p_value=float(0.5 * stats.chi2.sf(lrt, 1)) if lrt > 0 else 1.0, level=level,
        fit=alt.fit,
    )
