"""Write cea_synthetic.csv: a synthetic trial (no real participants) of 300 people for the
cost-effectiveness reference (cea_sur.R). Two arms, three strata, delivery groups of about ten
in the peer-support arm, baseline utility, 12-month QALYs and costs (right-skewed, correlated
with QALYs). Run: python tests/reference/r_economics/make_cea_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd


def make(n: int = 300, seed: int = 20261206) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.repeat(["usual", "peer"], n // 2)
    stratum = rng.choice(["north", "south", "west"], size=n, p=[0.4, 0.35, 0.25])
    u0 = np.clip(rng.normal(0.62, 0.2, n), -0.2, 1.0)
    peer = arm == "peer"
    group = np.where(peer, "g" + (np.cumsum(peer) // 10).astype(str), "")
    g_eff = pd.Series(rng.normal(0, 0.02, 20)).reindex(np.cumsum(peer) // 10).to_numpy()
    qaly = 0.15 + 0.6 * u0 + 0.03 * peer + np.where(peer, g_eff, 0) + rng.normal(0, 0.08, n)
    qaly += np.select([stratum == "south", stratum == "west"], [0.02, -0.01], 0)
    cost = np.exp(7.2 + 0.25 * peer - 0.8 * (qaly - 0.55) + rng.normal(0, 0.6, n))
    return pd.DataFrame({"id": np.arange(1, n + 1), "arm": arm, "stratum": stratum,
                         "group": group, "u0": u0.round(4), "qaly": qaly.round(5),
                         "cost": cost.round(2)})  # fmt: skip


if __name__ == "__main__":
    make().to_csv(Path(__file__).with_name("cea_synthetic.csv"), index=False)
