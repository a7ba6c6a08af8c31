"""The analyse step of multiple imputation: one analysis per completed dataset (rbmi ``analyse()``).

:func:`analyse` fits the same analysis to every completed set of an :class:`Imputations` and
returns an :class:`Analyses` - the per-set estimates and variances, not yet pooled. The pool
step, :func:`peerstats.missing.pool`, combines them by the rule of the imputation method
(Rubin's rules, jackknife, bootstrap, von Hippel & Bartlett). Three analyses:

* the per-visit ANCOVA ``outcome ~ arm + covariates`` (default), solved for all sets at once
  (:mod:`peerstats.missing._analysis`);
* ``fn(data) -> (estimates, variances)``, any user analysis of one completed DataFrame;
* ``model=`` a linear mixed model with random terms, fitted by :func:`peerstats.lmm` on each
  completed set (e.g. the primary partially nested model with its delivery-group term), whose
  arm contrasts (per visit when the visit is a factor of the model) are pooled. Validated
  against R ``mice::pool`` of ``lmerTest::lmer`` fits of the same completed datasets
  (tests/reference/r_mi_lmm/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import SummaryAsRepr
from peerstats.exceptions import ModelSpecificationError
from peerstats.missing._analysis import ancova_design, ancova_many, pool_by_method
from peerstats.missing._base import _Cells
from peerstats.missing.pooling import POOL_COLUMNS, _check_pool_options

__all__ = ["analyse", "Analyses", "ancova_arrays", "pool_analyses", "pool_lsmeans"]

RUBIN = ("bayes", "approx-bayes")


@dataclass(frozen=True)
class _Block:
    """Estimates that share a complete-data df (one visit of the ANCOVA, or all terms)."""

    labels: list  # one dict per column: what the estimate is (visit, contrast / term)
    estimates: np.ndarray  # (S, k)
    variances: np.ndarray  # (S, k)
    df_complete: Any = None  # scalar, (k,) or None (infinite), for Rubin's rules
    lsmeans: tuple | None = None  # ANCOVA: per-arm LS means (est (S, A), var (S, A))


@dataclass(frozen=True, repr=False, eq=False)
class Analyses(SummaryAsRepr):
    """One analysis per completed dataset, before pooling (rbmi's ``analysis`` object).

    Made by :func:`analyse`; pooled by :func:`peerstats.missing.pool`. ``estimates`` and
    ``variances`` are (sets x estimates) DataFrames whose columns ``terms`` describes.
    """

    method: str  # the imputation method: it decides the pooling rule
    kind: Literal["ancova", "function", "lmm"]
    blocks: tuple
    D: int | None = None  # imputations per bootstrap sample (bootstrap-ml)
    visit: str | None = None  # the visit column (ANCOVA and LMM labels)
    visits: tuple = ()
    arm: str | None = None
    arm_levels: tuple = ()
    info: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        estimates,
        variances,
        *,
        method: Literal["bayes", "approx-bayes"] = "bayes",
        df_complete: float | Sequence[float] | None = None,
        terms: Sequence[str] | None = None,
    ) -> Analyses:
        """Per-set estimates and variances (m, k) computed elsewhere, to pool by Rubin's rules."""
        E = np.atleast_2d(np.asarray(estimates, dtype=float).T).T
        V = np.atleast_2d(np.asarray(variances, dtype=float).T).T
        if E.shape != V.shape or E.ndim != 2:
            raise ModelSpecificationError(
                f"estimates {E.shape} and variances {V.shape} must be (sets, estimates) arrays "
                "of the same shape"
            )
        if method not in RUBIN:
            raise ModelSpecificationError(
                f"method={method!r} is not valid here; choose one of {list(RUBIN)}"
            )
        names = [str(j) for j in range(E.shape[1])] if terms is None else [str(t) for t in terms]
        if len(names) != E.shape[1]:
            raise ModelSpecificationError(f"terms names {len(names)} terms for {E.shape[1]}")
        labels = [{"term": t} for t in names]
        return cls(method, "function", (_Block(labels, E, V, df_complete),))

    @property
    def n_sets(self) -> int:
        """Number of completed datasets analysed."""
        return int(self.blocks[0].estimates.shape[0])

    @property
    def terms(self) -> pd.DataFrame:
        """One row per estimate: what it is (visit and contrast, or term)."""
        return pd.DataFrame([lab for b in self.blocks for lab in b.labels])

    def _wide(self, what: str) -> pd.DataFrame:
        cols = [" | ".join(str(v) for v in lab.values()) for b in self.blocks for lab in b.labels]
        return pd.DataFrame(np.hstack([getattr(b, what) for b in self.blocks]), columns=cols)

    @property
    def estimates(self) -> pd.DataFrame:
        """(sets x estimates) point estimates of every completed-data analysis."""
        return self._wide("estimates")

    @property
    def variances(self) -> pd.DataFrame:
        """(sets x estimates) squared standard errors of every completed-data analysis."""
        return self._wide("variances")

    def _pooled_table(self, *, level: float, bootstrap: str) -> pd.DataFrame:
        """``pool(self)``: see :func:`pool_analyses`."""
        return pool_analyses(self, level=level, bootstrap=bootstrap)

    def summary(self) -> str:
        """Plain text: analysis, method, number of sets and estimates."""
        return (
            f"Analyses: {self.kind} on {self.n_sets} completed datasets (method {self.method}); "
            f"{len(self.terms)} estimates, pooled by peerstats.missing.pool"
        )

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(self.summary())}</p>{self.terms.to_html(index=False)}"


