"""The validated trial as data: the :class:`Trial` class and its assembly.

A :class:`Trial` is only built by :func:`peerstats.load_trial` (through
:mod:`peerstats.data.validation`, which calls :func:`_build_trial` once every check has passed).
This module imports neither of them: it sits below validation, which sits below
:mod:`peerstats.data.load` (the public module).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats.data.trial_spec import TrialSpec

__all__ = ["Trial"]


_TOKEN = object()
_FLAG_ROLES = ("eligible", "received", "discontinued")
_TEXT_ROLES = ("exclusion_reason", "not_received_reason", "discontinued_reason", "withdrawn_reason")


def _text(values: list) -> pd.Series:
    return pd.Series([np.nan if v is None else v for v in values], dtype=object)


class Trial:
    """A validated trial (read-only).

    Build it with :func:`peerstats.load_trial`; never directly. The frames returned by the
    properties are copies (copy-on-write), so changing them does not change the Trial.

    Attributes
    ----------
    spec : TrialSpec
    participants : DataFrame
        One row per participant, randomised or not: ``subject, arm, site, group, peer,
        randomised`` (those the spec names), CONSORT fields, then the other columns of the file.
        Participants not randomised have no arm.
    assessments : DataFrame
        Long, randomised participants only: ``subject, arm, visit, site, group``, one column per
        outcome, ``<outcome>_baseline``, then ``<outcome>_<subscale>`` for instruments with
        subscales, then the item columns of scored outcomes.
    unrandomised_assessments : DataFrame
        Assessment rows of participants who were not randomised (screening), same columns.
    sessions : DataFrame or None
        ``subject, arm, session, attended`` (+ other columns) when the spec has sessions.
    scoring : dict
        Outcome -> scoring report (proration, missing totals) of scored outcomes.
    warnings : list of str
    labels : dict
        Labels from the data source (SPSS/Stata variable labels, a REDCap data dictionary):
        ``{"covariates": {column: label}, "outcomes": {outcome: label}}``. The report uses them
        where the analysis spec's ``labels:`` names nothing (issue 21).
    """

    __slots__ = (
        "_spec",
        "_participants",
        "_assessments",
        "_unrandomised",
        "_sessions",
        "_scoring",
        "_warnings",
        "_labels",
    )

    def __init__(
        self,
        *,
        spec: TrialSpec,
        participants: pd.DataFrame,
        assessments: pd.DataFrame,
        unrandomised_assessments: pd.DataFrame,
        sessions: pd.DataFrame | None,
        scoring: dict,
        warnings: list[str],
        labels: dict | None = None,
        _token: object = None,
    ) -> None:
        if _token is not _TOKEN:
            raise TypeError("a Trial is built by peerstats.load_trial(spec), not directly")
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_participants", participants)
        object.__setattr__(self, "_assessments", assessments)
        object.__setattr__(self, "_unrandomised", unrandomised_assessments)
        object.__setattr__(self, "_sessions", sessions)
        object.__setattr__(self, "_scoring", scoring)
        object.__setattr__(self, "_warnings", tuple(warnings))
        object.__setattr__(self, "_labels", {k: dict(v) for k, v in (labels or {}).items()})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Trial is read-only; copy its frames to change them")

    @property
    def spec(self) -> TrialSpec:
        """The parsed trial spec."""
        return self._spec

    @property
    def participants(self) -> pd.DataFrame:
        """One row per participant (including those not randomised)."""
        return self._participants.copy(deep=False)

    @property
    def assessments(self) -> pd.DataFrame:
        """Long assessments of randomised participants, one row per subject x visit."""
        return self._assessments.copy(deep=False)

    @property
    def unrandomised_assessments(self) -> pd.DataFrame:
        """Assessments of participants who were not randomised (e.g. screening)."""
        return self._unrandomised.copy(deep=False)

    @property
    def sessions(self) -> pd.DataFrame | None:
        """Session attendance, one row per subject x session, or None."""
        return None if self._sessions is None else self._sessions.copy(deep=False)

    @property
    def scoring(self) -> dict:
        """Scoring report per scored outcome."""
        return dict(self._scoring)

    @property
    def warnings(self) -> list[str]:
        """Warnings raised while loading (not errors)."""
        return list(self._warnings)

    @property
    def labels(self) -> dict:
        """Labels from the data source: ``{"covariates": {...}, "outcomes": {...}}``."""
        return {k: dict(v) for k, v in self._labels.items()}

    @property
    def randomised(self) -> pd.DataFrame:
        """Participants who were randomised."""
        p = self._participants
        return p.loc[p["randomised"].to_numpy(bool)].reset_index(drop=True)

    def summary(self) -> str:
        """A text summary: participants, randomised per arm, sites, groups, assessments per
        visit and arm, and observed outcomes per visit."""
        spec, p, a = self._spec, self._participants, self._assessments
        rnd = p.loc[p["randomised"].to_numpy(bool)]
        lines = [
            f"Trial: {spec.name} ({spec.design}{'; SYNTHETIC data' if spec.synthetic else ''})"
        ]
        if spec.source is not None:
            lines.append(f"Spec: {spec.source}")
        lines.append(
            f"Participants: {len(p)} ({len(rnd)} randomised, {len(p) - len(rnd)} not randomised)"
        )
        per_arm = rnd["arm"].value_counts(sort=False)
        lines.append("Randomised per arm: " + ", ".join(f"{k} {v}" for k, v in per_arm.items()))
        if "site" in p.columns:
            per_site = rnd["site"].value_counts(sort=False)
            per_site = per_site[per_site > 0]
            lines.append(
                f"Sites: {len(per_site)} ("
                + ", ".join(f"{k} {v}" for k, v in per_site.items())
                + ")"
            )
        if "group" in p.columns and rnd["group"].notna().any():
            for arm in spec.arms.group_delivered:
                sizes = rnd.loc[rnd["arm"] == arm, "group"].value_counts()
                if len(sizes):
                    lines.append(
                        f"Delivery groups in {arm}: {len(sizes)} (participants per group: mean "
                        f"{sizes.mean():.1f}, range {sizes.min()}-{sizes.max()})"
                    )
        lines.append("Assessments per visit and arm (rows):")
        tab = pd.crosstab(a["visit"], a["arm"], dropna=False)
        lines += ["  " + ln for ln in tab.to_string().splitlines()]
        if spec.outcomes:
            lines.append("Outcomes observed per visit (n):")
            obs = a.groupby("visit", observed=False)[list(spec.outcome_names)].count().T
            lines += ["  " + ln for ln in obs.to_string().splitlines()]
        if len(self._unrandomised):
            lines.append(
                f"Assessments of participants not randomised: {len(self._unrandomised)} rows"
            )
        if self._sessions is not None:
            s = self._sessions
            lines.append(
                f"Sessions: {len(s)} rows, {int(s['attended'].sum())} attended, "
                f"{s['subject'].nunique()} participants"
            )
        for name, rep in self._scoring.items():
            lines.append(f"Scoring {name}: {_short_report(rep)}")
        for w in self._warnings:
            lines.append(f"Warning: {w}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        p = self._participants
        n_rnd = int(p["randomised"].sum())
        return (
            f"<Trial {self._spec.name!r}: {len(p)} participants, {n_rnd} randomised, "
            f"{len(self._spec.arms.levels)} arms, {len(self._spec.visits)} visits, "
            f"{len(self._assessments)} assessment rows, outcomes {list(self._spec.outcome_names)}>"
        )

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"


def _short_report(rep: Any) -> str:
    if isinstance(rep, dict):
        keys = [k for k in ("n_rows", "n_complete", "n_prorated", "n_missing") if k in rep]
        if keys:
            text = ", ".join(f"{k} {rep[k]}" for k in keys)
            a = rep.get("alpha_baseline")
            if isinstance(a, dict) and a.get("alpha") == a.get("alpha"):
                text += (
                    f"; Cronbach's alpha at baseline {a['alpha']:.3f} "
                    f"(95% CI {a['ci_lower']:.3f} to {a['ci_upper']:.3f}, n={a['n']})"
                )
            return text
    return str(rep)[:200]


def _add_baseline_alpha(
    scoring: dict[str, Any], spec: Any, assessments: pd.DataFrame, items_of: dict
) -> None:
    """Cronbach's alpha of each item-scored outcome at baseline (randomised participants,
    complete cases, after reverse-keying), stored as ``scoring[outcome]["alpha_baseline"]``."""
    from peerstats.instruments import cronbach_alpha

    base = assessments.loc[assessments["visit"] == spec.baseline]
    for o in spec.outcomes:
        rep = scoring.get(o.name)
        if not o.scored or not isinstance(rep, dict):
            continue
        items = list(items_of[o.name])
        frame = base[items].apply(pd.to_numeric, errors="coerce")
        rep["alpha_baseline"] = cronbach_alpha(frame, o.instrument, items=items)


# --------------------------------------------------------------------------------------------
# assembly (called by peerstats.validate once every check has passed)
# --------------------------------------------------------------------------------------------


def _categorical(values: list, categories: list | None, ordered: bool = False) -> pd.Categorical:
    if categories is None:
        categories = sorted({v for v in values if v is not None}, key=str)
    return pd.Categorical([v for v in values], categories=list(categories), ordered=ordered)


def _build_trial(
    spec: TrialSpec,
    part: Any,
    pinfo: dict,
    extras: dict,
    ainfo: dict,
    items_of: dict[str, list[str]],
    sess: Any,
    sinfo: dict | None,
    warnings: list[str],
) -> Trial:
    """The Trial from checked tables: participants, assessments (randomised and not, with
    scores, subscales, items and baselines), sessions."""
    participants, arms, randomised = _participants_frame(spec, part, pinfo, extras)
    index_of = {s: i for i, s in enumerate(participants["subject"].tolist())}
    pos = np.array([index_of[s] for s in ainfo["subjects"]], dtype=int)
    assessments, scoring = _assessments_frame(spec, ainfo, items_of, participants, arms, pos)
    main, unrandomised = _split_randomised(spec, assessments, pos, randomised)
    _add_baseline_alpha(scoring, spec, main, items_of)
    sessions = None
    if sess is not None and sinfo is not None:
        sessions = _sessions_frame(spec, sess, sinfo, index_of, arms)
    return Trial(
        spec=spec,
        participants=participants,
        assessments=main,
        unrandomised_assessments=unrandomised,
        sessions=sessions,
        scoring=scoring,
        warnings=warnings,
        labels=_source_labels(spec, part, ainfo),
        _token=_TOKEN,
    )


def _arm_column(arms: list, pos: np.ndarray, levels: list) -> pd.Categorical:
    """Each row's arm, looked up from the participants by position."""
    return pd.Categorical(
        np.asarray(arms, dtype=object)[pos].tolist() if len(pos) else [],
        categories=levels,
        ordered=True,
    )


