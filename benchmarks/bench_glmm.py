"""peerstats.glmm against lme4::glmer and glmmTMB: same data, same run, interleaved.

Models (synthetic data, generated here):

* random-intercept logistic ``y ~ arm + visit + (1 | id)`` on 2,000 and 20,000 subjects x 4
  visits (Laplace);
* the partially nested readmission model at the size of the Danish PEER trial (300 subjects,
  peer arm in delivery groups of 10, 3 visits):
  ``readmit ~ arm + visit + (0 + peer | group) + (1 | id)``.

Each repetition fits peerstats in this process and then glmer and glmmTMB in one Rscript call
that times each fit inside R with ``system.time`` (R start-up and data loading are excluded);
repetitions alternate, so both sides see the same machine load. Reported: min and median of
``--reps`` (default 5) wall times, the ratios R / peerstats, and the load average.

Run:  .venv/bin/python benchmarks/bench_glmm.py [--reps 5] [--sizes 2000 20000] [--no-pn]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

R_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(glmmTMB)})
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
f <- as.formula(args[2])
t1 <- system.time(m1 <- glmer(f, data = d, family = binomial))[["elapsed"]]
t2 <- system.time(m2 <- glmmTMB(f, data = d, family = binomial))[["elapsed"]]
cat(sprintf('{"glmer": %.6f, "glmmTMB": %.6f, "glmer_ll": %.8f, "tmb_ll": %.8f}\n',
            t1, t2, as.numeric(logLik(m1)), as.numeric(logLik(m2))))
"""


def make_ri(n: int, seed: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame(
        {"id": np.repeat(np.arange(n), 4), "visit": np.tile(["v1", "v2", "v3", "v4"], n)}
    )
    d["arm"] = np.where(d["id"] % 2 == 0, "control", "peer")
    b = rng.normal(0, 1.0, n)[d["id"]]
    eta = -0.5 + 0.3 * (d["arm"] == "peer") + 0.1 * (d["visit"] == "v4") + b
    d["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    d["id"] = "S" + d["id"].astype(str)
    return d


def make_pn(n: int = 300, seed: int = 17) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    peer = (ids < n // 2).astype(int)
    group = np.where(peer == 1, "G" + (ids // 10).astype(str), "C" + ids.astype(str))
    d = pd.DataFrame({"id": np.repeat(ids, 3), "visit": np.tile(["m3", "m6", "m12"], n)})
    d["peer"] = peer[d["id"]]
    d["group"] = group[d["id"]]
    d["arm"] = np.where(d["peer"] == 1, "peer", "control")
    ug = {g: rng.normal(0, 0.5) for g in np.unique(group)}
    us = rng.normal(0, 1.0, n)
    eta = -0.6 - 0.4 * d["peer"] + us[d["id"]] + d["peer"] * d["group"].map(ug).to_numpy()
    d["readmit"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    d["id"] = "S" + d["id"].astype(str)
    return d


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_case(name: str, d: pd.DataFrame, formula: str, reps: int, tmp: Path) -> dict:
    import peerstats as ps

    csv = tmp / f"{name}.csv"
    d.to_csv(csv, index=False)
    rfile = tmp / "fit.R"
    rfile.write_text(R_SCRIPT)
    ours, glmer, tmb = [], [], []
    ll = {}
    for _ in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fit = ps.glmm(formula, d)
            ours.append(time.perf_counter() - t0)
        ll["peerstats"] = fit.loglik
        out = subprocess.run(
            ["Rscript", str(rfile), str(csv), formula], capture_output=True, text=True, check=True
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        glmer.append(res["glmer"])
        tmb.append(res["glmmTMB"])
        ll["glmer"], ll["glmmTMB"] = res["glmer_ll"], res["tmb_ll"]
    row = {"case": name, "n_rows": len(d)}
    for label, ts in (("peerstats", ours), ("glmer", glmer), ("glmmTMB", tmb)):
        row[f"{label}_min"] = min(ts)
        row[f"{label}_median"] = float(np.median(ts))
    row["glmer/peerstats (median)"] = row["glmer_median"] / row["peerstats_median"]
    row["glmmTMB/peerstats (median)"] = row["glmmTMB_median"] / row["peerstats_median"]
    row["loglik peerstats - glmmTMB"] = ll["peerstats"] - ll["glmmTMB"]
    row["loglik peerstats - glmer"] = ll["peerstats"] - ll["glmer"]
    row["load"] = _load()
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000])
    ap.add_argument("--no-pn", action="store_true")
    a = ap.parse_args(argv)
    print(f"load average at start: {_load()}  (2-core machine shared with other jobs)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm-up: imports of peerstats / formulaic / statsmodels are not part of a fit
        import peerstats as ps

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ps.glmm("y ~ arm + visit + (1 | id)", make_ri(200))
        if not a.no_pn:
            rows.append(
                run_case(
                    "partially nested, 300 subjects x 3",
                    make_pn(),
                    "readmit ~ arm + visit + (0 + peer | group) + (1 | id)",
                    a.reps,
                    tmp,
                )
            )
        for n in a.sizes:
            rows.append(
                run_case(
                    f"random intercept, {n} subjects x 4",
                    make_ri(n),
                    "y ~ arm + visit + (1 | id)",
                    a.reps,
                    tmp,
                )
            )
    print(pd.DataFrame(rows).to_string())


if __name__ == "__main__":
    main()
