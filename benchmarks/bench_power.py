"""Power simulation speed and the type I error of the partially nested analysis (issue 11).

Prints four tables:

1. fits per second of the batched REML fitter on one core (BLAS pinned to one thread) for a
   300-participant trial (baseline, post, 3-month follow-up; baseline covariate; dropout 10% /
   20%): the MMRM (unstructured) and the partially nested model (groups of 10 in the peer arm,
   ICC 0.05; arm-specific unstructured covariance + delivery-group intercept); simulation of the
   data is timed separately;
2. analytic 50-point power curves (MMRM, partially nested);
3. R side by side, fitting the *same* simulated trials (written to CSV): nlme::gls (corSymm +
   varIdent, REML) for the MMRM (same model; the largest estimate difference is printed) and
   lme4::lmer ``(1 | subject) + (0 + delivered | group)`` for the partially nested design (the
   model simr users would fit; not the same covariance model, so the ratio is indicative);
4. simulated type I error under the null of the partially nested design: the partially nested
   model with Satterthwaite df vs an MMRM that ignores the delivery groups (few groups inflate
   the latter; DOMAIN.md, Candlish et al. 2018).

Run: ``.venv/bin/python benchmarks/bench_power.py [--sims 2000] [--r-trials 50] [--no-r]``.
A benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import _threads  # noqa: F401  (BLAS threads from --blas-threads before numpy loads)
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import peerstats
from peerstats import TrialDesign
from peerstats.design._model import AnalysisModel
from peerstats.design.simulate import summarise

BASE = dict(
    visits=["baseline", "post", "fu3"],
    arms=["usual", "peer"],
    sd={"baseline": 11, "post": 12, "fu3": 12},
    correlation=("ar1", 0.6),
    effect={"post": 5, "fu3": 4},
    dropout={"post": 0.10, "fu3": 0.20},
    primary="post",
    baseline="covariate",
)
GROUPS = {"arm": "peer", "size": 10, "icc": 0.05}


def fits_per_second(design: TrialDesign, n: int, n_sims: int, chunk: int = 100) -> dict:
    model = AnalysisModel(design)
    rng = np.random.default_rng(1)
    t_sim = t_fit = 0.0
    done = fails = 0
    with threadpool_limits(1, "blas"):
        while done < n_sims:
            k = min(chunk, n_sims - done)
            t0 = time.perf_counter()
            raw = model.draw(n, k, rng)
            fitter = model.build(raw["y_alt"], raw)
            t1 = time.perf_counter()
            res = fitter.fit(model.psi_true, model.ell, df=design.df)
            t2 = time.perf_counter()
            t_sim += t1 - t0
            t_fit += t2 - t1
            done += k
            fails += int((~res["converged"]).sum())
    return {
        "fits": n_sims,
        "fit_s": t_fit,
        "fits_per_s": n_sims / t_fit,
        "with_simulation_per_s": n_sims / (t_fit + t_sim),
        "not_converged": fails,
    }


def curve_time(design: TrialDesign, repeat: int = 3) -> float:
    ns = list(range(20, 520, 10))
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        peerstats.power_curve(design, ns)
        best = min(best, time.perf_counter() - t0)
    return best


R_SCRIPT = r"""
suppressMessages({library(nlme); library(lme4)})
args <- commandArgs(TRUE)
d <- read.csv(args[1]); kind <- args[2]
d$visit <- factor(d$visit, levels = c("post", "fu3")); d$arm <- factor(d$arm, levels = c("usual", "peer"))
d$vnum <- as.integer(d$visit)
sims <- split(d, d$sim)
est <- numeric(length(sims))
t <- system.time(for (i in seq_along(sims)) {
  s <- sims[[i]]
  if (kind == "mmrm") {
    f <- gls(y ~ visit + arm:visit + baseline:visit, data = s, method = "REML",
             correlation = corSymm(form = ~ vnum | subject), weights = varIdent(form = ~ 1 | visit))
    est[i] <- coef(f)[["visitpost:armpeer"]]
  } else {
    f <- lmer(y ~ visit + arm:visit + baseline:visit + (1 | subject) + (0 + delivered | group),
              data = s, REML = TRUE)
    est[i] <- fixef(f)[["visitpost:armpeer"]]
  }
})[["elapsed"]]
cat(sprintf("%.6f\n", t)); cat(sprintf("%.10f\n", est))
"""


def r_side_by_side(design: TrialDesign, n: int, trials: int, kind: str) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    model = AnalysisModel(design)
    raw = model.draw(n, trials, np.random.default_rng(7))
    frames = []
    for s in range(trials):
        df = model.to_frame(raw, s)
        df = df[(df.visit != "baseline") & df.y.notna()].copy()
        df["sim"] = s
        df["group"] = df["group"].fillna(-1).astype(int)
        frames.append(df)
    data = pd.concat(frames)
    with threadpool_limits(1, "blas"):
        fitter = model.build(raw["y_alt"], raw)
        t0 = time.perf_counter()
        fitter.fit(model.psi_true, model.ell)
        t_py = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "sims.csv"
        data.to_csv(csv, index=False)
        script = Path(tmp) / "fit.R"
        script.write_text(R_SCRIPT)
        out = subprocess.run(
            ["Rscript", str(script), str(csv), kind],
            capture_output=True, text=True, timeout=3600,
            env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "R failed"}
    lines = out.stdout.split()
    t_r = float(lines[0])
    est_r = np.array([float(x) for x in lines[1:]])
    # our ell tests fu3 or post: the R scripts extract the post contrast
    post_idx = model.columns.index("peer:visit[post]")
    ell = np.zeros(model.p)
    ell[post_idx] = 1.0
    res_post = fitter.fit(model.psi_true, ell)
    return {
        "trials": trials,
        "peerstats_s": t_py,
        "R_s": t_r,
        "ratio": t_r / t_py,
        "max_abs_diff_post_estimate": float(np.max(np.abs(res_post["estimate"] - est_r))),
    }


def type1_error(n: int, icc: float, size: int, n_sims: int) -> dict:
    d = TrialDesign(**{**BASE, "groups": {"arm": "peer", "size": size, "icc": icc}})
    nested = AnalysisModel(d)
    flat = AnalysisModel(d.replace(groups=None))
    rng = np.random.default_rng(2026)
    rows = {"nested": [], "ignored": []}
    with threadpool_limits(1, "blas"):
        done = 0
        while done < n_sims:
            k = min(100, n_sims - done)
            raw = nested.draw(n, k, rng)
            for name, model in (("nested", nested), ("ignored", flat)):
                raw_m = dict(raw, group_of=raw["group_of"] if model is nested else [None, None])
                res = model.build(raw["y_null"], raw_m).fit(model.psi_true, model.ell)
                rows[name].append(res)
            done += k
    out = {"n_per_arm": n, "groups": f"{int(np.ceil(n / size))} x {size}", "icc": icc}
    for name, parts in rows.items():
        res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "psi"}
        summary = summarise(
            {
                "alt_estimate": res["estimate"], "alt_std_error": res["std_error"],
                "alt_df": res["df"], "alt_converged": res["converged"],
                "null_estimate": res["estimate"], "null_std_error": res["std_error"],
                "null_df": res["df"], "null_converged": res["converged"],
                "target": np.array([0.0]),
            },
            0.05,
        )
        out[f"type1_{name}"] = summary["null_rate"]
        out[f"mc_se_{name}"] = summary["null_mc_se"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=2000, help="fits per speed measurement")
    ap.add_argument("--type1-sims", type=int, default=4000)
    ap.add_argument("--r-trials", type=int, default=50)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--blas-threads", default=None, help="(read by _threads before numpy loads)")
    args = ap.parse_args()

    mmrm = TrialDesign(**BASE)
    pn = TrialDesign(**BASE, groups=GROUPS)
    print("1. Batched REML fits, 300 participants (150 per arm), 3 visits, dropout 10%/20%, one core")
    rows = []
    for name, d, target in (("MMRM (us)", mmrm, 1000), ("partially nested", pn, 200)):
        r = fits_per_second(d, 150, args.sims)
        rows.append({"model": name, **r, "target_per_s": target})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))

    print("\n2. Analytic 50-point power curve (n = 20..510 per arm), best of 3")
    print(
        pd.DataFrame(
            [
                {"model": "MMRM (us)", "seconds": curve_time(mmrm), "target_s": 0.1},
                {"model": "partially nested", "seconds": curve_time(pn), "target_s": 0.1},
            ]
        ).to_string(index=False, float_format=lambda x: f"{x:.4g}")
    )

    if not args.no_r:
        print(f"\n3. R fitting the same {args.r_trials} simulated trials (single-threaded BLAS)")
        rows = []
        for name, d, kind in (("MMRM: nlme::gls corSymm+varIdent", mmrm, "mmrm"),
                              ("partially nested: lme4::lmer RI + group", pn, "pn")):
            r = r_side_by_side(d, 150, args.r_trials, kind)
            rows.append({"R model": name, **(r or {"error": "Rscript not found"})})
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print("(ratio = R seconds / peerstats seconds; the lmer model has a different covariance "
              "structure, so its estimate difference is not a check)")

    print(f"\n4. Type I error at alpha 0.05 under the null, {args.type1_sims} simulated trials each")
    rows = [
        type1_error(n, icc, 10, args.type1_sims)
        for n, icc in ((30, 0.05), (30, 0.10), (60, 0.05), (60, 0.10), (150, 0.05))
    ]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


if __name__ == "__main__":
    main()
