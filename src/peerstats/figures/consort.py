"""CONSORT flow: counts computed from the validated trial, reconciled with the fitted model.

:func:`consort` counts every box of the CONSORT 2010 flow diagram (kept by CONSORT 2025) from
the participants and assessments of a trial: enrolment, allocation, follow-up and analysis,
with reasons. Group-delivered arms add the cluster / non-pharmacological extension (groups,
peers, participants per group, Boutron et al. 2017); single-arm studies get the pilot and
feasibility layout (approached, consented, started, completed each visit; Eldridge et al. 2016).
:meth:`ConsortFlow.plot` draws the diagram with boxes sized to their text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from peerstats.describe._common import (
    arm_levels,
    as_frames,
    data_error,
    group_delivered_arms,
    is_single_arm,
    visit_levels,
)
from peerstats.describe.render import Table
from peerstats.figures._consort_count import (
    COUNT_COLUMNS,
    NOT_RECORDED,
    _check_fit_total,
    _counts_frame,
    _fit_subjects,
    _Flow,
    _observed_by_visit,
    arm_rows,
    check_arms,
    check_fit_ids,
    default_outcome,
    enrolment_rows,
    prepare_participants,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ConsortFlow", "consort", "COUNT_COLUMNS", "NOT_RECORDED"]

_BOX_LABELS = {
    "assessed": "Assessed for eligibility",
    "approached": "Approached",
    "excluded": "Excluded",
    "randomised": "Randomised",
    "consented": "Consented and enrolled",
    "allocated": "Allocated",
    "received": "Received allocated intervention",
    "not_received": "Did not receive allocated intervention",
    "started": "Started the intervention",
    "not_started": "Did not start",
    "completed": "Completed assessment",
    "not_assessed": "Not assessed",
    "lost_to_follow_up": "Lost to follow-up",
    "discontinued": "Discontinued intervention",
    "analysed": "Analysed",
    "excluded_from_analysis": "Excluded from analysis",
}

STAGES_PARALLEL = ("enrolment", "allocation", "follow-up", "analysis")


@dataclass(frozen=True)
class ConsortFlow:
    """Counts of a CONSORT flow diagram, computed from trial data.

    Attributes
    ----------
    counts : DataFrame
        Tidy counts with columns ``stage, box, arm, visit, reason, n``. Each box has one total
        row (``reason`` missing) and, where reasons are recorded, one row per reason; the
        reason rows sum to the total. ``arm`` is missing for enrolment boxes, ``visit`` is set
        for per-visit boxes (``lost_to_follow_up``, ``completed``).
    clusters : DataFrame or None
        Cluster extension for group-delivered arms: ``arm, n_groups, n_peers,
        group_size_mean, group_size_min, group_size_max``.
    arms : tuple of str
        Arms in spec order (reference first).
    visits : tuple of str
        Visits in order (the first is baseline).
    layout : {"parallel", "single-arm"}
        Which diagram is drawn.
    outcome : str or None
        Outcome whose observation defines follow-up and analysis.
    reconciled_with_fit : bool
        True when the analysed numbers were checked against a fitted model.
    """

    counts: pd.DataFrame
    clusters: pd.DataFrame | None
    arms: tuple[str, ...]
    visits: tuple[str, ...]
    layout: Literal["parallel", "single-arm"]
    outcome: str | None = None
    reconciled_with_fit: bool = False
    labels: dict[str, str] = field(default_factory=dict, compare=False)

    def relabelled(self, reason: Any) -> ConsortFlow:
        """A copy whose reasons read as ``reason(text)`` says (a function or a mapping; a
        reason it does not name is kept): for a report in English from Swedish data, or to
        name an outcome by its label instead of its column."""
        import dataclasses

        get = reason.get if isinstance(reason, dict) else None
        counts = self.counts.copy()
        counts["reason"] = [
            r
            if r is None or (isinstance(r, float) and r != r)
            else (get(r, r) if get is not None else reason(r))
            for r in counts["reason"]
        ]
        return dataclasses.replace(self, counts=counts)

    # ----------------------------------------------------------------- access
    def n(
        self,
        box: str,
        arm: str | None = None,
        *,
        visit: str | None = None,
        reason: str | None = None,
    ) -> int:
        """The count of one box (``reason=None`` gives the box total).

        Raises
        ------
        KeyError
            If the box (for that arm / visit / reason) is not part of the flow.
        """
        c = self.counts
        sel = c["box"] == box
        sel &= c["arm"].isna() if arm is None else (c["arm"] == arm)
        if visit is not None:
            sel &= c["visit"] == visit
        sel &= c["reason"].isna() if reason is None else (c["reason"] == reason)
        hit = c.loc[sel, "n"]
        if hit.size > 1:
            raise KeyError(
                f"box {box!r} has one count per visit ({list(c.loc[sel, 'visit'])}); pass visit="
            )
        if hit.empty:
            boxes = sorted(c["box"].unique())
            raise KeyError(
                f"no count for box={box!r}, arm={arm!r}, visit={visit!r}, reason={reason!r}; "
                f"boxes are {boxes}"
            )
        return int(hit.iloc[0])

    def reasons(self, box: str, arm: str | None = None, visit: str | None = None) -> dict[str, int]:
        """``{reason: n}`` for one box."""
        c = self.counts
        sel = (c["box"] == box) & c["reason"].notna()
        sel &= c["arm"].isna() if arm is None else (c["arm"] == arm)
        if visit is not None:
            sel &= c["visit"] == visit
        return {str(r): int(n) for r, n in zip(c.loc[sel, "reason"], c.loc[sel, "n"])}

    def to_frame(self) -> pd.DataFrame:
        """The tidy counts (a copy)."""
        return self.counts.copy()

    def to_table(self) -> Table:
        """The counts as a rendered table (Markdown/HTML/LaTeX), one line per box or reason."""
        c = self.counts
        display = pd.DataFrame(
            {
                "Stage": c["stage"],
                "Box": [
                    f"  \u2013 {r}" if r is not None else _BOX_LABELS.get(b, b)
                    for b, r in zip(c["box"], c["reason"])
                ],
                "Arm": c["arm"].fillna(""),
                "Visit": c["visit"].fillna(""),
                "n": c["n"],
            }
        )
        return Table(c.copy(), display, caption="CONSORT flow")

    def summary(self) -> str:
        """Plain-text listing of the flow, box by box."""
        lines = [f"CONSORT flow ({self.layout}); arms: {', '.join(self.arms)}"]
        for rec in self.counts.itertuples(index=False):
            where = " / ".join(str(x) for x in (rec.arm, rec.visit) if x is not None and x == x)
            label = (
                rec.box if rec.reason is None or rec.reason != rec.reason else f"  - {rec.reason}"
            )
            lines.append(f"  {rec.stage:<10} {label:<40} {where:<20} {rec.n:>6}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return self.to_table().to_html()

    # ------------------------------------------------------------------ drawing
    def plot(
        self,
        ax: Axes | None = None,
        *,
        width: float | None = None,
        fontsize: float = 8.0,
        arm_labels: dict[str, str] | None = None,
        colors: dict[str, str] | None = None,
        visit_labels: dict[str, str] | None = None,
    ) -> Figure:
        """Draw the CONSORT flow diagram.

        Boxes are sized to their text (measured with the figure's renderer), arms side by
        side, stage labels at the left. Without ``ax`` a new figure ``width`` inches wide
        (7 in ≈ 178 mm, a two-column journal page) and as tall as the diagram needs is made;
        with ``ax`` the diagram is fitted into it (the font shrinks if it must).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw into (its axis decorations are switched off).
        width : float, optional
            Figure width in inches when ``ax`` is None (default 7 in, one column of 4.8 in
            for single-arm studies).
        fontsize : float
            Font size in points (8 pt prints legibly at journal width).
        arm_labels : dict, optional
            Display names per arm, e.g. ``{"peer": "PEER + usual services"}``.
        colors : dict, optional
            Arm colours (default: :func:`peerstats.figures.palette.arm_colors`).
        visit_labels : dict, optional
            Display names per visit (the follow-up lines), e.g. ``{"fu3": "3-month follow-up"}``.

        Returns
        -------
        matplotlib.figure.Figure
            Save it with ``fig.savefig("consort.png", dpi=300)`` (or .svg, .pdf).
        """
        from peerstats.figures._consort_draw import draw_flow

        return draw_flow(
            self,
            ax=ax,
            width=width,
            fontsize=fontsize,
            arm_labels=arm_labels,
            colors=colors,
            visit_labels=visit_labels,
        )

    def save(self, path: str, *, dpi: int = 300, **kwargs: Any) -> Figure:
        """Draw the diagram and save it (format from the suffix: .png, .svg, .pdf)."""
        import matplotlib.pyplot as plt

        fig = self.plot(**kwargs)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        return fig


def consort(
    trial: Any,
    fit: Any = None,
    *,
    outcome: str | None = None,
) -> ConsortFlow:
    """Count the CONSORT flow of a trial, optionally reconciled with a fitted model.

    Parameters
    ----------
    trial : Trial or trial-like
        A :class:`peerstats.Trial`, or any object with ``.participants`` (one row per person
        assessed, with ``subject, arm`` and the optional CONSORT columns ``randomised,
        eligible, exclusion_reason, received, not_received_reason, discontinued,
        discontinued_reason, withdrawn_reason``, per-visit ``lost_<visit>_reason``, ``group``
        and ``peer``), ``.assessments`` (long: ``subject, visit`` and outcome columns) and
        ``.spec``.
    fit : fitted model, optional
        The primary analysis. Its analysed subjects (``.subjects`` or a ``.data`` frame with a
        ``subject`` column, else ``.n_subjects_by_arm`` or ``.n_subjects``) become the
        *analysed* boxes; every allocated participant the model did not use must be explained
        by the data, otherwise :class:`~peerstats.ReconciliationError` is raised.
    outcome : str, optional
        The outcome whose observation defines follow-up and analysis. Default: the fit's
        ``outcome`` attribute, else the first outcome of the spec (the primary outcome).

    Returns
    -------
    ConsortFlow

    Raises
    ------
    ReconciliationError
        When the model's analysed numbers differ from the flow computed from the data.
    DataValidationError
        When columns the flow needs are missing.

    Notes
    -----
    Definitions (stated so the diagram can be checked by hand):

    - *assessed* = rows of the participants table; *excluded* = assessed but not randomised,
      by ``exclusion_reason`` (or "not meeting inclusion criteria" when ``eligible`` is 0
      without a reason). When the table holds only randomised participants and no
      ``eligible`` column (no screening data), these two boxes are left out rather than
      pretending that everyone assessed was randomised;
      *randomised* = ``randomised == 1`` (every row when the column is absent).
    - *allocated* = randomised per arm; *received* / *not_received* from ``received``, with
      ``not_received_reason``. A CONSORT column that is blank for a whole arm (e.g.
      ``discontinued`` in a wait-list arm) is taken as not applicable to that arm and its
      boxes are left out for it.
    - *lost_to_follow_up* at a post-baseline visit = allocated participants without an
      observed ``outcome`` at that visit (not cumulative), with reasons from
      ``lost_<visit>_reason`` or else ``withdrawn_reason``; *discontinued* from
      ``discontinued`` with ``discontinued_reason``.
    - *analysed* = allocated participants with an observed baseline and at least one observed
      post-baseline ``outcome`` (the analysis set of an MMRM on post-baseline visits with
      baseline as covariate, ITT, missing at random); without ``<outcome>_baseline`` or a
      baseline visit, at least one observed value. With ``fit=``, the model's subjects.
    """
    part, assess = as_frames(trial)
    if "subject" not in part.columns:
        raise data_error(
            "participants",
            "missing_column",
            "the participants table needs a 'subject' column",
            column="subject",
        )
    single = is_single_arm(trial)
    visits = visit_levels(trial)
    outcome = default_outcome(trial, fit, assess, outcome)
    part, rand, arms = prepare_participants(part, single, arm_levels(trial))
    rows = enrolment_rows(part, rand, single)
    randomised = part.loc[rand]
    check_arms(randomised, arms)
    observed, base_observed = _observed_by_visit(assess, outcome, visits)
    groups_arms = set(group_delivered_arms(trial))
    fit_ids, fit_by_arm, fit_total = (None, None, None) if fit is None else _fit_subjects(fit)
    check_fit_ids(fit_ids, randomised)
    flow = _Flow(
        single=single,
        visits=visits,
        post_visits=visits[1:] if len(visits) > 1 else visits,
        observed=observed,
        base_observed=base_observed,
        outcome=outcome,
        fit=fit,
        fit_ids=fit_ids,
        fit_by_arm=fit_by_arm,
    )
    more, cluster_rows, expected_total = arm_rows(randomised, arms, groups_arms, flow)
    _check_fit_total(fit, fit_ids, fit_by_arm, fit_total, expected_total, outcome)
    return ConsortFlow(
        counts=_counts_frame(rows + more),
        clusters=pd.DataFrame(cluster_rows) if cluster_rows else None,
        arms=tuple(arms),
        visits=tuple(visits),
        layout="single-arm" if single else "parallel",
        outcome=outcome,
        reconciled_with_fit=fit is not None,
    )
