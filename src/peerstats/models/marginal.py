"""Marginal (population-average) treatment effects for binary outcomes by g-computation.

``peerstats.marginal_effect(fit, arm=...)`` standardises over the analysed sample, as the FDA's
2023 guidance on covariate adjustment asks: every analysed row is set to each arm in turn, the
model's predicted probabilities are averaged, and the averages are contrasted (risk
difference, risk ratio, odds ratio). No Python library does this for GLM, GEE and GLMM fits
with the Ge et al. variance (R has beeca and SAS the %Margins macro), so it is written here.

It reads any fit that offers this protocol (peerstats GEE and GLMM fits implement it; a
statsmodels GLM result is adapted):

- ``fit.model_matrix(data) -> ndarray``: fixed-effects design of ``data`` (``coef`` order);
- ``fit.fixed_params``, ``fit.fixed_vcov``: coefficients and their covariance (link scale);
- ``fit.link``: a statsmodels link (``.inverse``, ``.inverse_deriv``);
- ``fit.data``: the analysed rows; ``fit.family_name``;
- ``fit.re_variance_per_row(data)``: Var(z_i' b) per row (0 for GLM and GEE). When positive,
  predictions are averaged over the random effects, p_i = E_u[g^-1(x_i' beta + u)] with
  u ~ N(0, s_i^2), by Gauss-Hermite quadrature, so the means are population averages and not
  the risks of a subject with b = 0.
- optionally ``fit.sandwich_vcov`` for ``variance="sandwich"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._design import choice

__all__ = ["marginal_effect"]

ContrastName = Literal["risk_difference", "risk_ratio", "odds_ratio"]
VarianceName = Literal["ge", "sandwich"]
CONTRASTS = ("risk_difference", "risk_ratio", "odds_ratio")
VARIANCES = ("ge", "sandwich")
GH_NODES = 40


# ---- adapting fits to the protocol ---------------------------------------------------------------
@dataclass(frozen=True)
class _GLMAdapter:
    """The marginal-effect protocol for a statsmodels GLM result fitted from a formula."""

    res: Any

    @property
    def family_name(self) -> str:
        return type(self.res.model.family).__name__.lower()

    @property
    def link(self):
        return self.res.model.family.link

    @property
    def data(self) -> pd.DataFrame:
        frame = self.res.model.data.frame
        rows = self.res.model.data.row_labels
        return frame.loc[rows] if rows is not None else frame

    @property
    def fixed_params(self) -> np.ndarray:
        return np.asarray(self.res.params, dtype=float)

    @property
    def fixed_vcov(self) -> np.ndarray:
        return np.asarray(self.res.cov_params(), dtype=float)

    @property
    def sandwich_vcov(self) -> np.ndarray:
        """HC0: (X'WX)^-1 (sum_i s_i s_i') (X'WX)^-1 with expected information (as R's
        sandwich::vcovHC(type = "HC0") for a glm)."""
        model = self.res.model
        scores = model.score_obs(self.res.params, scale=self.res.scale)
        bread = np.linalg.inv(-model.hessian(self.res.params, scale=self.res.scale,
                                             observed=False))
        return bread @ (scores.T @ scores) @ bread

    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        mdata = self.res.model.data
        spec = getattr(mdata, "model_spec", None) or getattr(mdata, "design_info", None)
        if spec is None:
            raise ModelSpecificationError(
                "marginal_effect needs a statsmodels GLM fitted from a formula (smf.glm), so "
                "the design of counterfactual data can be rebuilt"
            )
        if hasattr(spec, "get_model_matrix"):  # formulaic (statsmodels >= 0.15)
            return np.asarray(spec.get_model_matrix(data), dtype=float)
        from patsy import build_design_matrices

        return np.asarray(build_design_matrices([spec], data)[0], dtype=float)

    def re_variance_per_row(self, data: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(data))

    marginal_method = "fixed-effects model: no random effects to average over"


_PROTOCOL = ("model_matrix", "fixed_params", "fixed_vcov", "link", "data",
             "re_variance_per_row", "family_name")


def _as_protocol(fit: Any):
    try:
        from statsmodels.genmod.generalized_linear_model import GLMResults

        if isinstance(fit, GLMResults) or isinstance(getattr(fit, "_results", None), GLMResults):
            return _GLMAdapter(fit)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    missing = [a for a in _PROTOCOL if not hasattr(fit, a)]
    if missing:
        raise ModelSpecificationError(
            f"marginal_effect needs a statsmodels GLM result, a peerstats GEE/GLMM fit, or a "
            f"fit with {list(_PROTOCOL)}; {type(fit).__name__} lacks {missing}"
        )
    return fit


# ---- the arms -------------------------------------------------------------------------------------
def _arm_levels(data: pd.DataFrame, arm: str, reference: Any) -> list:
    if arm not in data.columns:
        raise ModelSpecificationError(
            f"arm={arm!r} is not a column of the analysed data; columns are {list(data.columns)}"
        )
    col = data[arm]
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = [c for c in col.cat.categories if (col == c).any()]
    else:
        levels = sorted(col.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(levels) < 2:
        raise ModelSpecificationError(f"arm={arm!r} has fewer than two levels: {levels}")
    if reference is not None:
        match = [lv for lv in levels if lv == reference or str(lv) == str(reference)]
        if not match:
            raise ModelSpecificationError(
                f"reference={reference!r} is not a level of {arm!r}; levels are {levels}"
            )
        levels = [match[0]] + [lv for lv in levels if lv is not match[0]]
    return levels


def _set_arm(data: pd.DataFrame, arm: str, level: Any) -> pd.DataFrame:
    col = data[arm]
    if isinstance(col.dtype, pd.CategoricalDtype):
        value = pd.Categorical([level] * len(data), categories=col.cat.categories)
    else:
        # a Series of the column's own dtype (pandas 3 string columns are not numpy dtypes)
        value = pd.Series([level] * len(data), index=data.index, dtype=col.dtype)
    return data.assign(**{arm: value})


# ---- counterfactual means and their gradients ---------------------------------------------------
def _averaged(link, eta: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[g^-1(eta + u)] and E[(g^-1)'(eta + u)] for u ~ N(0, s2) (Gauss-Hermite)."""
    if not np.any(s2 > 0):
        return link.inverse(eta), link.inverse_deriv(eta)
    z, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    u = eta[:, None] + np.sqrt(np.maximum(s2, 0.0))[:, None] * z[None, :]
    return link.inverse(u) @ w, link.inverse_deriv(u) @ w


