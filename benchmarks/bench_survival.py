"""Cox model speed: peerstats.coxph vs R survival::coxph and lifelines (issue 17).

    .venv/bin/python benchmarks/bench_survival.py                  # 2,000 and 200,000
    .venv/bin/python benchmarks/bench_survival.py --sizes 2000 --rounds 5 --no-r

Model: ``arm + age`` with Efron ties on a synthetic trial (exponential times, hazard ratio
0.75, uniform censoring between 6 and 24 months, times in whole days, so many ties). Timed
interleaved, round by round (peerstats, lifelines, R), min and median of ``--rounds`` (>= 5):

* peerstats.coxph (whole call: checks, design, fit, ``.coef``);
* lifelines CoxPHFitter().fit (Efron; its default Newton settings);
* R survival::coxph, timed inside R (system.time around coxph() only, data already loaded;
  one Rscript per round, so R's start-up is not counted).

Target (issue 17): no slower than lifelines, within 2x of R coxph. The machine load (1-minute
load average) is printed before and after, since other jobs share the cores. The last lines
compare the estimates (max abs difference vs peerstats) so that a fast wrong answer shows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

R_SCRIPT = """
suppressPackageStartupMessages(library(survival))
d <- read.csv("{path}")
d$arm <- factor(d$arm, levels = c("control", "peer"))
t <- system.time(fit <- coxph(Surv(time, event) ~ arm + age, data = d))[["elapsed"]]
cat(t, coef(fit), "\\n")
"""


R_FRAILTY = """
suppressPackageStartupMessages(library(survival))
d <- read.csv("{path}")
d$arm <- factor(d$arm, levels = c("control", "peer"))
t <- system.time(fit <- coxph(Surv(time, event) ~ arm + age + frailty(group), data = d))
cat(t[["elapsed"]], coef(fit), "\\n")
"""


def make_data(n: int, seed: int = 17) -> pd.DataFrame:
    """Synthetic trial (no real participants)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "peer"], n)
    age = rng.normal(40, 12, n).round()
    rate = 0.05 * np.exp(np.log(0.75) * (arm == "peer") + 0.01 * (age - 40))
    t = rng.exponential(1 / rate)
    c = rng.uniform(6, 24, n)
    time_ = np.ceil(np.minimum(t, c) * 30.4375) / 30.4375
    return pd.DataFrame({"arm": arm, "age": age, "time": time_, "event": (t <= c).astype(int),
                         "group": rng.integers(0, 50, n)})


def run_peerstats(d, **kw):
    import peerstats

    t0 = time.perf_counter()
    fit = peerstats.coxph("arm + age", d, time="time", event="event", **kw)
    coef = fit.coef.estimate.to_numpy()
    return time.perf_counter() - t0, coef


def run_lifelines(d):
    from lifelines import CoxPHFitter

    x = d.assign(peer=(d.arm == "peer").astype(float))[["time", "event", "peer", "age"]]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CoxPHFitter().fit(x, duration_col="time", event_col="event")
    return time.perf_counter() - t0, fit.params_.to_numpy()


def run_r(path: Path, template: str = R_SCRIPT):
    script = template.format(path=path)
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    vals = [float(v) for v in out.stdout.split()]
    return vals[0], np.array(vals[1:])


def bench(n: int, rounds: int, use_r: bool) -> None:
    d = make_data(n)
    tmp = Path(tempfile.mkdtemp()) / f"cox_{n}.csv"
    d.to_csv(tmp, index=False)
    run_peerstats(d.head(500))  # imports, warm-up
    run_lifelines(d.head(500))
    times: dict[str, list[float]] = {"peerstats": [], "lifelines": [], "R coxph": []}
    coefs = {}
    for _ in range(rounds):
        for name, fn in (("peerstats", lambda: run_peerstats(d)),
                         ("lifelines", lambda: run_lifelines(d)),
                         ("R coxph", lambda: run_r(tmp))):
            if name == "R coxph" and not use_r:
                continue
            s, c = fn()
            times[name].append(s)
            coefs[name] = c
    print(f"\nn = {n:,} participants, events = {int(d.event.sum()):,}, "
          f"distinct times = {d.time.nunique():,}; {rounds} interleaved rounds")
    base = min(times["peerstats"])
    print(f"{'tool':<12}{'min s':>10}{'median s':>10}{'min / peerstats':>18}")
    for name, ts in times.items():
        if ts:
            print(f"{name:<12}{min(ts):>10.4f}{statistics.median(ts):>10.4f}"
                  f"{min(ts) / base:>18.2f}")
    for name, c in coefs.items():
        if name != "peerstats":
            print(f"  max |coef - peerstats| for {name}: "
                  f"{np.max(np.abs(c - coefs['peerstats'])):.2e}")


def bench_frailty(n: int, rounds: int, use_r: bool) -> None:
    """Gamma frailty (50 groups): peerstats vs R coxph(... + frailty(group))."""
    d = make_data(n)
    tmp = Path(tempfile.mkdtemp()) / f"frailty_{n}.csv"
    d.to_csv(tmp, index=False)
    times: dict[str, list[float]] = {"peerstats": [], "R coxph": []}
    coefs = {}
    for _ in range(rounds):
        s, coefs["peerstats"] = run_peerstats(d, frailty="group")
        times["peerstats"].append(s)
        if use_r:
            s, coefs["R coxph"] = run_r(tmp, R_FRAILTY)
            times["R coxph"].append(s)
    print(f"\ngamma frailty, n = {n:,}, 50 groups; {rounds} interleaved rounds")
    base = min(times["peerstats"])
    for name, ts in times.items():
        if ts:
            print(f"{name:<12}{min(ts):>10.4f}{statistics.median(ts):>10.4f}"
                  f"{min(ts) / base:>18.2f}")
    if use_r:
        print(f"  max |coef - peerstats| for R: "
              f"{np.max(np.abs(coefs['R coxph'] - coefs['peerstats'])):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 200_000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-frailty", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    for n in args.sizes:
        bench(n, max(args.rounds, 5), not args.no_r)
    if not args.no_frailty:
        bench_frailty(2000, max(args.rounds, 5), not args.no_r)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