# ------------------------------------------------------------------------------------------
def ancova_arrays(imp, covariates, reference, visits=None, delta=None) -> dict:
    """Per visit index j: (est (S, k), var (S, k), df_residual (S,), LS means est (S, A), their
    variances (S, A), non-reference arms, reference arm) of ``outcome ~ arm + covariates``."""
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    bad = [c for c in covariates if c not in imp.frame.columns]
    if bad:
        raise ModelSpecificationError(
            f"covariate(s) {bad} are not columns of data; columns are {list(imp.frame.columns)}"
        )
    if imp.outcome in covariates or imp.arm in covariates:
        raise ModelSpecificationError(
            "covariates must not include the outcome or the arm (the ANCOVA is outcome ~ "
            "arm + covariates)"
        )
    ref = imp.arm_levels[0] if reference is None else str(reference)
    if ref not in imp.arm_levels:
        raise ModelSpecificationError(
            f"reference={reference!r} is not an arm; arms are {list(imp.arm_levels)}"
        )
    js = range(len(imp.visits)) if visits is None else [imp._visit_index(v) for v in visits]
    out = {}
    for j in js:
        fr, Y, _ = imp._visit_outcomes(j, delta)
        X, _, others = ancova_design(fr, imp.arm, imp.arm_levels, ref, covariates)
        beta, cov, dfr, xbar = ancova_many(X, Y, imp.weights, len(others))
        k = len(others)
        est = beta[:, 1 : 1 + k]
        var = np.stack([cov[:, 1 + a, 1 + a] for a in range(k)], axis=1)
        lm, lv = _lsmeans(imp.arm_levels, ref, others, xbar, beta, cov)
        out[j] = (est, var, dfr, lm, lv, others, ref)
    return out


def _lsmeans(arm_levels, ref, others, xbar, beta, cov):
    """LS means per arm: arm columns set, covariates at their (weighted) mean."""
    k = len(others)
    A = len(arm_levels)
    L = np.repeat(xbar[:, None, :], A, axis=1).copy()  # (S, A, q)
    L[:, :, 0] = 1.0
    L[:, :, 1 : 1 + k] = 0.0
    for a, lev in enumerate(arm_levels):
        if lev != ref:
            L[:, a, 1 + others.index(lev)] = 1.0
    lm = np.einsum("saq,sq->sa", L, beta)
    lv = np.einsum("saq,sqr,sar->sa", L, cov, L)
    return lm, lv