def _rows_at(data: pd.DataFrame, at: dict | None) -> pd.DataFrame:
    """The analysed rows to standardise over: all, or those matching ``at`` (e.g. one visit)."""
    if not at:
        return data
    if not isinstance(at, dict):
        raise ModelSpecificationError(f"at= is a dict {{column: value}}, not {at!r}")
    keep = np.ones(len(data), dtype=bool)
    for col, value in at.items():
        if col not in data.columns:
            raise ModelSpecificationError(
                f"at= names {col!r}, which is not a column of the analysed data; columns are "
                f"{list(data.columns)}"
            )
        keep &= (data[col].astype(str) == str(value)).to_numpy()
    if not keep.any():
        raise ModelSpecificationError(f"no analysed rows match at={at!r}")
    return data.loc[keep]


def counterfactual_means(fit, arm: str, levels: list, data: pd.DataFrame | None = None):
    """Per-arm standardised means m_a and their gradients dm_a / d beta (rows)."""
    data = fit.data if data is None else data
    beta = np.asarray(fit.fixed_params, dtype=float)
    means, grads = [], []
    for lv in levels:
        d = _set_arm(data, arm, lv)
        X = np.asarray(fit.model_matrix(d), dtype=float)
        s2 = np.asarray(fit.re_variance_per_row(d), dtype=float)
        p, dp = _averaged(fit.link, X @ beta, s2)
        means.append(p.mean())
        grads.append((X * dp[:, None]).mean(axis=0))
    return np.array(means), np.vstack(grads)


def _check_arm_in_fixed_effects(fit, arm: str, levels: list, data: pd.DataFrame) -> None:
    """Setting ``arm`` must change the fixed-effects design: an ``arm`` that enters only a
    random term (``(0 + peer | group)``) would give a 'treatment effect' made of nothing but
    the random-effect variance."""
    X0 = np.asarray(fit.model_matrix(_set_arm(data, arm, levels[0])), dtype=float)
    for lv in levels[1:]:
        if not np.array_equal(X0, np.asarray(fit.model_matrix(_set_arm(data, arm, lv)), float)):
            return
    raise ModelSpecificationError(
        f"arm={arm!r} is not in the model's fixed effects (setting it changes no column of the "
        "design); name the treatment column of the formula's fixed part"
    )


def _contrast(contrast: str, m1: float, m0: float) -> tuple[float, np.ndarray]:
    """Estimate and gradient with respect to (m0, m1) (as beeca's apply_contrast)."""
    if contrast == "risk_difference":
        return m1 - m0, np.array([-1.0, 1.0])
    if contrast == "risk_ratio":
        return m1 / m0, np.array([-m1 / m0**2, 1.0 / m0])
    o1, o0 = m1 / (1 - m1), m0 / (1 - m0)
    return o1 / o0, np.array([-o1 / (o0 * m0 * (1 - m0)), 1.0 / (o0 * (1 - m1) ** 2)])


def _rows(levels, means, V, contrast, level) -> list[dict]:
    q = stats.norm.ppf(0.5 + level / 2)
    ratio = contrast != "risk_difference"
    rows = []
    for k in range(1, len(levels)):
        est, g = _contrast(contrast, means[k], means[0])
        Vk = V[np.ix_([0, k], [0, k])]
        se = float(np.sqrt(g @ Vk @ g))
        if ratio:  # CI and test on the log scale; SE reported on the ratio scale (beeca)
            se_log = se / est
            z = np.log(est) / se_log
            lo, hi = np.exp(np.log(est) - q * se_log), np.exp(np.log(est) + q * se_log)
        else:
            se_log = float("nan")
            z = est / se
            lo, hi = est - q * se, est + q * se
        rows.append({
            "arm": levels[k], "reference": levels[0],
            "contrast": f"{levels[k]} {'/' if ratio else '-'} {levels[0]}",
            "estimate": float(est), "std_error": se, "statistic": float(z),
            "p_value": float(2 * stats.norm.sf(abs(z))), "ci_lower": float(lo),
            "ci_upper": float(hi), "std_error_log": se_log,
        })
    return rows


