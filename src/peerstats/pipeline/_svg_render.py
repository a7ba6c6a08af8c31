"""Matplotlib's SVG drawing with its text laid out and its ticks worked out once (issue 22).

Every figure matplotlib saves gets a new ``RendererSVG`` and with it a new ``TextToPath``, so
the text caches of one figure start empty in the next: each tick label, axis label and legend
entry is measured again with FreeType (``FT2Font.set_text``), laid out again (``_layout``,
``load_glyph``) and the font's line metrics read again from its ``OS/2`` table, for every
figure of a report (about a quarter of the drawing time of the bundled analysis).

:class:`CachingRenderer` is ``RendererSVG`` with one :class:`CachingTextToPath` shared by all
figures drawn in a thread (one per thread, as matplotlib's FreeType fonts are). It
remembers, per FreeType font object (held, so that its ``id`` is not reused), string and size,

* the width, height and descent of a string (``get_text_width_height_descent``),
* the glyphs of a string, their positions and outlines (``get_glyphs_with_font``, from which
  the renderer writes the ``<defs>`` and ``<use>`` elements of text drawn as paths),

and, per font and size, the ascent, descent and line gap read from the font's tables
(``_get_font_height_metrics``, the hook ``Text._get_layout`` asks the renderer first, from
matplotlib 3.11 on; earlier versions do not call it). The values are those FreeType gives on
the first call, which FreeType gives again on every later one (no state is carried between
strings: the fonts are reset and resized before each use), so the SVG text is byte for byte
the one ``RendererSVG`` writes; ``tests/pipeline/test_svg_render.py`` compares both. Not
cached here: math text and TeX (measured and laid out by a new math text parser in each
drawing, as matplotlib does), strings with a character the font's first face lacks
(FreeType falls back or warns about the missing glyph, and the warning must come again on
every figure), and font properties that are not hashable. The caches hold at most
:data:`MAX_ENTRIES` entries each and are emptied when full.

:func:`ticks_remembered_per_axes` and :func:`ticks_remembered`: inside one drawing of an
Axes, or one of its tight boxes, matplotlib asks each axis for its ticks (locator, formatter,
tick labels) and their boxes two to six times with the same answer; they are worked out once
per such call (300 -> 70 tick updates for the figures of the bundled analysis), the same
bytes (compared with matplotlib's own drawing in the tests).

Written here because matplotlib has no switch for either (its renderer is private to
``print_svg``); everything else is matplotlib's own code path. Both lean on matplotlib's
private methods, so they are used only with the matplotlib versions :data:`VERIFIED` against
matplotlib's own drawing (:func:`verified`; :func:`peerstats.pipeline._svg.figure_svg` draws
with matplotlib's renderer otherwise).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_svg import FigureCanvasSVG, RendererSVG
from matplotlib.mathtext import MathTextParser
from matplotlib.textpath import TextToPath

__all__ = [
    "CachingCanvas",
    "CachingRenderer",
    "CachingTextToPath",
    "MAX_ENTRIES",
    "clear_caches",
    "shared_text2path",
    "ticks_remembered",
    "ticks_remembered_per_axes",
    "verified",
    "VERIFIED",
]

#: entries of each text cache before it is emptied (a report needs about 2,000)
MAX_ENTRIES = 20_000
#: matplotlib versions (major, minor) whose SVG this module was checked to reproduce byte for
#: byte (``tests/pipeline/test_svg_render.py``); with any other, figures are drawn by
#: matplotlib's own renderer (slower, never different)
VERIFIED = frozenset({(3, 11)})


def verified(version: str | None = None) -> bool:
    """Whether the installed matplotlib (or ``version``) is one :data:`VERIFIED`."""
    import re

    m = re.match(r"(\d+)\.(\d+)", version if version is not None else mpl.__version__)
    return m is not None and (int(m.group(1)), int(m.group(2))) in VERIFIED


def _covers(font: Any, s: str) -> bool:
    """Whether the font's first face has a glyph for every character of ``s`` (so FreeType
    neither falls back nor warns)."""
    return all(font.get_char_index(ord(c)) for c in s)


def _remember(cache: dict, key: Any, value: Any) -> None:
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    cache[key] = value


class CachingTextToPath(TextToPath):
    """``TextToPath`` remembering the metrics and glyphs of the strings it has laid out."""

    def __init__(self) -> None:
        super().__init__()
        self._fonts: dict[Any, Any] = {}
        self._metrics: dict[Any, Any] = {}
        self._glyphs: dict[Any, Any] = {}
        self._heights: dict[Any, Any] = {}

    def clear(self) -> None:
        """Forget every string and font."""
        self._fonts.clear()
        self._metrics.clear()
        self._glyphs.clear()
        self._heights.clear()

    def new_drawing(self) -> None:
        """Look the fonts up again, and parse math text anew (the rcParams naming the fonts
        may have changed; matplotlib's math text parser caches per instance, and each of its
        renderers has a new one)."""
        self._fonts.clear()
        self.mathtext_parser = MathTextParser("path")

    def _get_font(self, prop: Any) -> Any:
        """``TextToPath._get_font``: the font of ``prop`` at 100 pt, 72 dpi, looked up once
        per drawing (``new_drawing``) and reset as ``get_font`` and ``_get_font`` reset it
        (another renderer may have scaled or rotated the same FreeType object since)."""
        font = self._fonts.get(prop)
        if font is None:
            font = super()._get_font(prop)
            _remember(self._fonts, prop.copy(), font)
            return font
        if hasattr(font, "_set_transform"):  # get_font resets it (matplotlib 3.10+)
            font._set_transform([[0x10000, 0], [0, 0x10000]], [0, 0])
        font.set_size(self.FONT_SCALE, self.DPI)
        return font

    def get_text_width_height_descent(self, s: str, prop: Any, ismath: Any) -> Any:
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        font = self._get_font(prop)
        key = (id(font), s, prop.get_size_in_points())
        hit = self._metrics.get(key)
        if hit is not None:
            return hit[1]
        out = super().get_text_width_height_descent(s, prop, ismath)
        if _covers(font, s):
            _remember(self._metrics, key, (font, out))
        return out

    def get_glyphs_with_font(
        self,
        font: Any,
        s: str,
        glyph_map: Any = None,
        return_new_glyphs_only: bool = False,
        **options: Any,
    ) -> Any:
        try:
            key = (id(font), s, tuple(sorted(options.items())))
            hash(key)
        except TypeError:  # features or language given as a list: not remembered
            return super().get_glyphs_with_font(
                font, s, glyph_map, return_new_glyphs_only, **options
            )
        hit = self._glyphs.get(key)
        if hit is None:
            info, outlines, rects = super().get_glyphs_with_font(font, s, None, False, **options)
            hit = (font, info, outlines, rects)
            if not rects and _covers(font, s):
                _remember(self._glyphs, key, hit)
        _, info, outlines, rects = hit
        if glyph_map is None:
            glyph_map = OrderedDict()
        new = OrderedDict() if return_new_glyphs_only else glyph_map
        for glyph in info:
            if glyph[0] not in glyph_map:
                new[glyph[0]] = outlines[glyph[0]]
        return list(info), new, list(rects)

    def font_height_metrics(self, prop: Any, dpi: float) -> Any:
        """(ascent, descent, line gap) of ``prop``'s font at ``dpi``, as ``Text._get_layout``
        reads them from the ``OS/2`` (else ``hhea``) table; Nones when the font has neither."""
        font = self._get_font(prop)  # the face's tables do not depend on its size
        fontsize = prop.get_size_in_points()
        key = (id(font), fontsize, dpi)
        hit = self._heights.get(key)
        if hit is not None:
            return hit[1]
        out: tuple[Any, Any, Any] = (None, None, None)
        for table_name, linegap_key, ascent_key, descent_key in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent"),
        ):
            table = font.get_sfnt_table(table_name)
            if table is None:
                continue
            units_per_em = font.get_sfnt_table("head")["unitsPerEm"]
            scale = 1 / units_per_em * fontsize * dpi / 72
            out = (
                table[ascent_key] * scale,
                -table[descent_key] * scale,
                table[linegap_key] * scale,
            )
            break
        _remember(self._heights, key, (font, out))
        return out


_LOCAL = threading.local()


def shared_text2path() -> CachingTextToPath:
    """The :class:`CachingTextToPath` of this thread (matplotlib's fonts are per thread too,
    ``font_manager.get_font``), made on first use."""
    t2p = getattr(_LOCAL, "text2path", None)
    if t2p is None:
        t2p = _LOCAL.text2path = CachingTextToPath()
    return t2p


#: matplotlib versions whose ``Text._get_layout`` asks the renderer for the font's line
#: metrics (``_get_font_height_metrics``) and otherwise reads them as :meth:`font_height_metrics`
_HEIGHT_HOOK = tuple(int(p) for p in mpl.__version__.split(".")[:2]) >= (3, 11)


def clear_caches() -> None:
    """Empty the text caches shared by every :class:`CachingRenderer` of this thread."""
    shared_text2path().clear()


class CachingRenderer(RendererSVG):
    """``RendererSVG`` whose text measurements and glyph outlines come from the one
    :class:`CachingTextToPath` of the process. Only for figures drawn at 72 dpi, as
    ``FigureCanvasSVG.print_svg`` draws them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._text2path = shared_text2path()
        self._text2path.new_drawing()

    if _HEIGHT_HOOK:

        def _get_font_height_metrics(self, prop: Any) -> Any:
            return self._text2path.font_height_metrics(prop, 72)


