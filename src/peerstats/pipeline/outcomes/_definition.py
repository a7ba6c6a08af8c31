"""The analysis spec's ``outcomes:`` block: outcomes that are not the trial's scales.

Example (``analyses/peer_recovery.yaml``)::

    outcomes:
      readmission:                       # the name used under primary / secondary
        type: binary                     # binary | count
        column: readmitted_12m           # 0/1, yes/no, true/false (participants or assessments)
        label: Readmission within 12 months
        event: readmissions              # the event in words, for the direction
        higher_is_better: false          # fewer readmissions are better
        model: logistic                  # binary: logistic | glmm | gee
        scale: odds_ratio                # odds_ratio | risk_ratio | risk_difference
        vcov: cluster                    # model | cluster (delivery groups; partially nested)
      bed_days:
        type: count
        column: bed_days
        exposure: followup_days          # follow-up time: log(exposure) is the offset
        model: negative_binomial         # count: negative_binomial | poisson | glmm | gee
        scale: rate_ratio
      remission:
        type: binary
        from: {outcome: gad7, below: 10} # derived from a scale at a visit (below / at_most /
        visit: post                      #   above / at_least; or reliable_improvement: r)

A column of the participants table is one value per participant (over the whole follow-up);
with ``visit:`` the column (or the scale) is read from the assessments at that visit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OutcomeDef", "parse_outcomes", "MODELS", "SCALES_OF", "NOT_YET"]

#: models each type may use (the first is the default)
MODELS = {
    "binary": ("logistic", "glmm", "gee"),
    "count": ("negative_binomial", "poisson", "glmm", "gee"),
    "time_to_event": ("cox", "rmst", "fine_gray"),  # issue 17
}
#: effect scales each type may report (the first is the default)
SCALES_OF = {
    "binary": ("odds_ratio", "risk_ratio", "risk_difference"),
    "count": ("rate_ratio",),
    "time_to_event": ("hazard_ratio", "rmst_difference", "subdistribution_hazard_ratio"),
}
#: time_to_event: the scale each model reports
TTE_SCALE = {"cox": "hazard_ratio", "rmst": "rmst_difference",
             "fine_gray": "subdistribution_hazard_ratio"}
#: model choices whose engines are not in this version yet
NOT_YET: tuple[str, ...] = ()
THRESHOLDS = ("below", "at_most", "above", "at_least")


@dataclass(frozen=True)
class OutcomeDef:
    """One entry of the ``outcomes:`` block (see the module docstring)."""

    name: str
    type: str
    column: str | None = None
    label: str = ""
    visit: str | None = None
    derive: dict = field(default_factory=dict, compare=False)
    exposure: str | None = None
    model: str = ""
    scale: str = ""
    event: str = ""
    higher_is_better: bool | None = None
    covariates: tuple[str, ...] = ()
    vcov: str = "model"
    yes: tuple[str, ...] = ()
    status: str | None = None  # time_to_event (issue 17): how follow-up ended
    tau: float | None = None
    cause: int = 1

    @property
    def family(self) -> str:
        """The GEE family: binomial for binary outcomes, negative binomial for counts."""
        return "negative_binomial" if self.type == "count" else "binomial"

    @property
    def source(self) -> str:
        """The column (or the scale it is derived from)."""
        return self.column or str(self.derive.get("outcome", self.name))


def _one(name: str, raw: dict, problems: list[str]) -> OutcomeDef:
    kind = raw["type"]
    where = f"outcomes/{name}"
    model = raw.get("model", MODELS[kind][0])
    scale = raw.get("scale", TTE_SCALE.get(model, SCALES_OF[kind][0]))
    if model not in MODELS[kind]:
        problems.append(
            f"{where}/model: {model!r} is not a {kind} model; models are {list(MODELS[kind])}"
        )
    if scale not in SCALES_OF[kind]:
        problems.append(
            f"{where}/scale: {scale!r} is not a {kind} scale; scales are {list(SCALES_OF[kind])}"
        )
    derive = dict(raw.get("from") or {})
    if ("column" in raw) == bool(derive):
        problems.append(f"{where}: give either column (a 0/1 or count column) or from (a scale)")
    if derive:
        if kind != "binary":
            problems.append(f"{where}/from: only a binary outcome is derived from a scale")
        given = [k for k in (*THRESHOLDS, "reliable_improvement") if k in derive]
        if len(given) != 1:
            problems.append(
                f"{where}/from: name one rule of {[*THRESHOLDS, 'reliable_improvement']}, e.g. "
                "{outcome: gad7, below: 10}"
            )
        if raw.get("visit") is None:
            problems.append(f"{where}/visit: a binary outcome derived from a scale needs a visit")
    vcov = raw.get("vcov")
    if model == "gee" and vcov not in (None, "robust", "bias-reduced"):
        problems.append(f"{where}/vcov: a GEE's covariance is 'robust' or 'bias-reduced'")
    if model != "gee" and vcov in ("robust", "bias-reduced"):
        problems.append(f"{where}/vcov: {vcov!r} is for model 'gee'; use 'model' or 'cluster'")
    if kind == "time_to_event":
        problems += _tte_problems(where, raw, model, scale)
    elif any(k in raw for k in ("status", "tau", "cause")):
        problems.append(f"{where}: status, tau and cause belong to time_to_event outcomes")
    if "exposure" in raw and kind != "count":
        problems.append(f"{where}/exposure: only count outcomes have an exposure (follow-up time)")
    return OutcomeDef(
        name=name,
        type=kind,
        column=raw.get("column"),
        label=raw.get("label", ""),
        visit=None if raw.get("visit") is None else str(raw["visit"]),
        derive=derive,
        exposure=raw.get("exposure"),
        model=model,
        scale=scale,
        event=raw.get("event", ""),
        higher_is_better=raw.get("higher_is_better"),
        covariates=tuple(raw.get("covariates", ())),
        vcov=raw.get("vcov", "robust" if model == "gee" else "model"),
        yes=tuple(str(x).lower() for x in raw.get("yes", ())),
        status=raw.get("status"),
        tau=raw.get("tau"),
        cause=int(raw.get("cause", 1)),
    )


def _tte_problems(where: str, raw: dict, model: str, scale: str) -> list[str]:
    out = []
    if "status" not in raw or "column" not in raw:
        out.append(f"{where}: a time_to_event outcome needs column (follow-up time) and status")
    if model in TTE_SCALE and scale != TTE_SCALE[model]:
        out.append(f"{where}/scale: model {model!r} reports {TTE_SCALE[model]!r}, not {scale!r}")
    if model == "rmst" and "tau" not in raw:
        out.append(f"{where}/tau: model 'rmst' needs tau (the truncation time)")
    if raw.get("visit") is not None or raw.get("from"):
        out.append(f"{where}: a time_to_event outcome is one row per participant (no visit/from)")
    return out


def parse_outcomes(raw: dict) -> tuple[dict[str, OutcomeDef], list[str]]:
    """The ``outcomes:`` block of a (schema-valid) raw spec and the problems across its keys."""
    problems: list[str] = []
    defs = {str(k): _one(str(k), v, problems) for k, v in (raw.get("outcomes") or {}).items()}
    return defs, problems
