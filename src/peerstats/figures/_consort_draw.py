"""Drawing of the CONSORT flow diagram (matplotlib, boxes sized to their measured text).

Coordinates are inches, y growing downwards, so that text measured with the renderer maps
one-to-one onto box sizes. Every box is a list of lines ``(text, bold, indent)``; lines too wide
for their box are wrapped at word boundaries using measured widths.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from peerstats.figures.palette import GREY, arm_colors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class ConsortFlow(Protocol):
    """What the drawing reads of a :class:`peerstats.figures.consort.ConsortFlow` (a protocol,
    so that the drawing does not import the counting module that imports it)."""

    counts: pd.DataFrame
    arms: Any
    visits: Any
    layout: str
    clusters: pd.DataFrame | None

    def n(self, box: str, arm: str | None = None, visit: str | None = None) -> int: ...

    def reasons(self, box: str, arm: str | None = None, visit: str | None = None) -> dict: ...


PAD_X = 0.08  # inches inside a box
PAD_Y = 0.06
INDENT = 0.13  # inches per indent level
GAP_Y = 0.28  # vertical gap between rows (room for an arrow)
GAP_X = 0.25  # between arm columns
STAGE_W = 0.28  # stage label column
MARGIN = 0.06
LINE_SPACING = 1.28


@dataclass
class Box:
    key: str
    lines: list[tuple[str, bool, int]]
    edgecolor: str = "black"
    x: float = 0.0  # left
    y: float = 0.0  # top
    w: float = 0.0
    h: float = 0.0
    wrapped: list[tuple[str, bool, float]] = field(default_factory=list)  # text, bold, x offset

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h


class _Measure:
    """Text widths in inches at a font size, measured with the figure's renderer."""

    def __init__(self, fig: Figure, fontsize: float) -> None:
        from matplotlib.font_manager import FontProperties

        self.fig = fig
        self.dpi = fig.dpi
        self.fontsize = fontsize
        canvas = fig.canvas
        self.renderer = (
            canvas.get_renderer() if hasattr(canvas, "get_renderer") else fig._get_renderer()
        )
        self.props = {
            False: FontProperties(size=fontsize),
            True: FontProperties(size=fontsize, weight="bold"),
        }
        self.line_h = fontsize * LINE_SPACING / 72.0
        k = fontsize / 8.0  # spacing is designed for 8 pt and scales with the font
        self.pad_x, self.pad_y, self.indent, self.gap_y = (
            PAD_X * k,
            PAD_Y * k,
            INDENT * k,
            GAP_Y * k,
        )
        self.stage_w = STAGE_W * k
        self._cache: dict[tuple[str, bool], float] = {}

    def width(self, text: str, bold: bool = False) -> float:
        key = (text, bold)
        if key not in self._cache:
            w, _, _ = self.renderer.get_text_width_height_descent(
                text, self.props[bold], ismath=False
            )
            self._cache[key] = w / self.dpi
        return self._cache[key]


def _wrap_line(m: _Measure, text: str, bold: bool, avail: float) -> list[str]:
    if m.width(text, bold) <= avail:
        return [text]
    for chars in range(len(text) - 1, 8, -1):
        parts = textwrap.wrap(text, chars, subsequent_indent="  ", break_long_words=False)
        if all(m.width(p, bold) <= avail for p in parts):
            return parts
    return textwrap.wrap(text, 9, subsequent_indent="  ")


def _fit_box(m: _Measure, box: Box, max_w: float, fixed_w: float | None = None) -> None:
    """Wrap the lines of a box to at most ``max_w`` inches and size the box to its text."""
    avail_base = (fixed_w or max_w) - 2 * m.pad_x
    wrapped: list[tuple[str, bool, float]] = []
    for text, bold, indent in box.lines:
        off = indent * m.indent
        for piece in _wrap_line(m, text, bold, avail_base - off):
            wrapped.append((piece, bold, off))
    box.wrapped = wrapped
    natural = max(m.width(t, b) + off for t, b, off in wrapped) + 2 * m.pad_x
    box.w = fixed_w if fixed_w is not None else min(max_w, natural)
    box.h = len(wrapped) * m.line_h + 2 * m.pad_y


