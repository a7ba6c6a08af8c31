"""What a reader sees of a pipeline run: labels from the analysis spec, the confidence level
in words, and the rendered tables (HTML for the report, display CSV and Word beside the tidy
CSV). Called by :mod:`peerstats.pipeline.run`; computes no statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from peerstats.describe.labels import Labels
from peerstats.exceptions import SpecError

__all__ = [
    "display_labels",
    "level_text",
    "covariate_default_label",
    "directions",
    "direction_text",
]


def covariate_default_label(code: str) -> str:
    """A readable name for a covariate without a label: ``living_alone`` -> ``Living alone``."""
    text = str(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else str(code)


def _outcome_default(trial: Any, outcome: str) -> str:
    try:
        o = trial.spec.outcome(outcome)
        return str(getattr(o, "instrument", None) or getattr(o, "label", None) or outcome)
    except (KeyError, AttributeError, SpecError):
        return outcome


def display_labels(trial: Any, spec: Any) -> Labels:
    """The :class:`Labels` of a run: the spec's ``labels:`` section, with defaults (instrument
    names for outcomes, readable covariate names) where it names nothing."""
    ts = trial.spec
    source = getattr(trial, "labels", {}) or {}  # SPSS/Stata/REDCap labels (issue 21)
    src_out, src_cov = source.get("outcomes", {}), source.get("covariates", {})
    outcomes = {
        str(o): spec.label("outcomes", str(o), src_out.get(o) or _outcome_default(trial, str(o)))
        for o in ts.outcome_names
    }
    covariates = {
        str(c): spec.label(
            "covariates", str(c), src_cov.get(c) or covariate_default_label(str(c))
        )
        for c in (*ts.covariates, *getattr(spec.model, "covariates", ()))
    }
    for c in ts.strata:  # the site: the spec's label, the source's (REDCap field label), "Site"
        column = getattr(ts.columns, str(c), None)
        source_label = src_cov.get(c) or (src_cov.get(column) if column else None)
        covariates.setdefault(
            str(c),
            spec.label("covariates", str(c), source_label or covariate_default_label(str(c))),
        )
    for c in spec.labels.get("covariates", {}):
        covariates.setdefault(str(c), spec.label("covariates", str(c)))
    return Labels(
        arms={str(a): spec.label("arms", str(a)) for a in ts.arms.levels},
        visits={str(v): spec.label("visits", str(v)) for v in ts.visits},
        outcomes=outcomes,
        covariates=covariates,
        levels=spec.level_labels(),
        reasons=dict(spec.labels.get("reasons", {})),
        adverse_events=dict(spec.labels.get("adverse_events", {})),
    )


def level_text(level: float) -> str:
    """``0.95`` -> ``"95%"``, ``0.9`` -> ``"90%"``, ``0.975`` -> ``"97.5%"``."""
    pct = 100 * float(level)
    return f"{pct:z.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}%"


def change_table(effects: Any, labels: Labels, level: float, digits: int = 2) -> Any:
    """The single-arm outcome table as it reads: per outcome and later visit, the model-based
    change from baseline with its CI, p and d (formatting of computed numbers only)."""
    import numpy as np
    import pandas as pd

    from peerstats.describe.render import Table

    ci = f"{level_text(level)} CI"

    def fmt_p(p: float) -> str:
        return "" if not np.isfinite(p) else ("<0.001" if p < 0.001 else f"{p:z.3f}")

    e = effects
    dcol = "cohens_d" if "cohens_d" in e.columns else "d"
    disp = pd.DataFrame(
        {
            "Outcome": [labels.outcome(o) for o in e["outcome"]],
            "Visit": [labels.visit(v) for v in e["visit"]],
            f"Change from baseline ({ci})": [
                f"{a:z.{digits}f} ({lo:z.{digits}f} to {hi:z.{digits}f})"
                for a, lo, hi in zip(e["estimate"], e["ci_lower"], e["ci_upper"])
            ],
            "p": [fmt_p(float(p)) for p in e["p_value"]],
            f"d ({ci})": [
                f"{a:z.2f} ({lo:z.2f} to {hi:z.2f})"
                for a, lo, hi in zip(e[dcol], e["d_ci_lower"], e["d_ci_upper"])
            ],
        }
    )
    notes = [
        "Change: model-based mean change from baseline (MMRM on all visits); a single-arm "
        "study has no control group, so a change is not an effect of the intervention.",
        "d: mean change / baseline SD.",
    ]
    return Table(e, disp, caption="Change from baseline", notes=notes)


def directions(trial: Any) -> dict[str, bool | None]:
    """Per outcome: True when higher scores are better, False when lower are, None unknown
    (the trial spec's ``higher_is_better``, else the instrument definition's)."""
    from peerstats.instruments import get_instrument

    out: dict[str, bool | None] = {}
    for o in trial.spec.outcome_names:
        value = None
        try:
            spec_o = trial.spec.outcome(o)
            value = getattr(spec_o, "higher_is_better", None)
            if value is None and getattr(spec_o, "instrument", None):
                value = get_instrument(spec_o.instrument).higher_is_better
        except (KeyError, AttributeError, SpecError):
            value = None
        out[str(o)] = None if value is None else bool(value)
    return out


def direction_text(higher_is_better: bool | None) -> str:
    """``"higher is better"`` / ``"lower is better"`` / ``""``."""
    if higher_is_better is None:
        return ""
    return "higher is better" if higher_is_better else "lower is better"


def read_adverse_events(trial: Any, labels: Labels) -> Any:
    """The harms table of a trial whose spec names ``data: {adverse_events: ...}``: the file
    read with the spec's reading options, its subject column as the participants' (the
    ``columns: subject`` name), ``event`` and ``serious`` columns."""
    from peerstats.describe.harms import harms_table
    from peerstats.io.readers import read_table

    ts = trial.spec
    raw = read_table(ts.adverse_events, "adverse_events")
    from peerstats.describe.labels import relabel

    cols = ts.adverse_event_columns  # mapped in the spec (issue 20.5)
    table = harms_table(
        trial,
        raw.data,
        subject=cols["subject"],
        event=cols["event"],
        serious=cols["serious"],
        arm_labels=dict(labels.arms),
    )
    return relabel(table, labels)  # adverse-event terms as the spec names them (issue 21)


def ls_means_table(fits: dict[str, Any], labels: Labels, level: float) -> Any:
    """Model-estimated (least-squares) means per arm and visit of each outcome's model, with
    CIs: ``fit.emmeans(["arm", "visit"])`` (equal weights over other factors, covariates at
    their means; SAS LSMEANS)."""
    import pandas as pd

    from peerstats.describe.render import Table

    ci = f"{level_text(level)} CI"
    frames = []
    for o, f in fits.items():
        fit = f.fit
        factors = getattr(getattr(fit, "_design", None), "factors", {}) or {}
        specs = ["arm", "visit"] if "visit" in factors else ["arm"]
        em = fit.emmeans(specs, level=level)
        if "visit" not in em.columns:
            em.insert(1, "visit", "")
        em.insert(0, "outcome", o)
        em["arm"] = em["arm"].astype(str)
        em["visit"] = em["visit"].astype(str)
        frames.append(em)
    data = pd.concat(frames, ignore_index=True)
    arms = list(dict.fromkeys(data["arm"]))
    rows = []
    for (o, v), sub in data.groupby(["outcome", "visit"], sort=False):
        r = {"Outcome": labels.outcome(o), "Visit": labels.visit(v)}
        for a in arms:
            x = sub[sub["arm"] == a]
            if len(x):
                x = x.iloc[0]
                r[f"{labels.arm(a)}: mean ({ci})"] = (
                    f"{x['estimate']:z.2f} ({x['ci_lower']:z.2f} to {x['ci_upper']:z.2f})"
                )
        rows.append(r)
    notes = [
        "Model-estimated (least-squares) means: equal weights over the other factors of the "
        "model (e.g. sites), the baseline score and other covariates at their mean (SAS "
        "LSMEANS, R emmeans)."
    ]
    return Table(data, pd.DataFrame(rows), caption="Model-estimated means", notes=notes)


_TERM_PART = __import__("re").compile(r"^(?P<var>[^\[]+)(?:\[(?:T\.)?(?P<level>.*)\])?$")


def term_label(term: str, lab: Labels, outcome_baselines: Mapping[str, str] | None = None) -> str:
    """A model term in words (issue 21: no code in the report): ``arm[T.peer]:visit[T.fu3]``
    -> "peer support × 3-month follow-up"; ``qpr15_baseline`` -> "QPR-15 (baseline)";
    ``site[T.B]`` -> "Municipality: B"; ``Intercept`` -> "Intercept"."""
    if term in ("Intercept", "(Intercept)"):
        return "Intercept"
    words = []
    for part in term.split(":"):
        m = _TERM_PART.match(part.strip())
        if m is None:
            words.append(part)
            continue
        var, level = m.group("var"), m.group("level")
        if var == "arm" and level is not None:
            words.append(lab.arms.get(level, level))
        elif var == "visit" and level is not None:
            words.append(lab.visits.get(level, level))
        elif level is not None:
            name = lab.covariates.get(var, var)
            words.append(f"{name}: {lab.levels.get(var, {}).get(level, level)}")
        elif var.endswith("_baseline") and var[: -len("_baseline")] in lab.outcomes:
            words.append(f"{lab.outcomes[var[: -len('_baseline')]]} (baseline)")
        else:
            words.append(lab.covariates.get(var, var))
    return " × ".join(words)
