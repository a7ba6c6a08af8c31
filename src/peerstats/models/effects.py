"""Standardised effect sizes and model comparison for any fitted mixed model.

- :func:`effect_size` (also ``fit.effect_size(...)``): Cohen's d and Hedges' g of each arm
  contrast, from the model's adjusted difference and a stated SD.
- :func:`compare` (``peerstats.compare(*fits)``): AIC, BIC and likelihood-ratio tests of
  consecutive fits, refusing REML comparisons of different fixed effects.

Validated against R (emmeans ``eff_size``, nlme ``anova``): tests/reference/r_effects/.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats import _dist
from peerstats.exceptions import ModelSpecificationError

__all__ = ["effect_size", "compare", "hedges_j"]


def hedges_j(n1: int, n2: int) -> float:
    """Hedges' small-sample correction J = 1 - 3 / (4 (n1 + n2) - 9) (Hedges 1981; Borenstein
    et al. 2009, eq. 4.22, with df = n1 + n2 - 2: J = 1 - 3 / (4 df - 1))."""
    n = n1 + n2
    return 1.0 - 3.0 / (4.0 * n - 9.0) if n > 2 else float("nan")


def _pooled(values: pd.Series, groups: pd.Series) -> float:
    g = values.groupby(groups, observed=True)
    n, v = g.count(), g.var(ddof=1)
    ok = n > 1
    if not ok.any():
        return float("nan")
    return float(np.sqrt(((n[ok] - 1) * v[ok]).sum() / (n[ok] - 1).sum()))


def effect_size(
    fit: Any,
    arm: str = "arm",
    by: str | None = None,
    sd: float | str = "baseline",
    *,
    reference: str | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Cohen's d and Hedges' g of each arm contrast (per level of ``by``) of a fitted model.

    Parameters
    ----------
    fit : MixedModelResult or LMMResult
        A model from :func:`peerstats.mmrm` or :func:`peerstats.lmm` with ``arm`` as factor.
    arm, by, reference : str
        As :meth:`contrasts`: each non-reference level of ``arm`` minus ``reference``, per
        level of ``by`` (e.g. ``"visit"``).
    sd : float or {"baseline", "raw"}
        The standardiser. A number: that SD (e.g. a published or pre-specified one).
        ``"baseline"``: the pooled within-arm SD of ``<outcome>_baseline`` over the model's
        participants (one value each; Feingold 2009). ``"raw"``: the pooled within-arm SD of
        the outcome itself among the model's observations at each level of ``by``.
    level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per contrast: ``by`` (when given), ``contrast, estimate, ci_lower, ci_upper,
        sd, sd_source, n_arm, n_reference, d, d_ci_lower, d_ci_upper, j, g, g_ci_lower,
        g_ci_upper``.

    Notes
    -----
    d = adjusted difference / SD, its CI the difference's CI (the model's df method) divided
    by the same SD, i.e. the SD is treated as known (as emmeans ``eff_size`` with infinite
    ``edf``). Hedges' g = J d with J = 1 - 3 / (4 (n1 + n2) - 9), n1 and n2 the participants
    of the two arms in the model (Hedges 1981); its CI is J times d's. The sign follows the
    difference (arm minus reference) on the outcome's own scale: where lower scores are better,
    a negative d favours the arm.
    """
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level={level!r} must be between 0 and 1")
    design = getattr(fit, "_design", None)
    data = getattr(design, "data", None)
    outcome = getattr(design, "outcome", None)
    subject = getattr(fit, "subject", "subject")
    con = fit.contrasts(arm, by=by, reference=reference, level=level)
    if data is None or arm not in data.columns:
        raise ModelSpecificationError("the fit does not carry its data; pass a fit from peerstats")
    arms = data[arm].astype(str)
    subj = (
        data[subject].astype(str) if subject in data.columns else pd.Series(data.index.astype(str))
    )
    n_by_arm = subj.groupby(arms).nunique()
    sds, source = _standardiser(sd, data, outcome, by, con, subj, arms)
    out = con[[*([by] if by else []), "contrast", "estimate", "ci_lower", "ci_upper"]].copy()
    out["sd"] = sds.to_numpy()
    out["sd_source"] = source
    pairs = [c.split(" - ", 1) for c in out["contrast"]]
    out["n_arm"] = [int(n_by_arm.get(a, 0)) for a, _ in pairs]
    out["n_reference"] = [int(n_by_arm.get(r, 0)) for _, r in pairs]
    out["d"] = out["estimate"] / out["sd"]
    out["d_ci_lower"] = out["ci_lower"] / out["sd"]
    out["d_ci_upper"] = out["ci_upper"] / out["sd"]
    out["j"] = [hedges_j(a, r) for a, r in zip(out["n_arm"], out["n_reference"])]
    for c in ("", "_ci_lower", "_ci_upper"):
        out[f"g{c}"] = out["j"] * out[f"d{c}"]
    return out.reset_index(drop=True)


