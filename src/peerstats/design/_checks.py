"""Argument checks shared by the design specs (continuous, binary/count): one place for the
spec-error wording."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from peerstats.exceptions import SpecError

__all__ = ["spec_error", "finite_number", "check_groups_keys"]


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


def check_groups_keys(groups: Any, allowed: tuple[str, ...], shown: str) -> None:
    """``groups`` must be a mapping (``shown``: the keys the message suggests) whose keys are
    among ``allowed``."""
    if not isinstance(groups, Mapping):
        raise spec_error("groups", f"a mapping {{{shown}}}, not {groups!r}")
    extra = set(map(str, groups)) - set(allowed)
    if extra:
        raise spec_error("groups", f"unknown keys {sorted(extra)}; allowed: {', '.join(allowed)}")
