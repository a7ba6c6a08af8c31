"""Arm contrasts and effect records of a GEE fit (link, ratio and response-difference scales).

The marginal means are R emmeans' equal-weight means on the link scale
(:func:`peerstats.models.emmeans.emmeans_matrix`); a contrast on the link scale is
(l_a - l_ref)' beta, its ratio the exponential, and a response-scale difference
g^-1(l_a' beta) - g^-1(l_ref' beta) with the delta-method gradient
(g^-1)'(l_a' beta) l_a - (g^-1)'(l_ref' beta) l_ref (emmeans ``regrid``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.exceptions import ModelSpecificationError

_RATIO = {"logit": "odds_ratio", "log": "rate_ratio"}
_DIFF = {"binomial": "risk_difference", "poisson": "rate_difference",
         "negative_binomial": "rate_difference", "gaussian": "mean_difference"}


def tidy(est, se, df: float, level: float) -> dict[str, np.ndarray]:
    """estimate, std_error, (df), statistic, p_value, ci_lower, ci_upper (t if df finite)."""
    est = np.asarray(est, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    dist = stats.t(df) if np.isfinite(df) else stats.norm()
    q = dist.ppf(0.5 + level / 2)
    out = {"estimate": est, "std_error": se}
    if np.isfinite(df):
        out["df"] = np.full(est.shape, float(df))
    out.update(
        statistic=stat,
        p_value=2 * dist.sf(np.abs(stat)),
        ci_lower=est - q * se,
        ci_upper=est + q * se,
    )
    return out


def _link_name(fit) -> str:
    return type(fit.link).__name__.lower()


def scale_name(fit, scale: str) -> str:
    """The effect-record scale of a contrast on ``scale``."""
    link = _link_name(fit)
    if scale == "ratio":
        if link not in _RATIO:
            raise ModelSpecificationError(
                f"scale='ratio' needs a logit or log link; this model has {link!r}: use "
                "scale='link' or 'difference'"
            )
        return "rate_ratio" if fit.family_name != "binomial" else _RATIO[link]
    if scale == "difference":
        return _DIFF[fit.family_name]
    return {"logit": "log_odds_ratio", "log": "log_rate_ratio"}.get(link, "mean_difference")


def _check_factors(design, arm, by):
    if arm not in design.factors:
        raise ModelSpecificationError(
            f"arm={arm!r} is not a factor of the model; factors are {list(design.factors)}"
        )
    if by is not None and (by not in design.factors or by == arm):
        raise ModelSpecificationError(
            f"by={by!r} must be another factor of the model; factors are {list(design.factors)}"
        )


def _pairs(design, arm, by, reference):
    """(by level, arm level, ref level, L_arm, L_ref) for every contrast."""
    from peerstats.models.emmeans import emmeans_matrix

    _check_factors(design, arm, by)
    levels = design.factors[arm]
    ref = levels[0] if reference is None else str(reference)
    if ref not in levels:
        raise ModelSpecificationError(
            f"reference={ref!r} is not a level of {arm!r}; levels are {levels}"
        )
    frame, L = emmeans_matrix(design, [arm] + ([by] if by else []))
    arms = frame[arm].astype(str).to_numpy()
    bys = frame[by].astype(str).to_numpy() if by else np.array([""] * len(frame))
    by_levels = (
        [str(v) for v in design.natural_order.get(by, design.factors[by])] if by else [""]
    )
    out = []
    for b in by_levels:
        r = np.flatnonzero((arms == ref) & (bys == b))[0]
        for a in levels:
            if a != ref:
                k = np.flatnonzero((arms == a) & (bys == b))[0]
                out.append((b, a, ref, L[k], L[r]))
    return out


def arm_contrasts(fit, arm, by, reference, scale: str, level: float) -> pd.DataFrame:
    """The rows of :meth:`GEEResult.contrasts`."""
    beta, V = fit.fixed_params, fit.fixed_vcov
    name = scale_name(fit, scale)
    rows = []
    for b, a, ref, la, lr in _pairs(fit._design, arm, by, reference):
        if scale == "difference":
            ea, er = la @ beta, lr @ beta
            est = fit.link.inverse(ea) - fit.link.inverse(er)
            g = fit.link.inverse_deriv(ea) * la - fit.link.inverse_deriv(er) * lr
            label = f"{a} - {ref}"
        else:
            est = (la - lr) @ beta
            g = la - lr
            label = f"{a} / {ref}" if scale == "ratio" else f"{a} - {ref}"
        se = float(np.sqrt(g @ V @ g))
        tid = {k: float(np.ravel(v)[0]) for k, v in tidy(np.array([est]), np.array([se]), fit.df,
                                                 level).items()}
        if scale == "ratio":
            tid["estimate"] = float(np.exp(est))
            tid["ci_lower"], tid["ci_upper"] = np.exp(tid["ci_lower"]), np.exp(tid["ci_upper"])
            tid["std_error_log"] = tid["std_error"]
        row = {"contrast": label, "scale": name, **tid}
        rows.append({by: b, **row} if by else row)
    out = pd.DataFrame(rows)
    if by:
        raw = fit._design.natural_order.get(by) or fit._design.factors[by]
        labels = [str(v) for v in raw]
        out[by] = pd.Categorical(out[by].map(dict(zip(labels, raw))), categories=raw)
    return out


def effect_records(fit, arm, by, reference, scale, outcome_label, level, context) -> list:
    """EffectRecords of the arm contrasts (see :meth:`GEEResult.effect_records`)."""
    from peerstats.effects import EffectRecord

    if scale not in ("ratio", "difference"):
        raise ModelSpecificationError(
            f"scale={scale!r} is not valid for effect records; choose 'ratio' or 'difference'"
        )
    if scale == "ratio" and _link_name(fit) not in _RATIO:
        scale = "difference"  # identity link: the mean difference is the natural scale
    tab = arm_contrasts(fit, arm, by, reference, scale, level)
    model = (
        f"GEE ({fit.family_name}, {fit.correlation} working correlation, {fit.vcov_method} "
        f"SEs, {fit.df_method} df)"
    )
    recs = []
    for _, r in tab.iterrows():
        kw: dict[str, Any] = dict(
            outcome=fit._design.outcome, scale=r["scale"], estimate=float(r["estimate"]),
            ci_lower=float(r["ci_lower"]), ci_upper=float(r["ci_upper"]),
            p_value=float(r["p_value"]), outcome_label=outcome_label,
            comparison=r["contrast"].replace(" / ", " vs ").replace(" - ", " vs "),
            visit=str(r[by]) if by else None, n_analysed=fit.n_clusters, model=model,
            level=level, std_error=float(r["std_error"]), statistic=float(r["statistic"]),
            df=float(r["df"]) if "df" in r else float("nan"),
        )
        kw.update(context)
        recs.append(EffectRecord(**kw))
    return recs
