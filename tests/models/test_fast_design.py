"""The fast design path (models/_fast_design.py) against formulaic itself.

Reference: formulaic's ``model_matrix`` on the same frame (the code the fast path replaces).
Tolerance: none - columns, term indices and every bit of X (including the sign of zeros) must
be identical, so that every number of a fit is unchanged.
"""

from __future__ import annotations

import formulaic
import numpy as np
import pandas as pd
import pytest

from peerstats.exceptions import ModelSpecificationError
from peerstats.models import _design
from peerstats.models._design import build_fixed_design, required_variables
from peerstats.models._fast_design import fast_layout, simple_terms

FAST = [
    "a",
    "x",
    "a + b + x",
    "x + a * b",
    "a * b + x",
    "b * a",
    "a * x",
    "x * a",
    "a * b * x",
    "x * b * a",
    "a * b + b:a",
    "b:a + a * b",
    "a + b + c + a:b + a:c + b:c + a:b:c",
    "a + b + x + a:b + x:a + x:b + b:a:x",
    "x * z + a",
    "x * z * a",
    "k * a",
    "k * x * a",
    "a + a",
    "tf * a",
    "c * a",
    "k * tf",
    "x * tf * a",
    "tf * k * x",
]

SLOW = [
    "a:b",  # not hierarchical
    "a + a:b",
    "x:a",
    "C(a)",
    "np.log(x) + a",
    "a + b - 1",
    "0 + a",
    "1 + a",
    "(a + b) * x",
    "a*b - a:b",
    "k * k2",  # two integer columns in one product
    "a + I(x**2)",
    "`odd name` + a",
]


def _data(n: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "a": pd.Categorical(rng.choice(["ctl", "trt", "zzz"], n), ["zzz", "ctl", "trt"]),
            "b": rng.choice(["V1", "V2", "V3", "V4"], n),
            "c": rng.choice([1.5, 2.0], n),  # numeric (float) column
            "tf": rng.choice([True, False], n),
            "x": rng.normal(size=n) * 10 - 3,  # negative values: signed zeros in products
            "z": rng.normal(size=n),
            "k": rng.integers(-5, 90, n),
            "k2": rng.integers(0, 9, n),
            "odd name": rng.normal(size=n),
        }
    )


def _bits_equal(A: np.ndarray, B: np.ndarray) -> bool:
    return A.shape == B.shape and np.array_equal(A.view(np.int64), B.view(np.int64))


def _with_formulaic(monkeypatch, formula, d, **kw):
    monkeypatch.setattr(_design, "fast_layout", lambda *a, **k: None)
    try:
        return build_fixed_design(formula, d, extra_columns=[], check_rank=False, **kw)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("rhs", FAST)
def test_fast_design_equals_formulaic(rhs, monkeypatch):
    d = _data()
    ref = {"a": "trt"} if "a" in required_variables(rhs) else None
    fast = build_fixed_design(
        "y ~ " + rhs, d, extra_columns=[], reference=ref, check_rank=False
    )
    assert fast.fast is not None and fast.model_spec is None
    slow = _with_formulaic(monkeypatch, "y ~ " + rhs, d, reference=ref)
    assert slow.fast is None
    assert fast.columns == slow.columns
    assert fast.term_columns == slow.term_columns
    assert _bits_equal(fast.X, slow.X)
    assert fast.factors == slow.factors and fast.numerics == slow.numerics
    assert required_variables(rhs) == sorted(str(v) for v in formulaic.Formula(rhs).required_variables)
    # new data under the fitted coding (a reference grid with shuffled rows)
    new = d.sample(frac=1.0, random_state=3).iloc[:17]
    for v, values in fast.factor_values.items():
        new[v] = pd.Categorical(new[v], categories=values)
    assert _bits_equal(fast.matrix(new), slow.matrix(new))
    assert _bits_equal(fast.matrix(new), np.asarray(fast.spec().get_model_matrix(new), float))


@pytest.mark.parametrize("rhs", SLOW)
def test_other_formulas_go_to_formulaic(rhs):
    assert simple_terms(rhs) is None or fast_layout(rhs, _data(), {"a": 0, "b": 0}) is None


