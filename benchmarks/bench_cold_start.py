"""Cold start of the model engine (issue 22): wall time of fresh interpreters, min and median of
N runs, interleaved between two source trees (``--before SRC`` e.g. an ``git archive`` of the
previous commit, and this tree), with the machine load printed.

Usage: python benchmarks/bench_cold_start.py [--before /tmp/old/src] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
SNIPPETS = {
    "import peerstats": "import peerstats",
    "peerstats.mmrm": "import peerstats; peerstats.mmrm",
    "mmrm fit + contrast (synthetic)": (
        "import numpy as np, pandas as pd, peerstats\n"
        "rng = np.random.default_rng(1); n = 200\n"
        "d = pd.DataFrame({'id': np.repeat(np.arange(n), 4), 'visit': np.tile(['v1','v2','v3','v4'], n),"
        " 'arm': np.repeat(rng.integers(0, 2, n), 4).astype(str)})\n"
        "d['y'] = rng.normal(size=len(d)) + np.repeat(rng.normal(size=n), 4)\n"
        "f = peerstats.mmrm('y ~ arm * visit', d, subject='id', visit='visit')\n"
        "f.summary()"
    ),
    # the pipeline's logistic outcome (statsmodels GLM; issue 22.3: no statsmodels.api)
    "pipeline logistic outcome fit (synthetic)": (
        "import numpy as np, pandas as pd\n"
        "from peerstats.pipeline.outcomes._glm import fit_glm\n"
        "rng = np.random.default_rng(3)\n"
        "d = pd.DataFrame({'arm': np.repeat(['a', 'b'], 100), 'y': rng.integers(0, 2, 200) * 1.0,"
        " 'x': rng.normal(size=200), 'cluster': np.arange(200)})\n"
        "fit_glm(d, ['x'], family='binomial')"
    ),
}


def run(src: Path, code: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    trees = {"after": HERE} if args.before is None else {"before": args.before, "after": HERE}
    print("load average:", os.getloadavg(), "cores:", os.cpu_count())
    for label, code in SNIPPETS.items():
        times: dict[str, list[float]] = {k: [] for k in trees}
        for _ in range(args.runs):
            for name, src in trees.items():  # interleaved
                times[name].append(run(src, code))
        row = ", ".join(
            f"{k} min {min(v):.3f} s median {statistics.median(v):.3f} s" for k, v in times.items()
        )
        print(f"{label}: {row}")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
