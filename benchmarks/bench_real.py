"""peerstats against R mmrm on REAL public data with real, non-monotone missingness (issue 22).

Data: the FEV data of the R package mmrm (Apache-2.0; 200 subjects x 4 visits, 537 of 800
FEV1 values observed, intermittent missingness), as committed for the SAS reference tests in
``tests/reference/sas_fev/fev_data.csv``. Model: ``FEV1 ~ RACE + SEX + ARMCD * AVISIT`` with an
unstructured covariance, REML, Satterthwaite df, then the per-visit ARMCD contrasts (emmeans in
R) - the analysis of mmrm's own vignette.

Two measurements, interleaved round by round (peerstats, R, peerstats, R, ...):

- warm: the fit + contrasts in a running process (R times it inside R with ``proc.time`` after a
  warm-up fit; peerstats with ``time.perf_counter`` after a warm-up);
- cold: a whole script in a fresh process (import, read the CSV, fit, contrasts), wall time.

Prints min and median of ``--rounds`` (>= 5) rounds, the ratios R / peerstats of the medians
and of the minima in the same run, and the machine's load. R mmrm is found in ``R_LIBS`` /
``--r-lib`` (default /work/rlib; Debian lacks it: build it from
../shared/reference/r-mmrm/build.sh); without it the R columns say why.

Bytecode: before the cold rounds the peerstats package is byte-compiled (``compileall``), as
``pip install`` does for an installed package (and R byte-compiles packages at install). This
matters here because the session sets ``PYTHONDONTWRITEBYTECODE``: without it every fresh
interpreter would recompile peerstats' modules from source (about 0.1 s), a cost no installed
copy pays. ``--src DIR`` runs another source tree (e.g. ``git archive`` of an older commit
unpacked in /tmp) for before/after comparisons.

Run: ``.venv/bin/python benchmarks/bench_real.py --rounds 7 [--r-lib /path/to/lib] [--src DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEV = ROOT / "tests" / "reference" / "sas_fev" / "fev_data.csv"

PY_FIT = """
import pandas as pd, peerstats
d = pd.read_csv({path!r})
for c in ("AVISIT", "ARMCD", "RACE", "SEX"):
    d[c] = d[c].astype("category")
d["ARMCD"] = d["ARMCD"].cat.reorder_categories(["PBO", "TRT"])
def run():
    fit = peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", d, subject="USUBJID",
                         visit="AVISIT", covariance="us", df="satterthwaite")
    return fit.contrasts("ARMCD", by="AVISIT")
"""

R_FIT = r"""
suppressPackageStartupMessages({{library(mmrm); library(emmeans)}})
d <- read.csv("{path}", stringsAsFactors = TRUE)
d$ARMCD <- relevel(d$ARMCD, "PBO")
run <- function() {{
  fit <- mmrm(FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID), data = d,
              method = "Satterthwaite")
  pairs(emmeans(fit, ~ ARMCD | AVISIT), reverse = TRUE)
}}
"""


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _warm_python() -> float:
    ns: dict = {}
    exec(PY_FIT.format(path=str(FEV)), ns)  # noqa: S102 - our own benchmark code
    ns["run"]()  # warm-up (imports, caches)
    t0 = time.perf_counter()
    ns["run"]()
    return time.perf_counter() - t0


def _r_env(r_lib: str | None) -> dict:
    env = dict(os.environ)
    if r_lib:
        env["R_LIBS"] = r_lib + os.pathsep + env.get("R_LIBS", "")
    return env


def _warm_r(env: dict) -> float:
    code = R_FIT.format(path=FEV.as_posix()) + (
        'invisible(run()); t <- proc.time()[["elapsed"]]; invisible(run()); '
        'cat(proc.time()[["elapsed"]] - t)\n'
    )
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, env=env,
                         check=True)
    return float(out.stdout.strip().split()[-1])


def _compile_package() -> str:
    """Byte-compile the peerstats package that the cold script will import; its directory."""
    import compileall

    import peerstats

    pkg = Path(peerstats.__file__).parent
    compileall.compile_dir(str(pkg), quiet=1)
    return str(pkg)


def _cold(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--r-lib", default=os.environ.get("PEERSTATS_R_MMRM_LIB", "/work/rlib"))
    ap.add_argument("--src", type=Path, help="run this source tree's peerstats instead")
    args = ap.parse_args(argv)
    rounds = max(5, args.rounds)
    env = _r_env(args.r_lib)
    if args.src is not None:
        sys.path.insert(0, str(args.src.resolve()))
        env["PYTHONPATH"] = str(args.src.resolve())
    pkg = _compile_package()
    have_r = shutil.which("Rscript") is not None
    r_why = "" if have_r else "Rscript not found"
    if have_r:
        probe = subprocess.run(["Rscript", "-e", "library(mmrm); library(emmeans)"],
                               capture_output=True, text=True, env=env)
        if probe.returncode:
            have_r, r_why = False, "R package mmrm or emmeans not installed (--r-lib)"
    with tempfile.TemporaryDirectory() as tmp:
        py_script = Path(tmp) / "cold.py"
        py_script.write_text(PY_FIT.format(path=str(FEV)) + "run()\n")
        r_script = Path(tmp) / "cold.R"
        r_script.write_text(R_FIT.format(path=FEV.as_posix()) + "invisible(run())\n")
        times: dict[str, list[float]] = {k: [] for k in ("py_warm", "r_warm", "py_cold", "r_cold")}
        loads = []
        for i in range(rounds):
            loads.append(_load())
            times["py_warm"].append(_warm_python())
            times["py_cold"].append(_cold([sys.executable, str(py_script)], env))
            if have_r:
                times["r_warm"].append(_warm_r(env))
                times["r_cold"].append(_cold(["Rscript", str(r_script)], env))
            print(f"round {i + 1}/{rounds} done (load {loads[-1]})", file=sys.stderr)
    print(f"FEV (mmrm package data, 200 x 4, 537 observed), {rounds} interleaved rounds")
    print(f"peerstats from {pkg} (byte-compiled before the cold rounds)")
    print(f"load average (1, 5, 15 min) at each round's start: {'; '.join(loads)}")
    print(f"{'case':<36}{'peerstats min/median (s)':>28}{'R mmrm min/median (s)':>26}"
          f"{'R/peerstats (median; min)':>28}")
    for case, py, r in (("warm: fit + per-visit contrasts", "py_warm", "r_warm"),
                        ("cold script: import, read, fit, contrast", "py_cold", "r_cold")):
        p = times[py]
        pm = f"{min(p):.3f} / {statistics.median(p):.3f}"
        if have_r:
            rr = times[r]
            rm = f"{min(rr):.3f} / {statistics.median(rr):.3f}"
            ratio = (f"{statistics.median(rr) / statistics.median(p):.2f}x; "
                     f"{min(rr) / min(p):.2f}x")
        else:
            rm, ratio = r_why, "-"
        print(f"{case:<36}{pm:>28}{rm:>26}{ratio:>28}")
    print(json.dumps({k: v for k, v in times.items() if v}, indent=None))


if __name__ == "__main__":
    main()
