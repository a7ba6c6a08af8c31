"""What every outcome-type adapter offers (:class:`OutcomeType`) and what it is given
(:class:`Context`: the run's spec, trial, labels and confidence level)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from peerstats.effects import EffectRecord

__all__ = ["Context", "OutcomeType"]


@dataclass(frozen=True)
class Context:
    """What an adapter needs to know of the run besides its own fit.

    Attributes
    ----------
    spec : AnalysisSpec
    trial : Trial
    labels : peerstats.describe.labels.Labels
        Display names (arms, visits, outcomes) of the run.
    directions : dict
        Per outcome: True when higher is better, False when lower is, None unknown.
    single : bool
        A single-arm study (changes from baseline, no comparison).
    n_randomised : dict
        Randomised participants per arm.
    """

    spec: Any
    trial: Any
    labels: Any
    directions: dict = field(default_factory=dict)
    single: bool = False
    n_randomised: dict = field(default_factory=dict)

    @property
    def level(self) -> float:
        """The confidence level of every interval."""
        return float(self.spec.model.level)

    @property
    def reference(self) -> str:
        """The reference (control) arm's code."""
        ts = self.trial.spec
        return str(ts.arms.reference or ts.arms.levels[0])

    def outcome_label(self, outcome: str) -> str:
        """The outcome's display name (the spec's label, else its instrument, else its name)."""
        from peerstats.pipeline._common import outcome_label

        return outcome_label(self.trial, self.spec, outcome)

    def comparison(self, contrast: str) -> str:
        """``"peer - usual"`` -> ``"peer support vs usual services"`` (labels of the arms)."""
        if " - " not in contrast:
            return contrast
        a, b = contrast.split(" - ", 1)
        return f"{self.spec.label('arms', a)} vs {self.spec.label('arms', b)}"


class OutcomeType(Protocol):
    """An outcome type's adapter: one module under :mod:`peerstats.pipeline.outcomes`."""

    name: str

    def check(self, spec: Any, trial_spec: Any, outcome: str) -> list[str]:
        """Problems of the outcome's definition given the trial spec (collected, not raised)."""
        ...

    def fit(self, trial: Any, outcome: str, spec: Any) -> Any:
        """Fit the spec's model of ``outcome``; a :class:`FittedOutcome`."""
        ...

    def model_record(self, fitted: Any, spec: Any) -> dict[str, Any]:
        """The ``results.json`` entry ``models/<outcome>``."""
        ...

    def records(self, fitted: Any, context: Context) -> list[EffectRecord]:
        """The outcome's treatment effects (unadjusted p; the run adjusts for multiplicity)."""
        ...

    def describe(self, fitted: Any, context: Context) -> pd.DataFrame:
        """Per-arm summaries of the outcome (tidy)."""
        ...

    def analysed(self, fitted: Any) -> Any:
        """The fit CONSORT reconciles with (its analysed subjects)."""
        ...

    def table(self, records: list[EffectRecord], context: Context) -> Any:
        """The display table (``describe.Table``) of this type's records."""
        ...
