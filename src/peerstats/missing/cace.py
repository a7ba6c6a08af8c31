"""Complier average causal effect (CACE) by instrumental variables.

``peerstats.cace`` answers "what is the effect in those who attend?": randomisation is the
instrument for receiving the intervention (as a compliance rule defines receipt), and
two-stage least squares with the baseline covariates estimates, at each post-baseline visit,
the effect of receipt among compliers (Angrist, Imbens & Rubin 1996; Dunn, Maracy & Tomenson
2005). The estimation is ``linearmodels.IV2SLS``; this module only arranges the data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import with_notes
from peerstats.exceptions import ModelSpecificationError, SpecError
from peerstats.missing.pooling import INFERENCE_COLUMNS

__all__ = ["cace", "CACEResult"]

SEName = Literal["unadjusted", "robust", "cluster"]
SE_CHOICES = ("unadjusted", "robust", "cluster")
COLUMNS = ["visit", "contrast", *INFERENCE_COLUMNS, "n", "compliance", "first_stage_f"]


@dataclass(frozen=True, repr=False, eq=False)
class CACEResult:
    """Per-visit complier average causal effects (create with :func:`peerstats.cace`).

    Attributes
    ----------
    effects : DataFrame
        One row per visit (and non-reference arm): ``visit, contrast, estimate, std_error, df,
        statistic, p_value, ci_lower, ci_upper`` (the columns of ``fit.contrasts()``), plus
        ``n`` (participants analysed), ``compliance`` (share of the arm's analysed participants
        who received the intervention) and ``first_stage_f`` (F statistic of the instrument in
        the first stage; below 10 the instrument is weak).
    outcome, formula, se, compliance_rule : str
    fits : dict
        ``(visit, arm) -> linearmodels IVResults`` for inspection.
    """

    effects: pd.DataFrame
    outcome: str
    formula: str
    se: str
    compliance_rule: str
    level: float
    fits: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """The per-visit effects (a copy)."""
        return self.effects.copy()

    def summary(self) -> str:
        """Plain-text summary."""
        se = (
            "homoskedastic, residual variance RSS/(n - k), t(n - k)"
            if self.se == "unadjusted"
            else "heteroskedasticity-robust HC1, t(n - k)"
        )
        lines = [
            f"Complier average causal effect of {self.outcome}",
            f"Model      2SLS: {self.formula}",
            f"Receipt    {self.compliance_rule}",
            f"SE         {se}",
            "",
            self.effects.to_string(index=False, float_format=lambda x: f"{x:.4g}"),
        ]
        return with_notes(lines, self.notes)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(f"CACE of {self.outcome}: 2SLS {self.formula}")
        return (
            f"<div><h4>{head}</h4><p>Receipt: {html.escape(self.compliance_rule)}</p>"
            + self.effects.to_html(index=False, float_format=lambda x: f"{x:.4g}")
            + "</div>"
        )


def _design(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Constant + covariates; text/categorical covariates as treatment-coded dummies."""
    cols = [pd.Series(1.0, index=frame.index, name="const")]
    for c in covariates:
        v = frame[c]
        if (
            isinstance(v.dtype, pd.CategoricalDtype)
            or v.dtype == object
            or pd.api.types.is_string_dtype(v)
        ):
            cat = v.astype("category") if not isinstance(v.dtype, pd.CategoricalDtype) else v
            cat = cat.cat.remove_unused_categories()
            dummies = pd.get_dummies(cat, prefix=c, prefix_sep="=", drop_first=True, dtype=float)
            cols.extend(dummies[k] for k in dummies.columns)
        elif pd.api.types.is_bool_dtype(v):
            cols.append(v.astype(float).rename(c))
        else:
            cols.append(pd.to_numeric(v).astype(float).rename(c))
    return pd.concat(cols, axis=1)


def _fit_one(y, exog, d, z, se, level, clusters=None):
    from peerstats.missing._linearmodels import hidden_xarray

    with hidden_xarray():  # linearmodels' optional xarray: 0.2-0.4 s to import, unused here
        return _fit_iv(y, exog, d, z, se, level, clusters)


