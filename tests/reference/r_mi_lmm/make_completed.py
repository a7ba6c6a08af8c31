"""Write the completed datasets that R pools in mi_lmm_reference.R (issue 23.3 / issue 20.3).

SYNTHETIC data: the partially nested trial tests/reference/r_jomo/pn_trial.csv (made by
r_jomo/make_data.py). Five completed datasets are drawn by peerstats.impute_multilevel
(seed 1; none of the five lmer fits is singular) and written in long form to completed.csv (column ``.imp`` = 1..5, ``peer`` = 1 in
the group-delivered arm, ``group`` = "none" in usual care so that lme4 keeps those rows; the
random term (0 + peer | group) is zero there). The test reads this CSV back, so the numbers
compared with R do not depend on the imputation's random stream.

Run from the repository root: .venv/bin/python tests/reference/r_mi_lmm/make_completed.py
"""

from pathlib import Path

import pandas as pd

import peerstats

HERE = Path(__file__).resolve().parent
d = pd.read_csv(HERE.parent / "r_jomo" / "pn_trial.csv")
long = d.melt(
    id_vars=["id", "arm", "group", "baseline"],
    value_vars=["post", "fu3"],
    var_name="visit",
    value_name="y",
)
long["visit"] = pd.Categorical(long["visit"], categories=["post", "fu3"])
long["arm"] = pd.Categorical(long["arm"], categories=["usual", "peer"])
imp = peerstats.impute_multilevel(
    "y ~ arm + baseline",
    long,
    subject="id",
    visit="visit",
    arm="arm",
    group="group",
    n_imputations=5,
    burn=200,
    thin=10,
    seed=1,
)
parts = []
for k, ds in enumerate(imp.datasets, start=1):
    ds = ds.copy()
    ds.insert(0, ".imp", k)
    ds["peer"] = (ds["arm"].astype(str) == "peer").astype(int)
    ds["group"] = ds["group"].fillna("none")
    parts.append(ds)
out = pd.concat(parts)[[".imp", "id", "arm", "peer", "group", "baseline", "visit", "y"]]
out.to_csv(HERE / "completed.csv", index=False, float_format="%.15g")
print(f"wrote {len(out)} rows ({imp.n_imputations} completed datasets)")