def _site_categories(spec: TrialSpec, part: Any, sites: list) -> list | None:
    """Site levels: the spec's, else the value labels' (then any other site seen)."""
    if spec.sites is not None:
        return list(spec.sites)
    if spec.columns.site in part.value_labels:
        labels = part.value_labels[spec.columns.site].values()
        return list(dict.fromkeys([*labels, *(s for s in sites if s is not None)]))
    return None


def _participants_frame(
    spec: TrialSpec, part: Any, pinfo: dict, extras: dict
) -> tuple[pd.DataFrame, list, np.ndarray]:
    """One row per participant (standard role columns, then the extra columns); also each
    participant's arm (None when not randomised) and the randomised flags."""
    from peerstats.io.coerce import labelled as _labelled

    cols = spec.columns
    visits = list(spec.visits)
    randomised = np.array([bool(r) for r in pinfo["randomised"]])
    P: dict[str, Any] = {"subject": _text(part.data[cols.subject].tolist())}
    arms = [a if r else None for a, r in zip(pinfo["arms"], randomised, strict=True)]
    P["arm"] = pd.Categorical(arms, categories=list(spec.arms.levels), ordered=True)
    if cols.site is not None:
        P["site"] = _categorical(pinfo["sites"], _site_categories(spec, part, pinfo["sites"]))
    if cols.group is not None:
        P["group"] = _text(pinfo["groups"])
    if cols.peer is not None:
        P["peer"] = _text(_labelled(part, cols.peer))
    P["randomised"] = randomised
    for role in _FLAG_ROLES:
        if role in pinfo["flags"]:
            P[role] = pd.array(pinfo["flags"][role], dtype="boolean")
    for role in _TEXT_ROLES:
        name = getattr(cols, role)
        if name is not None:
            P[role] = _text(_labelled(part, name))
    if cols.last_visit is not None:
        P["last_visit"] = pd.Categorical(
            _labelled(part, cols.last_visit, spec.visits), categories=visits, ordered=True
        )
    for c, series in extras.items():
        if c == "last_visit":
            P[c] = pd.Categorical(_labelled(part, c, spec.visits), categories=visits, ordered=True)
        elif c not in P:
            P[c] = (
                series.to_numpy()
                if not isinstance(series.dtype, pd.CategoricalDtype)
                else series.array
            )
    return pd.DataFrame(P), arms, randomised


