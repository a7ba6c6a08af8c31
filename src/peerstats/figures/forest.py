"""Forest plot of treatment effects (differences or standardised effects) with CIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from peerstats.describe._common import NOT_A_COLUMN, require_columns
from peerstats.figures.palette import GREY, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_forest"]


def plot_forest(
    effects: pd.DataFrame,
    *,
    estimate: str = "estimate",
    ci: tuple[str, str] = ("ci_lower", "ci_upper"),
    label: str | Sequence[str] = ("outcome", "visit"),
    ax: Axes | None = None,
    null: float = 0.0,
    xlabel: str = "Difference (intervention \u2212 control), 95% CI",
    annotate: bool = True,
    digits: int = 2,
    favours: tuple[str, str] | None = None,
    color: str = OKABE_ITO[1],
    favours_columns: tuple[str, str] | None = None,
) -> Axes:
    """Treatment effects with confidence intervals, one row per outcome (and visit).

    Parameters
    ----------
    effects : DataFrame
        Tidy effects, e.g. ``outcome_table(...).data`` or a model's ``contrasts()``; one row
        per effect with ``estimate`` and the two ``ci`` columns.
    estimate : str
        Column with the point estimate (``"estimate"`` for differences, ``"d"`` for Cohen's d).
    ci : (str, str)
        Lower and upper CI columns.
    label : str or sequence of str
        Column(s) naming a row. With two columns the first is a group header (e.g. outcome)
        and the second labels its rows (e.g. visit).
    ax : matplotlib Axes, optional
    null : float
        Reference line (0 for differences and d, 1 for ratios).
    xlabel : str
    annotate : bool
        Print "estimate (lower to upper)" at the right of each row.
    digits : int
        Decimals of the annotations.
    favours : (str, str), optional
        Text at the left and right of the null line below the last row, e.g.
        ``("favours control", "favours peer support")``. Only meaningful when every row
        points the same way: orient outcomes where lower is better (e.g. WSAS, GAD-7) by
        negating their effects first, and say so in the caption.
    color : str
    favours_columns : (str, str), optional
        Columns of ``effects`` with the text for the left and right of the null line of each
        row (or of each group header with two label columns), e.g. "favours usual services" /
        "favours peer support", swapped for outcomes where lower scores are better: the favours
        labels per row when outcomes point different ways.

    Returns
    -------
    matplotlib.axes.Axes
    """
    labels = [label] if isinstance(label, str) else list(label)
    needed = [estimate, *ci, *labels]
    require_columns(effects, needed, "effects", message=NOT_A_COLUMN)
    e = effects.reset_index(drop=True)
    rows: list[tuple[str, int | None, bool]] = []  # text, index into e, is header
    if len(labels) >= 2:
        for grp, sub in e.groupby(labels[0], sort=False, observed=True):
            rows.append((str(grp), None, True))
            for i in sub.index:
                rows.append(("   " + " ".join(str(e.at[i, c]) for c in labels[1:]), i, False))
    else:
        rows = [(str(e.at[i, labels[0]]), i, False) for i in e.index]

    n = len(rows)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.0, 1.0 + 0.28 * n), layout="constrained")
        fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08)
    y = np.arange(n)[::-1]
    ytext = []
    for yy, (text, i, _header) in zip(y, rows):
        ytext.append(text)
        if i is None:
            continue
        est, lo, hi = e.at[i, estimate], e.at[i, ci[0]], e.at[i, ci[1]]
        ax.plot([lo, hi], [yy, yy], color=color, lw=1.4, solid_capstyle="butt", gid="ci")
        ax.plot([est], [yy], marker="s", color=color, ms=5, zorder=3, gid="estimate")
    ax.axvline(null, color=GREY, lw=0.8, ls="--", zorder=0)
    ax.set_yticks(y, ytext)
    for tick, (_, _, header) in zip(ax.get_yticklabels(), rows):
        if header:
            tick.set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-1.1 if favours else -0.7, n - 0.3)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right", "left"]].set_visible(False)
    lo_all = np.nanmin(np.r_[e[ci[0]].to_numpy(dtype=float), null])
    hi_all = np.nanmax(np.r_[e[ci[1]].to_numpy(dtype=float), null])
    pad = 0.08 * (hi_all - lo_all or 1.0)
    ax.set_xlim(lo_all - pad, hi_all + pad)
    if annotate:
        for yy, (_, i, _) in zip(y, rows):
            if i is None:
                continue
            txt = (
                f"{e.at[i, estimate]:z.{digits}f} ({e.at[i, ci[0]]:z.{digits}f} to "
                f"{e.at[i, ci[1]]:z.{digits}f})"
            )
            ax.annotate(
                txt,
                xy=(1.0, yy),
                xycoords=("axes fraction", "data"),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                ha="left",
                fontsize="small",
                annotation_clip=False,
                gid="forest-annotation",
            )
    if favours_columns:
        left, right = favours_columns
        for yy, (_text, i, header) in zip(y, rows):
            j = i
            if header:  # the group's first row carries the texts
                nxt = [k for k in range(rows.index((_text, i, header)) + 1, len(rows))]
                j = next((rows[k][1] for k in nxt if rows[k][1] is not None), None)
            elif len(labels) >= 2:
                continue
            if j is None:
                continue
            for text, dx, ha in (
                (f"\u2190 {e.at[j, left]}", -4, "right"),
                (f"{e.at[j, right]} \u2192", 4, "left"),
            ):
                ax.annotate(
                    text,
                    xy=(null, yy),
                    xytext=(dx, 0),
                    textcoords="offset points",
                    ha=ha,
                    va="center",
                    fontsize="x-small",
                    color=GREY,
                    gid="favours-row",
                )
    if favours:
        yf = -0.75  # inside the axes, below the last row
        for text, dx, ha in (
            (f"\u2190 {favours[0]}", -4, "right"),
            (f"{favours[1]} \u2192", 4, "left"),
        ):
            ax.annotate(
                text,
                xy=(null, yf),
                xytext=(dx, 0),
                textcoords="offset points",
                ha=ha,
                va="center",
                fontsize="small",
                color=GREY,
                gid="favours",
            )
    return ax
