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
    rows = _rows(e, labels)
    n = len(rows)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.0, 1.0 + 0.28 * n), layout="constrained")
        fig.get_layout_engine().set(w_pad=0.08, h_pad=0.08)
    y = np.arange(n)[::-1]
    for yy, (_, i, _header) in zip(y, rows):
        if i is None:
            continue
        est, lo, hi = e.at[i, estimate], e.at[i, ci[0]], e.at[i, ci[1]]
        ax.plot([lo, hi], [yy, yy], color=color, lw=1.4, solid_capstyle="butt", gid="ci")
        ax.plot([est], [yy], marker="s", color=color, ms=5, zorder=3, gid="estimate")
    ax.axvline(null, color=GREY, lw=0.8, ls="--", zorder=0)
    ax.set_yticks(y, [text for text, _, _ in rows])
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
        _annotate(ax, e, rows, y, estimate, ci, digits)
    if favours_columns:
        _favours_rows(ax, e, rows, y, favours_columns, null, grouped=len(labels) >= 2)
    if favours:
        # inside the axes, below the last row
        _favours(ax, favours[0], favours[1], null, -0.75, fontsize="small", gid="favours")
    return ax


Row = tuple[str, "int | None", bool]  # text, index into the effects, is a group header


def _rows(e: pd.DataFrame, labels: list[str]) -> list[Row]:
    """One row per effect; with two or more label columns, a bold header per group first."""
    if len(labels) < 2:
        return [(str(e.at[i, labels[0]]), i, False) for i in e.index]
    rows: list[Row] = []
    for grp, sub in e.groupby(labels[0], sort=False, observed=True):
        rows.append((str(grp), None, True))
        for i in sub.index:
            rows.append(("   " + " ".join(str(e.at[i, c]) for c in labels[1:]), i, False))
    return rows


def _annotate(ax, e, rows: list[Row], y, estimate: str, ci, digits: int) -> None:
    """The estimate and CI as text right of the axes."""
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


def _favours(ax, left: str, right: str, null: float, yy: float, *, fontsize, gid) -> None:
    """Arrows with the text each side of the null line at height ``yy``."""
    for text, dx, ha in ((f"\u2190 {left}", -4, "right"), (f"{right} \u2192", 4, "left")):
        ax.annotate(
            text,
            xy=(null, yy),
            xytext=(dx, 0),
            textcoords="offset points",
            ha=ha,
            va="center",
            fontsize=fontsize,
            color=GREY,
            gid=gid,
        )


def _favours_rows(ax, e, rows: list[Row], y, columns, null: float, *, grouped: bool) -> None:
    """Per-row favours texts (per group header when the rows are grouped: from the group's
    first effect)."""
    left, right = columns
    for yy, (_text, i, header) in zip(y, rows):
        j = i
        if header:  # the group's first row carries the texts
            nxt = [k for k in range(rows.index((_text, i, header)) + 1, len(rows))]
            j = next((rows[k][1] for k in nxt if rows[k][1] is not None), None)
        elif grouped:
            continue
        if j is None:
            continue
        _favours(ax, e.at[j, left], e.at[j, right], null, yy, fontsize="x-small", gid="favours-row")
