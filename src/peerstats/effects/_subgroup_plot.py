"""Figures of effect heterogeneity: subgroup forest, effect curve, per-site forest (matplotlib,
``ax=None``, return the Axes)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _axes(ax: Any, n_rows: int) -> Any:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.32 * n_rows + 1.2))
    return ax


def _draw_rows(ax, rows, null: float = 0.0) -> None:
    """rows: list of (label, estimate, lo, hi, right_text, bold)."""
    n = len(rows)
    for i, (label, est, lo, hi, right, bold) in enumerate(rows):
        y = n - 1 - i
        weight = "bold" if bold else "normal"
        ax.text(-0.02, y, label, transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=9, fontweight=weight)
        ax.text(1.02, y, right, transform=ax.get_yaxis_transform(), ha="left", va="center",
                fontsize=8)
        if np.isfinite(est):
            ax.plot([lo, hi], [y, y], color="black", lw=1)
            ax.plot([est], [y], marker="D" if bold else "s", color="black", ms=5)
    ax.axvline(null, color="0.5", lw=0.8, ls="--")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def forest(sub: Any, *, ax: Any = None) -> Any:
    """Subgroup forest: overall effect on top, one block per variable with its interaction p."""
    o = sub.overall
    rows = [(f"Overall (n = {sub.n_overall})", o["estimate"], o["ci_lower"], o["ci_upper"],
             f"{o['estimate']:.2f} [{o['ci_lower']:.2f}, {o['ci_upper']:.2f}]", True)]
    for var, block in sub.table.groupby("variable", sort=False):
        p = sub.interactions.loc[var, "p_value"]
        rows.append((block["variable_label"].iloc[0], np.nan, np.nan, np.nan,
                     f"interaction p = {p:.3f}", True))
        cont = var in sub.curves
        for r in block.itertuples():
            rows.append((f"   {r.level_label}" + ("" if cont else f" (n = {r.n})"), r.estimate, r.ci_lower, r.ci_upper,
                         f"{r.estimate:.2f} [{r.ci_lower:.2f}, {r.ci_upper:.2f}]", False))
    ax = _axes(ax, len(rows))
    _draw_rows(ax, rows)
    ax.set_xlabel(f"Difference in {sub.outcome} at {sub.visit} ({sub.treatment} − {sub.reference})")
    ax.set_title(sub.warning.split(":")[0], fontsize=8, loc="left")
    return ax


def effect_curve(sub: Any, var: str, *, ax: Any = None) -> Any:
    """Treatment effect as a function of a continuous modifier, with its confidence band."""
    import matplotlib.pyplot as plt

    if var not in sub.curves:
        from peerstats.exceptions import SpecError

        raise SpecError(f"{var!r} is not a continuous modifier; curves: {sorted(sub.curves)}")
    c = sub.curves[var]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    ax.fill_between(c[var], c["ci_lower"], c["ci_upper"], color="0.85")
    ax.plot(c[var], c["estimate"], color="black")
    ax.axhline(0, color="0.5", lw=0.8, ls="--")
    p = sub.interactions.loc[var, "p_value"]
    ax.set_xlabel(sub.interactions.loc[var, "variable_label"])
    ax.set_ylabel(f"Difference in {sub.outcome} ({sub.treatment} − {sub.reference})")
    ax.set_title(f"interaction p = {p:.3f}", fontsize=9)
    return ax


def site_forest(het: Any, *, ax: Any = None) -> Any:
    """Per-site effects, the pooled effect and the prediction interval."""
    m = het.meta
    rows = []
    for site, r in het.effects.iterrows():
        rows.append((f"{site} (n = {int(r['n'])})", r["estimate"], r["ci_lower"], r["ci_upper"],
                     f"{r['estimate']:.2f} [{r['ci_lower']:.2f}, {r['ci_upper']:.2f}]", False))
    rows.append(("Pooled (REML)", m.estimate, m.ci_lower, m.ci_upper,
                 f"{m.estimate:.2f} [{m.ci_lower:.2f}, {m.ci_upper:.2f}]", True))
    rows.append(("Prediction interval", m.estimate, m.pi_lower, m.pi_upper,
                 f"[{m.pi_lower:.2f}, {m.pi_upper:.2f}]", True))
    ax = _axes(ax, len(rows))
    _draw_rows(ax, rows)
    ax.set_xlabel(f"Difference in {het.outcome} at {het.visit} ({het.treatment} − {het.reference})")
    ax.set_title(f"I² = {m.i2:.1f}%, τ² = {m.tau2:.3g}, Q p = {m.q_p_value:.3f}", fontsize=9,
                 loc="left")
    return ax
