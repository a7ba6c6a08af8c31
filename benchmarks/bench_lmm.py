"""Random-intercept LMM speed: peerstats vs statsmodels, lme4 (R) and mixedlm (issue 4).

    .venv/bin/python benchmarks/bench_lmm.py                 # 2,000 and 20,000 subjects
    .venv/bin/python benchmarks/bench_lmm.py --sizes 2000 --no-r

Model: ``y ~ baseline + arm * visit + (1 | id)``, REML, on subjects x 4 visits with ~20% MAR
dropout (_common.make_trial). Timed, side by side in one run:

* peerstats.lmm (df = "satterthwaite"; ``.coef`` read inside the timing so lazily computed df
  count), plus its tracemalloc peak in one more fit;
* statsmodels MixedLM (groups = id, REML);
* lme4::lmer via Rscript, timed inside R around lmer() only;
* mixedlm (PyPI, Rust-backed, lme4-style API: ``mixedlm.lmer(formula, data, REML=True)``),
  installed with the ``bench`` extra.

Python fits: best of ``--repeat`` (3) runs; R: one run. ``--blas-threads N`` as in
bench_mmrm.py.

Issue 4 measured at 20,000 subjects: statsmodels 14.4 s, lme4 1.4 s, mixedlm 0.20 s; target: no
slower than mixedlm. The last table compares the fixed-effect estimates of every tool with
peerstats' (max absolute difference) so that a fast wrong answer shows. Tools that are missing
print "not available".
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import _threads  # noqa: F401  (sets BLAS threads before numpy loads)
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

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

REPEAT = 1  # set from --repeat
FORMULA = "y ~ baseline + arm * visit + (1 | id)"
FIXED = "y ~ baseline + arm * visit"

R_LMER = """
t <- system.time(fit <- lmer(y ~ baseline + arm * visit + (1 | id), data = d, REML = TRUE))[["elapsed"]]
cat(t, "\\n")
"""


def _quiet(fn):
    def wrapped():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return wrapped


def bench_peerstats(d, memory):
    try:
        import peerstats

        lmm = peerstats.lmm
    except (ImportError, AttributeError, NotImplementedError):
        return Measurement(note="not available"), None
    out = {}

    def fit():
        res = lmm(FORMULA, d, method="reml", df="satterthwaite")
        out["coef"] = res.coef["estimate"]
        return res

    try:
        return timed(_quiet(fit), memory=memory, repeat=REPEAT), out.get("coef")
    except Exception as exc:
        return Measurement(note=f"failed: {type(exc).__name__}: {str(exc)[:60]}"), None


def bench_statsmodels(d):
    import statsmodels.formula.api as smf

    obs = d.dropna(subset=["y"])
    out = {}

    def fit():
        res = smf.mixedlm(FIXED, obs, groups=obs["id"]).fit(reml=True)
        out["coef"] = res.fe_params
        return res

    return timed(_quiet(fit), memory=False, repeat=REPEAT), out.get("coef")


def bench_mixedlm(d):
    try:
        import mixedlm
    except ImportError:
        return Measurement(note="not available (pip install mixedlm)"), None
    obs = d.dropna(subset=["y"])
    out = {}

    def fit():
        res = mixedlm.lmer(FORMULA, obs, REML=True)
        out["coef"] = np.array(list(res.fixef().values()))  # lme4 order = formulaic order
        return res

    try:
        return timed(_quiet(fit), memory=False, repeat=REPEAT), out.get("coef")
    except Exception as exc:
        return Measurement(note=f"failed: {type(exc).__name__}: {str(exc)[:60]}"), None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000])
    p.add_argument("--no-r", action="store_true")
    p.add_argument("--r-timeout", type=float, default=600.0)
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="BLAS threads for the Python fitters (default: the library's own)",
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="Python fits: best of this many runs (R: one run)"
    )
    p.add_argument("--no-memory", action="store_true")
    args = p.parse_args(argv)
    global REPEAT
    REPEAT = args.repeat

    print(f"# LMM benchmark: {FORMULA}, REML, 4 visits")
    print(f"# BLAS: {blas_threads()}, load average {os.getloadavg()[0]:.1f}")
    warm = make_trial(60, seed=1)  # imports and JIT-free warm-up of every Python fitter
    bench_peerstats(warm, False)
    bench_statsmodels(warm)
    bench_mixedlm(warm)
    rows, agree = [], []
    for n in args.sizes:
        d = make_trial(n)
        print(f"... {n:,} subjects ({int(d['y'].notna().sum()):,} rows observed)", flush=True)
        ps, b_ps = bench_peerstats(d, not args.no_memory)
        print(f"    peerstats {fmt_s(ps)}", flush=True)
        sm, b_sm = bench_statsmodels(d)
        print(f"    statsmodels {fmt_s(sm)}", flush=True)
        ml, b_ml = bench_mixedlm(d)
        print(f"    mixedlm {fmt_s(ml)}", flush=True)
        r = Measurement(note="skipped (--no-r)") if args.no_r else run_r(R_LMER, d, args.r_timeout)
        print(f"    lme4 {fmt_s(r)}", flush=True)
        rows.append(
            [
                f"{n:,}",
                fmt_s(ps),
                "-" if ps.peak_mib is None else f"{ps.peak_mib:,.1f}",
                fmt_s(sm),
                ratio(sm, ps),
                fmt_s(r),
                ratio(r, ps),
                fmt_s(ml),
                ratio(ml, ps),
            ]
        )
        if b_ps is not None:
            d_sm = d_ml = "-"
            if b_sm is not None and set(b_sm.index) == set(b_ps.index):  # both patsy-style names
                d_sm = f"{np.max(np.abs(b_sm[b_ps.index].to_numpy() - b_ps.to_numpy())):.1e}"
            if b_ml is not None and len(b_ml) == len(b_ps):
                d_ml = f"{np.max(np.abs(b_ml - b_ps.to_numpy())):.1e}"
            agree.append([f"{n:,}", d_sm, d_ml])
    print()
    print_table(
        [
            "subjects",
            "peerstats s",
            "peak MiB",
            "statsmodels s",
            "sm/peer",
            "lme4 s",
            "lme4/peer",
            "mixedlm s",
            "mixedlm/peer",
        ],
        rows,
    )
    if agree:
        print("\nmax |fixed effect - peerstats'|")
        print_table(["subjects", "statsmodels", "mixedlm"], agree)


if __name__ == "__main__":
    main()