class CachingCanvas(FigureCanvasSVG):
    """``FigureCanvasSVG`` drawing with a :class:`CachingRenderer`, also when a layout engine
    asks for the renderer the figure would be saved with (``Figure._get_renderer``)."""

    def print_svg(
        self, filename: Any, *, bbox_inches_restore: Any = None, metadata: Any = None
    ) -> None:
        """As ``FigureCanvasSVG.print_svg`` (matplotlib 3.7-3.11), with the caching renderer."""
        import codecs

        from matplotlib import cbook
        from matplotlib.backends.backend_mixed import MixedModeRenderer

        with cbook.open_file_cm(filename, "w", encoding="utf-8") as fh:
            if not cbook.file_requires_unicode(fh):
                fh = codecs.getwriter("utf-8")(fh)
            dpi = self.figure.dpi
            self.figure.dpi = 72
            width, height = self.figure.get_size_inches()
            w, h = width * 72, height * 72
            renderer = MixedModeRenderer(
                self.figure,
                width,
                height,
                dpi,
                CachingRenderer(w, h, fh, image_dpi=dpi, metadata=metadata),
                bbox_inches_restore=bbox_inches_restore,
            )
            self.figure.draw(renderer)
            renderer.finalize()


@contextlib.contextmanager
def ticks_remembered(axes: Any) -> Iterator[None]:
    """Each axis of the Axes ``axes`` works out its ticks (``Axis._update_ticks``: locator,
    formatter, tick labels) and measures its tick labels (``Axis._get_ticklabel_bboxes``)
    once inside the block instead of at every request.

    Only for a block in which no axes moves and no limit changes: the tight box right after
    a drawing (``Figure.get_tightbbox``), or one Axes' drawing or tight box (both after its
    ``apply_aspect``, see :func:`ticks_remembered_per_axes`). There each axis is asked for
    its ticks two to six times (its own box, its label's place beside its siblings' tick
    labels, each spine's extent), with the same answer each time since nothing moves. The
    axes get instance attributes that are deleted on exit."""
    touched = []
    try:
        for ax in _plain(axes):
            for axis in getattr(ax, "_axis_map", {}).values():
                if "_update_ticks" in vars(axis) or "_get_ticklabel_bboxes" in vars(axis):
                    continue  # already remembering (a block inside another)
                axis._update_ticks = _once(axis._update_ticks)
                axis._get_ticklabel_bboxes = _once_per_ticks(axis._get_ticklabel_bboxes)
                touched.append(axis)
        yield
    finally:
        for axis in touched:
            del axis._update_ticks, axis._get_ticklabel_bboxes


