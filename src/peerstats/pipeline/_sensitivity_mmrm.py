"""The primary MMRM on many completed datasets at once (issue 22): :func:`peerstats.mmrm_many`.

Where the primary model is an MMRM that :func:`peerstats.mmrm_many` fits in one batch
(unstructured covariance, REML, model-based covariance, Satterthwaite / residual / asymptotic
df) and the imputations pool by Rubin's rules without resampling weights, the completed
datasets of every imputation analysis (all cells of a tipping-point grid together) are one
long frame with a replicate column, fitted in one call; the per-visit contrasts are named
linear combinations of the coefficients (the rows of ``fit.contrasts``), and Rubin's rules
pool them as :func:`~peerstats.pipeline._sensitivity_model.pool_primary` does. mmrm_many gives
every replicate :func:`peerstats.mmrm`'s answer (tests/models/test_mmrm_many.py, against R
mmrm in tests/reference/mmrm_many/); a replicate it cannot fit is reported, and the analysis
then fails naming the set, as the plain path does.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError

__all__ = ["mmrm_pooled"]

_RUBIN = ("bayes", "approx-bayes")
_BATCHED_DF = ("satterthwaite", "residual", "asymptotic")


def _eligible(analyser: Any, imps: list) -> bool:
    o = analyser.options
    if analyser.kind != "mmrm" or o.get("covariance", "us") != "us":
        return False
    if o.get("df", "satterthwaite") not in _BATCHED_DF or o.get("vcov", "model") != "model":
        return False
    if o.get("method", "reml") != "reml" or o.get("weights") or o.get("group"):
        return False
    return all(i.method in _RUBIN and i.weights is None and i.rows is None for i in imps)


def _contrasts(analyser: Any, data0: pd.DataFrame) -> tuple[list[tuple[str, str]], dict]:
    """The keys (visit, contrast) and the named coefficient combinations of the contrasts of
    ``analyser.contrasts`` (one plain fit on the first completed dataset gives the design)."""
    import peerstats
    from peerstats.models._lmm_many import contrast_rows

    fit = peerstats.mmrm(analyser.formula, data0, **analyser.options)
    visits = list(pd.unique(data0["visit"].astype(str)))
    by = "visit" if len(visits) > 1 else None
    keys, L = contrast_rows(fit._design, "arm", by, analyser.reference)
    if by is None:
        keys = [(visits[0], c) for _, c in keys]
    cols = list(fit._design.columns)
    named = {
        f"_c{j}": {c: float(w) for c, w in zip(cols, row) if w != 0} for j, row in enumerate(L)
    }
    return keys, named


def _fit_all(analyser: Any, imps: list, data0: pd.DataFrame, named: dict):
    """One mmrm_many call on every completed dataset of ``imps``: (R, k) estimates, standard
    errors, df in the order of the imputations; raises naming the first set that failed."""
    import peerstats

    n = len(data0)
    Y = np.vstack([i.completed().reshape(i.n_imputations, -1) for i in imps])
    if Y.shape[1] != n:
        return None
    long = data0.iloc[np.tile(np.arange(n), len(Y))].reset_index(drop=True)
    long[analyser.outcome] = Y.reshape(-1)
    long["_replicate"] = np.repeat(np.arange(len(Y)), n)
    res = peerstats.mmrm_many(
        analyser.formula, long, replicate="_replicate", contrasts=named,
        level=analyser.level, **analyser.options,
    )  # fmt: skip
    if len(res.failures):
        f = res.failures.iloc[0]
        S = imps[0].n_imputations
        raise ModelSpecificationError(
            f"the analysis failed on {len(res.failures)} of {len(Y)} completed datasets "
            f"(first: set {int(f['replicate']) % S}: {f['error']}: {f['message']}); peerstats "
            "does not pool over fewer sets"
        )
    c = res.coef[res.coef["term"].isin(list(named))]
    shape = (len(Y), len(named))
    return tuple(c[k].to_numpy(float).reshape(shape) for k in ("estimate", "std_error", "df"))


def mmrm_pooled(imps: list, analyser: Any) -> list[pd.DataFrame] | None:
    """The pooled table of :func:`pool_primary` for each of ``imps`` (imputations of the same
    data, e.g. the cells of a tipping-point grid) by one :func:`peerstats.mmrm_many` call;
    None where the batch does not apply (the caller takes the plain path)."""
    from peerstats.missing.pooling import POOL_COLUMNS, _check_pool_options, pool_arrays

    if not imps or not _eligible(analyser, imps):
        return None
    _check_pool_options(analyser.level, "percentile")
    data0 = analyser.data(imps[0].datasets[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plain path's fits warn nothing else here
        keys, named = _contrasts(analyser, data0)
        got = _fit_all(analyser, imps, data0, named)
    if got is None:
        return None
    E, SE, D = got
    out, r0 = [], 0
    for imp in imps:
        S = imp.n_imputations
        e, v, d = E[r0 : r0 + S], SE[r0 : r0 + S] ** 2, D[r0 : r0 + S]
        r0 += S
        analyser.n_fits += S
        dfc = np.mean(d, axis=0)
        pooled = pool_arrays(
            e, v, None if not np.all(np.isfinite(dfc)) else dfc, level=analyser.level
        )
        t = pd.DataFrame({c: np.atleast_1d(pooled[c]) for c in POOL_COLUMNS})
        t.insert(0, "contrast", [c for _, c in keys])
        t.insert(0, "visit", [v_ for v_, _ in keys])
        out.append(t)
    return out