def marginal_effect(
    fit: Any,
    *,
    arm: str,
    contrast: ContrastName = "risk_difference",
    variance: VarianceName = "ge",
    reference: Any = None,
    at: dict | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Marginal treatment effect by g-computation over the analysed sample.

    Parameters
    ----------
    fit
        A statsmodels GLM result (fitted with ``smf.glm``), a :func:`peerstats.gee` fit, a
        :func:`peerstats.glmm` fit, or any fit with the protocol of this module.
    arm : str
        Treatment column of the analysed data: 0/1 or categorical.
    contrast : {"risk_difference", "risk_ratio", "odds_ratio"}
    variance : {"ge", "sandwich"}
        ``"ge"``: Ge et al. (2011) delta method with the fit's covariance of the coefficients
        (model-based for a GLM, as beeca ``type = "model-based"``; the GEE's chosen covariance).
        ``"sandwich"``: the same delta method with a sandwich covariance (HC0 for a GLM, as
        beeca ``method = "Ge", type = "HC0"``; the cluster-robust one for a GEE).
    reference : optional
        Reference arm (default: the first level, 0 for a 0/1 arm).
    at : dict, optional
        Standardise over the analysed rows matching ``{column: value}`` only, e.g.
        ``{"visit": "12m"}`` for a repeated-measures GEE or GLMM (default: every analysed row).
    level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per non-reference arm: ``arm, reference, contrast, estimate, std_error,
        statistic, p_value, ci_lower, ci_upper, std_error_log``. ``std_error`` is on the
        contrast's own scale (as beeca); for ratios the CI and p come from the log scale
        (``std_error_log = std_error / estimate``). ``attrs`` hold ``means`` (per-arm
        standardised risks with ``std_error``), ``varcov_means``, ``variance`` and ``method``.

    Notes
    -----
    m_a = n^-1 sum_i g^-1(x_i(a)' beta) with x_i(a) row i with its arm set to a (for a GLMM
    averaged over the random effects by Gauss-Hermite quadrature, 40 nodes). Var(m) = D V D',
    D_a = n^-1 sum_i (g^-1)'(x_i(a)' beta) x_i(a)' (Ge et al. 2011); contrasts by the delta
    method with the gradients of beeca's ``apply_contrast``. Validated against R beeca 0.2.0
    (``get_marginal_effect``, trial01 and a generated three-arm trial), the Ge et al. SAS
    macro output shipped with beeca, and an R ``integrate`` computation for a random-intercept
    model (tests/reference/r_marginal/).
    """
    contrast = choice("contrast", contrast, CONTRASTS)
    variance = choice("variance", variance, VARIANCES)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ModelSpecificationError(f"level must be between 0 and 1, got {level!r}")
    p = _as_protocol(fit)
    if "binomial" not in str(p.family_name).lower():
        raise ModelSpecificationError(
            f"marginal_effect is for binary outcomes (binomial family); this fit is "
            f"{p.family_name!r}"
        )
    V = _vcov(p, variance)
    rows = _rows_at(p.data, at)
    levels = _arm_levels(rows, arm, reference)
    _check_arm_in_fixed_effects(p, arm, levels, rows)
    means, D = counterfactual_means(p, arm, levels, rows)
    Vm = D @ V @ D.T
    out = pd.DataFrame(_rows(levels, means, Vm, contrast, float(level)))
    out.attrs.update(
        means=pd.DataFrame({"arm": levels, "estimate": means, "std_error": np.sqrt(np.diag(Vm))}),
        varcov_means=Vm, contrast=contrast, variance=variance,
        method=_method_text(p, variance, len(rows)),
    )
    return out


def _vcov(p, variance: str) -> np.ndarray:
    if variance == "ge":
        return np.asarray(p.fixed_vcov, dtype=float)
    if not hasattr(p, "sandwich_vcov"):
        raise ModelSpecificationError(
            f"variance='sandwich' needs a fit with a sandwich covariance (sandwich_vcov); "
            f"{type(p).__name__} has none: use variance='ge'"
        )
    return np.asarray(p.sandwich_vcov, dtype=float)


def _method_text(p, variance: str, n_rows: int) -> str:
    vc = "fit's covariance" if variance == "ge" else "sandwich (HC0 / cluster-robust) covariance"
    re = getattr(p, "marginal_method", None) or (
        "averaged over the random effects by Gauss-Hermite quadrature "
        f"({GH_NODES} nodes)"
    )
    return (
        f"g-computation over {n_rows} analysed rows; Ge et al. (2011) delta-method "
        f"variance with the {vc}; {re}"
    )