def _fmt_n(n: int) -> str:
    return f"n = {n:,}".replace(",", "\u2009")


def _reason_lines(
    flow: ConsortFlow, box: str, arm: str | None, visit: str | None, indent: int
) -> list[tuple[str, bool, int]]:
    return [(f"\u2013 {r} ({n})", False, indent) for r, n in flow.reasons(box, arm, visit).items()]


def _has(flow: ConsortFlow, box: str, arm: str | None = None) -> bool:
    c = flow.counts
    sel = c["box"] == box
    if arm is not None:
        sel &= c["arm"] == arm
    return bool(sel.any())


Lines = list[tuple[str, bool, int]]


def _enrolment_boxes(flow: ConsortFlow) -> tuple[Box | None, Box | None, Box]:
    """Assessed (approached) and excluded, when screening was recorded, and randomised
    (consented and enrolled)."""
    single = flow.layout == "single-arm"
    first, mid = ("approached", "consented") if single else ("assessed", "randomised")
    enrol_top = excluded = None
    if _has(flow, first):
        title = "Approached" if single else "Assessed for eligibility"
        enrol_top = Box("assessed", [(f"{title} ({_fmt_n(flow.n(first))})", True, 0)])
        excl_lines = [(f"Excluded ({_fmt_n(flow.n('excluded'))})", True, 0)]
        excluded = Box("excluded", excl_lines + _reason_lines(flow, "excluded", None, None, 1))
    title = "Consented and enrolled" if single else "Randomised"
    return enrol_top, excluded, Box("randomised", [(f"{title} ({_fmt_n(flow.n(mid))})", True, 0)])


def _allocation_lines(flow: ConsortFlow, arm: str, name: str) -> Lines:
    """Started / did not start (single arm), or allocated, received and not received."""
    lines: Lines = []
    if flow.layout == "single-arm":
        lines.append((f"Started {name} ({_fmt_n(flow.n('started', arm))})", True, 0))
        if _has(flow, "not_started", arm):
            lines.append((f"Did not start ({_fmt_n(flow.n('not_started', arm))})", False, 0))
            lines += _reason_lines(flow, "not_started", arm, None, 1)
        return lines
    lines.append((f"Allocated to {name} ({_fmt_n(flow.n('allocated', arm))})", True, 0))
    if _has(flow, "received", arm):
        n_rec, n_not = _fmt_n(flow.n("received", arm)), _fmt_n(flow.n("not_received", arm))
        lines.append((f"Received allocated intervention ({n_rec})", False, 0))
        lines.append((f"Did not receive allocated intervention ({n_not})", False, 0))
        lines += _reason_lines(flow, "not_received", arm, None, 1)
    return lines


def _cluster_lines(clusters: Any, arm: str) -> Lines:
    """Groups, peers and group sizes of a group-delivered arm (none for other arms)."""
    if clusters is None or arm not in set(clusters["arm"]):
        return []
    cl = clusters.set_index("arm").loc[arm]
    peers = "" if cl["n_peers"] != cl["n_peers"] else f" by {int(cl['n_peers'])} peers"
    sizes = (
        f"Participants per group: mean {cl['group_size_mean']:z.1f} "
        f"(range {int(cl['group_size_min'])}\u2013{int(cl['group_size_max'])})"
    )
    return [(f"Delivered in {int(cl['n_groups'])} groups{peers}", False, 0), (sizes, False, 0)]


