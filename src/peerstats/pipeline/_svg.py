"""A figure as SVG text, cropped to its tight bounding box, drawn ONCE (issue 22).

``fig.savefig(..., bbox_inches="tight")`` draws a figure twice: a first pass without output to
lay it out and measure its tight bounding box, then the real drawing with every coordinate
shifted into that box. Text layout and ticks dominate both passes (about 60 ms a figure here).

:func:`figure_svg` draws once, at the figure's full size, and measures the tight box with the
same renderer right after the drawing (the ``draw_event``, while the SVG is still being
written, at the 72 dpi of vector output, so its text measurements come from the renderer's
cache). The SVG's size is then set to that box and its ``viewBox`` to the box's place in the
drawing, so the picture is the one ``bbox_inches="tight"`` gives: same size, same content,
same layout (matplotlib's ``_tight_bbox.adjust_bbox`` only translates the drawing, keeping its
scale). The coordinates in the file differ by that translation; rendered, the two files are
the same picture up to anti-aliasing at a few edges (matplotlib snaps axis lines to whole
points in the full figure's coordinates, not the crop's): the 18 figures of the bundled
analysis were rasterised with Chromium both ways (benchmarks/README.md);
``tests/pipeline/test_svg.py`` compares sizes, elements and offsets with matplotlib's own
``bbox_inches="tight"`` output.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

__all__ = ["figure_svg", "SVG_RC"]

#: rcParams of every report figure: stable ids, text drawn as paths (no font needed to view)
SVG_RC = {"svg.hashsalt": "peerstats", "svg.fonttype": "path"}


def figure_svg(fig: Any) -> str:
    """``fig`` as SVG text, cropped as ``bbox_inches="tight"`` (default padding) would, with
    one drawing instead of two. The figure is left open (the caller closes it)."""
    import matplotlib

    from peerstats.pipeline import _svg_render

    if _svg_render.verified():  # text and ticks worked out once (checked on this matplotlib)
        FigureCanvasSVG: Any = _svg_render.CachingCanvas
        ticks_remembered = _svg_render.ticks_remembered
        ticks_remembered_per_axes = _svg_render.ticks_remembered_per_axes
    else:  # matplotlib's own renderer
        from matplotlib.backends.backend_svg import FigureCanvasSVG

        def ticks_remembered(_axes: Any) -> Any:
            return contextlib.nullcontext()

        ticks_remembered_per_axes = ticks_remembered
    rc = matplotlib.rcParams
    if not _plain_savefig(rc):  # savefig options changed by the user: matplotlib's own way
        return _two_pass(fig)
    boxes: list[Any] = []

    def measure(event: Any) -> None:  # still inside print_svg: dpi 72, the same renderer
        with ticks_remembered(fig.get_axes()):  # nothing moves any more: each axis's ticks once
            boxes.append(event.canvas.figure.get_tightbbox(event.renderer))

    buf = io.StringIO()
    canvas, dpi = fig.canvas, fig.dpi
    try:
        with matplotlib.rc_context(SVG_RC):
            svg = FigureCanvasSVG(fig)  # as savefig does for a format its canvas lacks
            svg.mpl_connect("draw_event", measure)
            # print_svg runs a layout engine (constrained, tight) in its one drawing, where
            # savefig would first draw without output to lay the figure out
            with ticks_remembered_per_axes(fig):
                svg.print_svg(buf, metadata={"Date": None})
            pad = rc["savefig.pad_inches"]
    finally:
        fig.set_canvas(canvas)
        fig.dpi = dpi  # print_svg leaves it at 72
    cropped = None
    if len(boxes) == 1:
        cropped = _crop(buf.getvalue(), boxes[0].padded(pad), fig.get_size_inches()[1])
    # not one drawing, or an <svg> header of another form (never seen): matplotlib's own way
    return cropped if cropped is not None else _two_pass(fig)


def _plain_savefig(rc: Any) -> bool:
    """savefig's options as matplotlib ships them: figure colours and dpi, tight box only
    when asked (what :func:`figure_svg` reproduces)."""
    return (
        all(
            isinstance(rc[f"savefig.{p}"], str) and rc[f"savefig.{p}"] == "auto"
            for p in ("facecolor", "edgecolor")
        )
        and rc["savefig.dpi"] == "figure"
        and isinstance(rc["savefig.pad_inches"], float | int)
    )


def _two_pass(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


_HEAD = re.compile(r'<svg [^>]*?width="([\d.]+)pt" height="([\d.]+)pt"[^>]*>')


def _fmt(x: float) -> str:
    """As matplotlib's SVG backend writes a length (``_short_float_fmt``)."""
    return f"{x:f}".rstrip("0").rstrip(".")


def _crop(text: str, box: Any, height_in: float) -> str | None:
    """Set the ``<svg>`` element's size to ``box`` (inches, figure coordinates: origin at the
    bottom left) and its viewBox to the box's place in the drawing (origin at the top left,
    points); None when the header is not the one matplotlib writes."""
    m = _HEAD.search(text, 0, 2000)
    if m is None:
        return None
    head_end = m.end()
    head = text[:head_end]
    full_w, full_h = m.group(1), m.group(2)
    old = f'width="{full_w}pt" height="{full_h}pt" viewBox="0 0 {full_w} {full_h}"'
    if old not in head:
        return None
    w, h = _fmt(box.width * 72), _fmt(box.height * 72)
    x0, y0 = _fmt(box.x0 * 72), _fmt((height_in - box.y1) * 72)
    new = f'width="{w}pt" height="{h}pt" viewBox="{x0} {y0} {w} {h}"'
    return head.replace(old, new, 1) + text[head_end:]
