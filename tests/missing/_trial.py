"""A small synthetic two-arm, three-visit trial with monotone dropout (test helper)."""

from __future__ import annotations

import numpy as np
import pandas as pd

VISITS = ["w4", "w8", "w12"]
SIGMA = np.array([[16.0, 10.0, 8.0], [10.0, 20.0, 12.0], [8.0, 12.0, 25.0]])


def make_trial(n=60, seed=1, dropout=0.3, effect=(1.0, 2.0, 3.0), sigma_peer=None):
    """Long data (id, arm, visit, base, y) with monotone dropout, and the dropout visit index
    per subject (3 = completer)."""
    rng = np.random.default_rng(seed)
    arm = np.repeat(["usual", "peer"], n // 2)
    base = np.round(rng.normal(30, 5, n), 2)
    eff = (arm == "peer")[:, None] * np.asarray(effect)
    E = rng.multivariate_normal(np.zeros(3), SIGMA, n)
    if sigma_peer is not None:
        Ep = rng.multivariate_normal(np.zeros(3), sigma_peer, n)
        E = np.where((arm == "peer")[:, None], Ep, E)
    Y = 10 + 0.6 * base[:, None] + eff + E
    drop = np.full(n, 3)
    for i in range(n):
        if rng.uniform() < dropout:
            drop[i] = rng.integers(1, 3)
            Y[i, drop[i] :] = np.nan
    rows = [
        {"id": f"s{i:03d}", "arm": arm[i], "visit": v, "base": base[i], "y": Y[i, j]}
        for i in range(n)
        for j, v in enumerate(VISITS)
    ]
    df = pd.DataFrame(rows)
    df["visit"] = pd.Categorical(df["visit"], VISITS)
    df["arm"] = pd.Categorical(df["arm"], ["usual", "peer"])
    return df, drop


def ice_frame(df, drop, strategies):
    """ICE at the dropout visit for every dropout, strategies assigned in turn."""
    ids = df["id"].unique()
    who = np.flatnonzero(drop < 3)
    return pd.DataFrame(
        {
            "id": ids[who],
            "visit": [VISITS[drop[i]] for i in who],
            "strategy": [strategies[k % len(strategies)] for k in range(len(who))],
        }
    )
