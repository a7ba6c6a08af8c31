"""The Word cell writer (issue 22.3): cells written from a parsed template give the same XML,
and the same .docx bytes, as python-docx's own calls (the reference here is python-docx: the
document must not change, only the time to write it). SYNTHETIC tables."""

from __future__ import annotations

import pandas as pd
import pytest

import peerstats
from peerstats.describe import word
from peerstats.describe.render import Table

TEXTS = [
    "",
    "abc",
    "  indented level",
    "trailing ",
    "1.2\u00a0(0.4\u00a0to\u00a02.0)",
    "<0.001",
    "Åse & Ørjan <b>",
    "line\nbreak",
    "tab\there",
    "\u2212 0.5",
]


@pytest.mark.parametrize("bold", [False, True])
@pytest.mark.parametrize("right", [False, True])
def test_cell_xml_equals_python_docx(bold: bool, right: bool) -> None:
    import docx
    from lxml import etree

    doc = docx.Document()
    grid = doc.add_table(rows=2, cols=len(TEXTS))
    for j, text in enumerate(TEXTS):
        word._cell_text(grid.rows[0].cells[j], text, bold=bold, right=right)
        word._cell_text_docx(grid.rows[1].cells[j], text, bold=bold, right=right)
    for j, text in enumerate(TEXTS):
        fast = etree.tostring(grid.rows[0].cells[j]._tc)
        slow = etree.tostring(grid.rows[1].cells[j]._tc)
        assert fast == slow, text


def test_documents_are_byte_identical(monkeypatch) -> None:
    trial = peerstats.datasets.load("peer_recovery")
    t1 = peerstats.table_one(trial)
    odd = Table(
        pd.DataFrame(),
        pd.DataFrame({"Name": ["  a", "b\nc", "d"], "Value": ["1.0 (0.5 to 2)", "", "<0.001"]}),
        caption="Odd cells",
        notes=["A note."],
    )
    fast = word.tables_to_docx([t1, odd])
    monkeypatch.setattr(word, "_cell_text", word._cell_text_docx)
    slow = word.tables_to_docx([t1, odd])
    assert fast == slow
