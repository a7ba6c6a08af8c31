"""The "writing <folder>" stage of ``peerstats run`` (issue 22): ``write_results(run, out)`` on
one computed run of ``analyses/peer_recovery.yaml`` (the bundled SYNTHETIC example), tables as
CSV and Word, figures, results.json, report and manifest.

Each source tree gets one worker process that computes the run once and then writes the
folder on request; the parent asks the workers in turn (interleaved), ``--repeats`` times, and
prints min and median of each, the ratio in the same run, and the machine load before and
after. The first write of a worker is reported apart ("first"): a real ``peerstats run`` writes
once, in a process that has not written a Word document before (python-docx imported and the
template made then). Later writes are "warm"; a table cache of the older writer
(``peerstats.describe.word._BUILT``) is emptied before each, as in a real run.

``--before SRC`` is another tree's ``src`` (e.g. ``git archive <rev> src | tar -x -C /tmp/old``);
``--before-rev REV`` does that for you. Without either, only this tree is timed.

Usage: python benchmarks/bench_write.py [--before-rev f12b880 | --before /tmp/old/src]
       [--repeats 7] [--analysis analyses/peer_recovery.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = r"""
import importlib, os, shutil, sys, tempfile, time
R = importlib.import_module("peerstats.pipeline.run")
W = importlib.import_module("peerstats.describe.word")
run = R.run_analysis(sys.argv[1])
tmp = tempfile.mkdtemp()
print("ready", flush=True)
for k, line in enumerate(sys.stdin):
    out = os.path.join(tmp, f"w{k}")
    getattr(W, "_BUILT", {}).clear()
    t = time.perf_counter()
    R.write_results(run, out)
    print(time.perf_counter() - t, flush=True)
    shutil.rmtree(out)
shutil.rmtree(tmp)
"""


class Worker:
    """A process holding one computed run of ``analysis`` with the peerstats of ``src``."""

    def __init__(self, src: Path, analysis: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(src))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(analysis)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=analysis.parent.parent,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the worker of {src} did not start")

    def write(self) -> float:
        self.proc.stdin.write("write\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _before_src(args: argparse.Namespace, tmp: str) -> Path | None:
    if args.before:
        return Path(args.before)
    if not args.before_rev:
        return None
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.before_rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return Path(tmp) / "src"


def _row(name: str, times: list[float]) -> str:
    return f"{name:10s} min {min(times):.3f} s  median {statistics.median(times):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another tree's src folder")
    parser.add_argument("--before-rev", help="a git revision whose src is the other tree")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--analysis", default=str(ROOT / "analyses" / "peer_recovery.yaml"))
    args = parser.parse_args()
    analysis = Path(args.analysis).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        before = _before_src(args, tmp)
        trees = {"this": ROOT / "src"} | ({"before": before} if before else {})
        print(f"load before: {os.getloadavg()}")
        workers = {name: Worker(src, analysis) for name, src in trees.items()}
        first = {name: w.write() for name, w in workers.items()}
        warm: dict[str, list[float]] = {name: [] for name in workers}
        for _ in range(args.repeats):
            for name, w in workers.items():
                warm[name].append(w.write())
        for w in workers.values():
            w.close()
        print(f"load after:  {os.getloadavg()}")
    print(f"write_results of {analysis.name}, {args.repeats} interleaved repeats")
    for name in workers:
        print(f"{_row(name, warm[name])}  first in process {first[name]:.3f} s")
    if "before" in workers:
        ratio_min = min(warm["before"]) / min(warm["this"])
        ratio_med = statistics.median(warm["before"]) / statistics.median(warm["this"])
        print(
            f"before / this: {ratio_min:.2f}x (min), {ratio_med:.2f}x (median), "
            f"{first['before'] / first['this']:.2f}x (first write)"
        )


if __name__ == "__main__":
    main()