def _visit_lines(flow: ConsortFlow, arm: str, v: Any, labels: dict[str, str], lost) -> Lines:
    """Single arm: completed the assessment at ``v``, and not assessed (with reasons)."""
    c = flow.counts
    n_done = _fmt_n(flow.n("completed", arm, visit=v))
    lines: Lines = [
        (f"Completed {labels.get('visit:' + str(v), v)} assessment ({n_done})", True, 0)
    ]
    na = c[(c["box"] == "not_assessed") & (c["arm"] == arm) & c["reason"].isna()]
    if (na["visit"] == v).any() and int(na.loc[na["visit"] == v, "n"].iloc[0]):
        nl = int(na.loc[na["visit"] == v, "n"].iloc[0])
        lines.append((f"Not assessed ({_fmt_n(nl)})", False, 1))
        lines += _reason_lines(flow, "not_assessed", arm, v, 2)
    if (lost["visit"] == v).any():
        nl = int(lost.loc[lost["visit"] == v, "n"].iloc[0])
        if nl:
            lines.append((f"Not assessed ({_fmt_n(nl)})", False, 1))
            lines += _reason_lines(flow, "lost_to_follow_up", arm, v, 2)
    return lines


def _follow_up_lines(flow: ConsortFlow, arm: str, labels: dict[str, str]) -> Lines:
    """Per visit: completed / not assessed (single arm) or lost to follow-up; discontinued."""
    c = flow.counts
    lines: Lines = []
    lost = c[(c["box"] == "lost_to_follow_up") & (c["arm"] == arm) & c["reason"].isna()]
    if flow.layout == "single-arm":
        for v in flow.visits:
            lines += _visit_lines(flow, arm, v, labels, lost)
    else:
        for rec in lost.itertuples(index=False):
            vname = labels.get(f"visit:{rec.visit}", rec.visit)
            lines.append((f"Lost to follow-up at {vname} ({_fmt_n(rec.n)})", False, 0))
            lines += _reason_lines(flow, "lost_to_follow_up", arm, rec.visit, 1)
    if _has(flow, "discontinued", arm):
        n_disc = _fmt_n(flow.n("discontinued", arm))
        lines.append((f"Discontinued intervention ({n_disc})", False, 0))
        lines += _reason_lines(flow, "discontinued", arm, None, 1)
    return lines or [("No losses recorded", False, 0)]


def _analysis_lines(flow: ConsortFlow, arm: str) -> Lines:
    n_ex = flow.n("excluded_from_analysis", arm)
    return [
        (f"Analysed ({_fmt_n(flow.n('analysed', arm))})", True, 0),
        (f"Excluded from analysis ({_fmt_n(n_ex)})", False, 0),
        *_reason_lines(flow, "excluded_from_analysis", arm, None, 1),
    ]


def _boxes(flow: ConsortFlow, labels: dict[str, str]) -> dict[str, Any]:
    """Build the boxes' lines (content only; positions come later)."""
    enrol_top, excluded, enrol_mid = _enrolment_boxes(flow)
    rows: dict[str, list[Box]] = {"allocation": [], "follow-up": [], "analysis": []}
    for arm in flow.arms:
        lines = _allocation_lines(flow, arm, labels.get(arm, arm))
        lines += _cluster_lines(flow.clusters, arm)
        rows["allocation"].append(Box(f"allocation:{arm}", lines))
        rows["follow-up"].append(Box(f"follow-up:{arm}", _follow_up_lines(flow, arm, labels)))
        rows["analysis"].append(Box(f"analysis:{arm}", _analysis_lines(flow, arm)))
    return {
        "top": enrol_top,
        "excluded": excluded,
        "mid": enrol_mid,
        "rows": rows,
        "pooled": _pooled_box(flow, labels),
    }


_POOLED_NAMES = {  # the boxes the blinded flow pools (consort.py names every box the same way)
    "received": "Received allocated intervention",
    "not_received": "Did not receive allocated intervention",
    "started": "Started the intervention",
    "not_started": "Did not start",
    "discontinued": "Discontinued intervention",
    "lost_to_follow_up": "Lost to follow-up",
    "not_assessed": "Not assessed",
    "excluded_from_analysis": "Excluded from analysis",
}


