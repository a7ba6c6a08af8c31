"""MMRM speed side by side: peerstats vs R mmrm, R nlme::gls and statsmodels (issues 3 and 10).

    .venv/bin/python benchmarks/bench_mmrm.py                     # every scenario, every tool
    .venv/bin/python benchmarks/bench_mmrm.py --scenarios fev 1000x10 --skip-nlme 1000x10
    .venv/bin/python benchmarks/bench_mmrm.py --threads-only        # the BLAS thread table only

Scenarios (``y ~ baseline + arm * visit``, unstructured covariance, REML, Satterthwaite df;
two arms, baseline covariate, ~20% monotone MAR dropout):

* ``fev``: 200 subjects x 4 visits (the size of R mmrm's FEV data; _common.make_trial);
* ``1000x10``: 1,000 subjects x 10 visits, 55 covariance parameters (the issue 10 case; R mmrm
  published 3.36 s, SAS PROC GLIMMIX 36 s);
* ``20000``: 20,000 subjects x 4 visits;
* ``1000000``: 1,000,000 subjects x 4 visits (peerstats only; not in the default list).

Tools, timed in the same run on the same data:

* peerstats.mmrm (the fit plus reading ``.coef``, so that the Satterthwaite df are included),
  best of ``--repeat`` (3) fits;
* R mmrm 0.3.18 (``mmrm(... + us(visit | id), reml = TRUE, method = "Satterthwaite")`` and
  ``summary()`` for the df), from the library built by ``shared/reference/r-mmrm/build.sh``
  (``--rmmrm-lib``, default /tmp/rmmrm-lib), timed inside R with ``system.time`` (reading the
  CSV is not timed);
* R nlme::gls with corSymm + varIdent (the same unstructured REML model), timed inside R;
* statsmodels MixedLM with a random intercept (it has no residual covariance structures: the
  Python baseline, a different and smaller model).

Ratios are tool / peerstats (> 1: peerstats faster). Targets (issue 10): 1000x10 and fev at
least 5x faster than R mmrm, 20000 under 0.2 s.

BLAS threads (issue 10, item 2): peerstats chooses them itself with threadpoolctl (one thread for
its small batched operations; the library's threads only for the pooled cross products of very
large data on a machine with a core to spare). The second table times the same peerstats fits
(a) as shipped, (b) with every BLAS call at the library's default threads (the engine's choice
switched off) and (c) with one BLAS thread throughout, on the idle machine and under a
background load that the benchmark starts itself (one busy-loop process per core), so that
"as shipped is never slower than one thread" can be read off.

The machine should be otherwise idle; the header prints the load average at the start.
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import _threads  # noqa: F401  (sets BLAS threads before numpy loads)

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import pandas as pd
from _common import (
    Measurement,
    blas_threads,
    fmt_s,
    make_trial,
    print_table,
    ratio,
    run_r,
    timed,
)

REPEAT = 3
FORMULA = "y ~ baseline + arm * visit"
SCENARIOS = {
    "fev": (200, 4),
    "1000x10": (1_000, 10),
    "20000": (20_000, 4),
    "1000000": (1_000_000, 4),
}

R_MMRM = """
d$visit <- factor(d$visit); d$arm <- factor(d$arm); d$id <- factor(d$id)
t <- system.time({
  fit <- mmrm(y ~ baseline + arm * visit + us(visit | id), data = d, reml = TRUE,
              method = "Satterthwaite")
  s <- summary(fit)
})[["elapsed"]]
cat(t, "\\n")
"""

R_GLS = """
t <- system.time(fit <- gls(y ~ baseline + arm * visit, data = d,
    correlation = corSymm(form = ~ visit_num | id), weights = varIdent(form = ~ 1 | visit),
    method = "REML"))[["elapsed"]]
