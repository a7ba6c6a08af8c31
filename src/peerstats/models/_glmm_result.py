"""The result of :func:`peerstats.glmm` (internal module; the class is public through it)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._glmm_engine import theta_to_cov

__all__ = ["GLMMResult"]

_WALD = "Wald z: estimate / SE, two-sided normal p, CI estimate +/- z(1-a/2) SE"


def _wald_frame(names, est, se, level) -> pd.DataFrame:
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    return pd.DataFrame(
        {
            "estimate": est,
            "std_error": se,
            "statistic": stat,
            "p_value": 2 * stats.norm.sf(np.abs(stat)),
            "ci_lower": est - z * se,
            "ci_upper": est + z * se,
        },
        index=pd.Index(list(names), name="term"),
    )


class GLMMResult:
    """A fitted GLMM (or GLM / zero-inflated / hurdle model); see :func:`peerstats.glmm`.

    Attributes are properties returning unrounded numbers. The ``model_matrix``,
    ``fixed_params``, ``fixed_vcov``, ``link``, ``data``, ``re_variance_per_row`` and
    ``family_name`` members are the protocol :func:`peerstats.marginal_effect` uses.
    """

    method = "ml"

    def __init__(
        self,
        *,
        formula,
        design,
        problem,
        objective,
        opt,
        zero_kind,
        zero_formula,
        zero_X,
        offset_label,
        offset_arg,
        exposure_arg,
        level,
        elapsed,
        rows_data,
    ):
        self.formula = formula
        self._design = design
        self._problem = problem
        self._obj = objective
        self._opt = opt
        self.zero_kind = zero_kind
        self.zero_formula = zero_formula
        self._zero_X = zero_X
        self.offset_label = offset_label
        self._offset_arg = offset_arg
        self._exposure_arg = exposure_arg
        self.level = level
        self.elapsed = elapsed
        self._rows_data = rows_data
        self.converged = bool(opt.converged)

    # ---- parameters ---------------------------------------------------------------------
    @property
    def family_name(self) -> str:
        """``"binomial"``, ``"poisson"`` or ``"negative_binomial"``."""
        return self._problem.family.name

    @property
    def link(self):
        """The link as a statsmodels link instance (``inverse``, ``inverse_deriv``)."""
        return self._problem.family.link

    @property
    def link_name(self) -> str:
        return self._problem.family.link_name

    @property
    def n_obs(self) -> int:
        """Number of analysed rows."""
        return int(self._problem.X.shape[0])

    @property
    def n_dropped(self) -> int:
        """Rows left out because the outcome was missing."""
        return int(self._design.n_dropped)

    @property
    def n_fixed(self) -> int:
        return int(self._problem.p)

    @property
    def n_zero(self) -> int:
        return 0 if self._zero_X is None else int(self._zero_X.shape[1])

    @property
    def n_cov_params(self) -> int:
        """Variance parameters, NB theta and zero-part coefficients."""
        return len(self._opt.phi) - self.n_fixed

    vcov_type = "model-based (inverse Hessian)"
    _robust = None

    def _set_robust(self, V: np.ndarray, label: str) -> None:
        self._robust = V
        self.vcov_type = label
        self.__dict__.pop("vcov_all", None)

    @functools.cached_property
    def vcov_all(self) -> np.ndarray:
        """Inverse Hessian of minus the log-likelihood over all parameters (NaN rows/columns
        for parameters held at a bound)."""
        opt = self._opt
        if self._robust is not None:
            return self._robust.copy()
        m = len(opt.phi)
        V = np.full((m, m), np.nan)
        idx = np.flatnonzero(opt.free)
        try:
            Vf = np.linalg.inv(opt.hessian)
        except np.linalg.LinAlgError:
            Vf = np.linalg.pinv(opt.hessian)
        V[np.ix_(idx, idx)] = Vf
        return V

    @property
    def fixed_params(self) -> np.ndarray:
        """Fixed effects (count part), in ``coef`` order."""
        return self._opt.phi[: self.n_fixed].copy()

    @property
    def fixed_vcov(self) -> np.ndarray:
        """Covariance of the fixed effects on the link scale."""
        p = self.n_fixed
        return self.vcov_all[:p, :p].copy()

    @property
    def data(self) -> pd.DataFrame:
        """The analysed rows of the input data (all its columns)."""
        return self._rows_data

    @property
    def coef(self) -> pd.DataFrame:
        """Fixed effects on the link scale: estimate, std_error, statistic (z), p_value,
        ci_lower, ci_upper."""
        se = np.sqrt(np.diag(self.fixed_vcov))
        return _wald_frame(self._design.columns, self.fixed_params, se, self.level)

    params = property(lambda self: self.coef["estimate"])

    def _exp_view(self, what: str) -> pd.DataFrame:
        c = self.coef
        out = pd.DataFrame(
            {
                "estimate": np.exp(c["estimate"]),
                "ci_lower": np.exp(c["ci_lower"]),
                "ci_upper": np.exp(c["ci_upper"]),
                "p_value": c["p_value"],
            },
            index=c.index,
        )
        out.attrs["scale"] = what
        return out

    @property
    def odds_ratio(self) -> pd.DataFrame:
        """Exponentiated coefficients of a logit model (odds ratios; CI exponentiated)."""
        if self.family_name != "binomial" or self.link_name != "logit":
            raise ModelSpecificationError("odds ratios need family='binomial' with link='logit'")
        return self._exp_view("odds_ratio")

    @property
    def rate_ratio(self) -> pd.DataFrame:
        """Exponentiated coefficients of a log-link count model (rate ratios)."""
        if self.link_name != "log":
            raise ModelSpecificationError("rate ratios need a count family with the log link")
        return self._exp_view("rate_ratio")

    @property
    def zero_coef(self) -> pd.DataFrame | None:
        """Zero-part coefficients (logit of the probability of a zero), or None."""
        if self._zero_X is None:
            return None
        p, k = self.n_fixed + self._problem.n_theta, self.n_zero
        est = self._opt.phi[p : p + k]
        se = np.sqrt(np.diag(self.vcov_all)[p : p + k])
        return _wald_frame(self._zero_X.columns, est, se, self.level)

    @property
    def theta(self) -> float | None:
        """Negative binomial size (R's ``theta``; ``Var = mu + mu^2 / theta``), else None."""
        if self.family_name != "negative_binomial":
            return None
        return float(np.exp(self._opt.phi[-1]))

    @property
    def _re_covs(self) -> list[np.ndarray]:
        if not self._problem.terms:
            return []
        _, theta, _ = self._problem.split(self._opt.phi)
        return theta_to_cov(self._problem, theta)

    @property
    def variance_components(self) -> pd.DataFrame:
        """One row per random effect: group, effect, variance, sd (and corr for pairs)."""
        rows = []
        terms = self._problem.terms
        for t, G in zip(terms, self._re_covs):
            single = t.q == 1 and sum(u.group == t.group for u in terms) == 1
            for a, col in enumerate(t.columns):
                name = t.group if single else f"{t.group}: {col}"
                rows.append((name, t.group, col, float(G[a, a]), float(np.sqrt(G[a, a]))))
        out = pd.DataFrame(rows, columns=["name", "group", "effect", "variance", "sd"])
        return out.set_index("name")

    @property
    def loglik(self) -> float:
        """Maximised log-likelihood (Laplace / AGQ approximation for a GLMM; with every
        constant, as R's ``logLik`` for glmmTMB and for glmer at nAGQ = 1)."""
        return -float(self._opt.value)

    @property
    def n_params(self) -> int:
        return len(self._opt.phi)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.n_obs) * self.n_params

    @property
    def random_effects(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (b = Lambda u), one frame per term."""
        if not self._problem.terms:
            return {}
        out = {}
        for t, b in zip(self._problem.terms, self._obj.ranef(self._opt.phi)):
            key = t.group if t.group not in out else f"{t.group} {t.columns}"
            out[key] = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.columns)
        return out

    # ---- protocol for marginal effects and prediction ------------------------------------
    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """Fixed-effects design of ``data`` (new or counterfactual rows), ``coef`` order."""
        return self._design.matrix(data)

    def re_variance_per_row(self, data: pd.DataFrame) -> np.ndarray:
        """Var(z_i' b) of each row on the linear-predictor scale (0 for a GLM)."""
        from peerstats.models._glmm_predict import re_variance

        return re_variance(self, data)

    def predict(
        self, data: pd.DataFrame | None = None, *, type: str = "response", conditional: bool = True
    ) -> np.ndarray:
        """Predictions: ``type="response"`` (probability / expected count) or ``"link"``;
        ``conditional=True`` adds the random effects of known groups (0 for new groups)."""
        from peerstats.models._glmm_predict import predict

        return predict(self, data, type=type, conditional=conditional)

    def residuals(self, type: str = "response") -> pd.Series:
        """``"response"`` (y - fitted, proportions for the binomial) or ``"pearson"``."""
        from peerstats.models._glmm_predict import residuals

        return residuals(self, type)

    def emmeans(self, specs, *, type: str = "response", offset: float = 0.0) -> pd.DataFrame:
        """Marginal means per level of ``specs`` (see ``_glmm_predict.emmeans``)."""
        from peerstats.models._glmm_predict import emmeans

        return emmeans(self, specs, type=type, offset=offset)

    def contrasts(
        self, arm: str, *, by: str | None = None, scale: str | None = None
    ) -> pd.DataFrame:
        """Each level of ``arm`` against its reference (see ``_glmm_predict.contrasts``)."""
        from peerstats.models._glmm_predict import contrasts

        return contrasts(self, arm, by=by, scale=scale)

    def effect_records(
        self, arm: str, *, outcome_label: str = "", by: str | None = None, **fields: Any
    ) -> list:
        """The arm contrasts as :class:`peerstats.effects.EffectRecord` (ratio scale)."""
        from peerstats.models._glmm_predict import effect_records

        return effect_records(self, arm, outcome_label=outcome_label, by=by, **fields)

    # ---- rendering ----------------------------------------------------------------------
    @property
    def model_description(self) -> str:
        fam = {
            "binomial": f"binomial ({self.link_name})",
            "poisson": "Poisson (log)",
            "negative_binomial": "negative binomial NB2 (log)",
        }[self.family_name]
        if self.zero_kind:
            kind = "zero-inflated" if self.zero_kind == "zero_inflation" else "hurdle"
            how = " with random effects (Laplace)" if self._problem.terms else ""
            return f"{kind} {fam} model{how}, zero part {self.zero_formula}"
        if not self._problem.terms:
            return f"GLM, {fam}"
        how = (
            "Laplace approximation"
            if self._problem.nagq == 1
            else f"adaptive Gauss-Hermite quadrature, {self._problem.nagq} nodes"
        )
        return f"GLMM, {fam}, maximum likelihood ({how})"

    def summary(self) -> str:
        lines = [
            self.model_description,
            f"formula: {self.formula}",
            f"observations: {self.n_obs} (dropped, missing outcome: {self.n_dropped})",
            f"log-likelihood {self.loglik:.4f}  AIC {self.aic:.4f}  BIC {self.bic:.4f}",
            f"converged: {self.converged}",
            f"standard errors: {self.vcov_type}",
            "",
            "Fixed effects (link scale; " + _WALD + ")",
            self.coef.to_string(),
        ]
        if self.zero_coef is not None:
            lines += ["", "Zero part (logit of P(zero))", self.zero_coef.to_string()]
        if len(self.variance_components):
            lines += ["", "Random effects", self.variance_components.to_string()]
        if self.theta is not None:
            lines += ["", f"negative binomial theta (size): {self.theta:.6g}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        parts = [
            f"<p><b>{self.model_description}</b><br>{self.formula}<br>n = {self.n_obs}, "
            f"log-likelihood {self.loglik:.4f}</p>",
            self.coef.to_html(),
        ]
        if self.zero_coef is not None:
            parts.append(self.zero_coef.to_html())
        if len(self.variance_components):
            parts.append(self.variance_components.to_html())
        return "".join(parts)
