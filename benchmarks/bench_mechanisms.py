"""Warm run time of the mechanisms step (subgroups, site heterogeneity, mediation, multiplicity
strategy; issue 22) of a bundled analysis (SYNTHETIC data), this code against an older one,
interleaved in the same run.

    .venv/bin/python benchmarks/bench_mechanisms.py [OLD_SRC] [--analysis NAME] [--reps N]

OLD_SRC is a ``src`` folder of the code before (e.g.
``mkdir /tmp/old && git archive main src | tar -x -C /tmp/old`` then ``/tmp/old/src``); without
it only this code is timed. Each variant runs in its own long-lived worker process that loads
the analysis, estimates and describes it once, then times ``steps.mechanisms`` on a fresh copy
of the run (as the parallel phase's worker gets it, pipeline/_parallel.py) each time the parent
asks: the variants take turns, ``--reps`` times (>= 5), after one warm-up call each. Prints the
machine load before and after, every time, min and median per variant, and the ratio old/new of
the mins and of the medians; the CPU time of the step (``time.process_time``: less
disturbed by other load) and the seconds of figure drawing (``_svg``) in the fastest call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import dataclasses, sys, time, warnings
warnings.simplefilter("ignore")
from peerstats.pipeline import steps, mechanisms
from peerstats.pipeline._parallel import DICTS, _snapshot
spec, trial = steps.load(sys.argv[1])
run = steps.validate(spec, trial)
steps.estimate(run)
steps.describe(run)
snap = _snapshot(run)
svg = [0.0]
orig = mechanisms._svg
def timed_svg(fig):
    t = time.perf_counter()
    try:
        return orig(fig)
    finally:
        svg[0] += time.perf_counter() - t
mechanisms._svg = timed_svg
def once():
    copy = dataclasses.replace(run, **{n: dict(snap[n]) for n in DICTS},
                               warnings=list(snap["warnings"]))
    svg[0] = 0.0
    t, c = time.perf_counter(), time.process_time()
    steps.mechanisms(copy)
    return time.perf_counter() - t, time.process_time() - c, svg[0]
once()
print("ready", flush=True)
for line in sys.stdin:
    total, cpu, fig = once()
    print(f"{total!r} {cpu!r} {fig!r}", flush=True)
"""


def _start(src: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(src))
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(ROOT / "analyses" / f"{ARGS.analysis}.yaml")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


def _ask(proc: subprocess.Popen) -> tuple[float, float, float]:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    total, cpu, fig = proc.stdout.readline().split()
    return float(total), float(cpu), float(fig)


def main() -> None:
    variants = {"new (this code)": ROOT / "src"}
    if ARGS.old_src:
        variants = {"old": Path(ARGS.old_src).resolve(), **variants}
    print(f"{ARGS.analysis}: mechanisms step, warm; load before {os.getloadavg()}")
    procs = {name: _start(src) for name, src in variants.items()}
    for name, p in procs.items():
        if p.stdout.readline().strip() != "ready":
            sys.exit(f"{name}: worker failed")
    times: dict[str, list[float]] = {name: [] for name in procs}
    cpus: dict[str, list[float]] = {name: [] for name in procs}
    figs: dict[str, list[float]] = {name: [] for name in procs}
    for _ in range(max(5, ARGS.reps)):
        for name, p in procs.items():
            total, cpu, fig = _ask(p)
            times[name].append(total)
            cpus[name].append(cpu)
            figs[name].append(fig)
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"load after {os.getloadavg()}")
    for name, ts in times.items():
        best = min(range(len(ts)), key=ts.__getitem__)
        print(f"  {name:16s} wall min {min(ts):.3f} s  median {statistics.median(ts):.3f} s; "
              f"CPU min {min(cpus[name]):.3f} s; figures (_svg) {figs[name][best]:.3f} s of the "
              "fastest; all " + " ".join(f"{t:.3f}" for t in ts))
    if ARGS.old_src:
        old, new = times["old"], times["new (this code)"]
        print(f"  ratio old/new: wall min {min(old) / min(new):.2f}x, "
              f"median {statistics.median(old) / statistics.median(new):.2f}x; "
              f"CPU min {min(cpus['old']) / min(cpus['new (this code)']):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src", nargs="?")
    parser.add_argument("--analysis", default="peer_recovery")
    parser.add_argument("--reps", type=int, default=7)
    ARGS = parser.parse_args()
    main()
