"""Cox proportional hazards: ``peerstats.coxph`` (strata, robust cluster variance, gamma frailty).

Why our own engine and not lifelines' ``CoxPHFitter``: lifelines has no shared frailty, no
Breslow option and its cluster variance is not R's; R's answers need the same partial
likelihood, the same tie handling and the same frailty search, which
:mod:`peerstats.survival._engine` and :mod:`peerstats.survival._frailty` implement.

Cause-specific Cox models are ordinary Cox models in which the other causes are censored:
``coxph("arm", data.assign(ev=lambda d: (d.status == 1).astype(int)), time=..., event="ev")``
(:func:`peerstats.cumulative_incidence` documents the event codes).

Validated against R survival 3.5.3 (``coxph``, ``cox.zph``) on carData's Rossi and a synthetic
trial with delivery groups: tests/reference/r_survival/.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import ConvergenceError, ModelSpecificationError
from ..models._design import build_fixed_design, choice
from ._data import check_columns, check_events, check_times
from ._engine import RiskSets, evaluate, newton, score_residuals
from ._frailty import fit_gamma_frailty

__all__ = ["coxph", "CoxResult"]

Ties = Literal["efron", "breslow"]


def _design(rhs: str, data: pd.DataFrame, time: str, extra: list[str]):
    rhs = rhs.strip()
    if rhs.startswith("~"):
        rhs = rhs[1:].strip()
    if not rhs:
        raise ModelSpecificationError("rhs is empty; give terms such as 'arm + age'")
    design = build_fixed_design(f"{time} ~ {rhs}", data, extra_columns=extra)
    keep = [i for i, c in enumerate(design.columns) if c != "Intercept"]
    x = design.X[:, keep]
    names = [design.columns[i] for i in keep]
    if not names:
        raise ModelSpecificationError(f"rhs {rhs!r} has no terms besides the intercept")
    return rhs, x, names, design


def _check_estimable(x: np.ndarray, names: list[str], event: np.ndarray) -> None:
    """A 0/1 column whose level has no events has an infinite MLE: refuse it by name."""
    for j, name in enumerate(names):
        col = x[:, j]
        if np.isin(col, (0.0, 1.0)).all() and np.unique(col).size == 2:
            for level in (0.0, 1.0):
                if event[col == level].sum() == 0:
                    who = name if level == 1.0 else f"the reference of {name}"
                    raise ModelSpecificationError(
                        f"no events among the participants of {who} (all censored): the "
                        "hazard ratio is not estimable (its estimate is infinite). Report the "
                        "events per arm, or use kaplan_meier / rmst."
                    )


def coxph(
    rhs: str,
    data: pd.DataFrame,
    *,
    time: str,
    event: str,
    strata: str | None = None,
    cluster: str | None = None,
    frailty: str | None = None,
    ties: Ties = "efron",
    level: float = 0.95,
) -> CoxResult:
    """Fit a Cox proportional hazards model.

    Parameters
    ----------
    rhs : str
        Right-hand side, ``"arm + age"`` (a leading ``~`` is allowed). Categorical columns get
        treatment coding with the first (sorted or Categorical-ordered) level as reference.
    data : DataFrame
        One row per participant.
    time, event : str
        Follow-up time (>= 0) and event indicator (1 event, 0 censored; booleans accepted).
    strata : str, optional
        Separate baseline hazards per level (R ``strata(site)``).
    cluster : str, optional
        Robust (sandwich) variance summed over clusters, R ``cluster = group``:
        ``std_error`` is then R's ``robust se``; ``naive_std_error`` is kept.
    frailty : str, optional
        Shared gamma frailty per level, R ``+ frailty(group)`` (``method = "em"``).
    ties : {"efron", "breslow"}
    level : float
        Confidence level.

    Returns
    -------
    CoxResult

    Notes
    -----
    Maximises the log partial likelihood (Efron or Breslow ties) by Newton-Raphson. Variance:
    inverse information; with ``cluster`` the robust variance ``V (sum_c U_c U_c') V`` from the
    score residuals U summed within clusters (Lin & Wei 1989); with ``frailty`` R's
    ``se(coef)`` (and ``se2`` as a column). Wald z tests and CIs on the log scale.
    Validated against R survival 3.5.3 (tests/reference/r_survival/): coefficients within 1e-6
    relative, SEs within 1e-5.
    """
    ties = choice("ties", ties, ("efron", "breslow"))
    if cluster is not None and frailty is not None:
        raise ModelSpecificationError("give cluster= or frailty=, not both")
    extra = [c for c in (event, strata, cluster, frailty) if c is not None]
    check_columns(data, [time, *extra])
    t = check_times(data, time, others=extra, context="coxph")
    e = check_events(data, event, t, context="coxph")
    rhs, x, names, design = _design(rhs, data, time, list(dict.fromkeys(extra)))
    _check_estimable(x, names, e)
    if e.sum() == 0:
        raise ModelSpecificationError("no events in the data: a Cox model cannot be fitted")
    codes = None if strata is None else pd.factorize(data[strata])[0]
    prep = RiskSets.build(t, e, codes, ties)
    xs = x[prep.order]
    xs = xs - xs.mean(axis=0)
    fit = _fit(prep, xs, data, frailty, names)
    return CoxResult(
        rhs=rhs, names=names, fit=fit, prep=prep, x=xs, data=data, cluster=cluster,
        ties=ties, level=level, n=len(data), events=int(e.sum()), strata=strata,
        frailty=frailty,
    )


def _fit(prep: RiskSets, xs: np.ndarray, data, frailty, names) -> dict:
    # the products here have p (or p + groups) columns: one BLAS thread is fastest, and many
    # threads on a loaded machine are many times slower (measured in bench_survival.py)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_single_thread(prep, xs, data, frailty, names)


def _fit_single_thread(prep: RiskSets, xs: np.ndarray, data, frailty, names) -> dict:
    p = xs.shape[1]
    null = evaluate(prep, xs, np.zeros(prep.n), info=False).loglik
    if frailty is not None:
        group = data[frailty].to_numpy()[prep.order]
        fr = fit_gamma_frailty(prep, xs, group)
        return {
            "beta": fr.beta, "var": fr.var, "var2": fr.var2, "loglik": fr.loglik,
            "null": null, "theta": fr.theta, "frail": fr.frail, "history": fr.history,
            "iterations": fr.iterations,
        }

    def fun(beta):
        ev = evaluate(prep, xs, xs @ beta)
        return ev.loglik, ev.score, ev.info

    beta, ll, _, info, it, ok = newton(fun, np.zeros(p))
    if not ok or not np.all(np.isfinite(beta)):
        raise ConvergenceError(
            f"coxph did not converge after {it} Newton iterations (coefficients {list(beta)}); "
            "a covariate may separate events from censorings", tried=beta,
        )
    return {"beta": beta, "var": np.linalg.inv(info), "loglik": ll, "null": null,
            "theta": 0.0, "iterations": it}


class CoxResult:
    """A fitted Cox model: ``coef``, ``loglik``, ``theta``, ``zph()``, ``effect_records()``."""

    #: effect scale of the records (``fine_gray`` sets "subdistribution_hazard_ratio")
    scale = "hazard_ratio"

    def __init__(self, *, rhs, names, fit, prep, x, data, cluster, ties, level, n, events,
                 strata, frailty):
        self.rhs, self.names, self._fit, self._prep, self._x = rhs, names, fit, prep, x
        self._data, self.cluster, self.ties, self.level = data, cluster, ties, level
        self.n, self.events, self.strata, self.frailty = n, events, strata, frailty

    @property
    def params(self) -> pd.Series:
        """Log hazard ratios."""
        return pd.Series(self._fit["beta"], index=self.names, name="estimate")

    @property
    def loglik(self) -> float:
        """Log partial likelihood at the estimates (R ``fit$loglik[2]``)."""
        return float(self._fit["loglik"])

    @property
    def loglik_null(self) -> float:
        """Log partial likelihood at beta = 0 (R ``fit$loglik[1]``)."""
        return float(self._fit["null"])

    @property
    def theta(self) -> float:
        """Gamma frailty variance (0 without ``frailty=``)."""
        return float(self._fit["theta"])

    @property
    def frailties(self) -> np.ndarray | None:
        """Group log-frailties b (R ``fit$frail``), in sorted group order."""
        return self._fit.get("frail")

    @cached_property
    def naive_vcov(self) -> np.ndarray:
        """Model-based variance (inverse information; R ``fit$naive.var`` with cluster)."""
        return self._fit["var"]

    @cached_property
    def vcov(self) -> np.ndarray:
        """The variance behind ``std_error``: robust with ``cluster``, else model-based."""
        if self.cluster is None:
            return self.naive_vcov
        beta = self._fit["beta"]
        ev = evaluate(self._prep, self._x, self._x @ beta, info=False)
        u = score_residuals(self._prep, self._x, ev)
        groups = pd.factorize(self._data[self.cluster].to_numpy()[self._prep.order])[0]
        uc = np.zeros((groups.max() + 1, u.shape[1]))
        np.add.at(uc, groups, u)
        dfbeta = uc @ self.naive_vcov
        return dfbeta.T @ dfbeta

    @cached_property
    def coef(self) -> pd.DataFrame:
        """Tidy coefficients: log HR, SE, z, p, HR and its CI."""
        est = self._fit["beta"]
        se = np.sqrt(np.diag(self.vcov))
        z = est / se
        q = stats.norm.ppf(0.5 + self.level / 2)
        out = pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "statistic": z,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                "hazard_ratio": np.exp(est),
                "ci_lower": np.exp(est - q * se),
                "ci_upper": np.exp(est + q * se),
            },
            index=pd.Index(self.names, name="term"),
        )
        if self.cluster is not None:
            out["naive_std_error"] = np.sqrt(np.diag(self.naive_vcov))
        if "var2" in self._fit:
            out["se2"] = np.sqrt(np.diag(self._fit["var2"]))
        return out

    def to_frame(self) -> pd.DataFrame:
        """The coefficient table (``coef``)."""
        return self.coef

    def zph(self, transform: Literal["km", "identity", "rank", "log"] = "km"):
        """Schoenfeld-residual tests of proportional hazards (R ``cox.zph``)."""
        from .zph import cox_zph

        if self.frailty is not None or self._prep is None:
            raise ModelSpecificationError(
                "zph() is available for Cox fits without frailty (not for frailty or Fine-Gray)")
        return cox_zph(self, transform=transform)

    def effect_records(self, term: str | None = None, *, outcome: str = "", **fields):
        """Effect records (hazard ratios) for ``term`` (default: the first term)."""
        from ..effects.record import EffectRecord

        term = term or self.names[0]
        if term not in self.names:
            raise ModelSpecificationError(f"{term!r} is not a term; terms are {self.names}")
        row = self.coef.loc[term]
        if self.scale != "hazard_ratio":
            model = "Fine-Gray subdistribution hazards (cmprsk crr"
        else:
            model = f"Cox proportional hazards ({self.ties} ties"
        model += f", stratified by {self.strata}" if self.strata else ""
        model += f", robust SE clustered by {self.cluster}" if self.cluster else ""
        model += f", gamma frailty for {self.frailty}" if self.frailty else ""
        return [EffectRecord(
            outcome=outcome, scale=self.scale, estimate=float(row.hazard_ratio),
            ci_lower=float(row.ci_lower), ci_upper=float(row.ci_upper),
            p_value=float(row.p_value), std_error=float(row.std_error),
            statistic=float(row.statistic), level=self.level, model=model + ")",
            n_analysed=self.n, extra={"term": term, "events": self.events}, **fields,
        )]

    def summary(self) -> str:
        """Text summary."""
        head = (f"Cox model: {self.rhs}; n = {self.n}, events = {self.events}, ties = {self.ties}"
                f"; log partial likelihood {self.loglik:.4f}")
        if self.frailty:
            head += f"; frailty variance {self.theta:.4g}"
        return head + "\n" + self.coef.to_string()

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return f"<p>{self.summary().splitlines()[0]}</p>" + self.coef.to_html()


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2)) if 0 < level < 1 else math.nan
