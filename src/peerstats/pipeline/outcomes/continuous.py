"""Continuous outcomes (scales at visits): the MMRM / partially nested LMM of the analysis spec.

``model: {type: auto}`` calls :func:`peerstats.analyze`; ``mmrm`` / ``lmm`` build
``outcome ~ outcome_baseline + strata + covariates + arm * visit`` on the post-baseline visits
and call :func:`peerstats.mmrm` / :func:`peerstats.lmm`. Effects are the model-adjusted
differences per visit (:func:`peerstats.describe.outcome_table.outcome_rows`: observed
summaries, the contrast, Cohen's d on the pooled baseline SD), or, in a single-arm study, the
model-based change from baseline.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from peerstats.effects.record import EffectRecord, row_numbers
from peerstats.exceptions import ConvergenceError, DataWarning
from peerstats.pipeline._common import FittedOutcome, coefficients
from peerstats.pipeline._jsonio import frame_keyed
from peerstats.pipeline.outcomes._base import Context

__all__ = ["ContinuousOutcome", "CORE"]

#: the tidy columns of an effect, in the order tables show them
CORE = ("estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper")


# ----------------------------------------------------------------------------- fitting
def _fit_auto(trial: Any, outcome: str, spec: Any) -> FittedOutcome:
    import peerstats

    ta = peerstats.analyze(
        trial, outcome=outcome, df=spec.model.df, level=spec.model.level, vcov=spec.model.vcov
    )
    cov = (
        "unstructured across visits"
        if ta.model != "partially nested lmm"
        else (
            "random delivery-group intercept (group-delivered arm only), residual variance by arm"
        )
    )
    return FittedOutcome(
        outcome=outcome,
        model=ta.model,
        formula=ta.formula,
        fit=ta.fit,
        covariance=cov,
        contrasts=ta.contrasts,
        notes=tuple(ta.notes),
        icc=ta.icc,
        design_effect=ta.design_effect,
        n_groups=ta.n_groups,
        mean_group_size=ta.mean_group_size,
    )


def _post_data(trial: Any, outcome: str, spec: Any) -> tuple[pd.DataFrame, str, list[str]]:
    """Post-baseline rows with a baseline value (covariates merged), the fixed-effects formula
    ``outcome ~ baseline + strata + covariates + arm * visit`` and notes on what was left out."""
    ts = trial.spec
    m = spec.model
    visits = [str(v) for v in ts.visits]
    bcol = f"{outcome}_baseline"
    notes: list[str] = []
    a = trial.assessments
    post = a[a["visit"].astype(str) != visits[0]].copy()
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=visits[1:])
    post["arm"] = pd.Categorical(
        post["arm"].astype(str), categories=[str(x) for x in ts.arms.levels]
    )
    post = post[post[outcome].notna()]
    miss = post[bcol].isna()
    if miss.any():
        notes.append(
            f"{int(miss.sum())} post-baseline observation(s) of "
            f"{post.loc[miss, 'subject'].nunique()} participant(s) without a baseline "
            f"{outcome!r} were excluded (the baseline is a covariate)"
        )
        post = post[~miss]
    present = [v for v in visits[1:] if (post["visit"] == v).any()]
    empty = [v for v in visits[1:] if v not in present]
    if empty:  # a reader must be told, in stderr, results.json and the report (issue 24.5)
        msg = f"visit(s) {empty} have no observation of {outcome!r} and were left out"
        notes.append(msg)
        warnings.warn(msg, DataWarning, stacklevel=2)
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=present)
    if m.covariates:
        cov_frame = trial.participants[["subject", *m.covariates]]
        post = post.merge(cov_frame, on="subject", how="left", validate="many_to_one")
    strata = [s for s in ts.strata if s in post.columns]
    for s in strata:
        post[s] = post[s].astype(str)
    strata = [s for s in strata if post[s].nunique() > 1]
    many = len(present) > 1
    fixed = f"{outcome} ~ " + " + ".join(
        [bcol, *strata, *m.covariates, "arm * visit" if many else "arm"]
    )
    return post, fixed, notes


def _delivery_groups(post: pd.DataFrame, ts: Any, notes: list[str]) -> pd.DataFrame:
    """The ``delivered`` indicator and the ``group`` column of a partially nested LMM
    (participants of a group-delivered arm without a group become groups of one)."""
    from peerstats.models.analyze import delivery_group_column

    delivered = [str(x) for x in ts.arms.group_delivered]
    post["delivered"] = post["arm"].astype(str).isin(delivered).astype(float)
    if "group" in post.columns or delivered:
        grp, lone = delivery_group_column(post)
        if lone.any():
            notes.append(
                f"{post.loc[lone, 'subject'].nunique()} participant(s) of a group-delivered arm "
                "without a recorded group were treated as groups of one"
            )
            grp = grp.where(~lone, "_single:" + post["subject"].astype(str))
        post["group"] = grp
    return post


def _fit_explicit(trial: Any, outcome: str, spec: Any) -> FittedOutcome:
    """``mmrm`` / ``lmm`` as the spec's model section states (post-baseline visits,
    ``outcome ~ baseline + strata + covariates + arm * visit``)."""
    import peerstats

    ts = trial.spec
    m = spec.model
    post, fixed, notes = _post_data(trial, outcome, spec)
    reference = {"arm": str(ts.arms.reference or ts.arms.levels[0])}
    common = dict(subject="subject", visit="visit", df=m.df, reference=reference, vcov=m.vcov)
    if m.type == "mmrm":
        cov = m.covariance or "us"
        fit = peerstats.mmrm(fixed, post, covariance=cov, **common)
        return FittedOutcome(
            outcome, "mmrm", fixed, fit, f"{cov} across visits", notes=tuple(notes)
        )
    post = _delivery_groups(post, ts, notes)
    formula = f"{fixed} + {m.random}"
    residual = m.covariance or "iid"
    fit = peerstats.lmm(formula, post, residual=residual, residual_by=m.residual_by, **common)
    icc_s = getattr(fit, "icc", None)
    icc = float(icc_s.get("group")) if icc_s is not None and "group" in icc_s else None
    cov = f"residual {residual}" + (f" by {m.residual_by}" if m.residual_by else "")
    return FittedOutcome(outcome, "lmm", formula, fit, cov, notes=tuple(notes), icc=icc)


def model_record(f: FittedOutcome, spec: Any) -> dict[str, Any]:
    """The ``models/<outcome>`` entry of ``results.json`` of a Gaussian fit."""
    fit = f.fit
    coef = coefficients(fit, spec.model.level)
    rec: dict[str, Any] = {
        "model": f.model,
        "formula": f.formula,
        "covariance": f.covariance,
        "method": str(getattr(fit, "method", "reml")),
        "df_method": str(getattr(fit, "df_method", spec.model.df)),
        "converged": bool(getattr(fit, "converged", True)),
        "n_obs": int(fit.n_obs),
        "n_subjects": int(getattr(fit, "n_subjects", 0)),
        "loglik": float(fit.loglik),
        "aic": float(fit.aic),
        "bic": float(fit.bic),
        "coefficients": frame_keyed(coef, ["term"]),
        "covariance_parameters": frame_keyed(fit.cov_parameters, ["parameter", "group"]),
    }
    if f.icc is not None:
        rec["icc"] = f.icc
    if f.design_effect is not None:
        rec["design_effect"] = f.design_effect
        rec["n_groups"] = f.n_groups
        rec["mean_group_size"] = f.mean_group_size
    rec["notes"] = list(f.notes)
    return rec


# ----------------------------------------------------------------------------- effects
def _words(f: FittedOutcome, context: Context) -> dict[str, Any]:
    """The record fields in words shared by every effect of one fit."""
    spec = context.spec
    df_method = str(getattr(f.fit, "df_method", spec.model.df))
    return {
        "outcome_label": context.outcome_label(f.outcome),
        "population": "full analysis set: randomised participants with a baseline and at "
        "least one post-baseline value, analysed under MAR (likelihood-based)",
        "n_analysed": int(getattr(f.fit, "n_subjects", 0)) or None,
        "model": f"{f.model} ({f.covariance}; {df_method} degrees of freedom)",
        "level": context.level,
    }


def _direction(outcome: str, estimate: float, contrast: str, context: Context) -> str:
    from peerstats.pipeline._display import direction_text

    hib = context.directions.get(outcome)
    if hib is None or " - " not in contrast or estimate == 0:
        return direction_text(hib)
    arm, ref = contrast.split(" - ", 1)
    better = (estimate > 0) == hib
    winner = context.spec.label("arms", arm if better else ref)
    return f"{direction_text(hib)}; the estimate favours {winner}"


def _record(row: dict[str, Any], f: FittedOutcome, context: Context, **words: Any) -> EffectRecord:
    contrast, visit = str(row["contrast"]), str(row["visit"])
    skip = {"outcome", "visit", "contrast", "primary", *CORE}
    arms = [a for a in contrast.split(" - ")] if " - " in contrast else []
    return EffectRecord(
        outcome=f.outcome,
        scale="mean_difference",
        **row_numbers(row, "df", "statistic"),
        comparison=context.comparison(contrast),
        visit=visit,
        visit_label=context.spec.label("visits", visit),
        n_randomised=sum(int(context.n_randomised.get(a, 0)) for a in arms) or None,
        primary=f.outcome == context.spec.primary_outcome,
        direction=_direction(f.outcome, float(row["estimate"]), contrast, context),
        extra={k: v for k, v in row.items() if k not in skip},
        contrast=contrast,
        outcome_type="continuous",
        **words,
    )


class ContinuousOutcome:
    """Adapter of continuous outcomes (see the module docstring)."""

    name = "continuous"

    def check(self, spec: Any, trial_spec: Any, outcome: str) -> list[str]:
        """A continuous outcome must be an outcome (scale) of the trial spec."""
        names = list(trial_spec.outcome_names)
        if outcome not in names:
            return [f"{outcome!r} is not an outcome of the trial; outcomes are {names}"]
        return []

    def fit(self, trial: Any, outcome: str, spec: Any) -> FittedOutcome:
        """``auto`` (:func:`peerstats.analyze`) or the explicit MMRM / LMM of the spec."""
        fitted = (
            _fit_auto(trial, outcome, spec)
            if spec.model.type == "auto"
            else _fit_explicit(trial, outcome, spec)
        )
        if not getattr(fitted.fit, "converged", True):
            raise ConvergenceError(
                f"the model of {outcome!r} did not converge ({fitted.model}: {fitted.formula}); "
                "the analysis plan's model cannot be reported as fitted"
            )
        return fitted

    def model_record(self, fitted: FittedOutcome, spec: Any) -> dict[str, Any]:
        """See :func:`model_record`."""
        return model_record(fitted, spec)

    def records(self, fitted: FittedOutcome, context: Context) -> list[EffectRecord]:
        """Per visit and contrast: the adjusted difference (with observed summaries and
        Cohen's d in ``extra``); in a single-arm study the change from baseline."""
        from peerstats.describe.outcome_table import outcome_rows

        words = _words(fitted, context)
        if context.single:
            ct = fitted.contrasts.copy()
            ct["visit"] = ct["visit"].astype(str)
            rows = ct.to_dict("records")
        else:
            rows, _ = outcome_rows(
                fitted.outcome,
                fitted.fit,
                context.trial,
                level=context.level,
                primary=context.spec.primary_outcome,
            )
        return [_record(r, fitted, context, **words) for r in rows]

    def describe(self, fitted: FittedOutcome, context: Context) -> pd.DataFrame:
        """Observed n, mean and SD per arm and visit (from the records' summaries)."""
        recs = self.records(fitted, context)
        arms = [str(a) for a in context.trial.spec.arms.levels]
        rows = []
        for r in recs:
            for a in arms:
                if f"n_{a}" in r.extra:
                    rows.append(
                        {
                            "outcome": r.outcome,
                            "visit": r.visit,
                            "arm": a,
                            "n": r.extra[f"n_{a}"],
                            "mean": r.extra[f"mean_{a}"],
                            "sd": r.extra[f"sd_{a}"],
                        }
                    )
        return pd.DataFrame(rows).drop_duplicates(["outcome", "visit", "arm"])

    def analysed(self, fitted: FittedOutcome) -> Any:
        """The model itself: CONSORT reads its analysed subjects."""
        return fitted.fit

    def frame(self, records: list[EffectRecord], context: Context) -> pd.DataFrame:
        """The tidy outcome table (``tables/outcomes.csv``, ``results.json`` ``effects``)."""
        rows = []
        for r in records:
            row: dict[str, Any] = {"outcome": r.outcome, "visit": r.visit, "contrast": r.contrast}
            ex = dict(r.extra)
            if context.single:
                row.update({c: getattr(r, c) for c in CORE})
                row.update({k: v for k, v in ex.items() if k != "p_adjusted"})
            else:
                arm_keys = [k for k in ex if k.split("_", 1)[0] in ("n", "mean", "sd")]
                arm_keys = [k for k in arm_keys if k != "sd_baseline"]
                row.update({k: ex[k] for k in arm_keys})
                row.update({c: getattr(r, c) for c in CORE})
                row.update({k: v for k, v in ex.items() if k not in arm_keys and k != "p_adjusted"})
                row["primary"] = r.primary
                row["p_adjusted"] = ex.get("p_adjusted", float("nan"))
            rows.append(row)
        return pd.DataFrame(rows)

    def table(self, records: list[EffectRecord], context: Context) -> Any:
        """The outcome table as it reads (:func:`peerstats.outcome_table`'s layout)."""
        from peerstats.describe._common import arm_levels
        from peerstats.describe.outcome_table import outcome_display
        from peerstats.pipeline._display import change_table
        from peerstats.pipeline._tables import outcome_digits

        data = self.frame(records, context)
        lab = context.labels
        if context.single:
            return change_table(data, lab, context.level)
        return outcome_display(
            data,
            context.trial,
            arms=arm_levels(context.trial),
            adjust=context.spec.multiplicity,
            level=context.level,
            labels={o: context.outcome_label(o) for o in data["outcome"].unique()},
            visit_labels=dict(lab.visits),
            arm_labels=dict(lab.arms),
            directions=context.directions,
            primary_visit=context.spec.primary_visit,
            digits=outcome_digits(context.trial, context.spec),  # the scale's (issue 20.9)
        )
