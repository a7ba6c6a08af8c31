"""The report's figures are drawn once (issue 22): :func:`peerstats.pipeline._svg.figure_svg`
must give the picture of matplotlib's own ``savefig(..., bbox_inches="tight")`` (the
reference): the same size, the same elements, every coordinate shifted by the crop only.
(Rasterised with Chromium, the 18 figures of the bundled analysis differed from the
two-pass files at no more than a few anti-aliased edge pixels; see benchmarks/README.md.)"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from peerstats.pipeline._svg import SVG_RC, figure_svg  # noqa: E402

SIZE = re.compile(r'<svg [^>]*width="([\d.]+)pt" height="([\d.]+)pt" viewBox="([^"]+)"')


def _reference(fig) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(SVG_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def _plain_figure(layout=None):
    fig, axes = plt.subplots(1, 2, figsize=(6.0, 3.0), layout=layout)
    x = np.linspace(0, 1, 20)
    axes[0].plot(x, x**2, label="a long legend label")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside the axes
    axes[1].scatter(x, np.sin(x * 6))
    axes[1].set_ylabel("a label")
    fig.suptitle("A title")
    fig.text(0.99, 0.01, "outside the axes", ha="left")  # sticks out of the figure
    return fig


def _tags(svg: str) -> dict[str, int]:
    tags: dict[str, int] = {}
    for t in re.findall(r"<([a-zA-Z:]+)[\s>/]", svg):
        tags[t] = tags.get(t, 0) + 1
    return tags


def _first_move(svg: str) -> tuple[float, float]:
    """The first point of the first path after the figure's background (an axes patch)."""
    body = svg.split('id="axes_1"', 1)[1]
    m = re.search(r'd="M ([-\d.]+) ([-\d.]+)', body)
    assert m is not None
    return float(m.group(1)), float(m.group(2))


@pytest.mark.parametrize("layout", [None, "constrained", "tight"])
def test_one_drawing_matches_the_tight_savefig(layout):
    fig = _plain_figure(layout)
    ours = figure_svg(fig)
    plt.close(fig)
    fig = _plain_figure(layout)
    ref = _reference(fig)
    plt.close(fig)
    (w1, h1, vb1), (w2, h2, vb2) = SIZE.search(ours).groups(), SIZE.search(ref).groups()
    assert (w1, h1) == (w2, h2)  # the same tight box, to matplotlib's 6 decimals
    assert vb2 == f"0 0 {w2} {h2}"
    x0, y0, vw, vh = (float(v) for v in vb1.split())
    assert (vw, vh) == (float(w2), float(h2))
    assert _tags(ours) == _tags(ref)  # the same elements
    # our drawing is the full figure; the crop's offset maps it onto the reference's
    (xa, ya), (xb, yb) = _first_move(ours), _first_move(ref)
    assert xa - x0 == pytest.approx(xb, abs=0.51)  # pixel snapping of axes edges: < 1/2 pt
    assert ya - y0 == pytest.approx(yb, abs=0.51)


def test_text_outside_the_figure_widens_the_box():
    fig = _plain_figure()
    ours = figure_svg(fig)
    w_in, h_in = fig.get_size_inches()
    plt.close(fig)
    w, h, vb = SIZE.search(ours).groups()
    assert float(w) > w_in * 72  # the legend and the text stick out on the right
    assert float(vb.split()[0]) > 0  # the left margin was trimmed


def test_changed_savefig_options_fall_back_to_matplotlib():
    fig = _plain_figure()
    with matplotlib.rc_context({"savefig.facecolor": "yellow"}):
        ours = figure_svg(fig)
        ref = _reference(fig)
    plt.close(fig)
    assert ours == ref


def test_the_figure_is_left_as_it_was():
    fig = _plain_figure()
    canvas, dpi, size = fig.canvas, fig.dpi, tuple(fig.get_size_inches())
    figure_svg(fig)
    assert fig.canvas is canvas
    assert fig.dpi == dpi
    assert tuple(fig.get_size_inches()) == size
    assert figure_svg(fig) == figure_svg(fig)  # deterministic, and drawable again
    plt.close(fig)


def test_an_unexpected_header_is_not_cropped():
    from matplotlib.transforms import Bbox

    from peerstats.pipeline._svg import _crop

    box = Bbox.from_bounds(0.1, 0.1, 1.0, 1.0)
    assert _crop('<svg width="10cm" height="5cm">', box, 2.0) is None
    text = '<svg x="1" width="144pt" height="144pt" viewBox="0 0 144 144" y="2"><g/></svg>'
    assert _crop(text, box, 2.0) == (
        '<svg x="1" width="72pt" height="72pt" viewBox="7.2 64.8 72 72" y="2"><g/></svg>'
    )


def test_only_verified_matplotlib_versions_use_the_caching_renderer():
    from peerstats.pipeline import _svg_render

    assert _svg_render.verified("3.11.2") and _svg_render.verified("3.11.0rc1")
    assert not _svg_render.verified("3.12.0") and not _svg_render.verified("3.7.5")
    assert not _svg_render.verified("unknown")


def test_an_unverified_matplotlib_draws_with_its_own_renderer(monkeypatch):
    """Another matplotlib version: matplotlib's own SVG canvas draws (no caching renderer, no
    remembered ticks), and the figure is the same as with the caching one where verified."""
    from matplotlib.backends import backend_svg

    from peerstats.pipeline import _svg_render

    fig = _plain_figure("constrained")
    cached = figure_svg(fig)
    plt.close(fig)
    monkeypatch.setattr(_svg_render, "VERIFIED", frozenset())
    used = []
    monkeypatch.setattr(_svg_render.CachingCanvas, "print_svg",
                        lambda *a, **k: used.append("caching"))
    real = backend_svg.FigureCanvasSVG.print_svg
    monkeypatch.setattr(backend_svg.FigureCanvasSVG, "print_svg",
                        lambda self, *a, **k: (used.append("own"), real(self, *a, **k))[1])
    fig = _plain_figure("constrained")
    own = figure_svg(fig)
    plt.close(fig)
    assert used and set(used) == {"own"}  # constrained layout draws once more to measure
    if _svg_render.verified(matplotlib.__version__):
        assert own == cached
