"""Step curves (Kaplan-Meier, cumulative incidence) with numbers at risk under the axis.

Journals ask for the numbers at risk below the time axis (CONSORT, Pocock et al. 2002);
colours are the report's arm palette (:mod:`peerstats.figures.palette`). ``ax=None`` makes a
figure; the Axes is returned.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_curves"]


def plot_curves(curves, time, arms, *, ax=None, labels=None, risk_times=None, ylabel="",
                ci: bool = True, increasing: bool = False):
    """Draw step curves per arm and a numbers-at-risk table under the x axis.

    ``curves`` maps arm -> (times, values, lower, upper) with the value after each time.
    """
    import matplotlib.pyplot as plt

    from ..figures.palette import GREY, arm_colors

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.8))
    levels = list(curves)
    colors = arm_colors([str(a) for a in levels])
    labels = {a: str((labels or {}).get(a, a)) for a in levels}
    start = 0.0 if increasing else 1.0
    for a in levels:
        x, y, lo, hi = curves[a]
        xs = np.r_[0.0, x]
        c = colors[str(a)]
        ax.step(xs, np.r_[start, y], where="post", color=c, lw=2, label=labels[a])
        if ci and lo is not None:
            ax.fill_between(xs, np.r_[start, lo], np.r_[start, hi], step="post", color=c,
                            alpha=0.15, lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, loc="lower left" if not increasing else "upper left")
    ax.spines[["top", "right"]].set_visible(False)
    if risk_times is None:
        risk_times = [t for t in ax.get_xticks() if 0 <= t <= np.max(time)]
    risk_times = np.asarray(risk_times, dtype=float)
    ax.set_xticks(risk_times)
    ax.set_xlabel("Time since randomisation")
    nrow = len(levels)
    ax.text(0.0, -0.22, "Number at risk", transform=ax.transAxes, fontsize=9,
            fontweight="bold", color=GREY, va="top")
    for i, a in enumerate(levels):
        at = [(time[arms == a] >= tt).sum() for tt in risk_times]
        ypos = -0.30 - 0.08 * i
        ax.text(-0.05, ypos, labels[a], transform=ax.transAxes, ha="right", fontsize=9,
                color=colors[str(a)], va="top")
        for tt, n in zip(risk_times, at, strict=True):
            ax.text(tt, ypos, str(int(n)), transform=ax.get_xaxis_transform(), ha="center",
                    fontsize=9, va="top")
    ax.figure.subplots_adjust(bottom=0.22 + 0.08 * nrow, left=0.18)
    return ax