@contextlib.contextmanager
def ticks_remembered_per_axes(fig: Any) -> Iterator[None]:
    """Inside the block, each drawing of an Axes of ``fig`` (``Axes.draw``) and each of its
    tight boxes (``Axes.get_tightbbox``, which a layout engine asks for) remembers the ticks
    of the Axes' axes (:func:`ticks_remembered`) until it returns. Both methods fix the Axes'
    place first (``apply_aspect``) and change neither place nor limits after; between two
    calls the layout engine may move the Axes, so nothing is remembered from one call to
    the next. Instance attributes, deleted on exit."""
    wrapped = []
    try:
        for ax in _plain(fig.get_axes()):
            if "draw" in vars(ax) or "get_tightbbox" in vars(ax):
                continue
            ax.draw = _within_ticks_remembered(ax, ax.draw)
            ax.get_tightbbox = _within_ticks_remembered(ax, ax.get_tightbbox)
            wrapped.append(ax)
        yield
    finally:
        for ax in wrapped:
            del ax.draw, ax.get_tightbbox


def _plain(axes: Any) -> list[Any]:
    """The Axes of ``axes`` that are matplotlib's rectilinear ``Axes`` with its own x and y
    axes (what :func:`ticks_remembered` was checked on), not polar, 3-D or other
    projections, nor subclasses that may draw otherwise."""
    from matplotlib.axes import Axes
    from matplotlib.axis import XAxis, YAxis

    return [
        ax
        for ax in axes
        if type(ax) is Axes
        and {type(a) for a in getattr(ax, "_axis_map", {}).values()} <= {XAxis, YAxis}
    ]


def _within_ticks_remembered(ax: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        with ticks_remembered([ax]):
            return method(*args, **kwargs)

    return call


def _once(method: Callable[[], list]) -> Callable[[], list]:
    """``method()`` the first time, a copy of that list later."""
    memo: list[list] = []

    def remembered() -> list:
        if not memo:
            memo.append(method())
        return list(memo[0])

    return remembered


def _once_per_ticks(method: Callable[..., tuple]) -> Callable[..., tuple]:
    """``method(ticks, renderer)`` once per list of the same ticks and renderer (lists
    copied on the way out)."""
    memo: dict[tuple, tuple] = {}

    def remembered(ticks: list, renderer: Any) -> tuple:
        key = (tuple(map(id, ticks)), id(renderer))
        if key not in memo:
            memo[key] = (method(ticks, renderer), ticks, renderer)  # held: ids stay theirs
        return tuple(list(x) for x in memo[key][0])

    return remembered
