"""peerstats.mmrm against R mmrm on real and synthetic data, one command (issue 22.6).

Every row is the same analysis in both tools: an MMRM with unstructured covariance, REML,
Satterthwaite df, then the per-visit treatment contrasts (``fit.contrasts`` / R
``pairs(emmeans(...))``), timed warm (after a warm-up) in a running process.

Rows (``real`` = public data with its own missingness; ``synthetic`` = generated here):

- real FEV: mmrm's ``fev_data`` (200 x 4, 537 observed, intermittent missingness),
  ``FEV1 ~ RACE + SEX + ARMCD * AVISIT``;
- real BCVA: mmrm's ``bcva_data`` (1,000 x 10, 8,605 observed, 107 missingness patterns),
  ``BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT``;
- real antidepressant: rbmi's ``antidepressant_data`` (172 x 4, 608 observed),
  ``CHANGE ~ BASVAL * VISIT + THERAPY * VISIT`` (sources and licences: benchmarks/data/README.md);
- synthetic 200 x 4 and 1,000 x 10 with monotone dropout (the generators of bench_mmrm.py),
  and 1,000 x 10 with random (non-monotone) missingness, 15% of values missing at random;
- synthetic 1,000,000 x 4 (peerstats only, in a fresh process): 5 repeated fits, the time of
  each and the process's peak RSS after each;
- FEV cold script (issue 22, fevfast): the whole script of ``bench_real.py`` (import pandas and
  peerstats, read the CSV, fit, contrasts) in a fresh ``python`` against the same in a fresh
  ``Rscript``, wall time, once per round (the package byte-compiled first, see bench_real.py).

Rounds are interleaved: in each round every case runs once in this Python process and once
in a fresh ``Rscript`` (which loads the data, fits once to warm up and times the second fit
with ``proc.time``). Each row reports min and median over the rounds, the ratio of the
medians (R / peerstats) and the largest difference between the two tools' contrast
estimates; the 1-minute load average is printed at the start of every round.

Run: ``.venv/bin/python benchmarks/run_all.py [--rounds 5] [--update-readme]``; with
``--update-readme`` the table between the ``run_all`` markers of benchmarks/README.md is
replaced. R mmrm: ``--r-lib`` (default ``$PEERSTATS_R_MMRM_LIB`` or /work/rlib).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent
DATA = HERE / "data"
README = HERE / "README.md"
START, END = "<!-- run_all:start -->", "<!-- run_all:end -->"

# name -> (kind, csv (None: generated), formula, arm, visit, subject, reference arm, factors)
CASES = {
    "FEV (mmrm fev_data) 200 x 4": (
        "real",
        ROOT / "tests/reference/sas_fev/fev_data.csv",
        "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
        "ARMCD",
        "AVISIT",
        "USUBJID",
        "PBO",
        ("AVISIT", "ARMCD", "RACE", "SEX"),
    ),
    "BCVA (mmrm bcva_data) 1,000 x 10": (
        "real",
        DATA / "bcva_data.csv",
        "BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT",
        "ARMCD",
        "AVISIT",
        "USUBJID",
        "CTL",
        ("AVISIT", "ARMCD", "RACE"),
    ),
    "antidepressant (rbmi) 172 x 4": (
        "real",
        DATA / "antidepressant_data.csv",
        "CHANGE ~ BASVAL * VISIT + THERAPY * VISIT",
        "THERAPY",
        "VISIT",
        "PATIENT",
        "PLACEBO",
        ("VISIT", "THERAPY"),
    ),
    "synthetic 200 x 4, monotone dropout": (
        "synthetic",
        (200, 4, "monotone"),
        "y ~ baseline + arm * visit",
        "arm",
        "visit",
        "id",
        "control",
        ("visit", "arm"),
    ),
    "synthetic 1,000 x 10, monotone dropout": (
        "synthetic",
        (1000, 10, "monotone"),
        "y ~ baseline + arm * visit",
        "arm",
        "visit",
        "id",
        "control",
        ("visit", "arm"),
    ),
    "synthetic 1,000 x 10, random missingness": (
        "synthetic",
        (1000, 10, "random"),
        "y ~ baseline + arm * visit",
        "arm",
        "visit",
        "id",
        "control",
        ("visit", "arm"),
    ),
}

R_CASE = r"""
d <- read.csv("{csv}", stringsAsFactors = TRUE)
for (v in c({factors}, "{subject}")) d[[v]] <- factor(d[[v]])
d${arm} <- relevel(d${arm}, "{ref}")
run <- function() {{
  fit <- mmrm({formula} + us({visit} | {subject}), data = d, method = "Satterthwaite")
  as.data.frame(pairs(emmeans(fit, ~ {arm} | {visit}), reverse = TRUE))
}}
invisible(run()); t0 <- proc.time()[["elapsed"]]; res <- run()
cat("RESULT", "{name}", proc.time()[["elapsed"]] - t0, paste(res$estimate, collapse = ","), "\n")
"""

BIG = r"""
import gc, resource, sys, time
sys.path.insert(0, {here!r})
from _common import make_trial
import peerstats
d = make_trial(1_000_000)
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print("DATA", rss(), flush=True)
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # user + system seconds
for i in range({n}):
    t0, c0 = time.perf_counter(), cpu()
    fit = peerstats.mmrm("y ~ baseline + arm * visit", d, subject="id", visit="visit",
                         covariance="us")
    fit.coef
    print("FIT", time.perf_counter() - t0, rss(), cpu() - c0, flush=True)
    del fit
    gc.collect()
