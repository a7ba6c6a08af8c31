"""python-docx's own way of writing our Word documents: the reference of the fast path of
:mod:`peerstats.describe.word` (issue 22), which must equal it byte for byte
(``tests/describe/test_word_fast.py``). A fresh blank document, python-docx's table, paragraph
and section API, its package writer and :mod:`zipfile`; no cache. Used by tests and
``benchmarks``, not by peerstats itself.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from peerstats.describe.word import (
    Orientation,
    Page,
    _blank_finished,
    _build_table,
    _caption,
    _column_widths,
    _notes,
    _orientation,
    _rows,
    _set_section,
)

__all__ = ["reference_docx"]


def _place(
    doc: Any, table: Any, page: Page, orientation: Orientation, first: bool, number: int | None
) -> str:
    """Add one table in its own section (a landscape one when it is wide); its orientation."""
    from docx.enum.section import WD_SECTION

    cells = _rows(table)
    header, rows, numeric = cells
    widths = _column_widths(rows, header, numeric)
    orient = _orientation(widths, page, orientation)
    section = doc.sections[0] if first else doc.add_section(WD_SECTION.NEW_PAGE)
    text_width = _set_section(section, page, orient)
    _caption(doc, table, number)
    _build_table(doc, text_width, widths, header, rows, numeric)
    _notes(doc, list(table.notes))
    return orient


def reference_docx(entries: list[tuple[Any, Orientation, int | None]], page: Page) -> bytes:
    """The .docx of ``(table, orientation, number)`` entries built by python-docx alone (a
    fresh blank document, its table API, ``Document.save``): what ``word._Writer`` must
    equal byte for byte."""
    doc = _blank_finished()
    for k, (table, orientation, number) in enumerate(entries):
        _place(doc, table, page, orientation, k == 0, number)
    return _save_reproducible(doc)


def _save_reproducible(doc: Any) -> bytes:
    """``doc.save`` (python-docx's package writer and :mod:`zipfile`), the zip then written
    again with every member at a fixed time (1980-01-01) and mode (rw-r--r--): the same
    table gives the same bytes."""
    buf = io.BytesIO()
    doc.save(buf)
    src = zipfile.ZipFile(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()
