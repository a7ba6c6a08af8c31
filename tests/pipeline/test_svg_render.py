"""The caching SVG renderer (issue 22, :mod:`peerstats.pipeline._svg_render`) must write the
bytes matplotlib's own ``FigureCanvasSVG.print_svg`` writes (the reference), on the first
drawing and on later ones that read its caches, for every kind of text: sizes, weights,
families, rotation, several lines, math text, characters the font lacks (whose warning must
come on every drawing), and after the rcParams naming the fonts change."""

from __future__ import annotations

import gc
import io
import warnings

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402

from peerstats.pipeline import _svg_render  # noqa: E402
from peerstats.pipeline._svg import SVG_RC, old_objects_frozen  # noqa: E402
from peerstats.pipeline._svg_render import CachingCanvas, CachingTextToPath  # noqa: E402


def _svg(fig, canvas_class) -> str:
    """``fig`` printed by ``canvas_class`` (the canvas it had is put back)."""
    canvas = fig.canvas
    buf = io.StringIO()
    try:
        with matplotlib.rc_context(SVG_RC):
            canvas_class(fig).print_svg(buf, metadata={"Date": None})
    finally:
        fig.set_canvas(canvas)
    return buf.getvalue()


def _text_figure(extra: str = "", layout: str | None = "constrained"):
    fig, axes = plt.subplots(1, 2, figsize=(6.0, 3.0), layout=layout)
    x = np.linspace(0, 1, 20)
    axes[0].plot(x, x**2, label="a long legend label")
    axes[0].legend(loc="upper left", fontsize="small")
    axes[0].set_title("Bold title", fontweight="bold", loc="left")
    axes[0].set_ylabel("rotated label \u2212 with a minus")
    axes[1].scatter(x, np.sin(x * 6), s=8)
    axes[1].set_xlabel(r"math $\alpha_i^2 + \sqrt{x}$")
    axes[1].text(0.1, 0.2, "two lines\nof text", fontsize=7, rotation=30)
    axes[1].text(0.5, 0.5, "serif italic", family="serif", style="italic", fontsize=11)
    axes[1].annotate("n = 1\u2009234 \u2013 en dash" + extra, (0.2, 0.8), fontsize=6.5)
    fig.suptitle("A title")
    return fig


@pytest.fixture(autouse=True)
def _empty_caches():
    _svg_render.clear_caches()
    yield
    _svg_render.clear_caches()
    plt.close("all")


@pytest.mark.parametrize("layout", [None, "constrained", "tight"])
def test_same_bytes_as_matplotlib_first_and_later_drawings(layout):
    # a layout engine starts from where the last drawing left the axes, so each drawing of
    # one figure is compared with the same drawing (first, second) of an identical figure
    ref_fig, fig = _text_figure(layout=layout), _text_figure(layout=layout)
    ref = [_svg(ref_fig, FigureCanvasSVG) for _ in range(2)]
    ours = [_svg(fig, CachingCanvas) for _ in range(2)]  # fills the caches, then reads them
    assert ours == ref
    assert len(_svg_render._TEXT2PATH._glyphs) > 10  # the caches were used
    again = _text_figure(layout=layout)
    assert _svg(again, CachingCanvas) == ref[0]  # a new figure, all its text in the caches


def test_figures_sharing_strings_are_each_as_matplotlib_draws_them():
    # the second figure finds its tick labels in the cache, its own <defs> are still written
    a, b = _text_figure(), _text_figure(layout=None)
    _svg(a, CachingCanvas)
    out = _svg(b, CachingCanvas)
    assert out == _svg(b, FigureCanvasSVG)
    assert out.count("<defs>") > 1


def test_a_missing_glyph_warns_on_every_drawing_as_matplotlib_does():
    fig = _text_figure(extra=" \u4e00\u4e8c", layout=None)  # CJK: not in DejaVu Sans

    def warned(canvas_class):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            text = _svg(fig, canvas_class)
        return text, sorted(str(w.message) for w in got)

    ref, ref_warnings = warned(FigureCanvasSVG)
    assert any("missing from font" in w for w in ref_warnings)
    for _ in range(2):
        text, got = warned(CachingCanvas)
        assert text == ref
        assert got == ref_warnings


def _same(layout: str | None = "constrained") -> bool:
    """A new figure drawn by both canvases gives the same text."""
    return _svg(_text_figure(layout=layout), CachingCanvas) == _svg(
        _text_figure(layout=layout), FigureCanvasSVG
    )


def test_fonts_are_looked_up_again_when_the_rcparams_change():
    assert _same()
    with matplotlib.rc_context({"font.family": "serif", "font.size": 9}):
        assert _same()
    with matplotlib.rc_context({"font.sans-serif": ["DejaVu Serif"]}):
        assert _same()
    assert _same()


def test_the_caches_are_bounded(monkeypatch):
    monkeypatch.setattr(_svg_render, "MAX_ENTRIES", 5)
    assert _same()
    t2p = _svg_render._TEXT2PATH
    for cache in (t2p._fonts, t2p._metrics, t2p._glyphs, t2p._heights):
        assert len(cache) <= 5


def test_glyphs_as_matplotlib_returns_them_with_and_without_a_glyph_map():
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    plain, ours = TextToPath(), CachingTextToPath()
    prop = FontProperties(size=10)
    for s in ("abca", "tick 0.5", "\u2212 1"):
        for only_new in (False, True):
            for known in (None, "ab"):
                font = plain._get_font(prop)
                maps = []
                for t2p in (plain, ours):
                    gmap = None
                    if known is not None:  # glyphs the drawing defined already
                        gmap = dict(t2p.get_glyphs_with_font(font, known)[1])
                    info, new, rects = t2p.get_glyphs_with_font(font, s, gmap, only_new)
                    maps.append((info, list(new), rects, None if gmap is None else list(gmap)))
                    outlines = plain.get_glyphs_with_font(font, s + (known or ""))[1]
                    for glyph, (verts, codes) in new.items():
                        np.testing.assert_array_equal(verts, outlines[glyph][0])
                        np.testing.assert_array_equal(codes, outlines[glyph][1])
                assert maps[0] == maps[1]
    assert ours.get_text_width_height_descent("x", prop, False) == (
        plain.get_text_width_height_descent("x", prop, False)
    )


def test_math_text_is_measured_by_matplotlib():
    from matplotlib.font_manager import FontProperties

    ours = CachingTextToPath()
    prop = FontProperties(size=10)
    ours.get_text_width_height_descent(r"$x^2$", prop, True)
    assert not ours._metrics


def test_old_objects_are_frozen_while_drawing_and_thawed_after():
    assert gc.get_freeze_count() == 0
    with old_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with old_objects_frozen():
            pass
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


def test_thawed_when_drawing_fails():
    with pytest.raises(RuntimeError), old_objects_frozen():
        raise RuntimeError("a figure failed")
    assert gc.get_freeze_count() == 0
