"""Tables as Word documents (``.docx``, python-docx) a journal accepts (issue 21).

:func:`table_to_docx` writes one :class:`~peerstats.describe.render.Table`, and
:func:`tables_to_docx` several in one document, numbered and captioned, in the style of APA
(7th ed., tables: no vertical rules, a rule above and below the header and below the last
row, a bold header, "Note." before the notes) which AMA shares. Pages are A4 (or US Letter),
margins 2.5 cm (1 inch); a table wider than the portrait text width gets a landscape section.
Cells of numbers and confidence intervals never wrap (their spaces are no-break spaces), and
the columns are sized to their text so that the table fits the text width. Text cells pass
through the formula-safe cell helper (a cell pasted into a spreadsheet must not run).

Speed (issue 22): python-docx makes the template (its default document with our Normal style)
and every paragraph shape, once per process; a document is then written as text and zipped
by hand (:mod:`peerstats.describe._docxfast`: only ``word/document.xml`` differs between two
of our documents, so the other parts are deflated once, and python-docx's package writer
deflated all of them again for each file). The bytes are those of python-docx's own save
(``_docxref.reference_docx``, tested byte for byte); text that python-docx writes otherwise
(tabs, line breaks) takes python-docx's path.
"""

from __future__ import annotations

import copy
import datetime
import io
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from peerstats.describe import _docxfast
from peerstats.describe._format import format_value

__all__ = [
    "table_to_docx",
    "tables_to_docx",
    "safe_cell",
    "display_text",
    "PAGES",
]

Page = Literal["a4", "letter"]
Orientation = Literal["auto", "portrait", "landscape"]
#: page (width, height) and margin in cm
PAGES = {"a4": (21.0, 29.7, 2.5), "letter": (21.59, 27.94, 2.54)}
#: the font of the document (APA/AMA manuscripts: Times New Roman)
FONT = "Times New Roman"
#: font sizes (pt) of the table body and of the notes
BODY_PT, NOTE_PT = 9.0, 8.0
#: width of one character of the body font, cm (9 pt Times: digits 0.5 em = 0.16 cm, with room)
CHAR_CM = 0.19
#: cell padding left + right, cm (Word's default 0.19 cm each side)
PAD_CM = 0.4

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


_NEGATIVE = re.compile(r"(?<![\w.])-(?=\d)")
_NEGATIVE_ZERO = re.compile(r"(?<![\w.])-(?=0(?:\.0*)?(?![\d.]))")  # "-0.00" -> "0.00"


def display_text(value: Any) -> str:
    """A display cell as text for Word and the display CSV: numbers formatted, a minus before
    a digit written as the minus sign U+2212 (typography, and never a formula prefix), then
    :func:`safe_cell`."""
    text = format_value(value)
    if "-" in text:  # both rules need a hyphen-minus
        text = _NEGATIVE.sub("\u2212", _NEGATIVE_ZERO.sub("", text))
    return str(safe_cell(text))


_text = display_text


def _column_widths(rows: list[list[str]], header: list[str], numeric: list[bool]) -> list[float]:
    """Natural width (cm) of each column: the longest cell of a column of numbers (they never
    wrap); for a column of text, its longest word or up to 28 (first column) or 20 characters,
    where a label may wrap at spaces."""
    widths = []
    for j, name in enumerate(header):
        cells = [r[j] for r in rows]
        if numeric[j]:
            longest = max([len(c) for c in cells] + [1])
        else:
            wrap = 28 if j == 0 else 20
            words = [len(w) for c in cells for w in c.split()]
            longest = max([min(len(c), wrap) for c in cells] + words + [1])
        head = max([len(w) for w in str(name).split()] + [6])  # headers wrap at spaces
        widths.append(max(longest, head) * CHAR_CM + PAD_CM)
    return widths


def _orientation(widths: list[float], page: Page, orientation: Orientation) -> str:
    if orientation != "auto":
        return orientation
    w, _, margin = PAGES[page]
    return "portrait" if sum(widths) <= w - 2 * margin else "landscape"


def _set_section(section: Any, page: Page, orient: str) -> float:
    """Page size, orientation and margins of a section; returns the text width (cm)."""
    from docx.enum.section import WD_ORIENT
    from docx.shared import Cm

    w, h, margin = PAGES[page]
    if orient == "landscape":
        w, h = h, w
    section.orientation = WD_ORIENT.LANDSCAPE if orient == "landscape" else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(w), Cm(h)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(margin))
    return w - 2 * margin


