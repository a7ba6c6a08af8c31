"""Summary lines shared by the continuous (:mod:`peerstats.design.design`) and the
binary/count (:mod:`peerstats.design.binary`) trial designs."""

from __future__ import annotations

from collections.abc import Sequence


def groups_line(arms: str, sizes: Sequence[int], icc: float, note: str) -> str:
    """The ``Groups`` line of a design summary: grouped arm(s), group sizes, ICC and ``note``."""
    return f"Groups            arm {arms}, sizes {list(sizes)}, ICC {icc:.4g} ({note})"


def design_repr(design) -> str:
    """``repr`` of a design: its name, then its summary."""
    return f"TrialDesign({design.name!r})\n" + design.summary()
