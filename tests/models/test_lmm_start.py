"""lmm(start=): a warm start from an earlier fit's variance parameters (issue 20.3, used by the
refits of the primary model on imputed data). The optimum is the same; a start of the wrong
length is a ModelSpecificationError. Data: tests/reference/r_lmm_extra/lmm_data.csv (synthetic);
the cold fit itself is checked against nlme/lme4 in tests/models/test_lmm_r.py."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

DATA = Path(__file__).parents[1] / "reference" / "r_lmm_extra" / "lmm_data.csv"
FORMULA = "y ~ baseline + arm * visit + (1 | id) + (0 + peer | grp_all)"


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(DATA)
    # controls are groups of one, where (0 + peer | grp_all) is zero
    d["grp_all"] = d["group"].where(d["peer"] > 0, "_single:" + d["id"]).astype(str)
    return d


def test_warm_start_reaches_the_same_optimum(data):
    cold = peerstats.lmm(FORMULA, data, residual_by="arm", subject="id")
    shifted = cold._theta * 1.3  # a start near, not at, the optimum
    warm = peerstats.lmm(FORMULA, data, residual_by="arm", subject="id", start=shifted)
    np.testing.assert_allclose(warm.coef["estimate"], cold.coef["estimate"], rtol=1e-6)
    np.testing.assert_allclose(warm.coef["std_error"], cold.coef["std_error"], rtol=1e-5)
    assert warm.loglik == pytest.approx(cold.loglik, abs=1e-6)


def test_start_of_the_wrong_length_is_an_error(data):
    with pytest.raises(ModelSpecificationError, match="start must be 4 finite"):
        peerstats.lmm(FORMULA, data, residual_by="arm", subject="id", start=[1.0, 2.0])
    with pytest.raises(ModelSpecificationError, match="start must be"):
        peerstats.lmm(FORMULA, data, residual_by="arm", subject="id", start=[1, np.nan, 1, 1])
