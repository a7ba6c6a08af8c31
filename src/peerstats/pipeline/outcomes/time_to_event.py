"""Time-to-event outcomes (time to first admission, to disengagement; issue 17): one row per
participant with the follow-up time (``column``) and how it ended (``status``: 0 censored, 1
the event, 2, 3 ... competing events).

``model: cox`` (default) reports the hazard ratio of ``arm`` adjusted for the stratification
factors and the outcome's covariates (:func:`peerstats.coxph`, Efron ties; ``vcov: cluster``
gives R's robust SE by delivery group; with competing events coded 2, 3 ... the other causes
are censored: cause-specific hazards); ``rmst`` the difference in restricted mean survival
time up to ``tau`` (:func:`peerstats.rmst`, survRM2); ``fine_gray`` the subdistribution
hazard ratio (:func:`peerstats.fine_gray`, cmprsk). Per arm the report gives events/n and the
Kaplan-Meier median. Participants without a recorded time or status are not analysed (and
counted so in CONSORT); a negative time or an event at time 0 is an error, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.effects import EffectRecord
from peerstats.exceptions import SpecError
from peerstats.pipeline._common import FittedOutcome
from peerstats.pipeline.outcomes._adapter import GLMOutcome, reconcile
from peerstats.pipeline.outcomes._base import Context

__all__ = ["TimeToEventOutcome"]

_WORDS = {"cox": "Cox proportional hazards (Efron ties)",
          "rmst": "restricted mean survival time (survRM2)",
          "fine_gray": "Fine-Gray subdistribution hazards (cmprsk crr)"}


@dataclass
class SurvivalFit:
    """The public fit and the names the pipeline reads (subjects, n, coefficients)."""

    result: Any
    data: pd.DataFrame
    subjects: list[str]
    formula: str
    coef: pd.DataFrame = field(default_factory=pd.DataFrame)
    loglik: float = float("nan")

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def n_obs(self) -> int:
        return len(self.subjects)

    def test(self, ell, level: float = 0.95) -> pd.DataFrame:
        """The row of ``coef`` that ``ell`` picks (its CI is already at the run's level)."""
        return self.coef.iloc[[int(np.argmax(np.abs(ell)))]]


def _plain(trial: Any, d: Any, spec: Any) -> tuple[pd.DataFrame, list[str]]:
    """Every randomised participant (as the binary/count adapters' frame) with the raw time and
    status; ``y`` (the time where a status is recorded) marks the analysed."""
    for col in (d.column, d.status):
        if col not in trial.randomised.columns:
            raise SpecError(f"outcomes/{d.name}: {col!r} is not in the participants table")
    part = trial.randomised.copy()
    ts = trial.spec
    part["subject"] = part["subject"].astype(str)
    arms = [str(ts.arms.reference or ts.arms.levels[0])]
    arms += [str(a) for a in ts.arms.levels if str(a) not in arms]
    part["arm"] = pd.Categorical(part["arm"].astype(str), categories=arms)
    grp = part["group"].astype(object) if "group" in part.columns else pd.Series(
        None, index=part.index)
    part["cluster"] = np.where(grp.notna(), "g:" + grp.astype(str), "s:" + part["subject"])
    part["time"] = pd.to_numeric(part[d.column], errors="coerce")
    part["status"] = pd.to_numeric(part[d.status], errors="coerce")
    part["y"] = part["time"].where(part["status"].notna())
    strata = [s for s in ts.strata if s in part.columns]
    for s in strata:
        part[s] = part[s].astype(str)
    used = part[part["y"].notna()]
    strata = [s for s in strata if used[s].nunique() > 1]
    return part, [*strata, *d.covariates]


class TimeToEventOutcome(GLMOutcome):
    """Adapter of time-to-event outcomes (see the module docstring)."""

    name = "time_to_event"
    caption = "Time-to-event outcomes"
    arm_header = "events/n; median"

    def check(self, spec: Any, trial_spec: Any, outcome: str) -> list[str]:
        """The delivery group for ``vcov: cluster``; two arms for RMST."""
        d = spec.outcome_defs[outcome]
        problems = []
        if d.vcov == "cluster" and trial_spec.columns.group is None:
            problems.append("vcov: 'cluster' needs the delivery group (trial spec columns: group)")
        if d.model == "rmst" and len(trial_spec.arms.levels) != 2:
            problems.append("model: 'rmst' compares two arms")
        return problems

    def fit(self, trial: Any, outcome: str, spec: Any) -> FittedOutcome:
        """Fit the spec's model on the participants with a time and status."""
        import peerstats

        d = spec.outcome_defs[outcome]
        frame, terms = _plain(trial, d, spec)
        used = frame[frame["y"].notna()].copy()
        if terms:
            used = used.dropna(subset=terms)
        used["event"] = (used["status"] == d.cause).astype(int)
        rhs = " + ".join(["arm", *terms])
        level = spec.model.level
        if d.model == "rmst":
            res = peerstats.rmst(used, time="time", event="event", arm="arm", tau=d.tau,
                                 level=level)
            coef = pd.DataFrame([res.difference, res.ratio], index=pd.Index(
                ["rmst difference", "rmst ratio"], name="term"))
            fit = SurvivalFit(res, used, list(used["subject"]),
                              f"{d.column} ~ arm (tau {d.tau:g})", coef)
        elif d.model == "fine_gray":
            res = peerstats.fine_gray(rhs, used, time="time", event="status", cause=d.cause,
                                      level=level)
            fit = SurvivalFit(res, used, list(used["subject"]), f"{d.column} ~ {rhs}", res.coef,
                              res.loglik)
        else:
            kw = {"cluster": "cluster"} if d.vcov == "cluster" else {}
            res = peerstats.coxph(rhs, used, time="time", event="event", level=level, **kw)
            fit = SurvivalFit(res, used, list(used["subject"]), f"{d.column} ~ {rhs}", res.coef,
                              res.loglik)
        cov = ("robust, clustered by delivery group" if d.vcov == "cluster" and d.model == "cox"
               else "model-based")
        fitted = FittedOutcome(outcome, d.model, fit.formula, fit, cov, notes=())
        fitted.consort = reconcile(trial, frame, fit)
        return fitted

    def model_record(self, fitted: FittedOutcome, spec: Any) -> dict[str, Any]:
        """``models/<outcome>``: model, formula, n and (Cox, Fine-Gray) the coefficients."""
        fit: SurvivalFit = fitted.fit
        rec = {"model": _WORDS[fitted.model], "formula": fitted.formula,
               "covariance": fitted.covariance,
               "method": "ml" if fitted.model != "rmst" else "km",
               "df_method": "Wald z", "converged": True, "n_obs": fit.n_obs,
               "n_subjects": fit.n_subjects, "events": int(fit.data["event"].sum()),
               "loglik": fit.loglik, "aic": float("nan"), "bic": float("nan"), "notes": []}
        if len(fit.coef):
            rec["coefficients"] = fit.coef.reset_index().to_dict(orient="records")
        return rec

    def _summaries(self, fitted: FittedOutcome) -> dict[str, Any]:
        import peerstats

        data = fitted.fit.data
        km = peerstats.kaplan_meier(data, time="time", event="event", arm="arm").median
        out: dict[str, Any] = {}
        for a in data["arm"].cat.categories:
            a = str(a)
            sub = data[data["arm"].astype(str) == a]
            out[f"n_{a}"] = int(len(sub))
            out[f"events_{a}"] = int(sub["event"].sum())
            out[f"median_{a}"] = float(km.loc[a, "median"]) if a in km.index else float("nan")
        return out

    def records(self, fitted: FittedOutcome, context: Context) -> list[EffectRecord]:
        """One effect per non-reference arm on the model's scale."""
        d = context.spec.outcome_defs[fitted.outcome]
        extra = self._summaries(fitted)
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        if d.model == "rmst":
            res = fitted.fit.result
            s = res.difference
            contrast = f"{arms[1]} - {context.reference}"
            return [EffectRecord(
                outcome=fitted.outcome, scale="rmst_difference", estimate=float(s.estimate),
                ci_lower=float(s.ci_lower), ci_upper=float(s.ci_upper),
                p_value=float(s.p_value), std_error=float(s.std_error),
                statistic=float(s.estimate / s.std_error), comparison=context.comparison(
                    contrast), contrast=contrast,
                n_randomised=self._n_randomised(context, contrast),
                direction=self.direction(fitted.outcome, arms[1], context),
                extra={**extra, "tau": d.tau}, **self._words(fitted, context))]
        scale = "hazard_ratio" if d.model == "cox" else "subdistribution_hazard_ratio"
        out = []
        for arm in arms[1:]:
            row = fitted.fit.coef.loc[f"arm[T.{arm}]"]  # CI already on the ratio scale
            contrast = f"{arm} - {context.reference}"
            out.append(EffectRecord(
                outcome=fitted.outcome, scale=scale, estimate=float(row["hazard_ratio"]),
                ci_lower=float(row["ci_lower"]), ci_upper=float(row["ci_upper"]),
                p_value=float(row["p_value"]), std_error=float(row["std_error"]),
                statistic=float(row["statistic"]), comparison=context.comparison(contrast),
                contrast=contrast, n_randomised=self._n_randomised(context, contrast),
                direction=self.direction(fitted.outcome, arm, context), extra=extra,
                **self._words(fitted, context)))
        return out

    def _words(self, fitted: FittedOutcome, context: Context) -> dict[str, Any]:
        d = context.spec.outcome_defs[fitted.outcome]
        terms = fitted.formula.split("~", 1)[1].strip()
        return {
            "outcome_label": d.label or context.outcome_label(fitted.outcome),
            "visit": None,
            "visit_label": "",
            "population": "randomised participants with the follow-up recorded",
            "n_analysed": fitted.fit.n_subjects,
            "model": f"{_WORDS[fitted.model]} on {terms} ({fitted.covariance} covariance)",
            "level": context.level,
            "primary": fitted.outcome == context.spec.primary_outcome,
            "outcome_type": self.name,
        }

    def describe(self, fitted: FittedOutcome, context: Context) -> pd.DataFrame:
        """Per arm: n, events, Kaplan-Meier median."""
        s = self._summaries(fitted)
        arms = [str(a) for a in fitted.fit.data["arm"].cat.categories]
        return pd.DataFrame([{"outcome": fitted.outcome, "arm": a, "n": s[f"n_{a}"],
                              "events": s[f"events_{a}"], "median": s[f"median_{a}"]}
                             for a in arms])

    def arm_cells(self, r: EffectRecord, arm: str) -> str:
        """ "41/136; median 210 (not reached: NR)"."""
        if f"n_{arm}" not in r.extra:
            return ""
        med = r.extra[f"median_{arm}"]
        med_text = "NR" if not np.isfinite(med) else f"{med:.4g}"
        return f"{r.extra[f'events_{arm}']}/{r.extra[f'n_{arm}']}; median {med_text}"

    def notes(self, records: list[EffectRecord]) -> list[str]:
        """How to read the table."""
        return ["events/n: participants with the event / analysed; median: Kaplan-Meier "
                "median time to the event (NR: not reached).",
                "Effect: hazard ratio (Cox), subdistribution hazard ratio (Fine-Gray; 1 is no "
                "difference) or difference in restricted mean time to the event (0 is no "
                "difference), intervention vs reference."]


def draw_curves(run: Any, outcome: str) -> None:
    """Kaplan-Meier curves (cumulative incidence of the cause for ``fine_gray``) with numbers
    at risk, in the report's palette, into ``run.figures["survival_<outcome>"]``."""
    import matplotlib.pyplot as plt

    import peerstats
    from peerstats.pipeline._common import _svg

    fitted = run.fits.get(outcome)
    if fitted is None:
        return
    d = run.spec.outcome_defs[outcome]
    data = fitted.fit.data
    labels = {str(a): run.spec.label("arms", str(a)) for a in data["arm"].cat.categories}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if d.model == "fine_gray":
        est = peerstats.cumulative_incidence(data, time="time", event="status", arm="arm",
                                             times=[0])
        est.plot(ax=ax, cause=d.cause, labels=labels)
        what = "Cumulative incidence"
    else:
        peerstats.kaplan_meier(data, time="time", event="event", arm="arm").plot(
            ax=ax, labels=labels)
        what = "Kaplan-Meier estimate of the proportion free of the event"
    label = d.label or outcome
    ax.set_title(label, fontsize=10)
    run.figures[f"survival_{outcome}"] = _svg(fig)
    run.figure_captions[f"survival_{outcome}"] = (
        f"{label}: {what} by arm, with the numbers at risk under the time axis.")
