"""Multiplicity: graphical procedures against an independent brute-force closed test.

Reference: the closure principle with a weighted Bonferroni test of every intersection
hypothesis H_I, whose weights w_j(I) come from removing the hypotheses outside I from the initial
graph one at a time with the update of Bretz, Maurer, Brannath & Posch (2009, Stat Med 28:586,
Algorithm 1; the result does not depend on the order, their Theorem/section 2). The adjusted p of
H_i is max over I containing i of min(1, min_{j in I} p_j / w_j(I)). Written here from the paper,
with plain Python lists and fractions of the order of removal, not with peerstats' code.
Graphs: Bretz et al. (2009) Figures 14 and 15 (epsilon = 0.01), Bretz, Maurer & Hommel (2011,
Stat Med 30:1489) Figure 2, Dmitrienko, Offen & Westfall (2003) parallel gatekeeping, Hommel,
Bretz & Maurer (2007) simplified example with its p-values; as transcribed in R gMCP's
exampleGraphs.R. Tolerance 1e-12 (same arithmetic, different order).
"""

import itertools

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from peerstats import multiple_testing
from peerstats.exceptions import SpecError


def _remove(weights, G, j):
    """Bretz et al. (2009) Algorithm 1, on dicts keyed by hypothesis."""
    keep = [k for k in weights if k != j]
    w2 = {k: weights[k] + weights[j] * G[j][k] for k in keep}
    G2 = {}
    for a in keep:
        G2[a] = {}
        for b in keep:
            if a == b:
                G2[a][b] = 0.0
                continue
            d = 1 - G[a][j] * G[j][a]
            G2[a][b] = (G[a][b] + G[a][j] * G[j][b]) / d if d > 1e-12 else 0.0
    return w2, G2


def closed_test(p, w, G):
    m = len(p)
    W = {i: float(w[i]) for i in range(m)}
    GG = {i: {k: float(G[i][k]) for k in range(m)} for i in range(m)}
    adj = [0.0] * m
    for r in range(1, m + 1):
        for subset in itertools.combinations(range(m), r):
            wi, gi = dict(W), GG
            for j in reversed([k for k in range(m) if k not in subset]):  # reverse order on purpose
                wi, gi = _remove(wi, gi, j)
            p_sub = min([p[j] / wi[j] for j in subset if wi[j] > 1e-12] or [1.0])
            p_sub = min(p_sub, 1.0)
            for i in subset:
                adj[i] = max(adj[i], p_sub)
    return np.array(adj)