def _rubin_df(method: str, dfr: np.ndarray):
    """The complete-data df of a block: the first set's (the same design in every set)."""
    dfc = dfr[0] if method in RUBIN else None
    if dfc is not None and not np.allclose(dfr, dfc):  # pragma: no cover - same design
        dfc = float(np.mean(dfr))
    return dfc


def _analyse_ancova(imp, covariates, by, reference) -> Analyses:
    if by is not None and by != imp.visit:
        raise ModelSpecificationError(
            f"by={by!r}: the per-visit ANCOVA is by the visit column {imp.visit!r}"
        )
    blocks = []
    for j, (est, var, dfr, lm, lv, others, ref) in ancova_arrays(
        imp, covariates, reference
    ).items():
        labels = [{imp.visit: imp.visits[j], "contrast": f"{lev} - {ref}"} for lev in others]
        blocks.append(_Block(labels, est, var, _rubin_df(imp.method, dfr), (lm, lv)))
    return _analyses(imp, "ancova", blocks)


def _analyses(imp, kind, blocks, **info) -> Analyses:
    return Analyses(
        method=imp.method,
        kind=kind,
        blocks=tuple(blocks),
        D=imp.D,
        visit=imp.visit,
        visits=tuple(imp.visits),
        arm=imp.arm,
        arm_levels=tuple(imp.arm_levels),
        info=info,
    )


def _as_estimates(r) -> tuple[np.ndarray, np.ndarray, list | None]:
    """(estimates, variances, names) from what a user analysis returned."""
    if isinstance(r, pd.DataFrame):
        e = r["estimate"]
        v = r["std_error"] ** 2 if "std_error" in r else r["variance"]
        names = [str(x) for x in r.index] if "term" not in r else r["term"].astype(str).tolist()
        return e.to_numpy(dtype=float), np.asarray(v, dtype=float), names
    if not (isinstance(r, tuple) and len(r) == 2):
        raise ModelSpecificationError(
            "fn must return (estimates, variances) or a DataFrame with 'estimate' "
            f"and 'std_error' columns; got {type(r).__name__}"
        )
    e, v = r
    names = [str(x) for x in e.index] if isinstance(e, pd.Series) else None
    e = np.atleast_1d(np.asarray(e, dtype=float))
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return e, v, names


def _each_dataset(imp, fit: Callable[[pd.DataFrame], Any]) -> list:
    """``fit`` on every completed dataset; every one must succeed (nothing pooled over fewer)."""
    results, failed = [], []
    for i, d in enumerate(imp.datasets):
        try:
            results.append(fit(d))
        except Exception as exc:
            failed.append((i, exc))
    if failed:
        i, exc = failed[0]
        raise ModelSpecificationError(
            f"the analysis failed on {len(failed)} of {imp.n_imputations} completed "
            f"datasets (first: set {i}: {exc!r}); peerstats does not pool over fewer sets"
        )
    return results


def _analyse_fn(imp, fn, df_complete) -> Analyses:
    res = [_as_estimates(r) for r in _each_dataset(imp, fn)]
    names = None
    for _, _, nm in res:
        names = nm if nm is not None else names
    E = np.stack([e for e, _, _ in res])
    V = np.stack([v for _, v, _ in res])
    names = names if names is not None else [str(j) for j in range(E.shape[1])]
    dfc = df_complete if imp.method in RUBIN else None
    return _analyses(imp, "function", [_Block([{"term": t} for t in names], E, V, dfc)])


def _lmm_contrasts(imp, model: str, options: dict):
    """A function of one completed dataset: the arm contrasts of ``peerstats.lmm(model)``
    (per visit when the visit is a factor of the model)."""
    from peerstats.models.lmm import lmm

    def fit(d: pd.DataFrame) -> pd.DataFrame:
        res = lmm(model, d, **options)
        by = imp.visit if imp.visit in res._design.factors else None
        reference = (options.get("reference") or {}).get(imp.arm)
        return res.contrasts(imp.arm, by=by, reference=reference)

    return fit