def _standardiser(
    sd: float | str,
    data: pd.DataFrame,
    outcome: str | None,
    by: str | None,
    con: pd.DataFrame,
    subj: pd.Series,
    arms: pd.Series,
) -> tuple[pd.Series, str]:
    """The SD of each contrast row of :func:`effect_size` and where it comes from."""
    if isinstance(sd, int | float) and not isinstance(sd, bool):
        if not np.isfinite(sd) or sd <= 0:
            raise ModelSpecificationError(f"sd={sd!r} must be a positive number")
        return pd.Series(float(sd), index=con.index), "given"
    if sd == "baseline":
        bcol = f"{outcome}_baseline"
        if bcol not in data.columns:
            raise ModelSpecificationError(
                f"sd='baseline' needs the column {bcol!r} in the model's data; pass sd='raw' or "
                "a number"
            )
        per = data.assign(_s=subj.to_numpy(), _a=arms.to_numpy()).drop_duplicates("_s")
        sds = pd.Series(_pooled(per[bcol].astype(float), per["_a"]), index=con.index)
        return sds, f"pooled within-arm SD of {bcol} (one value per participant)"
    if sd == "raw":
        vals = data[outcome].astype(float)
        if by is None:
            sds = pd.Series(_pooled(vals, arms), index=con.index)
        else:
            byv = data[by].astype(str)
            per_by = {b: _pooled(vals[byv == b], arms[byv == b]) for b in byv.unique()}
            sds = pd.Series([per_by.get(str(b), np.nan) for b in con[by]], index=con.index)
        return sds, f"pooled within-arm SD of {outcome}" + (f" at each {by}" if by else "")
    raise ModelSpecificationError(f"sd={sd!r}: give a positive number, 'baseline' or 'raw'")


def _fixed_columns(fit: Any) -> tuple[str, ...]:
    return tuple(getattr(getattr(fit, "_design", None), "columns", ()) or fit.params.index)


CONVENTIONS: dict[str, str] = {
    "r": "R nlme: AIC = -2 logLik + 2k, BIC = -2 logLik + k log(N), k = all parameters (fixed "
    "+ covariance), N = analysed observations (minus fixed effects under REML)",
    "sas": "SAS PROC MIXED: AIC = -2 logLik + 2q, BIC = -2 logLik + q log(s), q = covariance "
    "parameters (plus fixed effects under ML), s = subjects in the data (SAS's Subjects "
    "dimension)",
}


def _criteria(f: Any, method: str, convention: str) -> dict:
    """n_params, aic, bic and the n of BIC of one fit under ``convention``."""
    m2l = -2.0 * float(f.loglik)
    p, ncov = int(f.n_fixed), int(f.n_cov_params)
    if convention == "r":
        k = p + ncov
        n = int(f.n_obs) - (p if method == "reml" else 0)
    else:
        k = ncov + (p if method == "ml" else 0)
        n = getattr(f, "n_subjects_data", None)
        if n is None:
            raise ModelSpecificationError(
                "convention='sas' needs the number of subjects of each fit (mmrm / lmm fits)"
            )
        n = int(n)
    return {"n_params": k, "aic": m2l + 2 * k, "bic": m2l + k * np.log(n), "bic_n": n}


