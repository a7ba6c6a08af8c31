"""``write_csv`` writes a frame with nothing to neutralise as it is (issue 22): the bytes must
be those of ``safe_frame(df).to_csv(...)``, the reference (pandas' own writer on the
neutralised copy). SYNTHETIC frames, and the tidy tables of the bundled peer_recovery run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peerstats._safe import _unchanged, safe_frame, write_csv


def _reference(df: pd.DataFrame, path) -> None:
    safe_frame(df).to_csv(path, index=False, lineterminator="\n")


FRAMES = {
    "plain": pd.DataFrame({"a": ["x", "y"], "b": [1.5, np.nan], "n": [1, 2]}),
    "object text and missing": pd.DataFrame(
        {"a": pd.Series(["x", None, np.nan], dtype=object), "b": [True, False, True]}
    ),
    "object numbers": pd.DataFrame({"a": pd.Series([1, 2.5], dtype=object)}),
    "object mixed": pd.DataFrame({"a": pd.Series(["x", 2], dtype=object)}),
    "object all missing": pd.DataFrame({"a": pd.Series([None, None], dtype=object)}),
    "formula cell": pd.DataFrame({"a": ["=1+1", "ok"]}),
    "indented formula": pd.DataFrame({"a": ["  -x", "ok"]}),
    "plain number text": pd.DataFrame({"a": ["-1.5", "+2"]}),
    "formula header": pd.DataFrame({"=bad": ["a"], "ok": ["b"]}),
    "categorical": pd.DataFrame(
        {"a": pd.Categorical(["@x", "b"]), "c": pd.Categorical(["u", "v"])}
    ),
    "string dtype": pd.DataFrame({"a": pd.array(["x", None, "y,z"], dtype="string")}),
    "nullable ints": pd.DataFrame({"n": pd.array([-3, None], dtype="Int64")}),
    "quotes and breaks": pd.DataFrame({"a": ['say "hi"', "two\nlines", ""]}),
    "multiindex": pd.DataFrame(
        [[1, "x"]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])
    ),
    "duplicate names": pd.DataFrame([["x", "y"]], columns=["a", "a"]),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_write_csv_bytes_equal_the_neutralised_copy(name, tmp_path) -> None:
    df = FRAMES[name]
    write_csv(df, tmp_path / "fast.csv")
    _reference(df, tmp_path / "ref.csv")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_shortcut_only_when_nothing_changes() -> None:
    assert _unchanged(FRAMES["plain"]) and _unchanged(FRAMES["object text and missing"])
    assert _unchanged(FRAMES["string dtype"]) and _unchanged(FRAMES["nullable ints"])
    for name in ("object numbers", "object mixed", "formula cell", "indented formula"):
        assert not _unchanged(FRAMES[name]), name
    assert not _unchanged(FRAMES["formula header"]) and not _unchanged(FRAMES["categorical"])
    assert not _unchanged(FRAMES["multiindex"])


def test_run_tables_equal(tmp_path) -> None:
    import peerstats

    trial = peerstats.datasets.load("peer_recovery")
    tables = {"table_one": peerstats.table_one(trial).data}
    for name, df in tables.items():
        write_csv(df, tmp_path / f"{name}.csv")
        _reference(df, tmp_path / f"{name}_ref.csv")
        assert (tmp_path / f"{name}.csv").read_bytes() == (
            tmp_path / f"{name}_ref.csv"
        ).read_bytes()
