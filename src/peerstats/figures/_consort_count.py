"""Counting steps of the CONSORT flow (:func:`peerstats.figures.consort.consort`).

Each step is a small function: the participants frame and its checks, the enrolment boxes, then
per arm the allocation, cluster, follow-up and analysis boxes, and the reconciliation with a
fitted model. :func:`consort` composes them; the definitions are in its docstring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peerstats.describe._common import data_error, flag, outcome_names, randomised_mask
from peerstats.exceptions import DataValidationError, ReconciliationError

#: Columns of :attr:`ConsortFlow.counts`.
COUNT_COLUMNS = ["stage", "box", "arm", "visit", "reason", "n"]

NOT_RECORDED = "reason not recorded"


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
        raise data_error(
            "assessments",
            "missing_column",
            f"outcome {outcome!r} is not in the assessments; columns are {list(assess.columns)}",
            column=outcome,
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


# --------------------------------------------------------------------------------------------
# the steps of consort()
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Flow:
    """What the per-arm steps share: design, observed outcome and what the fit used."""

    single: bool
    visits: list[str]
    post_visits: list[str]
    observed: dict[str, set[str]]
    base_observed: set[str] | None
    outcome: str | None
    fit: Any
    fit_ids: set[str] | None
    fit_by_arm: dict[str, int] | None


def _row(
    stage: str, box: str, arm: str | None = None, visit: str | None = None, n: int = 0
) -> dict[str, Any]:
    """A total row of one box (no reason)."""
    return {"stage": stage, "box": box, "arm": arm, "visit": visit, "reason": None, "n": n}


def _if_column(sub: pd.DataFrame, rows: pd.DataFrame, column: str) -> pd.Series | None:
    return rows[column] if column in sub.columns else None


def default_outcome(trial: Any, fit: Any, assess: pd.DataFrame | None, outcome: str | None):
    """The outcome given, else the fit's, else the spec's first, else the first numeric column
    of the assessments that is not a design column or a baseline copy."""
    if outcome is None and fit is not None:
        outcome = _fit_outcome(fit)
    if outcome is not None:
        return outcome
    names = outcome_names(trial)
    if names:
        return names[0]
    if assess is None:
        return None
    std = {"subject", "arm", "visit", "site", "group", "peer"}
    cand = [
        c
        for c in assess.columns
        if c not in std and not c.endswith("_baseline") and pd.api.types.is_numeric_dtype(assess[c])
    ]
    return cand[0] if cand else None


def prepare_participants(
    part: pd.DataFrame, single: bool, arms: list[str]
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """String subject ids and arms, the randomised mask, and the arms (a single-arm study
    without an arm column gets one)."""
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
        raise data_error(
            "participants", "missing_column", "a parallel trial needs an 'arm' column", column="arm"
        )
    if "arm" not in part.columns:
        part["arm"] = arms[0] if arms else "intervention"
        arms = arms or ["intervention"]
    part["arm"] = part["arm"].astype("string")
    return part, rand, arms


def _exclusion_reasons(part: pd.DataFrame, notrand: pd.DataFrame) -> pd.Series | None:
    """Why each assessed person was not randomised ('not meeting inclusion criteria' when
    ``eligible`` is 0 without a reason); ``None`` when neither column is recorded."""
    has_reason, has_eligible = "exclusion_reason" in part.columns, "eligible" in part.columns
    if not len(notrand) or not (has_reason or has_eligible):
        return None
    if has_reason:
        reasons = notrand["exclusion_reason"].astype("string")
    else:
        reasons = pd.Series(pd.NA, index=notrand.index, dtype="string")
    if has_eligible:
        inel = flag(notrand["eligible"]).fillna(True) == False  # noqa: E712
        reasons = reasons.mask(
            inel.to_numpy() & reasons.isna().to_numpy(), "not meeting inclusion criteria"
        )
    return reasons


def enrolment_rows(part: pd.DataFrame, rand: np.ndarray, single: bool) -> list[dict[str, Any]]:
    """Assessed and excluded (only when screening was recorded: non-randomised rows or an
    ``eligible`` column), then randomised (or approached / consented for a single arm)."""
    enr = "enrolment"
    assessed_box, rand_box = ("approached", "consented") if single else ("assessed", "randomised")
    rows: list[dict[str, Any]] = []
    notrand = part.loc[~rand]
    if bool(len(notrand)) or "eligible" in part.columns:
        rows.append(_row(enr, assessed_box, n=len(part)))
        reasons = _exclusion_reasons(part, notrand)
        rows += _reason_rows(enr, "excluded", None, None, reasons, len(notrand))
    rows.append(_row(enr, rand_box, n=int(rand.sum())))
    return rows


def check_arms(randomised: pd.DataFrame, arms: list[str]) -> None:
    """Every randomised participant is in one of the spec's arms."""
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