def _pooled_box(flow: ConsortFlow, labels: dict[str, str]) -> Box | None:
    """Counts after randomisation that are pooled across the arms (``arm`` missing: the
    blinded DMC report, issue 20.1), in one box under the arms; None when there are none."""
    c = flow.counts
    c = c[c["arm"].isna() & (c["stage"] != "enrolment")]
    if c.empty:
        return None
    lines: list[tuple[str, bool, int]] = [("All arms pooled", True, 0)]
    vis = [None if x is None or x != x else str(x) for x in c["visit"]]
    seen: set[tuple[str, str | None]] = set()
    for box, v in zip(c["box"], vis):
        if (box, v) in seen:
            continue
        seen.add((box, v))
        name = _POOLED_NAMES.get(box, box.replace("_", " ").capitalize())
        if v is not None:
            name += f" at {labels.get('visit:' + v, v)}"
        same = [x == v for x in vis]
        total = c[(c["box"] == box).to_numpy() & c["reason"].isna().to_numpy() & same]
        n = f" ({_fmt_n(int(total['n'].iloc[0]))})" if len(total) else ", reasons"
        lines.append((name + n, False, 0))
        lines += _reason_lines(flow, box, None, v, 1)
    return Box("pooled", lines)


def _columns(m: _Measure, width: float, k: int) -> tuple[float, list[float], float, float]:
    """Column width, column left edges, centre of the diagram and the right edge."""
    left = MARGIN + m.stage_w + 0.1
    right = width - MARGIN
    area = right - left
    if k == 1:
        col_w = min(area * 0.8, 3.4)
        col_x = [left + (area - col_w) / 2]
    else:
        col_w = (area - GAP_X * (k - 1)) / k
        col_x = [left + i * (col_w + GAP_X) for i in range(k)]
    center = (col_x[0] + col_x[-1] + col_w) / 2 if k > 1 else col_x[0] + col_w / 2
    return col_w, col_x, center, right


def _place_enrolment(b: dict[str, Any], m: _Measure, center: float, right: float, area: float):
    """Place the enrolment boxes from the top; returns (boxes, arrows, band bottom)."""
    y = MARGIN
    top, excl, mid = b["top"], b["excluded"], b["mid"]
    enrol_h_min = m.width("Enrolment", True) + 0.12
    _fit_box(m, mid, min(area, 3.4))
    boxes: list[Box] = []
    arrows: list[tuple] = []
    if top is not None:
        _fit_box(m, top, min(area, 3.4))
        excl_x = center + 0.35
        _fit_box(m, excl, right - excl_x)
        top.x, top.y = center - top.w / 2, y
        excl.x, excl.y = excl_x, top.bottom + m.gap_y * 0.8
        mid.x, mid.y = center - mid.w / 2, excl.bottom + m.gap_y * 0.8
        if mid.bottom - top.y < enrol_h_min:
            mid.y = top.y + enrol_h_min - mid.h
        boxes += [top, excl, mid]
        arrows.append(("line", center, top.bottom, center, mid.y, True))
        arrows.append(("line", center, excl.y + excl.h / 2, excl.x, excl.y + excl.h / 2, True))
    else:
        # no screening data: the flow starts at randomisation
        mid.x, mid.y = center - mid.w / 2, y + (enrol_h_min - mid.h) / 2
        boxes.append(mid)
    return boxes, arrows, max(mid.bottom, y + enrol_h_min)


def _place_stages(flow, b, m, col_x, col_w, y, prev_bottoms, colors, out) -> float:
    """Place the allocation, follow-up and analysis rows (one box per arm) from ``y``; adds
    to ``out`` = (boxes, arrows, bands) and returns the next free ``y``."""
    boxes, arrows, bands = out
    col_centers = [x + col_w / 2 for x in col_x]
    stage_names = {
        "allocation": "Intervention" if flow.layout == "single-arm" else "Allocation",
        "follow-up": "Follow-up",
        "analysis": "Analysis",
    }
    for stage in ("allocation", "follow-up", "analysis"):
        row = b["rows"][stage]
        for bx in row:
            _fit_box(m, bx, col_w, fixed_w=col_w)
        h = max(bx.h for bx in row)
        band_h = max(h, m.width(stage_names[stage], True) + 0.12)  # room for the stage label
        for i, bx in enumerate(row):
            bx.x, bx.y, bx.h = col_x[i], y + (band_h - h) / 2, h
            if stage == "allocation":
                bx.edgecolor = colors.get(flow.arms[i], "black")
            arrows.append(("line", col_centers[i], prev_bottoms[i], col_centers[i], bx.y, True))
            prev_bottoms[i] = bx.bottom
        boxes += row
        bands.append((stage_names[stage], y, y + band_h))
        y = y + band_h + m.gap_y
    return y


