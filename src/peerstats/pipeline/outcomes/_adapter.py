"""What the binary and count adapters share: fitting through :mod:`._glm`, the model's entry in
``results.json``, the CONSORT reconciliation of the analysed n per outcome, the direction in
words, and the display table of their records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from peerstats.effects import EffectRecord
from peerstats.exceptions import ReconciliationError, SpecError
from peerstats.pipeline._common import FittedOutcome
from peerstats.pipeline._jsonio import frame_keyed
from peerstats.pipeline.outcomes._base import Context
from peerstats.pipeline.outcomes._data import analysis_data, columns_problems
from peerstats.pipeline.outcomes._definition import NOT_YET
from peerstats.pipeline.outcomes._glm import GLMFit, fit_gee, fit_glm, fit_glmm

__all__ = ["GLMOutcome"]

_MODEL_WORDS = {
    "logistic": "logistic regression",
    "negative_binomial": "negative binomial (NB2) regression",
    "poisson": "Poisson regression",
    "gee": "generalised estimating equations (population-average)",
    "glmm": "generalised linear mixed model (Laplace; random intercept for the delivery group "
    "in the group-delivered arm)",
}
_FAMILY = {"logistic": "binomial", "negative_binomial": "negative_binomial", "poisson": "poisson"}


def reconcile(trial: Any, frame: pd.DataFrame, fit: GLMFit) -> dict[str, dict[str, Any]]:
    """Per arm: randomised, analysed (the model's participants) and why the others are not
    analysed (withdrawal reason, outcome not recorded, covariate missing).

    Raises
    ------
    ReconciliationError
        The model used participants the data do not account for (or left out unexplained).
    """
    used = set(fit.subjects)
    reason = frame.get("withdrawn_reason", pd.Series(None, index=frame.index))
    out: dict[str, dict[str, Any]] = {}
    for arm in frame["arm"].cat.categories:
        sub = frame[frame["arm"] == arm]
        analysed = sub["subject"].isin(used)
        why: dict[str, int] = {}
        for i in sub.index[~analysed.to_numpy()]:
            if pd.notna(sub.at[i, "y"]):
                key = "covariate missing"
            elif pd.notna(reason.get(i)) and str(reason.get(i)):
                key = f"withdrawn: {reason.get(i)}"
            else:
                key = "outcome not recorded"
            why[key] = why.get(key, 0) + 1
        n_an = int(analysed.sum())
        if n_an + sum(why.values()) != len(sub):
            raise ReconciliationError(f"arm {arm!r}: analysed and not analysed do not add up")
        out[str(arm)] = {"randomised": len(sub), "analysed": n_an, "not_analysed": why}
    if sum(v["analysed"] for v in out.values()) != fit.n_subjects:
        raise ReconciliationError(
            f"the model analysed {fit.n_subjects} participants but the randomised participants "
            f"account for {sum(v['analysed'] for v in out.values())}"
        )
    return out


class GLMOutcome:
    """Base of the binary and count adapters (one row per participant, a GLM on statsmodels)."""

    name = ""

    def check(self, spec: Any, trial_spec: Any, outcome: str) -> list[str]:
        """Columns and visits of the definition; model choices not available yet."""
        d = spec.outcome_defs[outcome]
        problems = columns_problems(d, trial_spec)
        if d.model in NOT_YET:
            problems.append(
                f"model: {d.model!r} is not available yet in this version of peerstats (the "
                f"GLMM and GEE engines of issue 16 are still being built); use "
                f"{'logistic' if d.type == 'binary' else 'negative_binomial'!r} for now"
            )
        if d.vcov == "cluster" and trial_spec.columns.group is None:
            problems.append("vcov: 'cluster' needs the delivery group (trial spec columns: group)")
        return problems

    def fit(self, trial: Any, outcome: str, spec: Any) -> FittedOutcome:
        """Fit the spec's model; reconcile the analysed participants with the randomised."""
        d = spec.outcome_defs[outcome]
        if d.model in NOT_YET:
            raise SpecError(f"outcomes/{outcome}/model: {d.model!r} is not available yet")
        frame, terms = analysis_data(trial, d, spec)
        if d.model == "glmm":
            family = "binomial" if d.type == "binary" else d.family
            fit = fit_glmm(frame, terms, family=family, level=spec.model.level)
            cov = "model-based (inverse Hessian of the Laplace log-likelihood)"
        elif d.model == "gee":
            family = "binomial" if d.type == "binary" else d.family
            fit = fit_gee(frame, terms, family=family, vcov=d.vcov, level=spec.model.level)
            cov = (
                "GEE, exchangeable working correlation within delivery groups (participants "
                f"without a group are clusters of one), {fit.gee.vcov_method} covariance"
            )
        else:
            fit = fit_glm(
                frame, terms, family=_FAMILY[d.model], vcov=d.vcov, level=spec.model.level
            )
            cov = (
                "cluster-robust by delivery group (participants without a group are clusters "
                "of one)"
                if d.vcov == "cluster"
                else "model-based"
            )
        notes = list(fit.notes)
        formula = fit.formula.replace("y ~", f"{d.source} ~", 1)
        if d.exposure:
            formula += f" + offset(log({d.exposure}))"
        fitted = FittedOutcome(outcome, d.model, formula, fit, cov, notes=tuple(notes))
        fitted.consort = reconcile(trial, frame, fit)
        return fitted

    def model_record(self, fitted: FittedOutcome, spec: Any) -> dict[str, Any]:
        """``models/<outcome>``: the same keys as a Gaussian model's where they apply."""
        fit: GLMFit = fitted.fit
        rec: dict[str, Any] = {
            "model": _MODEL_WORDS[fitted.model]
            + (f" ({fit.family})" if fitted.model == "gee" else ""),
            "formula": fitted.formula,
            "covariance": fitted.covariance,
            "method": "ml",
            "df_method": "Wald z",
            "converged": fit.converged,
            "n_obs": fit.n_obs,
            "n_subjects": fit.n_subjects,
            "coefficients": frame_keyed(fit.coef.reset_index(), ["term"]),
        }
        if fitted.model == "gee":
            rec["method"] = "gee"
            rec["df_method"] = str(fit.gee.df_method)
        else:
            rec.update(loglik=fit.loglik, aic=fit.aic, bic=fit.bic)
        if fit.theta is not None:
            rec["theta"] = fit.theta
        rec["notes"] = list(fitted.notes)
        return rec

    def analysed(self, fitted: FittedOutcome) -> Any:
        """The fit (its ``subjects`` are the analysed participants)."""
        return fitted.fit

    # ------------------------------------------------------------------ records
    def _words(self, fitted: FittedOutcome, context: Context) -> dict[str, Any]:
        d = context.spec.outcome_defs[fitted.outcome]
        terms = fitted.formula.split("~", 1)[1].strip()
        return {
            "outcome_label": d.label or context.outcome_label(fitted.outcome),
            "visit": d.visit,
            "visit_label": context.spec.label("visits", d.visit) if d.visit else "",
            "population": "randomised participants with the outcome recorded",
            "n_analysed": fitted.fit.n_subjects,
            "model": f"{_MODEL_WORDS[fitted.model]} on {terms} ({fitted.covariance} covariance)",
            "level": context.level,
            "primary": fitted.outcome == context.spec.primary_outcome,
            "outcome_type": self.name,
        }

    def direction(self, outcome: str, arm: str, context: Context) -> str:
        """ "fewer readmissions favour peer support" (how to read the ratio)."""
        d = context.spec.outcome_defs[outcome]
        if d.higher_is_better is None:
            return ""
        event = d.event or (d.label or outcome).lower()
        word = "more" if d.higher_is_better else "fewer"
        return f"{word} {event} favour {context.spec.label('arms', arm)}"

    def ratio_record(
        self, fitted: FittedOutcome, context: Context, arm: str, scale: str, extra: dict
    ) -> EffectRecord:
        """The exponentiated arm coefficient (odds or rate ratio) of one arm."""
        row = fitted.fit.coef.loc[f"arm[T.{arm}]"]
        return self.arm_record(
            fitted,
            context,
            arm,
            scale,
            extra,
            estimate=float(np.exp(row["estimate"])),
            ci_lower=float(np.exp(row["ci_lower"])),
            ci_upper=float(np.exp(row["ci_upper"])),
            p_value=float(row["p_value"]),
            std_error=float(row["std_error"]),
            statistic=float(row["statistic"]),
        )

    def arm_record(
        self,
        fitted: FittedOutcome,
        context: Context,
        arm: str,
        scale: str,
        extra: dict,
        **numbers: Any,
    ) -> EffectRecord:
        """The effect record of ``arm`` against the reference arm: ``numbers`` (estimate, CI,
        p, SE, statistic) with the comparison, direction and words of the outcome."""
        contrast = f"{arm} - {context.reference}"
        return EffectRecord(
            outcome=fitted.outcome,
            scale=scale,
            **numbers,
            comparison=context.comparison(contrast),
            contrast=contrast,
            n_randomised=self._n_randomised(context, contrast),
            direction=self.direction(fitted.outcome, arm, context),
            extra=extra,
            **self._words(fitted, context),
        )

    @staticmethod
    def _n_randomised(context: Context, contrast: str) -> int:
        return sum(int(context.n_randomised.get(a, 0)) for a in contrast.split(" - "))

    # ------------------------------------------------------------------ tables
    def frame(self, records: list[EffectRecord], context: Context) -> pd.DataFrame:
        """Tidy rows of the records: keys, per-arm summaries, the effect, p, p adjusted."""
        rows = []
        for r in records:
            ex = {k: v for k, v in r.extra.items() if k != "p_adjusted"}
            rows.append(
                {
                    "outcome": r.outcome,
                    "visit": r.visit,
                    "contrast": r.contrast,
                    **ex,
                    "scale": r.scale,
                    "estimate": r.estimate,
                    "std_error": r.std_error,
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "ci_lower": r.ci_lower,
                    "ci_upper": r.ci_upper,
                    "n_analysed": r.n_analysed,
                    "n_randomised": r.n_randomised,
                    "primary": r.primary,
                    "p_adjusted": r.extra.get("p_adjusted", float("nan")),
                    "direction": r.direction,
                }
            )
        return pd.DataFrame(rows)

    def arm_cells(self, r: EffectRecord, arm: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def table(self, records: list[EffectRecord], context: Context) -> Any:
        """One row per record: per-arm summaries, the effect with its CI, p, direction."""
        from peerstats.describe._common import arm_levels
        from peerstats.describe.render import Table, ci_name

        data = self.frame(records, context)
        arms = arm_levels(context.trial)
        lab = context.labels
        adjust = context.spec.multiplicity
        disp = pd.DataFrame(
            {
                "Outcome": [
                    (r.outcome_label or r.outcome)
                    + (" (primary)" if r.primary and _primary_visit(r, context) else "")
                    for r in records
                ],
                "Visit": [r.visit_label or "whole follow-up" for r in records],
                **{
                    f"{lab.arm(a)}: {self.arm_header}": [self.arm_cells(r, a) for r in records]
                    for a in arms
                },
                f"Effect ({ci_name(context.level)})": [
                    f"{r.scale_label} {r.estimate:z.2f} ({r.ci_lower:z.2f} to {r.ci_upper:z.2f})"
                    for r in records
                ],
                "p": [_fmt_p(r.p_value) for r in records],
                f"p ({adjust})": [_fmt_p(r.extra.get("p_adjusted", np.nan)) for r in records],
                "Direction": [r.direction for r in records],
            }
        )
        if adjust == "none":
            disp = disp.drop(columns=f"p ({adjust})")
        return Table(data, disp, caption=self.caption, notes=self.notes(records))

    caption = ""
    arm_header = ""

    def notes(self, records: list[EffectRecord]) -> list[str]:
        return [r.model for r in records[:1]]


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:z.3f}"


def _primary_visit(record: EffectRecord, context: Context) -> bool:
    """Whether the record is at the primary visit (issue 20.9: "(primary)" marks one row, not
    every visit of the primary outcome); a whole-follow-up record counts."""
    visit = getattr(record, "visit", None)
    return visit is None or str(visit) == str(context.spec.primary_visit)
