"""Wall time of ``peerstats run analyses/peer_recovery.yaml`` per stage (issue 22 target: < 4 s
on a quiet machine), interleaved between two source trees (``--before SRC``, e.g. a ``git
archive`` of the previous commit's ``src``, and this tree), min and median over ``--runs``
fresh processes, with the machine load printed before and after. Data: the bundled SYNTHETIC
example.

Each printed stage (0.1 s resolution, as ``peerstats run`` prints it), the time before the
first stage and after the last, the wall time minus the sensitivity stages, CPU time and wall.

Usage: python benchmarks/bench_run_stages.py [--before /tmp/old/src] [--runs 5]
       [--analysis analyses/peer_recovery.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "src"
STAGE = re.compile(r"^(?P<stage>.+?) \.\.\. done \((?P<sec>[\d.]+) s\)$")
# main() reads sys.argv as the console script does (and so ends as it does: see cli.main)
CODE = "import sys; from peerstats.cli import main; sys.exit(main())"


def run(src: Path, analysis: Path) -> tuple[float, dict[str, float]]:
    """One fresh ``peerstats run``: total wall time and the seconds of each printed stage; the
    process's CPU time (user + system, less sensitive to a loaded machine) is stage "cpu".
    Each stage line is time-stamped as it arrives, giving the time before the first stage
    (interpreter start and imports) and after the last (writing warnings, exit). Bytecode is
    written (``PYTHONDONTWRITEBYTECODE`` removed; a warm-up run compiles it): a shell that sets
    it recompiles peerstats on every run."""
    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CODE, "run", str(analysis), "--out", f"{tmp}/x", "--force"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stamped = [(time.perf_counter() - t0, line) for line in proc.stderr]
        if proc.wait() != 0:
            raise RuntimeError("".join(line for _, line in stamped))
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stages: dict[str, float] = {
        "cpu (user + system)": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    }
    first = last = None
    for at, line in stamped:
        m = STAGE.match(line.strip())
        if m:
            name = re.sub(r"^writing /\S+", "writing the folder", m.group("stage"))
            stages[name] = stages.get(name, 0.0) + float(m.group("sec"))
            first = at - float(m.group("sec")) if first is None else first
            last = at
    if first is not None:
        stages["before the first stage (start, imports)"] = first
        stages["after the last stage (warnings, exit)"] = wall - last
        sens = sum(v for k, v in stages.items() if k.startswith("sensitivity "))
        stages["wall minus the sensitivity stages"] = wall - sens
    return wall, stages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--analysis", type=Path, default=ROOT / "analyses" / "peer_recovery.yaml")
    args = ap.parse_args()
    trees = {"after": HERE} if args.before is None else {"before": args.before, "after": HERE}
    print("load average:", os.getloadavg(), "cores:", os.cpu_count())
    for src in trees.values():  # compile the bytecode of each tree (not timed)
        run(src, args.analysis)
    walls: dict[str, list[float]] = {k: [] for k in trees}
    stages: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    for i in range(args.runs):
        print(f"round {i + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
        for name, src in trees.items():  # interleaved
            wall, st = run(src, args.analysis)
            walls[name].append(wall)
            for s, sec in st.items():
                stages[name].setdefault(s, []).append(sec)
    names = list(dict.fromkeys(s for k in trees for s in stages[k]))
    print(f"{'stage':60s} " + " ".join(f"{k + ' min/median':>22s}" for k in trees))
    for s in names:
        cells = []
        for k in trees:
            v = stages[k].get(s)
            cells.append(f"{min(v):9.3f} {statistics.median(v):9.3f} s" if v else " " * 22)
        print(f"{s[:60]:60s} " + " ".join(f"{c:>22s}" for c in cells))
    for k in trees:
        v = walls[k]
        print(f"wall ({k}): min {min(v):.2f} s, median {statistics.median(v):.2f} s")
    if len(trees) == 2:
        ratios = [b / a for b, a in zip(walls["before"], walls["after"], strict=True)]
        print(
            f"wall before / after, same round: min {min(ratios):.2f}x, "
            f"median {statistics.median(ratios):.2f}x"
        )
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
