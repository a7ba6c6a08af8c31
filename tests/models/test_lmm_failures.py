"""Failure paths of peerstats.lmm: clear errors, named singular fits, no silent changes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ConvergenceError, ModelSpecificationError, SingularFitWarning


@pytest.fixture(scope="module")
def pn() -> pd.DataFrame:
    """Small partially nested trial: 20 controls (no group), 20 peer in 4 groups, 2 visits."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(40):
        peer = int(i >= 20)
        g = f"g{i % 4}" if peer else None
        u = rng.normal(0, 2)
        for v in ("v1", "v2"):
            rows.append(
                {
                    "id": f"s{i}",
                    "arm": "peer" if peer else "control",
                    "peer": peer,
                    "group": g,
                    "visit": v,
                    "x": rng.normal(),
                    "y": 10 + peer + u + rng.normal(0, 1 + peer) + (3.0 * (i % 4) - 4.5) * peer,
                }
            )
    return pd.DataFrame(rows)


def test_no_random_term(pn):
    with pytest.raises(ModelSpecificationError, match="no random term"):
        peerstats.lmm("y ~ x + arm", pn)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"residual": "banded"}, r"residual='banded' is not valid; choose one of \['iid', 'us'"),
        ({"method": "mle"}, r"method='mle' is not valid; choose one of \['reml', 'ml'\]"),
        ({"df": "kr"}, r"df='kr' is not valid; choose one of"),
        ({"residual": "us"}, "needs subject= and visit="),
        ({"residual_by": "arms"}, r"residual_by='arms' is not a column"),
        (
            {"residual": "ar1", "subject": "id", "visit": "visit", "df": "kenward-roger"},
            "kenward-roger.*not available",
        ),
    ],
)
def test_bad_options(pn, kw, match):
    with pytest.raises(ModelSpecificationError, match=match):
        peerstats.lmm("y ~ x + arm + (1 | id)", pn, **kw)


def test_missing_grouping_column(pn):
    with pytest.raises(ModelSpecificationError, match=r"grouping column\(s\) \['site'\]"):
        peerstats.lmm("y ~ x + (1 | site)", pn)


def test_missing_group_where_term_is_not_zero(pn):
    # (1 | group) is not zero for controls, whose group is missing: an error, not a silent drop
    with pytest.raises(ModelSpecificationError, match="grouping value missing"):
        peerstats.lmm("y ~ x + arm + (1 | group)", pn)


