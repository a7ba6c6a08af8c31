"""CONSORT flow: counts computed from the validated trial, reconciled with the fitted model.

:func:`consort` counts every box of the CONSORT 2010 flow diagram (kept by CONSORT 2025) from
the participants and assessments of a trial: enrolment, allocation, follow-up and analysis,
with reasons. Group-delivered arms add the cluster / non-pharmacological extension (groups,
peers, participants per group, Boutron et al. 2017); single-arm studies get the pilot and
feasibility layout (approached, consented, started, completed each visit; Eldridge et al. 2016).
:meth:`ConsortFlow.plot` draws the diagram with boxes sized to their text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from peerstats.describe._common import (
    arm_levels,
    as_frames,
    flag,
    group_delivered_arms,
    is_single_arm,
    outcome_names,
    randomised_mask,
    visit_levels,
)
from peerstats.describe.render import Table
from peerstats.exceptions import DataValidationError, ReconciliationError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ConsortFlow", "consort", "COUNT_COLUMNS"]

#: Columns of :attr:`ConsortFlow.counts`.
COUNT_COLUMNS = ["stage", "box", "arm", "visit", "reason", "n"]

NOT_RECORDED = "reason not recorded"

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


def _reason_rows(
    stage: str, box: str, arm: str | None, visit: str | None, reasons: pd.Series | None, n: int
) -> list[dict[str, Any]]:
    """Total row plus one row per reason (missing reasons are 'reason not recorded')."""
    rows = [{"stage": stage, "box": box, "arm": arm, "visit": visit, "reason": None, "n": int(n)}]
    if reasons is None or n == 0:
        return rows
    r = reasons.astype("string").str.strip()
    r = r.mask(r.isna() | (r == ""), NOT_RECORDED)
    counts = r.value_counts(sort=False)
    # order: most frequent first, "not recorded" last, ties alphabetical (stable, readable)
    order = sorted(counts.index, key=lambda k: (k == NOT_RECORDED, -counts[k], str(k)))
    for reason in order:
        rows.append(
            {
                "stage": stage,
                "box": box,
                "arm": arm,
                "visit": visit,
                "reason": str(reason),
                "n": int(counts[reason]),
            }
        )
    return rows


def _col(part: pd.DataFrame, *names: str) -> str | None:
    for name in names:
        if name in part.columns:
            return name
    return None


def _lost_reason_column(part: pd.DataFrame, visit: str) -> str | None:
    """Per-visit reason column, e.g. ``lost_post_reason`` or ``ltfu_reason_post``."""
    return _col(
        part,
        f"lost_{visit}_reason",
        f"lost_reason_{visit}",
        f"ltfu_{visit}_reason",
        f"ltfu_reason_{visit}",
        f"lost_to_follow_up_{visit}_reason",
        f"lost_to_follow_up_reason_{visit}",
    )


def _withdrawal_reasons(
    sub: pd.DataFrame,
    lost_ids: pd.Series,
    visit: str,
    visits: list[str],
    observed: dict[str, set[str]],
) -> pd.Series:
    """Reason each participant was not assessed at ``visit``.

    A participant who withdrew (``withdrawn_reason`` set, optionally ``last_visit`` before this
    visit) gets the withdrawal reason; one observed at a later visit "missed visit, returned
    later"; anyone else "reason not recorded".
    """
    idx = sub.set_index("subject")
    later = (
        set().union(*(observed.get(w, set()) for w in visits[visits.index(visit) + 1 :]))
        if visit in visits
        else set()
    )
    out = []
    for s in lost_ids:
        reason = idx.at[s, "withdrawn_reason"] if "withdrawn_reason" in idx.columns else None
        last = idx.at[s, "last_visit"] if "last_visit" in idx.columns else None
        withdrew_before = (
            reason is not None
            and not pd.isna(reason)
            and (
                last is None
                or pd.isna(last)
                or str(last) not in visits
                or visits.index(str(last)) < visits.index(visit)
            )
        )
        if withdrew_before:
            out.append(str(reason))
        elif s in later:
            out.append("missed visit, returned later")
        else:
            out.append(None)
    return pd.Series(out, dtype="object")


def _split_ids(values: Iterable[Any]) -> set[str]:
    """Peer ids: a cell may hold several ('p1;p2', 'p1, p2', 'p1|p2')."""
    out: set[str] = set()
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v):
            continue
        for piece in re.split(r"[;,|/+]", str(v)):
            piece = piece.strip()
            if piece:
                out.add(piece)
    return out


def _fit_subjects(fit: Any) -> tuple[set[str] | None, dict[str, int] | None, int | None]:
    """What a fitted model says about the subjects it used (duck-typed).

    Returns ``(subject ids or None, n per arm or None, total n or None)``.
    """
    ids = None
    for attr in ("subjects", "subject_ids", "used_subjects"):
        val = getattr(fit, attr, None)
        if val is not None and not callable(val):
            ids = {str(s) for s in pd.unique(pd.Series(list(val)))}
            break
    if ids is None:
        for attr in ("data", "model_data", "used_data", "frame"):
            df = getattr(fit, attr, None)
            if isinstance(df, pd.DataFrame) and "subject" in df.columns:
                ids = {str(s) for s in df["subject"].dropna().unique()}
                break
    if ids is None:
        # peerstats MixedModelResult: the rows the model used are in its design
        design = getattr(fit, "_design", None)
        used = getattr(design, "data", None)
        subj = getattr(fit, "subject", None)
        if isinstance(used, pd.DataFrame) and isinstance(subj, str) and subj in used.columns:
            ids = {str(s) for s in used[subj].dropna().unique()}
    by_arm = None
    for attr in ("n_subjects_by_arm", "n_by_arm", "n_subjects_arm"):
        val = getattr(fit, attr, None)
        if val is not None and not callable(val):
            by_arm = {str(k): int(v) for k, v in dict(val).items()}
            break
    total = getattr(fit, "n_subjects", None)
    total = int(total) if total is not None and not callable(total) else None
    return ids, by_arm, total


def _fit_outcome(fit: Any) -> str | None:
    """The outcome a fit modelled: ``.outcome``, else the left side of ``.formula``."""
    fo = getattr(fit, "outcome", None)
    if isinstance(fo, str):
        return fo
    formula = getattr(fit, "formula", None)
    if isinstance(formula, str) and "~" in formula:
        return formula.split("~", 1)[0].strip()
    return None


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
            r if r is None or (isinstance(r, float) and r != r)
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


def _observed_by_visit(
    assess: pd.DataFrame | None, outcome: str | None, visits: list[str]
) -> tuple[dict[str, set[str]], set[str] | None]:
    """Step: who has the outcome at each visit, and who has a baseline value (``None``: not
    known, no assessments or outcome)."""
    observed: dict[str, set[str]] = {v: set() for v in visits}
    base_observed: set[str] | None = None
    if assess is not None and outcome is not None and outcome in assess.columns:
        a = assess[["subject", "visit", outcome]].copy()
        a["subject"] = a["subject"].astype(str)
        a["visit"] = a["visit"].astype(str)
        a = a[a[outcome].notna()]
        for v, grp in a.groupby("visit", observed=True):
            observed.setdefault(str(v), set()).update(grp["subject"])
        bcol = f"{outcome}_baseline"
        if bcol in assess.columns:
            b = assess.loc[assess[bcol].notna(), "subject"].astype(str)
            base_observed = set(b)
        elif visits:
            base_observed = set(observed.get(visits[0], set()))
    elif assess is not None and outcome is not None:
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": "assessments",
                        "column": outcome,
                        "check": "missing_column",
                        "message": f"outcome {outcome!r} is not in the assessments; columns are "
                        f"{list(assess.columns)}",
                    }
                ]
            )
        )
    return observed, base_observed


def _check_fit_total(
    fit: Any,
    fit_ids: set[str] | None,
    fit_by_arm: dict[str, int] | None,
    fit_total: int | None,
    expected_total: int,
    outcome: str | None,
) -> None:
    """Step: a fit that tells only its total number of subjects must match the flow's."""
    if fit is not None and fit_ids is None and fit_by_arm is None:
        if fit_total is None:
            raise ReconciliationError(
                "the fit says nothing about the subjects it used (no .subjects, .data, "
                ".n_subjects_by_arm or .n_subjects); cannot reconcile the CONSORT flow"
            )
        if fit_total != expected_total:
            raise ReconciliationError(
                f"the model analysed {fit_total} participants but the flow computed from the "
                f"trial data has {expected_total} with baseline and post-baseline {outcome}."
            )


