"""The imputation samplers of ``peerstats run analyses/peer_recovery.yaml``'s sensitivity stage
(SYNTHETIC data, issue 22), before and after a change, with the run's own arguments.

    .venv/bin/python benchmarks/bench_mi_samplers.py --before /tmp/old/src [--runs 7] [--reps 5]

``--before SRC`` is another source tree (e.g. ``git -C /work/main archive HEAD src | tar -x -C
/tmp/old``); without it only this tree is timed. Each run is a fresh process per tree,
interleaved (before, after, before, after, ...). A process builds the run up to the
sensitivity stage (load, validate, estimate; not timed), times the stage (``sensitivity``, in
the order of a real run, so with its first-call imports) while recording the arguments of every
``peerstats.impute``, ``peerstats.impute_multilevel`` and ``peerstats.cace`` call, then times
each recorded call again ``--reps`` times (warm: the best of the reps, wall and CPU time), with
one BLAS thread unless ``--blas-threads`` says otherwise. Printed: min and median
over runs of each row, the before/after ratio of both, the machine load before and after.

The process also hashes every array its calls return (the imputed values, the parameter draws,
the CACE rows; timings left out): the digests of the two trees must agree, i.e. the draws are
bit-identical, and the script says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("impute", "impute_multilevel", "cace")


def _digest(obj, h, depth: int = 0) -> None:
    """Feed every array / frame reachable from ``obj`` into ``h`` (timings left out)."""
    import numpy as np
    import pandas as pd

    if depth > 4:
        return
    if isinstance(obj, np.ndarray):
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj).encode())
    elif isinstance(obj, pd.DataFrame | pd.Series):
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, list | tuple):
        for x in obj[:50]:
            _digest(x, h, depth + 1)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            if k != "seconds":
                _digest(x, h, depth + 1)
    elif hasattr(obj, "__dict__"):
        _digest(vars(obj), h, depth + 1)
    elif isinstance(obj, int | float | str):
        h.update(repr(obj).encode())


def worker(analysis: Path, reps: int) -> dict:
    """One process: the stage's time, each sampler call's warm time, digests of the results."""
    warnings.simplefilter("ignore")
    import peerstats
    from peerstats.pipeline import steps

    spec, trial = steps.load(str(analysis))
    run = steps.validate(spec, trial)
    steps.estimate(run)
    calls = []
    originals = {n: getattr(peerstats, n) for n in NAMES}
    for name, f in originals.items():

        def wrap(*a, _f=f, _n=name, **k):
            t = time.perf_counter()
            r = _f(*a, **k)
            calls.append((_n, time.perf_counter() - t, a, k, r))
            return r

        setattr(peerstats, name, wrap)
    t = time.perf_counter()
    steps.sensitivity(run)
    out = {"sensitivity stage (first run in the process)": time.perf_counter() - t}
    for name, f in originals.items():
        setattr(peerstats, name, f)
    digests = {}
    for i, (name, first, a, k, r) in enumerate(calls):
        label = f"{i + 1}. {name}" + (f" ({k.get('method')})" if name == "impute" else "")
        h = hashlib.sha256()
        _digest(r, h)
        digests[label] = h.hexdigest()[:16]
        ts, cs = [], []
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            originals[name](*a, **k)
            ts.append(time.perf_counter() - t)
            cs.append(time.process_time() - c)
        out[f"{label}: in the stage"] = first
        out[f"{label}: warm, best of {reps}"] = min(ts)
        out[f"{label}: warm CPU, best of {reps}"] = min(cs)
    return {"times": out, "digests": digests}


def _one(src: Path, analysis: Path, reps: int, blas: str | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    if blas:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = blas
    cmd = [sys.executable, __file__, "--worker", "--analysis", str(analysis), "--reps", str(reps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--analysis", type=Path, default=ROOT / "analyses" / "peer_recovery.yaml")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument(
        "--blas-threads",
        default="1",
        help="BLAS threads of the timed processes ('' = the environment's): OpenBLAS threads "
        "spinning on these small matrices make the times mostly noise on a shared machine",
    )
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.analysis, args.reps)))
        return
    trees = {"after": ROOT / "src"}
    if args.before is not None:
        trees = {"before": args.before, "after": ROOT / "src"}
    print("load average:", os.getloadavg(), "cores:", os.cpu_count())
    print("BLAS threads of the timed processes:", args.blas_threads or "as the environment")
    times: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    digests: dict[str, dict] = {}
    for _ in range(args.runs):
        for name, src in trees.items():  # interleaved
            res = _one(src, args.analysis, args.reps, args.blas_threads)
            digests.setdefault(name, res["digests"])
            for row, sec in res["times"].items():
                times[name].setdefault(row, []).append(sec)
    rows = list(dict.fromkeys(r for k in trees for r in times[k]))
    head = " ".join(f"{k + ' min / median':>24s}" for k in trees)
    print(
        f"{'row (seconds)':52s} {head}" + ("   ratio min  ratio median" if len(trees) > 1 else "")
    )
    for r in rows:
        cells = [
            f"{min(times[k][r]):10.3f} {statistics.median(times[k][r]):10.3f}   " for k in trees
        ]
        line = f"{r[:52]:52s} " + " ".join(f"{c:>24s}" for c in cells)
        if len(trees) > 1:
            b, a = times["before"][r], times["after"][r]
            line += (
                f"   {min(b) / min(a):9.2f}x {statistics.median(b) / statistics.median(a):11.2f}x"
            )
        print(line)
    if len(trees) > 1:
        same = digests["before"] == digests["after"]
        print("results bit-identical between the trees:", "yes" if same else f"NO {digests}")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