def _border(cell: Any, **edges: str) -> None:
    """Set cell borders, e.g. ``top="single"``, ``bottom="nil"`` (OOXML ``w:tcBorders``)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = tc_pr.find(qn("w:tcBorders"))
    if borders is None:
        borders = OxmlElement("w:tcBorders")
        tc_pr.append(borders)
    for edge, val in edges.items():
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), val)
        if val != "nil":
            el.set(qn("w:sz"), "8")  # 1 pt
            el.set(qn("w:color"), "000000")
        borders.append(el)


def _no_table_borders(tbl: Any) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tbl_pr = tbl._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), "nil")
        borders.append(el)
    tbl_pr.append(borders)
    layout = OxmlElement("w:tblLayout")
    layout.set(qn("w:type"), "fixed")
    tbl_pr.append(layout)


#: text that python-docx writes as one ``w:t`` (tabs, line breaks and other control
#: characters become ``w:tab``/``w:br`` there: those cells take the python-docx path)
_PLAIN_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")
_TEMPLATES: dict[tuple[bool, bool], Any] = {}


def _paragraph_template(bold: bool, right: bool) -> Any:
    """The ``w:p`` python-docx writes for a body/header cell (spacing after 0, 9 pt, bold or
    not, right-aligned or not), parsed once and copied per cell."""
    key = (bold, right)
    if key not in _TEMPLATES:
        from docx.oxml import parse_xml
        from docx.oxml.ns import nsdecls

        jc = '<w:jc w:val="right"/>' if right else ""
        b = "<w:b/>" if bold else '<w:b w:val="0"/>'
        size = int(round(BODY_PT * 2))
        _TEMPLATES[key] = parse_xml(
            f'<w:p {nsdecls("w")}><w:pPr><w:spacing w:after="0"/>{jc}</w:pPr><w:r/>'
            f'<w:r><w:rPr>{b}<w:sz w:val="{size}"/></w:rPr><w:t/></w:r></w:p>'
        )
    return _TEMPLATES[key]


def _cell_text(cell: Any, text: str, *, bold: bool = False, right: bool = False) -> None:
    """Replace a cell's content by one 9 pt run. The same XML as the python-docx calls below
    (byte for byte, tested), written from a parsed template: python-docx's property setters
    took most of the time of writing the run's Word tables (issue 22.3)."""
    if _PLAIN_TEXT.fullmatch(text):
        from docx.oxml.ns import qn

        tc = cell._tc
        for child in list(tc):
            if child.tag != qn("w:tcPr"):
                tc.remove(child)
        p = copy.deepcopy(_paragraph_template(bold, right))
        run = p[-1]
        t = run[-1]
        if not text:  # python-docx writes no w:t for an empty run
            run.remove(t)
        t.text = text
        if len(text.strip()) < len(text):
            t.set(qn("xml:space"), "preserve")
        tc.append(p)
        return
    _cell_text_docx(cell, text, bold=bold, right=right)


def _cell_text_docx(cell: Any, text: str, *, bold: bool = False, right: bool = False) -> None:
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    cell.text = ""
    para = cell.paragraphs[0]
    para.paragraph_format.space_after = Pt(0)
    run = para.add_run(text)
    run.bold = bold
    run.font.size = Pt(BODY_PT)
    if right:
        para.alignment = WD_ALIGN_PARAGRAPH.RIGHT


#: a cell that reads as a number, a count, a percentage, an estimate with its CI or a p-value
_NUMBERLIKE = re.compile(r"^[(<>\u2212+-]?\s*[\d.]")


def _display_columns(table: Any) -> list[list[str]]:
    """The display's cells as text (:func:`display_text`), column by column: the values
    ``itertuples`` would give, without building a row at a time."""
    return [[_text(v) for v in s] for _, s in table.display.items()]


