"""Partially nested LMMs at ~300 participants: peerstats.lmm vs nlme::lme (issue 22.1).

    .venv/bin/python benchmarks/bench_lmm_pn.py                     # 7 interleaved rounds
    .venv/bin/python benchmarks/bench_lmm_pn.py --rounds 5 --src /path/to/older/src

The models are the four that the bundled pipeline fits for ``analyses/peer_recovery.yaml`` (its
primary and secondary continuous outcomes; the model section is ``type: auto``, so
``peerstats.analyze`` builds them): they are captured here by running ``peerstats.analyze`` on
the bundled synthetic ``peer_recovery`` trial with ``peerstats.lmm`` wrapped, and printed
(formula, options, rows, participants, delivery groups). Each is

    <outcome> ~ <outcome>_baseline + site + arm * visit + (1 | subject) + (0 + delivered | group)
    residual_by = "arm", REML, Satterthwaite df

(random participant intercept; random delivery-group intercept in the group-delivered arm only;
one residual variance per arm). The MANSA model is singular (group variance 0). In R the same
model is ``nlme::lme(y ~ baseline + site + arm * visit, random = list(group = pdDiag(~ 0 +
delivered), subject = ~ 1), weights = varIdent(form = ~ 1 | arm), method = "REML")`` with every
control participant a group of their own (the coding of tests/reference/r_lmm/).

Timed, interleaved model by model in every round (``--rounds``, default 7; min and median
reported):

* peerstats: ``peerstats.lmm(...)`` and ``.coef`` (Satterthwaite df included), warm process;
* nlme: ``lme(...)`` only, timed inside one persistent R session (``Sys.time()`` around the
  call; reading the data not counted), so R's start-up is not counted either;
* whole process, once per round: a fresh ``python`` that imports peerstats and pandas, reads the
  four CSV files and fits the four models (``.coef`` read), against a fresh ``Rscript`` that loads
  nlme, reads the same files and fits the four models.

The load average is printed before every round. The ratio is nlme / peerstats (> 1: peerstats
faster), computed on the medians and on the minima of the same run. The table of estimates
checks that both tools fit the same model (arm effect and -2 REML log-likelihood).
``--src PATH`` times another source tree of peerstats (e.g. before a change) in this process.
"""

# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _threads  # noqa: F401  (sets BLAS threads before numpy loads)

OUTCOMES = ("qpr15", "empowerment", "mansa", "wsas")

R_PREP = """
suppressPackageStartupMessages(library(nlme))
prep <- function(path) {
  d <- read.csv(path, stringsAsFactors = FALSE)
  d <- d[!is.na(d$y), ]
  d$site <- factor(d$site)
  d$arm <- factor(d$arm, levels = c("usual", "peer"))
  d$visit <- factor(d$visit, levels = c("post", "fu3"))
  d$group <- factor(ifelse(d$delivered > 0, as.character(d$group), paste0("C-", d$subject)))
  d$subject <- factor(d$subject)
  d
}
fit <- function(d) lme(y ~ baseline + site + arm * visit,
                       random = list(group = pdDiag(~ 0 + delivered), subject = ~ 1),
                       weights = varIdent(form = ~ 1 | arm), data = d, method = "REML")
"""

PY_COLD = """
import sys, warnings
warnings.simplefilter("ignore")
{path}
import pandas as pd
import peerstats
for o in {outcomes!r}:
    d = pd.read_csv({tmp!r} + "/" + o + ".csv", keep_default_na=True)
    d["group"] = d["group"].astype(object).where(d["group"].notna(), None)
    peerstats.lmm(
        "y ~ baseline + site + arm * visit + (1 | subject) + (0 + delivered | group)",
        d, residual_by="arm", subject="subject", reference={{"arm": "usual"}},
    ).coef
"""


