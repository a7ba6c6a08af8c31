"""Predictions, residuals, marginal means and contrasts of a GLMM fit (internal).

Marginal means (``emmeans``) use the reference grid of :mod:`peerstats.models.emmeans` (all
factor combinations, numeric covariates at their mean, equal weights), evaluated at random
effects 0, as R's emmeans on a glmer fit: the CI is computed on the link scale and
back-transformed; the response-scale standard error is the delta-method one
(``|dmu/deta| SE_link``, emmeans' ``type = "response"``). These are conditional (subject-
specific) quantities; population-average effects are :func:`peerstats.marginal_effect`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._design import choice
from peerstats.models._random import split_formula
from peerstats.models.emmeans import emmeans_matrix

__all__ = ["re_variance", "predict", "residuals", "emmeans", "contrasts", "effect_records"]


def _term_values(lhs: str, data: pd.DataFrame) -> np.ndarray:
    import formulaic

    if lhs.replace(" ", "") in ("1", "1+0", "0+1"):
        return np.ones((len(data), 1))
    Z = np.asarray(formulaic.model_matrix(lhs, data, na_action="ignore"), dtype=float)
    return Z if Z.ndim == 2 else Z[:, None]


def re_variance(fit, data: pd.DataFrame) -> np.ndarray:
    """sum over terms of z_i' G z_i: the variance of the random part of eta for row i."""
    out = np.zeros(len(data))
    _, rterms = split_formula(fit.formula)
    for rt, G in zip(rterms, fit._re_covs):
        Z = np.nan_to_num(_term_values(rt.lhs, data))
        out += np.einsum("na,ab,nb->n", Z, G, Z)
    return out


def _re_linear(fit, data: pd.DataFrame) -> np.ndarray:
    """Z b for rows of ``data`` whose groups were in the fit (0 for new or missing groups)."""
    out = np.zeros(len(data))
    if not fit._problem.terms:
        return out
    _, rterms = split_formula(fit.formula)
    blist = fit._obj.ranef(fit._opt.phi)
    for rt, t, b in zip(rterms, fit._problem.terms, blist):
        Z = np.nan_to_num(_term_values(rt.lhs, data))
        parts = [data[c] for c in rt.group_columns]
        na = pd.concat([p.isna() for p in parts], axis=1).any(axis=1).to_numpy()
        lab = parts[0].astype(str)
        for p in parts[1:]:
            lab = lab + ":" + p.astype(str)
        pos = pd.Index(t.levels).get_indexer(lab.to_numpy())
        known = (pos >= 0) & ~na
        contrib = np.einsum("na,na->n", Z[known], b[pos[known]])
        out[known] += contrib
    return out


def _offset_for(fit, data: pd.DataFrame) -> np.ndarray:
    for arg, log in ((fit._offset_arg, False), (fit._exposure_arg, True)):
        if arg is None:
            continue
        if not isinstance(arg, str):
            raise ModelSpecificationError(
                "the model was fitted with an offset array; predict on new data needs the "
                "offset as a column name"
            )
        v = pd.to_numeric(data[arg]).to_numpy(dtype=float)
        return np.log(v) if log else v
    return np.zeros(len(data))


def predict(fit, data=None, *, type="response", conditional=True) -> np.ndarray:
    type = choice("type", type, ("response", "link"))
    if data is None:
        X, off = fit._problem.X, fit._problem.offset
        data = fit._rows_data
    else:
        X, off = fit.model_matrix(data), _offset_for(fit, data)
    eta = X @ fit.fixed_params + off
    if conditional:
        eta = eta + _re_linear(fit, data)
    if type == "link":
        return eta
    if fit._zero_X is not None:
        Xz = np.asarray(fit._zero_X.spec.get_model_matrix(data, na_action="ignore"), dtype=float)
        if not fit._problem.terms:
            return fit._obj.mean(fit._opt.phi, X, off, Xz)
        extra = fit._opt.phi[fit.n_fixed + fit._problem.n_theta :]
        return fit._problem.family.mean(eta, Xz, extra)
    return np.asarray(fit.link.inverse(eta), dtype=float)


def residuals(fit, type="response") -> pd.Series:
    type = choice("type", type, ("response", "pearson"))
    pr = fit._problem
    mu = predict(fit)
    if fit.family_name == "binomial":
        yv = pr.y / pr.trials
        var = mu * (1 - mu) / pr.trials
    else:
        yv = pr.y
        var = mu if fit.family_name == "poisson" else mu + mu**2 / fit.theta
        if fit._zero_X is not None and type == "pearson":
            raise ModelSpecificationError(
                "Pearson residuals of zero-inflated / hurdle models "
                "are not implemented; use type='response'"
            )
    r = yv - mu
    if type == "pearson":
        r = r / np.sqrt(var)
    return pd.Series(r, index=fit._rows_data.index, name=f"{type}_residual")


def _link_table(fit, L: np.ndarray, offset: float = 0.0):
    est = L @ fit.fixed_params + offset
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, fit.fixed_vcov, L))
    return est, se


