"""Count outcomes (bed-days, admissions): negative binomial (NB2) or Poisson regression of one
row per participant with ``log(exposure)`` as the offset (unequal follow-up), on the arm and
the stratification factors (and the spec's covariates), reported as the adjusted rate ratio.

Per arm the report gives the mean count (SD) and the rate (events per unit of exposure times
``rate_per``). ``model: glmm`` and ``gee`` come with the GLMM and GEE engines of issue 16.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from peerstats.effects import EffectRecord
from peerstats.pipeline._common import FittedOutcome
from peerstats.pipeline.outcomes._adapter import GLMOutcome
from peerstats.pipeline.outcomes._base import Context

__all__ = ["CountOutcome"]


def _summaries(fitted: FittedOutcome, arms: list[str]) -> dict[str, Any]:
    data = fitted.fit.data
    out: dict[str, Any] = {}
    for a in arms:
        sub = data[data["arm"].astype(str) == a]
        y = sub["y"]
        out[f"n_{a}"] = int(len(y))
        out[f"mean_{a}"] = float(y.mean())
        out[f"sd_{a}"] = float(y.std(ddof=1))
        out[f"zeros_{a}"] = int((y == 0).sum())
        out[f"total_{a}"] = float(y.sum())
        if "exposure" in sub.columns:
            out[f"exposure_{a}"] = float(sub["exposure"].sum())
            out[f"rate_{a}"] = float(y.sum() / sub["exposure"].sum())
    return out


class CountOutcome(GLMOutcome):
    """Adapter of count outcomes (see the module docstring)."""

    name = "count"
    caption = "Count outcomes"
    arm_header = "mean (SD); rate"

    def records(self, fitted: FittedOutcome, context: Context) -> list[EffectRecord]:
        """One rate ratio per non-reference arm."""
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        extra = _summaries(fitted, arms)
        if fitted.fit.theta is not None:
            extra["theta"] = fitted.fit.theta
        return [self.ratio_record(fitted, context, a, "rate_ratio", extra) for a in arms[1:]]

    def describe(self, fitted: FittedOutcome, context: Context) -> pd.DataFrame:
        """Per arm: n, mean, SD, zeros, total, exposure and rate."""
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        s = _summaries(fitted, arms)
        keys = ("n", "mean", "sd", "zeros", "total", "exposure", "rate")
        return pd.DataFrame(
            [
                {"outcome": fitted.outcome, "arm": a, **{k: s.get(f"{k}_{a}") for k in keys}}
                for a in arms
            ]
        )

    def arm_cells(self, r: EffectRecord, arm: str) -> str:
        """ "3.27 (9.80); 0.009 per day of follow-up"."""
        if f"n_{arm}" not in r.extra:
            return ""
        text = f"{r.extra[f'mean_{arm}']:z.2f} ({r.extra[f'sd_{arm}']:z.2f})"
        if f"rate_{arm}" in r.extra:
            text += f"; {r.extra[f'rate_{arm}']:z.4f}"
        return text

    def notes(self, records: list[EffectRecord]) -> list[str]:
        """How to read the table."""
        return [
            "mean (SD): count per analysed participant; rate: total count / total exposure "
            "(follow-up time, the model's offset).",
            "Effect: adjusted rate ratio (negative binomial or Poisson regression with "
            "log(exposure) as offset), intervention vs reference; 1 is no difference.",
        ]
