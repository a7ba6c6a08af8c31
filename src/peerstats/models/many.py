"""``mmrm_many``: the same MMRM fitted to many data sets (simulation studies, resampling).

Every replicate gets exactly :func:`peerstats.mmrm`'s answer. Where the options allow it
(``covariance="us"``, REML, model-based covariance, ``df`` Satterthwaite / residual /
asymptotic, no weights) the replicates are fitted together by the engine's many-datasets path
(:class:`peerstats.models._batch.BatchREML`, the fitter behind :func:`peerstats.power`): one
design matrix for all replicates, their pooled statistics per missingness pattern, and Fisher
scoring on every replicate at once. A replicate the batched path cannot settle (it did not
converge, its design is rank deficient, a visit or a pair of visits is unobserved, a (subject,
visit) pair repeats, its covariance is near singular) is fitted by :func:`peerstats.mmrm`
itself, which either fits it or says what is wrong; that message is reported per replicate,
never raised (``errors="collect"``). Other options (structured covariances, Kenward-Roger,
weights, empirical covariances, ML) loop over :func:`peerstats.mmrm`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from peerstats import _dist
from peerstats.exceptions import ModelSpecificationError, PeerstatsError
from peerstats.models import _many_data as md
from peerstats.models._batch import BatchREML
from peerstats.models._covariance import STRUCTURES
from peerstats.models._design import build_fixed_design, choice
from peerstats.models._mmrm_result import MMRM_DF_METHODS
from peerstats.models._prepared import (
    CovarianceName,
    DfName,
    MethodName,
    _visit_group_as_factors,
)
from peerstats.models._spatial import SPATIAL
from peerstats.models.mmrm import mmrm

__all__ = ["mmrm_many", "ManyMMRMResult"]

TIDY = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]
BATCHED_DF = ("satterthwaite", "residual", "asymptotic")


class ManyMMRMResult:
    """Fits of one MMRM to many replicates (:func:`mmrm_many`).

    Attributes
    ----------
    coef : DataFrame
        One row per replicate and term (coefficients, then the named contrasts): ``replicate,
        term, estimate, std_error, df, statistic, p_value, ci_lower, ci_upper, converged``.
        Replicates that could not be fitted have NaN values and ``converged=False``.
    failures : DataFrame
        ``replicate, error, message``: one row per replicate that could not be fitted.
    engine : Series
        How each replicate was fitted: ``"batched"`` or ``"mmrm"`` (one call of
        :func:`peerstats.mmrm`).
    """

    def __init__(self, coef, failures, engine, *, formula, level, df) -> None:
        self.coef = coef
        self.failures = failures
        self.engine = engine
        self.formula = formula
        self.level = level
        self.df_method = df

    @property
    def n_replicates(self) -> int:
        return len(self.engine)

    def to_frame(self) -> pd.DataFrame:
        """The tidy table (:attr:`coef`)."""
        return self.coef

    def power(self, alpha: float = 0.05) -> pd.Series:
        """Per term, the share of replicates with p < alpha (failed replicates count as not
        rejecting, the conservative convention of :func:`peerstats.power`)."""
        rej = (self.coef["p_value"] < alpha).groupby(self.coef["term"], sort=False).mean()
        return rej.rename(f"rejection rate (p < {alpha:g})")

    def summary(self) -> str:
        """Per term over the fitted replicates: mean estimate, its SD, mean SE, rejection rate."""
        ok = self.coef[self.coef["converged"]]
        tab = ok.groupby("term", sort=False).agg(
            mean_estimate=("estimate", "mean"),
            sd_estimate=("estimate", "std"),
            mean_std_error=("std_error", "mean"),
        )
        tab["rejection_rate"] = self.power()
        head = (
            f"MMRM fitted to {self.n_replicates} replicates: {self.formula}\n"
            f"df: {self.df_method}; failed: {len(self.failures)}; "
            f"batched: {int((self.engine == 'batched').sum())}\n"
        )
        return head + tab.to_string()

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return "<pre>" + self.summary().replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


# ---- options ------------------------------------------------------------------------------------
def _contrast_matrix(contrasts, columns: list[str]) -> tuple[list[str], np.ndarray]:
    if contrasts is None:
        return [], np.zeros((0, len(columns)))
    if not isinstance(contrasts, Mapping):
        raise ModelSpecificationError(
            "contrasts must be a dict {name: {term: weight}} (terms are the coefficient names: "
            f"{columns})"
        )
    names, rows = [], []
    for name, weights in contrasts.items():
        if not isinstance(weights, Mapping) or not weights:
            raise ModelSpecificationError(
                f"contrast {name!r} must be a non-empty dict {{term: weight}}; terms are {columns}"
            )
        unknown = [t for t in weights if t not in columns]
        if unknown:
            raise ModelSpecificationError(
                f"contrast {name!r} names {unknown}, which are not coefficients; terms are "
                f"{columns}"
            )
        row = np.zeros(len(columns))
        for t, w in weights.items():
            row[columns.index(t)] = float(w)
        names.append(str(name))
        rows.append(row)
    return names, np.array(rows)


def _batched_reason(covariance, method, df, weights, vcov, time, kr_information) -> str | None:
    """Why the batched path cannot fit these options (None: it can)."""
    if covariance != "us":
        return f"covariance={covariance!r} (the batched path fits 'us')"
    if method != "reml":
        return "method='ml' (the batched path fits REML)"
    if df not in BATCHED_DF:
        return f"df={df!r} (the batched path gives {list(BATCHED_DF)})"
    if weights is not None or time is not None or vcov != "model" or kr_information != "observed":
        return "weights=, time=, an empirical vcov or kr_information (the batched path has none)"
    return None


# ---- inference ----------------------------------------------------------------------------------
def _tidy(est, se, dfs, level: float) -> dict:
    """statistic, p and CI as :meth:`peerstats.models._ddf.Inference.test_1d` (t, or z when
    df is infinite), vectorised."""
    alpha = 1 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, est / se, np.nan)
    fin = np.isfinite(dfs)
    dft = np.where(fin, dfs, 1.0)
    p = np.where(fin, 2 * _dist.t_sf(np.abs(stat), dft), 2 * _dist.norm_sf(np.abs(stat)))
    crit = np.where(fin, _dist.t_ppf(1 - alpha / 2, dft), _dist.norm_ppf(1 - alpha / 2))
    return {
        "estimate": est,
        "std_error": se,
        "df": dfs,
        "statistic": stat,
        "p_value": p,
        "ci_lower": est - crit * se,
        "ci_upper": est + crit * se,
    }


# ---- the two paths -----------------------------------------------------------------------------
def _fit_one(frame: pd.DataFrame, formula, L, level, kwargs) -> dict:
    """One replicate through :func:`peerstats.mmrm`: the tidy values of every term."""
    fit = mmrm(formula, frame, **kwargs)
    coef = fit.coef
    tests = [fit.test(row, level=level).iloc[0] for row in L]
    vals = {k: np.r_[coef[k].to_numpy(float), [t[k] for t in tests]] for k in TIDY}
    if level != 0.95:  # coef's intervals are 95%
        vals.update(_tidy(vals["estimate"], vals["std_error"], vals["df"], level))
    return vals


def _batched(design, lay, L, *, df: str, tol: float) -> tuple[dict, np.ndarray]:
    """Every replicate through the batched engine, in chunks of replicates (bounded memory);
    returns the values (S, n_terms) and the replicates it settled."""
    vals = {k: np.full((lay.n_reps, L.shape[0]), np.nan) for k in ("estimate", "std_error", "df")}
    settled = np.zeros(lay.n_reps, dtype=bool)
    start = 0
    for rows, sub in md.chunks(lay, design.X.shape[1]):
        v, s = _batched_chunk(design.X[rows], design.y[rows], sub, L, df=df, tol=tol)
        for k in vals:
            vals[k][start : start + sub.n_reps] = v[k]
        settled[start : start + sub.n_reps] = s
        start += sub.n_reps
    return vals, settled


def _batched_chunk(X, y, lay, L, *, df: str, tol: float) -> tuple[dict, np.ndarray]:
    """One chunk of replicates: screens, start values, the batched fit."""
    pooled, keys = md.blocks(X, y, lay)
    G, T, p = lay.G, lay.T, X.shape[1]
    XtX = md.gram(pooled)
    settled = ~lay.duplicated & _full_rank(XtX)
    N = md.pair_counts(pooled, keys, G, T)
    settled &= (N >= 2).all(axis=(1, 2, 3))
    n_obs = np.bincount(lay.rep, minlength=lay.n_reps)
    settled &= n_obs > p + G * T * (T + 1) // 2
    idx = np.nonzero(settled)[0]
    S_all = lay.n_reps
    vals = {k: np.full((S_all, L.shape[0]), np.nan) for k in ("estimate", "std_error", "df")}
    if idx.size == 0:
        return vals, settled
    sub = [pb.subset(idx) for pb in pooled]
    psi0 = md.start_values(sub, keys, G, T)
    fitter = BatchREML(sub, [], K=psi0.shape[1], p=p)
    res = fitter.fit_contrasts(psi0, L, df=df, df_residual=n_obs[idx] - p, tol=tol)
    ok = res["converged"] & _well_conditioned(md.sigmas(res["psi"], G, T))
    for k in vals:
        vals[k][idx[ok]] = res[k][ok]
    settled[idx[~ok]] = False
    return vals, settled


def _full_rank(XtX: np.ndarray) -> np.ndarray:
    d = np.einsum("sii->si", XtX)
    out = (d > 0).all(axis=1)
    s = np.sqrt(np.where(d > 0, d, 1.0))
    ev = np.linalg.eigvalsh(XtX / (s[:, :, None] * s[:, None, :]))
    return out & (ev[:, 0] > 1e-8)


def _well_conditioned(sig: np.ndarray) -> np.ndarray:
    ev = np.linalg.eigvalsh(sig)
    return (ev[..., 0] > 1e-8 * np.maximum(ev[..., -1], 1e-300)).all(axis=1)


# ---- the public function ------------------------------------------------------------------------
def mmrm_many(
    formula: str,
    data: pd.DataFrame | Iterable[pd.DataFrame] | Mapping[object, pd.DataFrame],
    *,
    subject: str,
    visit: str,
    replicate: str | None = None,
    covariance: CovarianceName = "us",
    group: str | None = None,
    weights: str | None = None,
    method: MethodName = "reml",
    df: DfName = "satterthwaite",
    reference: Mapping[str, str] | None = None,
    kr_information: Literal["observed", "expected"] = "observed",
    vcov: str = "model",
    time: str | Sequence[str] | None = None,
    contrasts: Mapping[str, Mapping[str, float]] | None = None,
    level: float = 0.95,
    engine: Literal["auto", "batched", "mmrm"] = "auto",
    errors: Literal["collect", "raise"] = "collect",
) -> ManyMMRMResult:
    """Fit the same MMRM to many data sets: a simulation study's replicates, resamples.

    Parameters
    ----------
    formula, subject, visit, covariance, group, weights, method, df, reference, kr_information, \
