"""Synthetic replicates for tests/models/test_mmrm_many.py (all data simulated; no participants).

Five replicates of a two-arm trial with four visits, a baseline covariate, monotone dropout
(replicates 1, 3) or intermittent missingness (2, 4), and replicate 5 with only 6 subjects (too
little data for an unstructured 4 x 4 covariance: R mmrm fails, mmrm_many must report it).
Run: python tests/reference/mmrm_many/make_data.py  (writes replicates.csv beside it).
"""

from pathlib import Path

import numpy as np
import pandas as pd


def replicate(rng, n, nonmonotone):
    T = 4
    arm = np.repeat(["peer", "usual"], n // 2)
    sd = np.array([3.0, 3.5, 4.0, 4.5])
    corr = 0.6 ** np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    L = np.linalg.cholesky(corr * np.outer(sd, sd))
    base = rng.normal(20, 3, n)
    y = rng.standard_normal((n, T)) @ L.T + 0.3 * base[:, None]
    y += np.where(arm == "peer", 1.0, 0.0)[:, None] * np.arange(T)
    if nonmonotone:
        miss = rng.random((n, T)) < 0.15
    else:
        miss = np.cumsum(rng.random((n, T)) < 0.12, axis=1) > 0
    miss[:, 0] = False
    y[miss] = np.nan
    return pd.DataFrame(
        {
            "id": np.repeat([f"s{i:03d}" for i in range(n)], T),
            "arm": np.repeat(arm, T),
            "visit": np.tile([f"w{t}" for t in range(T)], n),
            "base": np.repeat(base, T).round(4),
            "y": y.ravel().round(4),
        }
    )


def main():
    rng = np.random.default_rng(20261206)
    frames = [replicate(rng, 80, nonmonotone=bool(r % 2)).assign(rep=r + 1) for r in range(4)]
    frames.append(replicate(rng, 6, nonmonotone=False).assign(rep=5))
    out = pd.concat(frames, ignore_index=True)
    out.to_csv(Path(__file__).with_name("replicates.csv"), index=False)


if __name__ == "__main__":
    main()