def compare(
    *fits: Any,
    names: list[str] | None = None,
    convention: Literal["r", "sas"] = "r",
) -> pd.DataFrame:
    """Information criteria and likelihood-ratio tests of fitted models (R ``anova(m1, m2)``).

    Parameters
    ----------
    *fits : fitted models
        Two or more fits of the same data (``mmrm`` / ``lmm``), all REML or all ML.
    names : list of str, optional
        Row names (default ``model 1``, ``model 2``, ...).
    convention : {"r", "sas"}
        How AIC and BIC count parameters and observations. ``"r"`` (default; R
        ``nlme::anova``, ``AIC()``, ``BIC()``): every parameter counts (k = fixed effects +
        covariance parameters) and BIC uses the analysed observations N (N - p under REML, as
        nlme). ``"sas"`` (PROC MIXED "Information Criteria"): under REML only the covariance
        parameters count (plus the fixed effects under ML) and BIC uses the number of subjects
        in the data, including those with no analysed outcome (SAS's "Subjects" dimension;
        confirmed on the FEV listings, whose 3 subjects without any outcome are counted).

    Returns
    -------
    DataFrame
        One row per fit: ``model, formula, method, convention, n_obs, n_params, loglik, aic,
        bic, bic_n`` (``n_params`` is the k or q that AIC and BIC count; ``bic_n`` the n in
        log(n)) and, from the second row on, the test against the row before:
        ``lr_statistic`` (2 times the log-likelihood difference, larger model minus smaller),
        ``lr_df`` (difference in parameters, the same in either convention) and ``p_value``
        (chi-square). ``attrs["convention"]`` states the convention in words.

    Raises
    ------
    ModelSpecificationError
        Fewer than two fits, different numbers of observations, REML mixed with ML, or REML fits
        with different fixed effects: REML likelihoods of different fixed effects are not
        comparable (refit with ``method="ml"``).

    Notes
    -----
    The test assumes the models are nested. A variance parameter tested at the boundary of its
    space (e.g. a random effect's variance = 0) makes the chi-square p-value conservative
    (Self & Liang 1987). ``fit.aic`` / ``fit.bic`` of an mmrm fit follow SAS; those of an lmm fit
    follow lme4. Validated against R ``nlme::anova`` (AIC, BIC, likelihood ratio) and SAS PROC
    MIXED listings (AIC, BIC) in tests/models/test_compare_conventions.py.
    """
    names, method = _check_comparable(fits, names, convention)
    out = pd.DataFrame([_compare_row(name, f, method, convention) for name, f in zip(names, fits)])
    out.attrs["convention"] = CONVENTIONS[convention]
    _add_lr_tests(out, fits)
    return out


def _check_comparable(
    fits: tuple[Any, ...], names: list[str] | None, convention: str
) -> tuple[list[str], str]:
    """The row names and the common method of fits that :func:`compare` may compare; raises
    on anything it may not (see there)."""
    if convention not in CONVENTIONS:
        raise ModelSpecificationError(
            f"convention={convention!r} is not valid; choose one of {list(CONVENTIONS)}"
        )
    if len(fits) < 2:
        raise ModelSpecificationError("compare() needs at least two fitted models")
    names = list(names) if names is not None else [f"model {i + 1}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ModelSpecificationError(f"{len(names)} names for {len(fits)} fits")
    methods = {str(getattr(f, "method", "reml")).lower() for f in fits}
    if len(methods) > 1:
        raise ModelSpecificationError(
            f"the fits mix estimation methods {sorted(methods)}; compare REML with REML or ML with ML"
        )
    n_obs = {int(f.n_obs) for f in fits}
    if len(n_obs) > 1:
        raise ModelSpecificationError(
            f"the fits use different numbers of observations {sorted(n_obs)}; likelihoods of "
            "different data are not comparable"
        )
    method = methods.pop()
    if method == "reml":
        cols = [_fixed_columns(f) for f in fits]
        if any(set(c) != set(cols[0]) for c in cols[1:]):
            raise ModelSpecificationError(
                "REML likelihoods of models with different fixed effects are not comparable "
                "(the restricted likelihood depends on the fixed-effect design); refit every "
                "model with method='ml' to test fixed effects, or keep the fixed effects equal "
                "to compare covariance structures"
            )
    return names, method


def _compare_row(name: str, f: Any, method: str, convention: str) -> dict[str, Any]:
    """One row of :func:`compare`: the fit's likelihood and information criteria."""
    crit = _criteria(f, method, convention)
    return {
        "model": name,
        "formula": str(getattr(f, "formula", "")),
        "method": method.upper(),
        "convention": convention,
        "n_obs": int(f.n_obs),
        "n_params": crit["n_params"],
        "loglik": float(f.loglik),
        "aic": crit["aic"],
        "bic": crit["bic"],
        "bic_n": crit["bic_n"],
    }


def _add_lr_tests(out: pd.DataFrame, fits: tuple[Any, ...]) -> None:
    """Add ``lr_statistic, lr_df, p_value`` (each row against the row before) in place."""
    out["lr_statistic"] = np.nan
    out["lr_df"] = np.nan
    out["p_value"] = np.nan
    k_all = [int(f.n_cov_params) + int(f.n_fixed) for f in fits]
    for i in range(1, len(out)):
        a, b = out.iloc[i - 1], out.iloc[i]
        df = abs(k_all[i] - k_all[i - 1])
        big, small = (b, a) if k_all[i] >= k_all[i - 1] else (a, b)
        stat = max(2.0 * (big["loglik"] - small["loglik"]), 0.0)
        out.loc[out.index[i], "lr_statistic"] = stat
        out.loc[out.index[i], "lr_df"] = df
        out.loc[out.index[i], "p_value"] = float(_dist.chi2_sf(stat, df)) if df > 0 else np.nan
