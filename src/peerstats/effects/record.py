"""The effect record: one treatment effect in one tidy, outcome-type-independent shape.

Every analysis of every outcome type (MMRM/LMM, GLMM, GEE, Cox, RMST, Fine-Gray,
cost-effectiveness) can describe its treatment effects as :class:`EffectRecord` objects. The
pipeline's tables, forest plot, headline and ``results.json`` read records, so a new outcome type
is one module plus a registry entry, not an edit in every renderer.

The estimate and its CI are on the scale named by ``scale`` (for ratios: the ratio itself, not
its logarithm); ``null`` is the value of no effect on that scale (0 for differences, 1 for
ratios). Numbers are unrounded; rendering rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

__all__ = ["EffectRecord", "records_frame", "row_numbers", "SCALES"]

#: effect scale -> (words for a reader, value of no effect, ratio scale?)
SCALES: dict[str, tuple[str, float, bool]] = {
    "mean_difference": ("mean difference", 0.0, False),
    "standardised_mean_difference": ("standardised mean difference", 0.0, False),
    "odds_ratio": ("odds ratio", 1.0, True),
    "risk_ratio": ("risk ratio", 1.0, True),
    "risk_difference": ("risk difference", 0.0, False),
    "rate_ratio": ("rate ratio", 1.0, True),
    "rate_difference": ("rate difference", 0.0, False),
    "hazard_ratio": ("hazard ratio", 1.0, True),
    "subdistribution_hazard_ratio": ("subdistribution hazard ratio", 1.0, True),
    "rmst_difference": ("difference in restricted mean survival time", 0.0, False),
    "rmst_ratio": ("ratio of restricted mean survival times", 1.0, True),
    "incremental_cost": ("incremental cost", 0.0, False),
    "incremental_effect": ("incremental effect", 0.0, False),
    "incremental_nmb": ("incremental net monetary benefit", 0.0, False),
}


@dataclass(frozen=True)
class EffectRecord:
    """One treatment effect, in words and numbers.

    Attributes
    ----------
    outcome : str
        The outcome's code (column or derived name).
    outcome_label : str
        What a person reads ("Personal recovery (QPR-15)").
    scale : str
        One of :data:`SCALES` (``"mean_difference"``, ``"odds_ratio"``, ``"hazard_ratio"``, ...).
    estimate, ci_lower, ci_upper : float
        On the scale itself (ratios as ratios).
    p_value : float
        Two-sided p for the null of no effect (NaN when the method gives none).
    comparison : str
        Which arms, in labels ("peer support vs usual services").
    visit : str or None
        Visit or time point: the visit's code where the outcome is measured at visits (``"post"``;
        ``visit_label`` holds its words), or the time point ("12 months"); None for a
        whole-follow-up effect.
    population : str
        The analysed population in words ("randomised participants with at least one
        post-baseline value").
    n_analysed, n_randomised : int or None
        Analysed n and randomised n, shown next to every effect.
    estimand : str
        The estimand in words (population, variable, intercurrent events, summary measure).
    model : str
        The analysis model in words ("MMRM, unstructured covariance, Kenward-Roger df").
    direction : str
        How to read it ("fewer readmissions favour peer support").
    primary : bool
        The trial's primary effect.
    level : float
        Confidence level of the interval.
    std_error, df, statistic : float
        Optional; on the estimation scale (log scale for ratios), NaN when not applicable.
    extra : Mapping
        Anything outcome-type specific a renderer may show (per-arm n/N, medians, ICER ...).
    contrast : str
        The comparison in codes, as models name it (``"peer - usual"``): the key of the effect
        in ``results.json`` (``comparison`` is the same in labels).
    outcome_type : str
        The outcome type whose adapter made the record (``"continuous"``, ``"binary"``,
        ``"count"``, ...; see :mod:`peerstats.pipeline.outcomes`).
    visit_label : str
        The visit in words when ``visit`` holds its code.
    """

    outcome: str
    scale: str
    estimate: float
    ci_lower: float
    ci_upper: float
    p_value: float = math.nan
    outcome_label: str = ""
    comparison: str = ""
    visit: str | None = None
    population: str = ""
    n_analysed: int | None = None
    n_randomised: int | None = None
    estimand: str = ""
    model: str = ""
    direction: str = ""
    primary: bool = False
    level: float = 0.95
    std_error: float = math.nan
    df: float = math.nan
    statistic: float = math.nan
    extra: Mapping[str, Any] = field(default_factory=dict)
    contrast: str = ""
    outcome_type: str = "continuous"
    visit_label: str = ""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(
                f"{self.scale!r} is not an effect scale; scales are {sorted(SCALES)}"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"level must be between 0 and 1, got {self.level!r}")

    @property
    def scale_label(self) -> str:
        """The scale in words ("odds ratio")."""
        return SCALES[self.scale][0]

    @property
    def null(self) -> float:
        """The value of no effect on this scale (0 or 1)."""
        return SCALES[self.scale][1]

    @property
    def is_ratio(self) -> bool:
        """True for ratio scales (drawn on a log axis, null 1)."""
        return SCALES[self.scale][2]

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for ``results.json``), with the scale's words and null added."""
        d = asdict(self)
        d["extra"] = dict(self.extra)
        d["scale_label"] = self.scale_label
        d["null"] = self.null
        return d


def records_frame(records: Iterable[EffectRecord]) -> pd.DataFrame:
    """A tidy DataFrame of records, one row each (columns as :meth:`EffectRecord.to_dict`)."""
    rows = [r.to_dict() for r in records]
    cols = list(EffectRecord.__dataclass_fields__) + ["scale_label", "null"]
    return pd.DataFrame(rows, columns=cols)


def row_numbers(row: Any, *names: str) -> dict[str, float]:
    """The numbers of an effect record from a tidy result row: ``float(row[c])`` for
    ``estimate, ci_lower, ci_upper, p_value, std_error`` and the further columns ``names``."""
    return {
        c: float(row[c])
        for c in ("estimate", "ci_lower", "ci_upper", "p_value", "std_error", *names)
    }
