"""Wide -> long assessments. Synthetic data."""

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.io import RawTable, split_wide_column, wide_to_long


@pytest.mark.parametrize(
    "name, expected",
    [
        ("qpr_1_post", ("qpr_1", "post")),
        ("qpr_10_post", ("qpr_10", "post")),
        ("qpr_1_fu_3", ("qpr_1", "fu_3")),
        ("qpr_1_pots", ("qpr_1", "pots")),
        ("age", None),
        ("qpr_1", None),
    ],
)
def test_split_wide_column(name, expected):
    assert (
        split_wide_column(name, ["qpr_1", "qpr_10"], ["baseline", "post", "fu_3"], "_") == expected
    )


def test_wide_to_long_makes_the_grid_with_wide_row_numbers():
    data = pd.DataFrame(
        {"id": ["a", "b"], "x.baseline": ["1", None], "x.post": ["2", "3"], "age": ["30", "40"]},
        dtype=object,
    )
    t = RawTable("assessments", None, data, np.array([1, 3]))
    long, failures = wide_to_long(
        t, subject="id", visit="visit", visits=["baseline", "post"], bases=["x"], sep="."
    )
    assert failures == []
    assert long.data.to_dict("list") == {
        "id": ["a", "a", "b", "b"],
        "visit": ["baseline", "post"] * 2,
        "x": ["1", "2", None, "3"],
        "age": ["30", "30", "40", "40"],
    }
    assert long.rows.tolist() == [1, 1, 3, 3]


def spec(assessments):
    return {
        "trial": {"name": "Wide (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": assessments},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post", "fu3"],
        "outcomes": {
            "qpr15": {"column": "qpr15", "min": 0, "max": 60},
            "wsas": {"column": "wsas", "min": 0, "max": 40},
        },
    }


@pytest.fixture
def files(tmp_path):
    (tmp_path / "p.csv").write_text("id,arm\n01,usual\n02,peer\n")
    (tmp_path / "wide.csv").write_text(
        "id,qpr15_baseline,qpr15_post,qpr15_fu3,wsas_baseline,wsas_fu3\n"
        "01,30,35,,10,8\n"
        "02,28,40,41,12,\n"
    )
    (tmp_path / "long.csv").write_text(
        "id,visit,qpr15,wsas\n01,baseline,30,10\n01,post,35,\n01,fu3,,8\n"
        "02,baseline,28,12\n02,post,40,\n02,fu3,41,\n"
    )
    return tmp_path


def test_wide_and_long_give_the_same_trial(files):
    wide = peerstats.load_trial(
        spec({"path": "wide.csv", "layout": "wide", "sep": "_"}), base_dir=files
    )
    long = peerstats.load_trial(spec("long.csv"), base_dir=files)
    pd.testing.assert_frame_equal(wide.assessments, long.assessments)
    a = wide.assessments
    assert a["qpr15"].tolist()[:3] == [30.0, 35.0, pytest.approx(np.nan, nan_ok=True)]
    assert a["wsas_baseline"].tolist() == [10.0] * 3 + [12.0] * 3


def test_wide_failures_name_the_wide_cell_and_row(files):
    (files / "wide.csv").write_text(
        "id,qpr15_baseline,qpr15_post,qpr15_fu3,qpr15_pots,wsas_baseline,wsas_fu3\n"
        "01,30,35,,1,10,80\n"
        "02,28,4o,41,,12,\n"
        "02,28,40,41,,12,\n"
    )
    report = peerstats.validate(spec({"path": "wide.csv", "layout": "wide"}), base_dir=files)
    got = sorted(
        zip(
            report.failures["check"],
            report.failures["row"].astype(object).fillna(0),
            report.failures["column"],
        )
    )
    assert got == [
        ("duplicate_subject", 3, "id"),
        ("non_numeric", 2, "qpr15_post"),
        ("out_of_range", 1, "wsas_fu3"),
        ("unknown_label", 0, "qpr15_pots"),
    ]
    msg = report.failures.set_index("check").loc["unknown_label", "message"]
    assert "did you mean 'post'?" in msg


def test_outcome_absent_from_wide_file(files):
    (files / "wide.csv").write_text("id,qpr15_baseline\n01,30\n02,28\n")
    f = peerstats.validate(spec({"path": "wide.csv", "layout": "wide"}), base_dir=files).failures
    assert list(zip(f["check"], f["column"])) == [("missing_column", "wsas")]
    assert "no column wsas_<visit>" in f["message"].iloc[0]


def test_base_column_without_visit_suffix_is_ambiguous(files):
    (files / "wide.csv").write_text(
        "id,qpr15,qpr15_baseline,wsas_baseline\n01,1,30,10\n02,2,28,12\n"
    )
    f = peerstats.validate(spec({"path": "wide.csv", "layout": "wide"}), base_dir=files).failures
    assert list(zip(f["check"], f["column"])) == [("ambiguous_column", "qpr15")]


def test_visit_without_any_column_is_a_warning(files):
    """The fixture's wide file has no wsas_post column: wsas is missing for everyone at post,
    which is said, not silent (it may be by design, so it is not a failure)."""
    report = peerstats.validate(spec({"path": "wide.csv", "layout": "wide"}), base_dir=files)
    assert report.ok
    assert any("no column wsas_<visit> for visit(s) ['post']" in w for w in report.warnings)
    assert not any("qpr15_<visit>" in w for w in report.warnings)
