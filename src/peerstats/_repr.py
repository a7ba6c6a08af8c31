"""Pieces shared by the results objects' ``_repr_html_`` (internal)."""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["header_html", "with_notes", "SummaryAsRepr"]


def header_html(rows: Iterable[tuple[str, str]]) -> str:
    """The ``(name, value)`` header rows of a result as HTML table rows, left aligned."""
    return "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )


def with_notes(
    lines: list[str], notes: Iterable[str], *, title: str = "Notes", bullet: str = "- "
) -> str:
    """A result's ``summary()`` text: its ``lines``, then a "Notes:" (``title``) list if there
    are notes, one indented ``bullet`` line each."""
    notes = list(notes)
    if notes:
        lines = lines + ["", f"{title}:"] + [f"  {bullet}{n}" for n in notes]
    return "\n".join(lines)


class SummaryAsRepr:
    """Mixin: ``repr(result)`` is ``result.summary()`` (a dataclass using it needs
    ``repr=False``, else the generated ``__repr__`` wins)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return self.summary()
