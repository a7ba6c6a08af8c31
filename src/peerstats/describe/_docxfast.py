"""The fast path of the Word writer (issue 22): the parts that never change written once per
process, the table as text, the zip by hand. The same bytes as python-docx's own save.

Why by hand
-----------
Writing the run's 20 Word documents took about 0.5 s, nearly all of it work that is the same
for every document: python-docx's package writer serialized and deflated the template's parts
(styles.xml and stylesWithEffects.xml alone are 790 kB) again for each file, a whole blank
``Document`` was deep-copied per file, and each table cell went through python-docx's
property setters. Only ``word/document.xml`` differs between two of our documents. So:

* :func:`template` saves a blank document once per process through python-docx's own
  ``PackageWriter`` steps (:func:`package_blobs`) and keeps every part but the main document
  already deflated, with its CRC-32 and size (:class:`Member`);
* :func:`table_xml` writes a ``w:tbl`` as text, the XML python-docx builds (the same
  elements, attributes and escaping as lxml's serializer); a table with a cell that python-docx
  writes with tabs or line breaks returns ``None`` and takes python-docx's path;
* :func:`zip_bytes` writes the zip: the local headers, central directory and end record that
  :mod:`zipfile` writes for ``writestr`` with a fixed member time (1980-01-01) and mode
  (rw-r--r--) (PKWARE APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16), the members deflated as
  :mod:`zipfile` deflates them (raw deflate, default level, one ``compress`` and ``flush``).

python-docx still writes everything it does well: the template and its styles, the sections,
and the shape of each caption and note paragraph (made once with marker texts,
:func:`split_at`, :func:`fill`); any text it writes otherwise (tabs, line breaks) it writes
itself. ``tests/describe/test_word_fast.py`` checks the bytes against
python-docx's save (``_docxref.reference_docx``) on tables with awkward cells, a landscape
table and a document of several sections, and that the zip opens with python-docx and
:func:`zipfile.ZipFile.testzip`.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from typing import Any, NamedTuple

__all__ = ["Member", "member", "zip_bytes", "zip_bytes_zipfile", "table_xml", "template"]

#: the fixed member time of every part, 1980-01-01 00:00:00, as an MS-DOS date and time
_DOS_DATE = (1980 - 1980) << 9 | 1 << 5 | 1
_DOS_TIME = 0
_MODE = 0o644 << 16  # external attributes: a regular file, rw-r--r--
_VERSION = 20  # version needed to extract / made by: 2.0 (deflate), as zipfile writes it
_DEFLATED = zipfile.ZIP_DEFLATED
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
#: beyond this zipfile writes ZIP64 records; such a document goes through zipfile itself
_SMALL = 1 << 30


class Member(NamedTuple):
    """One zip member: its name, the deflated bytes, their CRC-32 and uncompressed size."""

    name: str
    deflated: bytes
    crc: int
    size: int


def deflate(data: bytes) -> bytes:
    """``data`` deflated as :mod:`zipfile` does for ``ZIP_DEFLATED`` at the default level."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def member(name: str, data: bytes) -> Member:
    """The member ``name`` holding ``data``."""
    return Member(name, deflate(data), zlib.crc32(data), len(data))


def _name_flags(name: str) -> tuple[bytes, int]:
    """The encoded name and general purpose flags (bit 11: UTF-8 name), as zipfile's
    ``ZipInfo._encodeFilenameFlags``."""
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), 0x800


def zip_bytes(members: list[Member]) -> bytes:
    """The zip of ``members``, in order: the bytes :func:`zip_bytes_zipfile` writes."""
    if sum(m.size + len(m.deflated) for m in members) >= _SMALL:
        return zip_bytes_zipfile(members)
    system = zipfile.ZipInfo("x").create_system  # 3 (Unix), 0 on Windows, as zipfile
    out: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for m in members:
        name, flags = _name_flags(m.name)
        fields = (_VERSION, 0, flags, _DEFLATED, _DOS_TIME, _DOS_DATE)
        sizes = (m.crc, len(m.deflated), m.size, len(name))
        local = _LOCAL.pack(b"PK\x03\x04", *fields, *sizes, 0)
        # made by (version, system), the local fields, then lengths of extra and comment,
        # disk, internal and external attributes, the offset of the local header
        rest = (0, 0, 0, 0, _MODE, offset)
        central.append(_CENTRAL.pack(b"PK\x01\x02", _VERSION, system, *fields, *sizes, *rest))
        central.append(name)
        out += (local, name, m.deflated)
        offset += len(local) + len(name) + len(m.deflated)
    directory = b"".join(central)
    n = len(members)
    end = _END.pack(b"PK\x05\x06", 0, 0, n, n, len(directory), offset, 0)
    return b"".join(out) + directory + end