def _score_outcomes(
    spec: TrialSpec, values: dict, items_of: dict[str, list[str]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Each outcome's column (a scored total or the score as given), the scoring reports and
    the subscale columns (``<outcome>_<subscale>``)."""
    columns: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    subscale_cols: dict[str, np.ndarray] = {}
    for o in spec.outcomes:
        if not o.scored:
            columns[o.name] = values[o.column]
            continue
        from peerstats.instruments import score

        items = items_of[o.name]
        item_frame = pd.DataFrame({c: values[c] for c in items})
        result = score(item_frame, o.instrument, items=items)
        columns[o.name] = np.asarray(result.total, dtype=float)
        scoring[o.name] = getattr(result, "report", result)
        subs = getattr(result, "subscales", None)
        inst = getattr(result, "instrument", None)
        names = [sub.name for sub in getattr(inst, "subscales", ())]
        if subs is not None and len(names) == subs.shape[1]:
            for sname, col in zip(names, subs.columns, strict=True):
                subscale_cols[f"{o.name}_{sname}"] = np.asarray(subs[col], dtype=float)
    return columns, scoring, subscale_cols


def _assessments_frame(
    spec: TrialSpec,
    ainfo: dict,
    items_of: dict[str, list[str]],
    participants: pd.DataFrame,
    arms: list,
    pos: np.ndarray,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every assessment row (file order): subject, arm, visit, site, group, outcomes, then
    subscales and item columns; and the scoring reports."""
    A: dict[str, Any] = {
        "subject": _text(ainfo["subjects"]),
        "arm": _arm_column(arms, pos, list(spec.arms.levels)),
        "visit": pd.Categorical(ainfo["visits"], categories=list(spec.visits), ordered=True),
    }
    for role in ("site", "group"):
        if role in participants.columns:
            A[role] = participants[role].iloc[pos].reset_index(drop=True)
    values = ainfo["values"]
    outcome_cols, scoring, subscale_cols = _score_outcomes(spec, values, items_of)
    A.update(outcome_cols)
    assessments = pd.DataFrame(A)
    for c, v in subscale_cols.items():
        if c not in assessments.columns:
            assessments[c] = v
    item_cols = [c for o in spec.outcomes if o.scored for c in items_of[o.name]]
    for c in dict.fromkeys(item_cols):
        if c not in assessments.columns:
            assessments[c] = values[c]
    return assessments, scoring


def _split_randomised(
    spec: TrialSpec, assessments: pd.DataFrame, pos: np.ndarray, randomised: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sort by participant and visit, add ``<outcome>_baseline`` after each outcome, and split
    the rows of randomised participants from the others."""
    is_rnd = randomised[pos] if len(pos) else np.zeros(0, bool)
    order = np.lexsort((assessments["visit"].cat.codes.to_numpy(), pos))
    assessments = assessments.iloc[order].reset_index(drop=True)
    is_rnd = is_rnd[order]
    base = assessments["visit"] == spec.baseline
    names = list(spec.outcome_names)
    if names:
        bl = (
            assessments.loc[base, ["subject", *names]]
            .drop_duplicates("subject")
            .set_index("subject")
        )
        for n in names:
            assessments.insert(
                assessments.columns.get_loc(n) + 1,
                f"{n}_baseline",
                assessments["subject"].map(bl[n]).astype(float).to_numpy(),
            )
    main = assessments.loc[is_rnd].reset_index(drop=True)
    unrandomised = assessments.loc[~is_rnd].reset_index(drop=True)
    return main, unrandomised


def _sessions_frame(
    spec: TrialSpec, sess: Any, sinfo: dict, index_of: dict, arms: list
) -> pd.DataFrame:
    """One row per session record: subject, arm, session, attended (0/1), other columns."""
    from peerstats.io.coerce import column_values

    cols, decimal = spec.columns, spec.sessions.decimal
    sd = sess.data
    S: dict[str, Any] = {"subject": _text(sd[cols.subject].tolist())}
    spos = np.array([index_of[s] for s in S["subject"]], dtype=int)
    S["arm"] = _arm_column(arms, spos, list(spec.arms.levels))
    S["session"] = column_values(sess, cols.session, decimal).to_numpy()
    S["attended"] = pd.array(
        [None if v is None else int(v) for v in sinfo["attended"]], dtype="Int64"
    )
    for c in sd.columns:
        if c not in (cols.subject, cols.session, cols.attended):
            S[c] = column_values(sess, c, decimal).to_numpy()
    return pd.DataFrame(S)


def _source_labels(spec: TrialSpec, part: Any, ainfo: dict) -> dict:
    """Variable labels of the source files (SPSS/Stata, REDCap dictionary) for the
    participants' columns and the outcomes' score columns."""
    plabels = dict(getattr(part, "variable_labels", {}) or {})
    alabels = dict(getattr(ainfo.get("table"), "variable_labels", {}) or {})
    outcomes = {
        o.name: alabels[o.column]
        for o in spec.outcomes
        if not o.scored and o.label is None and o.column in alabels
    }
    return {"covariates": plabels, "outcomes": outcomes}
