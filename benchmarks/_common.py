"""Shared pieces of the benchmarks: trial data, timing, memory, R via Rscript, table printing."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VISITS = ["V1", "V2", "V3", "V4"]
# residual covariance across the 4 visits: SD 5, 6, 7, 8; correlation 0.6^|i-j| + 0.1
_SD = np.array([5.0, 6.0, 7.0, 8.0])
_CORR = np.array([[1.0 if i == j else 0.6 ** abs(i - j) + 0.1 for j in range(4)] for i in range(4)])
SIGMA = _CORR * np.outer(_SD, _SD)


def make_trial(n_subjects: int, seed: int = 2026, dropout: float = 0.2) -> pd.DataFrame:
    """A two-arm trial in long form: ``id, arm, visit, baseline, y`` (``y`` NaN after dropout).

    Four visits with an unstructured residual covariance (SIGMA), arm effect growing over visits,
    baseline covariate; monotone MAR dropout after visits 1-3 whose chance rises when the last
    observed value is low, calibrated so that about ``dropout`` of the subjects miss the last visit
    (the rows stay in the frame with ``y`` missing, as trial data arrive).
    """
    rng = np.random.default_rng(seed)
    n = n_subjects
    arm = np.where(rng.random(n) < 0.5, "control", "peer")
    baseline = rng.normal(30.0, 8.0, n)
    eps = rng.standard_normal((n, 4)) @ np.linalg.cholesky(SIGMA).T
    mu = 5.0 + 0.8 * baseline[:, None] + np.array([0.0, 1.0, 2.0, 2.5])
    mu = mu + (arm == "peer")[:, None] * np.array([1.0, 2.0, 3.0, 3.5])
    y = mu + eps
    hazard = 1 - (1 - dropout) ** (1 / 3)  # per-visit chance, three chances to leave
    a = np.log(hazard / (1 - hazard))
    alive = np.ones(n, dtype=bool)
    for j in range(3):
        z = np.nan_to_num((y[:, j] - np.nanmean(y[:, j])) / np.nanstd(y[:, j]))
        p = 1 / (1 + np.exp(-(a - 0.5 * z)))
        alive &= rng.random(n) >= p
        y[~alive, j + 1] = np.nan
    return pd.DataFrame(
        {
            "id": np.repeat([f"S{i:07d}" for i in range(n)], 4),
            "arm": np.repeat(arm, 4),
            "visit": np.tile(VISITS, n),
            "visit_num": np.tile(np.arange(1, 5), n),
            "baseline": np.repeat(baseline, 4),
            "y": y.ravel(),
        }
    )


@dataclass
class Measurement:
    seconds: float | None = None
    peak_mib: float | None = None
    note: str = ""


def timed(fn: Callable[[], object], *, memory: bool, repeat: int = 1) -> Measurement:
    """Best wall time of ``repeat`` calls of ``fn()`` (the least disturbed by other load on the
    machine); with ``memory``, one more run under tracemalloc for its peak."""
    seconds = float("inf")
    for _ in range(max(1, repeat)):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        seconds = min(seconds, time.perf_counter() - t0)
    peak = None
    if memory:
        gc.collect()
        tracemalloc.start()
        try:
            fn()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    return Measurement(seconds, peak)


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in info) or "?"
    except ImportError:
        return os.environ.get("OPENBLAS_NUM_THREADS", "library default") + " (OPENBLAS_NUM_THREADS)"


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rscript_available() -> bool:
    return shutil.which("Rscript") is not None


def run_r(
    code: str,
    data: pd.DataFrame,
    timeout: float,
    *,
    libraries: tuple[str, ...] = ("nlme", "lme4"),
    r_libs: str | None = None,
) -> Measurement:
    """Run R ``code`` with the data frame as ``d`` (read from CSV, not timed); the code must
    ``cat()`` the elapsed seconds of the model call (``system.time(...)[["elapsed"]]``).
    ``r_libs``: an extra library folder (e.g. R mmrm built by shared/reference/r-mmrm)."""
    if not rscript_available():
        return Measurement(note="Rscript not found")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if r_libs:
        env["R_LIBS"] = r_libs
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "d.csv"
        data.to_csv(csv, index=False)
        script = Path(tmp) / "fit.R"
        libs = "; ".join(f"library({name})" for name in libraries)
        script.write_text(
            f"suppressPackageStartupMessages({{{libs}}})\n"
            f"d <- read.csv('{csv}', stringsAsFactors = TRUE)\n"
            "d <- d[!is.na(d$y), ]\n" + code
        )
        try:
            out = subprocess.run(
                ["Rscript", str(script)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return Measurement(note=f"R timed out after {timeout:.0f} s")
        if out.returncode != 0:
            return Measurement(note="R failed: " + out.stderr.strip().splitlines()[-1][:80])
        return Measurement(float(out.stdout.strip().split()[-1]))


def fmt_s(m: Measurement | None) -> str:
    if m is None:
        return "-"
    if m.seconds is None:
        return m.note or "-"
    return f"{m.seconds:.3f}"


def ratio(a: Measurement | None, b: Measurement | None) -> str:
    if a is None or b is None or a.seconds is None or b.seconds is None or b.seconds == 0:
        return "-"
    return (
        f"{a.seconds / b.seconds:.0f}x"
        if a.seconds / b.seconds >= 10
        else f"{a.seconds / b.seconds:.2f}x"
    )


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
