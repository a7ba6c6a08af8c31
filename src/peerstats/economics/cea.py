"""Trial-based cost-effectiveness: incremental cost and QALYs, ICER, net benefit, CEAC.

``cost_effectiveness`` regresses each participant's total cost and QALYs on the arm and the
same covariates (baseline utility, the Manca et al. 2005 adjustment; strata), jointly:

- ``method="sur"``: seemingly unrelated regression (Zellner 1962; Willan, Briggs & Hoch 2004)
  by linearmodels' ``SUR`` (feasible GLS, homoskedastic covariance). The residual covariance uses
  R systemfit's default degrees-of-freedom convention, sigma_ij = e_i'e_j / sqrt((n-k_i)(n-k_j))
  ("geomean"; linearmodels ``debiased=True``), so coefficients and their covariance equal
  ``systemfit(method = "SUR")`` (tests/reference/r_economics/cea_sur.R).
- ``method="bootstrap"``: the same point estimates, and the non-parametric bootstrap of them
  (stratified by arm, clustered by delivery group when ``cluster`` is given; see
  ``_bootstrap``) for standard errors, bias-corrected percentile intervals and the CEAC.

Covariates may differ by equation (baseline cost for costs, baseline utility for QALYs): SUR is
then feasible GLS, and the bootstrap repeats OLS per equation. Missing costs or QALYs raise, or
are handled by an explicit choice: complete cases, or multiple imputation then the bootstrap
(``n_imputations``; :mod:`peerstats.economics.mi`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from peerstats._repr import SummaryAsRepr
from peerstats.economics._bootstrap import bc_interval, bootstrap_increments
from peerstats.exceptions import DataValidationError, ModelSpecificationError, SpecError

__all__ = ["cost_effectiveness", "CostEffectiveness"]

_METHODS = ("sur", "bootstrap")
_DEFAULT_WTP = (0.0, 10_000.0, 20_000.0, 30_000.0, 50_000.0)


# ------------------------------------------------------------------------------------------
# input checks and the design
# ------------------------------------------------------------------------------------------
def _check_args(data, cost, effect, arm, covariates, method, n_boot, wtp, level, cluster):
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if method not in _METHODS:
        raise SpecError(f"method must be one of {list(_METHODS)}, got {method!r}")
    if not 0 < level < 1:
        raise SpecError(f"level must be between 0 and 1, got {level!r}")
    if method == "bootstrap" and (not isinstance(n_boot, (int, np.integer)) or n_boot < 2):
        raise SpecError(
            f"n_boot must be an integer of at least 2 (1,000 or more for intervals), got {n_boot!r}"
        )
    cols = {"cost": cost, "effect": effect, "arm": arm, "cluster": cluster}
    cols.update({f"covariates {c!r}": c for c in _all_covariates(covariates)})
    for name, col in cols.items():
        if col is not None and col not in data.columns:
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )
    w = np.atleast_1d(np.asarray(wtp, dtype=float))
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any():
        raise SpecError(
            f"wtp must be willingness-to-pay values per unit of effect, each >= 0 and finite; got "
            f"{list(np.atleast_1d(wtp))}. 0 is allowed (net benefit = minus the incremental cost, "
            "the CEAC's left end); a negative value has no meaning"
        )
    if cluster is not None and method != "bootstrap":
        raise SpecError(
            "cluster= is used by the bootstrap (resampling whole delivery groups); the SUR "
            "covariance does not use it: pass method='bootstrap' with cluster="
        )
    return np.array(list(dict.fromkeys(w.tolist())))  # distinct, in the order given


def _per_equation(covariates) -> dict[str, list[str]]:
    """{"cost": [...], "effect": [...]} from a list (both equations) or a mapping."""
    if isinstance(covariates, str):
        raise SpecError(f"covariates must be a list of column names, e.g. [{covariates!r}]")
    if isinstance(covariates, Mapping):
        bad = set(covariates) - {"cost", "effect"}
        if bad:
            raise SpecError(
                f"covariates as a mapping takes the keys 'cost' and 'effect'; got {bad}"
            )
        return {k: list(covariates.get(k, [])) for k in ("cost", "effect")}
    return {"cost": list(covariates), "effect": list(covariates)}


def _all_covariates(covariates) -> list[str]:
    eq = _per_equation(covariates)
    return list(dict.fromkeys(eq["cost"] + eq["effect"]))


def _validate_values(data: pd.DataFrame, cost: str, effect: str, used: list[str]) -> None:
    rows = []
    for col in used:
        for i in np.flatnonzero(data[col].isna().to_numpy()):
            rows.append((data.index[i], col, None, "missing", f"{col} is missing"))
    c = pd.to_numeric(data[cost], errors="coerce")
    for i in np.flatnonzero((c < 0).to_numpy()):
        rows.append((data.index[i], cost, c.iloc[i], "negative_cost",
                     "a cost below 0: costs are resource use times unit costs, never negative"))  # fmt: skip
    if rows:
        f = pd.DataFrame(rows, columns=["row", "column", "value", "check", "message"])
        f.insert(0, "table", "cost_effectiveness")
        raise DataValidationError(
            f,
            context="cost-effectiveness data; impute missing costs and QALYs (peerstats.impute) "
            "or pass missing='complete_case' to analyse complete cases, and saying so",
        )


def _design(data, arm, covariates, reference):
    """The shared regressors: intercept, arm indicator, covariates (categorical -> dummies)."""
    levels = (
        list(data[arm].cat.categories)
        if isinstance(data[arm].dtype, pd.CategoricalDtype)
        else sorted(pd.unique(data[arm]), key=str)
    )
    levels = [lv for lv in levels if (data[arm] == lv).any()]
    if len(levels) != 2:
        raise ModelSpecificationError(
            f"{arm!r} must have exactly two arms for a cost-effectiveness comparison; found {levels}"
        )
    if reference is not None:
        if reference not in levels:
            raise SpecError(f"reference {reference!r} is not an arm; arms are {levels}")
        levels = [reference] + [lv for lv in levels if lv != reference]
    treated = levels[1]
    cols = {"const": np.ones(len(data)), f"arm[{treated}]": (data[arm] == treated).to_numpy(float)}
    for c in covariates:
        s = data[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            cols[c] = s.to_numpy(float)
        else:
            cats = pd.Categorical(s)
            for lv in cats.categories[1:]:
                cols[f"{c}[{lv}]"] = (cats == lv).astype(float)
    X = pd.DataFrame(cols, index=data.index)
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        raise ModelSpecificationError(
            f"the regressors {list(X.columns)} are collinear; drop a redundant covariate"
        )
    return X, levels


def _designs(data, arm, covariates, reference):
    """Regressors per equation ({"cost": X, "effect": X}), the arm levels, and the bootstrap
    blocks: one (X, [0, 1]) when both equations share regressors, else one per equation."""
    eq = _per_equation(covariates)
    Xc, levels = _design(data, arm, eq["cost"], reference)
    Xe = Xc if eq["effect"] == eq["cost"] else _design(data, arm, eq["effect"], reference)[0]
    if Xe is Xc:
        blocks = [(Xc.to_numpy(), [0, 1])]
    else:
        blocks = [(Xc.to_numpy(), [0]), (Xe.to_numpy(), [1])]
    return {"cost": Xc, "effect": Xe}, levels, blocks


def _sur(X: dict[str, pd.DataFrame], Y: pd.DataFrame):
    """linearmodels SUR (FGLS, unadjusted covariance, systemfit's geomean df convention)."""
    from peerstats.missing._linearmodels import hidden_xarray

    with hidden_xarray():  # linearmodels' optional xarray: 0.2-0.4 s to import, unused here
        from linearmodels.system import SUR

        eqs = {k: {"dependent": Y[[k]], "exog": X[k]} for k in ("cost", "effect")}
        return SUR(eqs).fit(method="gls", cov_type="unadjusted", debiased=True)


# ------------------------------------------------------------------------------------------
# the result
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False, eq=False)
class CostEffectiveness(SummaryAsRepr):
    """Result of :func:`cost_effectiveness`.

    Attributes
    ----------
    incremental : DataFrame
        Index ``cost``, ``effect``; columns ``estimate, std_error, ci_lower, ci_upper``.
    covariance : DataFrame
        2 x 2 covariance of the incremental cost and effect.
    nmb : DataFrame
        Incremental net monetary benefit per willingness to pay (index ``wtp``): ``estimate,
        std_error, ci_lower, ci_upper, prob_ce``.
    coefficients : DataFrame
        Every coefficient of both equations (``equation, term, estimate, std_error``).
    replicates : DataFrame or None
        Bootstrap replicates (``cost``, ``effect``), for the plane; None for SUR.
    """

    incremental: pd.DataFrame
    covariance: pd.DataFrame
    nmb: pd.DataFrame
    coefficients: pd.DataFrame
    method: str
    arms: tuple[str, str]
    n: int
    level: float
    df_residual: float
    replicates: pd.DataFrame | None = None
    details: dict = field(default_factory=dict)

    @property
    def coef(self) -> pd.Series:
        """Incremental cost and effect (the arm coefficients)."""
        return self.incremental["estimate"]

    @property
    def icer(self) -> float:
        """Incremental cost-effectiveness ratio, incremental cost / incremental effect."""
        d = self.incremental["estimate"]
        return float(d["cost"] / d["effect"]) if d["effect"] != 0 else math.nan

    @property
    def ceac(self) -> pd.DataFrame:
        """Cost-effectiveness acceptability curve: ``wtp``, ``prob_ce`` (one row per wtp)."""
        return self.nmb[["prob_ce"]].reset_index()

    def effect_records(self, **context: Any) -> list:
        """Incremental NMB (one record per wtp), incremental cost and incremental effect.

        ``context`` fills the records' descriptive fields (``outcome_label``, ``population``,
        ``n_randomised``, ``estimand``, ...).
        """
        from peerstats.effects import EffectRecord

        cmp = f"{self.arms[1]} vs {self.arms[0]}"
        model = {"sur": "seemingly unrelated regression of cost and QALYs (systemfit df)",
                 "bootstrap": "OLS of cost and QALYs, non-parametric bootstrap "
                              f"({self.details.get('n_boot')} replicates, BC percentile)"}[self.method]  # fmt: skip
        base = dict(comparison=cmp, n_analysed=self.n, model=model, level=self.level)
        base.update(context)
        out = []
        for wtp, r in self.nmb.iterrows():
            out.append(EffectRecord(
                outcome="incremental_nmb", scale="incremental_nmb", estimate=r["estimate"],
                ci_lower=r["ci_lower"], ci_upper=r["ci_upper"], std_error=r["std_error"],
                visit=None, extra={"wtp": float(wtp), "prob_ce": r["prob_ce"], "icer": self.icer},
                direction="positive net benefit favours " + str(self.arms[1]), **base))  # fmt: skip
        for name, scale in (("cost", "incremental_cost"), ("effect", "incremental_effect")):
            r = self.incremental.loc[name]
            out.append(EffectRecord(
                outcome=f"incremental_{name}", scale=scale, estimate=r["estimate"],
                ci_lower=r["ci_lower"], ci_upper=r["ci_upper"], std_error=r["std_error"],
                **base))  # fmt: skip
        return out

    def plot_plane(self, ax=None, **kw):
        """The cost-effectiveness plane (see :func:`peerstats.economics.plots.ce_plane`)."""
        from peerstats.economics.plots import ce_plane

        return ce_plane(self, ax=ax, **kw)

    def plot_ceac(self, ax=None, **kw):
        """The acceptability curve (see :func:`peerstats.economics.plots.ceac_plot`)."""
        from peerstats.economics.plots import ceac_plot

        return ceac_plot(self, ax=ax, **kw)

    def plot_evpi(self, ax=None, **kw):
        """Per-participant EVPI curve (see :func:`peerstats.economics.plots.evpi_plot`)."""
        from peerstats.economics.plots import evpi_plot

        return evpi_plot(self, ax=ax, **kw)

    def summary(self) -> str:
        """Incremental cost and effect, the ICER and the net benefit table, as text."""
        head = (
            f"Cost-effectiveness ({self.method}), {self.arms[1]} vs {self.arms[0]}, n = {self.n}\n"
            f"ICER = {self.icer:.6g} per unit of effect\n"
        )
        return head + self.incremental.to_string() + "\n\n" + self.nmb.to_string()

    def _repr_html_(self) -> str:
        return (
            f"<p>Cost-effectiveness ({html.escape(self.method)}), "
            f"{html.escape(str(self.arms[1]))} vs {html.escape(str(self.arms[0]))}, "
            f"n = {self.n}; ICER = {self.icer:.6g}</p>"
            + self.incremental.to_html()
            + self.nmb.to_html()
        )