def _fit_iv(y, exog, d, z, se, level, clusters=None):
    from linearmodels.iv import IV2SLS

    if d.nunique() < 2:
        raise ModelSpecificationError(
            "nobody received the intervention (or everybody did) among the analysed "
            "participants; the complier effect is not identified"
        )
    model = IV2SLS(y, exog, d.to_frame("received"), z.to_frame("randomised"))
    if se == "cluster":
        codes = pd.Series(pd.factorize(clusters.astype(str))[0], index=y.index)
        res = model.fit(cov_type="clustered", clusters=codes, debiased=True)
    else:
        res = model.fit(cov_type=se, debiased=True)
    ci = res.conf_int(level=level).loc["received"]
    return res, {
        "estimate": float(res.params["received"]),
        "std_error": float(res.std_errors["received"]),
        "df": float(res.df_resid),
        "statistic": float(res.tstats["received"]),
        "p_value": float(res.pvalues["received"]),
        "ci_lower": float(ci["lower"]),
        "ci_upper": float(ci["upper"]),
        "first_stage_f": _first_stage_f(res),
    }


def _first_stage_f(res: Any) -> float:
    """``res.first_stage.diagnostics.loc["received", "f.stat"]`` of linearmodels, computed as
    it does (Wald statistic of the excluded instrument in the first-stage regression, with the
    model's covariance; divided by the number of instruments when unadjusted) without the rest
    of ``diagnostics`` (partial and Shea's R-squared: three more regressions). Equality with
    linearmodels' own value is tested (tests/missing/test_cace.py)."""
    fs = res.first_stage
    full = fs.individual["received"]
    nz = fs.instr.ndarray.shape[1]
    params = full.params.to_numpy()[-nz:][:, None]
    c = np.asarray(full.cov)[-nz:, -nz:]
    stat = float((params.T @ np.linalg.inv(c) @ params).squeeze())
    if full.cov_type in ("homoskedastic", "unadjusted"):
        stat /= params.shape[0]
    return stat


def cace(
    data: Any,
    *,
    outcome: str,
    compliance: Any = None,
    received: str | None = None,
    arm: str = "arm",
    visit: str | None = "visit",
    covariates: Sequence[str] | None = None,
    reference: str | None = None,
    level: float = 0.95,
    se: SEName = "unadjusted",
    cluster: str | None = None,
) -> CACEResult:
    """Complier average causal effect per visit: 2SLS with randomisation as the instrument.

    Parameters
    ----------
    data : Trial or DataFrame
        A Trial: the post-baseline assessments are analysed with the baseline score and the
        stratification factors as covariates (as the primary model), and receipt follows
        ``compliance``. A DataFrame: one row per participant (and visit, with ``visit``), the
        columns ``outcome``, ``arm``, ``received`` and ``covariates``.
    outcome : str
    compliance : int or dict
        Trials only: the compliance rule, e.g. ``5`` / ``{"sessions": 5}`` (attended at least
        5 sessions) or ``{"column": "received"}`` (see :func:`peerstats.missing.compliance`).
    received : str
        DataFrames only: the 0/1 receipt column.
    arm : str
        The randomised arm column (DataFrames).
    visit : str or None
        The visit column: one effect per visit (DataFrames; ``None`` = one effect).
    covariates : list of str, optional
        Baseline covariates (exogenous regressors). Trials: default the baseline score and the
        strata; give a list to add to them. Text or categorical covariates enter as
        treatment-coded dummies.
    reference : str, optional
        The reference (control) arm; default the spec's (Trial) or the first level.
    level : float
        Confidence level.
    se : {"unadjusted", "robust"}
        ``"unadjusted"``: homoskedastic, residual variance RSS/(n - k), the convention of R
        ``summary(AER::ivreg(...))``; ``"robust"``: HC1 (``sandwich::vcovHC(fit, "HC1")``).
        ``"cluster"``: cluster-robust by ``cluster`` with the CR1 small-sample factor
        G/(G - 1) (n - 1)/(n - k) (``sandwich::vcovCL(fit, cluster, type = "HC1")``).
        Tests and intervals use t(n - k) in all three.
    cluster : str, optional
        With ``se="cluster"``: the cluster column. Trials: default the delivery group, each
        participant without one (the individually delivered arm) their own cluster
        (partially nested design). DataFrames: required.

    Returns
    -------
    CACEResult

    Raises
    ------
    SpecError
        A bad compliance definition (unknown key, a column the participants table lacks).
    ModelSpecificationError
        Unknown columns, an unknown reference arm, or no variation in receipt.

    Notes
    -----
    For each non-reference arm a and visit v, with Z = 1 for randomisation to a, D = receipt
    (0 in the reference arm: one-sided non-compliance) and X the covariates, the 2SLS estimate
    of ``y = X beta + D tau + e`` with instruments ``(X, Z)`` is the CACE tau (Angrist, Imbens
    & Rubin 1996): under the exclusion restriction (randomisation acts on the outcome only
    through receipt) and monotonicity, tau is the ITT effect divided by the difference in
    receipt between arms. Participants with the outcome missing at v are left out at v
    (available cases). Computed by ``linearmodels.iv.IV2SLS`` (``cov_type=se,
    debiased=True``); validated against R ``AER::ivreg`` and ``sandwich::vcovHC`` in
    ``tests/reference/r_cace/`` (to 1e-8); the cluster-robust SEs against
    ``sandwich::vcovCL`` in ``tests/reference/r_cace_cluster/`` (to 1e-6).
    """
    if not isinstance(se, str) or se not in SE_CHOICES:
        raise ModelSpecificationError(f"se={se!r} is not valid; choose one of {list(SE_CHOICES)}")
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level={level!r} must be between 0 and 1")
    notes: list[str] = []
    if hasattr(data, "assessments") and hasattr(data, "spec"):
        frame, covs, received, arm, visit, reference, rule_text, notes = _trial_frame(
            data, outcome, compliance, covariates, reference
        )
        cluster = cluster or "cluster"
    else:
        if compliance is not None:
            raise ModelSpecificationError(
                "compliance= is for a Trial; with a DataFrame name the 0/1 receipt column "
                "(received=)"
            )
        frame = pd.DataFrame(data)
        covs = list(covariates or ())
        _check_frame(frame, outcome, arm, covs, visit, se, cluster, received)
        rule_text = f"{received} = 1"
    reference, others = _arms(frame, arm, reference)
    formula = f"{outcome} ~ " + " + ".join(["1", *covs, f"[{received} ~ randomised]"])
    cols = {"outcome": outcome, "arm": arm, "received": received, "covs": covs}
    rows, fits = [], {}
    for v in _visit_levels(frame, visit):
        fv = frame if v is None else frame[frame[visit].astype(str) == v]
        for a in others:
            got = _fit_contrast(fv, a, reference, se, level, cluster, **cols)
            if got is not None:
                fits[(v, a)] = got[0]
                rows.append({"visit": v, **got[1]})
    if not rows:
        raise ModelSpecificationError(f"no observation of {outcome!r} to analyse")
    effects = _effects_table(rows, visit, notes)
    return CACEResult(
        effects=effects,
        outcome=outcome,
        formula=formula,
        se=se,
        compliance_rule=rule_text,
        level=level,
        fits=fits,
        notes=tuple(notes),
    )


