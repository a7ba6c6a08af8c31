"""The sensitivity and cost-effectiveness steps of ``analyses/peer_recovery.yaml`` (issue 22):
this source tree against a peer: the ``src`` of a git revision (``--peer-rev``, default the
merge base with ``main``, exported with ``git archive`` to a temporary folder) or a source
folder (``--peer SRC``), in the same run.

Each round starts one fresh process per tree (interleaved: this, peer, this, peer, ...). The
process loads, validates, estimates and describes the run once, then times
``steps.sensitivity`` + ``steps.economics`` on ``--calls`` copies of the run (as the parallel
run's parent does: ``pipeline/_parallel._snapshot``); the first call (imports such as
linearmodels, caches) and the warm calls are reported separately. Min and median over the
rounds, the ratio peer / this in the same run, and the machine load (``os.getloadavg``) before
and after; ``cpu`` is the process CPU time of the warm calls (less sensitive than the wall
time to other processes on a shared machine). The results of the two trees are compared (``results.json`` sections
``sensitivity``, ``tipping_point``, ``economics`` as JSON text and the SVG of the four
figures): they must be identical. Data: the bundled SYNTHETIC example.

With ``--run``, also the wall time of whole fresh ``peerstats run --jobs 2`` processes of the
analysis (the parent runs these two steps while the worker draws the figures), interleaved the
same way.

Usage: python benchmarks/bench_sensitivity_step.py [--rounds 5] [--calls 3] [--peer SRC] [--run]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "analyses" / "peer_recovery.yaml"

CHILD = r"""
import dataclasses, hashlib, importlib, json, sys, time
from peerstats.pipeline import _parallel, steps
for m in _parallel.PRELOAD:
    importlib.import_module(m)
spec, trial = steps.load(sys.argv[1])
run = steps.validate(spec, trial)
steps.estimate(run)
steps.describe(run)

def copy():
    snap = _parallel._snapshot(run)
    return dataclasses.replace(run, **{n: dict(snap[n]) for n in _parallel.DICTS},
                               warnings=list(snap["warnings"]))

times = []
for _ in range(int(sys.argv[2])):
    c = copy()
    c0, t0 = time.process_time(), time.perf_counter()
    steps.sensitivity(c)
    t1 = time.perf_counter()
    steps.economics(c)
    t2, c2 = time.perf_counter(), time.process_time()
    times.append((t1 - t0, t2 - t1, c2 - c0))
res = {k: c.results.get(k) for k in ("sensitivity", "tipping_point", "economics")}
digest = hashlib.sha256(json.dumps(res, sort_keys=True, default=str).encode())
for name in ("sensitivity_forest", "tipping_point", "ce_plane", "ceac"):
    digest.update(c.figures.get(name, "").encode())
import peerstats
print(json.dumps({"times": times, "digest": digest.hexdigest(), "file": peerstats.__file__}))
"""


def one(src: Path, calls: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), PEERSTATS_JOBS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as an installed package
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ANALYSIS), str(calls)],
        env=env, check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_run(src: Path, out: Path) -> float:
    """Wall seconds of one fresh ``peerstats run --jobs 2`` with the tree ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PEERSTATS_JOBS", None)
    code = "import sys; from peerstats.cli import main; sys.exit(main())"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, "run", str(ANALYSIS), "--out", str(out), "--force",
         "--quiet", "--jobs", "2"],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    return time.perf_counter() - t0


def summary(xs: list[float]) -> str:
    return f"min {min(xs):.3f}  median {statistics.median(xs):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3, help="calls per process (first + warm)")
    ap.add_argument("--peer", default=None, help="the peer's src folder")
    ap.add_argument("--peer-rev", default=None, help="git revision (default: merge base)")
    ap.add_argument("--run", action="store_true", help="also whole peerstats run walls")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(args.peer) if args.peer else export(args.peer_rev, Path(tmp))
        bench(args, {"this": ROOT / "src", "peer": peer})


def export(rev: str | None, tmp: Path) -> Path:
    """``src`` of ``rev`` (default the merge base of HEAD and main) in ``tmp``."""
    git = ["git", "-C", str(ROOT)]
    if rev is None:
        rev = subprocess.run([*git, "merge-base", "HEAD", "main"], check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    archive = subprocess.run([*git, "archive", rev, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    print(f"peer: src of {rev[:12]}")
    return tmp / "src"


def bench(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    got: dict[str, dict[str, list[float]]] = {k: {"first": [], "warm": [], "sens": [],
                                                  "econ": [], "cpu": []} for k in trees}  # fmt: skip
    digests: dict[str, set[str]] = {k: set() for k in trees}
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    for r in range(args.rounds):
        for name, src in trees.items():
            res = one(src, args.calls)
            tot = [s + e for s, e, _ in res["times"]]
            got[name]["first"].append(tot[0])
            got[name]["warm"].extend(tot[1:])
            got[name]["sens"].extend(s for s, _, _ in res["times"][1:])
            got[name]["econ"].extend(e for _, e, _ in res["times"][1:])
            got[name]["cpu"].extend(c for _, _, c in res["times"][1:])
            digests[name].add(res["digest"])
            if r == 0:
                print(f"{name}: {res['file']}")
        print(f"round {r + 1}: load {os.getloadavg()[0]:.2f}")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print(f"sensitivity + economics of {ANALYSIS.name}, seconds "
          f"({args.rounds} rounds x {args.calls} calls)")  # fmt: skip
    for part in ("first", "warm", "sens", "econ", "cpu"):
        for name in trees:
            print(f"  {part:5s} {name:4s} {summary(got[name][part])}")
        ratio = min(got["peer"][part]) / min(got["this"][part])
        med = statistics.median(got["peer"][part]) / statistics.median(got["this"][part])
        print(f"  {part:5s} peer/this: min-ratio {ratio:.2f}x  median-ratio {med:.2f}x")
    same = digests["this"] == digests["peer"] and len(digests["this"]) == 1
    print("results and figures identical:", same)
    if args.run:
        runs(args, trees)
    if not same:
        sys.exit(1)


def runs(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    """Whole ``peerstats run --jobs 2`` walls, interleaved."""
    walls: dict[str, list[float]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, src in trees.items():
                walls[name].append(whole_run(src, Path(tmp) / name))
            print(f"run round {r + 1}: load {os.getloadavg()[0]:.2f}")
    print(f"peerstats run {ANALYSIS.name} --jobs 2, wall seconds ({args.rounds} rounds)")
    for name in trees:
        print(f"  run   {name:4s} {summary(walls[name])}")
    print(
        f"  run   peer/this: min-ratio {min(walls['peer']) / min(walls['this']):.2f}x  "
        f"median-ratio {statistics.median(walls['peer']) / statistics.median(walls['this']):.2f}x"
    )


if __name__ == "__main__":
    main()