def zip_bytes_zipfile(members: list[Member]) -> bytes:
    """The same zip written by :mod:`zipfile` (each member inflated and deflated again): the
    reference of :func:`zip_bytes`, and its way for documents too large for plain zip
    records."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", _DEFLATED) as zf:
        for m in members:
            info = zipfile.ZipInfo(m.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = _DEFLATED
            info.external_attr = _MODE
            zf.writestr(info, zlib.decompress(m.deflated, -15))
    return buf.getvalue()


_RULE = '<w:{edge} w:val="single" w:sz="8" w:color="000000"/>'
_HEADER_BORDERS = (
    "<w:tcBorders>" + _RULE.format(edge="top") + _RULE.format(edge="bottom") + "</w:tcBorders>"
)
_LAST_BORDERS = "<w:tcBorders>" + _RULE.format(edge="bottom") + "</w:tcBorders>"
_TBL_PR = (
    '<w:tblPr><w:tblW w:type="auto" w:w="0"/><w:tblLayout w:type="fixed"/>'
    '<w:tblLook w:firstColumn="1" w:firstRow="1" w:lastColumn="0" w:lastRow="0" '
    'w:noHBand="0" w:noVBand="1" w:val="04A0"/><w:tblBorders>'
    + "".join(
        f'<w:{e} w:val="nil"/>' for e in ("top", "left", "bottom", "right", "insideH", "insideV")
    )
    + '</w:tblBorders><w:tblLayout w:type="fixed"/></w:tblPr>'
)
_HEADER_ROW = '<w:tr><w:trPr><w:tblHeader w:val="true"/></w:trPr>'


#: a character python-docx does not write as plain text in one ``w:t``: a control character
#: (tabs and breaks become elements) or one lxml refuses (a surrogate, U+FFFE, U+FFFF: such a
#: table takes python-docx's path and fails there, as before)
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _t(text: str) -> str:
    """The ``w:t`` of a run's text as python-docx writes it (none for an empty run; leading
    or trailing white space kept with ``xml:space``), escaped as lxml escapes text."""
    if not text:
        return ""
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(text.strip()) < len(text):
        return f'<w:t xml:space="preserve">{esc}</w:t>'
    return f"<w:t>{esc}</w:t>"


def table_xml(
    header: list[str], rows: list[list[str]], right: list[bool], widths_cm: list[float], size: int
) -> str | None:
    """The ``w:tbl`` of ``word._build_table`` as text (the APA table: no grid, rules above and
    below the header and below the last row, the header row repeated on each page), or
    ``None`` when a cell is not plain text (python-docx's path writes it).

    ``widths_cm``: the fitted column widths; ``size``: the body font size in half-points.
    """
    if _NOT_PLAIN.search("".join(header)) or _NOT_PLAIN.search("".join(c for r in rows for c in r)):
        return None
    from docx.shared import Cm

    twips = [Cm(w).twips for w in widths_cm]  # python-docx's own rounding
    grid = "".join(f'<w:gridCol w:w="{tw}"/>' for tw in twips)
    opens = [f'<w:tc><w:tcPr><w:tcW w:type="dxa" w:w="{tw}"/>' for tw in twips]

    def para(bold: bool, r: bool) -> str:
        jc = '<w:jc w:val="right"/>' if r else ""
        b = "<w:b/>" if bold else '<w:b w:val="0"/>'
        return (
            f'</w:tcPr><w:p><w:pPr><w:spacing w:after="0"/>{jc}</w:pPr><w:r/>'
            f'<w:r><w:rPr>{b}<w:sz w:val="{size}"/></w:rPr>'
        )

    head = [para(True, r) for r in right]
    body = [para(False, r) for r in right]
    end = "</w:r></w:p></w:tc>"
    out = [f"<w:tbl>{_TBL_PR}<w:tblGrid>{grid}</w:tblGrid>{_HEADER_ROW}"]
    out += [opens[j] + _HEADER_BORDERS + head[j] + _t(c) + end for j, c in enumerate(header)]
    out.append("</w:tr>")
    last = len(rows) - 1
    for i, row in enumerate(rows):
        borders = _LAST_BORDERS if i == last else ""
        out.append("<w:tr>")
        out += [opens[j] + borders + body[j] + _t(c) + end for j, c in enumerate(row)]
        out.append("</w:tr>")
    out.append("</w:tbl>")
    return "".join(out)


class _Recorder:
    """A physical package writer (``docx.opc.phys_pkg`` ``write``, ``close``) that keeps the
    members' names and bytes in order instead of zipping them."""

    def __init__(self) -> None:
        self.blobs: list[tuple[str, bytes]] = []

    def write(self, pack_uri: Any, blob: bytes) -> None:
        self.blobs.append((pack_uri.membername, blob))

    def close(self) -> None:
        pass


#: the steps of python-docx's ``PackageWriter.write`` (python-docx 1.x) that we call
_WRITER_STEPS = ("_write_content_types_stream", "_write_pkg_rels", "_write_parts")


def package_blobs(doc: Any) -> list[tuple[str, bytes]]:
    """Every member of ``doc``'s .docx in order, as python-docx's ``OpcPackage.save`` and
    ``PackageWriter.write`` write them (through :class:`_Recorder`); read back from
    ``doc.save`` when python-docx lacks those steps."""
    import io

    from docx.opc.pkgwriter import PackageWriter

    package = doc.part.package
    if not all(hasattr(PackageWriter, s) for s in _WRITER_STEPS):  # another python-docx
        buf = io.BytesIO()
        doc.save(buf)
        zf = zipfile.ZipFile(buf)
        return [(info.filename, zf.read(info)) for info in zf.infolist()]
    for part in package.parts:
        part.before_marshal()
    parts = package.parts
    writer = _Recorder()
    PackageWriter._write_content_types_stream(writer, parts)
    PackageWriter._write_pkg_rels(writer, package.rels)
    PackageWriter._write_parts(writer, parts)
    return writer.blobs


class Template(NamedTuple):
    """A blank document saved once: its members (``None`` in place of the main document
    part), the main part's member name, and its document (python-docx) to copy bodies from."""

    members: list[Member | None]
    main: str
    doc: Any


_TEMPLATE: list[Template] = []


def template(blank: Any) -> Template:
    """The :class:`Template` of ``blank()`` (a function returning the blank document with the
    fixed core properties), made on the first call of the process."""
    if not _TEMPLATE:
        doc = blank()
        main = doc.part.partname.membername
        members = [None if n == main else member(n, b) for n, b in package_blobs(doc)]
        _TEMPLATE.append(Template(members, main, doc))
    return _TEMPLATE[0]


def new_document(tpl: Template) -> Any:
    """A python-docx ``Document`` on a copy of the template's main part (its other parts are
    the template's: only the main part is ever written from it)."""
    import copy

    from docx.document import Document

    return Document(copy.deepcopy(tpl.doc.element), tpl.doc.part)


def body_xml(tpl: Template, build: Any) -> bytes:
    """The body content (without the section properties) that ``build(doc)`` adds to a new
    document, as serialized inside a document: the namespaces are the root's."""
    from docx.opc.oxml import serialize_part_xml

    doc = new_document(tpl)
    build(doc)
    xml = serialize_part_xml(doc.element)
    return xml[xml.index(b"<w:body>") + len(b"<w:body>") : xml.rindex(b"<w:sectPr")]


def split_at(xml: bytes, runs: list[str]) -> list[bytes]:
    """``xml`` split at the ``w:t`` of each text of ``runs``, in order; each must occur once."""
    parts = []
    for text in runs:
        mark = f"<w:t>{text}</w:t>".encode()
        if xml.count(mark) != 1:  # pragma: no cover - python-docx wrote the run otherwise
            raise RuntimeError(f"peerstats: a paragraph template lacks its run {text!r}")
        head, xml = xml.split(mark)
        parts.append(head)
    return [*parts, xml]


def fill(parts: list[bytes], texts: list[str]) -> bytes | None:
    """The paragraph of template ``parts`` (:func:`split_at`) with ``texts`` in its runs, each
    written as python-docx writes a run's text; ``None`` when one is not plain text."""
    if any(_NOT_PLAIN.search(t) for t in texts):
        return None
    out = [parts[0]]
    for text, part in zip(texts, parts[1:]):
        out += (_t(text).encode(), part)
    return b"".join(out)


def docx_bytes(tpl: Template, document_xml: bytes) -> bytes:
    """The .docx of ``tpl`` with ``document_xml`` as its main document part."""
    main = member(tpl.main, document_xml)
    return zip_bytes([main if m is None else m for m in tpl.members])