def _effects_table(rows, visit, notes: list) -> pd.DataFrame:
    """The effects, the visit column named as in the data; a note on weak instruments."""
    effects = pd.DataFrame(rows, columns=COLUMNS)
    if visit is None:
        effects = effects.drop(columns="visit")
    elif visit != "visit":
        effects = effects.rename(columns={"visit": visit})
    weak = effects.loc[effects["first_stage_f"] < 10]
    if len(weak):
        notes.append(
            f"weak instrument: first-stage F below 10 at {len(weak)} visit(s); the CACE and its "
            "CI are unreliable"
        )
    return effects


def _check_frame(frame, outcome, arm, covs, visit, se, cluster, received) -> None:
    """A DataFrame for cace: every named column present, receipt 0/1."""
    need = [outcome, arm, *covs] + ([visit] if visit is not None else [])
    if se == "cluster":
        if cluster is None:
            raise ModelSpecificationError('se="cluster" needs cluster= (the cluster column)')
        need.append(cluster)
    if received is None:
        raise ModelSpecificationError("received= (the 0/1 receipt column) is required")
    need.append(received)
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ModelSpecificationError(
            f"column(s) {missing} are not in the data; columns are {list(frame.columns)}"
        )
    rec = pd.to_numeric(frame[received], errors="coerce")
    if not rec.dropna().isin([0, 1]).all():
        raise ModelSpecificationError(f"received column {received!r} must be 0/1")


def _arms(frame, arm, reference) -> tuple[str, list[str]]:
    """(reference arm, the other arms present in the data)."""
    arms = (
        list(frame[arm].cat.categories)
        if isinstance(frame[arm].dtype, pd.CategoricalDtype)
        else sorted(frame[arm].dropna().astype(str).unique())
    )
    arms = [str(a) for a in arms]
    if reference is None:
        reference = arms[0]
    if str(reference) not in arms:
        raise ModelSpecificationError(f"reference arm {reference!r} is not an arm; arms are {arms}")
    reference = str(reference)
    others = [a for a in arms if a != reference and (frame[arm].astype(str) == a).any()]
    if not others:
        raise ModelSpecificationError(f"the data have no arm besides the reference {reference!r}")
    return reference, others


