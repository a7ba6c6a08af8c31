"""Distribution of change from baseline by arm, and attendance histograms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from peerstats.describe._common import arm_levels, not_an_outcome, visit_levels
from peerstats.figures.palette import GREY, arm_colors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["change_from_baseline", "plot_change", "plot_attendance"]


def change_from_baseline(trial: Any, outcome: str, visit: str | None = None) -> pd.DataFrame:
    """Per-participant change (visit - baseline) of ``outcome``: ``subject, arm, change``.

    ``visit`` defaults to the last visit of the spec.
    """
    a = trial.assessments
    visits = visit_levels(trial)
    visit = visit or visits[-1]
    if outcome not in a.columns:
        raise not_an_outcome(outcome)
    d = a.assign(visit=a["visit"].astype(str), subject=a["subject"].astype(str))
    if "arm" not in d.columns:
        d["arm"] = arm_levels(trial)[0]
    base = d[d["visit"] == visits[0]].set_index("subject")[outcome]
    post = d[d["visit"] == visit].set_index("subject")
    out = pd.DataFrame(
        {"arm": post["arm"].astype(str), "change": post[outcome] - base.reindex(post.index)}
    )
    return out.dropna().reset_index()


def plot_change(
    trial: Any,
    outcome: str,
    *,
    visit: str | None = None,
    ax: Axes | None = None,
    arm_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    seed: int = 0,
    ylabel: str | None = None,
) -> Axes:
    """Box plot of the change from baseline per arm, with every participant as a point.

    Points are jittered horizontally (seeded, so the figure is reproducible). ``ylabel``
    replaces the default axis title (``Change in <outcome>, baseline to <visit>``, codes).
    """
    ch = change_from_baseline(trial, outcome, visit)
    arms = [a for a in arm_levels(trial) if a in set(ch["arm"])]
    colors = dict(colors or arm_colors(arm_levels(trial)))
    labels = dict(arm_labels or {})
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(1.4 + 1.2 * len(arms), 3.4), layout="constrained")
    values = [ch.loc[ch["arm"] == a, "change"].to_numpy() for a in arms]
    bp = ax.boxplot(
        values,
        positions=range(len(arms)),
        widths=0.5,
        showfliers=False,
        patch_artist=True,
        medianprops={"color": "black"},
    )
    for patch, a in zip(bp["boxes"], arms):
        patch.set_facecolor(colors[a])
        patch.set_alpha(0.35)
    rng = np.random.default_rng(seed)
    for i, (a, v) in enumerate(zip(arms, values)):
        ax.scatter(
            i + rng.uniform(-0.15, 0.15, len(v)),
            v,
            s=9,
            color=colors[a],
            alpha=0.7,
            zorder=3,
            linewidths=0,
            gid=f"points:{a}",
        )
    ax.axhline(0, color=GREY, lw=0.8, ls="--", zorder=0)
    ax.set_xticks(
        range(len(arms)), [f"{labels.get(a, a)}\n(n = {len(v)})" for a, v in zip(arms, values)]
    )
    vis = visit or visit_levels(trial)[-1]
    ax.set_ylabel(ylabel if ylabel is not None else f"Change in {outcome}, baseline to {vis}")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def plot_attendance(
    trial: Any,
    *,
    ax: Axes | None = None,
    arm_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
) -> Axes:
    """Histogram of sessions attended per participant, per arm that has sessions."""
    from peerstats.describe.feasibility import attendance

    att = attendance(trial).dropna(subset=["sessions_attended"])
    arms = [a for a in arm_levels(trial) if a in set(att["arm"])]
    colors = dict(colors or arm_colors(arm_levels(trial)))
    labels = dict(arm_labels or {})
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.5, 3.0), layout="constrained")
    offered = int(att["sessions_offered"].max())
    bins = np.arange(-0.5, offered + 1.5, 1.0)
    width = 0.8 / max(len(arms), 1)
    for i, a in enumerate(arms):
        v = att.loc[att["arm"] == a, "sessions_attended"].to_numpy()
        counts, _ = np.histogram(v, bins=bins)
        x = np.arange(offered + 1) + (i - (len(arms) - 1) / 2) * width
        ax.bar(
            x,
            counts,
            width=width,
            color=colors[a],
            label=f"{labels.get(a, a)} (n = {len(v)})",
            gid=f"bars:{a}",
        )
    ax.set_xticks(range(offered + 1))
    ax.set_xlabel(f"Sessions attended (of {offered})")
    ax.set_ylabel("Participants")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize="small")
    return ax
