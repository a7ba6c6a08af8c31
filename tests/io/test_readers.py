"""Readers: every format read as text, value labels kept, nothing coerced. Synthetic data."""

import hashlib

import numpy as np
import pandas as pd
import pyreadstat
import pytest

import peerstats
from peerstats.data.trial_spec import DataSource
from peerstats.io import NA_STRINGS, ReadError, read_table, to_text


def read(path, **kw):
    return read_table(DataSource(path=path, **kw), "participants")


def test_csv_keeps_text_as_written(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,score,note\n007, 3.50 ,NA\n010,,x\n")
    t = read(path)
    assert t.data.to_dict("list") == {
        "id": ["007", "010"],
        "score": ["3.50", None],
        "note": [None, "x"],
    }
    assert t.rows.tolist() == [1, 2]


def test_blank_rows_are_reported_and_row_numbers_kept(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,x\n1,a\n,\n\n4,d\n")
    t = read(path)
    assert t.data["id"].tolist() == ["1", "4"]
    assert t.rows.tolist() == [1, 4] and t.blank_rows == [2, 3]


def test_tsv_and_sniffed_txt(tmp_path):
    (tmp_path / "p.tsv").write_text("id\tx\n1\t2,5\n")
    assert read(tmp_path / "p.tsv").data.to_dict("list") == {"id": ["1"], "x": ["2,5"]}
    (tmp_path / "p.txt").write_text("id;x\n1;a\n2;b\n")
    assert read(tmp_path / "p.txt").data["x"].tolist() == ["a", "b"]
    (tmp_path / "q.csv").write_text("id|x\n1|a\n")
    assert read(tmp_path / "q.csv", delimiter="|").data["x"].tolist() == ["a"]


def test_latin1_encoding(tmp_path):
    (tmp_path / "p.csv").write_bytes("id,ort\n1,Malmö\n".encode("latin-1"))
    assert read(tmp_path / "p.csv", encoding="latin-1").data["ort"].tolist() == ["Malmö"]


def test_excel_cells_become_faithful_text(tmp_path):
    path = tmp_path / "p.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"a": [1]}).to_excel(xw, sheet_name="first", index=False)
        pd.DataFrame(
            {
                "id": ["007", "008", "009"],
                "score": [3.0, 2.5, None],
                "when": pd.to_datetime(["2024-01-02", "2024-02-03", "2024-03-04"]),
            }
        ).to_excel(xw, sheet_name="data", index=False)
    t = read(path, sheet="data")
    assert t.data.to_dict("list") == {
        "id": ["007", "008", "009"],
        "score": ["3", "2.5", None],
        "when": ["2024-01-02", "2024-02-03", "2024-03-04"],
    }
    assert read(path).data.columns.tolist() == ["a"]


def test_missing_sheet_is_a_read_error(tmp_path):
    path = tmp_path / "p.xlsx"
    pd.DataFrame({"a": [1]}).to_excel(path, index=False)
    with pytest.raises(ReadError, match="cannot read p.xlsx"):
        read(path, sheet="nope")


def sav_frame():
    return pd.DataFrame(
        {"id": ["001", "002", "003"], "arm": [1.0, 2.0, np.nan], "score": [1.5, 2.0, np.nan]}
    )


def test_spss_value_labels_are_kept(tmp_path):
    path = tmp_path / "p.sav"
    pyreadstat.write_sav(
        sav_frame(), str(path), variable_value_labels={"arm": {1: "usual", 2: "peer"}}
    )
    t = read(path)
    assert t.data.to_dict("list") == {
        "id": ["001", "002", "003"],
        "arm": ["1", "2", None],
        "score": ["1.5", "2", None],
    }
    assert t.value_labels == {"arm": {"1": "usual", "2": "peer"}}


def test_stata_value_labels_are_kept(tmp_path):
    path = tmp_path / "p.dta"
    df = pd.DataFrame({"id": ["001", "002"], "arm": [1, 2]})
    pyreadstat.write_dta(df, str(path), variable_value_labels={"arm": {1: "usual", 2: "peer"}})
    t = read(path)
    assert t.data["arm"].tolist() == ["1", "2"]
    assert t.value_labels == {"arm": {"1": "usual", "2": "peer"}}


def test_parquet_categories_and_numbers(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "arm": pd.Categorical(["peer", "usual"], categories=["usual", "peer"]),
            "x": [1.0, 0.1],
            "ok": [True, False],
        }
    ).to_parquet(path)
    t = read(path)
    assert t.data.to_dict("list") == {
        "id": ["a", "b"],
        "arm": ["peer", "usual"],
        "x": ["1", "0.1"],
        "ok": ["1", "0"],
    }
    assert list(t.value_labels["arm"]) == ["usual", "peer"]


def test_to_text_round_trips_numbers():
    for x in [0.1, 1 / 3, 2.5e-7, 123456.75]:
        assert float(to_text(x)) == x
    assert to_text(3.0) == "3" and to_text(np.int64(7)) == "7" and to_text(np.nan) is None
    assert to_text(pd.Timestamp("2024-05-06 07:08:09")) == "2024-05-06T07:08:09"
    assert "" in NA_STRINGS and "0" not in NA_STRINGS


def spec_for(tmp_path, participants, assessments):
    return {
        "trial": {"name": "Formats (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": participants, "assessments": assessments},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit", "site": "site"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post"],
        "covariates": ["sex"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60}},
    }


