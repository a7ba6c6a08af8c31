"""Multiple imputation speed (issue 9) and a coverage simulation of the imputation methods.

    .venv/bin/python benchmarks/bench_mi.py --blas-threads 1            # speed table
    .venv/bin/python benchmarks/bench_mi.py --coverage --sims 200       # + coverage table
    .venv/bin/python benchmarks/bench_mi.py --no-dask --no-r            # quick

Speed, on a 300-participant, 3-visit trial with ~20% monotone dropout (``make_trial3``), JR for
every dropout in the intervention arm (reference: control), ANCOVA ``y ~ arm + baseline`` per
visit, best of ``--repeat`` runs:

* condmean-jackknife with JR (1 + 300 refits of the prepared MMRM) + analysis: target < 0.5 s;
* bayes with 1,000 imputations (Gibbs draws + imputation) + analysis + pooling: target < 2 s;
* a 21 x 21 two-arm tipping-point grid on 100 bayes imputations: target < 20 s locally; the same
  grid through a ``dask.distributed.LocalCluster`` of 2 worker processes (cluster start-up not
  timed) must give identical numbers (checked and printed);
* R baselines (Rscript, OMP 1 thread): the same jackknife on ``nlme::gls`` (unstructured REML:
  ``corSymm`` + ``varIdent``; ``--r-jack`` leave-one-out fits timed, scaled to 301 fits), and
  ``mice`` (``norm``, Bayesian linear regression, m = 100) + ``lm`` per visit + ``pool``.

Coverage (``--coverage``): MNAR dropout of known form. Complete outcomes are generated, then
intervention-arm participants who drop out lose the intervention effect from their dropout visit
on (their unobserved outcomes follow the control-arm mean with the same residual correlation:
jump to reference is the true post-dropout model), and dropout depends on the last observed
value. The estimand is the treatment-policy contrast at the last visit (ANCOVA on the complete
outcomes), whose true value is computed from 400,000 simulated participants. Each method's
bias, empirical SD, mean SE and 95% CI coverage over ``--sims`` trials are printed: MAR is
biased (it carries the effect forward), JR methods are unbiased; condmean intervals use the
jackknife / bootstrap SE.
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import _threads  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import pandas as pd
from _common import blas_threads, fmt_s, print_table, ratio, run_r, timed

import peerstats

VISITS3 = ["V1", "V2", "V3"]
SIGMA3 = np.array([[25.0, 18.0, 15.0], [18.0, 36.0, 26.0], [15.0, 26.0, 49.0]])
EFFECT = np.array([1.0, 2.0, 3.0])


def make_trial3(
    n: int, seed: int = 2026, dropout: float = 0.2, jr_truth: bool = False, complete: bool = False
):
    """Two arms x 3 visits; monotone dropout after V1/V2 depending on the last value (MAR in
    the observed data), ~``dropout`` of subjects missing V3. ``jr_truth``: intervention-arm
    dropouts lose the effect from their dropout visit on (MNAR of known form). Returns the long
    frame (and, with ``complete``, the complete outcomes and arm)."""
    rng = np.random.default_rng(seed)
    arm = np.where(np.arange(n) % 2 == 0, "control", "peer")
    base = rng.normal(30.0, 8.0, n)
    eps = rng.standard_normal((n, 3)) @ np.linalg.cholesky(SIGMA3).T
    mu0 = 5.0 + 0.8 * base[:, None] + np.array([0.0, 1.0, 2.0])
    treat = (arm == "peer")[:, None]
    y = mu0 + treat * EFFECT + eps
    hazard = 1 - (1 - dropout) ** 0.5
    a = np.log(hazard / (1 - hazard))
    drop = np.full(n, 3)
    for j in range(2):
        z = (y[:, j] - mu0[:, j]) / np.sqrt(SIGMA3[j, j])
        p = 1 / (1 + np.exp(-(a - 0.5 * z)))
        leave = (drop == 3) & (rng.random(n) < p)
        drop[leave] = j + 1
    full = y.copy()
    if jr_truth:
        post = np.arange(3)[None, :] >= drop[:, None]
        full = np.where(post & treat, mu0 + eps, y)  # the effect is lost after dropout
    obs = np.where(np.arange(3)[None, :] >= drop[:, None], np.nan, full)
    df = pd.DataFrame(
        {
            "id": np.repeat([f"S{i:05d}" for i in range(n)], 3),
            "arm": np.repeat(arm, 3),
            "visit": np.tile(VISITS3, n),
            "baseline": np.repeat(base, 3),
            "y": obs.ravel(),
        }
    )
    df["arm"] = pd.Categorical(df["arm"], ["control", "peer"])
    df["visit"] = pd.Categorical(df["visit"], VISITS3)
    ids = np.array([f"S{i:05d}" for i in range(n)])
    sel = (drop < 3) & (arm == "peer")
    ice = pd.DataFrame({"id": ids[sel], "visit": [VISITS3[k] for k in drop[sel]], "strategy": "JR"})
    if complete:
        return df, ice, full, arm, base
    return df, ice


FORMULA = "y ~ arm * visit + baseline"
KW = dict(subject="id", visit="visit", arm="arm")


def speed(args) -> None:
    df, ice = make_trial3(300, seed=2026)
    print(
        f"trial: 300 subjects x 3 visits, {df['y'].isna().groupby(df['visit'], observed=True).sum().to_dict()} "
        f"missing; JR ICEs: {len(ice)}"
    )
    rows = []

    def jack():
        imp = peerstats.impute(
            FORMULA, df, method="condmean-jackknife", ice=ice, reference={"peer": "control"}, **KW
        )
        imp.analyse(covariates=["baseline"])

    m_jack = timed(jack, memory=False, repeat=args.repeat)

    def bayes():
        imp = peerstats.impute(
            FORMULA,
            df,
            method="bayes",
            n_imputations=1000,
            ice=ice,
            reference={"peer": "control"},
            seed=1,
            **KW,
        )
        imp.analyse(covariates=["baseline"])

    m_bayes = timed(bayes, memory=False, repeat=args.repeat)
    imp100 = peerstats.impute(
        FORMULA,
        df,
        method="bayes",
        n_imputations=100,
        ice=ice,
        reference={"peer": "control"},
        seed=2,
        **KW,
    )
    grid = {"control": np.linspace(-10, 10, 21), "peer": np.linspace(-10, 10, 21)}
    tp_holder = {}

    def grid_local():
        tp_holder["local"] = peerstats.tipping_point(imp100, grid, covariates=["baseline"])

    m_grid = timed(grid_local, memory=False, repeat=args.repeat)
    m_dask, same = None, "not run"
    if not args.no_dask:
        from dask.distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):

            def grid_dask():
                tp_holder["dask"] = peerstats.tipping_point(
                    imp100, grid, covariates=["baseline"], client=client
                )

            m_dask = timed(grid_dask, memory=False, repeat=args.repeat)
        same = str(
            bool(
                np.array_equal(
                    tp_holder["local"].table.to_numpy(dtype=float),
                    tp_holder["dask"].table.to_numpy(dtype=float),
                )
            )
        )
    r_jack = r_mice = None
    if not args.no_r:
        k = args.r_jack
        code = (
            "d$visit <- factor(d$visit); d$arm <- relevel(factor(d$arm), 'control')\n"
            "ids <- unique(d$id)\n"
            "fit1 <- function(dd) gls(y ~ arm * visit + baseline, data = dd, method = 'REML',\n"
            "  correlation = corSymm(form = ~ as.integer(visit) | id),\n"
            "  weights = varIdent(form = ~ 1 | visit))\n"
            f"el <- system.time(for (i in seq_len({k})) fit1(d[d$id != ids[i], ]))[['elapsed']]\n"
            f"cat(el * 301 / {k})\n"
        )
        r_jack = run_r(code, df, timeout=args.r_timeout)
        if r_jack.seconds is not None:
            r_jack.note = f"{k} fits x 301/{k}"
        code_mice = (
            "suppressPackageStartupMessages(library(mice))\n"
            "d$visit <- factor(d$visit); d$arm <- relevel(factor(d$arm), 'control')\n"
            "w <- reshape(d[, c('id','arm','baseline','visit','y')], idvar = c('id','arm','baseline'),\n"
            "             timevar = 'visit', direction = 'wide')\n"
            "el <- system.time({ imp <- mice(w[, -1], m = 100, method = 'norm', printFlag = FALSE,\n"
            "  seed = 1); for (v in c('y.V1','y.V2','y.V3')) pool(with(imp,\n"
            "  lm(as.formula(paste(v, '~ arm + baseline'))))) })[['elapsed']]\ncat(el)\n"
        )
        d_all = df.copy()
        d_all["y"] = d_all["y"].fillna(-9999)  # run_r drops NA rows; restore NA in R
        code_mice = "d$y[d$y == -9999] <- NA\n" + code_mice
        r_mice = run_r(code_mice, d_all, timeout=args.r_timeout)
    rows = [
        [
            "condmean-jackknife JR (1 + 300 refits) + analysis",
            fmt_s(m_jack),
            "< 0.5",
            "nlme::gls jackknife "
            + fmt_s(r_jack)
            + (f" ({r_jack.note})" if r_jack and r_jack.note else ""),
            ratio(r_jack, m_jack),
        ],
        [
            "bayes 1,000 imputations + analysis + pooling",
            fmt_s(m_bayes),
            "< 2",
            "mice norm m=100 + lm + pool " + fmt_s(r_mice),
            ratio(r_mice, m_bayes),
        ],
        ["21 x 21 tipping grid, 100 imputations, local", fmt_s(m_grid), "< 20", "", ""],
        ["same grid, LocalCluster 2 processes", fmt_s(m_dask), "", f"identical: {same}", ""],
    ]
    print(f"BLAS: {blas_threads()}; load average {os.getloadavg()[0]:.1f}")
    print_table(["task", "peerstats s", "target s", "R baseline s", "R / peerstats"], rows)


def coverage(args) -> None:
    n = args.n
    big, _, full, arm, base = make_trial3(400_000, seed=99, jr_truth=True, complete=True)
    X = np.column_stack([np.ones(len(arm)), arm == "peer", base]).astype(float)
    truth = np.linalg.lstsq(X, full[:, 2], rcond=None)[0][1]
    methods = {
        "MAR bayes (M=50)": dict(method="bayes", n_imputations=50, mar=True),
        "JR bayes (M=50)": dict(method="bayes", n_imputations=50),
        "JR approx-bayes (M=50)": dict(method="approx-bayes", n_imputations=50),
        "JR condmean-jackknife": dict(method="condmean-jackknife"),
        "JR condmean-bootstrap (B=100)": dict(method="condmean-bootstrap", n_imputations=100),
        "JR bootstrap-ml (B=50, D=2)": dict(method="bootstrap-ml", n_imputations=(50, 2)),
    }
    res = {k: [] for k in methods}
    t0 = time.perf_counter()
    for s in range(args.sims):
        df, ice = make_trial3(n, seed=1000 + s, jr_truth=True)
        for name, m in methods.items():
            kw = {k: v for k, v in m.items() if k != "mar"}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    imp = peerstats.impute(
                        FORMULA,
                        df,
                        ice=None if m.get("mar") else ice,
                        reference={"peer": "control"},
                        seed=s,
                        **kw,
                        **KW,
                    )
                    r = imp.analyse(covariates=["baseline"], bootstrap="normal").iloc[-1]
                    res[name].append((r["estimate"], r["std_error"], r["ci_lower"], r["ci_upper"]))
                except peerstats.PeerstatsError as exc:
                    res[name].append((np.nan,) * 4)
                    print(f"  sim {s} {name}: {exc}", file=sys.stderr)
    rows = []
    for name, v in res.items():
        a = np.array(v, dtype=float)
        ok = np.isfinite(a[:, 0])
        a = a[ok]
        cover = np.mean((a[:, 2] <= truth) & (truth <= a[:, 3]))
        rows.append(
            [
                name,
                f"{a[:, 0].mean() - truth:+.3f}",
                f"{a[:, 0].std(ddof=1):.3f}",
                f"{a[:, 1].mean():.3f}",
                f"{cover:.3f}",
                f"{int((~ok).sum())}",
            ]
        )
    print(
        f"\ncoverage: {args.sims} trials of {n} subjects, true treatment-policy effect at V3 "
        f"{truth:.3f} (JR-type MNAR dropout), {time.perf_counter() - t0:.0f} s"
    )
    print_table(["method", "bias", "empirical SD", "mean SE", "95% CI coverage", "failed"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=None)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--r-jack", type=int, default=20, help="gls leave-one-out fits timed in R")
    ap.add_argument("--r-timeout", type=float, default=600)
    ap.add_argument("--coverage", action="store_true")
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--n", type=int, default=200, help="subjects per simulated trial")
    args = ap.parse_args()
    speed(args)
    if args.coverage:
        coverage(args)


if __name__ == "__main__":
    main()
