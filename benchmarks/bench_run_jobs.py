"""Wall time of ``peerstats run analyses/peer_recovery.yaml`` with the figures on a second core
(``--jobs 2``, issue 22) against the sequential run (``--jobs 1``): fresh processes,
interleaved, min and median over ``--runs``, the ratio in the same run, the machine load before
and after each pair, and the CPU time (user + system of the run and its worker). The output
folders of the last pair are compared file by file (``manifest.json`` without its times and
source digest): they must be identical. Data: the bundled SYNTHETIC example.

Usage: python benchmarks/bench_run_jobs.py [--runs 7] [--analysis analyses/peer_recovery.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = "import sys; from peerstats.cli import main; sys.exit(main())"
# the command line names --jobs and --out; the times differ
VOLATILE = ("started", "finished", "duration_seconds", "command")


def run(jobs: int, analysis: Path, out: Path) -> tuple[float, float]:
    """One fresh ``peerstats run --jobs N``: wall and CPU seconds (children included)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PEERSTATS_JOBS", None)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CODE, "run", str(analysis), "--out", str(out), "--force",
         "--quiet", "--jobs", str(jobs)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def same_outputs(a: Path, b: Path) -> list[str]:
    """Files that differ between two result folders (manifest: times and outputs aside)."""
    files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
    differ = []
    for f in files:
        if not (a / f).exists() or not (b / f).exists():
            differ.append(str(f))
        elif f.name == "manifest.json":
            ma, mb = (json.loads((x / f).read_text()) for x in (a, b))
            if {k: v for k, v in ma.items() if k not in VOLATILE} != {
                k: v for k, v in mb.items() if k not in VOLATILE
            }:
                differ.append(str(f))
        elif (a / f).read_bytes() != (b / f).read_bytes():
            differ.append(str(f))
    return differ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--analysis", type=Path, default=ROOT / "analyses" / "peer_recovery.yaml")
    args = ap.parse_args()
    print("load average:", os.getloadavg(), "cores:", os.cpu_count())
    wall: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        run(2, args.analysis, Path(tmp) / "warm")  # bytecode, file cache
        for i in range(args.runs):
            order = (1, 2) if i % 2 == 0 else (2, 1)  # interleaved, alternating first
            for jobs in order:
                w, c = run(jobs, args.analysis, Path(tmp) / f"jobs{jobs}")
                wall[jobs].append(w)
                cpu[jobs].append(c)
            print(f"pair {i + 1}: jobs=1 {wall[1][-1]:.2f} s, jobs=2 {wall[2][-1]:.2f} s, "
                  f"load {os.getloadavg()[0]:.2f}")
        differ = same_outputs(Path(tmp) / "jobs1", Path(tmp) / "jobs2")
    for jobs in (1, 2):
        print(f"jobs={jobs}: wall min {min(wall[jobs]):.2f} s, median "
              f"{statistics.median(wall[jobs]):.2f} s; cpu min {min(cpu[jobs]):.2f} s, median "
              f"{statistics.median(cpu[jobs]):.2f} s")
    print(f"ratio jobs=1 / jobs=2 (wall): min {min(wall[1]) / min(wall[2]):.2f}, median "
          f"{statistics.median(wall[1]) / statistics.median(wall[2]):.2f}")
    print("outputs identical (manifest times aside):" if not differ else "OUTPUTS DIFFER:",
          differ or "yes")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