class RSession:
    """One persistent R process; ``run(code)`` returns the lines the code printed."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            ["R", "--vanilla", "--slave"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )

    def run(self, code: str) -> list[str]:
        self.proc.stdin.write(code + '\ncat("<<END>>\\n"); flush(stdout())\n')
        self.proc.stdin.flush()
        out = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("R stopped")
            if line.strip() == "<<END>>":
                return out
            out.append(line.rstrip())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def capture_models(peerstats) -> list[tuple[str, object, dict]]:
    """The lmm calls of ``peerstats.analyze`` for the four continuous outcomes."""
    import peerstats.models.lmm as lmm_module

    calls = []
    real = lmm_module.lmm

    def spy(formula, data, **kw):
        calls.append((formula, data.copy(), kw))
        return real(formula, data, **kw)

    lmm_module.lmm = spy
    try:
        trial = peerstats.datasets.load("peer_recovery")
        for o in OUTCOMES:
            peerstats.analyze(trial, outcome=o, df="satterthwaite")
    finally:
        lmm_module.lmm = real
    return calls


def describe(calls) -> None:
    print("Models (captured from peerstats.analyze on the bundled peer_recovery trial):")
    for formula, d, kw in calls:
        y = formula.split("~")[0].strip()
        used = d[d[y].notna()]
        grp = used.loc[used["delivered"] > 0, "group"]
        print(f"  {formula}")
        print(
            f"    options {kw}\n    {len(used)} rows, {used['subject'].nunique()} participants, "
            f"{grp.nunique()} delivery groups ({used['delivered'].gt(0).sum()} rows in groups)"
        )


def write_csv(calls, tmp: str) -> None:
    for formula, d, _ in calls:
        y = formula.split("~")[0].strip()
        out = d[["subject", "arm", "visit", "site", "group", "delivered", y, f"{y}_baseline"]]
        out = out.rename(columns={y: "y", f"{y}_baseline": "baseline"})
        out.to_csv(Path(tmp) / f"{y}.csv", index=False)


def time_python(peerstats, call) -> tuple[float, object]:
    formula, d, kw = call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = peerstats.lmm(formula, d, **kw)
        _ = res.coef  # the df are computed lazily: count them
        return time.perf_counter() - t0, res


def cold_runs(tmp: str, src: str | None) -> tuple[float, float]:
    path = f"sys.path.insert(0, {src!r})" if src else ""
    code = PY_COLD.format(path=path, outcomes=OUTCOMES, tmp=tmp)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    t_py = time.perf_counter() - t0
    rcode = R_PREP + "".join(
        f'f <- fit(prep("{tmp}/{o}.csv")); invisible(summary(f))\n' for o in OUTCOMES
    )
    script = Path(tmp) / "cold.R"
    script.write_text(rcode)
    t0 = time.perf_counter()
    subprocess.run(["Rscript", str(script)], check=True, capture_output=True)
    return t_py, time.perf_counter() - t0


def summarise(name: str, py: list[float], r: list[float]) -> list[str]:
    import numpy as np

    pm, pmed, rm, rmed = min(py), float(np.median(py)), min(r), float(np.median(r))
    return [
        name, f"{pm:.3f} / {pmed:.3f}", f"{rm:.3f} / {rmed:.3f}",
        f"{rmed / pmed:.2f}x", f"{rm / pm:.2f}x",
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--src", default=None, help="another peerstats source tree to time")
    ap.add_argument("--blas-threads", default=None)
    ap.add_argument("--no-cold", action="store_true", help="skip the whole-process runs")
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    sys.path.insert(0, str(Path(__file__).parent))
    import numpy as np
    from _common import print_table

    import peerstats

    print(f"peerstats from {Path(peerstats.__file__).parent}")
    calls = capture_models(peerstats)
    describe(calls)
    tmp = tempfile.mkdtemp(prefix="bench_lmm_pn_")
    write_csv(calls, tmp)
    R = RSession()
    print(R.run('cat(R.version.string, "nlme", format(packageVersion("nlme")), "\\n")')[0])
    R.run(R_PREP + "".join(f'd_{o} <- prep("{tmp}/{o}.csv")\n' for o in OUTCOMES))
    check_estimates(peerstats, calls, R)
    py = {o: [] for o in OUTCOMES}
    rr = {o: [] for o in OUTCOMES}
    cold_py, cold_r = [], []
    for k in range(args.rounds):
        print(f"round {k + 1}: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for o, call in zip(OUTCOMES, calls):
            py[o].append(time_python(peerstats, call)[0])
            rr[o].append(float(R.run(
                f't0 <- Sys.time(); f <- fit(d_{o}); '
                'cat(as.numeric(Sys.time() - t0, units = "secs"), "\\n")'
            )[0]))  # fmt: skip
        if not args.no_cold:
            a, b = cold_runs(tmp, args.src)
            cold_py.append(a)
            cold_r.append(b)
    R.close()
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = [summarise(o, py[o], rr[o]) for o in OUTCOMES]
    tot_py = list(np.sum([py[o] for o in OUTCOMES], axis=0))
    tot_r = list(np.sum([rr[o] for o in OUTCOMES], axis=0))
    rows.append(summarise("all four (sum per round)", tot_py, tot_r))
    if cold_py:
        rows.append(summarise("whole process: 4 fits", cold_py, cold_r))
    print()
    print_table(
        ["model", "peerstats min / median s", "nlme min / median s", "nlme/peer (median)",
         "nlme/peer (min)"],
        rows,
    )  # fmt: skip


def check_estimates(peerstats, calls, R: RSession) -> None:
    """Arm effect and -2 REML log-likelihood of both tools (the same model is fitted)."""
    from _common import print_table

    rows = []
    for o, call in zip(OUTCOMES, calls):
        res = time_python(peerstats, call)[1]
        est = float(res.coef.loc["arm[T.peer]", "estimate"])
        r_est, r_ll = map(
            float,
            R.run(
                f'f <- fit(d_{o}); cat(sprintf("%.10g", c(fixef(f)[["armpeer"]], '
                '-2 * as.numeric(logLik(f)))), "\\n")'
            )[0].split(),
        )
        rows.append(
            [o, f"{est:.8g}", f"{r_est:.8g}", f"{res.neg2loglik:.8f}", f"{r_ll:.8f}",
             ", ".join(res.singular_components) or "-"]
        )  # fmt: skip
    print()
    print_table(
        ["model", "arm peerstats", "arm nlme", "-2 REML ll peerstats", "-2 REML ll nlme",
         "singular (peerstats)"],
        rows,
    )  # fmt: skip
    print()


if __name__ == "__main__":
    main()