def _place_pooled(pooled: Box | None, m, col_x, col_w, y, boxes, bands) -> float:
    """The pooled box (blinded report) across all columns under the arms."""
    if pooled is None:
        return y
    full = col_x[-1] + col_w - col_x[0]
    _fit_box(m, pooled, full, fixed_w=full)
    band_h = max(pooled.h, m.width("Pooled", True) + 0.12)
    pooled.x, pooled.y = col_x[0], y + (band_h - pooled.h) / 2
    boxes.append(pooled)
    bands.append(("Pooled", y, y + band_h))
    return y + band_h + m.gap_y


def _layout(
    flow: ConsortFlow, m: _Measure, width: float, labels: dict[str, str], colors: dict[str, str]
) -> tuple[list[Box], list[tuple], list[tuple], float]:
    """Place the boxes. Returns (boxes, arrows, stage bands, total height)."""
    b = _boxes(flow, labels)
    k = len(flow.arms)
    col_w, col_x, center, right = _columns(m, width, k)
    area = right - (MARGIN + m.stage_w + 0.1)
    boxes, arrows, enrol_bottom = _place_enrolment(b, m, center, right, area)
    bands: list[tuple] = [("Enrolment", MARGIN, enrol_bottom)]
    y = b["mid"].bottom
    # split to arms
    split_y = y + m.gap_y * 0.55
    col_centers = [x + col_w / 2 for x in col_x]
    if k > 1:
        arrows.append(("line", center, y, center, split_y, False))
        arrows.append(("line", col_centers[0], split_y, col_centers[-1], split_y, False))
        y_start = split_y + m.gap_y * 0.7
    else:
        y_start = y + m.gap_y
    y_start = max(y_start, enrol_bottom + 0.12)
    prev_bottoms = [split_y if k > 1 else y] * k
    y = _place_stages(
        flow, b, m, col_x, col_w, y_start, prev_bottoms, colors, (boxes, arrows, bands)
    )
    y = _place_pooled(b["pooled"], m, col_x, col_w, y, boxes, bands)
    total_h = y - m.gap_y + MARGIN
    # stage bands span from their first box to the last; enrolment starts at the top
    return boxes, arrows, bands, total_h


def _figure(ax: Axes | None, width: float) -> tuple[Figure, Axes, float, float | None]:
    """The figure and axes to draw on: a new one (``avail_h`` None), or the axes given, whose
    width and height (inches) bound the diagram."""
    if ax is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width, 8))
        return fig, fig.add_axes((0, 0, 1, 1)), width, None
    fig = ax.figure
    bbox = ax.get_position()
    fw, fh = fig.get_size_inches()
    return fig, ax, bbox.width * fw, bbox.height * fh


def _fit_font(flow, fig, fontsize, width, labels, colors, avail_h, note):
    """The largest font (bisection, 4 pt at least) whose diagram fits the axes given."""
    extra = fontsize * LINE_SPACING / 72.0 * 1.4 if note is not None else 0.0
    lo, hi = 4.0, fontsize
    best = None
    for _ in range(8):
        mid_fs = (lo + hi) / 2
        m_try = _Measure(fig, mid_fs)
        res = _layout(flow, m_try, width, labels, colors)
        if res[3] + extra * mid_fs / fontsize <= avail_h:
            lo, best = mid_fs, (m_try, res)
        else:
            hi = mid_fs
    if best is None:
        m = _Measure(fig, 4.0)
        return m, _layout(flow, m, width, labels, colors)
    return best