"""


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def _synthetic(n: int, T: int, missing: str) -> pd.DataFrame:
    from bench_mmrm import make_data

    if missing == "monotone":
        return make_data(n, T)
    # bench_mmrm's design without dropout, then 15% of values missing completely at random
    rng = np.random.default_rng(2026)
    sd = np.linspace(5.0, 8.0, T)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    corr = np.where(lag == 0, 1.0, 0.6**lag + 0.1)
    arm = np.where(rng.random(n) < 0.5, "control", "peer")
    base = rng.normal(30.0, 8.0, n)
    y = 5.0 + 0.8 * base[:, None] + np.linspace(0.0, 3.0, T)
    y = y + (arm == "peer")[:, None] * np.linspace(1.0, 4.0, T)
    y = y + rng.standard_normal((n, T)) @ np.linalg.cholesky(corr * np.outer(sd, sd)).T
    y[rng.random((n, T)) < 0.15] = np.nan
    return pd.DataFrame(
        {
            "id": np.repeat([f"S{i:07d}" for i in range(n)], T),
            "arm": np.repeat(arm, T),
            "visit": np.tile([f"V{j + 1:02d}" for j in range(T)], n),
            "baseline": np.repeat(base, T),
            "y": y.ravel(),
        }
    )


def _frames(tmp: Path) -> dict[str, tuple[pd.DataFrame, Path]]:
    out = {}
    for name, (kind, src, *_rest) in CASES.items():
        if kind == "real":
            out[name] = (pd.read_csv(src), src)
        else:
            d = _synthetic(*src)
            path = tmp / f"case{len(out)}.csv"
            d.to_csv(path, index=False)
            out[name] = (d, path)
    return out


def _python_runner(name: str, d: pd.DataFrame):
    import peerstats

    _, _, formula, arm, visit, subject, ref, factors = CASES[name]
    d = d.copy()
    for c in factors:
        d[c] = d[c].astype("category")
    levels = list(d[arm].cat.categories)
    d[arm] = d[arm].cat.reorder_categories([ref] + [x for x in levels if x != ref])

    def run():
        fit = peerstats.mmrm(
            formula, d, subject=subject, visit=visit, covariance="us", df="satterthwaite"
        )
        return fit.contrasts(arm, by=visit)

    return run


def _r_script(frames) -> str:
    head = "suppressPackageStartupMessages({library(mmrm); library(emmeans)})\n"
    parts = []
    for name, (_, path) in frames.items():
        _, _, formula, arm, visit, subject, ref, factors = CASES[name]
        parts.append(
            "local({"
            + R_CASE.format(
                csv=path.as_posix(),
                factors=", ".join(f'"{f}"' for f in factors),
                arm=arm,
                ref=ref,
                formula=formula,
                visit=visit,
                subject=subject,
                name=name.replace('"', ""),
            )
            + "})\n"
        )
    return head + "".join(parts)


def _run_r(script: Path, env: dict) -> dict[str, tuple[float, np.ndarray]]:
    out = subprocess.run(["Rscript", str(script)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    res = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            rest = line[len("RESULT ") :]
            name = next(n for n in CASES if rest.startswith(n))
            secs, est = rest[len(name) :].split()
            res[name] = (float(secs), np.array([float(x) for x in est.split(",")]))
    return res


def _big(n_fits: int) -> dict:
    code = BIG.format(here=str(HERE), n=n_fits)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fits = [tuple(map(float, ln.split()[1:])) for ln in out.stdout.splitlines() if ln[:3] == "FIT"]
    data_rss = [float(ln.split()[1]) for ln in out.stdout.splitlines() if ln[:4] == "DATA"][0]
    return {
        "seconds": [f[0] for f in fits],
        "rss_gib": [f[1] for f in fits],
        "cpu_seconds": [f[2] for f in fits],  # user + system (bigfast, issue 22.4)
        "data_gib": data_rss,
    }


COLD = "FEV cold script: import, read CSV, fit, contrasts"


def _cold_scripts(tmp: Path) -> tuple[list[str], list[str]]:
    """The cold FEV scripts of bench_real.py (python, Rscript commands); bytecode compiled."""
    import bench_real

    bench_real._compile_package()
    fev = str(bench_real.FEV)
    py = tmp / "cold.py"
    py.write_text(bench_real.PY_FIT.format(path=fev) + "run()\n")
    r = tmp / "cold.R"
    r.write_text(bench_real.R_FIT.format(path=bench_real.FEV.as_posix()) + "invisible(run())\n")
    return [sys.executable, str(py)], ["Rscript", str(r)]


def _wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def measure(rounds: int, r_lib: str | None, big_fits: int) -> dict:
    env = dict(os.environ)
    if r_lib:
        env["R_LIBS"] = r_lib + os.pathsep + env.get("R_LIBS", "")
    times = {n: {"py": [], "r": []} for n in [*CASES, COLD]}
    diff = dict.fromkeys(CASES, 0.0)
    last = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = _frames(Path(tmp))
        runners = {n: _python_runner(n, d) for n, (d, _) in frames.items()}
        for run in runners.values():
            run()  # warm-up: imports, first-call caches
        script = Path(tmp) / "cases.R"
        script.write_text(_r_script(frames))
        cold_py, cold_r = _cold_scripts(Path(tmp))
        for i in range(rounds):
            loads.append(_load())
            for name, run in runners.items():
                gc.collect()
                t0 = time.perf_counter()
                ct = run()
                times[name]["py"].append(time.perf_counter() - t0)
                last[name] = ct["estimate"].to_numpy()
            r = _run_r(script, env)
            for name, (secs, est_r) in r.items():
                times[name]["r"].append(secs)
                est = last[name]
                diff[name] = max(diff[name], float(np.max(np.abs(est - est_r))))
            times[COLD]["py"].append(_wall(cold_py, env))
            times[COLD]["r"].append(_wall(cold_r, env))
            print(f"round {i + 1}/{rounds} (load {loads[-1]:.2f})", file=sys.stderr, flush=True)
    loads.append(_load())
    big = _big(big_fits) if big_fits else None
    loads.append(_load())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return {
        "times": times,
        "diff": diff,
        "loads": loads,
        "big": big,
        "rounds": rounds,
        "when": when,
    }


def _r_version(env_lib: str | None) -> str:
    env = dict(os.environ)
    if env_lib:
        env["R_LIBS"] = env_lib
    code = (
        'cat(R.version$major, ".", R.version$minor, " mmrm ", '
        'as.character(packageVersion("mmrm")), sep = "")'
    )
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, env=env)
    return out.stdout.strip() or "R: unknown"


def render(res: dict, r_lib: str | None) -> str:
    import numpy

    import peerstats

    t, loads = res["times"], res["loads"]
    lines = [
        f"Measured {res.get('when') or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`benchmarks/run_all.py --rounds {res['rounds']}`: {os.cpu_count()}-core "
        f"{platform.machine()}, Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"peerstats {getattr(peerstats, '__version__', '?')}, R {_r_version(r_lib)}. "
        f"1-minute load average at the start of each round and at the end: "
        + ", ".join(f"{x:.1f}" for x in loads)
        + ".",
        "",
        "| case | data | peerstats min / median | R mmrm min / median | R / peerstats "
        "(medians; mins) | max abs diff of the contrasts |",
        "|---|---|---|---|---|---|",
    ]
    for name, (kind, *_rest) in CASES.items():
        py, r = t[name]["py"], t[name]["r"]
        pm = f"{min(py):.3f} / {statistics.median(py):.3f} s"
        if r:
            rm = f"{min(r):.3f} / {statistics.median(r):.3f} s"
            ratio = (
                f"**{statistics.median(r) / statistics.median(py):.1f}x**; {min(r) / min(py):.1f}x"
            )
            dd = f"{res['diff'][name]:.1e}"
        else:
            rm, ratio, dd = "not run", "-", "-"
        lines.append(f"| {name} | {kind} | {pm} | {rm} | {ratio} | {dd} |")
    cold = t.get(COLD)
    if cold and cold["py"] and cold["r"]:
        py, r = cold["py"], cold["r"]
        lines.append(
            f"| {COLD} (fresh `python` vs fresh `Rscript`) | real | {min(py):.3f} / "
            f"{statistics.median(py):.3f} s | {min(r):.3f} / {statistics.median(r):.3f} s | "
            f"**{statistics.median(r) / statistics.median(py):.1f}x**; {min(r) / min(py):.1f}x | - |"
        )
    big = res["big"]
    if big:
        s = big["seconds"]
        lines.append(
            f"| synthetic 1,000,000 x 4, monotone dropout ({len(s)} fits in one process) | "
            f"synthetic | {min(s):.2f} / {statistics.median(s):.2f} s | not run | - | - |"
        )
        lines += [
            "",
            f"1,000,000 x 4: seconds per fit {', '.join(f'{x:.2f}' for x in s)}; process peak "
            f"RSS after each fit {', '.join(f'{x:.2f}' for x in big['rss_gib'])} GiB (after "
            f"generating the data: {big['data_gib']:.2f} GiB).",
        ]
        if big.get("cpu_seconds"):  # wall time above load 2 is mostly waiting for a core
            lines[-1] += (
                " CPU seconds (user + system) per fit: "
                + ", ".join(f"{x:.2f}" for x in big["cpu_seconds"])
                + "."
            )
    lines += [
        "",
        "Times: fit + per-visit contrasts, warm, wall clock; R times its own call with "
        "`proc.time` inside a fresh `Rscript` per round (reading the CSV not counted). "
        "`real` rows are public data with their own missingness (benchmarks/data/README.md); "
        "`synthetic` rows are generated by the benchmark.",
    ]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    old = README.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in old and END in old:
        new = old[: old.index(START)] + block + old[old.index(END) + len(END) :]
    else:
        head, sep, rest = old.partition("\n## ")
        new = (
            head
            + "\n## peerstats vs R mmrm, real and synthetic data (`run_all.py`)\n\n"
            + block
            + "\n\n"
            + sep.lstrip("\n")
            + rest
        )
    README.write_text(new)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big-fits", type=int, default=5, help="1M-subject fits (0: skip)")
    ap.add_argument("--r-lib", default=os.environ.get("PEERSTATS_R_MMRM_LIB", "/work/rlib"))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the raw times here")
    ap.add_argument(
        "--from-json", type=Path, help="render (and --update-readme) a saved --json run"
    )
    args = ap.parse_args(argv)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        res = measure(max(5, args.rounds), args.r_lib, args.big_fits)
    text = render(res, args.r_lib)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))
    if args.update_readme:
        update_readme(text)


if __name__ == "__main__":
    main()
