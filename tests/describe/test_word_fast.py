"""The fast Word writer (issue 22): every document it writes must be, byte for byte, the one
python-docx writes by itself (``_docxref.reference_docx``: a fresh blank document, python-docx's
table, paragraph and section API, ``Document.save`` and :mod:`zipfile`), and must open in
python-docx and pass :meth:`zipfile.ZipFile.testzip`. The reference is python-docx and
zipfile: the documents must not change, only the time to write them. SYNTHETIC tables."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

import peerstats
from peerstats.describe import _docxfast, _docxref, word
from peerstats.describe.render import Table


def _table(columns: dict, caption=None, notes=()) -> Table:
    return Table(pd.DataFrame(), pd.DataFrame(columns), caption=caption, notes=list(notes))


@pytest.fixture(scope="module")
def table_one() -> Table:
    return peerstats.table_one(peerstats.datasets.load("peer_recovery"))


def _wide() -> Table:
    cols = {"Outcome": ["QPR-15 total", "Empowerment"]}
    for k in range(9):
        cols[f"Estimate (95% CI) {k}"] = ["1.25 (0.40 to 2.10)", "-0.31 (-0.90 to 0.28)"]
    return _table(cols, caption="Wide", notes=["Adjusted for baseline."])


ODD = _table(
    {
        "Name & <b>": ["  indented", "b\nc", "d\te", "=1+2", ""],
        "Value": ["1.0 (0.5 to 2)", "", "<0.001", "-0.00", "-1.5"],
    },
    caption="Odd cells",
    notes=["A note.", "second "],
)
SPACED = _table(
    {"A": ["x y ", "Åse & Ørjan", "\u2212 0.5", "emoji \U0001f600", "nel\u0085 ls\u2028"]},
    caption=" spaced & <caption> ",
    notes=[" first & <x>", "then ", "last"],
)
NO_CAPTION = _table({"A": ["x"], "B": [1.5]}, caption=None)
BREAK_CAPTION = _table({"A": ["x"]}, caption="line\nbreak", notes=["tab\there"])
HEADER_ONLY = _table(
    {"A": pd.Series([], dtype=object), "Only a header": pd.Series([], dtype=object)}
)


def _same(entries, page="a4") -> bytes:
    fast = word._Writer(page).document(entries)
    slow = _docxref.reference_docx(entries, page)
    assert fast == slow
    return fast


@pytest.mark.parametrize("page", ["a4", "letter"])
def test_one_table_is_byte_identical(table_one, page) -> None:
    for orientation in ("auto", "portrait", "landscape"):
        for number in (None, 3):
            _same([(table_one, orientation, number)], page)


@pytest.mark.parametrize(
    "table", [ODD, SPACED, NO_CAPTION, BREAK_CAPTION, HEADER_ONLY, _wide()], ids=repr
)
def test_awkward_tables_are_byte_identical(table) -> None:
    for number in (None, 1):
        _same([(table, "auto", number)])


def test_several_sections_portrait_and_landscape(table_one) -> None:
    tables = [table_one, ODD, _wide(), SPACED, NO_CAPTION, BREAK_CAPTION, HEADER_ONLY]
    for page in ("a4", "letter"):
        entries = [(t, "auto", k + 1) for k, t in enumerate(tables)]
        data = _same(entries, page)
        assert data == word.tables_to_docx(tables, page=page)
    import docx
    from docx.enum.section import WD_ORIENT

    doc = docx.Document(io.BytesIO(data))
    assert len(doc.tables) == len(tables) and len(doc.sections) == len(tables)
    assert doc.sections[2].orientation == WD_ORIENT.LANDSCAPE
    assert doc.sections[0].orientation == WD_ORIENT.PORTRAIT
    assert doc.tables[1].cell(3, 0).text == "d\te"


def test_public_functions_use_python_docx_cells_as_reference(table_one, monkeypatch) -> None:
    """The reference written with python-docx's own cell calls (not the cell template)."""
    fast = word.table_to_docx(table_one, number=2)
    many = word.tables_to_docx([table_one, ODD])
    monkeypatch.setattr(word, "_cell_text", word._cell_text_docx)
    assert fast == _docxref.reference_docx([(table_one, "auto", 2)], "a4")
    assert many == _docxref.reference_docx([(table_one, "auto", 1), (ODD, "auto", 2)], "a4")


def test_document_opens_and_zip_is_sound(table_one, tmp_path) -> None:
    import docx

    path = tmp_path / "t.docx"
    data = word.table_to_docx(table_one, path, number=1)
    assert path.read_bytes() == data
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    doc = docx.Document(io.BytesIO(data))
    assert doc.tables[0].cell(0, 0).text == "Characteristic"
    assert doc.core_properties.author == "peerstats"
    assert doc.styles["Normal"].font.name == word.FONT


def test_writer_lays_out_each_table_once(table_one) -> None:
    writer = word._Writer()
    first = writer.prepared(table_one, "auto")
    assert writer.prepared(table_one, "auto") is first
    assert writer.prepared(table_one, "landscape") is not first
    other = _table({"Characteristic": ["x"]})
    assert writer.prepared(other, "auto").cells != first.cells


