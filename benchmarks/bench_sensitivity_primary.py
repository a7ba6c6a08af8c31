"""Run time of the peer_recovery imputation rows (mi-jr, mi-multilevel; SYNTHETIC data) with the
primary partially nested model refitted per imputed data set (issue 20.3) against the old
per-visit ANCOVA, interleaved, in fresh processes.

    .venv/bin/python benchmarks/bench_sensitivity_primary.py [OLD_SRC] [REPS]

OLD_SRC is a ``src`` folder of the code before (e.g. ``git archive <commit> src | tar -x``);
without it the ANCOVA is timed through ``analysis_model: ancova`` in the same code. Prints the
machine load, each time, and min / median per variant and their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN = "import sys, warnings; warnings.simplefilter('ignore'); from peerstats.pipeline import run_analysis; import json; run_analysis(json.load(open(sys.argv[1])))"


def _spec(model: str | None) -> dict:
    spec = yaml.safe_load((ROOT / "analyses" / "peer_recovery.yaml").read_text())
    for key in ("economics", "subgroups", "mediation"):
        spec.pop(key, None)
    spec["figures"], spec["tables"] = [], []
    spec["sensitivity"] = [
        s for s in spec["sensitivity"] if s["name"] in ("mi-jr", "mi-multilevel")
    ]
    if model is not None:
        for s in spec["sensitivity"]:
            s["analysis_model"] = model
    return spec


def _time(spec: dict, src: str | None) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, f.name], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    old_src = sys.argv[1] if len(sys.argv) > 1 else None
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    variants = {
        "ancova" + (" (old code)" if old_src else ""): (
            _spec(None if old_src else "ancova"),
            old_src,
        ),
        "primary model": (_spec(None), None),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(reps):
        for name, (spec, src) in variants.items():
            times[name].append(_time(spec, src))
            print(f"rep {r + 1} {name}: {times[name][-1]:.1f} s  load {os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        print(f"{name}: min {min(ts):.1f} s, median {statistics.median(ts):.1f} s")
    a, b = times.values()
    print(
        f"ratio primary / ancova: min {min(b) / min(a):.2f}, median "
        f"{statistics.median(b) / statistics.median(a):.2f}"
    )


if __name__ == "__main__":
    main()