def _visit_levels(frame, visit) -> list:
    if visit is None:
        return [None]
    if isinstance(frame[visit].dtype, pd.CategoricalDtype):
        return [str(v) for v in frame[visit].cat.categories]
    return sorted(frame[visit].dropna().astype(str).unique())


def _fit_contrast(fv, a, reference, se, level, cluster, *, outcome, arm, received, covs):
    """2SLS of arm ``a`` against the reference at one visit: (fit, row) or None (no data)."""
    sub = fv[fv[arm].astype(str).isin([reference, a])]
    sub = sub.dropna(subset=[outcome, received, *covs])
    if sub.empty:
        return None
    z = (sub[arm].astype(str) == a).astype(float)
    if z.nunique() < 2:
        return None
    d = pd.to_numeric(sub[received]).astype(float)
    exog = _design(sub, covs)
    y = pd.to_numeric(sub[outcome]).astype(float)
    cl = sub[cluster] if se == "cluster" else None
    res, stats = _fit_one(y, exog, d, z, se, level, cl)
    row = {
        "contrast": f"{a} - {reference}",
        **{k: stats[k] for k in COLUMNS[2:9]},
        "n": int(len(sub)),
        "compliance": float(d[z == 1].mean()),
        "first_stage_f": stats["first_stage_f"],
    }
    return res, row


def _clusters(trial: Any, subjects: pd.Series) -> np.ndarray:
    """The delivery group of each row's participant; a participant without one (the
    individually delivered arm of a partially nested trial) is a cluster of their own."""
    rand = trial.randomised
    sid = subjects.astype(str).to_numpy()
    if "group" not in rand.columns:
        return np.array([f"participant {x}" for x in sid], dtype=object)
    g = rand.set_index(rand["subject"].astype(str))["group"].reindex(sid).to_numpy()
    return np.array(
        [f"participant {x}" if pd.isna(k) else f"group {k}" for x, k in zip(sid, g)], dtype=object
    )


def _trial_frame(trial, outcome, compliance, covariates, reference):
    from peerstats.missing.populations import ComplianceRule
    from peerstats.missing.populations import compliance as receipt

    spec = trial.spec
    if outcome not in spec.outcome_names:
        raise SpecError(f"{outcome!r} is not an outcome; outcomes are {list(spec.outcome_names)}")
    if compliance is None:
        raise ModelSpecificationError(
            "compliance= is required for a Trial, e.g. 5 (attended at least 5 sessions) or "
            "{'column': 'received'}"
        )
    rule = ComplianceRule(compliance)
    arms = [str(a) for a in spec.arms.levels]
    ref = reference if reference is not None else (spec.arms.reference or arms[0])
    if str(ref) not in arms:
        raise SpecError(f"reference arm {ref!r} is not an arm; arms are {arms}")
    rec = receipt(trial, rule, reference=str(ref))
    visits = [str(v) for v in spec.visits]
    a = trial.assessments
    post = a[a["visit"].astype(str) != visits[0]].copy()
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=visits[1:])
    post["arm"] = pd.Categorical(post["arm"].astype(str), categories=arms)
    post["received"] = rec.reindex(post["subject"].astype(str)).to_numpy()
    post["cluster"] = _clusters(trial, post["subject"])
    bcol = f"{outcome}_baseline"
    covs = [bcol]
    strata = [s for s in spec.strata if s in post.columns]
    for s in strata:
        post[s] = post[s].astype(str)
    covs += [s for s in strata if post[s].nunique() > 1]
    extra = list(covariates or ())
    if extra:
        part = trial.participants
        missing = [c for c in extra if c not in part.columns and c not in post.columns]
        if missing:
            raise ModelSpecificationError(
                f"covariate(s) {missing} are neither assessment nor participant columns"
            )
        add = [c for c in extra if c not in post.columns]
        if add:
            post = post.merge(part[["subject", *add]], on="subject", how="left")
        covs += [c for c in extra if c not in covs]
    notes = []
    n_nob = int((post[outcome].notna() & post[bcol].isna()).sum())
    if n_nob:
        notes.append(f"{n_nob} observation(s) without a baseline {outcome!r} were left out")
    offered = None
    if rule.sessions is not None and trial.sessions is not None:
        offered = int(trial.sessions["session"].nunique())
    return post, covs, "received", "arm", "visit", str(ref), rule.describe(offered), notes