# ------------------------------------------------------------------------------------------
# the two methods
# ------------------------------------------------------------------------------------------
def _wald(est: np.ndarray, se: np.ndarray, df: float, level: float):
    """Large-sample normal intervals (Willan, Briggs & Hoch 2004; Glick et al. 2007); ``df`` is
    kept for the record only."""
    q = stats.norm.ppf((1 + level) / 2)
    return est - q * se, est + q * se


def _nmb_parametric(inc, V, wtp, df, level):
    est = wtp * inc[1] - inc[0]
    se = np.sqrt(wtp**2 * V[1, 1] + V[0, 0] - 2 * wtp * V[0, 1])
    lo, hi = _wald(est, se, df, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        prob = stats.norm.cdf(est / se)
    return pd.DataFrame(
        {"estimate": est, "std_error": se, "ci_lower": lo, "ci_upper": hi, "prob_ce": prob},
        index=pd.Index(wtp, name="wtp"),
    )


def _nmb_bootstrap(inc, reps, wtp, level):
    est = wtp * inc[1] - inc[0]
    nmb_b = reps[:, [1]] * wtp[None, :] - reps[:, [0]]
    ci = bc_interval(nmb_b, est, level)
    return pd.DataFrame(
        {"estimate": est, "std_error": nmb_b.std(axis=0, ddof=1), "ci_lower": ci[:, 0],
         "ci_upper": ci[:, 1], "prob_ce": (nmb_b > 0).mean(axis=0)},
        index=pd.Index(wtp, name="wtp"),
    )  # fmt: skip


def _coef_table(fit) -> pd.DataFrame:
    p, s = fit.params, fit.std_errors
    eq, term = zip(*(name.split("_", 1) for name in p.index))
    return pd.DataFrame({"equation": eq, "term": term, "estimate": p.to_numpy(),
                         "std_error": s.to_numpy()})  # fmt: skip


def cost_effectiveness(
    data: pd.DataFrame,
    *,
    cost: str,
    effect: str,
    arm: str,
    covariates: Sequence[str] | Mapping[str, Sequence[str]] = (),
    method: Literal["sur", "bootstrap"] = "sur",
    n_boot: int = 1000,
    wtp: Sequence[float] = _DEFAULT_WTP,
    seed: Any = None,
    cluster: str | None = None,
    client: Any = None,
    level: float = 0.95,
    reference: Any = None,
    missing: Literal["error", "complete_case"] = "error",
    n_imputations: int | None = None,
) -> CostEffectiveness:
    """Incremental cost and effect, ICER, net monetary benefit and CEAC of a two-arm trial.

    Parameters
    ----------
    data : DataFrame
        One row per participant: total cost, effect (QALYs), arm, covariates.
    cost, effect, arm : str
        Columns. The reference arm is the first level (Categorical order, else sorted) unless
        ``reference`` names it; increments are the other arm minus the reference.
    covariates : list of str, or {"cost": [...], "effect": [...]}
        Regressors of both equations, e.g. ``["baseline_utility", "stratum"]`` (baseline utility
        is the Manca et al. 2005 adjustment of QALYs), or per equation (baseline cost in the
        cost equation, baseline utility in the QALY equation). Non-numeric columns become
        dummies. With different regressors, SUR differs from OLS; ``method="bootstrap"`` then
        bootstraps equation-by-equation OLS (``details["estimator"]`` says so).
    method : {"sur", "bootstrap"}
        ``"sur"``: seemingly unrelated regression, large-sample normal (Wald) intervals and
        the probability of cost-effectiveness Phi(NMB / SE(NMB)). ``"bootstrap"``: same point estimates, bootstrap
        SEs, bias-corrected percentile intervals and the proportion of replicates with positive
        net benefit.
    n_boot : int
        Bootstrap replicates (``method="bootstrap"``).
    wtp : sequence of float
        Willingness-to-pay values per unit of effect (>= 0; 0 is the cost-saving end of the
        CEAC; negative values raise :class:`~peerstats.exceptions.SpecError`).
    seed : int or SeedSequence, optional
        Root of the bootstrap's per-chunk seeds (same seed, same replicates, with or without
        ``client``).
    cluster : str, optional
        Delivery-group column: the bootstrap resamples whole groups within arm (participants
        with an empty group are their own unit, as in the partially nested design).
    client : dask.distributed.Client, optional
        Run the bootstrap's chunks on the workers (identical numbers).
    level : float
        Confidence level.
    reference : optional
        The reference arm level.
    missing : {"error", "complete_case"}
        Missing cost, effect or covariate values raise
        :class:`~peerstats.exceptions.DataValidationError` (default), or, opted in, the
        participants with any of them are left out (``details["n_excluded"]`` says how many).
    n_imputations : int, optional
        Multiple imputation of missing costs and effects, then the bootstrap of each completed
        set (``method="bootstrap"`` only; "MI then bootstrap, pooled sample", see
        :mod:`peerstats.economics.mi`): point estimates are the mean over imputations, SEs,
        intervals and the CEAC come from the M x ``n_boot`` pooled replicates. Arm and
        covariates must be complete.

    Returns
    -------
    CostEffectiveness

    Notes
    -----
    Both equations have the same regressors, so SUR point estimates equal OLS and
    ``Cov(d_C, d_E) = sigma_CE [(X'X)^{-1}]_{arm,arm}``. Incremental net monetary benefit
    NMB(lambda) = lambda d_E - d_C with variance lambda^2 V_EE + V_CC - 2 lambda V_CE (Willan et
    al. 2004). Validated against R ``systemfit(method = "SUR")`` 1.1.28 (coefficients, their
    covariance, NMB and its SE within 1e-6; tests/reference/r_economics/cea_sur.R) on synthetic
    data and on the MenSS pilot-trial data shipped with R ``missingHE``.
    """
    w = _check_args(data, cost, effect, arm, covariates, method, n_boot, wtp, level, cluster)
    _check_missing_options(missing, method, n_imputations)
    n_all = len(data)
    covs = _all_covariates(covariates)
    must = [arm, *covs] if n_imputations else [cost, effect, arm, *covs]
    if missing == "complete_case":
        data = data.dropna(subset=must)
    _validate_values(data, cost, effect, must)
    X, levels, blocks = _designs(data, arm, covariates, reference)
    Y = pd.DataFrame({"cost": data[cost].astype(float), "effect": data[effect].astype(float)})
    details = {"n_excluded": n_all - len(data), "seed": seed}
    dfr = float(len(Y) - max(X["cost"].shape[1], X["effect"].shape[1]))
    if n_imputations:
        inc, reps, fit = _mi_boot(data, blocks, Y, levels, cost, effect, arm, covs,
                                  n_imputations, n_boot, seed, cluster, client, details)  # fmt: skip
        V = None
    else:
        fit, inc, V, reps = _point_and_replicates(data, X, Y, blocks, levels, arm, method, n_boot,
                                                  seed, cluster, client, details)  # fmt: skip
    if method == "bootstrap":
        details.update(n_boot=int(n_boot), cluster=cluster)
    incremental, V, nmb = _uncertainty(inc, V, reps, w, dfr, level)
    idx = pd.Index(["cost", "effect"])
    return CostEffectiveness(
        incremental=incremental,
        covariance=pd.DataFrame(V, index=idx, columns=idx),
        nmb=nmb,
        coefficients=_coef_table(fit) if fit is not None else pd.DataFrame(),
        method=method if not n_imputations else "mi-bootstrap",
        arms=(str(levels[0]), str(levels[1])),
        n=len(Y),
        level=level,
        df_residual=dfr,
        replicates=None if reps is None else pd.DataFrame(reps, columns=["cost", "effect"]),
        details=details,
    )


def _check_missing_options(missing, method, n_imputations) -> None:
    """SpecError for an unknown ``missing`` or an ``n_imputations`` the method cannot use."""
    if missing not in ("error", "complete_case"):
        raise SpecError(f"missing must be 'error' or 'complete_case', got {missing!r}")
    if n_imputations is not None and (method != "bootstrap" or n_imputations < 2):
        raise SpecError(
            "n_imputations (MI then bootstrap) needs method='bootstrap' and at least 2 "
            f"imputations; got method={method!r}, n_imputations={n_imputations!r}"
        )


def _point_and_replicates(data, X, Y, blocks, levels, arm, method, n_boot, seed, cluster, client,
                          details):  # fmt: skip
    """The point fit (:func:`_point`) and, for the bootstrap, the replicates of the increments."""
    fit, inc, V = _point(X, Y, blocks, method, details)
    reps = None
    if method == "bootstrap":
        cl = None if cluster is None else data[cluster].astype(object).to_numpy()
        reps = bootstrap_increments(
            blocks, Y.to_numpy(), col=1, arm_codes=(data[arm] == levels[1]).to_numpy(int),
            cluster=cl, n_boot=int(n_boot), seed=seed, client=client,
        )  # fmt: skip
    return fit, inc, V, reps


def _point(X, Y, blocks, method, details):
    """The SUR fit, the increments and their SUR covariance; with different regressors and the
    bootstrap, the increments are OLS per equation (the estimator the bootstrap repeats)."""
    fit = _sur(X, Y)
    details["sigma"] = fit.sigma
    names = [f"cost_{X['cost'].columns[1]}", f"effect_{X['effect'].columns[1]}"]
    inc = fit.params[names].to_numpy()
    V = fit.cov.loc[names, names].to_numpy()
    if len(blocks) == 2 and method == "bootstrap":
        inc = np.array([_ols_arm(X[k].to_numpy(), Y[k].to_numpy()) for k in ("cost", "effect")])
        details["estimator"] = "OLS per equation (the equations have different regressors)"
    return fit, inc, V


def _uncertainty(inc, V, reps, w, dfr, level):
    """Incremental table, covariance and NMB table: Wald (SUR) or bootstrap."""
    if reps is None:
        se = np.sqrt(np.diag(V))
        lo, hi = _wald(inc, se, dfr, level)
        nmb = _nmb_parametric(inc, V, w, dfr, level)
    else:
        V = np.cov(reps, rowvar=False)
        se = np.sqrt(np.diag(V))
        lo, hi = bc_interval(reps, inc, level).T
        nmb = _nmb_bootstrap(inc, reps, w, level)
    table = pd.DataFrame({"estimate": inc, "std_error": se, "ci_lower": lo, "ci_upper": hi},
                         index=pd.Index(["cost", "effect"]))  # fmt: skip
    return table, V, nmb


def _ols_arm(X: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.lstsq(X, y, rcond=None)[0][1])


def _mi_boot(data, blocks, Y, levels, cost, effect, arm, covariates, m, n_boot, seed, cluster,
             client, details):  # fmt: skip
    """MI of (cost, effect) by peerstats.impute, then the bootstrap of each completed set."""
    from peerstats.economics.mi import impute_cost_effect, mi_bootstrap, seeds_for

    s_imp, s_boot = seeds_for(seed)
    Ym = impute_cost_effect(data, cost=cost, effect=effect, arm=arm, covariates=list(covariates),
                            n_imputations=int(m), seed=s_imp)  # fmt: skip
    cl = None if cluster is None else data[cluster].astype(object).to_numpy()
    ests, reps = mi_bootstrap(blocks, Ym, col=1, cluster=cl, n_boot=int(n_boot),
                              arm_codes=(data[arm] == levels[1]).to_numpy(int), seed=s_boot,
                              client=client)  # fmt: skip
    details.update(
        n_imputations=int(m), estimates_by_imputation=ests,
        n_missing={"cost": int(Y["cost"].isna().sum()), "effect": int(Y["effect"].isna().sum())},
        negative_imputed_costs=int((Ym[:, Y["cost"].isna().to_numpy(), 0] < 0).sum()),
    )  # fmt: skip
    return ests.mean(axis=0), reps, None
