"""Generalised estimating equations for binary, count and continuous repeated outcomes.

``peerstats.gee`` is a thin, checked front end to statsmodels' GEE (a well-kept fitter; we do
not write a second one). What peerstats adds:

- the design from formulaic, as every other peerstats model (``.coef`` indexed by formulaic
  term names such as ``arm[T.peer]``), and a clear error for an outcome that does not fit the
  family (not 0/1, negative or non-integer counts), a missing or non-positive exposure;
- working correlations estimated as R geepack does (:mod:`._gee_covstruct`), so estimates and
  SEs can be checked against geepack;
- three covariances of the coefficients: ``"robust"`` (Liang-Zeger sandwich), ``"naive"``
  (model-based, with geepack's scale sum(e^2)/N) and ``"bias-reduced"`` (Mancl & DeRouen
  2001), the last with t tests on ``clusters - p`` degrees of freedom (the convention is named
  in the output, ``df_method``);
- marginal means on the response scale (``emmeans(type="response")``), arm contrasts as odds,
  rate or mean differences or ratios, predictions, residuals, effect records, and the protocol
  that :func:`peerstats.marginal_effect` reads (``model_matrix``, ``fixed_params``,
  ``fixed_vcov``, ``link``, ``data``, ``re_variance_per_row``, ``family_name``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import header_html, with_notes
from peerstats.exceptions import ConvergenceError, DataValidationError, ModelSpecificationError
from peerstats.models._design import build_fixed_design, check_empty_levels, choice
from peerstats.models._gee_contrasts import tidy as _tidy
from peerstats.models._glmm_checks import numeric_column

__all__ = ["gee", "GEEResult"]

FamilyName = Literal["binomial", "poisson", "negative_binomial", "gaussian"]
CorrelationName = Literal["independence", "exchangeable", "ar1", "unstructured"]
VcovName = Literal["robust", "bias-reduced", "naive"]
DfName = Literal["auto", "clusters-minus-p", "asymptotic"]
FAMILIES = ("binomial", "poisson", "negative_binomial", "gaussian")
CORRELATIONS = ("independence", "exchangeable", "ar1", "unstructured")
VCOVS = ("robust", "bias-reduced", "naive")
DFS = ("auto", "clusters-minus-p", "asymptotic")
_VCOV_WORDS = {
    "robust": "robust (Liang-Zeger sandwich)",
    "bias-reduced": "bias-reduced (Mancl-DeRouen 2001)",
    "naive": "naive (model-based, geepack scale)",
}


# ---- input checks ------------------------------------------------------------------------------
def _bad_values(y: np.ndarray, family: str) -> tuple[np.ndarray, str]:
    if family == "binomial":
        return ~np.isin(y, (0.0, 1.0)), "a binary outcome must be coded 0/1"
    if family in ("poisson", "negative_binomial"):
        bad = (y < 0) | (np.abs(y - np.round(y)) > 1e-8)
        return bad, "a count outcome must be a non-negative integer"
    return ~np.isfinite(y), "the outcome must be finite"


def _check_outcome(design, family: str) -> None:
    bad, why = _bad_values(design.y, family)
    if bad.any():
        rows = design.data.index[bad]
        failures = pd.DataFrame(
            {
                "table": "data",
                "row": list(rows[:50]),
                "column": design.outcome,
                "value": list(design.y[bad][:50]),
                "check": f"{family}_outcome",
                "message": why,
            }
        )
        raise DataValidationError(failures, context=f"gee(family={family!r})")


def _offset_values(offset: Any, data: pd.DataFrame, design) -> np.ndarray | None:
    """The offset of the used rows (a column name or an array over ``data``'s rows)."""
    if offset is None:
        return None
    if isinstance(offset, str):
        values = numeric_column("offset", offset, data)
    else:
        values = np.asarray(offset, dtype=float)
        if values.shape != (len(data),):
            raise ModelSpecificationError(
                f"offset must be a column name or an array of length {len(data)} (rows of data)"
            )
    used = values[design.rows]
    if not np.all(np.isfinite(used)):
        raise ModelSpecificationError(
            "the offset is missing or not finite on some analysed rows (an exposure of zero "
            "gives log(0) = -inf); give every analysed row a positive exposure"
        )
    return used


def _positions(design, subject: str, visit: str | None, correlation: str):
    """Integer visit positions, and a note when they come from the row order."""
    if visit is None:
        if correlation not in ("ar1", "unstructured"):
            return None, None
        # as geepack without waves: the k-th row of a subject (in data order) is position k
        pos = design.data.groupby(design.data[subject], sort=False).cumcount().to_numpy()
        return pos.astype(int), (
            f"correlation={correlation!r} without visit=: positions are each subject's rows in "
            "data order (as geepack without waves); give visit= when a visit can be missed"
        )
    col = design.data[visit]
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.remove_unused_categories().cat.codes.to_numpy()
    else:
        levels = np.sort(col.unique())
        codes = np.searchsorted(levels, col.to_numpy())
    return codes.astype(int), None


def _check_duplicates(design, subject: str, visit: str | None) -> None:
    if visit is None:
        return
    dup = design.data.duplicated([subject, visit])
    if dup.any():
        raise ModelSpecificationError(
            f"{int(dup.sum())} row(s) repeat a ({subject}, {visit}) pair (first: "
            f"{design.data.loc[dup, [subject, visit]].iloc[0].tolist()}); each subject has one "
            "row per visit"
        )


# ---- family and fit ----------------------------------------------------------------------------
def _nb_alpha(design, offset) -> float:
    """NB2 dispersion alpha (Var = mu + alpha mu^2) by ML on the independence model."""
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.NegativeBinomial(design.y, design.X, offset=offset).fit(disp=0, maxiter=200)
    alpha = float(res.params[-1])
    if not np.isfinite(alpha) or alpha <= 0:
        raise ConvergenceError(
            f"the negative binomial dispersion could not be estimated (alpha = {alpha}); the "
            "counts show no overdispersion: use family='poisson'"
        )
    return alpha


def _sm_family(family: str, design, offset):
    import statsmodels.api as sm

    if family == "binomial":
        return sm.families.Binomial(), None
    if family == "poisson":
        return sm.families.Poisson(), None
    if family == "gaussian":
        return sm.families.Gaussian(), None
    alpha = _nb_alpha(design, offset)
    return sm.families.NegativeBinomial(alpha=alpha), alpha


def _cov_struct(correlation: str):
    from statsmodels.genmod import cov_struct as sm_cov

    from peerstats.models import _gee_covstruct as g

    return {
        "independence": sm_cov.Independence,
        "exchangeable": g.GeepackExchangeable,
        "ar1": g.GeepackAR1,
        "unstructured": g.GeepackUnstructured,
    }[correlation]()


def _run_gee(design, groups, positions, family, correlation, offset, maxiter):
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning as SMConvergence

    fam, nb_alpha = _sm_family(family, design, offset)
    time = None if positions is None else positions.reshape(-1, 1)
    model = sm.GEE(
        design.y, design.X, groups=groups, time=time, family=fam,
        cov_struct=_cov_struct(correlation), offset=offset,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.fit(maxiter=maxiter, ddof_scale=0, cov_type="bias_reduced")
    msgs = [str(w.message) for w in caught if issubclass(w.category, SMConvergence)]
    if not getattr(res, "converged", True):
        msgs.append("the score did not reach statsmodels' tolerance")
    if msgs or not np.all(np.isfinite(res.params)):
        raise ConvergenceError(
            f"the GEE did not converge in {maxiter} iterations ({'; '.join(msgs) or 'non-finite'}"
            "). Check for complete separation (an arm or covariate level with no events, or "
            "only events) or simplify the working correlation.",
            tried=f"statsmodels GEE, maxiter={maxiter}",
        )
    return model, res, nb_alpha


def _separation_check(design, res, family: str) -> None:
    if family != "binomial":
        return
    mu = res.fittedvalues
    if np.mean((mu < 1e-8) | (mu > 1 - 1e-8)) > 0 and np.max(np.abs(res.params)) > 15:
        raise ConvergenceError(
            "fitted probabilities of 0 or 1 with a coefficient beyond +-15 on the logit scale: "
            "complete or quasi-complete separation (e.g. an arm with no events). The odds "
            "ratio is not estimable; report the counts or use an exact or penalised method."
        )


# ---- the fitter ---------------------------------------------------------------------------------
def gee(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    family: FamilyName = "binomial",
    correlation: CorrelationName = "exchangeable",
    vcov: VcovName = "robust",
    visit: str | None = None,
    offset: str | Sequence[float] | np.ndarray | None = None,
    df: DfName = "auto",
    reference: dict[str, str] | None = None,
    maxiter: int = 100,
) -> GEEResult:
    """Fit a marginal (population-average) model by generalised estimating equations.

    Parameters
    ----------
    formula : str
        ``"outcome ~ terms"`` (formulaic); factors as columns, e.g. ``"readmit ~ arm + site"``.
    data : DataFrame
        Long data, one row per subject and visit. Rows with a missing outcome are dropped
        (and counted); a missing covariate is an error.
    subject : str
        Cluster column (participant, or delivery group for a cluster-level analysis).
    family : {"binomial", "poisson", "negative_binomial", "gaussian"}
        Logit, log, log and identity links. The negative binomial (NB2) dispersion is estimated
        by maximum likelihood on the independence model and then held fixed (statsmodels).
    correlation : {"independence", "exchangeable", "ar1", "unstructured"}
        Working correlation, parameters estimated as geepack. ``ar1`` and ``unstructured`` use
        the ``visit`` positions; without ``visit`` each subject's rows in data order (as
        geepack without ``waves``; noted in ``warnings``).
    vcov : {"robust", "bias-reduced", "naive"}
        Covariance of the coefficients used by ``coef`` and every contrast.
    visit : str, optional
        Visit column (its Categorical order, else sorted values, gives the positions).
    offset : str or array, optional
        Offset on the linear-predictor scale, e.g. a column holding ``log(follow-up years)``.
    df : {"auto", "clusters-minus-p", "asymptotic"}
        ``auto``: t on clusters - p df with ``vcov="bias-reduced"``, normal (z) otherwise.
    reference : dict, optional
        Reference levels of factors, ``{"arm": "usual"}``.
    maxiter : int
        Iterations of the GEE solver.

    Returns
    -------
    GEEResult

    Raises
    ------
    DataValidationError
        The outcome does not fit the family (not 0/1; negative or non-integer counts).
    ModelSpecificationError
        Bad options, columns, offset (missing, or log of a zero exposure), repeated visits.
    ConvergenceError
        Non-convergence or complete separation.

    Notes
    -----
    Estimating equations sum_i D_i' V_i^-1 (y_i - mu_i) = 0 with V_i = phi A_i^1/2 R(alpha)
    A_i^1/2 (Liang & Zeger 1986), solved by statsmodels. Robust covariance M^-1 B M^-1 with
    B = sum_i D_i' V_i^-1 r_i r_i' V_i^-1 D_i; bias-reduced (Mancl & DeRouen 2001): r_i replaced
    by (I - H_ii)^-1 r_i, H_ii = D_i M^-1 D_i' V_i^-1. Validated against R geepack::geeglm on
    the epilepsy seizure counts (MASS ``epil``; Diggle, Liang & Zeger Table 8.10 data), geepack's
    ``respiratory`` and ``ohio``; the Mancl-DeRouen covariance against the formula computed in
    R and clubSandwich CR3 (tests/reference/r_gee/).
    """
    family = choice("family", family, FAMILIES)
    if isinstance(maxiter, bool) or not isinstance(maxiter, int | np.integer) or maxiter < 1:
        raise ModelSpecificationError(f"maxiter must be a positive integer, got {maxiter!r}")
    correlation = choice("correlation", correlation, CORRELATIONS)
    vcov = choice("vcov", vcov, VCOVS)
    df = choice("df", df, DFS)
    extra = [subject] + ([visit] if visit else [])
    design = build_fixed_design(formula, data, extra_columns=extra, reference=reference)
    check_empty_levels(design, data)
    _check_outcome(design, family)
    _check_duplicates(design, subject, visit)
    off = _offset_values(offset, data, design)
    positions, note = _positions(design, subject, visit, correlation)
    groups = pd.factorize(design.data[subject])[0]
    model, res, nb_alpha = _run_gee(design, groups, positions, family, correlation, off, maxiter)
    _separation_check(design, res, family)
    return _build_result(
        design, model, res, family=family, correlation=correlation, vcov=vcov, df=df,
        subject=subject, visit=visit, offset=off, nb_alpha=nb_alpha, notes=(note,) if note else (),
    )


def _naive_scale(res) -> float:
    """geepack's scale: sum of squared Pearson residuals / N."""
    mu = res.fittedvalues
    e = (res.model.endog - mu) / np.sqrt(res.model.family.variance(mu))
    return float(e @ e / len(e))


def _build_result(design, model, res, *, family, correlation, vcov, df, subject, visit, offset,
                  nb_alpha, notes=()) -> GEEResult:
    phi = _naive_scale(res)
    naive = np.asarray(res.cov_naive) / float(res.scale) * phi
    covs = {
        "robust": np.asarray(res.cov_robust),
        "bias-reduced": np.asarray(res.cov_robust_bc),
        "naive": naive,
    }
    n_clusters = int(model.num_group)
    p = design.X.shape[1]
    use_t = df == "clusters-minus-p" or (df == "auto" and vcov == "bias-reduced")
    if use_t and n_clusters - p < 1:
        raise ModelSpecificationError(
            f"t tests on clusters - p df need more clusters ({n_clusters}) than coefficients "
            f"({p}); use df='asymptotic'"
        )
    dep = model.cov_struct.dep_params
    return GEEResult(
        formula=design.formula, family_name=family, correlation=correlation,
        vcov_method=vcov, df_method="clusters-minus-p" if use_t else "asymptotic",
        subject=subject, visit=visit, n_obs=len(design.y), n_clusters=n_clusters,
        n_dropped=design.n_dropped, scale=phi,
        working_correlation=np.array(dep, dtype=float) if dep is not None else np.array(0.0),
        nb_alpha=nb_alpha, iterations=len(res.fit_history.get("params", [])),
        _design=design, _beta=np.asarray(res.params, dtype=float), _covs=covs,
        _offset=offset, _sm_result=res, warnings=tuple(notes),
    )


# ---- results ------------------------------------------------------------------------------------
def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ModelSpecificationError(f"level must be between 0 and 1, got {level!r}")
    return float(level)


@dataclass(frozen=True, repr=False, eq=False)
class GEEResult:
    """A fitted GEE (create with :func:`peerstats.gee`).

    ``coef`` uses the covariance named by ``vcov_method`` and the df convention ``df_method``
    (``"clusters-minus-p"``: t on clusters - p df; ``"asymptotic"``: normal).
    """

    formula: str
    family_name: str
    correlation: str
    vcov_method: str
    df_method: str
    subject: str
    visit: str | None
    n_obs: int
    n_clusters: int
    n_dropped: int
    scale: float
    working_correlation: np.ndarray
    nb_alpha: float | None
    iterations: int
    _design: Any
    _beta: np.ndarray
    _covs: dict
    _offset: np.ndarray | None
    _sm_result: Any
    warnings: tuple[str, ...] = field(default_factory=tuple)

    # ---- coefficients -----------------------------------------------------------------------
    @property
    def df(self) -> float:
        """Degrees of freedom of the tests (clusters - p, or inf for the normal)."""
        if self.df_method == "clusters-minus-p":
            return float(self.n_clusters - len(self._beta))
        return float("inf")

    @property
    def params(self) -> pd.Series:
        """Coefficients, indexed by formulaic term name."""
        return pd.Series(self._beta.copy(), index=self._design.columns, name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the coefficients (``vcov_method``)."""
        cols = self._design.columns
        return pd.DataFrame(self._covs[self.vcov_method].copy(), index=cols, columns=cols)

    def vcov_of(self, kind: VcovName) -> pd.DataFrame:
        """The ``"robust"``, ``"bias-reduced"`` or ``"naive"`` covariance of the coefficients."""
        kind = choice("kind", kind, VCOVS)
        cols = self._design.columns
        return pd.DataFrame(self._covs[kind].copy(), index=cols, columns=cols)

    def with_vcov(self, vcov: VcovName, *, df: DfName = "auto") -> GEEResult:
        """The same fit with another covariance of the coefficients (no refit): every table,
        contrast and record then uses it. ``df`` as in :func:`peerstats.gee`."""
        import dataclasses

        vcov = choice("vcov", vcov, VCOVS)
        df = choice("df", df, DFS)
        use_t = df == "clusters-minus-p" or (df == "auto" and vcov == "bias-reduced")
        if use_t and self.n_clusters - len(self._beta) < 1:
            raise ModelSpecificationError(
                f"t tests on clusters - p df need more clusters ({self.n_clusters}) than "
                f"coefficients ({len(self._beta)}); use df='asymptotic'"
            )
        return dataclasses.replace(
            self, vcov_method=vcov, df_method="clusters-minus-p" if use_t else "asymptotic"
        )

    def coef_table(self, level: float = 0.95) -> pd.DataFrame:
        """``coef`` at another confidence level."""
        level = _check_level(level)
        se = np.sqrt(np.diag(self._covs[self.vcov_method]))
        out = pd.DataFrame(_tidy(self._beta, se, self.df, level), index=self._design.columns)
        out.index.name = "term"
        return out

    @property
    def coef(self) -> pd.DataFrame:
        """Estimates on the link scale with SE, (df,) z or t, p and 95% CI, by term."""
        return self.coef_table(0.95)

    @property
    def theta(self) -> float | None:
        """Negative binomial size (R's theta = 1 / alpha), None for other families."""
        return None if self.nb_alpha is None else 1.0 / self.nb_alpha

    # ---- the marginal_effect protocol ------------------------------------------------------
    @property
    def link(self):
        """The statsmodels link (``.inverse``, ``.inverse_deriv``)."""
        return self._sm_result.model.family.link

    @property
    def fixed_params(self) -> np.ndarray:
        """Coefficients in ``coef`` order."""
        return self._beta.copy()

    @property
    def fixed_vcov(self) -> np.ndarray:
        """Covariance of the coefficients (``vcov_method``), link scale."""
        return self._covs[self.vcov_method].copy()

    @property
    def sandwich_vcov(self) -> np.ndarray:
        """The cluster-robust (sandwich) covariance, whatever ``vcov_method`` is."""
        return self._covs["robust"].copy()

    @property
    def data(self) -> pd.DataFrame:
        """The analysed rows (categoricals coded as in the fit)."""
        return self._design.data.copy()

    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects design of ``data`` under the fitted coding (``coef`` order)."""
        return self._design.matrix(data)

    def re_variance_per_row(self, data: pd.DataFrame) -> np.ndarray:
        """Zero: a GEE has no random effects (its coefficients are already marginal)."""
        return np.zeros(len(data))

    @property
    def marginal_method(self) -> str:
        return "population-average (GEE) model: no random effects to average over"

    # ---- predictions and residuals -----------------------------------------------------------
    def _offset_for(self, data: pd.DataFrame | None, offset) -> np.ndarray:
        if data is None:
            return np.zeros(self.n_obs) if self._offset is None else self._offset
        if offset is None:
            return np.zeros(len(data))
        if isinstance(offset, str):
            return pd.to_numeric(data[offset]).to_numpy(dtype=float)
        return np.asarray(offset, dtype=float)

    def predict(
        self,
        data: pd.DataFrame | None = None,
        *,
        type: Literal["response", "link"] = "response",  # noqa: A002 - R's argument name
        offset: str | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Predicted means (``type="response"``) or linear predictors with their SE.

        Default: the analysed rows with their offset. With new ``data`` give ``offset`` (a
        column or array) if the model has one; it is 0 otherwise. SEs by the delta method
        from ``vcov``.
        """
        type = choice("type", type, ("response", "link"))
        X = self._design.X if data is None else self.model_matrix(data)
        eta = X @ self._beta + self._offset_for(data, offset)
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, self._covs[self.vcov_method], X))
        if type == "response":
            se = se * np.abs(self.link.inverse_deriv(eta))
            eta = self.link.inverse(eta)
        index = self._design.data.index if data is None else data.index
        return pd.DataFrame({"prediction": eta, "std_error": se}, index=index)

    def fitted(self) -> pd.Series:
        """Fitted means of the analysed rows, indexed as the data."""
        return self.predict()["prediction"].rename("fitted")

    def residuals(
        self,
        type: Literal["response", "pearson", "working"] = "response",  # noqa: A002
    ) -> pd.Series:
        """Residuals of the analysed rows: ``response`` y - mu, ``pearson`` (y - mu) /
        sqrt(phi v(mu)) with geepack's phi, ``working`` (y - mu) d eta / d mu."""
        type = choice("type", type, ("response", "pearson", "working"))
        mu = self.fitted().to_numpy()
        r = self._design.y - mu
        if type == "pearson":
            r = r / np.sqrt(self.scale * self._sm_result.model.family.variance(mu))
        elif type == "working":
            eta = self.link(mu)
            r = r / self.link.inverse_deriv(eta)
        return pd.Series(r, index=self._design.data.index, name=f"{type}_residual")

    # ---- marginal means and contrasts -----------------------------------------------------
    def emmeans(
        self,
        specs: str | Sequence[str],
        *,
        type: Literal["response", "link"] = "response",  # noqa: A002
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Equal-weight marginal means (R emmeans) of factor combinations.

        Other factors averaged with equal weights on the link scale, numeric covariates at
        their mean (offset 0: for counts, a rate per unit exposure). ``type="response"``:
        probabilities or rates, CI computed on the link scale and back-transformed, SE by the
        delta method, the test statistic and p of the link scale (as emmeans with
        ``type = "response"``).
        """
        from peerstats.models.emmeans import emmeans_matrix

        type = choice("type", type, ("response", "link"))
        level = _check_level(level)
        specs = [specs] if isinstance(specs, str) else list(specs)
        frame, L = emmeans_matrix(self._design, specs)
        V = self._covs[self.vcov_method]
        est = L @ self._beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))
        tid = _tidy(est, se, self.df, level)
        if type == "response":
            inv = self.link.inverse
            tid["std_error"] = se * np.abs(self.link.inverse_deriv(est))
            tid["estimate"] = inv(est)
            lo, hi = inv(tid["ci_lower"]), inv(tid["ci_upper"])
            tid["ci_lower"], tid["ci_upper"] = np.minimum(lo, hi), np.maximum(lo, hi)
        return pd.concat([frame.reset_index(drop=True), pd.DataFrame(tid)], axis=1)

    def contrasts(
        self,
        arm: str,
        by: str | None = None,
        reference: str | None = None,
        *,
        scale: Literal["link", "ratio", "difference"] = "ratio",
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Each non-reference level of ``arm`` against ``reference``, per level of ``by``.

        ``scale="link"``: difference of link-scale marginal means (log odds ratio, log rate
        ratio, mean difference); ``"ratio"``: its exponential (odds ratio for logit, rate ratio
        for log; CI exponentiated, SE on the log scale); ``"difference"``: difference of
        response-scale marginal means (risk or rate difference, delta-method SE). Columns:
        ``by``, ``contrast``, ``scale``, the tidy inference columns.
        """
        from peerstats.models._gee_contrasts import arm_contrasts

        scale = choice("scale", scale, ("link", "ratio", "difference"))
        return arm_contrasts(self, arm, by, reference, scale, _check_level(level))

    def effect_records(
        self,
        arm: str,
        *,
        by: str | None = None,
        reference: str | None = None,
        scale: Literal["ratio", "difference"] = "ratio",
        outcome_label: str = "",
        level: float = 0.95,
        **context: Any,
    ) -> list:
        """The arm contrasts as :class:`peerstats.effects.EffectRecord` objects (odds or rate
        ratios, or risk/rate/mean differences; one per non-reference arm and ``by`` level).
        ``context`` passes record fields such as ``population``, ``estimand``, ``direction``."""
        from peerstats.models._gee_contrasts import effect_records

        return effect_records(self, arm, by, reference, scale, outcome_label, level, context)

    # ---- display ------------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """The coefficient table with a ``term`` column."""
        return self.coef.reset_index()

    def _header(self) -> list[tuple[str, str]]:
        link = type(self.link).__name__.lower()
        fam = self.family_name + (
            f" (theta {self.theta:.4g}, fixed from the ML fit)" if self.nb_alpha else ""
        )
        wc = self.working_correlation
        wc_txt = f"{float(wc):.4g}" if np.ndim(wc) == 0 else f"{wc.shape[0]}x{wc.shape[0]} matrix"
        df_txt = (
            f"t on clusters - p = {self.df:g} df"
            if self.df_method == "clusters-minus-p"
            else "normal (z)"
        )
        return [
            ("Model", f"GEE  {self.formula}"),
            ("Family / link", f"{fam} / {link}"),
            ("Working correlation", f"{self.correlation} (parameter {wc_txt}; geepack moments)"),
            ("Covariance / tests", f"{_VCOV_WORDS[self.vcov_method]} / {df_txt}"),
            (
                "Observations",
                f"{self.n_obs} used, {self.n_dropped} dropped (missing outcome), "
                f"{self.n_clusters} clusters ({self.subject})",
            ),
            ("Scale", f"{self.scale:.6g}"),
        ]

    def summary(self) -> str:
        """A plain-text report: model, conventions, coefficients."""
        lines = [f"{k:<22}{v}" for k, v in self._header()]
        lines += ["", self.coef.to_string(float_format=lambda x: f"{x:.4g}")]
        return with_notes(lines, self.warnings, bullet="")

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = header_html(self._header())
        return f"<div><table>{head}</table>{self.coef.to_html(float_format=lambda x: f'{x:.4g}')}</div>"
