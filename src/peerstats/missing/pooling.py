"""Pooling rules for multiply imputed (or resampled) analyses.

* :func:`pool` - Rubin's rules (Rubin 1987) with the Barnard-Rubin (1999) small-sample degrees of
  freedom, exactly as R ``mice::pool`` / ``mice::pool.scalar`` (including mice's floor of 1e-4 on
  lambda in the df formula); validated against mice 3.15 (tests/reference/r_mi/).
* :func:`pool_jackknife` - conditional mean imputation with jackknife resampling (Wolbers et al.
  2022): the point estimate is the analysis of the full data, the standard error the jackknife
  one, inference normal (as rbmi).
* :func:`pool_bootstrap` - conditional mean imputation with the bootstrap: point estimate from
  the full data; percentile (rbmi's default, quantile type 6) or normal intervals.
* :func:`pool_bmlmi` - bootstrapped maximum-likelihood MI, von Hippel & Bartlett (2021):
  one-way random-effects ANOVA of the B x D estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.exceptions import ModelSpecificationError

__all__ = ["pool", "pool_arrays", "pool_jackknife", "pool_bootstrap", "pool_bmlmi"]

INFERENCE_COLUMNS = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]
POOL_COLUMNS = [*INFERENCE_COLUMNS, "fraction_missing_info"]


def _check_pool_options(level, bootstrap) -> None:
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level must be in (0, 1); got {level!r}")
    if bootstrap not in ("percentile", "normal"):
        raise ModelSpecificationError(
            f"bootstrap={bootstrap!r} is not valid; choose 'percentile' or 'normal'"
        )


def _pooled(*values) -> dict:
    """The pooled result as a dict keyed by POOL_COLUMNS (values in that order)."""
    return dict(zip(POOL_COLUMNS, values, strict=True))


def _t_inference(est, se, df, level):
    """Statistic, two-sided p value and CI from a t (df finite) or normal (df inf) law."""
    est = np.asarray(est, dtype=float)
    se = np.asarray(se, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), est.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    q = np.where(np.isinf(df), stats.norm.ppf(0.5 + level / 2), stats.t.ppf(0.5 + level / 2, df))
    p = np.where(np.isinf(df), 2 * stats.norm.sf(np.abs(stat)), 2 * stats.t.sf(np.abs(stat), df))
    return stat, p, est - q * se, est + q * se


def barnard_rubin_df(m: int, b, t, df_complete=None):
    """Barnard & Rubin (1999) degrees of freedom, as ``mice:::barnard.rubin``."""
    b = np.asarray(b, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (1 + 1 / m) * b / t
    lam = np.where(lam < 1e-4, 1e-4, lam)
    dfold = (m - 1) / lam**2
    if df_complete is None or np.all(np.isinf(df_complete)):
        return dfold
    dfc = np.asarray(df_complete, dtype=float)
    dfobs = (dfc + 1) / (dfc + 3) * dfc * (1 - lam)
    return np.where(np.isinf(dfc), dfold, dfold * dfobs / (dfold + dfobs))


def pool_arrays(estimates, variances, df_complete=None, *, level: float = 0.95) -> dict:
    """Rubin's rules over the first axis of ``estimates`` / ``variances`` (m, ...).

    Returns a dict of arrays (shape ``estimates.shape[1:]``): estimate, std_error, df,
    statistic, p_value, ci_lower, ci_upper, fraction_missing_info, plus ubar, b, t, riv,
    lambda (the mice names), m.
    """
    Q = np.asarray(estimates, dtype=float)
    U = np.asarray(variances, dtype=float)
    if Q.shape != U.shape:
        raise ModelSpecificationError(
            f"estimates {Q.shape} and variances {U.shape} must have the same shape"
        )
    m = Q.shape[0]
    if m < 2:
        raise ModelSpecificationError(f"Rubin's rules need at least 2 imputed datasets; got {m}")
    if not (np.all(np.isfinite(Q)) and np.all(np.isfinite(U))):
        raise ModelSpecificationError(
            "estimates and variances must be finite (an analysis failed on some imputed "
            "dataset); peerstats never pools over fewer sets silently"
        )
    if np.any(U < 0):
        raise ModelSpecificationError("variances must be non-negative")
    qbar = Q.mean(axis=0)
    ubar = U.mean(axis=0)
    b = Q.var(axis=0, ddof=1)
    t = ubar + (1 + 1 / m) * b
    dfc = None
    if df_complete is not None:
        dfc = np.broadcast_to(np.asarray(df_complete, dtype=float), qbar.shape)
        if np.any(~(dfc > 0)):
            raise ModelSpecificationError(f"df_complete must be positive; got {df_complete!r}")
    df = barnard_rubin_df(m, b, t, dfc)
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = (1 + 1 / m) * b / ubar
        lam = (1 + 1 / m) * b / t
        fmi = (riv + 2 / (df + 3)) / (riv + 1)
    se = np.sqrt(t)
    stat, p, lo, hi = _t_inference(qbar, se, df, level)
    out = _pooled(qbar, se, df, stat, p, lo, hi, fmi)
    return {**out, "ubar": ubar, "b": b, "t": t, "riv": riv, "lambda": lam, "m": m}


def pool(
    estimates: Sequence[float] | np.ndarray | pd.DataFrame | Any,
    variances: Sequence[float] | np.ndarray | pd.DataFrame | None = None,
    df_complete: float | Sequence[float] | None = None,
    *,
    level: float = 0.95,
    bootstrap: Literal["percentile", "normal"] = "percentile",
) -> pd.DataFrame:
    """Pool completed-data analyses (step 4 of 4): Rubin's rules with the Barnard-Rubin df.

    Parameters
    ----------
    estimates : Analyses, or array-like (m,) or (m, k), or DataFrame (m rows, one per term)
        An :class:`~peerstats.missing.Analyses` from :func:`peerstats.missing.analyse` (then
        ``variances`` and ``df_complete`` are not given: they are in it), pooled by the rule of
        its imputation method: Rubin's rules (bayes, approx-bayes), the jackknife
        (condmean-jackknife), the bootstrap (condmean-bootstrap; ``bootstrap="percentile"``, as
        rbmi, or ``"normal"``) with the full-data estimate, von Hippel & Bartlett
        (bootstrap-ml). The result is the table of :meth:`Imputations.analyse`.
        Or the point estimate from each of the m completed-data analyses.
    variances : array-like or DataFrame, optional
        The squared standard errors matching ``estimates`` (arrays only).
    df_complete : float or (k,), optional
        Complete-data degrees of freedom (e.g. n - p of the analysis model). ``None``: infinite
        (the large-sample df of Rubin 1987).
    level : float
        Confidence level of the interval.
    bootstrap : {"percentile", "normal"}
        The interval of condmean-bootstrap (an Analyses only).

    Returns
    -------
    DataFrame
        For an Analyses: the table of :meth:`Imputations.analyse` (per visit and contrast, or
        per term). For arrays: one row per term: ``term, estimate, std_error, df, statistic, p_value, ci_lower,
        ci_upper, fraction_missing_info`` and the components ``ubar`` (mean within variance),
        ``b`` (between variance), ``t`` (total), ``riv`` (relative increase in variance),
        ``lambda``, ``m``.

    Notes
    -----
    qbar = mean(Q), ubar = mean(U), b = var(Q) (divisor m - 1), t = ubar + (1 + 1/m) b;
    lambda = (1 + 1/m) b / t (floored at 1e-4 for the df, as mice); df_old = (m - 1)/lambda^2,
    df_obs = (v + 1)/(v + 3) v (1 - lambda), df = df_old df_obs / (df_old + df_obs);
    fmi = (riv + 2/(df + 3)) / (riv + 1). Identical to ``mice::pool.scalar`` (rule
    "rubin1987") and ``mice::pool`` to 1e-8 (tests/reference/r_mi/); for an Analyses of
    LMM fits, ``mice::pool`` of ``lmerTest::lmer`` fits (tests/reference/r_mi_lmm/). This is
    rbmi's ``pool()`` (Gower-Page et al. 2022), step 4 of 4.

    Raises
    ------
    ModelSpecificationError
        An Imputations or Draws (analyse first), an Analyses with variances, no variances,
        fewer than 2 sets, non-finite values (a failed analysis: never pooled silently),
        mismatched shapes.
    """
    if hasattr(estimates, "_pooled_table"):  # an Analyses (missing/analyses.py)
        if variances is not None or df_complete is not None:
            raise ModelSpecificationError(
                "pool(analyses) takes its variances and complete-data df from the Analyses; "
                "do not pass variances= or df_complete="
            )
        return estimates._pooled_table(level=level, bootstrap=bootstrap)
    if type(estimates).__name__ in ("Imputations", "Draws"):
        raise ModelSpecificationError(
            f"pool needs an Analyses or per-set estimates and variances; got "
            f"{type(estimates).__name__}: run peerstats.missing.analyse(imputations) first"
        )
    if variances is None:
        raise ModelSpecificationError(
            "pool needs the variances of the estimates (or an Analyses from analyse())"
        )
    names = None
    if isinstance(estimates, pd.DataFrame):
        names = [str(c) for c in estimates.columns]
        estimates = estimates.to_numpy(dtype=float)
    if isinstance(variances, pd.DataFrame):
        variances = variances.to_numpy(dtype=float)
    if isinstance(estimates, pd.Series):
        estimates = estimates.to_numpy(dtype=float)
    if isinstance(variances, pd.Series):
        variances = variances.to_numpy(dtype=float)
    Q = np.asarray(estimates, dtype=float)
    U = np.asarray(variances, dtype=float)
    if Q.ndim not in (1, 2):
        raise ModelSpecificationError(
            f"estimates must be 1-D (m,) or 2-D (m, k); got shape {Q.shape}"
        )
    if Q.ndim == 1:
        Q = Q[:, None]
        U = U.reshape(Q.shape) if U.size == Q.size else U
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level must be in (0, 1); got {level!r}")
    res = pool_arrays(Q, U, df_complete, level=level)
    k = Q.shape[1]
    out = pd.DataFrame({c: np.asarray(res[c]) for c in POOL_COLUMNS})
    for c in ("ubar", "b", "t", "riv", "lambda"):
        out[c] = np.asarray(res[c])
    out["m"] = res["m"]
    out.insert(0, "term", names if names is not None else [str(j) for j in range(k)])
    return out


def pool_jackknife(estimates, *, level: float = 0.95) -> dict:
    """First row: the full-data estimate; the other n rows: leave-one-out estimates.

    se = sqrt((n - 1)/n sum (theta_(i) - mean)^2) (Efron & Tibshirani 1994, sec. 11; rbmi),
    normal inference.
    """
    E = np.asarray(estimates, dtype=float)
    point, jk = E[0], E[1:]
    n = jk.shape[0]
    if n < 2:
        raise ModelSpecificationError("the jackknife needs at least 2 leave-one-out estimates")
    se = np.sqrt((n - 1) / n * ((jk - jk.mean(axis=0)) ** 2).sum(axis=0))
    stat, p, lo, hi = _t_inference(point, se, np.inf, level)
    nan = np.full(np.shape(point), np.nan)
    return _pooled(point, se, np.full(np.shape(point), np.inf), stat, p, lo, hi, nan)


def _quantile_type6(x: np.ndarray, probs) -> np.ndarray:
    """R's quantile(type = 6) along axis 0."""
    x = np.sort(x, axis=0)
    n = x.shape[0]
    out = []
    for pr in probs:
        h = (n + 1) * pr
        j = int(np.floor(h))
        g = h - j
        lo = x[min(max(j, 1), n) - 1]
        hi = x[min(max(j + 1, 1), n) - 1]
        out.append(lo + g * (hi - lo))
    return np.array(out)


