"""Formatting of single cells (the bottom of the describe layer: render, word and the tables
use it)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["format_value", "ci_name"]


def ci_name(level: float) -> str:
    """``0.95`` -> ``"95% CI"``, ``0.9`` -> ``"90% CI"``, ``0.975`` -> ``"97.5% CI"``."""
    pct = 100 * float(level)
    return f"{pct:z.0f}% CI" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}% CI"


def format_value(value: Any, digits: int = 2) -> str:
    """Format one cell: floats rounded to ``digits``, integers plain, missing as empty."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return ""
        if isinstance(value, int):
            return str(value)
        return f"{value:z.{digits}f}"
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy scalar
        return format_value(value.item(), digits)
    return str(value)