def test_level_types_and_names(monkeypatch):
    """Integer, float, boolean and text levels with odd characters are named as formulaic."""
    rng = np.random.default_rng(4)
    n = 40
    d = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "vi": pd.Categorical(rng.choice([3, 1, 2], n)),
            "vf": pd.Categorical(rng.choice([0.5, 2.5, 10.0], n)),
            "vb": rng.choice([True, False], n),
            "vs": rng.choice(["it's", 'x"y', "a:b", "sp ace"], n),
            "x": rng.normal(size=n),
        }
    )
    for rhs in ("vi * vf + vb + vs", "vs * x + vi", "vb * vi * x"):
        fast = build_fixed_design("y ~ " + rhs, d, extra_columns=[], check_rank=False)
        slow = _with_formulaic(monkeypatch, "y ~ " + rhs, d)
        assert fast.fast is not None
        assert fast.columns == slow.columns and fast.term_columns == slow.term_columns
        assert _bits_equal(fast.X, slow.X)


def test_new_data_it_cannot_code_goes_to_formulaic(monkeypatch):
    """Missing values and unknown levels in new data: formulaic's answer, as before."""
    d = _data()
    fast = build_fixed_design("y ~ a * x", d, extra_columns=[])
    slow = _with_formulaic(monkeypatch, "y ~ a * x", d)
    new = d.iloc[:5].copy()
    new.loc[new.index[1], "x"] = np.nan
    new["a"] = pd.Categorical(new["a"], categories=fast.factor_values["a"])
    A, B = fast.matrix(new), slow.matrix(new)
    assert np.array_equal(A, B, equal_nan=True) and np.isnan(A[1]).any()


def test_single_level_factor_keeps_formulaic_error():
    d = _data()
    d["one"] = "only"
    with pytest.raises(ModelSpecificationError, match="cannot be estimated"):
        build_fixed_design("y ~ one + x", d, extra_columns=[])


def test_mmrm_fit_identical_with_and_without_fast_path(monkeypatch):
    """A whole FEV fit (SAS reference data) is bit-identical through both design paths."""
    from pathlib import Path

    import peerstats

    fev = pd.read_csv(Path(__file__).parents[1] / "reference" / "sas_fev" / "fev_data.csv")

    def fit():
        f = peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", fev, subject="USUBJID",
                           visit="AVISIT", reference={"ARMCD": "PBO"})
        return f, f.contrasts("ARMCD", by="AVISIT")

    f1, c1 = fit()
    assert f1._design.fast is not None
    monkeypatch.setattr(_design, "fast_layout", lambda *a, **k: None)
    f2, c2 = fit()
    assert f2._design.fast is None
    pd.testing.assert_frame_equal(f1.coef, f2.coef, check_exact=True)
    pd.testing.assert_frame_equal(c1, c2, check_exact=True)
    assert f1.neg2loglik == f2.neg2loglik


@pytest.mark.parametrize("column", ["a", "b", "x", "k"])
def test_missing_covariate_of_any_dtype_is_named(column):
    """The per-column missing-value check (Categorical, text, float; integer columns cannot
    hold NaN, so a missing value makes them float) refuses the row as before."""
    d = _data()
    d[column] = d[column].astype(object)
    d.loc[d.index[[3, 7]], column] = None
    if column == "a":
        d["a"] = pd.Categorical(d["a"])
    elif column in ("x", "k"):
        d[column] = d[column].astype(float)
    with pytest.raises(ModelSpecificationError, match=r"missing values in model columns.*\[3, 7\]"):
        build_fixed_design("y ~ a * b + x + k", d, extra_columns=[])


@pytest.mark.parametrize("rhs", FAST)
def test_terms_equal_formulaic_terms(rhs):
    """The terms (type III tests, subgroup interactions) are formulaic's, in its order."""
    from types import SimpleNamespace

    from peerstats.models import emmeans

    want = [[str(f.expr) for f in t.factors] for t in formulaic.Formula(rhs)]
    assert want[0] == ["1"]
    assert emmeans._rhs_terms(SimpleNamespace(formula="y ~ " + rhs)) == (True, want[1:])


@pytest.mark.parametrize(
    "rhs",
    ["1", "0", "0 + 1", "0 + delivered", "1 + delivered", "delivered + 0", " 0 +  x ",
     "0 + a:b", "0 + a * b", "-1 + x", "C(a) + 1", ""],
)
def test_required_variables_of_random_term_sides_equal_formulaic(rhs):
    """A random term's left-hand side (``0 + delivered``) is read without formulaic (issue 22)
    and names the same variables as formulaic's ``required_variables`` (the reference)."""
    assert required_variables(rhs) == sorted(str(v) for v in formulaic.Formula(rhs).required_variables)
