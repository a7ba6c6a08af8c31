"""Tables as Word documents (``.docx``, python-docx): Nordic groups write in Word.

:func:`table_to_docx` writes one :class:`~peerstats.describe.render.Table` (its display, the
caption above, the notes below) as a Word table; text cells pass through the formula-safe
cell helper (a cell pasted from Word into a spreadsheet must not run as a formula).
"""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["table_to_docx", "safe_cell", "display_text"]

try:  # the shared helper (issue 13); the fallback below is the same rule
    from peerstats._safe import safe_cell
except ImportError:  # pragma: no cover - until the shared helper is on main
    import re

    _PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

    def safe_cell(value: Any) -> Any:
        """``value`` safe in a spreadsheet: text starting with ``= + - @``, tab or carriage
        return (not a plain number) gets a leading ``'`` (OWASP "CSV Injection")."""
        if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
            return value if _PLAIN_NUMBER.match(value) else "'" + value
        return value


_NEGATIVE = __import__("re").compile(r"(?<![\w.])-(?=\d)")


def display_text(value: Any) -> str:
    """A display cell as text for Word and the display CSV: numbers formatted, a minus before
    a digit written as the minus sign U+2212 (typography, and never a formula prefix), then
    :func:`safe_cell`."""
    from peerstats.describe._format import format_value

    return str(safe_cell(_NEGATIVE.sub("\u2212", format_value(value))))


_text = display_text


def table_to_docx(table: Any, path: str | Path | None = None) -> bytes:
    """Write ``table`` as a Word document; returns its bytes (also written to ``path``).

    The display frame becomes a Word table with a bold header row (style "Table Grid"),
    numeric-looking cells right-aligned; the caption is a paragraph above, the notes small
    paragraphs below. Text cells are formula-safe (:func:`safe_cell`).
    """
    import docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    disp: pd.DataFrame = table.display
    doc = docx.Document()
    if table.caption:
        cap = doc.add_paragraph()
        run = cap.add_run(str(safe_cell(table.caption)))
        run.bold = True
    grid = doc.add_table(rows=1, cols=len(disp.columns))
    grid.style = "Table Grid"
    for cell, name in zip(grid.rows[0].cells, disp.columns):
        cell.text = ""
        r = cell.paragraphs[0].add_run(str(safe_cell(str(name))))
        r.bold = True
    numeric = [pd.api.types.is_numeric_dtype(disp[c]) for c in disp.columns]
    for rec in disp.itertuples(index=False, name=None):
        cells = grid.add_row().cells
        for j, (cell, value) in enumerate(zip(cells, rec)):
            text = _text(value)
            cell.text = text
            looks_numeric = numeric[j] or (j > 0 and text[:1].isdigit())
            if looks_numeric:
                cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
    for note in table.notes:
        para = doc.add_paragraph()
        run = para.add_run(str(safe_cell(note)))
        run.font.size = Pt(8)
    fixed = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    props = doc.core_properties
    props.created = props.modified = fixed
    props.last_modified_by = props.author = "peerstats"
    props.revision = 1
    buf = io.BytesIO()
    doc.save(buf)
    data = _reproducible_zip(buf.getvalue())
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _reproducible_zip(data: bytes) -> bytes:
    """The same .docx with fixed member timestamps: the same table gives the same bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()
