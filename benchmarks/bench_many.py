"""Many fits of one MMRM (issue 22.5): ``peerstats.mmrm_many`` vs a loop of ``peerstats.mmrm``
vs a loop of R ``mmrm::mmrm``, on the same simulated replicates.

The replicates: ``--reps`` synthetic two-arm trials of ``--n`` subjects (``_common.make_trial``:
four visits, unstructured covariance, baseline covariate, MAR monotone dropout ~20%), one seed
each. Every contender fits ``y ~ baseline + arm * visit`` with an unstructured covariance by
REML and gives every coefficient its Satterthwaite df (R: ``summary(fit)$coefficients``;
peerstats: ``fit.coef``; mmrm_many: its tidy table). Per round (``--rounds``, >= 5) the three
run one after the other (interleaved, so all see the same machine load):

- ``mmrm_many`` on all replicates (one long frame with a replicate column);
- a loop of ``peerstats.mmrm`` over the first ``--loop-reps`` replicates;
- a loop of R ``mmrm`` over the same ``--loop-reps`` (timed inside R with ``system.time``, so
  R's start-up and reading the CSV are excluded).

Printed: fits per second (min and median over the rounds, from each round's time per fit), the
ratios in the same round, the largest difference between mmrm_many and the peerstats loop, and
the load average before and after. Run:

    R_LIBS=/work/rlib .venv/bin/python benchmarks/bench_many.py [--reps 500] [--n 200]
        [--loop-reps 40] [--rounds 5] [--no-r] [--blas-threads 1]

A benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _threads  # noqa: F401  (BLAS threads from --blas-threads before numpy loads)
import pandas as pd
from _common import make_trial, run_r

import peerstats

FORMULA = "y ~ baseline + arm * visit"
R_CODE = """
reps <- sort(unique(d$rep))
d$visit <- factor(d$visit, levels = c("V1", "V2", "V3", "V4"))
el <- system.time(for (r in reps) {
  fit <- mmrm(y ~ baseline + arm * visit + us(visit | id), data = d[d$rep == r, ],
              method = "Satterthwaite")
  co <- summary(fit)$coefficients
})[["elapsed"]]
cat(el)
"""


def replicates(n_reps: int, n: int) -> pd.DataFrame:
    return pd.concat(
        [make_trial(n, seed=1000 + r).assign(rep=r) for r in range(n_reps)], ignore_index=True
    )


def run_many(data: pd.DataFrame):
    t0 = time.perf_counter()
    res = peerstats.mmrm_many(FORMULA, data, subject="id", visit="visit", replicate="rep")
    return time.perf_counter() - t0, res


def run_loop(data: pd.DataFrame, reps: list[int]):
    t0 = time.perf_counter()
    out = []
    for r in reps:
        one = data[data.rep == r]
        out.append(peerstats.mmrm(FORMULA, one, subject="id", visit="visit").coef)
    return time.perf_counter() - t0, out


def largest_difference(res, loop: list[pd.DataFrame], reps: list[int]) -> dict:
    diff = {"estimate/SE": 0.0, "std_error (rel)": 0.0, "df (rel)": 0.0}
    for r, coef in zip(reps, loop):
        ours = res.coef[res.coef.replicate == r].set_index("term").loc[coef.index]
        se = coef["std_error"]
        diff["estimate/SE"] = max(
            diff["estimate/SE"], float(((ours.estimate - coef.estimate).abs() / se).max())
        )
        diff["std_error (rel)"] = max(
            diff["std_error (rel)"], float((ours.std_error / se - 1).abs().max())
        )
        diff["df (rel)"] = max(diff["df (rel)"], float((ours.df / coef.df - 1).abs().max()))
    return diff


def summary_row(name: str, per_fit: list[float]) -> str:
    fps = [1 / s for s in per_fit]
    return f"{name:<28} {max(fps):>12.1f} {statistics.median(fps):>14.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--loop-reps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--blas-threads", default=None)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    data = replicates(args.reps, args.n)
    loop_reps = list(range(min(args.loop_reps, args.reps)))
    r_data = data[data.rep.isin(loop_reps)]
    run_many(data[data.rep < 2])  # warm-up: imports, first-call costs
    run_loop(data, [0])
    times = {"mmrm_many": [], "peerstats.mmrm loop": [], "R mmrm loop": []}
    ratios = {"mmrm_many vs mmrm loop": [], "mmrm_many vs R loop": [], "mmrm loop vs R loop": []}
    for k in range(args.rounds):
        t_many, res = run_many(data)
        t_loop, loop = run_loop(data, loop_reps)
        per = {"mmrm_many": t_many / args.reps, "peerstats.mmrm loop": t_loop / len(loop_reps)}
        if not args.no_r:
            m = run_r(
                R_CODE, r_data, timeout=3600, libraries=("mmrm",), r_libs=os.environ.get("R_LIBS")
            )
            if m.seconds is not None:
                per["R mmrm loop"] = m.seconds / len(loop_reps)
            elif k == 0:
                print("R:", m.note)
        for name, v in per.items():
            times[name].append(v)
        ratios["mmrm_many vs mmrm loop"].append(per["peerstats.mmrm loop"] / per["mmrm_many"])
        if "R mmrm loop" in per:
            ratios["mmrm_many vs R loop"].append(per["R mmrm loop"] / per["mmrm_many"])
            ratios["mmrm loop vs R loop"].append(per["R mmrm loop"] / per["peerstats.mmrm loop"])
        print(f"round {k + 1}: " + ", ".join(f"{n} {1 / v:.1f} fits/s" for n, v in per.items()))
    print(
        f"\n{args.reps} replicates of {args.n} subjects x 4 visits (loops: {len(loop_reps)} replicates)"
    )
    print(f"{'':<28} {'fits/s (max)':>12} {'fits/s (median)':>14}")
    for name, v in times.items():
        if v:
            print(summary_row(name, v))
    print(f"\n{'ratio (same round)':<28} {'min':>8} {'median':>8}")
    for name, v in ratios.items():
        if v:
            print(f"{name:<28} {min(v):>7.1f}x {statistics.median(v):>7.1f}x")
    print(
        "\nengine per replicate:",
        res.engine.value_counts().to_dict(),
        "failures:",
        len(res.failures),
    )
    print(
        "largest difference mmrm_many vs peerstats.mmrm:", largest_difference(res, loop, loop_reps)
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
