"""Binary outcomes (readmission within 12 months, remission, reliable improvement): logistic
regression of one row per participant on the arm and the stratification factors (and the
spec's covariates), reported as the adjusted odds ratio, or as the risk ratio or risk
difference of the risks standardised over the analysed participants (g-computation).

Per arm the report gives n/N (%) with the event. ``model: glmm`` and ``gee`` (random
delivery-group effects; population-average) come with the GLMM and GEE engines of issue 16.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats import _dist  # scipy.special, not scipy.stats (cold start, issue 22.3)
from peerstats.effects.record import EffectRecord, row_numbers
from peerstats.pipeline._common import FittedOutcome
from peerstats.pipeline.outcomes._adapter import GLMOutcome
from peerstats.pipeline.outcomes._base import Context
from peerstats.pipeline.outcomes._glm import GEEFit, GLMMFit, marginal_risks

__all__ = ["BinaryOutcome"]


def _summaries(fitted: FittedOutcome, arms: list[str]) -> dict[str, Any]:
    data = fitted.fit.data
    out: dict[str, Any] = {}
    for a in arms:
        y = data.loc[data["arm"].astype(str) == a, "y"]
        out[f"n_{a}"] = int(len(y))
        out[f"events_{a}"] = int(y.sum())
        out[f"percent_{a}"] = float(100 * y.mean()) if len(y) else float("nan")
    if isinstance(fitted.fit, GEEFit | GLMMFit):
        return out  # marginal risks of a GEE or GLMM: peerstats.marginal_effect (the records)
    risks, _ = marginal_risks(fitted.fit, arms)
    for a, p in zip(arms, risks, strict=True):
        out[f"risk_{a}"] = float(p)  # standardised (g-computation)
    return out


class BinaryOutcome(GLMOutcome):
    """Adapter of binary outcomes (see the module docstring)."""

    name = "binary"
    caption = "Binary outcomes"
    arm_header = "n/N (%)"

    def records(self, fitted: FittedOutcome, context: Context) -> list[EffectRecord]:
        """One record per non-reference arm on the spec's scale."""
        d = context.spec.outcome_defs[fitted.outcome]
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        extra = _summaries(fitted, arms)
        out = []
        for arm in arms[1:]:
            if d.scale == "odds_ratio":
                out.append(self.ratio_record(fitted, context, arm, "odds_ratio", extra))
            else:
                out.append(self._marginal(fitted, context, arm, d.scale, extra))
        return out

    def _marginal(
        self, fitted: FittedOutcome, context: Context, arm: str, scale: str, extra: dict
    ) -> EffectRecord:
        """Risk ratio / difference of the standardised risks, delta-method SE (Ge et al.
        2011); the ratio's CI on the log scale."""
        ref = context.reference
        if isinstance(fitted.fit, GEEFit | GLMMFit):
            return self._marginal_gee(fitted, context, arm, scale, extra)
        risks, grads = marginal_risks(fitted.fit, [ref, arm])
        v = fitted.fit.cov
        z = _dist.norm_ppf(0.5 + context.level / 2)
        if scale == "risk_difference":
            est, g = risks[1] - risks[0], grads[1] - grads[0]
        else:
            est, g = np.log(risks[1] / risks[0]), grads[1] / risks[1] - grads[0] / risks[0]
        se = float(np.sqrt(g @ v @ g))
        lo, hi = est - z * se, est + z * se
        p = float(2 * _dist.norm_sf(abs(est / se)))
        if scale == "risk_ratio":
            est, lo, hi = np.exp(est), np.exp(lo), np.exp(hi)
        return self.arm_record(
            fitted,
            context,
            arm,
            scale,
            {**extra, "method": "g-computation, delta-method SE (Ge et al. 2011)"},
            estimate=float(est),
            ci_lower=float(lo),
            ci_upper=float(hi),
            p_value=p,
            std_error=se,
            statistic=float(np.log(est) / se if scale == "risk_ratio" else est / se),
        )

    def _marginal_gee(
        self, fitted: FittedOutcome, context: Context, arm: str, scale: str, extra: dict
    ) -> EffectRecord:
        """Risk ratio / difference of a GEE by :func:`peerstats.marginal_effect` (g-computation,
        Ge et al. delta method with the GEE's covariance)."""
        import peerstats

        me = peerstats.marginal_effect(
            fitted.fit.gee,
            arm="arm",
            contrast=scale,
            reference=context.reference,
            level=context.level,
        )
        row = me.iloc[0]
        return self.arm_record(
            fitted,
            context,
            arm,
            scale,
            {**extra, "method": "peerstats.marginal_effect (g-computation, Ge et al. 2011)"},
            **row_numbers(row),
        )

    def describe(self, fitted: FittedOutcome, context: Context) -> pd.DataFrame:
        """Per arm: n, events, % and the standardised risk."""
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        s = _summaries(fitted, arms)
        return pd.DataFrame(
            [
                {
                    "outcome": fitted.outcome,
                    "arm": a,
                    "n": s[f"n_{a}"],
                    "events": s[f"events_{a}"],
                    "percent": s[f"percent_{a}"],
                    "risk": s.get(f"risk_{a}"),
                }
                for a in arms
            ]
        )

    def arm_cells(self, r: EffectRecord, arm: str) -> str:
        """ "24/136 (17.6%)"."""
        n = r.extra.get(f"n_{arm}")
        if n is None:
            return ""
        return f"{r.extra[f'events_{arm}']}/{n} ({r.extra[f'percent_{arm}']:z.1f}%)"

    def notes(self, records: list[EffectRecord]) -> list[str]:
        """How to read the table."""
        return [
            "n/N (%): participants with the event / analysed participants.",
            "Effect: adjusted odds ratio (logistic regression), or risk ratio / difference of "
            "risks standardised over the analysed participants (g-computation, delta-method "
            "SE, Ge et al. 2011), intervention vs reference; 1 (ratios) or 0 (differences) is "
            "no difference.",
        ]