def test_not_plain_text_takes_python_docx_path() -> None:
    assert _docxfast.table_xml(["a"], [["b\nc"]], [False], [3.0], 18) is None
    assert _docxfast.table_xml(["a\t"], [["b"]], [False], [3.0], 18) is None
    assert _docxfast.table_xml(["a"], [["b & c"]], [False], [3.0], 18) is not None
    parts = [b"<a>", b"</a>"]
    assert _docxfast.fill(parts, ["x\x01"]) is None
    assert _docxfast.fill(parts, [" x&y"]) == b'<a><w:t xml:space="preserve"> x&amp;y</w:t></a>'
    assert _docxfast.fill(parts, [""]) == b"<a></a>"


def test_text_that_xml_cannot_hold_fails_as_before() -> None:
    bad = _table({"A": ["ok", "bad \ufffe"]})
    with pytest.raises(ValueError):
        _docxref.reference_docx([(bad, "auto", None)], "a4")
    with pytest.raises(ValueError):
        word.table_to_docx(bad)


def _members() -> list[_docxfast.Member]:
    return [
        _docxfast.member("[Content_Types].xml", b"<Types/>" * 50),
        _docxfast.member("word/document.xml", bytes(range(256)) * 40),
        _docxfast.member("word/t\u00e9st.xml", b""),
    ]


def test_hand_written_zip_equals_zipfile() -> None:
    members = _members()
    data = _docxfast.zip_bytes(members)
    assert data == _docxfast.zip_bytes_zipfile(members)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    assert zf.read("word/document.xml") == bytes(range(256)) * 40
    assert [i.filename for i in zf.infolist()] == [m.name for m in members]


def test_large_documents_go_through_zipfile(monkeypatch) -> None:
    members = _members()
    monkeypatch.setattr(_docxfast, "_SMALL", 10)
    called = []
    real = _docxfast.zip_bytes_zipfile
    monkeypatch.setattr(_docxfast, "zip_bytes_zipfile", lambda m: called.append(1) or real(m))
    assert _docxfast.zip_bytes(members) == real(members)
    assert called


def test_display_text_minus_rules() -> None:
    assert word.display_text(-1.5) == "\u22121.50"
    assert word.display_text("-0.00") == "0.00"
    assert word.display_text("a-1") == "a-1"
    assert word.display_text("=cmd") == "'=cmd"
    assert word.display_text(None) == ""


def _pandas_csv(table: Table) -> str:
    """The display CSV as pandas writes it (Table.to_csv before issue 22): the reference."""
    disp = table.display.copy()
    disp.columns = [word.display_text(str(c)) for c in disp.columns]
    for c in disp.columns:
        disp[c] = [word.display_text(v) for v in disp[c]]
    return disp.to_csv(index=False, lineterminator="\n")


QUOTED = _table({"a, b": ['say "hi"', "two\nlines", "", "=x"], "c": [1.5, None, -2.0, 0.0]})
SINGLE_EMPTY = _table({"only": ["", "x", ""]})


@pytest.mark.parametrize(
    "table", [ODD, SPACED, NO_CAPTION, BREAK_CAPTION, HEADER_ONLY, QUOTED, SINGLE_EMPTY, _wide()]
)
def test_display_csv_equals_pandas(table, tmp_path) -> None:
    assert table.to_csv() == _pandas_csv(table)
    writer = word._Writer()
    assert writer.csv(table, tmp_path / "t.csv") == _pandas_csv(table)
    assert (tmp_path / "t.csv").read_text(encoding="utf-8") == _pandas_csv(table)


def test_display_csv_of_run_table_and_repeated_header(table_one) -> None:
    assert table_one.to_csv() == _pandas_csv(table_one)
    twice = Table(pd.DataFrame(), pd.DataFrame([["x", "y"]], columns=["a", "a"]))
    assert twice.to_csv() == _pandas_csv(twice)


def test_warm_up_in_a_thread_while_writing(table_one, monkeypatch) -> None:
    import threading

    monkeypatch.setattr(_docxfast, "_TEMPLATE", [])
    monkeypatch.setattr(word, "_PARAS", {})
    thread = threading.Thread(target=word.warm_up)
    thread.start()
    data = word.tables_to_docx([table_one, SPACED, NO_CAPTION])
    thread.join()
    assert _docxfast._TEMPLATE and len(word._PARAS) == 5
    entries = [(table_one, "auto", 1), (SPACED, "auto", 2), (NO_CAPTION, "auto", 3)]
    assert data == _docxref.reference_docx(entries, "a4") == word._Writer().document(entries)


def test_package_blobs_without_python_docx_writer_steps(monkeypatch) -> None:
    """Another python-docx without ``PackageWriter``'s steps: the members are read back from
    ``Document.save``, the same names, order and bytes."""
    doc = word._blank_finished()
    steps = _docxfast.package_blobs(doc)
    monkeypatch.setattr(_docxfast, "_WRITER_STEPS", ("_write_parts", "_a_later_name"))
    saved = _docxfast.package_blobs(doc)
    assert [n for n, _ in saved] == [n for n, _ in steps]
    assert saved == steps
