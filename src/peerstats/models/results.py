"""Result classes shared by the mixed models (``mmrm`` now, ``lmm`` next).

Results are immutable: every public value is a property that builds a fresh DataFrame from the
stored (read-only) arrays. Columns follow the package vocabulary: ``term, estimate, std_error,
df, statistic, p_value, ci_lower, ci_upper``. Numbers are never rounded; only :meth:`summary`
rounds for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import header_html, with_notes
from peerstats.exceptions import ModelSpecificationError

__all__ = ["MixedModelResult"]

TIDY = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]


@dataclass(frozen=True, repr=False, eq=False)
class MixedModelResult:
    """A fitted marginal Gaussian model (MMRM): coefficients, covariance, tests, marginal means.

    Create with :func:`peerstats.mmrm`; do not instantiate directly.
    """

    formula: str
    method: str
    df_method: str
    covariance_type: str
    subject: str
    visit: str
    group: str | None
    weights: str | None
    n_obs: int
    n_subjects: int
    n_dropped: int
    n_subjects_data: int
    converged: bool
    iterations: int
    neg2loglik: float
    n_fixed: int
    visits: tuple[str, ...]
    group_levels: tuple[str, ...]
    _design: Any
    _inference: Any
    _sigmas: tuple[np.ndarray, ...]
    # (parameter, group, estimate[, std_error, lower, upper]) rows, or a function computing
    # them on first use (the MMRM's chi-square limits need scipy.special: not on the cold path)
    _cov_table: tuple[tuple, ...] | Any
    _theta: np.ndarray
    _gradient: np.ndarray
    warnings: tuple[str, ...] = field(default_factory=tuple)
    fit_info: dict = field(default_factory=dict)
    vcov_method: str = "model"  # covariance of beta used by the tests (issue 10.3)
    _prepared: Any = None  # the PreparedMMRM behind an mmrm() fit (predictions, refits)

    # ---- fixed effects ---------------------------------------------------------------------
    @property
    def coef(self) -> pd.DataFrame:
        """Fixed-effect estimates, indexed by term, with SE, df, t, p and 95% CI."""
        rows = []
        p = len(self._design.columns)
        for j, name in enumerate(self._design.columns):
            ell = np.zeros(p)
            ell[j] = 1.0
            rows.append({"term": name, **self._inference.test_1d(ell)})
        return pd.DataFrame(rows).set_index("term")[TIDY]

    @property
    def params(self) -> pd.Series:
        """Fixed-effect estimates as a Series indexed by term."""
        return pd.Series(
            np.array(self._inference.beta), index=self._design.columns, name="estimate"
        )

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed-effect estimates (Kenward-Roger adjusted when df='kenward-roger')."""
        cols = self._design.columns
        return pd.DataFrame(np.array(self._inference.vcov), index=cols, columns=cols)

    # ---- covariance ------------------------------------------------------------------------
    def _frame(self, S: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.array(S), index=list(self.visits), columns=list(self.visits))

    @property
    def covariance(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Estimated residual covariance across visits (a dict by level with ``group=``)."""
        if self.group is None:
            return self._frame(self._sigmas[0])
        return {lev: self._frame(S) for lev, S in zip(self.group_levels, self._sigmas)}

    @property
    def correlation(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Estimated residual correlation across visits (a dict by level with ``group=``)."""

        def corr(S):
            d = np.sqrt(np.diag(S))
            return self._frame(S / np.outer(d, d))

        if self.group is None:
            return corr(self._sigmas[0])
        return {lev: corr(S) for lev, S in zip(self.group_levels, self._sigmas)}

    @property
    def cov_parameters(self) -> pd.DataFrame:
        """Covariance parameters as SAS PROC MIXED prints them (``UN(i,j)``, ``Var(i)``, ...).

        Visit indices follow ``visits`` (the order of the visit levels). Columns ``parameter,
        group, estimate, std_error, ci_lower, ci_upper``: standard errors from the observed
        information, 95% limits as SAS (chi-square for variances, Wald otherwise).
        """
        cols = ["parameter", "group", "estimate", "std_error", "ci_lower", "ci_upper"]
        rows = list(self._cov_rows())
        return pd.DataFrame(rows, columns=cols[: len(rows[0])] if rows else cols[:3])

    def _cov_rows(self) -> tuple[tuple, ...]:
        """The covariance-parameter rows (computed on first use when stored as a function)."""
        if callable(self._cov_table):
            object.__setattr__(self, "_cov_table", tuple(self._cov_table()))  # a cache
        return self._cov_table

    # ---- fit statistics --------------------------------------------------------------------
    @property
    def n_cov_params(self) -> int:
        """Number of covariance parameters."""
        return len(self._theta)

    @property
    def loglik(self) -> float:
        """REML or ML log-likelihood; -2 loglik equals SAS's "-2 (Res) Log Likelihood"."""
        return -0.5 * self.neg2loglik

    @property
    def aic(self) -> float:
        """AIC as SAS: -2 loglik + 2 q (q = covariance parameters, plus fixed effects for ML)."""
        q = self.n_cov_params + (self.n_fixed if self.method == "ml" else 0)
        return self.neg2loglik + 2 * q

    @property
    def bic(self) -> float:
        """BIC as SAS: -2 loglik + q log(s).

        s is the number of subjects in the data, including subjects whose outcome is missing at
        every visit (SAS's "Subjects" dimension); ``n_subjects`` counts only those analysed.
        """
        q = self.n_cov_params + (self.n_fixed if self.method == "ml" else 0)
        return self.neg2loglik + q * np.log(self.n_subjects_data)

    # ---- marginal means, contrasts, tests --------------------------------------------------
    def emmeans(self, specs: str | Sequence[str], *, level: float = 0.95) -> pd.DataFrame:
        """Equal-weight marginal means (SAS LSMEANS, R emmeans) of the factor combinations.

        Other factors are averaged with equal weights, numeric covariates held at their mean.
        Columns: the ``specs`` factors, ``estimate, std_error, df, statistic, p_value,
        ci_lower, ci_upper``.
        """
        from peerstats.models.emmeans import emmeans_matrix

        specs = [specs] if isinstance(specs, str) else list(specs)
        frame, L = emmeans_matrix(self._design, specs)
        res = [self._inference.test_1d(ell, alpha=1 - level) for ell in L]
        out = pd.concat([frame.reset_index(drop=True), pd.DataFrame(res)], axis=1)
        return out

    def contrasts(
        self,
        arm: str,
        by: str | None = None,
        reference: str | None = None,
        *,
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Each non-reference level of ``arm`` minus ``reference``, per level of ``by``.

        The difference of equal-weight marginal means (SAS LSMEANS ... / DIFF; emmeans
        ``pairwise``/``trt.vs.ctrl``). ``reference`` defaults to the model's reference level of
        ``arm``. Columns: ``by``, ``contrast``, then the tidy inference columns.
        """
        from peerstats.models.emmeans import emmeans_rows

        if arm not in self._design.factors:
            raise ModelSpecificationError(
                f"arm={arm!r} is not a factor of the model; factors are {list(self._design.factors)}"
            )
        if by is not None and (by not in self._design.factors or by == arm):
            raise ModelSpecificationError(
                f"by={by!r} must be another factor of the model; factors are "
                f"{list(self._design.factors)}"
            )
        levels = self._design.factors[arm]
        ref = levels[0] if reference is None else str(reference)
        if ref not in levels:
            raise ModelSpecificationError(
                f"reference={ref!r} is not a level of {arm!r}; levels are {levels}"
            )
        specs = [arm] + ([by] if by else [])
        combos, L = emmeans_rows(self._design, specs)
        arms = np.array([str(c[0]) for c in combos])
        bys = np.array([str(c[1]) for c in combos]) if by else np.array([""] * len(combos))
        # by-levels in the data's order (a Categorical's order, else sorted), not reference-first
        by_levels = (
            [str(v) for v in self._design.natural_order.get(by, self._design.factors[by])]
            if by
            else [""]
        )
        cols: dict[str, list] = {"by": [], "contrast": []}
        for b in by_levels:
            r = np.flatnonzero((arms == ref) & (bys == b))[0]
            for a in levels:
                if a == ref:
                    continue
                k = np.flatnonzero((arms == a) & (bys == b))[0]
                res = self._inference.test_1d(L[k] - L[r], alpha=1 - level)
                cols["by"].append(b)
                cols["contrast"].append(f"{a} - {ref}")
                for key, value in res.items():
                    cols.setdefault(key, []).append(value)
        by_values = cols.pop("by")
        if not cols["contrast"]:
            cols.update({key: [] for key in TIDY})
        if by:
            raw = self._design.natural_order.get(by) or self._design.factors[by]
            to_raw = dict(zip(by_levels, raw))
            cols = {by: pd.Categorical([to_raw[b] for b in by_values], categories=raw), **cols}
        return pd.DataFrame(cols)

    def effect_size(
        self,
        arm: str = "arm",
        by: str | None = None,
        sd: float | str = "baseline",
        *,
        reference: str | None = None,
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Cohen's d and Hedges' g of each arm contrast, the SD stated (see
        :func:`peerstats.models.effects.effect_size`)."""
        from peerstats.models.effects import effect_size

        return effect_size(self, arm, by, sd, reference=reference, level=level)

    def anova(self, type: int = 3, *, convention: Literal["car", "sas"] = "car") -> pd.DataFrame:
        """Type III (default) or type II F tests of each term.

        ``type=3``: SAS "Type 3 Tests of Fixed Effects" (either convention). ``type=2`` with
        ``convention="car"`` (default): each term after every term that does not contain it
        (marginality), the hypothesis of R ``car::Anova(type=2)`` built with the fit's
        covariance of the fixed effects (see :func:`peerstats.models._anova.type2_hypotheses`).
        ``convention="sas"``: SAS PROC MIXED ``HTYPE=2``, whose containment differs for terms
        with continuous variables: in ``y ~ arm * baseline``, car tests ``arm`` ignoring the
        ``arm:baseline`` interaction, SAS adjusts for it (the arm effect at baseline 0; see
        :func:`peerstats.models._anova.type2_hypotheses_sas`, validated against SAS listings in
        tests/reference/sas_anova/).

        Columns: ``term, num_df, den_df, statistic (F), p_value``; the denominator df follow
        the model's ``df`` method (and ``vcov``). The convention is in ``attrs["convention"]``.
        """
        if type not in (2, 3) or isinstance(type, bool):
            raise ModelSpecificationError(f"type={type!r} is not valid; choose 2 or 3")
        if convention not in ("car", "sas"):
            raise ModelSpecificationError(
                f"convention={convention!r} is not valid; choose one of ['car', 'sas']"
            )
        if type == 3:
            from peerstats.models.emmeans import type3_hypotheses

            hyps = type3_hypotheses(self._design)
        elif convention == "sas":
            from peerstats.models._anova import type2_hypotheses_sas

            hyps = type2_hypotheses_sas(self._design)
        else:
            from peerstats.models._anova import type2_hypotheses

            hyps = type2_hypotheses(self._design, np.asarray(self._inference.vcov))
        rows = []
        for term, L in hyps.items():
            rows.append({"term": term, **self._inference.test_md(L, term=term)})
        out = pd.DataFrame(rows).set_index("term")
        out.attrs["convention"] = convention if type == 2 else "type 3 (SAS = car)"
        return out

    def test(self, L: np.ndarray | Sequence[float], *, level: float = 0.95) -> pd.DataFrame:
        """Test a linear combination (one row) or a joint hypothesis (several rows) of the
        coefficients, with the model's df method."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if L.shape[1] != len(self._design.columns):
            raise ModelSpecificationError(
                f"L must have {len(self._design.columns)} columns (one per coefficient: "
                f"{self._design.columns})"
            )
        if L.shape[0] == 1:
            return pd.DataFrame([self._inference.test_1d(L[0], alpha=1 - level)])
        return pd.DataFrame([self._inference.test_md(L)])

    # ---- predictions and residuals (mmrm fits) ---------------------------------------------
    def _need_prepared(self, what: str):
        if self._prepared is None:
            raise ModelSpecificationError(f"{what} is available for mmrm() fits")
        return self._prepared

    def predict(
        self,
        data: pd.DataFrame | None = None,
        *,
        conditional: bool = True,
        interval: Literal["confidence", "prediction"] = "confidence",
    ) -> pd.DataFrame:
        """Predictions for the rows of ``data`` (default: the data of the fit, every row).

        ``conditional=True`` (SAS ``outp=``, R mmrm ``predict(conditional = TRUE)``): a row
        with an observed outcome is predicted by that value (std_error 0); a row whose outcome
        is missing by its conditional mean given the same subject's observed rows,
        x_m beta + Sigma_mo Sigma_oo^-1 (y_o - X_o beta); a subject without observed rows
        gets x beta. ``conditional=False``: the marginal mean x beta.

        ``interval="confidence"`` (default): ``std_error`` is the standard error of the
        (conditional) mean, from cov(beta_hat) alone (R mmrm ``interval = "confidence"``).
        ``interval="prediction"``: the standard error of a prediction of the outcome itself
        (SAS StdErrPred, R mmrm ``interval = "prediction"``): the confidence variance plus the
        conditional variance Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om of the row given the
        subject's observed rows (the marginal Sigma_vv with ``conditional=False``). R mmrm
        adds the variability of theta_hat by simulation (``nsim`` draws); peerstats evaluates
        at theta_hat (R mmrm's ``h_get_prediction`` variance; validated against it in
        tests/reference/r_predict/). Observed rows keep std_error 0 when conditional.

        Returns a DataFrame with ``prediction, std_error``, index and row order of ``data``
        (NaN where a model column is missing). As R mmrm, the covariance used is the fitted
        Sigma of the subject's group without the ``weights`` rescaling.
        """
        from peerstats.models._predict import predict_frame

        if interval not in ("confidence", "prediction"):
            raise ModelSpecificationError(
                f"interval={interval!r} is not valid; choose one of ['confidence', 'prediction']"
            )
        self._need_prepared("predict()")
        return predict_frame(self, data, conditional=bool(conditional), interval=interval)

    def fitted(self) -> pd.Series:
        """Fitted marginal means x beta of the rows used in the fit, indexed as the data."""
        from peerstats.models._predict import fitted_series

        self._need_prepared("fitted()")
        return fitted_series(self)

    def residuals(self, type: str = "raw") -> pd.Series:  # noqa: A002 - R's argument name
        """Residuals of the rows used in the fit, indexed as the data.

        ``"raw"`` y - x beta; ``"pearson"`` raw / its standard deviation (sqrt(Sigma_vv / w));
        ``"normalized"`` L_i^-1 r_i with L_i the lower Cholesky factor of subject i's
        (weighted) covariance over its observed visits in visit order (R mmrm
        ``residuals(type = "response" | "pearson" | "normalized")``, nlme ``resid(type =
        "normalized")``).
        """
        from peerstats.models._predict import residual_series

        self._need_prepared("residuals()")
        return residual_series(self, type)

    # ---- display ---------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """The coefficient table as a tidy DataFrame with a ``term`` column."""
        return self.coef.reset_index()

    def _header(self) -> list[tuple[str, str]]:
        cov = self.covariance_type + (f", group={self.group}" if self.group else "")
        return [
            ("Model", f"MMRM  {self.formula}"),
            ("Subject / visit", f"{self.subject} / {self.visit} ({', '.join(self.visits)})"),
            ("Covariance", cov + (f", weights={self.weights}" if self.weights else "")),
            (
                "Method / df",
                f"{self.method.upper()} / {self.df_method}"
                + (f" / vcov {self.vcov_method}" if self.vcov_method != "model" else ""),
            ),
            (
                "Observations",
                f"{self.n_obs} used, {self.n_dropped} dropped (missing outcome), "
                f"{self.n_subjects} subjects",
            ),
            ("-2 log-lik / AIC / BIC", f"{self.neg2loglik:.4f} / {self.aic:.4f} / {self.bic:.4f}"),
            ("Converged", f"{self.converged} ({self.iterations} iterations)"),
        ]

    def summary(self) -> str:
        """A plain-text report: model, fit statistics, coefficients, covariance parameters."""
        lines = [f"{k:<24}{v}" for k, v in self._header()]
        coef = self.coef.copy()
        lines += ["", "Fixed effects", coef.to_string(float_format=lambda x: f"{x:.4g}")]
        lines += [
            "",
            "Covariance parameters",
            self.cov_parameters.to_string(index=False, float_format=lambda x: f"{x:.5g}"),
        ]
        return with_notes(lines, self.warnings, title="Warnings", bullet="")

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = header_html(self._header())
        coef = self.coef.to_html(float_format=lambda x: f"{x:.4g}")
        cov = self.cov_parameters.to_html(index=False, float_format=lambda x: f"{x:.5g}")
        return (
            f"<div><table>{head}</table><h4>Fixed effects</h4>{coef}"
            f"<h4>Covariance parameters</h4>{cov}</div>"
        )
