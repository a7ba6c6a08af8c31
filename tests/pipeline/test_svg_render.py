"""The caching SVG renderer (issue 22, :mod:`peerstats.pipeline._svg_render`) must write the
bytes matplotlib's own ``FigureCanvasSVG.print_svg`` writes (the reference), on the first
drawing and on later ones that read its caches, for every kind of text: sizes, weights,
families, rotation, several lines, math text, characters the font lacks (whose warning must
come on every drawing), and after the rcParams naming the fonts change."""

from __future__ import annotations

import io
import warnings

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402

from peerstats.pipeline import _svg_render  # noqa: E402
from peerstats.pipeline._svg import SVG_RC  # noqa: E402
from peerstats.pipeline._svg_render import CachingCanvas, CachingTextToPath  # noqa: E402

pytestmark = pytest.mark.skipif(
    not _svg_render.verified(),
    reason=f"matplotlib {matplotlib.__version__} is not one the caching renderer was checked "
    "against: figures are drawn by matplotlib's own renderer (test_svg.py checks that)",
)


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
    assert len(_svg_render.shared_text2path()._glyphs) > 10  # the caches were used
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
    t2p = _svg_render.shared_text2path()
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


def _busy_figure(layout: str | None):
    """Shared and twin axes, aligned labels, a colourbar, a log scale, offset tick labels."""
    fig, axes = plt.subplots(2, 2, figsize=(6.5, 5.0), sharex="col", layout=layout)
    x = np.linspace(1, 100, 50)
    axes[0, 0].plot(x, 1e5 + x)  # an offset ("+1e5") above the axis
    axes[1, 0].semilogy(x, x**2)
    axes[1, 0].set_xlabel("shared x")
    twin = axes[0, 1].twinx()
    axes[0, 1].plot(x, np.sin(x))
    twin.plot(x, np.cos(x) * 1000, color="C1")
    twin.set_ylabel("twin")
    image = axes[1, 1].imshow(np.arange(12.0).reshape(3, 4))
    fig.colorbar(image, ax=axes[1, 1], label="colour")
    axes[1, 1].xaxis.tick_top()
    axes[1, 1].set_title("ticks on top")
    for ax in axes.flat:
        ax.set_ylabel("a long y label")
    fig.align_ylabels()
    return fig


@pytest.mark.parametrize("layout", [None, "constrained", "tight"])
@pytest.mark.parametrize("busy", [False, True])
def test_remembered_ticks_give_the_same_figure(monkeypatch, layout, busy):
    import contextlib

    from peerstats.pipeline._svg import figure_svg

    def make(layout):
        return _busy_figure(layout) if busy else _text_figure(layout=layout)

    ours = figure_svg(make(layout))
    not_remembered = contextlib.nullcontext  # every request computed, as matplotlib does
    monkeypatch.setattr(_svg_render, "ticks_remembered", lambda axes: not_remembered())
    monkeypatch.setattr(_svg_render, "ticks_remembered_per_axes", lambda fig: not_remembered())
    assert ours == figure_svg(make(layout))


def test_remembered_ticks_leave_no_trace_also_after_an_error():
    from peerstats.pipeline._svg_render import ticks_remembered, ticks_remembered_per_axes

    fig = _busy_figure("constrained")
    axes = fig.get_axes()
    with pytest.raises(RuntimeError), ticks_remembered_per_axes(fig), ticks_remembered(axes):
        assert all("draw" in vars(ax) for ax in axes)
        raise RuntimeError("a drawing failed")
    for ax in axes:
        assert "draw" not in vars(ax) and "get_tightbbox" not in vars(ax)
        for axis in ax._axis_map.values():
            assert not {"_update_ticks", "_get_ticklabel_bboxes"} & set(vars(axis))


def test_remembered_ticks_are_computed_once_per_block():
    from peerstats.pipeline._svg_render import ticks_remembered

    fig = _busy_figure(None)
    ax = fig.get_axes()[0]
    calls = []
    original = type(ax.xaxis)._update_ticks

    def counted(axis):
        calls.append(axis)
        return original(axis)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(ax.xaxis), "_update_ticks", counted)
        with ticks_remembered([ax]):
            first = ax.xaxis._update_ticks()
            assert ax.xaxis._update_ticks() == first
            assert ax.xaxis._update_ticks() is not first  # a copy each time
        assert len(calls) == 1
        ax.xaxis._update_ticks()  # outside the block: computed again
        assert len(calls) == 2


def test_only_rectilinear_axes_remember_their_ticks():
    from peerstats.pipeline._svg_render import _plain

    fig = plt.figure()
    flat = fig.add_subplot(1, 2, 1)
    polar = fig.add_subplot(1, 2, 2, projection="polar")
    polar.plot([0, 1, 2], [1, 2, 3])
    assert _plain(fig.get_axes()) == [flat]


def test_each_thread_has_its_own_text_caches():
    import threading

    here = _svg_render.shared_text2path()
    there = []
    worker = threading.Thread(target=lambda: there.append(_svg_render.shared_text2path()))
    worker.start()
    worker.join()
    assert there[0] is not here
    assert _svg_render.shared_text2path() is here