cat(t, "\\n")
"""


def make_data(n: int, T: int, seed: int = 2026) -> pd.DataFrame:
    """``n`` subjects x ``T`` visits: make_trial for 4 visits; for other T the same design with
    SD rising from 5 to 8, correlation 0.6^|i-j| + 0.1, ~20% monotone dropout."""
    if T == 4:
        return make_trial(n, seed=seed)
    rng = np.random.default_rng(seed)
    sd = np.linspace(5.0, 8.0, T)
    corr = np.array(
        [[1.0 if i == j else 0.6 ** abs(i - j) + 0.1 for j in range(T)] for i in range(T)]
    )
    arm = np.where(rng.random(n) < 0.5, "control", "peer")
    base = rng.normal(30.0, 8.0, n)
    y = 5.0 + 0.8 * base[:, None] + np.linspace(0.0, 3.0, T)
    y = y + (arm == "peer")[:, None] * np.linspace(1.0, 4.0, T)
    y = y + rng.standard_normal((n, T)) @ np.linalg.cholesky(corr * np.outer(sd, sd)).T
    hazard = 1 - 0.8 ** (1 / (T - 1))
    alive = np.ones(n, dtype=bool)
    for j in range(1, T):
        alive &= rng.random(n) >= hazard
        y[~alive, j] = np.nan
    visits = [f"V{j + 1:02d}" for j in range(T)]
    return pd.DataFrame(
        {
            "id": np.repeat([f"S{i:07d}" for i in range(n)], T),
            "arm": np.repeat(arm, T),
            "visit": np.tile(visits, n),
            "visit_num": np.tile(np.arange(1, T + 1), n),
            "baseline": np.repeat(base, T),
            "y": y.ravel(),
        }
    )


def fit_peerstats(data):
    import peerstats

    res = peerstats.mmrm(
        FORMULA, data, subject="id", visit="visit", covariance="us", df="satterthwaite"
    )
    res.coef  # noqa: B018 - the df
    return res


def bench_peerstats(data, repeat: int) -> Measurement:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timed(lambda: fit_peerstats(data), memory=False, repeat=repeat)
    except Exception as exc:  # report, keep benchmarking the others
        return Measurement(note=f"failed: {type(exc).__name__}: {str(exc)[:60]}")


def bench_statsmodels(data, repeat: int) -> Measurement:
    import statsmodels.formula.api as smf

    d = data.dropna(subset=["y"])

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return smf.mixedlm(FORMULA, d, groups=d["id"]).fit(reml=True)

    return timed(fit, memory=False, repeat=repeat)


# ---- BLAS threads ---------------------------------------------------------------------------
@contextlib.contextmanager
def thread_mode(mode: str):
    """'shipped': peerstats' own choice; 'default': the engine's choice switched off (library
    threads everywhere); 'one': one BLAS thread throughout."""
    from threadpoolctl import threadpool_limits

    import peerstats.models._reml as reml
    import peerstats.models.prepared as prepared

    saved = reml.blas_threads
    try:
        if mode == "shipped":
            yield
        elif mode == "default":
            off = lambda **kw: contextlib.nullcontext()  # noqa: E731
            reml.blas_threads = prepared.blas_threads = off
            yield
        else:
            with threadpool_limits(limits=1, user_api="blas"):
                yield
    finally:
        reml.blas_threads = prepared.blas_threads = saved


@contextlib.contextmanager
def background_load(n: int):
    """``n`` busy-loop processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, n))]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def thread_table(names: list[str], repeat: int) -> None:
    cores = _cpus()
    rows = []
    for name in names:
        n, T = SCENARIOS[name]
        data = make_data(n, T)
        for load in ("idle", "loaded"):
            with background_load(cores if load == "loaded" else 0):
                res = {}
                for mode in ("shipped", "default", "one"):
                    with thread_mode(mode):
                        res[mode] = bench_peerstats(data, repeat)
            rows.append(
                [
                    name,
                    load,
                    fmt_s(res["shipped"]),
                    fmt_s(res["default"]),
                    fmt_s(res["one"]),
                    ratio(res["shipped"], res["one"]),
                ]
            )
            print(
                f"    threads {name} {load}: " + " / ".join(fmt_s(res[m]) for m in res), flush=True
            )
    print()
    print(
        f"BLAS threads: peerstats as shipped vs library threads vs one thread ({cores} cores; "
        f"'loaded' = {cores} busy-loop processes started by the benchmark)"
    )
    print_table(
        ["scenario", "machine", "shipped s", "library threads s", "1 thread s", "shipped/1thr"],
        rows,
    )


