"""Colour-blind-safe colours, with one fixed colour per arm across every figure.

The palette is Okabe & Ito (2008), "Color Universal Design", which stays distinguishable
under the common forms of colour-vision deficiency and in greyscale print when combined
with the markers returned by :func:`arm_markers`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["OKABE_ITO", "arm_colors", "arm_markers", "GREY"]

#: Okabe-Ito colours, in the order arms receive them (black is kept for text and lines).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
)

#: Neutral colour for reference lines, boxes and text.
GREY = "#4D4D4D"

_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def arm_colors(levels: Sequence[str]) -> dict[str, str]:
    """Map arm levels to colours, in the order the trial spec lists them.

    The reference (control) arm is listed first in a trial spec, so it is always blue and the
    first active arm vermillion; the same arm keeps its colour in every figure of a report.

    Parameters
    ----------
    levels : sequence of str
        Arm levels in spec order (``trial.spec`` arms, reference first).

    Returns
    -------
    dict
        ``{arm: hex colour}``.
    """
    levels = [str(x) for x in levels]
    return {arm: OKABE_ITO[i % len(OKABE_ITO)] for i, arm in enumerate(levels)}


def arm_markers(levels: Sequence[str]) -> dict[str, str]:
    """Map arm levels to matplotlib marker codes (redundant coding for greyscale print)."""
    levels = [str(x) for x in levels]
    return {arm: _MARKERS[i % len(_MARKERS)] for i, arm in enumerate(levels)}