def _draw_boxes(ax: Axes, boxes: list[Box], m: _Measure) -> None:
    from matplotlib.patches import FancyBboxPatch

    for bx in boxes:
        ax.add_patch(
            FancyBboxPatch(
                (bx.x, bx.y),
                bx.w,
                bx.h,
                boxstyle="square,pad=0",
                linewidth=0.9,
                edgecolor=bx.edgecolor,
                facecolor="white",
                zorder=2,
                gid=f"consort-box:{bx.key}",
            )
        )
        ty = bx.y + m.pad_y
        for text, bold, off in bx.wrapped:
            ax.text(
                bx.x + m.pad_x + off,
                ty + m.line_h / 2,
                text,
                fontsize=m.fontsize,
                fontweight="bold" if bold else "normal",
                ha="left",
                va="center_baseline",
                zorder=3,
                gid=f"consort-text:{bx.key}",
            )
            ty += m.line_h


def _draw_arrows(ax: Axes, arrows: list[tuple]) -> None:
    head_style = {
        "arrowstyle": "-|>",
        "color": GREY,
        "lw": 0.9,
        "shrinkA": 0,
        "shrinkB": 0,
        "mutation_scale": 8,
    }
    for _, x0, y0, x1, y1, head in arrows:
        if head:
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1, arrowprops=dict(head_style))
        else:
            ax.plot([x0, x1], [y0, y1], color=GREY, lw=0.9, zorder=1, solid_capstyle="butt")


def _draw_bands(ax: Axes, bands: list[tuple], m: _Measure) -> None:
    from matplotlib.patches import FancyBboxPatch

    for name, y0, y1 in bands:
        ax.add_patch(
            FancyBboxPatch(
                (MARGIN, y0),
                m.stage_w,
                y1 - y0,
                boxstyle="round,pad=0,rounding_size=0.05",
                linewidth=0,
                facecolor="#D6E6F4",
                zorder=0,
                gid=f"consort-stage:{name}",
            )
        )
        ax.text(
            MARGIN + m.stage_w / 2,
            (y0 + y1) / 2,
            name,
            rotation=90,
            ha="center",
            va="center",
            fontsize=m.fontsize,
            fontweight="bold",
            color="#1F3B57",
            zorder=3,
            gid="consort-stage-label",
        )


def draw_flow(
    flow: ConsortFlow,
    *,
    ax: Axes | None = None,
    width: float | None = None,
    fontsize: float = 8.0,
    arm_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    visit_labels: dict[str, str] | None = None,
) -> Figure:
    """Draw ``flow`` (see :meth:`ConsortFlow.plot`)."""
    labels = dict(arm_labels or {})
    # visit names travel with the arm names, keyed "visit:<code>" (arms cannot start so)
    labels.update({f"visit:{k}": str(v) for k, v in (visit_labels or {}).items()})
    colors = dict(colors or arm_colors(flow.arms))
    if width is None:
        width = 4.8 if len(flow.arms) == 1 else 7.0
    fig, ax, width, avail_h = _figure(ax, width)
    own = avail_h is None
    note = None
    if len(flow.visits) > (2 if flow.layout == "parallel" else 1):
        note = (
            "Losses are counted per visit (participants not assessed at that visit), "
            "not cumulatively."
        )
    m = _Measure(fig, fontsize)
    boxes, arrows, bands, total_h = _layout(flow, m, width, labels, colors)
    if not own and total_h > avail_h:
        m, (boxes, arrows, bands, total_h) = _fit_font(
            flow, fig, fontsize, width, labels, colors, avail_h, note
        )
    note_y = total_h
    if note is not None:
        total_h += m.line_h * 1.4
    if own:
        fig.set_size_inches(width, total_h)
    ax.set_xlim(0, width)
    ax.set_ylim(max(total_h, avail_h if not own else total_h), 0)
    ax.set_axis_off()
    _draw_boxes(ax, boxes, m)
    _draw_arrows(ax, arrows)
    _draw_bands(ax, bands, m)
    if note is not None:
        ax.text(
            MARGIN + m.stage_w + 0.1,
            note_y + m.line_h * 0.7,
            note,
            fontsize=m.fontsize * 0.9,
            style="italic",
            color=GREY,
            ha="left",
            va="center",
            gid="consort-note",
        )
    return fig