def _counts_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Step: the counts as a frame (integer n, missing labels as None)."""
    counts = pd.DataFrame(rows, columns=COUNT_COLUMNS)
    counts["n"] = counts["n"].astype(int)
    for c in ("arm", "visit", "reason"):
        counts[c] = counts[c].astype(object).where(counts[c].notna(), None)
    return counts


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
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": "participants",
                        "column": "subject",
                        "check": "missing_column",
                        "message": "the participants table needs a 'subject' column",
                    }
                ]
            )
        )
    single = is_single_arm(trial)
    arms = arm_levels(trial)
    visits = visit_levels(trial)
    if outcome is None and fit is not None:
        outcome = _fit_outcome(fit)
    if outcome is None:
        names = outcome_names(trial)
        if names:
            outcome = names[0]
        elif assess is not None:
            std = {"subject", "arm", "visit", "site", "group", "peer"}
            cand = [
                c
                for c in assess.columns
                if c not in std
                and not c.endswith("_baseline")
                and pd.api.types.is_numeric_dtype(assess[c])
            ]
            outcome = cand[0] if cand else None

    part = part.copy()
    part["subject"] = part["subject"].astype(str)
    rand = randomised_mask(part).to_numpy()
    if single and "consented" in part.columns:
        # the pilot layout's "Consented and enrolled" box counts the enrolled: a consented
        # participant who was not enrolled (or the reverse) must not vanish from the flow
        consented = flag(part["consented"]).fillna(False).astype(bool).to_numpy()
        differ = int((consented != rand).sum())
        if differ:
            raise ReconciliationError(
                f"{differ} participant(s) differ between 'consented' and enrolled "
                "('randomised'); record a consented participant who was not enrolled as not "
                "randomised with an exclusion_reason, so the flow accounts for them"
            )
    if not single and "arm" not in part.columns:
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": "participants",
                        "column": "arm",
                        "check": "missing_column",
                        "message": "a parallel trial needs an 'arm' column",
                    }
                ]
            )
        )
    if "arm" not in part.columns:
        part["arm"] = arms[0] if arms else "intervention"
        arms = arms or ["intervention"]
    part["arm"] = part["arm"].astype("string")

    rows: list[dict[str, Any]] = []
    enr = "enrolment"
    assessed_box, rand_box = ("approached", "consented") if single else ("assessed", "randomised")

    # ---- enrolment (only when screening was recorded: non-randomised rows or eligibility)
    n_assessed = len(part)
    notrand = part.loc[~rand]
    screening = bool(len(notrand)) or "eligible" in part.columns
    if screening:
        rows.append(
            {
                "stage": enr,
                "box": assessed_box,
                "arm": None,
                "visit": None,
                "reason": None,
                "n": n_assessed,
            }
        )
        reasons = None
        if len(notrand):
            if "exclusion_reason" in part.columns:
                reasons = notrand["exclusion_reason"].astype("string")
            else:
                reasons = pd.Series(pd.NA, index=notrand.index, dtype="string")
            if "eligible" in part.columns:
                inel = flag(notrand["eligible"]).fillna(True) == False  # noqa: E712
                reasons = reasons.mask(
                    inel.to_numpy() & reasons.isna().to_numpy(), "not meeting inclusion criteria"
                )
            if "exclusion_reason" not in part.columns and "eligible" not in part.columns:
                reasons = None
        rows += _reason_rows(enr, "excluded", None, None, reasons, len(notrand))
    rows.append(
        {
            "stage": enr,
            "box": rand_box,
            "arm": None,
            "visit": None,
            "reason": None,
            "n": int(rand.sum()),
        }
    )

    randomised = part.loc[rand]
    unknown = sorted(set(randomised["arm"].dropna()) - set(arms))
    if unknown or randomised["arm"].isna().any():
        raise DataValidationError(
            pd.DataFrame(
                [
                    {
                        "table": "participants",
                        "column": "arm",
                        "value": u,
                        "check": "unknown_label",
                        "message": f"{u!r} is not an arm; arms are {arms}",
                    }
                    for u in (unknown or ["<missing>"])
                ]
            )
        )

    # observed outcome per subject x visit
    observed, base_observed = _observed_by_visit(assess, outcome, visits)
    post_visits = visits[1:] if len(visits) > 1 else visits

    groups_arms = set(group_delivered_arms(trial))
    cluster_rows = []

    fit_ids, fit_by_arm, fit_total = (None, None, None) if fit is None else _fit_subjects(fit)
    if fit is not None and fit_ids is not None:
        stray = sorted(fit_ids - set(randomised["subject"]))
        if stray:
            raise ReconciliationError(
                f"the model used {len(stray)} subject(s) that are not randomised in the trial "
                f"data: {stray[:10]}"
            )

    expected_total = 0
    for arm in arms:
        sub = randomised[randomised["arm"] == arm]
        ids = set(sub["subject"])
        n_alloc = len(sub)
        alloc_stage = "allocation"
        # a column left blank for a whole arm (e.g. usual care) means "not applicable"
        has_received = "received" in sub.columns and bool(sub["received"].notna().any())
        has_discontinued = "discontinued" in sub.columns and bool(sub["discontinued"].notna().any())
        if single:
            rows.append(
                {
                    "stage": alloc_stage,
                    "box": "started",
                    "arm": arm,
                    "visit": None,
                    "reason": None,
                    "n": int(flag(sub["received"]).fillna(False).sum())
                    if has_received
                    else n_alloc,
                }
            )
            if has_received:
                nr = sub[flag(sub["received"]).fillna(False).to_numpy() == False]  # noqa: E712
                rr = nr["not_received_reason"] if "not_received_reason" in sub.columns else None
                rows += _reason_rows(alloc_stage, "not_started", arm, None, rr, len(nr))
        else:
            rows.append(
                {
                    "stage": alloc_stage,
                    "box": "allocated",
                    "arm": arm,
                    "visit": None,
                    "reason": None,
                    "n": n_alloc,
                }
            )
            if has_received:
                rec = flag(sub["received"]).fillna(False).to_numpy()
                rows.append(
                    {
                        "stage": alloc_stage,
                        "box": "received",
                        "arm": arm,
                        "visit": None,
                        "reason": None,
                        "n": int(rec.sum()),
                    }
                )
                nr = sub[~rec]
                rr = nr["not_received_reason"] if "not_received_reason" in sub.columns else None
                rows += _reason_rows(alloc_stage, "not_received", arm, None, rr, len(nr))

        if arm in groups_arms and "group" in sub.columns:
            g = sub["group"].dropna()
            sizes = g.astype(str).value_counts()
            peers = _split_ids(sub["peer"]) if "peer" in sub.columns else set()
            cluster_rows.append(
                {
                    "arm": arm,
                    "n_groups": int(sizes.size),
                    "n_peers": len(peers) if "peer" in sub.columns else np.nan,
                    "group_size_mean": float(sizes.mean()) if sizes.size else np.nan,
                    "group_size_min": int(sizes.min()) if sizes.size else np.nan,
                    "group_size_max": int(sizes.max()) if sizes.size else np.nan,
                    "n_without_group": int(sub["group"].isna().sum()),
                }
            )

        # ---- follow-up
        fu = "follow-up"
        withdrawn = (
            sub.set_index("subject")["withdrawn_reason"]
            if "withdrawn_reason" in sub.columns
            else None
        )
        for v in visits if single else post_visits:
            seen = observed.get(v, set()) & ids
            if single:
                rows.append(
                    {
                        "stage": fu,
                        "box": "completed",
                        "arm": arm,
                        "visit": v,
                        "reason": None,
                        "n": len(seen),
                    }
                )
            lost = sub[~sub["subject"].isin(seen)]
            rcol = _lost_reason_column(sub, v)
            if rcol is not None:
                rr = lost[rcol]
            elif withdrawn is not None:
                rr = _withdrawal_reasons(sub, lost["subject"], v, visits, observed)
            else:
                rr = None
            box = (
                "not_assessed"
                if single and v == visits[0] and len(visits) > 1
                else "lost_to_follow_up"
            )  # a missing baseline is not a loss to follow-up
            rows += _reason_rows(fu, box, arm, v, rr, len(lost))
        if has_discontinued:
            disc = sub[flag(sub["discontinued"]).fillna(False).to_numpy()]
            rr = disc["discontinued_reason"] if "discontinued_reason" in sub.columns else None
            rows += _reason_rows(fu, "discontinued", arm, None, rr, len(disc))

        # ---- analysis
        post_seen = (
            set().union(*(observed.get(v, set()) for v in post_visits)) & ids
            if post_visits
            else set()
        )
        if base_observed is not None and len(visits) > 1:
            analysable = post_seen & base_observed
        else:
            analysable = post_seen
        expected_total += len(analysable)

        def explain(
            missing: set[str],
            _ids: set[str] = ids,
            _ps: set[str] = post_seen,
        ) -> pd.Series:
            out = []
            for s in sorted(missing):
                if s not in _ps:
                    out.append(
                        f"no post-baseline {outcome}" if len(visits) > 1 else f"no {outcome}"
                    )
                elif base_observed is not None and s not in base_observed:
                    out.append(f"no baseline {outcome}")
                else:
                    out.append(None)
            return pd.Series(out, dtype="object")

        if fit is not None and fit_ids is not None:
            used = fit_ids & ids
            unexplained = sorted(s for s in analysable - used)
            if unexplained:
                raise ReconciliationError(
                    f"arm {arm!r}: {len(unexplained)} participant(s) have baseline and "
                    f"post-baseline {outcome} but the model did not use them "
                    f"(e.g. {unexplained[:5]}); the CONSORT analysed n would not match the "
                    f"analysis. Check the model's covariates for missing values or pass the "
                    f"fit of the primary analysis."
                )
            extra = sorted(used - analysable)
            if extra:
                raise ReconciliationError(
                    f"arm {arm!r}: the model used {len(extra)} participant(s) without baseline "
                    f"or post-baseline {outcome} in the trial data (e.g. {extra[:5]})."
                )
            n_an = len(used)
        elif fit is not None and fit_by_arm is not None:
            n_model = fit_by_arm.get(arm)
            if n_model is None or n_model != len(analysable):
                raise ReconciliationError(
                    f"arm {arm!r}: the model analysed {n_model} participants but the flow "
                    f"computed from the trial data has {len(analysable)} with baseline and "
                    f"post-baseline {outcome}."
                )
            n_an = n_model
        else:
            n_an = len(analysable)
        rows.append(
            {
                "stage": "analysis",
                "box": "analysed",
                "arm": arm,
                "visit": None,
                "reason": None,
                "n": n_an,
            }
        )
        excl = ids - analysable
        rows += _reason_rows(
            "analysis",
            "excluded_from_analysis",
            arm,
            None,
            explain(excl) if excl else None,
            len(excl),
        )

    _check_fit_total(fit, fit_ids, fit_by_arm, fit_total, expected_total, outcome)
    counts = _counts_frame(rows)
    clusters = pd.DataFrame(cluster_rows) if cluster_rows else None
    return ConsortFlow(
        counts=counts,
        clusters=clusters,
        arms=tuple(arms),
        visits=tuple(visits),
        layout="single-arm" if single else "parallel",
        outcome=outcome,
        reconciled_with_fit=fit is not None,
    )
