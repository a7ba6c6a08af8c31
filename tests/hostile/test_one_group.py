"""Issue 24.10: every delivery-group member in one group is found before fitting (it took
220 s to end in a generic ConvergenceError)."""

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import InsufficientDataError


def _trial(n_groups: int) -> pd.DataFrame:  # SYNTHETIC partially nested data
    rng = np.random.default_rng(7)
    n = 60
    arm = np.repeat(["usual", "peer"], n // 2)
    group = np.where(arm == "peer", [f"g{i % n_groups}" for i in range(n)], None)
    y = rng.normal(size=n) + (arm == "peer") * 0.5
    return pd.DataFrame({"y": y, "arm": arm, "group": group,
                         "peer": (arm == "peer").astype(float)})


def test_one_delivery_group_is_refused_before_fitting():
    with pytest.raises(InsufficientDataError, match=r"all 30 rows where it applies are in one"):
        peerstats.lmm("y ~ arm + (0 + peer | group)", _trial(1))


@pytest.mark.filterwarnings("ignore::peerstats.SingularFitWarning")
def test_two_delivery_groups_fit():
    fit = peerstats.lmm("y ~ arm + (0 + peer | group)", _trial(2))
    assert np.isfinite(fit.loglik)
