"""The tipping-point stage of ``peerstats run analyses/peer_recovery.yaml`` (SYNTHETIC data,
issue 22): 13 deltas x 20 imputations = 260 refits of the primary partially nested LMM with
Rubin's rules, against the same computation with nlme::lme in R (bench_sensitivity_fast.R).

    .venv/bin/python benchmarks/bench_sensitivity_fast.py [ROUNDS]

Both sides get the same 260 completed datasets (the run's own imputations with each delta
applied) and are timed after their data are in memory: peerstats ``tipping`` (the pipeline's
step: prepared design, batched refits warm-started along the grid, Satterthwaite df, Rubin's
rules with Barnard-Rubin df) against R's 260 ``lme`` fits, the contrast and Rubin's rules
(nlme has no Satterthwaite df, so R does less). Interleaved rounds; min and median of each,
their ratio, the machine load. Also prints the largest difference of the pooled estimate and
standard error between the two (nlme stops at its own tolerance).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _inputs():
    """The run's tipping-point imputations, the primary model's refitter and its grid."""
    from peerstats.pipeline import _sensitivity_run as sr
    from peerstats.pipeline import steps
    from peerstats.pipeline.run import Progress, _now

    quiet = Progress(enabled=False)
    spec, trial = steps.load(ROOT / "analyses" / "peer_recovery.yaml", progress=quiet)
    run = steps.validate(spec, trial, blinded=False, started=_now(), key=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        steps.estimate(run, progress=quiet)
        work = sr._start(run)
        i, s = next((i, s) for i, s in enumerate(spec.sensitivity) if s.method == "tipping-point")
        imp, _ = sr._impute(run, s, i, work)
    return run, work, imp, s


def _csv(run, work, imp, s, path: Path) -> None:
    """The 260 completed datasets (cell, imputation, the primary model's columns)."""
    from peerstats.pipeline._sensitivity_model import primary_analyser

    an = primary_analyser(run, work.outcome, work.reference, "")
    parts = []
    for k, delta in enumerate(s.delta["peer"]):
        shifted = imp.with_delta({"peer": float(delta)})
        for m, d in enumerate(shifted.datasets):
            parts.append(an.data(d).assign(cell=k, imputation=m + 1))
    pd.concat(parts).to_csv(path, index=False)


def _peerstats(run, work, imp, s) -> tuple[float, pd.DataFrame]:
    from peerstats.pipeline._sensitivity_model import primary_analyser, tipping

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        an = primary_analyser(run, work.outcome, work.reference, "")  # fresh: no cached design
        tp = tipping(imp, an, s.delta, s.visit or run.spec.primary_visit)
    return time.perf_counter() - t, tp.table


def _r(csv: Path) -> tuple[float, pd.DataFrame, dict]:
    script = ROOT / "benchmarks" / "bench_sensitivity_fast.R"
    out = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True,
                         check=True)  # fmt: skip
    res = json.loads(out.stdout)
    return res["seconds"], pd.DataFrame(res["table"]), {"R": res["R"], "nlme": res["nlme"]}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    run, work, imp, s = _inputs()
    times: dict[str, list[float]] = {"peerstats": [], "nlme": []}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "tipping_sets.csv"
        _csv(run, work, imp, s, csv)
        _peerstats(run, work, imp, s)  # warm-up (imports, first-call caches)
        for r in range(rounds):
            tp, ours = _peerstats(run, work, imp, s)
            tr, theirs, versions = _r(csv)
            times["peerstats"].append(tp)
            times["nlme"].append(tr)
            print(f"round {r + 1}: peerstats {tp:.3f} s, nlme {tr:.3f} s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    for name, ts in times.items():
        print(f"{name}: min {min(ts):.3f} s, median {statistics.median(ts):.3f} s")
    a, b = times["nlme"], times["peerstats"]
    print(f"ratio nlme / peerstats: min {min(a) / min(b):.1f}x, median "
          f"{statistics.median(a) / statistics.median(b):.1f}x  ({versions})")  # fmt: skip
    for c in ("estimate", "std_error"):
        x, y = ours[c].to_numpy(float), theirs[c].to_numpy(float)
        print(f"pooled {c}: max rel difference to nlme {np.max(np.abs(x - y) / np.abs(y)):.2e}")


if __name__ == "__main__":
    main()
