"""The serial start of ``peerstats run analyses/peer_recovery.yaml`` and its exit (issue 22):
from process start to the fork of the figures worker, and from the last step line to the end
of the process, against another peerstats install (``--peer``, e.g. the main checkout's
``.venv/bin/peerstats``) in the same rounds.

Each run is a fresh process; its stderr lines are timestamped as they arrive (the step lines
are flushed when printed). Reported per script, min and median over ``--runs`` interleaved
rounds (the order alternates), with the machine load before each round:

- ``loaded``: the line ``loading and validating the trial ... done`` (imports + load);
- ``fork``: the line ``... (second core) ... started`` (everything serial);
- ``tail``: from the line ``writing <folder> ... done`` to the exit of the process (the
  warnings printed, the interpreter's teardown);
- ``wall``: process start to exit;
- ``cpu_fork``: CPU seconds (user + system, all threads) of the process when the fork line
  arrives (read from ``/proc``, 10 ms ticks; less sensitive to the machine's load than the
  wall times); ``cpu_all``: of the whole run, the worker included.

The ratio peer / this checkout of the minima is printed for ``fork`` and ``wall``. Both runs
read the bundled SYNTHETIC example; their output folders are compared file by file
(``manifest.json`` aside): they must be identical. This checkout's ``src`` is byte-compiled
first (``compileall``), so that a ``PYTHONDONTWRITEBYTECODE`` environment compares like with
like.

Usage: python benchmarks/bench_startup.py --peer /path/to/other/.venv/bin/peerstats [--runs 7]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = {
    "loaded": "loading and validating the trial",
    "fork": "(second core) ... started",
    "written": "writing /",  # the folder (not "writing the report")
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process so far (all its threads; Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(script: str, analysis: Path, out: Path) -> dict[str, float]:
    """Seconds from start to each mark, the exit tail and the wall time of one run; the CPU
    seconds of the process up to the fork line and of the whole run (worker included)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([script, "run", str(analysis), "--out", str(out), "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.perf_counter() - t0
        for key, text in MARKS.items():
            if key not in seen and text in line and (key != "written" or "... done" in line):
                seen[key] = now
                if key == "fork":
                    seen["cpu_fork"] = cpu_seconds(proc.pid)
    proc.wait()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed with exit status {proc.returncode}")
    return {"loaded": seen["loaded"], "fork": seen.get("fork", float("nan")),
            "cpu_fork": seen.get("cpu_fork", float("nan")),
            "tail": wall - seen["written"], "wall": wall,
            "cpu_all": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}


def differing(a: Path, b: Path) -> list[str]:
    """Files that differ between two result folders (``manifest.json`` aside: times)."""
    files = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    return sorted(str(f) for f in files if f.name != "manifest.json" and (
        not (a / f).is_file() or not (b / f).is_file()
        or (a / f).read_bytes() != (b / f).read_bytes()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True, help="the other install's peerstats script")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--analysis", type=Path, default=ROOT / "analyses" / "peer_recovery.yaml")
    args = ap.parse_args()
    compileall.compile_dir(ROOT / "src", quiet=1)
    ours = str(Path(sys.executable).parent / "peerstats")
    scripts = {"this": ours, "peer": args.peer}
    times: dict[str, list[dict[str, float]]] = {k: [] for k in scripts}
    with tempfile.TemporaryDirectory() as tmp:
        for name, script in scripts.items():  # warm the file cache
            one_run(script, args.analysis, Path(tmp) / name)
        for i in range(args.runs):
            print(f"round {i + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
            for name in (("this", "peer") if i % 2 == 0 else ("peer", "this")):
                times[name].append(one_run(scripts[name], args.analysis, Path(tmp) / name))
        diff = differing(Path(tmp) / "this", Path(tmp) / "peer")
    print(f"\n{'':5} {'measure':8} {'min':>7} {'median':>7}")
    for name in scripts:
        for key in ("loaded", "fork", "cpu_fork", "tail", "wall", "cpu_all"):
            vals = [t[key] for t in times[name]]
            print(f"{name:5} {key:8} {min(vals):7.3f} {statistics.median(vals):7.3f}   "
                  + " ".join(f"{v:.2f}" for v in vals))
    for key in ("fork", "cpu_fork", "wall", "cpu_all"):
        this, peer = (min(t[key] for t in times[n]) for n in ("this", "peer"))
        print(f"{key}: peer - this = {peer - this:+.3f} s (min), ratio peer/this {peer / this:.3f}")
    print("load average at the end:", os.getloadavg())
    print("outputs identical" if not diff else f"outputs DIFFER: {diff}")


if __name__ == "__main__":
    main()
