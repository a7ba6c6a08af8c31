"""Checks before a data file is read: what it is, how big, and which text encoding it holds.

Issue 24.10-11: a named pipe or a directory is "not a regular file" (not "file not found"); a
file larger than the size guard is refused before it is read into memory (no bare
MemoryError); a byte-order mark names its encoding (UTF-16 is not cp1252); and a UTF-8 file
declared as a single-byte Windows encoding is refused, since decoding it would put mojibake
(``Ã¥ngest`` for ``ångest``) into every table and the report without any error.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

__all__ = ["check_regular_file", "check_text_encoding", "max_input_bytes", "MOJIBAKE_HINT"]

#: default size guard (MiB); ``PEERSTATS_MAX_INPUT_MB`` overrides it
DEFAULT_MAX_MB = 1024

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32", "utf-32"),
    (codecs.BOM_UTF32_BE, "UTF-32", "utf-32"),
    (codecs.BOM_UTF16_LE, "UTF-16", "utf-16"),
    (codecs.BOM_UTF16_BE, "UTF-16", "utf-16"),
    (codecs.BOM_UTF8, "UTF-8", "utf-8-sig"),
)

MOJIBAKE_HINT = (
    "the file is UTF-8 text (it holds characters such as å, ä, ö, æ, ø written as UTF-8), but "
    "the spec says encoding: {declared}; read that way 'ångest' would become 'Ã¥ngest' in every "
    "table. Remove the encoding: line (UTF-8 is the default) or set encoding: utf-8"
)


def max_input_bytes() -> int:
    """The size guard in bytes (``PEERSTATS_MAX_INPUT_MB``, default 1024 MiB)."""
    raw = os.environ.get("PEERSTATS_MAX_INPUT_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(mb * 1024 * 1024)


def check_regular_file(path: Path) -> str | None:
    """A message when ``path`` is not a regular file of a readable size, else None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"file not found: {path.name}"
    except OSError as exc:
        return f"cannot open {path.name}: {exc.strerror or type(exc).__name__}"
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a directory" if stat.S_ISDIR(st.st_mode)
            else "a named pipe" if stat.S_ISFIFO(st.st_mode)
            else "a device or socket"
        )
        return f"{path.name} is not a regular file (it is {kind}); give the path of a data file"
    limit = max_input_bytes()
    if st.st_size > limit:
        return (
            f"{path.name} is {st.st_size / 2**20:,.0f} MiB, more than the {limit / 2**20:,.0f} MiB "
            "a trial data file is expected to be; check that it is the right file, or set the "
            "environment variable PEERSTATS_MAX_INPUT_MB to allow a larger one"
        )
    return None


def _single_byte(encoding: str) -> bool:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name.startswith(("cp12", "cp8", "iso8859", "latin", "mac-")) or name in {
        "cp437", "cp850", "cp865", "windows-1252",
    }


def check_text_encoding(path: Path, encoding: str | None, *, sample: int = 1 << 20) -> str | None:
    """A message when the bytes of a text file contradict its declared encoding, else None.

    - A byte-order mark names the encoding: a UTF-16/32 file is refused unless declared so.
    - A file declared in a single-byte Windows/ISO encoding whose bytes are valid UTF-8 with
      non-ASCII characters is refused: decoding would give mojibake.
    """
    with path.open("rb") as fh:
        head = fh.read(sample)
    declared = (encoding or "utf-8").lower().replace("_", "-")
    for bom, label, codec in _BOMS:
        if head.startswith(bom):
            if label == "UTF-8":
                break
            if not declared.startswith(codec):
                return (
                    f"{path.name} is {label} text (it starts with a {label} byte-order mark); "
                    f"set encoding: {codec} for this file in the spec, or save it as UTF-8"
                )
            return None
    if encoding and _single_byte(encoding) and any(b >= 0x80 for b in head):
        cut = len(head)
        while cut and (head[cut - 1] & 0xC0) == 0x80:  # do not split a character at the end
            cut -= 1
        if cut and head[cut - 1] >= 0xC0:
            cut -= 1
        try:
            head[:cut].decode("utf-8")
        except UnicodeDecodeError:
            return None  # not UTF-8: the declared single-byte encoding is plausible
        return f"{path.name}: " + MOJIBAKE_HINT.format(declared=encoding)
    return None
