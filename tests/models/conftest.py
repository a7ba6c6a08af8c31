"""Shared fixtures of tests/models."""

from pathlib import Path

import pandas as pd
import pytest

#: the completed data sets the pipeline imputed for peer_recovery (SYNTHETIC PEER example), as
#: R refitted them in tests/reference/r_sens_primary/
SENS_PRIMARY = Path(__file__).parents[1] / "reference" / "r_sens_primary" / "datasets.csv.gz"


@pytest.fixture(scope="session")
def sens_primary_sets() -> list[pd.DataFrame]:
    """The imputed data sets of r_sens_primary, one frame each, laid out as the pipeline's
    primary LMM sees them (visit and arm as ordered factors; a participant who received
    support outside any delivery group is a group of their own)."""
    d = pd.read_csv(SENS_PRIMARY, dtype={"subject": str, "group": str})
    out = []
    for _, g in d.groupby("imputation"):
        g = g.drop(columns=["imputation", "imputed"]).reset_index(drop=True)
        g["visit"] = pd.Categorical(g["visit"], categories=["post", "fu3"])
        g["arm"] = pd.Categorical(g["arm"], categories=["usual", "peer"])
        lone = (g["delivered"] > 0) & g["group"].isna()
        g.loc[lone, "group"] = "_single:" + g.loc[lone, "subject"]
        out.append(g)
    return out