vcov, time
        As :func:`peerstats.mmrm`; the same model is fitted to every replicate.
    data : DataFrame, list of DataFrames or dict of DataFrames
        One long frame with a ``replicate`` column, or one frame per replicate (labels: the list
        positions or the dict keys).
    replicate : str, optional
        The replicate column of a long frame.
    contrasts : dict, optional
        Named linear combinations of the coefficients, ``{"effect at week 12":
        {"arm[T.peer]:visit[wk12]": 1.0}}``, reported after the coefficients.
    level : float
        Confidence level of the intervals.
    engine : {"auto", "batched", "mmrm"}
        ``"auto"``: the batched engine where the options allow it (see Notes), else one
        :func:`peerstats.mmrm` per replicate; ``"batched"`` insists (an error names the option
        that prevents it); ``"mmrm"`` always loops over :func:`peerstats.mmrm`.
    errors : {"collect", "raise"}
        ``"collect"``: a replicate that cannot be fitted (too little data, no convergence) is
        listed in ``failures`` and its rows are NaN with ``converged=False``; ``"raise"``: the
        first such error is raised.

    Returns
    -------
    ManyMMRMResult
        ``coef`` (tidy: ``replicate, term, estimate, std_error, df, statistic, p_value,
        ci_lower, ci_upper, converged``), ``failures``, ``engine``, ``power()``, ``summary()``.

    Notes
    -----
    Each replicate's numbers are those of :func:`peerstats.mmrm` on that replicate alone (the
    REML optimum, ``C = (X'V^-1X)^-1``, Satterthwaite ``df = 2 (l'Cl)^2 / (g'Wg)``, W = 2 H^-1 of
    the observed Hessian): tests/models/test_mmrm_many.py checks them against ``mmrm`` per
    replicate and against R mmrm 0.3 (``us``, Satterthwaite) on replicates fitted in R
    (tests/reference/mmrm_many/). The batched engine fits ``covariance="us"`` by REML with
    ``df`` in {satterthwaite, residual, asymptotic}, with or without ``group=``, as Fisher
    scoring on every replicate at once; each replicate it cannot settle is refitted by
    :func:`peerstats.mmrm`.

    Examples
    --------
    >>> res = peerstats.mmrm_many("y ~ arm * visit", sims, subject="id", visit="visit",
    ...                           replicate="sim")  # doctest: +SKIP
    >>> res.power()["arm[T.peer]:visit[wk12]"]  # doctest: +SKIP
    """
    covariance = choice("covariance", covariance, STRUCTURES + SPATIAL)
    method = choice("method", method, ("reml", "ml"))
    df = choice("df", df, MMRM_DF_METHODS)
    engine = choice("engine", engine, ("auto", "batched", "mmrm"))
    errors = choice("errors", errors, ("collect", "raise"))
    if not (isinstance(level, float | int) and 0 < level < 1):
        raise ModelSpecificationError(f"level must be between 0 and 1, not {level!r}")
    reps = md.replicates(data, replicate)
    kwargs = dict(
        subject=subject,
        visit=visit,
        covariance=covariance,
        group=group,
        weights=weights,
        method=method,
        df=df,
        reference=reference,
        kr_information=kr_information,
        vcov=vcov,
        time=time,
    )
    reason = _batched_reason(covariance, method, df, weights, vcov, time, kr_information)
    if engine == "batched" and reason is not None:
        raise ModelSpecificationError(f"engine='batched' cannot fit {reason}; use engine='auto'")
    use_batch = engine != "mmrm" and reason is None
    return _fit_all(reps, formula, contrasts, level, kwargs, use_batch=use_batch, errors=errors)


def _fit_all(reps, formula, contrasts, level, kwargs, *, use_batch, errors) -> ManyMMRMResult:
    """Batched fits where possible, then :func:`peerstats.mmrm` for every other replicate
    (``reps``: the long frame, replicate column, labels, values and original frames of
    ``md.replicates``)."""
    long, rep_col, labels, values, originals = reps
    subject, visit, group = kwargs["subject"], kwargs["visit"], kwargs["group"]
    extra = [subject, visit, rep_col] + ([group] if group else [])
    long = _visit_group_as_factors(long, visit, group)  # as prepare_mmrm: factors on all rows
    design = build_fixed_design(
        formula, long, extra_columns=extra, reference=kwargs["reference"], check_rank=False
    )
    names, L = _contrast_matrix(contrasts, list(design.columns))
    terms = list(design.columns) + names
    S, J = len(labels), len(terms)
    vals = {k: np.full((S, J), np.nan) for k in TIDY}
    settled = np.zeros(S, dtype=bool)
    if use_batch:
        lay = md.layout(
            design, long, rep_col=rep_col, values=values, subject=subject, visit=visit, group=group
        )
        Lfull = np.vstack([np.eye(len(design.columns)), L])
        bvals, settled = _batched(design, lay, Lfull, df=kwargs["df"], tol=1e-12)
        tidy = _tidy(bvals["estimate"], bvals["std_error"], bvals["df"], level)
        for k in TIDY:
            vals[k][settled] = tidy[k][settled]
    failures = _fit_unsettled(
        long, rep_col, labels, values, originals, settled, vals, formula, L, level, kwargs, errors
    )
    failed = np.isin(np.arange(S), [f["_pos"] for f in failures])
    coef = pd.DataFrame(
        {
            "replicate": np.repeat(np.array(labels, dtype=object), J),
            "term": np.tile(np.array(terms, dtype=object), S),
        }
    )
    for k in TIDY:
        coef[k] = vals[k].reshape(-1)
    coef["converged"] = np.repeat(~failed, J)
    fail = pd.DataFrame(failures, columns=["replicate", "error", "message"])
    how = np.where(settled, "batched", "mmrm")
    eng = pd.Series(how, index=pd.Index(labels, name="replicate"), name="engine")
    return ManyMMRMResult(coef, fail, eng, formula=formula, level=level, df=kwargs["df"])


def _fit_unsettled(
    long, rep_col, labels, values, originals, settled, vals, formula, L, level, kwargs, errors
) -> list[dict]:
    """:func:`peerstats.mmrm` on each replicate the batched engine did not settle (in place
    into ``vals``); the failures."""
    todo = np.nonzero(~settled)[0]
    by_rep = None
    if todo.size and originals is None:
        by_rep = dict(tuple(long.groupby(rep_col, sort=False, observed=True)))
    failures = []
    for s in todo:
        frame = originals[s] if originals is not None else by_rep[values[s]]
        try:
            one = _fit_one(frame, formula, L, level, kwargs)
        except (PeerstatsError, np.linalg.LinAlgError) as exc:
            if errors == "raise":
                raise
            failures.append(
                {
                    "replicate": labels[s],
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "_pos": int(s),
                }
            )
            continue
        for k in TIDY:
            vals[k][s] = one[k]
    return failures
