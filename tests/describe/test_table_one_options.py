"""Table 1 options that the analysis spec's table_one: key sets (issue 21): per-variable
decimals, median [Q1, Q3], the missing-row style. Expected cells are computed by hand from the
four made-up ages below (mean 25, SD sqrt(50) = 7.07; median of 20, 30 = 25)."""

import pandas as pd
import pytest

import peerstats
from peerstats.pipeline.analysis_spec import read_analysis_spec

PART = pd.DataFrame(
    {
        "subject": ["a", "b", "c", "d"],
        "arm": ["usual", "usual", "peer", "peer"],
        "age": [20.0, 30.0, 20.0, None],
        "bmi": [21.25, 23.75, 22.5, 22.5],
    }
)


def _row(t, start):
    d = t.display
    return d[d["Characteristic"].str.strip().str.startswith(start)].iloc[0].tolist()


def test_digits_per_variable_and_missing_styles():
    t = peerstats.table_one(
        PART, variables=["age", "bmi"], smd=False, overall=False, digits={"age": 0, "default": 2}
    )
    assert _row(t, "age")[1] == "25 (7)"  # 0 decimals for age
    assert _row(t, "bmi")[1] == "22.50 (1.77)"
    assert _row(t, "missing")[1:3] == ["0 (0.00%)", "1 (50.00%)"]
    t = peerstats.table_one(PART, variables=["age"], smd=False, overall=False, missing="count")
    assert _row(t, "missing")[1:3] == ["0", "1"]
    t = peerstats.table_one(PART, variables=["age"], smd=False, overall=False, missing="none")
    assert not t.display["Characteristic"].str.contains("missing").any()
    assert "Missing values are not shown." in t.notes
    with pytest.raises(ValueError, match="'row', 'count' or 'none'"):
        peerstats.table_one(PART, variables=["age"], missing="hidden")


def test_spec_keys_become_table_one_arguments():
    spec = read_analysis_spec(
        {
            "analysis": {"name": "t"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
            "table_one": {
                "digits": {"age": 0},
                "statistic": {"age": "median_iqr"},
                "missing": "count",
                "suppress_below": 5,
            },
        }
    )
    assert spec.table_one_options() == {
        "digits": {"age": 0},
        "nonnormal": ["age"],
        "missing": "count",
        "suppress_below": 5,
    }
    trial = peerstats.datasets.load("peer_recovery")
    spec.check_against(trial.spec)  # age is a row of Table 1
    bad = read_analysis_spec({**spec.raw, "table_one": {"statistic": {"agee": "median_iqr"}}})
    with pytest.raises(peerstats.SpecError, match="'agee' is not a row of Table 1"):
        bad.check_against(trial.spec)