EPS = 0.01
PUBLISHED = {
    "bretz2009_fig14": (
        [0.5, 0.5, 0, 0, 0, 0],
        [[0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0],
         [0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
    ),
    "bretz2009_fig14b": (
        [0.5, 0.5, 0, 0, 0, 0],
        [[0, .5, .5, 0, 0, 0], [.5, 0, 0, .5, 0, 0], [0, 0, 0, .5, .5, 0],
         [0, 0, .5, 0, 0, .5], [0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
    ),
    "bretz2009_fig15": (
        [1, 0, 0, 0, 0, 0],
        [[0, .5, .5, 0, 0, 0], [0, 0, 1 - EPS, EPS, 0, 0], [0, 1 - EPS, 0, 0, EPS, 0],
         [0, 0, 0, 0, 1 - EPS, EPS], [0, 0, 0, 1 - EPS, 0, EPS], [0, 0, 0, 0, 0, 0]],
    ),
    "bretz2011_fig2": (
        [1 / 3, 1 / 3, 1 / 3, 0, 0, 0],
        [[0, .5, 0, .5, 0, 0], [1 / 3, 0, 1 / 3, 0, 1 / 3, 0], [0, .5, 0, 0, 0, .5],
         [0, 1, 0, 0, 0, 0], [.5, 0, .5, 0, 0, 0], [0, 1, 0, 0, 0, 0]],
    ),
    "dmitrienko2003_parallel_gatekeeping": (
        [.5, .5, 0, 0], [[0, 0, .5, .5], [0, 0, .5, .5], [0, 0, 0, 1], [0, 0, 1, 0]],
    ),
    "improved_parallel_gatekeeping_bretz2009": (
        [.5, .5, 0, 0],
        [[0, 0, .5, .5], [0, 0, .5, .5], [EPS, 0, 0, 1 - EPS], [0, EPS, 1 - EPS, 0]],
    ),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_graphs_equal_closed_test(name):
    w, G = PUBLISHED[name]
    rng = np.random.default_rng(len(name))
    for _ in range(15):
        p = rng.uniform(0, 0.06, size=len(w)) ** rng.uniform(0.5, 2)
        got = multiple_testing(p, method="graphical", weights=w, transitions=G)
        np.testing.assert_allclose(got["adjusted_p"], closed_test(p, w, G), atol=1e-12)


def test_hommel2007_simplified_example():
    # Hommel, Bretz & Maurer (2007), gMCP HommelEtAl2007Simple with its stored p-values
    w = [1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0]
    G = np.zeros((7, 7))
    G[1, 0] = G[2, 0] = 1
    G[0, 3:] = 0.25
    p = [0.015, 0.097, 0.005, 0.006, 0.004, 0.008, 0.04]
    got = multiple_testing(p, method="graphical", weights=w, transitions=G)
    expected = closed_test(p, w, G)
    np.testing.assert_allclose(got["adjusted_p"], expected, atol=1e-12)
    # by hand: H3 (0.005*3 = 0.015) first, its weight flows to QoL; QoL at 2/3: 0.0225
    assert got["adjusted_p"].iloc[2] == pytest.approx(0.015)
    assert got["adjusted_p"].iloc[0] == pytest.approx(0.0225)


def test_random_graphs_equal_closed_test():
    rng = np.random.default_rng(19)
    for _ in range(40):
        m = int(rng.integers(2, 6))
        w = rng.dirichlet(np.ones(m)) * rng.choice([1.0, 0.8])
        G = rng.uniform(size=(m, m)) * (rng.uniform(size=(m, m)) < 0.7)
        np.fill_diagonal(G, 0)
        G = G / np.maximum(G.sum(axis=1, keepdims=True), 1e-9) * rng.choice([1.0, 0.9])
        p = rng.uniform(0, 0.1, size=m)
        got = multiple_testing(p, method="graphical", weights=w, transitions=G)
        np.testing.assert_allclose(got["adjusted_p"], closed_test(p, w, G), atol=1e-12)


def test_holm_hochberg_hommel_delegate_and_holm_graph():
    p = pd.Series([0.01, 0.04, 0.03, 0.2], index=["a", "b", "c", "d"])
    for ours, sm in [("holm", "holm"), ("hochberg", "simes-hochberg"), ("hommel", "hommel")]:
        got = multiple_testing(p, method=ours)
        assert list(got.index) == ["a", "b", "c", "d"]
        np.testing.assert_allclose(got["adjusted_p"], multipletests(p, method=sm)[1])
    # Holm is the complete graph with equal weights (Bretz et al. 2009, section 3)
    G = np.full((4, 4), 1 / 3)
    np.fill_diagonal(G, 0)
    np.testing.assert_allclose(
        multiple_testing(p, method="graphical", weights=[.25] * 4, transitions=G)["adjusted_p"],
        multipletests(p, method="holm")[1], atol=1e-12,
    )


def test_fixed_sequence_is_running_max():
    p = [0.01, 0.03, 0.002, 0.2, 0.01]
    got = multiple_testing(p, method="fixed_sequence")
    np.testing.assert_allclose(got["adjusted_p"], np.maximum.accumulate(p))
    assert got["rejected"].tolist() == [True, True, True, False, False]


def _wiens_fallback(p, w, alpha):
    """Wiens (2003): alpha_i = alpha w_i + alpha_{i-1} if H_{i-1} rejected, else alpha w_i."""
    out, carry = [], 0.0
    for pi, wi in zip(p, w):
        level = alpha * wi + carry
        rej = pi <= level
        out.append(rej)
        carry = level if rej else 0.0
    return out


def test_fallback_matches_wiens_rule():
    rng = np.random.default_rng(3)
    for _ in range(200):
        w = rng.dirichlet(np.ones(4))
        p = rng.uniform(0, 0.08, size=4)
        got = multiple_testing(p, method="fallback", weights=w, alpha=0.05)
        assert got["rejected"].tolist() == _wiens_fallback(p, w, 0.05)


def test_gatekeeping_is_dmitrienko_graph():
    p = [0.01, 0.04, 0.03, 0.02]
    got = multiple_testing(p, method="gatekeeping", families=["primary"] * 2 + ["secondary"] * 2)
    w, G = PUBLISHED["dmitrienko2003_parallel_gatekeeping"]
    np.testing.assert_allclose(got["adjusted_p"], closed_test(p, w, G), atol=1e-12)
    # by hand: H1 0.01/0.5 = 0.02; then H2 0.04/0.5 = 0.08 ties H4 0.02/0.25; the rest follow
    np.testing.assert_allclose(got["adjusted_p"], [0.02, 0.08, 0.08, 0.08])
    assert got["rejected"].tolist() == [True, False, False, False]


def test_dict_input_keeps_order_and_names():
    got = multiple_testing({"qpr": 0.02, "hope": 0.001, "ghq": 0.5}, method="bonferroni")
    assert list(got.index) == ["qpr", "hope", "ghq"]
    np.testing.assert_allclose(got["adjusted_p"], [0.06, 0.003, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": [0.6, 0.6, 0], "transitions": np.zeros((3, 3))}, "at most 1"),
        ({"weights": [0.5, 0.5, 0], "transitions": [[0, .8, .8], [0, 0, 1], [1, 0, 0]]}, "sum"),
        ({"weights": [0.5, 0.5, 0], "transitions": [[0, -.2, 1], [0, 0, 1], [1, 0, 0]]}, "[0, 1]"),
        ({"weights": [0.5, 0.5, 0], "transitions": [[.5, .5, 0], [0, 0, 1], [1, 0, 0]]},
         "diagonal"),
        ({"weights": [-0.1, 0.5, 0.6], "transitions": np.zeros((3, 3))}, "non-negative"),
        ({"weights": [0.5, 0.5, 0]}, "needs both"),
        ({"weights": [0.5, 0.5], "transitions": np.zeros((2, 2))}, "one entry per"),
    ],
)
def test_bad_graphs_raise(kwargs, match):
    with pytest.raises(SpecError, match=match if match != "[0, 1]" else r"\[0, 1\]"):
        multiple_testing([0.01, 0.02, 0.03], method="graphical", **kwargs)


def test_bad_inputs_raise():
    with pytest.raises(SpecError, match="not a multiplicity method"):
        multiple_testing([0.1], method="bh")
    with pytest.raises(SpecError, match=r"\[0, 1\]"):
        multiple_testing([0.1, 1.2])
    with pytest.raises(SpecError, match="sum to 1"):
        multiple_testing([0.1, 0.2], method="fallback", weights=[0.3, 0.3])
    with pytest.raises(SpecError, match="families"):
        multiple_testing([0.1, 0.2], method="gatekeeping")
    with pytest.raises(SpecError, match="no weights"):
        multiple_testing([0.1, 0.2], method="holm", weights=[0.5, 0.5])


def test_plot_graph_draws():
    import matplotlib

    matplotlib.use("Agg")
    from peerstats.effects.multiplicity import plot_graph

    w, G = PUBLISHED["dmitrienko2003_parallel_gatekeeping"]
    ax = plot_graph(w, G, names=["QPR", "Hope", "GHQ", "SIS"], rejected=[True, False, False, False])
    assert len(ax.texts) >= 4
