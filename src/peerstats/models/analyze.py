"""The primary analysis of a trial outcome, chosen from the trial spec.

``peerstats.analyze(trial, outcome="qpr15")`` fits the model a statistical analysis plan of a
peer-support trial would pre-specify (see ``DOMAIN.md``): post-baseline visits, the baseline
score as covariate, stratification factors as fixed effects, and

- an MMRM (unstructured covariance across visits) when no arm is group-delivered;
- the heteroscedastic partially nested model when an arm is group-delivered: a random
  intercept for delivery group in the group-delivered arm(s) only, arm-specific residual
  variances, and a random subject intercept when there are several post-baseline visits
  (Candlish et al. 2018; Bauer, Sterba & Hallfors 2008; Roberts & Roberts 2005);
- for a single-arm study, an MMRM on all visits (baseline included) and the change from
  baseline at each later visit.

Per-visit contrasts carry Cohen's d = difference / pooled baseline SD (Feingold 2009) with its
CI (the CI of the difference divided by the same SD).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats._repr import with_notes
from peerstats.exceptions import DataWarning, ModelSpecificationError, SpecError

__all__ = ["analyze", "TrialAnalysis"]

DfName = Literal[
    "satterthwaite",
    "kenward-roger",
    "kenward-roger-linear",
    "kenward-roger-mmrm",
    "residual",
    "between-within",
    "asymptotic",
]


@dataclass(frozen=True, repr=False, eq=False)
class TrialAnalysis:
    """The primary analysis of one outcome (create with :func:`peerstats.analyze`).

    Attributes
    ----------
    outcome : str
    model : str
        ``"mmrm"``, ``"partially nested lmm"`` or ``"single-arm mmrm"``.
    formula : str
        The model formula as fitted.
    fit : MixedModelResult or LMMResult
        The fitted model (``coef``, ``emmeans()``, ``anova()``, ...).
    contrasts : DataFrame
        One row per post-baseline visit (and non-reference arm): ``visit, contrast, estimate,
        std_error, df, statistic, p_value, ci_lower, ci_upper, cohens_d, d_ci_lower,
        d_ci_upper``.
    sd_baseline : float
        The SD that scales Cohen's d (see ``sd_description``).
    icc, design_effect, mean_group_size : float or None
        Delivery-group ICC (among participants of the same group), design effect
        1 + (m - 1) ICC with m the mean number of analysed participants per group
        (partially nested model only).
    n_analysed : Series
        Participants contributing to the model, per arm.
    notes : tuple of str
        What was decided on the way (excluded rows, singleton groups, ...).
    """

    outcome: str
    model: str
    formula: str
    fit: Any
    contrasts: pd.DataFrame
    sd_baseline: float
    sd_description: str
    icc: float | None
    design_effect: float | None
    mean_group_size: float | None
    n_groups: int | None
    n_analysed: pd.Series
    n_obs: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_frame(self) -> pd.DataFrame:
        """The per-visit contrasts (a copy)."""
        return self.contrasts.copy()

    def summary(self) -> str:
        """A plain-text report of the model, the contrasts and the effect sizes."""
        lines = [
            f"Outcome                 {self.outcome}",
            f"Model                   {self.model}: {self.formula}",
            f"Analysed                {self.n_obs} observations; "
            + ", ".join(f"{k}: {v}" for k, v in self.n_analysed.items()),
            f"Cohen's d               difference / {self.sd_description} = {self.sd_baseline:.4g}",
        ]
        if self.icc is not None:
            lines.append(
                f"Delivery groups         {self.n_groups} groups, mean size "
                f"{self.mean_group_size:.3g}; ICC {self.icc:.4f}; design effect "
                f"{self.design_effect:.4f}"
            )
        lines += ["", self.contrasts.to_string(index=False, float_format=lambda x: f"{x:.4g}")]
        return with_notes(lines, self.notes)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(f"{self.outcome}: {self.model} ({self.formula})")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        extra = ""
        if self.icc is not None:
            extra = (
                f"<p>Delivery-group ICC {self.icc:.4f}, design effect "
                f"{self.design_effect:.4f} ({self.n_groups} groups, mean size "
                f"{self.mean_group_size:.3g})</p>"
            )
        return (
            f"<div><h4>{head}</h4><p>Cohen's d = difference / "
            f"{html.escape(self.sd_description)} = {self.sd_baseline:.4g}</p>{extra}"
            + self.contrasts.to_html(index=False, float_format=lambda x: f"{x:.4g}")
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


def _pooled_sd(base: pd.DataFrame, col: str) -> tuple[float, str]:
    """Pooled within-arm SD of the baseline score (one value per participant)."""
    g = base.groupby("arm", observed=True)[col]
    n = g.count()
    v = g.var(ddof=1)
    ok = n > 1
    if ok.sum() == 0:
        raise ModelSpecificationError(f"no arm has two baseline values of {col!r}")
    if len(n) == 1:
        return float(np.sqrt(v.iloc[0])), "baseline SD"
    sd = float(np.sqrt(((n[ok] - 1) * v[ok]).sum() / (n[ok] - 1).sum()))
    return sd, "pooled baseline SD (within arms, Feingold 2009)"


def analyze(
    trial: Any,
    *,
    outcome: str,
    df: DfName = "satterthwaite",
    level: float = 0.95,
    covariance: str | None = None,
    covariates: Sequence[str] = (),
    random: str | None = None,
    vcov: str = "model",
    terms: Sequence[str] = (),
) -> TrialAnalysis:
    """Fit the primary model for ``outcome`` as the trial spec implies, with effect sizes.

    Parameters
    ----------
    trial : Trial
        A validated trial (:func:`peerstats.load_trial`, ``peerstats.datasets.load``).
    outcome : str
        An outcome of the spec (``trial.spec.outcome_names``).
    df : {"satterthwaite", "kenward-roger", "residual", "between-within", "asymptotic"}
        Degrees of freedom of the tests and CIs.
    vcov : {"model", "empirical", "empirical-bias-reduced", "jackknife"}
        Covariance of the fixed effects (see :func:`peerstats.mmrm`).
    level : float
        Confidence level of the CIs.
    covariance : str, optional
        Residual covariance across visits: for the MMRM (default ``"us"``) any structure of
        :func:`peerstats.mmrm` (``"cs"``, ``"ar1"``, ``"toeph"``, ...); for the partially nested
        model (default: independent residuals, variance by arm) the ``residual=`` structure of
        :func:`peerstats.lmm`.
    covariates : sequence of str
        Baseline covariates (columns of ``trial.participants``) added as fixed effects after the
        strata.
    random : str, optional
        Random part, lme4 style. Replaces the partially nested model's
        ``(1 | subject) + (0 + delivered | group)`` (``delivered`` is 1 in group-delivered
        arms); for a trial without group-delivered arms it turns the MMRM into
        :func:`peerstats.lmm` with these terms (residual: ``covariance`` or independent).
    terms : sequence of str
        Extra fixed-effect terms appended to the formula (e.g. ``"gender * arm * visit"`` for a
        subgroup analysis, :func:`peerstats.subgroups`); their variables must be columns of
        the assessments or named in ``covariates``.

    Returns
    -------
    TrialAnalysis
        ``fit``, per-visit ``contrasts`` with Cohen's d and its CI, ``icc`` and
        ``design_effect`` for group-delivered arms, ``summary()``.

    Raises
    ------
    SpecError
        ``outcome`` is not an outcome of the spec.
    ModelSpecificationError
        The data cannot support the model (see the message).

    Notes
    -----
    Model (parallel trials): ``y ~ y_baseline + strata + arm * visit`` on post-baseline visits
    (``arm`` alone with one post-baseline visit), fitted by REML;

    - no group-delivered arm: MMRM with unstructured covariance across visits (``mmrm``);
    - a group-delivered arm: ``+ (1 | subject) + (0 + delivered | group)`` with residual
      variance by arm (``lmm``; the subject term only with several post-baseline visits),
      where ``delivered`` is 1 in the group-delivered arm(s); participants of such an arm
      without a recorded group are treated as groups of one (noted).

    Cohen's d = (adjusted difference) / SD with SD the pooled within-arm baseline SD
    sqrt(sum_a (n_a - 1) s_a^2 / sum_a (n_a - 1)) of the randomised participants with a baseline
    value (Feingold 2009); its CI is the CI of the difference divided by SD (SD treated as
    known). Design effect 1 + (m - 1) ICC (Kish), m = mean analysed participants per group,
    ICC = var(group) / (var(group) + var(subject) + residual variance of the delivered arm).
    Single-arm studies: MMRM on all visits, ``y ~ visit``, contrasts visit - baseline, d = mean
    change / baseline SD.

    The models are validated in tests/reference/ (lmm: R lme4/nlme; mmrm: SAS PROC MIXED).

    Examples
    --------
    >>> trial = peerstats.datasets.load("peer_recovery")  # doctest: +SKIP
    >>> res = peerstats.analyze(trial, outcome="qpr15")  # doctest: +SKIP
    >>> res.contrasts[["visit", "estimate", "ci_lower", "ci_upper", "cohens_d"]]  # doctest: +SKIP
    """
    from peerstats.models.mmrm import mmrm

    spec = trial.spec
    if outcome not in spec.outcome_names:
        raise SpecError(f"{outcome!r} is not an outcome; outcomes are {list(spec.outcome_names)}")
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level={level!r} must be between 0 and 1")
    covariates = [str(c) for c in covariates]
    a = _with_covariates(trial, covariates)
    visits = list(spec.visits)
    notes: list[str] = []
    arms = [str(x) for x in spec.arms.levels]

    sd, sd_desc = _baseline_sd(a, outcome, visits[0])
    if spec.design == "single-arm" or len(arms) == 1:
        if covariance not in (None, "us") or covariates or random:
            raise ModelSpecificationError(
                "a single-arm analysis (change from baseline, unstructured covariance) takes no "
                "covariance, covariates or random part"
            )
        return _single_arm(
            a, spec, outcome, visits, sd, sd_desc, df, level, notes, partial(mmrm, vcov=vcov)
        )

    # ---- parallel trial -------------------------------------------------------------------
    post, present_visits = _post_baseline(a, outcome, visits, arms, notes)
    observed = post[outcome].notna()
    many = len(present_visits) > 1
    strata = _strata(post, spec, observed, covariates)
    rhs = [f"{outcome}_baseline", *strata, *covariates, "arm * visit" if many else "arm"]
    fixed = f"{outcome} ~ " + " + ".join([*rhs, *map(str, terms)])
    reference = spec.arms.reference or arms[0]
    opts = {"df": df, "reference": {"arm": reference}, "vcov": vcov}
    delivered = [str(x) for x in spec.arms.group_delivered]
    fit, model, shown, nested = _fit_model(
        post, fixed, delivered, observed, many, random, covariance, notes, opts
    )

    notes += [str(w) for w in getattr(fit, "warnings", ())]
    ct = fit.contrasts("arm", by="visit" if many else None, reference=reference, level=level)
    if not many:
        ct.insert(0, "visit", present_visits[0])
    ct = _add_d(ct, sd)
    n_an = post.loc[observed].groupby("arm", observed=False)["subject"].nunique()
    return TrialAnalysis(
        outcome=outcome,
        model=model,
        formula=shown,
        fit=fit,
        contrasts=ct,
        sd_baseline=sd,
        sd_description=sd_desc,
        **nested,
        n_analysed=n_an.rename("n_analysed"),
        n_obs=int(fit.n_obs),
        notes=tuple(notes),
    )


def _baseline_sd(a: pd.DataFrame, outcome: str, baseline_visit: str) -> tuple[float, str]:
    """The pooled baseline SD (one row per participant) that scales Cohen's d."""
    base = a[a["visit"].astype(str) == baseline_visit][["subject", "arm", outcome]]
    base = base.dropna(subset=[outcome]).drop_duplicates("subject")
    sd, sd_desc = _pooled_sd(base, outcome)
    if not np.isfinite(sd) or sd <= 0:
        raise ModelSpecificationError(f"the baseline SD of {outcome!r} is {sd}; d is undefined")
    return sd, sd_desc


