"""Wall time of the figures step of ``analyses/peer_recovery.yaml`` (``peerstats.pipeline.
steps.figures``: CONSORT, trajectories, survival curves, forests, change, diagnostics,
attendance; issue 22), interleaved between two source trees (``--before SRC``, e.g. a ``git
archive`` of main's ``src``, and this tree), min and median, machine load printed before and
after. Data: the bundled SYNTHETIC example.

Each round starts one fresh process per tree (alternating which goes first); the process loads,
validates, fits and describes the analysis, then calls the figures step ``--calls`` times on the
same run (the first call, after the imports ``peerstats run`` makes before it forks the
figures' worker (``pipeline._parallel.PRELOAD``), as in that worker, is reported apart as
"first"; the later ones are "warm"; the garbage collector set as ``peerstats run`` sets it,
``cli._long_lived_heap``: the heap frozen before and after each step, young collections every
20,000 allocations), and reports the wall and CPU time of each call and the SHA-256 of
every figure, which must be the same in both trees (byte-identical SVG).

Usage: python benchmarks/bench_figures.py [--before /tmp/old/src] [--rounds 5] [--calls 6]
       [--analysis analyses/peer_recovery.yaml] [--step figures|mechanisms]
Without ``--before`` only this tree is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "src"

CHILD = r"""
import hashlib, json, sys, time
from peerstats.pipeline import steps
analysis, calls, step = sys.argv[1], int(sys.argv[2]), getattr(steps, sys.argv[3])
spec, trial = steps.load(analysis)
run = steps.validate(spec, trial)
steps.estimate(run)
steps.describe(run)
try:  # what peerstats run imports before forking the figures' worker
    import importlib
    from peerstats.pipeline._parallel import PRELOAD
    for m in PRELOAD:
        importlib.import_module(m)
except ImportError:
    pass
import gc  # the collector as `peerstats run` sets it (cli._long_lived_heap): what the earlier
gc.freeze()  # steps left is frozen, young collections every 20,000 allocations, a freeze
gc.set_threshold(20_000, 50, 100)  # after each step
before = dict(run.figures), dict(run.figure_captions)
wall, cpu = [], []
for _ in range(calls):
    run.figures.clear(); run.figures.update(before[0])
    run.figure_captions.clear(); run.figure_captions.update(before[1])
    t0, c0 = time.perf_counter(), time.process_time()
    step(run)
    wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    gc.freeze()
sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in run.figures.items()}
print(json.dumps({"wall": wall, "cpu": cpu, "sha": sha}))
"""


def child(src: Path, analysis: Path, calls: int, step: str = "figures") -> dict:
    """One fresh process on the tree ``src``: times of ``calls`` steps, figure hashes."""
    env = dict(os.environ, PYTHONPATH=str(src), MPLBACKEND="agg")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(analysis), str(calls), step],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, xs: list[float]) -> str:
    return (
        f"  {name:<26} min {min(xs):6.3f} s  median {statistics.median(xs):6.3f} s  (n={len(xs)})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, help="the src directory of the tree to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=6, help="figure steps per process (>= 2)")
    ap.add_argument("--analysis", type=Path, default=ROOT / "analyses" / "peer_recovery.yaml")
    ap.add_argument(
        "--step",
        default="figures",
        choices=("figures", "mechanisms"),
        help="the step timed (mechanisms: the other step of the figures' worker, whose "
        "figures go through the same SVG drawing)",
    )
    a = ap.parse_args(argv)
    trees = {"this tree": HERE} | ({"before": a.before.resolve()} if a.before else {})
    print(f"load before: {os.getloadavg()}")
    res: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    shas: dict[str, dict] = {}
    child(HERE, a.analysis, 2)  # compile the bytecode of this tree once
    for r in range(a.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        for t in order:
            out = child(trees[t], a.analysis, max(2, a.calls), a.step)
            shas[t] = out["sha"]
            d = res[t]
            d.setdefault("first (wall)", []).append(out["wall"][0])
            d.setdefault("warm (wall)", []).extend(out["wall"][1:])
            d.setdefault("warm (cpu)", []).extend(out["cpu"][1:])
            d.setdefault("warm min per process", []).append(min(out["wall"][1:]))
    print(f"load after:  {os.getloadavg()}")
    print(f"{a.step} step of {a.analysis.name}, {a.rounds} rounds x {a.calls} calls")
    for t, d in res.items():
        print(f"{t} ({trees[t]}):")
        for k, xs in d.items():
            print(_row(k, xs))
    if a.before:
        new, old = res["this tree"], res["before"]
        for k in ("first (wall)", "warm (wall)", "warm (cpu)"):
            print(
                f"ratio before/this tree, {k}: min {min(old[k]) / min(new[k]):.2f}x, "
                f"median {statistics.median(old[k]) / statistics.median(new[k]):.2f}x"
            )
        same = shas["this tree"] == shas["before"]
        print(f"figures byte-identical in both trees: {same} ({len(shas['this tree'])} figures)")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