def _check_model(imp, model, model_options) -> dict:
    if not isinstance(model, str) or "~" not in model or "|" not in model:
        raise ModelSpecificationError(
            f"model={model!r} must be a linear mixed model formula with random terms for "
            "peerstats.lmm, e.g. 'y ~ arm * visit + y_baseline + (0 + peer | group) + (1 | id)'"
        )
    lhs = model.split("~", 1)[0].strip()
    if lhs != imp.outcome:
        raise ModelSpecificationError(
            f"model={model!r} analyses {lhs!r}, but the imputed outcome is {imp.outcome!r}"
        )
    options = dict(model_options or {})
    clash = sorted({"formula", "data"} & set(options))
    if clash:
        raise ModelSpecificationError(
            f"model_options must not set {clash}: the formula is model= and the data are the "
            "completed datasets"
        )
    return options


def _analyse_lmm(imp, model, model_options, df_complete) -> Analyses:
    options = _check_model(imp, model, model_options)
    tables = _each_dataset(imp, _lmm_contrasts(imp, model, options))
    first = tables[0]
    keys = [
        c
        for c in first.columns
        if c not in ("estimate", "std_error", "df") and c in (imp.visit, "contrast")
    ]
    labels = first[keys].to_dict("records")
    E = np.stack([t["estimate"].to_numpy(dtype=float) for t in tables])
    V = np.stack([t["std_error"].to_numpy(dtype=float) ** 2 for t in tables])
    if imp.method not in RUBIN:
        dfc = None
    elif df_complete is not None:
        dfc = df_complete
    else:  # as mice::pool, the complete-data df of the first analysis
        dfc = first["df"].to_numpy(dtype=float)
    blk = _Block(labels, E, V, dfc)
    return _analyses(imp, "lmm", [blk], model=model, model_options=options)