def _rows(
    table: Any, columns: list[list[str]] | None = None
) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, body cells (no-break spaces in cells of numbers) and which columns hold
    numbers (right-aligned, never wrapped). ``columns``: ``_display_columns(table)``."""
    disp: pd.DataFrame = table.display
    header = [str(safe_cell(str(c))) for c in disp.columns]
    if disp.columns.is_unique:  # by dtype: the same answer, without a Series per column
        numeric = [pd.api.types.is_numeric_dtype(t) for t in disp.dtypes.tolist()]
    else:
        numeric = [pd.api.types.is_numeric_dtype(disp[c]) for c in disp.columns]
    columns = _display_columns(table) if columns is None else columns
    cells = [list(r) for r in zip(*columns)] if columns else [[] for _ in range(len(disp))]
    right = [
        j > 0
        and (numeric[j] or any(_NUMBERLIKE.match(r[j]) for r in cells))
        and all(r[j] == "" or _NUMBERLIKE.match(r[j]) for r in cells)
        for j in range(len(header))
    ]
    # a cell of numbers never wraps: "1.2 (0.4 to 2.0)" keeps its spaces as no-break spaces
    rows = [[c.replace(" ", "\u00a0") if right[j] else c for j, c in enumerate(r)] for r in cells]
    return header, rows, right


def display_csv(table: Any, columns: list[list[str]] | None = None) -> str:
    """:meth:`Table.to_csv`'s text: the display as it reads (every header and cell through
    :func:`display_text`), formula-safe, written by :mod:`csv` as pandas' ``to_csv`` writes
    it (the same dialect: pandas writes through :mod:`csv`). A header that repeats a name
    takes pandas' own way. ``columns``: ``_display_columns(table)``."""
    import csv

    disp: pd.DataFrame = table.display
    header = [display_text(str(c)) for c in disp.columns]
    if not header or len(set(header)) < len(header):
        out = disp.copy()
        out.columns = header
        for c in out.columns:
            out[c] = [display_text(v) for v in out[c]]
        return out.to_csv(index=False, lineterminator="\n")
    columns = _display_columns(table) if columns is None else columns
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*columns))
    return buf.getvalue()


def _caption(doc: Any, table: Any, number: int | None) -> None:
    from docx.shared import Pt

    if number is None and not table.caption:
        return
    para = doc.add_paragraph()
    para.paragraph_format.keep_with_next = True
    if number is not None:
        r = para.add_run(f"Table {number}")
        r.bold = True
        para.add_run("\n" if table.caption else "")
    if table.caption:
        r = para.add_run(str(safe_cell(table.caption)))
        r.italic = number is not None
        r.bold = number is None
    for r in para.runs:
        r.font.size = Pt(10)


def _notes(doc: Any, notes: list[str]) -> None:
    from docx.shared import Pt

    for k, note in enumerate(notes):
        para = doc.add_paragraph()
        para.paragraph_format.space_after = Pt(2)
        if k == 0:
            lead = para.add_run("Note. ")
            lead.italic = True
            lead.font.size = Pt(NOTE_PT)
        run = para.add_run(str(safe_cell(note)))
        run.font.size = Pt(NOTE_PT)


def _fit_widths(widths: list[float], text_width: float) -> list[float]:
    """Column widths that fill the text width: number columns keep their natural width (so
    they never wrap), the label column takes the rest (at least 3 cm, wrapping at spaces);
    only when even that does not fit is every column scaled down."""
    if len(widths) == 1:
        return [text_width]
    fixed = sum(widths[1:])
    label = max(min(widths[0], 3.0), text_width - fixed)
    if sum(widths) <= text_width * 0.6:  # a small table stays small
        label = widths[0]
    cols = [label, *widths[1:]]
    total = sum(cols)
    return [w * text_width / total for w in cols] if total > text_width else cols


def _build_table(
    doc: Any,
    text_width: float,
    widths: list[float],
    header: list[str],
    rows: list[list[str]],
    right: list[bool],
) -> Any:
    from docx.shared import Cm

    grid = doc.add_table(rows=1 + len(rows), cols=len(header))
    grid.autofit = False
    _no_table_borders(grid)
    cols = _fit_widths(widths, text_width)
    # each row's cells once (python-docx's rows[i].cells[j] rebuilds the row per cell)
    grid_cells = [r.cells for r in grid.rows]
    for j, w in enumerate(cols):
        grid.columns[j].width = Cm(w)
        for row_cells in grid_cells:
            row_cells[j].width = Cm(w)
    for j, name in enumerate(header):
        cell = grid_cells[0][j]
        _cell_text(cell, name, bold=True, right=right[j])
        _border(cell, top="single", bottom="single")
    for i, row in enumerate(rows, start=1):
        for j, text in enumerate(row):
            cell = grid_cells[i][j]
            _cell_text(cell, text, right=right[j])
            if i == len(rows):
                _border(cell, bottom="single")
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tr_pr = grid.rows[0]._tr.get_or_add_trPr()  # repeat the header on every page
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    tr_pr.append(el)
    return grid._tbl