def pool_bootstrap(estimates, *, level: float = 0.95, type: str = "percentile") -> dict:
    """First row: full-data estimate; other rows: bootstrap estimates (rbmi's rules).

    ``percentile``: interval from the type-6 quantiles of the bootstrap estimates, p value
    min(1, 2 min((#<0 + 1)/(B + 1), (#>0 + 1)/(B + 1))), std_error = sd (shown for reference).
    ``normal``: se = sd(bootstrap estimates), normal interval and p value.
    """
    E = np.asarray(estimates, dtype=float)
    point, bs = E[0], E[1:]
    B = bs.shape[0]
    if B < 2:
        raise ModelSpecificationError("the bootstrap needs at least 2 bootstrap estimates")
    se = bs.std(axis=0, ddof=1)
    nan = np.full(np.shape(point), np.nan)
    if type == "normal":
        stat, p, lo, hi = _t_inference(point, se, np.inf, level)
    elif type == "percentile":
        alpha = 1 - level
        lo, hi = _quantile_type6(bs, [alpha / 2, 1 - alpha / 2])
        pv = np.stack([((bs < 0).sum(axis=0) + 1) / (B + 1), ((bs > 0).sum(axis=0) + 1) / (B + 1)])
        p = np.minimum(2 * pv.min(axis=0), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = point / se
    else:
        raise ModelSpecificationError(
            f"bootstrap interval type={type!r} is not valid; choose 'percentile' or 'normal'"
        )
    return _pooled(point, se, np.full(np.shape(point), np.inf), stat, p, lo, hi, nan)


def pool_bmlmi(estimates, D: int, *, level: float = 0.95) -> dict:
    """von Hippel & Bartlett (2021) pooling of B bootstrap samples x D imputations.

    Rows ordered sample by sample (the D imputations of sample 1, then sample 2, ...).
    MSB, MSW from a one-way ANOVA; var = (1 + 1/B)(MSB - MSW)/D + MSW/(BD);
    df = var^2 / (((B+1)/(BD))^2 MSB^2/(B-1) + MSW^2/(B D^2 (D-1))), at least 3 (as rbmi's
    ``get_ests_bmlmi``). A non-positive variance (possible with few samples) is not floored:
    its standard error and inference are NaN.
    """
    E = np.asarray(estimates, dtype=float)
    n = E.shape[0]
    if D < 2 or n % D:
        raise ModelSpecificationError(
            f"bootstrap-ml needs D >= 2 and B x D rows; got {n} rows, D={D}"
        )
    B = n // D
    if B < 2:
        raise ModelSpecificationError("bootstrap-ml needs at least 2 bootstrap samples")
    X = E.reshape((B, D) + E.shape[1:])
    point = X.mean(axis=(0, 1))
    means = X.mean(axis=1)
    SSW = ((X - means[:, None]) ** 2).sum(axis=(0, 1))
    SSB = D * ((means - point) ** 2).sum(axis=0)
    MSW = SSW / (B * (D - 1))
    MSB = SSB / (B - 1)
    var = (1 + 1 / B) * (MSB - MSW) / D + MSW / (B * D)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / (((B + 1) / (B * D)) ** 2 * MSB**2 / (B - 1) + MSW**2 / (B * D**2 * (D - 1)))
    df = np.maximum(3.0, df)
    se = np.sqrt(np.where(var > 0, var, np.nan))
    stat, p, lo, hi = _t_inference(point, se, df, level)
    return _pooled(point, se, df, stat, p, lo, hi, np.full(np.shape(point), np.nan))
