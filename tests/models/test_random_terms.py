"""Parsing of lme4-style random terms (expected splits written by hand from lme4's rules)."""

import numpy as np
import pandas as pd
import pytest

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._random import RandomTerm, build_random_design, split_formula


@pytest.mark.parametrize(
    "formula, fixed, terms",
    [
        ("y ~ x + (1 | id)", "y ~ x", [("1", "id")]),
        (
            "qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group)",
            "qpr ~ baseline + arm * visit",
            [("1", "id"), ("0 + peer", "group")],
        ),
        ("y ~ (1 + t | id) + x", "y ~ x", [("1 + t", "id")]),
        ("y ~ x + (1 | site/group)", "y ~ x", [("1", "site"), ("1", "site:group")]),
        ("y ~ (1 | id)", "y ~ 1", [("1", "id")]),
        ("y ~ x*(a + b) + (1|id)", "y ~ x*(a + b)", [("1", "id")]),
    ],
)
def test_split_formula(formula, fixed, terms):
    got_fixed, got_terms = split_formula(formula)
    assert got_fixed == fixed
    assert got_terms == [RandomTerm(lhs=a, group=b) for a, b in terms]


@pytest.mark.parametrize(
    "bad", ["y ~ x + (1 || id)", "y ~ x + (1 | id", "x + (1|id)", "y ~ (| id)", "y ~ (1 | 3id)"]
)
def test_split_formula_rejects(bad):
    with pytest.raises(ModelSpecificationError):
        split_formula(bad)


def test_partially_nested_design_controls_have_no_group():
    data = pd.DataFrame(
        {
            "peer": [1, 1, 1, 0, 0],
            "group": ["g2", "g1", "g2", None, None],
        }
    )
    d = build_random_design(data, RandomTerm("0 + peer", "group"))
    assert d.levels == ("g1", "g2")
    np.testing.assert_array_equal(d.codes, [1, 0, 1, -1, -1])
    np.testing.assert_array_equal(d.Z[:, 0], [1, 1, 1, 0, 0])


def test_missing_group_with_nonzero_term_is_an_error():
    data = pd.DataFrame({"group": ["a", None, "b"]})
    with pytest.raises(ModelSpecificationError, match="grouping value missing on 1 row"):
        build_random_design(data, RandomTerm("1", "group"))


def test_interaction_group_labels_and_slope_columns():
    data = pd.DataFrame(
        {"site": ["s1", "s1", "s2"], "group": ["a", "b", "a"], "t": [0.0, 1.0, 2.0]}
    )
    d = build_random_design(data, RandomTerm("1 + t", "site:group"))
    assert d.levels == ("s1:a", "s1:b", "s2:a")
    assert d.columns == ("(Intercept)", "t")
    np.testing.assert_array_equal(d.Z, [[1, 0], [1, 1], [1, 2]])


def test_unknown_group_column():
    with pytest.raises(ModelSpecificationError, match="not in data"):
        build_random_design(pd.DataFrame({"x": [1.0]}), RandomTerm("1", "nope"))
