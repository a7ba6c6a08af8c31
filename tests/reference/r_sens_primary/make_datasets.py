"""Write the completed datasets of the PEER example's ``mi-jr`` sensitivity analysis (SYNTHETIC
data: peerstats.datasets peer_recovery) to ``datasets.csv.gz``, for make_r_sens_primary.R.

The imputations are the pipeline's own (analyses/peer_recovery.yaml, seed 179, jump to reference
after discontinuation, 20 Bayesian imputations); R refits the primary partially nested model on
each of them. Run from the repository root:

    .venv/bin/python tests/reference/r_sens_primary/make_datasets.py
    Rscript tests/reference/r_sens_primary/make_r_sens_primary.R
"""

import warnings
from pathlib import Path

import pandas as pd
import yaml

from peerstats.pipeline import _sensitivity_run as sr
from peerstats.pipeline import run_analysis
from peerstats.pipeline._sensitivity_model import primary_analyser

HERE = Path(__file__).parent


def main() -> None:
    spec = yaml.safe_load(open("analyses/peer_recovery.yaml"))
    spec["sensitivity"] = [s for s in spec["sensitivity"] if s["name"] == "mi-jr"]
    for key in ("economics", "subgroups", "mediation"):
        spec.pop(key, None)
    spec["figures"], spec["tables"] = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_analysis(spec)
        work = sr._start(run)
        imp, _ = sr._impute(run, run.spec.sensitivity[0], 0, work)
    an = primary_analyser(run, "qpr15", work.reference, work.model)
    frames = []
    for i, d in enumerate(imp.datasets):
        d = an.data(d)
        d.insert(0, "imputation", i + 1)
        d["imputed"] = imp.target.reshape(-1).astype(int)  # subject-major rows, as d
        frames.append(d)
    out = pd.concat(frames, ignore_index=True)
    cols = ["imputation", "subject", "arm", "visit", "site", "qpr15_baseline", "qpr15"]
    out = out[cols + ["delivered", "group", "imputed"]]
    out.to_csv(HERE / "datasets.csv.gz", index=False, float_format="%.17g")
    print(an.formula, an.options, len(out))


if __name__ == "__main__":
    main()
