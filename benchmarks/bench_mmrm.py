"""MMRM speed and memory: peerstats vs R nlme::gls and statsmodels MixedLM (issue 3).

    .venv/bin/python benchmarks/bench_mmrm.py                      # 200 ... 1,000,000 subjects
    .venv/bin/python benchmarks/bench_mmrm.py --sizes 200 2000 --max-r 2000

For each size (subjects x 4 visits, ~20% monotone MAR dropout, see _common.make_trial) it fits
``y ~ baseline + arm * visit`` and prints, side by side from the same run:

* peerstats.mmrm, unstructured covariance, REML, Satterthwaite df: wall time of the fit plus
  reading ``.coef`` (so lazily computed df are included), best of ``--repeat`` (3) fits, and the
  peak of Python/numpy memory during one more fit (tracemalloc);
* R nlme::gls with corSymm + varIdent (the same unstructured REML model), timed inside R around
  the gls() call only (reading the CSV is not timed), where Rscript exists and the size is at most
  ``--max-r`` (default 20,000; issue 3 measured 5.3 s at 2,000 and ~98 s at 20,000);
* statsmodels MixedLM, random intercept per subject, REML (it has no residual covariance
  structure; the Python baseline of the issue), up to ``--max-statsmodels`` (default 20,000:
  beyond that it takes minutes to hours).

``--blas-threads 1`` pins OpenBLAS to one thread: on a busy 2-core machine (other processes
running) multi-threaded BLAS on these small matrices oversubscribes the cores and can make the
peerstats fit several times slower; the header prints the BLAS threads and the load average.

Targets (issue 3): 20,000 subjects in under 0.2 s and >= 500x nlme; 1,000,000 in under 10 s and
4 GiB. Missing tools and skipped sizes are printed as such; if peerstats.mmrm does not exist yet
the peerstats column says "not available" and the rest still runs.
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from pathlib import Path

import _threads  # noqa: F401  (sets BLAS threads before numpy loads)

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    Measurement,
    blas_threads,
    fmt_s,
    make_trial,
    max_rss_mib,
    print_table,
    ratio,
    run_r,
    timed,
)

REPEAT = 1  # set from --repeat
FORMULA = "y ~ baseline + arm * visit"

R_GLS = """
t <- system.time(fit <- gls(y ~ baseline + arm * visit, data = d,
    correlation = corSymm(form = ~ visit_num | id), weights = varIdent(form = ~ 1 | visit),
    method = "REML"))[["elapsed"]]
cat(t, "\\n")
"""


def peerstats_mmrm():
    try:
        import peerstats

        return peerstats.mmrm
    except (ImportError, AttributeError, NotImplementedError):
        return None


def bench_peerstats(data, memory: bool) -> Measurement:
    mmrm = peerstats_mmrm()
    if mmrm is None:
        return Measurement(note="not available")

    def fit():
        res = mmrm(
            FORMULA,
            data,
            subject="id",
            visit="visit",
            covariance="us",
            method="reml",
            df="satterthwaite",
        )
        res.coef  # noqa: B018 - df may be computed lazily
        return res

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timed(fit, memory=memory, repeat=REPEAT)
    except Exception as exc:  # report, keep benchmarking the others
        return Measurement(note=f"failed: {type(exc).__name__}: {str(exc)[:60]}")


def bench_statsmodels(data) -> Measurement:
    import statsmodels.formula.api as smf

    d = data.dropna(subset=["y"])

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return smf.mixedlm(FORMULA, d, groups=d["id"]).fit(reml=True)

    return timed(fit, memory=False, repeat=REPEAT)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 2_000, 20_000, 1_000_000])
    p.add_argument("--max-r", type=int, default=20_000, help="largest size fitted with R")
    p.add_argument("--max-statsmodels", type=int, default=20_000)
    p.add_argument("--r-timeout", type=float, default=900.0, help="seconds per R fit")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="BLAS threads for the Python fitters (default: the library's own)",
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="Python fits: best of this many runs (R: one run)"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    args = p.parse_args(argv)
    global REPEAT
    REPEAT = args.repeat

    print(f"# MMRM benchmark: {FORMULA}, 4 visits, unstructured, REML, Satterthwaite")
    print(
        f"# Python {platform.python_version()} on {platform.machine()}, {_cpus()} CPUs, "
        f"BLAS: {blas_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    warm = make_trial(60, seed=1)  # first calls pay for imports: warm both Python fitters up
    bench_peerstats(warm, memory=False)
    bench_statsmodels(warm)
    rows = []
    for n in args.sizes:
        data = make_trial(n)
        observed = int(data["y"].notna().sum())
        print(f"... {n:,} subjects ({observed:,} of {len(data):,} rows observed)", flush=True)
        ps = bench_peerstats(data, memory=not args.no_memory)
        print(f"    peerstats: {fmt_s(ps)} s", flush=True)
        r = (
            run_r(R_GLS, data, args.r_timeout)
            if n <= args.max_r
            else Measurement(note=f"skipped (> --max-r {args.max_r:,})")
        )
        print(f"    R nlme::gls: {fmt_s(r)}", flush=True)
        sm = (
            bench_statsmodels(data)
            if n <= args.max_statsmodels
            else Measurement(note=f"skipped (> {args.max_statsmodels:,})")
        )
        print(f"    statsmodels: {fmt_s(sm)}", flush=True)
        rows.append(
            [
                f"{n:,}",
                f"{observed:,}",
                fmt_s(ps),
                "-" if ps.peak_mib is None else f"{ps.peak_mib:,.1f}",
                fmt_s(r),
                ratio(r, ps),
                fmt_s(sm),
                ratio(sm, ps),
            ]
        )
    print()
    print_table(
        [
            "subjects",
            "obs",
            "peerstats s",
            "peak MiB",
            "nlme::gls s",
            "nlme/peer",
            "statsmodels RI s",
            "sm/peer",
        ],
        rows,
    )
    print(f"\nprocess max RSS {max_rss_mib():,.0f} MiB (data generation included)")
    print("peak MiB: tracemalloc peak of Python/numpy allocations during one peerstats fit.")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