def check_fit_ids(fit_ids: set[str] | None, randomised: pd.DataFrame) -> None:
    """A fit may only use randomised subjects."""
    if fit_ids is None:
        return
    stray = sorted(fit_ids - set(randomised["subject"]))
    if stray:
        raise ReconciliationError(
            f"the model used {len(stray)} subject(s) that are not randomised in the trial "
            f"data: {stray[:10]}"
        )


def _allocation_rows(sub: pd.DataFrame, arm: str, single: bool) -> list[dict[str, Any]]:
    """Allocated and received / not received (started / did not start for a single arm); a
    ``received`` column blank for the whole arm means not applicable."""
    stage = "allocation"
    has_received = "received" in sub.columns and bool(sub["received"].notna().any())
    rows: list[dict[str, Any]] = []
    if single:
        n = int(flag(sub["received"]).fillna(False).sum()) if has_received else len(sub)
        rows.append(_row(stage, "started", arm, n=n))
        if has_received:
            nr = sub[flag(sub["received"]).fillna(False).to_numpy() == False]  # noqa: E712
            reasons = _if_column(sub, nr, "not_received_reason")
            rows += _reason_rows(stage, "not_started", arm, None, reasons, len(nr))
        return rows
    rows.append(_row(stage, "allocated", arm, n=len(sub)))
    if has_received:
        rec = flag(sub["received"]).fillna(False).to_numpy()
        rows.append(_row(stage, "received", arm, n=int(rec.sum())))
        nr = sub[~rec]
        reasons = _if_column(sub, nr, "not_received_reason")
        rows += _reason_rows(stage, "not_received", arm, None, reasons, len(nr))
    return rows


def _cluster_row(sub: pd.DataFrame, arm: str) -> dict[str, Any]:
    """Groups, peers and group sizes of a group-delivered arm."""
    sizes = sub["group"].dropna().astype(str).value_counts()
    peers = _split_ids(sub["peer"]) if "peer" in sub.columns else set()
    return {
        "arm": arm,
        "n_groups": int(sizes.size),
        "n_peers": len(peers) if "peer" in sub.columns else np.nan,
        "group_size_mean": float(sizes.mean()) if sizes.size else np.nan,
        "group_size_min": int(sizes.min()) if sizes.size else np.nan,
        "group_size_max": int(sizes.max()) if sizes.size else np.nan,
        "n_without_group": int(sub["group"].isna().sum()),
    }


def _lost_reasons(sub: pd.DataFrame, lost: pd.DataFrame, visit: str, f: _Flow):
    rcol = _lost_reason_column(sub, visit)
    if rcol is not None:
        return lost[rcol]
    if "withdrawn_reason" in sub.columns:
        return _withdrawal_reasons(sub, lost["subject"], visit, f.visits, f.observed)
    return None