def test_missing_covariate_named(pn):
    d = pn.copy()
    d.loc[3, "x"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing values in model columns"):
        peerstats.lmm("y ~ x + arm + (1 | id)", d)


def test_missing_random_slope_value(pn):
    d = pn.copy()
    d["peer"] = d["peer"].astype(float)
    d.loc[25, "peer"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing values in model columns"):
        peerstats.lmm("y ~ x + arm + (0 + peer | group)", d)


def test_missing_outcome_dropped_and_counted(pn):
    d = pn.copy()
    d.loc[[0, 5, 9], "y"] = np.nan
    res = peerstats.lmm("y ~ x + arm + (1 | id)", d)
    assert res.n_dropped == 3
    assert res.n_obs == len(d) - 3


def test_residual_by_level_too_small(pn):
    d = pn.copy()
    d["lev"] = "a"
    d.loc[0, "lev"] = "b"
    with pytest.raises(ModelSpecificationError, match=r"level\(s\) \['b'\] have fewer than two"):
        peerstats.lmm("y ~ x + (1 | id)", d, residual_by="lev")


def test_collinear_fixed_effects(pn):
    d = pn.copy()
    d["x2"] = 2 * d["x"]
    with pytest.raises(ModelSpecificationError, match="rank deficient"):
        peerstats.lmm("y ~ x + x2 + (1 | id)", d)


def test_duplicate_subject_visit_with_structure(pn):
    d = pd.concat([pn, pn.iloc[[0]]], ignore_index=True)
    with pytest.raises(ModelSpecificationError, match="repeat a 'id' x 'visit'"):
        peerstats.lmm(
            "y ~ x + (1 | group)",
            d.fillna({"group": "c"}),
            residual="cs",
            subject="id",
            visit="visit",
        )


def test_not_a_dataframe():
    with pytest.raises(ModelSpecificationError, match="pandas DataFrame"):
        peerstats.lmm("y ~ x + (1 | id)", {"y": [1, 2]})


def test_singular_fit_warns_and_names_component():
    # y has no group structure at all: between-group variance is below what chance gives
    d = pd.DataFrame(
        {"g": np.repeat(["a", "b", "c", "d"], 3), "y": [1.0, 2, 3, 2, 3, 1, 3, 1, 2, 1, 2, 3]}
    )
    # hand check: group means are all 2, so MSB = 0 < MSW and the REML variance is 0
    with pytest.warns(SingularFitWarning, match=r"variance of \(1 \| g\) is estimated at zero"):
        res = peerstats.lmm("y ~ 1 + (1 | g)", d)
    assert res.singular and res.converged
    assert res.variance_components.set_index("group").loc["g", "variance"] == 0.0
    # residual variance is then the OLS variance (hand: sum of squares 8 / 11)
    assert res.variance_components.set_index("group").loc["Residual", "variance"] == pytest.approx(
        8 / 11, rel=1e-8
    )
    assert res.icc["g"] == 0.0
    assert "singular" in res.summary()


def test_unconverged_fit_raises(pn, monkeypatch):
    from peerstats.models import _reml

    real = _reml.REMLEngine.fit

    def fake(self, theta0, **kw):
        out = real(self, theta0, **kw)
        out["converged"] = False
        return out

    monkeypatch.setattr(_reml.REMLEngine, "fit", fake)
    with pytest.raises(ConvergenceError, match="did not converge") as exc:
        peerstats.lmm("y ~ x + arm + (1 | id)", pn)
    assert exc.value.tried
    assert exc.value.gradient is not None


def test_no_warning_on_regular_fit(pn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = peerstats.lmm("y ~ x + arm + (1 | id) + (0 + peer | group)", pn, residual_by="arm")
    assert not res.singular
    assert res.variance_components.set_index("group").loc["group", "variance"] > 0


def test_too_large_blocks_refused_with_advice():
    # 2 sites x 2,500 subjects x 2 visits: a block of 5,000 observations per site
    n = 5000
    d = pd.DataFrame(
        {
            "site": np.repeat(["a", "b"], n),
            "id": np.repeat(np.arange(n), 2),
            "x": np.tile([0.0, 1.0], n),
            "y": np.arange(2 * n) % 7 / 3.0,
        }
    )
    with pytest.raises(ModelSpecificationError, match="as a fixed effect"):
        peerstats.lmm("y ~ x + (1 | site) + (1 | id)", d)


def _three_arm(seed=5, n=45):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), 3),
            "visit": np.tile([1, 2, 4], n),
            "arm": np.repeat(np.array(["A", "B", "C"])[np.arange(n) % 3], 3),
            "site": np.repeat(np.arange(n) % 5, 3).astype(str),
        }
    )
    d["y"] = rng.normal(size=len(d)) + np.repeat(rng.normal(size=n), 3)
    return d


def test_all_missing_arm_is_an_error_not_a_dropped_level():
    d = _three_arm()
    d.loc[d["arm"] == "C", "y"] = np.nan
    with pytest.raises(ModelSpecificationError, match=r"level\(s\) \['C'\] of 'arm' have rows"):
        peerstats.lmm("y ~ arm + (1 | id)", d)


def test_numeric_visit_is_a_factor_with_a_residual_structure():
    """With residual='cs' the visit column is a factor (one mean per visit), as in mmrm: three
    visit coefficients' worth of terms, not a slope."""
    d = _three_arm()
    with warnings.catch_warnings():  # the site variance of these random data may be ~0
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = peerstats.lmm(
            "y ~ arm + visit + (1 | site)", d, subject="id", visit="visit", residual="cs"
        )
    assert [t for t in fit.coef.index if t.startswith("visit")] == ["visit[T.2]", "visit[T.4]"]


def test_inline_factor_is_refused_in_lmm():
    d = _three_arm()
    with pytest.raises(ModelSpecificationError, match="write factors as columns"):
        peerstats.lmm("y ~ C(visit) + (1 | id)", d)
