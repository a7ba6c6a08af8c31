"""peerstats.glmm: bad input and fits without a maximum-likelihood estimate give clear errors.

All data here are synthetic. Each failure has its own test; nothing is dropped or recoded
silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import peerstats as ps
from peerstats.exceptions import (
    ConvergenceError,
    DataValidationError,
    ModelSpecificationError,
    SingularFitWarning,
)


@pytest.fixture
def binary():
    rng = np.random.default_rng(16)
    n = 120
    d = pd.DataFrame(
        {
            "id": np.repeat(np.arange(40), 3).astype(str),
            "arm": np.repeat(np.where(np.arange(40) < 20, "control", "peer"), 3),
            "x": rng.normal(size=n),
        }
    )
    d["y"] = rng.binomial(1, 0.4, size=n)
    d["days"] = rng.integers(30, 365, size=n).astype(float)
    d["count"] = rng.poisson(2.0, size=n)
    return d


def test_outcome_not_binary(binary):
    d = binary.assign(y=binary["y"] * 2)
    with pytest.raises(DataValidationError, match="must be 0/1") as e:
        ps.glmm("y ~ arm + (1 | id)", d)
    assert set(e.value.failures["value"]) == {2}


def test_proportion_without_whole_number_of_successes(binary):
    d = binary.assign(p=0.37, n=3)
    with pytest.raises(DataValidationError, match="whole number"):
        ps.glmm("p ~ arm", d, weights="n")


@pytest.mark.parametrize("value,family", [(-1, "poisson"), (1.5, "negative_binomial")])
def test_count_negative_or_fractional(binary, value, family):
    d = binary.assign(count=binary["count"].astype(float))
    d.loc[5, "count"] = value
    with pytest.raises(DataValidationError, match="count") as e:
        ps.glmm("count ~ arm + (1 | id)", d, family=family)
    assert list(e.value.failures["row"]) == [5]


def test_zero_exposure(binary):
    d = binary.copy()
    d.loc[3, "days"] = 0.0
    with pytest.raises(DataValidationError, match="exposure 'days' must be > 0"):
        ps.glmm("count ~ arm", d, family="poisson", exposure="days")


def test_missing_exposure_or_offset(binary):
    d = binary.copy()
    d.loc[7, "days"] = np.nan
    with pytest.raises(DataValidationError, match="missing"):
        ps.glmm("count ~ arm", d, family="poisson", exposure="days")
    d["logdays"] = np.log(d["days"])
    with pytest.raises(DataValidationError, match="missing"):
        ps.glmm("count ~ arm", d, family="poisson", offset="logdays")


def test_infinite_offset_from_a_zero_exposure(binary):
    d = binary.assign(off=np.log(binary["days"]))
    d.loc[2, "off"] = -np.inf
    with pytest.raises(DataValidationError, match="not finite"):
        ps.glmm("count ~ arm", d, family="poisson", offset="off")


def test_complete_separation(binary):
    d = binary.assign(y=(binary["x"] > 0).astype(int))
    with pytest.raises(ConvergenceError, match="separat"):
        ps.glmm("y ~ x + (1 | id)", d)


def test_arm_with_no_events(binary):
    d = binary.assign(y=np.where(binary["arm"] == "peer", 0, binary["y"]))
    with pytest.raises(ConvergenceError, match="level 'peer' of 'arm' has no events"):
        ps.glmm("y ~ arm + (1 | id)", d)
    d = binary.assign(count=np.where(binary["arm"] == "peer", 0, binary["count"]))
    with pytest.raises(ConvergenceError, match="no events"):
        ps.glmm("count ~ arm", d, family="negative_binomial")


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"family": "gamma"}, "family='gamma' is not valid"),
        ({"link": "identity"}, "link='identity' is not available"),
        ({"nagq": 0}, "nagq must be"),
        ({"level": 1.5}, "level must be"),
    ],
)
def test_invalid_options(binary, kw, msg):
    with pytest.raises(ModelSpecificationError, match=msg):
        ps.glmm("y ~ arm + (1 | id)", binary, **kw)


def test_agq_needs_one_scalar_term(binary):
    d = binary.assign(site=np.arange(len(binary)) % 4)
    with pytest.raises(ModelSpecificationError, match="exactly one scalar random term"):
        ps.glmm("y ~ arm + (1 | id) + (1 | site)", d, nagq=5)
    with pytest.raises(ModelSpecificationError, match="scalar random term"):
        ps.glmm("y ~ x + (1 + x | id)", d, nagq=5)


def test_zero_part_restrictions(binary):
    with pytest.raises(ModelSpecificationError, match="count family"):
        ps.glmm("y ~ arm", binary, zero_inflation="~ 1")
    with pytest.raises(ModelSpecificationError, match="not both"):
        ps.glmm("count ~ arm", binary, family="poisson", zero_inflation="~ 1", hurdle="~ 1")
    with pytest.raises(ModelSpecificationError, match="one-sided formula"):
        ps.glmm("count ~ arm", binary, family="poisson", hurdle="arm")


def test_missing_covariate_is_an_error_not_a_drop(binary):
    d = binary.copy()
    d.loc[4, "x"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing values"):
        ps.glmm("y ~ x + (1 | id)", d)


def test_singular_fit_warns():
    """Every group has the same outcomes: the ML group variance is 0 (boundary)."""
    d = pd.DataFrame(
        {
            "g": np.repeat(np.arange(10), 4).astype(str),
            "y": np.tile([0, 1, 0, 1], 10),
            "x": np.tile([0.0, 1.0, 1.0, 0.0], 10),
        }
    )
    with pytest.warns(SingularFitWarning, match="singular fit"):
        fit = ps.glmm("y ~ x + (1 | g)", d)
    assert fit.variance_components["variance"].iloc[0] == 0.0
    assert np.isfinite(fit.coef["std_error"]).all()


def test_ratio_views_need_the_right_link(binary):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ps.glmm("y ~ arm", binary, link="probit")
    with pytest.raises(ModelSpecificationError, match="logit"):
        _ = fit.odds_ratio
    with pytest.raises(ModelSpecificationError, match="log link"):
        _ = fit.rate_ratio


def test_empty_interaction_cell_of_counts_warns(binary):
    """No single level is empty, but one arm x visit cell has no events: the ML estimate of the
    interaction is -infinity; the fit warns instead of reporting it silently."""
    from peerstats.exceptions import ConvergenceWarning

    d = binary.assign(visit=np.tile(["v1", "v2", "v3"], len(binary) // 3))
    d.loc[(d["arm"] == "peer") & (d["visit"] == "v3"), "count"] = 0
    with pytest.warns(ConvergenceWarning, match="no events"):
        ps.glmm("count ~ arm * visit", d, family="poisson")


def test_zero_part_may_use_columns_outside_the_count_part(binary):
    d = binary.assign(z=np.where(np.arange(len(binary)) % 3 == 0, "a", "b"))
    fit = ps.glmm("count ~ arm", d, family="poisson", hurdle="~ z")
    assert list(fit.zero_coef.index) == ["Intercept", "z[T.b]"]
    d.loc[4, "z"] = None
    with pytest.raises(ModelSpecificationError, match="missing values"):
        ps.glmm("count ~ arm", d, family="poisson", hurdle="~ z")
    with pytest.raises(ModelSpecificationError, match="not in data"):
        ps.glmm("count ~ arm", d, family="poisson", zero_inflation="~ nothere")