def _follow_up_rows(sub: pd.DataFrame, arm: str, ids: set[str], f: _Flow) -> list[dict]:
    """Completed (single arm) and lost to follow-up per visit, then discontinued."""
    fu = "follow-up"
    rows: list[dict[str, Any]] = []
    for v in f.visits if f.single else f.post_visits:
        seen = f.observed.get(v, set()) & ids
        if f.single:
            rows.append(_row(fu, "completed", arm, v, len(seen)))
        lost = sub[~sub["subject"].isin(seen)]
        # a missing baseline is not a loss to follow-up
        first = f.single and v == f.visits[0] and len(f.visits) > 1
        box = "not_assessed" if first else "lost_to_follow_up"
        rows += _reason_rows(fu, box, arm, v, _lost_reasons(sub, lost, v, f), len(lost))
    if "discontinued" in sub.columns and bool(sub["discontinued"].notna().any()):
        disc = sub[flag(sub["discontinued"]).fillna(False).to_numpy()]
        reasons = _if_column(sub, disc, "discontinued_reason")
        rows += _reason_rows(fu, "discontinued", arm, None, reasons, len(disc))
    return rows


def _analysable(ids: set[str], f: _Flow) -> tuple[set[str], set[str]]:
    """Who has a post-baseline value, and who also has a baseline (the analysis set)."""
    post_seen = (
        set().union(*(f.observed.get(v, set()) for v in f.post_visits)) & ids
        if f.post_visits
        else set()
    )
    if f.base_observed is not None and len(f.visits) > 1:
        return post_seen, post_seen & f.base_observed
    return post_seen, post_seen


def _explain(missing: set[str], post_seen: set[str], f: _Flow) -> pd.Series:
    """Why each participant is not in the analysis set."""
    out = []
    for s in sorted(missing):
        if s not in post_seen:
            out.append(f"no post-baseline {f.outcome}" if len(f.visits) > 1 else f"no {f.outcome}")
        elif f.base_observed is not None and s not in f.base_observed:
            out.append(f"no baseline {f.outcome}")
        else:
            out.append(None)
    return pd.Series(out, dtype="object")


def _analysed_n(arm: str, ids: set[str], analysable: set[str], f: _Flow) -> int:
    """The analysed n: the fit's subjects (reconciled with the analysis set), else the set."""
    outcome = f.outcome
    if f.fit is not None and f.fit_ids is not None:
        used = f.fit_ids & ids
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
        return len(used)
    if f.fit is not None and f.fit_by_arm is not None:
        n_model = f.fit_by_arm.get(arm)
        if n_model is None or n_model != len(analysable):
            raise ReconciliationError(
                f"arm {arm!r}: the model analysed {n_model} participants but the flow "
                f"computed from the trial data has {len(analysable)} with baseline and "
                f"post-baseline {outcome}."
            )
        return n_model
    return len(analysable)


def _analysis_rows(arm: str, ids: set[str], f: _Flow) -> tuple[list[dict[str, Any]], int]:
    """Analysed and excluded from analysis (with why); also the arm's analysable n."""
    post_seen, analysable = _analysable(ids, f)
    rows = [_row("analysis", "analysed", arm, n=_analysed_n(arm, ids, analysable, f))]
    excl = ids - analysable
    reasons = _explain(excl, post_seen, f) if excl else None
    rows += _reason_rows("analysis", "excluded_from_analysis", arm, None, reasons, len(excl))
    return rows, len(analysable)


def arm_rows(
    randomised: pd.DataFrame, arms: list[str], groups_arms: set[str], f: _Flow
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Allocation, follow-up and analysis rows of every arm, the cluster rows of the
    group-delivered arms, and the total analysable n."""
    rows: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    expected_total = 0
    for arm in arms:
        sub = randomised[randomised["arm"] == arm]
        ids = set(sub["subject"])
        rows += _allocation_rows(sub, arm, f.single)
        if arm in groups_arms and "group" in sub.columns:
            clusters.append(_cluster_row(sub, arm))
        rows += _follow_up_rows(sub, arm, ids, f)
        analysis, n = _analysis_rows(arm, ids, f)
        rows += analysis
        expected_total += n
    return rows, clusters, expected_total
