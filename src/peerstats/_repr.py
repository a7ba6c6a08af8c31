"""Pieces shared by the results objects' ``_repr_html_`` (internal)."""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["header_html"]


def header_html(rows: Iterable[tuple[str, str]]) -> str:
    """The ``(name, value)`` header rows of a result as HTML table rows, left aligned."""
    return "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