def _text_width(page: Page, orient: str) -> float:
    """The text width (cm) of a section of ``page`` in orientation ``orient``."""
    w, h, margin = PAGES[page]
    return (h if orient == "landscape" else w) - 2 * margin


class _Prepared(NamedTuple):
    """One table laid out: its cells (``_rows``), natural column widths, orientation, text
    width, and its ``w:tbl`` as UTF-8 text (``None``: python-docx writes it)."""

    cells: tuple[list[str], list[list[str]], list[bool]]
    widths: list[float]
    orient: str
    text_width: float
    xml: bytes | None
    notes: bytes | None


#: marker texts of the paragraph templates (private-use characters)
_MARK, _MARK_NUMBER = "\ue000", "\ue001"
_PARAS: dict[tuple[str, bool, bool], list[bytes]] = {}


class _Label(NamedTuple):
    caption: str


def _para_template(kind: str, numbered: bool = False, captioned: bool = False) -> list[bytes]:
    """The caption (``kind`` "caption") or note paragraph ("note": the first, with "Note.";
    "more": the next ones) that python-docx writes with marker texts, split at their runs
    (``_docxfast.split_at``); made once per process."""
    key = (kind, numbered, captioned)
    if key not in _PARAS:
        tpl = _docxfast.template(_blank_finished)
        if kind == "caption":
            label = _Label(_MARK if captioned else "")
            number = _MARK_NUMBER if numbered else None
            xml = _docxfast.body_xml(tpl, lambda doc: _caption(doc, label, number))
            runs = [f"Table {_MARK_NUMBER}"] * numbered + [_MARK] * captioned
        else:
            first = _docxfast.body_xml(tpl, lambda doc: _notes(doc, [_MARK]))
            xml = first
            if kind == "more":
                xml = _docxfast.body_xml(tpl, lambda doc: _notes(doc, [_MARK, _MARK]))
                xml = xml[len(first) :]
            runs = [_MARK]
        _PARAS[key] = _docxfast.split_at(xml, runs)
    return _PARAS[key]


def _caption_xml(table: Any, number: int | None) -> bytes | None:
    """:func:`_caption`'s paragraph as text (``None``: python-docx writes it)."""
    if number is None and not table.caption:
        return b""
    texts = [f"Table {number}"] if number is not None else []
    if table.caption:
        texts.append(str(safe_cell(table.caption)))
    return _docxfast.fill(_para_template("caption", number is not None, bool(table.caption)), texts)


def _notes_xml(notes: list[str]) -> bytes | None:
    """:func:`_notes`'s paragraphs as text (``None``: python-docx writes them)."""
    out = []
    for k, note in enumerate(notes):
        para = _docxfast.fill(_para_template("more" if k else "note"), [str(safe_cell(note))])
        if para is None:
            return None
        out.append(para)
    return b"".join(out)


