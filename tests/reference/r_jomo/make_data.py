"""Write pn_trial.csv: a SYNTHETIC partially nested trial for the multilevel imputation check.

240 participants, 120 usual care (not clustered) and 120 peer support in 15 delivery groups of
8; outcomes at post and fu3 given baseline: y = 30 + 0.6 (baseline - 30) + 4 peer + u_g + e,
u_g ~ N2(0, [[9, 6.3], [6.3, 9]]) in the peer arm only, e ~ N2(0, 64 [[1, .6], [.6, 1]]).
Missing at random: post missing with probability depending on baseline; fu3 missing with
probability depending on the post value when observed (and on baseline otherwise).
Run: .venv/bin/python tests/reference/r_jomo/make_data.py   (then Rscript jomo_reference.R)
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261130)
n_c, n_g, m = 120, 15, 8
n = n_c + n_g * m
peer = np.r_[np.zeros(n_c), np.ones(n_g * m)]
group = np.r_[np.full(n_c, "", dtype=object), np.repeat([f"G{k:02d}" for k in range(n_g)], m)]
baseline = rng.normal(30, 10, n)
om = np.array([[9.0, 6.3], [6.3, 9.0]])
u = rng.multivariate_normal([0, 0], om, n_g)
ug = np.zeros((n, 2))
ug[n_c:] = np.repeat(u, m, axis=0)
sig = 64 * np.array([[1, 0.6], [0.6, 1]])
e = rng.multivariate_normal([0, 0], sig, n)
y = 30 + 0.6 * (baseline - 30)[:, None] + 4 * peer[:, None] + ug + e
p_post = 1 / (1 + np.exp(-(-1.6 - 0.05 * (baseline - 30))))
miss_post = rng.random(n) < p_post
p_fu3 = 1 / (1 + np.exp(-(-1.3 - 0.06 * (np.where(miss_post, baseline, y[:, 0]) - 30))))
miss_fu3 = miss_post & (rng.random(n) < 0.7) | (rng.random(n) < p_fu3)
y[miss_post, 0] = np.nan
y[miss_fu3, 1] = np.nan
d = pd.DataFrame(
    {
        "id": [f"S{k:03d}" for k in range(n)],
        "arm": np.where(peer == 1, "peer", "usual"),
        "group": group,
        "baseline": baseline.round(3),
        "post": y[:, 0].round(3),
        "fu3": y[:, 1].round(3),
    }
)
d.to_csv(Path(__file__).parent / "pn_trial.csv", index=False, lineterminator="\n")
print(d.isna().groupby(d["arm"]).mean())
