"""Multiplicity across outcomes and visits: Holm to graphical procedures and gatekeeping.

Holm, Hochberg and Hommel are delegated to ``statsmodels.stats.multitest.multipletests``.
Nothing in Python's scientific stack implements the graphical approach of Bretz, Maurer,
Brannath & Posch (2009), so it is written here: weighted Bonferroni tests with a sequentially
rejective update of weights and transitions (their Algorithm 1) and the adjusted p-values of
Bretz, Posch, Glimm, Klinglmueller, Maurer & Rohmeyer (2011, Biometrical Journal 53:894, section
2.2). Fixed-sequence, fallback and parallel-gatekeeping procedures are special graphs, so every
method except the three step-up/step-down ones runs through one algorithm.

Validated in ``tests/effects/test_multiplicity.py`` against an independent brute-force closed test
(weighted Bonferroni for every intersection hypothesis) on random p-values and on the published
graphs of Bretz et al. (2009, 2011) and Dmitrienko, Offen & Westfall (2003).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import SpecError

__all__ = ["multiple_testing", "graph_adjusted_p", "gatekeeping_graph", "plot_graph"]

Method = Literal[
    "holm",
    "hochberg",
    "hommel",
    "bonferroni",
    "fixed_sequence",
    "fallback",
    "graphical",
    "gatekeeping",
]
METHODS: tuple[str, ...] = Method.__args__  # type: ignore[attr-defined]
_STATSMODELS = {"holm": "holm", "hochberg": "simes-hochberg", "hommel": "hommel"}
_TOL = 1e-10


def _as_p(p_values: Any) -> tuple[np.ndarray, pd.Index]:
    """p-values as a float array and the index (names if a Series or mapping)."""
    if isinstance(p_values, Mapping):
        p_values = pd.Series(dict(p_values), dtype=float)
    if isinstance(p_values, pd.Series):
        index = p_values.index
        p = p_values.to_numpy(dtype=float)
    else:
        p = np.asarray(p_values, dtype=float).ravel()
        index = pd.RangeIndex(len(p))
    if p.size == 0:
        raise SpecError("multiple_testing needs at least one p-value")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise SpecError(
            f"p-values must lie in [0, 1] with none missing; positions {np.flatnonzero(bad).tolist()}"
            f" are {p[bad].tolist()}"
        )
    return p, index


def check_graph(weights: Any, transitions: Any, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Check a graph as Bretz et al. (2009, section 2) define one; return float arrays.

    Weights are non-negative with sum <= 1 (a sum below 1 is allowed by the paper: the procedure
    then does not exhaust alpha). The transition matrix is m x m, entries in [0, 1], zero
    diagonal, each row summing to at most 1.
    """
    w = np.asarray(weights, dtype=float).ravel()
    if w.shape != (m,):
        raise SpecError(f"weights must have one entry per hypothesis ({m}), got {w.shape[0]}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise SpecError(f"weights must be finite and non-negative, got {w.tolist()}")
    if w.sum() > 1 + _TOL:
        raise SpecError(
            f"weights sum to {w.sum():.6g}; the graphical approach (Bretz et al. 2009) needs a sum "
            "of at most 1 (below 1 is allowed but does not use all of alpha)"
        )
    g = np.asarray(transitions, dtype=float)
    if g.shape != (m, m):
        raise SpecError(f"transitions must be a {m} x {m} matrix, got shape {g.shape}")
    if not np.isfinite(g).all() or (g < 0).any() or (g > 1 + _TOL).any():
        raise SpecError("transition weights must be finite and lie in [0, 1]")
    if np.abs(np.diag(g)).max() > 0:
        raise SpecError(
            "transitions must have a zero diagonal (no edge from a hypothesis to itself)"
        )
    rows = g.sum(axis=1)
    if (rows > 1 + _TOL).any():
        over = np.flatnonzero(rows > 1 + _TOL).tolist()
        raise SpecError(
            f"rows {over} of the transition matrix sum to {rows[over].tolist()}; each row must "
            "sum to at most 1 (Bretz et al. 2009)"
        )
    return w, g


def _remove_node(w: np.ndarray, g: np.ndarray, j: int, active: np.ndarray) -> None:
    """Algorithm 1 of Bretz et al. (2009): pass H_j's weight on and rewire the graph (in place)."""
    others = active.copy()
    others[j] = False
    idx = np.flatnonzero(others)
    w[idx] += w[j] * g[j, idx]
    new = g.copy()
    for ell in idx:
        for k in idx:
            if ell == k:
                continue
            denom = 1.0 - g[ell, j] * g[j, ell]
            new[ell, k] = (g[ell, k] + g[ell, j] * g[j, k]) / denom if denom > _TOL else 0.0
    g[:] = new
    g[j, :] = 0.0
    g[:, j] = 0.0
    w[j] = 0.0
    active[j] = False


def graph_adjusted_p(p: Any, weights: Any, transitions: Any) -> np.ndarray:
    """Adjusted p-values of the weighted-Bonferroni graphical procedure.

    Notes
    -----
    At each step the hypothesis with the smallest ``p_j / w_j`` among those left is removed; its
    adjusted p is ``max(min(p_j / w_j, 1), previous adjusted p)``; weights and transitions are
    updated by Algorithm 1 of Bretz et al. (2009). This is the shortcut of the closed test with
    weighted Bonferroni tests of every intersection (Bretz et al. 2011, section 2.2).
    """
    p = np.asarray(p, dtype=float)
    w, g = check_graph(weights, transitions, p.size)
    w, g = w.copy(), g.copy()
    active = np.ones(p.size, dtype=bool)
    adj = np.ones(p.size)
    running = 0.0
    while active.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(active & (w > _TOL), p / np.where(w > 0, w, 1.0), np.inf)
        j = int(np.argmin(ratio))
        if not np.isfinite(ratio[j]):
            adj[active] = 1.0
            break
        running = max(min(ratio[j], 1.0), running)
        adj[j] = running
        _remove_node(w, g, j, active)
    return adj


def _chain(weights: np.ndarray) -> np.ndarray:
    """Transitions of the fallback graph: all weight of H_i passes to H_(i+1)."""
    m = weights.size
    g = np.zeros((m, m))
    for i in range(m - 1):
        g[i, i + 1] = 1.0
    return g


def gatekeeping_graph(
    families: Sequence[Any], weights: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and transitions of the Bonferroni parallel gatekeeping procedure.

    Families are tested in the order their labels first appear in ``families``. Only the first
    family starts with weight (its within-family weights, summing to 1). When a hypothesis of
    family k is rejected its weight passes to family k + 1, split by that family's within-family
    weights; within the last family a rejected hypothesis passes its weight to the others of the
    family (Holm within the last family). This is the graph of Dmitrienko, Offen & Westfall
    (2003, Table I) drawn by Bretz et al. (2009, section 4.1); with two families of two it is
    gMCP's ``parallelGatekeeping()``.
    """
    labels = list(families)
    order = list(dict.fromkeys(labels))
    if len(order) < 2:
        raise SpecError("gatekeeping needs at least two families (e.g. primary and secondary)")
    member = np.array([order.index(x) for x in labels])
    m = member.size
    rel = np.ones(m) if weights is None else np.asarray(weights, dtype=float).ravel()
    if rel.shape != (m,) or (rel < 0).any():
        raise SpecError(f"gatekeeping weights need one non-negative entry per hypothesis ({m})")
    for k in range(len(order)):
        s = rel[member == k].sum()
        if s <= 0:
            raise SpecError(f"family {order[k]!r} has no positive weight")
        if weights is not None and abs(s - 1) > 1e-8:
            raise SpecError(
                f"weights within family {order[k]!r} sum to {s:.6g}; they must sum to 1"
            )
        rel[member == k] = rel[member == k] / s
    w = np.where(member == 0, rel, 0.0)
    g = np.zeros((m, m))
    last = len(order) - 1
    for i in range(m):
        k = member[i]
        target = (member == k + 1) if k < last else (member == last)
        if k == last:
            target = target.copy()
            target[i] = False
        tot = rel[target].sum()
        if tot > 0:
            g[i, target] = rel[target] / tot
    return w, g


def _graph_for(method: str, m: int, weights: Any, transitions: Any, families: Any) -> tuple:
    if method == "graphical":
        if weights is None or transitions is None:
            raise SpecError("method='graphical' needs both weights and transitions")
        return weights, transitions
    if transitions is not None:
        raise SpecError(f"transitions are only used by method='graphical', not {method!r}")
    if method == "fixed_sequence":
        if weights is not None:
            raise SpecError("fixed_sequence tests in the order given and takes no weights")
        w = np.zeros(m)
        w[0] = 1.0
        return w, _chain(w)
    if method == "fallback":
        w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=float)
        if w.shape == (m,) and abs(w.sum() - 1) > 1e-8:
            raise SpecError(f"fallback weights must sum to 1, got {w.sum():.6g}")
        return w, _chain(w)
    if families is None:
        raise SpecError("method='gatekeeping' needs families= (a family label per hypothesis)")
    if len(families) != m:
        raise SpecError(f"families must give one label per hypothesis ({m}), got {len(families)}")
    return gatekeeping_graph(families, weights)


def multiple_testing(
    p_values: Any,
    *,
    method: Method = "holm",
    weights: Any = None,
    transitions: Any = None,
    alpha: float = 0.05,
    families: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Adjust p-values for multiplicity and say which hypotheses are rejected.

    Parameters
    ----------
    p_values : sequence, Series or mapping
        Unadjusted p-values; names come from a Series index or mapping keys.
    method : {"holm", "hochberg", "hommel", "bonferroni", "fixed_sequence", "fallback", \
"graphical", "gatekeeping"}
        ``fixed_sequence`` tests in the order given; ``fallback`` (Wiens 2003) passes the weight of
        a rejected hypothesis to the next one; ``graphical`` needs ``weights`` and
        ``transitions``; ``gatekeeping`` is Bonferroni parallel gatekeeping over ``families``.
    weights : array-like, optional
        Initial weights (``bonferroni``, ``fallback``, ``graphical``: sum <= 1 as Bretz et al.
        2009 require; ``fallback``: sum = 1) or within-family weights (``gatekeeping``: each
        family sums to 1). Default: equal.
    transitions : array-like, optional
        m x m transition matrix ``G`` (``graphical`` only): entries in [0, 1], zero diagonal,
        rows summing to at most 1.
    alpha : float
        Family-wise error rate.
    families : sequence, optional
        One family label per hypothesis (``gatekeeping`` only), families tested in order of
        first appearance.

    Returns
    -------
    pandas.DataFrame
        In input order, indexed by the hypothesis names: ``p_value``, ``adjusted_p``,
        ``rejected`` (``adjusted_p <= alpha``). ``attrs`` hold the method, alpha and the graph.

    Notes
    -----
    Graph-based methods use the sequentially rejective weighted Bonferroni procedure of Bretz et
    al. (2009, Algorithm 1) and its adjusted p-values (Bretz et al. 2011, section 2.2); the
    fallback graph is the chain with ``g[i, i+1] = 1`` (Bretz et al. 2009, section 3), which
    rejects exactly what Wiens' (2003) fallback rejects. Validated against a brute-force closed
    test in ``tests/effects/test_multiplicity.py``.
    """
    if method not in METHODS:
        raise SpecError(f"{method!r} is not a multiplicity method; methods are {list(METHODS)}")
    if not 0 < alpha < 1:
        raise SpecError(f"alpha must be between 0 and 1, got {alpha!r}")
    p, index = _as_p(p_values)
    m = p.size
    graph: tuple | None = None
    if method in _STATSMODELS:
        if weights is not None or transitions is not None:
            raise SpecError(f"{method!r} takes no weights or transitions; use method='graphical'")
        from statsmodels.stats.multitest import multipletests

        adj = multipletests(p, alpha=alpha, method=_STATSMODELS[method])[1]
    elif method == "bonferroni":
        if transitions is not None:
            raise SpecError("bonferroni takes no transitions; use method='graphical'")
        w = np.full(m, 1.0 / m) if weights is None else weights
        w, _ = check_graph(w, np.zeros((m, m)), m)
        with np.errstate(divide="ignore"):
            adj = np.where(w > 0, np.minimum(p / np.where(w > 0, w, 1), 1.0), 1.0)
        graph = (w, np.zeros((m, m)))
    else:
        w, g = _graph_for(method, m, weights, transitions, families)
        adj = graph_adjusted_p(p, w, g)
        graph = check_graph(w, g, m)
    out = pd.DataFrame(
        {"p_value": p, "adjusted_p": np.asarray(adj, dtype=float), "rejected": adj <= alpha},
        index=index,
    )
    out.attrs.update({"method": method, "alpha": alpha})
    if graph is not None:
        out.attrs["weights"], out.attrs["transitions"] = graph[0].tolist(), graph[1].tolist()
    return out


def plot_graph(
    weights: Any,
    transitions: Any,
    *,
    names: Sequence[str] | None = None,
    rejected: Sequence[bool] | None = None,
    ax: Any = None,
) -> Any:
    """Draw a multiple-testing graph: nodes with their weights, edges with transition weights.

    Nodes sit on a circle; rejected hypotheses (if given) are shaded. Returns the Axes.
    """
    import matplotlib.pyplot as plt

    w = np.asarray(weights, dtype=float)
    g = np.asarray(transitions, dtype=float)
    m = w.size
    names = list(names) if names is not None else [f"H{i + 1}" for i in range(m)]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    angle = np.pi / 2 - 2 * np.pi * np.arange(m) / m
    xy = np.column_stack([np.cos(angle), np.sin(angle)])
    for i in range(m):
        for j in range(m):
            if g[i, j] > 0:
                ax.annotate(
                    "",
                    xy=xy[j],
                    xytext=xy[i],
                    arrowprops={
                        "arrowstyle": "->",
                        "shrinkA": 22,
                        "shrinkB": 22,
                        "connectionstyle": "arc3,rad=0.15",
                        "color": "0.3",
                    },
                )
                mid = 0.6 * xy[i] + 0.4 * xy[j]
                ax.text(
                    mid[0],
                    mid[1],
                    f"{g[i, j]:.3g}",
                    fontsize=8,
                    ha="center",
                    bbox={"fc": "white", "ec": "none", "pad": 0.5},
                )
    for i in range(m):
        shade = "0.8" if rejected is not None and rejected[i] else "white"
        ax.text(
            xy[i, 0],
            xy[i, 1],
            f"{names[i]}\n{w[i]:.3g}",
            ha="center",
            va="center",
            bbox={"boxstyle": "circle", "fc": shade, "ec": "black"},
        )
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