PART = pd.DataFrame(
    {
        "id": ["001", "002", "003"],
        "arm": ["usual", "peer", "peer"],
        "site": ["A", "B", "B"],
        "sex": ["f", "m", "f"],
    }
)
ASSESS = pd.DataFrame(
    {
        "id": ["001", "001", "002", "003"],
        "visit": ["baseline", "post", "baseline", "post"],
        "qpr15": [30.0, 35.5, 28.0, np.nan],
    }
)


def write(fmt, frame, path):
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "xlsx":
        frame.to_excel(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "sav":
        pyreadstat.write_sav(frame, str(path))
    elif fmt == "dta":
        pyreadstat.write_dta(frame, str(path))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "parquet", "sav", "dta"])
def test_each_format_loads_the_same_trial(tmp_path, fmt):
    write(fmt, PART, tmp_path / f"p.{fmt}")
    write(fmt, ASSESS, tmp_path / f"a.{fmt}")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    trial = peerstats.load_trial(spec_for(tmp_path, f"p.{fmt}", f"a.{fmt}"), base_dir=tmp_path)
    a = trial.assessments
    assert a["subject"].tolist() == ["001", "001", "002", "003"]
    np.testing.assert_array_equal(a["qpr15"].to_numpy(), [30.0, 35.5, 28.0, np.nan])
    np.testing.assert_array_equal(a["qpr15_baseline"].to_numpy(), [30.0, 30.0, 28.0, np.nan])
    assert trial.participants["sex"].tolist() == ["f", "m", "f"]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert after == before  # input files are never written


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_value_labels_become_categoricals_in_the_trial(tmp_path, fmt):
    p = pd.DataFrame(
        {"id": ["001", "002", "003"], "arm": [1, 2, 2], "site": [2, 1, 2], "sex": [1, 2, 1]}
    )
    labels = {
        "arm": {1: "usual", 2: "peer"},
        "site": {1: "Aarhus", 2: "Odense"},
        "sex": {1: "female", 2: "male"},
    }
    writer = pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta
    writer(p, str(tmp_path / f"p.{fmt}"), variable_value_labels=labels)
    ASSESS.to_csv(tmp_path / "a.csv", index=False)
    trial = peerstats.load_trial(spec_for(tmp_path, f"p.{fmt}", "a.csv"), base_dir=tmp_path)
    part = trial.participants
    assert part["arm"].tolist() == ["usual", "peer", "peer"]
    assert list(part["site"].cat.categories) == ["Aarhus", "Odense"]
    assert part["sex"].tolist() == ["female", "male", "female"]
    assert list(part["sex"].cat.categories) == ["female", "male"]


def test_labelled_arm_with_an_unlabelled_code_is_a_failure(tmp_path):
    p = pd.DataFrame({"id": ["001", "002"], "arm": [1, 3], "site": [1, 1], "sex": [1, 1]})
    pyreadstat.write_sav(
        p, str(tmp_path / "p.sav"), variable_value_labels={"arm": {1: "usual", 2: "peer"}}
    )
    ASSESS.iloc[:2].to_csv(tmp_path / "a.csv", index=False)
    report = peerstats.validate(spec_for(tmp_path, "p.sav", "a.csv"), base_dir=tmp_path)
    f = report.failures
    assert list(zip(f["check"], f["row"], f["value"])) == [("unknown_label", 2, "3")]


def test_trailing_delimiter_does_not_shift_columns(tmp_path):
    """Exports often end every row with a delimiter: pandas would make the first column the
    index and shift every value one column left. Empty trailing fields are dropped instead."""
    p = tmp_path / "s.csv"
    p.write_text("id,session,attended\n1,1,1,\n1,2,0,\n")
    t = read(p)
    assert list(t.data.columns) == ["id", "session", "attended"]
    assert t.data.to_dict("list") == {"id": ["1", "1"], "session": ["1", "2"],
                                      "attended": ["1", "0"]}


def test_extra_non_empty_field_is_a_read_error_naming_rows(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("id,session,attended\n1,1,1\n1,2,0,oops\n2,1,1,x\n")
    with pytest.raises(ReadError, match=r"2 data row\(s\) have more fields.*first rows \[2, 3\]"):
        read(p)


def test_short_rows_are_refused_like_long_ones(tmp_path):
    """Issue 13.3b (was: padded with missing values): a row with too few fields lost a value
    or has its values shifted, as a row with too many does."""
    p = tmp_path / "s.csv"
    p.write_text("id,visit,y\n1,baseline\n2,post,3\n")
    with pytest.raises(ReadError, match=r"1 data row\(s\) have fewer fields.*first rows \[1\]"):
        read(p)
    p.write_text("id,visit,y\n1,baseline,2\n\n2,post,3\n")  # a blank line is no data row
    assert read(p).data["y"].tolist() == ["2", "3"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_repeated_header_is_refused(tmp_path, fmt):
    """pandas would rename the second 'y' to 'y.1' and the spec would silently use the first."""
    if fmt == "csv":
        p = tmp_path / "a.csv"
        p.write_text("id,visit,y,y\n1,baseline,10,55\n")
    else:
        p = tmp_path / "a.xlsx"
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.append(["id", "visit", "y", "y"])
        ws.append([1, "baseline", 10, 55])
        wb.save(p)
    with pytest.raises(ReadError, match=r"\['y'\] appear more than once"):
        read(p)