class _Writer:
    """Writes Word documents of tables on ``page`` (issue 22: the fast path of
    :mod:`peerstats.describe._docxfast`, the same bytes as ``_docxref.reference_docx``).

    Each table's cells, layout and ``w:tbl`` are made once per writer: a run writes every
    table twice, alone and in tables.docx. The writer keeps the tables it has seen (their
    ``id`` must not be reused while it lives): make one per folder, not one per process.
    """

    def __init__(self, page: Page = "a4") -> None:
        if page not in PAGES:
            raise ValueError(f"page must be one of {list(PAGES)}, not {page!r}")
        self.page = page
        self._seen: dict[tuple[int, str], tuple[Any, Any]] = {}

    def columns(self, table: Any) -> list[list[str]]:
        """``_display_columns(table)``, made once per table."""
        key = (id(table), "columns")
        if key not in self._seen or self._seen[key][0] is not table:
            self._seen[key] = (table, _display_columns(table))
        return self._seen[key][1]

    def csv(self, table: Any, path: str | Path) -> str:
        """``table.to_csv(path)`` (:func:`display_csv`) from the cells made once per table."""
        text = display_csv(table, self.columns(table))
        Path(path).write_text(text, encoding="utf-8")
        return text

    def prepared(self, table: Any, orientation: Orientation) -> _Prepared:
        """``table`` laid out in ``orientation`` (``auto``: landscape when it is wide)."""
        key = (id(table), orientation)
        if key in self._seen and self._seen[key][0] is table:
            return self._seen[key][1]
        cells = _rows(table, self.columns(table))
        header, rows, right = cells
        widths = _column_widths(rows, header, right)
        orient = _orientation(widths, self.page, orientation)
        text_width = _text_width(self.page, orient)
        cols = _fit_widths(widths, text_width)
        xml = _docxfast.table_xml(header, rows, right, cols, int(round(BODY_PT * 2)))
        tbl = None if xml is None else xml.encode()
        prep = _Prepared(cells, widths, orient, text_width, tbl, _notes_xml(list(table.notes)))
        self._seen[key] = (table, prep)
        return prep

    def document(self, entries: list[tuple[Any, Orientation, int | None]]) -> bytes:
        """The .docx of ``(table, orientation, number)`` entries, each in its own section.

        A table whose caption, cells and notes are plain text is one block of text, put in
        place of a ``<w:tbl/>`` placeholder of the serialized document that python-docx
        wrote with the sections alone (:func:`_skeleton`, kept per page and orientations).
        Otherwise python-docx writes the caption and notes into the document (and the table
        too when a cell is not plain text)."""
        preps = [self.prepared(table, orientation) for table, orientation, _ in entries]
        blocks = [
            _block(_caption_xml(table, number), prep)
            for (table, _, number), prep in zip(entries, preps)
        ]
        if all(b is not None for b in blocks):
            pieces = _skeleton(self.page, tuple(p.orient for p in preps))
        else:
            pieces, blocks = self._mixed(entries, preps, blocks)
        xml = pieces[0] + b"".join(b + p for b, p in zip(blocks, pieces[1:]))
        return _docxfast.docx_bytes(_docxfast.template(_blank_finished), xml)

    def _mixed(
        self,
        entries: list[tuple[Any, Orientation, int | None]],
        preps: list[_Prepared],
        blocks: list[bytes | None],
    ) -> tuple[list[bytes], list[bytes]]:
        """The serialized document split at its placeholders, and the texts that go there,
        when python-docx writes some of the paragraphs or tables."""
        doc = _docxfast.new_document(_docxfast.template(_blank_finished))
        texts: list[bytes] = []
        for k, ((table, _, number), prep, block) in enumerate(zip(entries, preps, blocks)):
            _section(doc, self.page, prep.orient, k)
            if block is not None:
                texts.append(_placeholder(doc, block))
                continue
            _caption(doc, table, number)
            if prep.xml is None:  # a cell with tabs or line breaks: python-docx writes it
                _build_table(doc, prep.text_width, prep.widths, *prep.cells)
            else:
                texts.append(_placeholder(doc, prep.xml))
            _notes(doc, list(table.notes))
        return _split(doc, len(texts)), texts

    def table(
        self,
        table: Any,
        path: str | Path | None = None,
        *,
        orientation: Orientation = "auto",
        number: int | None = None,
    ) -> bytes:
        """:func:`table_to_docx` on this writer's page."""
        if orientation not in ("auto", "portrait", "landscape"):
            raise ValueError(
                f"orientation must be 'auto', 'portrait' or 'landscape', not {orientation!r}"
            )
        return _written(self.document([(table, orientation, number)]), path)

    def tables(self, tables: Any, path: str | Path | None = None) -> bytes:
        """:func:`tables_to_docx` on this writer's page."""
        items = list(tables.values()) if isinstance(tables, dict) else list(tables)
        if not items:
            raise ValueError("tables_to_docx needs at least one table")
        entries = [(t, "auto", k + 1) for k, t in enumerate(items)]
        return _written(self.document(entries), path)


def _block(caption: bytes | None, prep: _Prepared) -> bytes | None:
    """A table's caption, ``w:tbl`` and notes as one text (``None``: not all plain text)."""
    if caption is None or prep.xml is None or prep.notes is None:
        return None
    return caption + prep.xml + prep.notes


def _section(doc: Any, page: Page, orient: str, k: int) -> None:
    """The ``k``-th section of ``doc`` (the first is the document's own), in ``orient``."""
    from docx.enum.section import WD_SECTION

    section = doc.sections[0] if k == 0 else doc.add_section(WD_SECTION.NEW_PAGE)
    _set_section(section, page, orient)


