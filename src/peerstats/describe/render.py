"""Render tidy result tables to Markdown, HTML and LaTeX.

Tables are computed as tidy DataFrames with raw, unrounded numbers; rounding happens only
here. No optional dependency is needed (no tabulate, no jinja2).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from peerstats.describe._format import ci_name, format_value

__all__ = ["render_table", "format_value", "Table", "ci_name", "tidy_display"]


Format = Literal["markdown", "html", "latex", "text"]


def _cells(data: pd.DataFrame, digits: int | dict[str, int]) -> list[list[str]]:
    rows = []
    for rec in data.itertuples(index=False):
        row = []
        for col, val in zip(data.columns, rec):
            d = digits.get(col, 2) if isinstance(digits, dict) else digits
            if isinstance(val, float) and float(val).is_integer() and col in _integer_columns(data):
                row.append(str(int(val)))
            else:
                row.append(format_value(val, d))
        rows.append(row)
    return rows


def _integer_columns(data: pd.DataFrame) -> set[str]:
    out = set()
    for col in data.columns:
        s = data[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s.dropna()
            if (
                len(v)
                and (v == v.round()).all()
                and (pd.api.types.is_integer_dtype(s) or col in {"n", "count", "target", "missing"})
            ):
                out.add(col)
    return out


def _latex_escape(text: str) -> str:
    repl = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "±": r"$\pm$",
        "–": "--",
    }
    return "".join(repl.get(ch, ch) for ch in text)


def render_table(
    data: pd.DataFrame,
    fmt: Format = "markdown",
    *,
    digits: int | dict[str, int] = 2,
    caption: str | None = None,
    index: bool = False,
) -> str:
    """Render a DataFrame as Markdown, HTML or LaTeX (booktabs).

    Parameters
    ----------
    data : DataFrame
        The table, usually the tidy frame a describe function returned.
    fmt : {"markdown", "html", "latex", "text"}
        Output format. ``"text"`` is a plain aligned table for consoles.
    digits : int or dict
        Decimal places for float cells; a dict gives them per column (default 2).
    caption : str, optional
        Table caption (HTML ``<caption>``, LaTeX ``\\caption``, a bold first line in Markdown).
    index : bool
        Include the index as the first column(s).

    Returns
    -------
    str
    """
    if fmt not in ("markdown", "html", "latex", "text"):
        raise ValueError(
            f"{fmt!r} is not a format; formats are 'markdown', 'html', 'latex', 'text'"
        )
    if index:
        data = data.reset_index()
    header = [str(c) for c in data.columns]
    rows = _cells(data, digits)
    numeric = [pd.api.types.is_numeric_dtype(data[c]) for c in data.columns]

    if fmt in ("markdown", "text"):
        return _render_plain(header, rows, numeric, fmt, caption)
    if fmt == "html":
        return _render_html(header, rows, numeric, caption)
    return _render_latex(header, rows, numeric, caption)


def _render_plain(header, rows, numeric, fmt: str, caption: str | None) -> str:
    """Markdown (pipe table, numbers right-aligned) or plain aligned text."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        if fmt == "text":
            return "  ".join(parts).rstrip()
        return "| " + " | ".join(p.replace("|", "\\|") for p in parts) + " |"

    out = []
    if caption:
        out += [f"**{caption}**" if fmt == "markdown" else caption, ""]
    out.append(line(header))
    if fmt == "markdown":
        rules = (
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)
        )
        out.append("|" + "|".join(rules) + "|")
    else:
        out.append("  ".join("-" * w for w in widths))
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def _render_html(header, rows, numeric, caption: str | None) -> str:
    esc = html.escape
    out = ['<table class="peerstats-table">']
    if caption:
        out.append(f"  <caption>{esc(caption)}</caption>")
    out.append("  <thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    out.append("  <tbody>")
    for r in rows:
        cells = "".join(
            f'<td style="text-align:right">{esc(c)}</td>' if num else f"<td>{esc(c)}</td>"
            for c, num in zip(r, numeric)
        )
        out.append(f"    <tr>{cells}</tr>")
    out.append("  </tbody>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def _render_latex(header, rows, numeric, caption: str | None) -> str:
    """A booktabs table (numbers right-aligned)."""
    spec = "".join("r" if num else "l" for num in numeric)
    out = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        out.append(r"\caption{" + _latex_escape(caption) + "}")
    out += [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    out.append(" & ".join(_latex_escape(h) for h in header) + r" \\")
    out.append(r"\midrule")
    for r in rows:
        out.append(" & ".join(_latex_escape(c) for c in r) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


class Table:
    """A computed table: tidy raw numbers plus a formatted display, rendered on demand.

    Attributes
    ----------
    data : DataFrame
        Tidy, unrounded numbers (one row per quantity); use this for further computation.
    display : DataFrame
        Formatted (string) table as it is printed in a paper.
    caption : str or None
    notes : tuple of str
        Footnotes (definitions, suppression rule, the SD used for effect sizes...).
    extras : dict
        Further results of the same computation, also available as attributes (e.g.
        ``.comparison`` of a responder analysis, ``.attendance`` of feasibility).
    """

    def __init__(
        self,
        data: pd.DataFrame,
        display: pd.DataFrame,
        *,
        caption: str | None = None,
        notes: tuple[str, ...] | list[str] = (),
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.extras = dict(extras or {})
        for key, value in self.extras.items():
            setattr(self, key, value)
        self.data = data
        self.display = display
        self.caption = caption
        self.notes = tuple(notes)

    def to_frame(self) -> pd.DataFrame:
        """The tidy raw numbers (a copy)."""
        return self.data.copy()

    def render(self, fmt: Format = "markdown") -> str:
        """The display table as Markdown, HTML, LaTeX or plain text, with notes below."""
        out = render_table(self.display, fmt, caption=self.caption)
        if self.notes:
            if fmt == "html":
                out += "".join(
                    f'<p class="peerstats-note">{html.escape(n)}</p>\n' for n in self.notes
                )
            elif fmt == "latex":
                out = out.replace(
                    r"\end{table}",
                    "".join(r"\par\footnotesize " + _latex_escape(n) + "\n" for n in self.notes)
                    + r"\end{table}",
                )
            else:
                out += "\n" + "\n".join(self.notes) + "\n"
        return out

    def to_markdown(self) -> str:
        """Markdown (pipe table)."""
        return self.render("markdown")

    def to_html(self) -> str:
        """HTML ``<table>``."""
        return self.render("html")

    def to_latex(self) -> str:
        """LaTeX (booktabs)."""
        return self.render("latex")

    def to_docx(self, path: str | Path | None = None, **options: Any) -> bytes:
        """A Word document (``.docx``) with the display table, caption and notes; returns its
        bytes and writes them to ``path`` when given. ``options`` (``page``, ``orientation``,
        ``number``): see :func:`peerstats.describe.word.table_to_docx`."""
        from peerstats.describe.word import table_to_docx

        return table_to_docx(self, path, **options)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The display table as CSV text (as the table reads: formatted strings, labels),
        formula-safe; written to ``path`` when given. ``.data.to_csv`` is the tidy form."""
        from peerstats.describe.word import display_csv

        text = display_csv(self)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def __repr__(self) -> str:
        return self.render("text")

    def _repr_html_(self) -> str:
        return self.render("html")


def _p_text(p: Any) -> str:
    try:
        x = float(p)
    except (TypeError, ValueError):
        return "" if p is None else str(p)
    if x != x:
        return ""
    return "<0.001" if x < 0.001 else f"{x:z.3f}"


def tidy_display(data: pd.DataFrame, name: str) -> Any:
    """A readable :class:`~peerstats.describe.render.Table` of a tidy result frame that has
    no display of its own (model coefficients, missing data, sensitivity): headers in words
    (``std_error`` -> ``Std error``), p-values as ``<0.001`` or three decimals, other numbers
    as the display rounds them; the caption is ``name`` in words. The tidy frame is unchanged.
    """
    disp = data.copy()
    for col in disp.columns:
        if str(col) in ("p_value", "p", "p_adjusted") or str(col).startswith("p_value"):
            disp[col] = [_p_text(v) for v in disp[col]]
    disp.columns = [str(c).replace("_", " ").capitalize() for c in disp.columns]
    caption = str(name).replace("_", " ").capitalize()
    return Table(data, disp, caption=caption)