def emmeans(fit, specs, *, type="response", offset=0.0) -> pd.DataFrame:
    """Marginal means of ``specs`` with a CI on the link scale (back-transformed for
    ``type="response"``; with an offset, response-scale means are rates at ``offset``)."""
    type = choice("type", type, ("response", "link"))
    specs = [specs] if isinstance(specs, str) else list(specs)
    if fit._zero_X is not None:
        raise ModelSpecificationError(
            "emmeans of zero-inflated / hurdle models are not implemented; use predict()"
        )
    frame, L = emmeans_matrix(fit._design, specs)
    est, se = _link_table(fit, L, offset)
    z = stats.norm.ppf(0.5 + fit.level / 2)
    lo, hi = est - z * se, est + z * se
    out = frame.copy()
    if type == "link":
        out["estimate"], out["std_error"], out["ci_lower"], out["ci_upper"] = est, se, lo, hi
    else:
        inv, d = fit.link.inverse, fit.link.inverse_deriv
        out["estimate"] = inv(est)
        out["std_error"] = np.abs(d(est)) * se
        out["ci_lower"], out["ci_upper"] = inv(lo), inv(hi)
    out.attrs["type"] = type
    out.attrs["method"] = (
        "reference grid, equal weights, random effects at 0; CI on the link "
        "scale" + (", back-transformed" if type == "response" else "")
    )
    return out


def _ratio_scale(fit) -> str | None:
    if fit.link_name == "logit":
        return "odds_ratio"
    if fit.link_name == "log":
        return "rate_ratio"
    return None


def contrasts(fit, arm: str, *, by=None, scale=None) -> pd.DataFrame:
    """Every level of ``arm`` minus its reference level (within ``by``), Wald z.

    ``scale``: ``"ratio"`` (odds or rate ratio: exp of the link-scale difference; the default
    for logit / log links), ``"link"`` (difference of log-odds / log-rates) or
    ``"difference"`` (risk or rate difference at random effects 0, delta method).
    """
    if fit._zero_X is not None:
        raise ModelSpecificationError(
            "contrasts of zero-inflated / hurdle models are not implemented; use coef"
        )
    ratio = _ratio_scale(fit)
    scale = choice(
        "scale", scale or ("ratio" if ratio else "link"), ("ratio", "link", "difference")
    )
    if scale == "ratio" and ratio is None:
        raise ModelSpecificationError(
            f"scale='ratio' needs a logit or log link, not "
            f"{fit.link_name!r}; use scale='link' or 'difference'"
        )
    if arm not in fit._design.factors:
        raise ModelSpecificationError(
            f"arm={arm!r} is not a factor of the model; factors are {list(fit._design.factors)}"
        )
    specs = [arm] if by is None else [arm, by]
    frame, L = emmeans_matrix(fit._design, specs)
    levels = fit._design.factor_values[arm]
    ref = levels[0]
    rows, Ls = [], []
    by_values = [None] if by is None else list(frame[by].cat.categories)
    for bv in by_values:
        sel_by = np.ones(len(frame), bool) if bv is None else (frame[by] == bv).to_numpy()
        r0 = np.flatnonzero(sel_by & (frame[arm] == ref).to_numpy())[0]
        for lev in levels[1:]:
            r1 = np.flatnonzero(sel_by & (frame[arm] == lev).to_numpy())[0]
            rows.append({"contrast": f"{lev} - {ref}", **({by: bv} if by else {})})
            Ls.append((L[r1], L[r0]))
    return _contrast_frame(fit, rows, Ls, scale, ratio)


def _contrast_frame(fit, rows, Ls, scale, ratio) -> pd.DataFrame:
    z = stats.norm.ppf(0.5 + fit.level / 2)
    b, V = fit.fixed_params, fit.fixed_vcov
    out = []
    for (l1, l0), row in zip(Ls, rows):
        if scale == "difference":
            e1, e0 = l1 @ b, l0 @ b
            inv, d = fit.link.inverse, fit.link.inverse_deriv
            est = float(inv(e1) - inv(e0))
            g = d(e1) * l1 - d(e0) * l0
        else:
            g = l1 - l0
            est = float(g @ b)
        se = float(np.sqrt(g @ V @ g))
        stat = est / se
        lo, hi = est - z * se, est + z * se
        if scale == "ratio":
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        out.append(
            {
                **row,
                "estimate": est,
                "std_error": se,
                "statistic": stat,
                "p_value": 2 * stats.norm.sf(abs(stat)),
                "ci_lower": lo,
                "ci_upper": hi,
            }
        )
    frame = pd.DataFrame(out)
    frame.attrs["scale"] = ratio if scale == "ratio" else scale
    frame.attrs["method"] = (
        "Wald z; ratio CI = exp(link-scale CI); std_error on the link scale"
        if scale == "ratio"
        else "Wald z"
    )
    return frame


def effect_records(fit, arm: str, *, outcome_label="", by=None, **fields: Any) -> list:
    from peerstats.effects.record import EffectRecord, row_numbers

    ratio = _ratio_scale(fit)
    if ratio is None:
        raise ModelSpecificationError(
            "effect records need a logit or log link (odds or rate ratios)"
        )
    table = contrasts(fit, arm, by=by, scale="ratio")
    out = []
    for _, r in table.iterrows():
        out.append(
            EffectRecord(
                outcome=fit._design.outcome,
                outcome_label=outcome_label,
                scale=ratio,
                **row_numbers(r, "statistic"),
                comparison=str(r["contrast"]).replace(" - ", " vs "),
                visit=None if by is None else str(r[by]),
                n_analysed=fit.n_obs,
                model=fit.model_description,
                level=fit.level,
                **fields,
            )
        )
    return out
