"""The result of :func:`peerstats.lmm`: the mixed-model interface plus random effects."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peerstats.models.results import MixedModelResult

__all__ = ["LMMResult"]


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
        """The mixed-model display (header, fixed effects, covariance parameters), then the
        variance components with their SDs and correlations, and the warnings."""
        base = super()._repr_html_()
        vc = self.variance_components.fillna("").to_html(
            index=False, float_format=lambda x: f"{x:.5g}"
        )
        warn = "".join(f"<p>{html.escape(w)}</p>" for w in self.warnings)
        return base[: base.rindex("</div>")] + f"<h4>Variance components</h4>{vc}{warn}</div>"