def _placeholder(doc: Any, text: bytes) -> bytes:
    """Add a ``<w:tbl/>`` placeholder to ``doc`` for ``text``; returns ``text``."""
    from docx.oxml import OxmlElement

    doc.element.body._insert_tbl(OxmlElement("w:tbl"))
    return text


def _split(doc: Any, n: int) -> list[bytes]:
    """``doc``'s main part serialized, split at its ``n`` placeholders."""
    from docx.opc.oxml import serialize_part_xml

    pieces = serialize_part_xml(doc.element).split(b"<w:tbl/>")
    if len(pieces) != n + 1:  # pragma: no cover - an empty w:tbl of python-docx
        raise RuntimeError("peerstats: a table placeholder of the Word writer was lost")
    return pieces


_SKELETONS: dict[tuple[str, tuple[str, ...]], list[bytes]] = {}


def _skeleton(page: Page, orients: tuple[str, ...]) -> list[bytes]:
    """The serialized document of sections in ``orients`` with a placeholder in each, split
    at the placeholders (a function of the page and orientations alone: kept, up to 64)."""
    key = (page, orients)
    if key not in _SKELETONS:
        doc = _docxfast.new_document(_docxfast.template(_blank_finished))
        for k, orient in enumerate(orients):
            _section(doc, page, orient, k)
            _placeholder(doc, b"")
        if len(_SKELETONS) >= 64:
            _SKELETONS.clear()
        _SKELETONS[key] = _split(doc, len(orients))
    return _SKELETONS[key]


def warm_up() -> None:
    """Import python-docx and make this process's Word template and paragraph templates now
    (they are made with the first document otherwise): for a caller with idle time before
    it writes, e.g. a thread started while the process waits for a worker. Safe to call
    more than once and from a thread."""
    _docxfast.template(_blank_finished)
    for numbered in (False, True):
        for captioned in (False, True):
            if numbered or captioned:
                _para_template("caption", numbered, captioned)
    _para_template("note")
    _para_template("more")


def _written(data: bytes, path: str | Path | None) -> bytes:
    if path is not None:
        Path(path).write_bytes(data)
    return data


def table_to_docx(
    table: Any,
    path: str | Path | None = None,
    *,
    page: Page = "a4",
    orientation: Orientation = "auto",
    number: int | None = None,
) -> bytes:
    """Write ``table`` as a Word document; returns its bytes (also written to ``path``).

    Parameters
    ----------
    table : Table
        Its display becomes the Word table, its caption the title above, its notes the table
        notes below ("Note. ...").
    path : path, optional
        Where to write the document.
    page : {"a4", "letter"}
        Paper size (A4 with 2.5 cm margins; US Letter with 1 inch margins).
    orientation : {"auto", "portrait", "landscape"}
        ``auto``: landscape when the columns' text does not fit the portrait text width.
    number : int, optional
        Table number: the caption reads "Table <number>" above the title in italics (APA).

    Returns
    -------
    bytes

    Notes
    -----
    APA style (7th ed., section 7.21-7.25): horizontal rules only, above and below the header
    and below the body; bold header; the notes under the table begin with *Note.* Checked by
    rendering with LibreOffice to PDF and PNG in ``tests/describe/test_word_render.py``.
    """
    return _Writer(page).table(table, path, orientation=orientation, number=number)


def tables_to_docx(
    tables: Any,
    path: str | Path | None = None,
    *,
    page: Page = "a4",
) -> bytes:
    """Write several tables into one Word document, in order, numbered ("Table 1", ...) and
    captioned, each in its own section (landscape when it is wide).

    Parameters
    ----------
    tables : list of Table or dict of str to Table
        In report order.
    path : path, optional
    page : {"a4", "letter"}

    Returns
    -------
    bytes
    """
    return _Writer(page).tables(tables, path)


# ---- the blank document: python-docx's default template with our Normal style


def _blank_document() -> Any:
    import docx
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = docx.Document()
    style = doc.styles["Normal"]
    style.font.size = Pt(10)
    style.font.name = FONT  # a font every office suite has (metric twin: Liberation Serif)
    fonts = style.element.rPr.rFonts
    for attr in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attr), FONT)
    return doc


def _fix_core(doc: Any) -> Any:
    """The fixed core properties (times, author, revision): the same table, the same bytes."""
    fixed = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    props = doc.core_properties
    props.created = props.modified = fixed
    props.last_modified_by = props.author = "peerstats"
    props.revision = 1
    return doc


def _blank_finished() -> Any:
    return _fix_core(_blank_document())
