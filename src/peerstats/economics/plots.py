"""The cost-effectiveness plane and the cost-effectiveness acceptability curve (CEAC).

matplotlib, ``ax=None`` (a new figure when not given), the report's Okabe-Ito palette; each
function returns the Axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from peerstats.figures.palette import GREY, OKABE_ITO

__all__ = ["ce_plane", "ceac_plot", "acceptability", "evpi", "evpi_plot"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4.5))
    return ax


def acceptability(result, wtp: Sequence[float]) -> np.ndarray:
    """Probability that the intervention is cost-effective at each ``wtp``.

    Bootstrap: the share of replicates with positive net benefit. SUR: the normal probability
    P(NMB > 0) = Phi(NMB / SE) from the SUR covariance (large-sample normal).
    """
    w = np.asarray(wtp, dtype=float)
    if result.replicates is not None:
        r = result.replicates.to_numpy()
        return ((r[:, [1]] * w[None, :] - r[:, [0]]) > 0).mean(axis=0)
    est, se = _nmb_moments(result, w)
    return stats.norm.cdf(est / se)


def _nmb_moments(result, w: np.ndarray):
    d = result.incremental["estimate"].to_numpy()
    V = result.covariance.to_numpy()
    return w * d[1] - d[0], np.sqrt(w**2 * V[1, 1] + V[0, 0] - 2 * w * V[0, 1])


def evpi(result, wtp: Sequence[float]) -> np.ndarray:
    """Per-participant expected value of perfect information at each ``wtp``.

    EVPI = E[max(INB, 0)] - max(E[INB], 0), INB the incremental net monetary benefit (two
    options: the net benefit of the reference arm is the zero point). Bootstrap: the
    expectation over the replicates. SUR: INB ~ Normal(mean, SE^2), E[max(X, 0)] =
    mu Phi(mu/s) + s phi(mu/s). Multiply by the population affected to get the population EVPI.
    """
    w = np.asarray(wtp, dtype=float)
    if result.replicates is not None:
        r = result.replicates.to_numpy()
        inb = r[:, [1]] * w[None, :] - r[:, [0]]
        return np.maximum(inb, 0).mean(axis=0) - np.maximum(inb.mean(axis=0), 0)
    mu, s = _nmb_moments(result, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mu / s
    return mu * stats.norm.cdf(z) + s * stats.norm.pdf(z) - np.maximum(mu, 0)


def evpi_plot(result, *, ax=None, wtp: Sequence[float] | None = None, currency: str = ""):
    """The per-participant EVPI against willingness to pay (grid as :func:`ceac_plot`)."""
    ax = _axes(ax)
    top = float(max(result.nmb.index.max(), 1.0)) * 1.5
    grid = np.linspace(0, top, 201) if wtp is None else np.asarray(wtp, dtype=float)
    ax.plot(grid, evpi(result, grid), color=OKABE_ITO[1], lw=1.8)
    ax.set_xlabel(f"Willingness to pay per QALY {currency}".rstrip())
    ax.set_ylabel(f"EVPI per participant {currency}".rstrip())
    ax.set_title("Expected value of perfect information")
    return ax


def _ellipse(ax, mean, V, level, color):
    """The confidence ellipse of (effect, cost) from the SUR covariance."""
    vals, vecs = np.linalg.eigh(V)
    r = np.sqrt(stats.chi2.ppf(level, 2))
    a = np.linspace(0, 2 * np.pi, 200)
    pts = vecs @ (np.sqrt(np.maximum(vals, 0))[:, None] * np.vstack([np.cos(a), np.sin(a)]))
    ax.plot(mean[0] + r * pts[0], mean[1] + r * pts[1], color=color, lw=1.2,
            label=f"{level:.0%} confidence ellipse")  # fmt: skip


def ce_plane(result, *, ax=None, wtp: Sequence[float] | None = None, currency: str = ""):
    """Incremental effect (x) against incremental cost (y): the bootstrap cloud (or, for SUR,
    the confidence ellipse), the point estimate, and a line of slope lambda for each
    willingness to pay (points below a line are cost-effective at that lambda).

    Parameters
    ----------
    result : CostEffectiveness
    ax : matplotlib Axes, optional
    wtp : sequence of float, optional
        Lines to draw (default: the result's non-zero wtp values).
    currency : str
        Label of the cost axis ("SEK", "GBP" ...).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    arms = result.arms
    color = OKABE_ITO[1]
    d = result.incremental["estimate"].to_numpy()
    if result.replicates is not None:
        r = result.replicates
        ax.scatter(r["effect"], r["cost"], s=4, alpha=0.25, color=color, lw=0,
                   label=f"bootstrap replicates (n = {len(r)})")  # fmt: skip
    else:
        V = result.covariance.to_numpy()[::-1, ::-1]
        _ellipse(ax, d[::-1], V, result.level, color)
    ax.axhline(0, color=GREY, lw=0.8)
    ax.axvline(0, color=GREY, lw=0.8)
    lines = [w for w in (result.nmb.index if wtp is None else wtp) if w > 0]
    x = np.array(ax.get_xlim())
    for i, w in enumerate(lines):
        ax.plot(x, w * x, ls="--", lw=1, color=OKABE_ITO[(i + 2) % len(OKABE_ITO)],
                label=f"WTP {w:,.0f} {currency}".rstrip())  # fmt: skip
    ax.set_xlim(*x)
    ax.plot([d[1]], [d[0]], marker="o", color="black", ls="none", label="estimate")
    ax.set_xlabel(f"Incremental QALYs ({arms[1]} − {arms[0]})")
    ax.set_ylabel(f"Incremental cost {currency}".rstrip())
    ax.set_title("Cost-effectiveness plane")
    ax.legend(fontsize="small", frameon=False)
    return ax


def ceac_plot(result, *, ax=None, wtp: Sequence[float] | None = None, currency: str = ""):
    """The cost-effectiveness acceptability curve: P(cost-effective) against willingness to pay.

    Parameters
    ----------
    result : CostEffectiveness
    ax : matplotlib Axes, optional
    wtp : sequence of float, optional
        The grid (default: 201 points from 0 to 1.5 x the largest wtp of the result).
    currency : str
        Label of the wtp axis.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    top = float(max(result.nmb.index.max(), 1.0)) * 1.5
    grid = np.linspace(0, top, 201) if wtp is None else np.asarray(wtp, dtype=float)
    ax.plot(grid, acceptability(result, grid), color=OKABE_ITO[1], lw=1.8,
            label=f"{result.arms[1]} vs {result.arms[0]}")  # fmt: skip
    ax.axhline(0.5, color=GREY, lw=0.6, ls=":")
    ax.set_ylim(0, 1)
    ax.set_xlim(grid.min(), grid.max())
    ax.set_xlabel(f"Willingness to pay per QALY {currency}".rstrip())
    ax.set_ylabel("Probability cost-effective")
    ax.set_title("Cost-effectiveness acceptability curve")
    ax.legend(fontsize="small", frameon=False)
    return ax