def analyse(
    imputations,
    fn: Callable[[pd.DataFrame], Any] | None = None,
    *,
    covariates: Sequence[str] | str = (),
    by: str | None = None,
    reference: str | None = None,
    df_complete: float | Sequence[float] | None = None,
    model: str | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> Analyses:
    """Analyse every completed dataset of an :class:`Imputations` (step 3 of 4; not pooled).

    Parameters
    ----------
    imputations : Imputations
        From :func:`peerstats.impute`, :func:`peerstats.missing.impute_from_draws`,
        :func:`peerstats.missing.impute_multilevel` or :meth:`Imputations.from_datasets`.
    fn : callable, optional
        ``fn(data) -> (estimates, variances)`` (scalars, arrays, or Series indexed by term; or
        a DataFrame with ``estimate`` and ``std_error`` columns) on one completed DataFrame.
    covariates : str or list of str
        Without ``fn`` and ``model``: the ANCOVA ``outcome ~ arm + covariates`` at each visit.
    by : str, optional
        The ANCOVA is per visit: ``by`` must be the visit column (the default).
    reference : str, optional
        Reference arm of the ANCOVA contrasts (default: the first arm).
    df_complete : float or list of float, optional
        Complete-data df for Rubin's rules with ``fn`` (default infinite) or ``model`` (default:
        the df of the first set's contrasts, as ``mice::pool`` takes ``dfcom`` from the first
        analysis).
    model : str, optional
        A linear mixed model with random terms fitted by :func:`peerstats.lmm` on each
        completed set, e.g. the primary partially nested model
        ``"y ~ arm * visit + y_baseline + (0 + peer | group) + (1 | id)"``; its arm contrasts
        (``fit.contrasts(arm, by=visit)`` when visit is a factor, else ``by=None``) are pooled.
    model_options : mapping, optional
        Keyword arguments of :func:`peerstats.lmm` (``residual_by``, ``df``, ``reference``...).

    Returns
    -------
    Analyses
        Per-set ``estimates`` and ``variances``; pool with :func:`peerstats.missing.pool`.

    Raises
    ------
    ModelSpecificationError
        Not an Imputations; more than one of ``fn``/``model``; ``by`` other than the visit;
        unknown covariates or reference arm; a model formula without random terms or for
        another outcome; an analysis that fails on any completed set (nothing is pooled over
        fewer sets).

    Notes
    -----
    rbmi's ``analyse()`` (Gower-Page et al. 2022). The ANCOVA is solved for all sets at once
    (beta_s = (X'W_s X)^-1 X'W_s y_s); the LMM path fits one model per set, so it costs
    n_imputations LMM fits. Pooled LMM results match R ``mice::pool`` of ``lmerTest::lmer``
    fits of the same completed datasets (tests/reference/r_mi_lmm/).
    """
    if not (isinstance(imputations, _Cells) and hasattr(type(imputations), "datasets")):
        raise ModelSpecificationError(
            f"analyse needs an Imputations (from peerstats.impute or impute_from_draws); got "
            f"{type(imputations).__name__}"
        )
    if fn is not None and model is not None:
        raise ModelSpecificationError("give fn= or model=, not both")
    if model_options is not None and model is None:
        raise ModelSpecificationError("model_options= needs model= (a peerstats.lmm formula)")
    if fn is not None:
        return _analyse_fn(imputations, fn, df_complete)
    if model is not None:
        return _analyse_lmm(imputations, model, model_options, df_complete)
    return _analyse_ancova(imputations, covariates, by, reference)


# ------------------------------------------------------------------------------------------
def _pooled_row(pooled, a: int) -> dict:
    return {c: float(np.asarray(pooled[c])[a]) for c in POOL_COLUMNS}


def pool_analyses(analyses: Analyses, *, level: float = 0.95, bootstrap="percentile"):
    """The pooled table of :func:`peerstats.missing.pool` for an :class:`Analyses`."""
    _check_pool_options(level, bootstrap)
    an, rows = analyses, []
    for blk in an.blocks:
        pooled = pool_by_method(
            an.method,
            blk.estimates,
            blk.variances,
            blk.df_complete,
            level=level,
            D=an.D,
            bootstrap=bootstrap,
        )
        lsm = None
        if blk.lsmeans is not None:
            lm, lv = blk.lsmeans
            lsm = pool_by_method(
                an.method, lm, lv, blk.df_complete, level=level, D=an.D, bootstrap=bootstrap
            )["estimate"]
        for a, lab in enumerate(blk.labels):
            row = {**lab, **_pooled_row(pooled, a)}
            if lsm is not None:
                row.update({f"lsmean_{nm}": float(lsm[b]) for b, nm in enumerate(an.arm_levels)})
            rows.append(row)
    out = pd.DataFrame(rows)
    if an.kind != "function" and an.visit in out.columns:
        out[an.visit] = pd.Categorical(out[an.visit], categories=list(an.visits))
    out.attrs.update(an.info)
    return out


def pool_lsmeans(analyses: Analyses, *, level: float = 0.95, bootstrap="percentile"):
    """Pooled per-arm LS means of an ANCOVA :class:`Analyses` (``Imputations.lsmeans``)."""
    if analyses.kind != "ancova":
        raise ModelSpecificationError("LS means are pooled for the per-visit ANCOVA only")
    an, rows = analyses, []
    for blk in an.blocks:
        lm, lv = blk.lsmeans
        pooled = pool_by_method(
            an.method, lm, lv, blk.df_complete, level=level, D=an.D, bootstrap=bootstrap
        )
        for a, lev in enumerate(an.arm_levels):
            rows.append({an.visit: blk.labels[0][an.visit], an.arm: lev, **_pooled_row(pooled, a)})
    return pd.DataFrame(rows)
