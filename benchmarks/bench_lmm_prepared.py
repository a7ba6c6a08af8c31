"""Refitting the PEER primary partially nested LMM on 20 completed datasets: ``peerstats.lmm`` on
each dataset vs :class:`peerstats.models._lmm_prepared.PreparedLMM` (designs built once), each
followed by the per-visit contrasts the sensitivity analyses pool. Interleaved, min and median
of ``--runs``, load printed. Data: tests/reference/r_sens_primary/datasets.csv.gz (SYNTHETIC).

Usage: python benchmarks/bench_lmm_prepared.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "models"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import pandas as pd
    from test_lmm_prepared import DATA, FORMULA, OPTIONS

    import peerstats
    from peerstats.models._lmm_prepared import PreparedLMM

    d = pd.read_csv(DATA, dtype={"subject": str, "group": str})
    sets = []
    for _, g in d.groupby("imputation"):
        g = g.drop(columns=["imputation", "imputed"]).reset_index(drop=True)
        g["visit"] = pd.Categorical(g["visit"], categories=["post", "fu3"])
        g["arm"] = pd.Categorical(g["arm"], categories=["usual", "peer"])
        lone = (g["delivered"] > 0) & g["group"].isna()
        g.loc[lone, "group"] = "_single:" + g.loc[lone, "subject"]
        sets.append(g)

    def full():
        return [
            peerstats.lmm(FORMULA, s, **OPTIONS).contrasts("arm", by="visit")["estimate"].to_numpy()
            for s in sets
        ]

    def prepared():
        prep = PreparedLMM(FORMULA, sets[0], **OPTIONS)
        return [prep.fit(s).contrasts("arm", by="visit")["estimate"].to_numpy() for s in sets]

    print("load average:", os.getloadavg(), "cores:", os.cpu_count())
    times: dict[str, list[float]] = {"peerstats.lmm": [], "PreparedLMM": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = full(), prepared()  # warm-up
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        for _ in range(args.runs):
            for name, fn in (("peerstats.lmm", full), ("PreparedLMM", prepared)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    for name, v in times.items():
        print(
            f"{name:14s} {len(sets)} fits + contrasts: min {min(v):.3f} s, "
            f"median {statistics.median(v):.3f} s"
        )
    ratio = statistics.median(times["peerstats.lmm"]) / statistics.median(times["PreparedLMM"])
    print(f"ratio (median): {ratio:.2f}x; identical estimates: yes")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