# ---- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--scenarios", nargs="+", default=["fev", "1000x10", "20000"], choices=list(SCENARIOS)
    )
    p.add_argument("--repeat", type=int, default=3, help="Python fits: best of this many runs")
    p.add_argument("--r-timeout", type=float, default=600.0, help="seconds per R fit")
    p.add_argument("--rmmrm-lib", default="/tmp/rmmrm-lib", help="library folder with R mmrm")
    p.add_argument("--skip-nlme", nargs="*", default=[], help="scenarios without nlme::gls")
    p.add_argument("--skip-statsmodels", nargs="*", default=[], help="scenarios without it")
    p.add_argument("--no-r", action="store_true", help="no R tools")
    p.add_argument("--threads-only", action="store_true", help="only the BLAS thread table")
    p.add_argument("--no-threads", action="store_true", help="skip the BLAS thread table")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set BLAS threads before numpy loads (default: the library's)",
    )
    args = p.parse_args(argv)

    print(f"# MMRM benchmark: {FORMULA}, unstructured, REML, Satterthwaite")
    print(
        f"# Python {platform.python_version()} on {platform.machine()}, {_cpus()} CPUs, "
        f"BLAS: {blas_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    warm = make_trial(60, seed=1)  # first calls pay for imports
    bench_peerstats(warm, 1)
    if not args.threads_only:
        rows = []
        for name in args.scenarios:
            n, T = SCENARIOS[name]
            data = make_data(n, T)
            observed = int(data["y"].notna().sum())
            print(
                f"... {name}: {n:,} subjects x {T} visits ({observed:,} rows observed)", flush=True
            )
            ps = bench_peerstats(data, args.repeat)
            print(f"    peerstats: {fmt_s(ps)}", flush=True)
            big = n > 20_000
            if args.no_r or big:
                rm = gl = Measurement(note="skipped")
            else:
                rm = run_r(R_MMRM, data, args.r_timeout, libraries=("mmrm",), r_libs=args.rmmrm_lib)
                print(f"    R mmrm: {fmt_s(rm)}", flush=True)
                gl = (
                    Measurement(note="skipped")
                    if name in args.skip_nlme
                    else run_r(R_GLS, data, args.r_timeout, libraries=("nlme",))
                )
                print(f"    R nlme::gls: {fmt_s(gl)}", flush=True)
            sm = (
                Measurement(note="skipped")
                if big or name in args.skip_statsmodels
                else bench_statsmodels(data, 1)
            )
            print(f"    statsmodels: {fmt_s(sm)}", flush=True)
            rows.append(
                [
                    name,
                    f"{n:,} x {T}",
                    f"{observed:,}",
                    fmt_s(ps),
                    fmt_s(rm),
                    ratio(rm, ps),
                    fmt_s(gl),
                    ratio(gl, ps),
                    fmt_s(sm),
                    ratio(sm, ps),
                ]
            )
        print()
        print_table(
            [
                "scenario",
                "subjects x visits",
                "obs",
                "peerstats s",
                "R mmrm s",
                "mmrm/peer",
                "nlme::gls s",
                "nlme/peer",
                "statsmodels RI s",
                "sm/peer",
            ],
            rows,
        )
        print("\nTargets: mmrm/peer >= 5 for fev and 1000x10; peerstats < 0.2 s for 20000.")
    if not args.no_threads:
        thread_table([s for s in args.scenarios if s != "1000000"], args.repeat)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