def _with_covariates(trial: Any, covariates: list[str]) -> pd.DataFrame:
    """The assessments (a copy) with the baseline ``covariates`` of the participants merged in."""
    a = trial.assessments.copy()
    if not covariates:
        return a
    part = trial.participants
    unknown = [c for c in covariates if c not in part.columns]
    if unknown:
        raise SpecError(
            f"covariates {unknown} are not columns of the participants table; columns are "
            f"{list(part.columns)}"
        )
    clash = [c for c in covariates if c in a.columns]
    if clash:
        raise ModelSpecificationError(f"covariates {clash} are already model columns")
    return a.merge(
        part[["subject", *covariates]].drop_duplicates("subject"),
        on="subject",
        how="left",
        validate="many_to_one",
    )


def _post_baseline(
    a: pd.DataFrame, outcome: str, visits: list[str], arms: list[str], notes: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Post-baseline rows with a baseline value, visits with data; what was left out is noted
    (and warned about)."""
    bcol = f"{outcome}_baseline"
    post = a[a["visit"].astype(str) != visits[0]].copy()
    post_visits = visits[1:]
    if not post_visits:
        raise ModelSpecificationError("the spec has no post-baseline visit to analyse")
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=post_visits)
    post["arm"] = pd.Categorical(post["arm"].astype(str), categories=arms)
    # rows with a missing outcome stay in: the model drops and counts them (fit.n_dropped) and
    # their subjects count as SAS counts subjects; rows without a baseline cannot (covariate)
    miss_b = post[bcol].isna()
    excl = miss_b & post[outcome].notna()
    if excl.any():
        n_sub = post.loc[excl, "subject"].nunique()
        _note(
            notes,
            f"{int(excl.sum())} post-baseline observation(s) of {n_sub} participant(s) "
            f"without a baseline {outcome!r} were excluded (the baseline is a covariate)",
        )
    post = post[~miss_b]
    observed = post[outcome].notna()
    if not observed.any():
        raise ModelSpecificationError(f"no post-baseline observation of {outcome!r} to analyse")
    present = [v for v in post_visits if (post.loc[observed, "visit"] == v).any()]
    if len(present) < len(post_visits):
        empty = [v for v in post_visits if v not in present]
        # a reader must be told (issue 24.5)
        _note(notes, f"visit(s) {empty} have no observation of {outcome!r} and were left out")
        post = post[post["visit"].isin(present)].copy()
        post["visit"] = pd.Categorical(post["visit"].astype(str), categories=present)
    return post, present


def _note(notes: list[str], msg: str) -> None:
    notes.append(msg)
    warnings.warn(msg, DataWarning, stacklevel=4)


def _strata(post: pd.DataFrame, spec: Any, observed: pd.Series, covariates: list[str]) -> list[str]:
    """The spec's stratification factors (as strings) that vary; never dropped silently.
    Covariates must be present on every analysed row."""
    absent = [s for s in spec.strata if s not in post.columns]
    if absent:  # never drop a stratification factor silently (issue 20.2)
        raise ModelSpecificationError(
            f"stratification factor(s) {absent} of the trial spec are not participant "
            f"variables of the trial; the model would be unadjusted. Variables are "
            f"{sorted(c for c in post.columns if c not in ('subject', 'visit'))}"
        )
    for s in spec.strata:
        if post.loc[observed, s].isna().any():
            raise ModelSpecificationError(
                f"stratification factor {s!r} is missing for some analysed rows; it is a fixed "
                "effect of the primary model"
            )
        post[s] = post[s].astype(str)
    _check_covariates(post, observed, covariates)
    return [s for s in spec.strata if post[s].nunique() > 1]


def _check_covariates(post: pd.DataFrame, observed: pd.Series, covariates: list[str]) -> None:
    for c in covariates:
        if post.loc[observed, c].isna().any():
            n_miss = int(post.loc[observed, c].isna().sum())
            raise ModelSpecificationError(
                f"covariate {c!r} is missing on {n_miss} analysed row(s); a fixed effect cannot "
                "be missing (impute it or leave it out)"
            )


def delivery_group_column(post: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The delivery group of each row of ``post`` (its ``delivered`` indicator set) in a
    group-delivered arm, None elsewhere, and which such rows have no group ("lone")."""
    grp = (
        post["group"].astype(object)
        if "group" in post.columns
        else pd.Series(None, index=post.index, dtype=object)
    )
    grp = grp.where(post["delivered"] > 0, None)
    return grp, (post["delivered"] > 0) & grp.isna()


def _delivery_groups(post, delivered, observed, notes) -> pd.Series:
    """Delivery group per row in the group-delivered arm(s) (None elsewhere); participants of
    such an arm without a group become groups of one (noted)."""
    post["delivered"] = post["arm"].astype(str).isin(delivered).astype(float)
    grp, lone = delivery_group_column(post)
    in_arm = (post["delivered"] > 0) & observed
    if in_arm.any() and (lone & in_arm).sum() == in_arm.sum():
        raise ModelSpecificationError(
            f"arm(s) {delivered} are group-delivered (spec arms.group_delivered) but no "
            "analysed participant has a delivery group; map the group column in the spec "
            "(columns: group) or remove the arm from group_delivered"
        )
    if (lone & observed).any():
        n_lone = post.loc[lone & observed, "subject"].nunique()
        notes.append(
            f"{n_lone} participant(s) of a group-delivered arm without a recorded "
            "group were treated as groups of one"
        )
        grp = grp.where(~lone, "_single:" + post["subject"].astype(str))
    return grp


def _fit_model(post, fixed, delivered, observed, many, random, covariance, notes, opts):
    """The partially nested model, a user's LMM or the MMRM: (fit, model, formula shown,
    delivery-group summaries)."""
    if delivered:
        return _fit_nested(post, fixed, delivered, observed, many, random, covariance, notes, opts)
    nested = {"icc": None, "design_effect": None, "mean_group_size": None, "n_groups": None}
    if random:
        return (*_fit_lmm(post, fixed, random, covariance, opts), nested)
    return (*_fit_mmrm(post, fixed, covariance, opts), nested)


def _fit_nested(post, fixed, delivered, observed, many, random, covariance, notes, opts):
    """The heteroscedastic partially nested model, its ICC and design effect."""
    from peerstats.models.lmm import lmm

    post["group"] = _delivery_groups(post, delivered, observed, notes)
    default_random = ("(1 | subject) + " if many else "") + "(0 + delivered | group)"
    formula = f"{fixed} + {random or default_random}"
    extra: dict[str, Any] = {}
    if covariance is not None:
        extra = {"residual": covariance, "visit": "visit"}
    fit = lmm(formula, post, residual_by="arm", subject="subject", **extra, **opts)
    icc_s = fit.icc
    icc = float(icc_s.get("group", 0.0)) if len(icc_s) else 0.0
    sizes = post.loc[(post["delivered"] > 0) & observed].groupby("group")["subject"].nunique()
    n_groups = int(len(sizes))
    mgs = float(sizes.mean()) if n_groups else None
    nested = {
        "icc": icc,
        "design_effect": 1 + (mgs - 1) * icc if mgs is not None else None,
        "mean_group_size": mgs,
        "n_groups": n_groups,
    }
    return fit, "partially nested lmm", formula, nested


def _fit_lmm(post, fixed, random, covariance, opts):
    """A user-given random part on a trial without group-delivered arms."""
    from peerstats.models.lmm import lmm

    formula = f"{fixed} + {random}"
    fit = lmm(formula, post, residual=covariance or "iid", subject="subject", visit="visit", **opts)
    shown = formula + (f"  [residual {covariance} across visits]" if covariance else "")
    return fit, "lmm", shown


def _fit_mmrm(post, fixed, covariance, opts):
    """The MMRM (unstructured covariance across visits unless ``covariance`` says otherwise)."""
    from peerstats.models.mmrm import mmrm

    cov = covariance or "us"
    fit = mmrm(fixed, post, subject="subject", visit="visit", covariance=cov, **opts)
    what = "unstructured" if cov == "us" else cov
    return fit, "mmrm", fixed + f"  [{what} covariance across visits]"


def _add_d(ct: pd.DataFrame, sd: float) -> pd.DataFrame:
    ct = ct.copy()
    ct["cohens_d"] = ct["estimate"] / sd
    ct["d_ci_lower"] = ct["ci_lower"] / sd
    ct["d_ci_upper"] = ct["ci_upper"] / sd
    return ct


def _single_arm(a, spec, outcome, visits, sd, sd_desc, df, level, notes, mmrm) -> TrialAnalysis:
    """Single-arm study: MMRM on all visits, change from baseline at each later visit."""
    d = a.copy()  # rows with a missing outcome stay: the model drops and counts them
    d["visit"] = pd.Categorical(d["visit"].astype(str), categories=visits)
    seen = d[outcome].notna()
    present = [v for v in visits if (d.loc[seen, "visit"] == v).any()]
    if visits[0] not in present or len(present) < 2:
        raise ModelSpecificationError(
            f"a single-arm analysis of {outcome!r} needs baseline and at least one later visit "
            "with data"
        )
    d = d[d["visit"].isin(present)].copy()
    d["visit"] = pd.Categorical(d["visit"].astype(str), categories=present)
    formula = f"{outcome} ~ visit"
    fit = mmrm(formula, d, subject="subject", visit="visit", covariance="us", df=df)
    # with treatment coding of ``visit`` the coefficient of each later visit is its mean change
    # from baseline (the equal-weight marginal-mean difference)
    names = list(fit.params.index)
    rows = []
    for k in range(1, len(present)):
        ell = np.zeros(len(names))
        ell[k] = 1.0
        res = fit.test(ell, level=level).iloc[0].to_dict()
        rows.append({"visit": present[k], "contrast": f"{present[k]} - {present[0]}", **res})
    ct = _add_d(pd.DataFrame(rows), sd)
    arm = str(spec.arms.levels[0])
    n_an = pd.Series({arm: int(d.loc[d[outcome].notna(), "subject"].nunique())}, name="n_analysed")
    notes = [
        *notes,
        "single-arm study: change from baseline (within-arm), not a comparison "
        "with a control; d = mean change / baseline SD",
    ]
    return TrialAnalysis(
        outcome=outcome,
        model="single-arm mmrm",
        formula=formula + "  [all visits, unstructured covariance]",
        fit=fit,
        contrasts=ct,
        sd_baseline=sd,
        sd_description=sd_desc,
        icc=None,
        design_effect=None,
        mean_group_size=None,
        n_groups=None,
        n_analysed=n_an,
        n_obs=int(fit.n_obs),
        notes=tuple(notes),
    )
