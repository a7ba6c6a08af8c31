"""Argument checks shared by the design specs (continuous, binary/count): one place for the
spec-error wording."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from peerstats.exceptions import SpecError

__all__ = ["spec_error", "finite_number"]


def spec_error(field_name: str, message: str) -> SpecError:
    """``SpecError("<field>: <message>")``."""
    return SpecError(f"{field_name}: {message}")


def finite_number(value: Any, name: str) -> float:
    """``value`` as a finite float, else a SpecError naming ``name`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise spec_error(name, f"must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise spec_error(name, f"must be finite, not {value!r}")
    return v
