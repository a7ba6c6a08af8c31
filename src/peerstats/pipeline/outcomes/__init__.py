"""The outcome-type registry the pipeline reads (issue 23.1).

Every outcome of an analysis spec has a ``type`` (``continuous`` unless the spec's
``outcomes:`` block says otherwise). The type names an *adapter*: a small object that knows how
to fit that kind of outcome, what its treatment effects are (as
:class:`~peerstats.effects.EffectRecord`), how to summarise it per arm, and what CONSORT's
analysed n is. The steps of :mod:`peerstats.pipeline.steps` call adapters only, so adding an
outcome type is one module here plus one entry in :data:`REGISTRY`:

====================  ==================================================================
``fit(trial, outcome, spec)``              a :class:`FittedOutcome` (the public fit inside)
``model_record(fitted, spec)``             the ``results.json`` ``models/<outcome>`` entry
``records(fitted, context)``               the outcome's effects, a list of EffectRecord
``describe(fitted, context)``              per-arm summaries (tidy frame)
``analysed(fitted)``                       the fit CONSORT reconciles (analysed subjects)
``table(records, context)``                the display table of its records
====================  ==================================================================

The adapters call the public models (``peerstats.analyze``, ``mmrm``, ``lmm``, statsmodels GLMs)
and compute no statistics of their own beyond arranging them.
"""

from __future__ import annotations

from typing import Any

from peerstats.exceptions import SpecError
from peerstats.pipeline.outcomes._base import Context, OutcomeType
from peerstats.pipeline.outcomes.continuous import ContinuousOutcome

__all__ = ["REGISTRY", "OutcomeType", "Context", "outcome_type", "register"]

#: outcome type -> adapter (``continuous`` built in; binary and count register below)
REGISTRY: dict[str, OutcomeType] = {"continuous": ContinuousOutcome()}


def register(name: str, adapter: OutcomeType) -> None:
    """Add (or replace) the adapter of outcome type ``name``."""
    REGISTRY[name] = adapter


def outcome_type(name: str) -> OutcomeType:
    """The adapter of outcome type ``name``.

    Raises
    ------
    SpecError
        ``name`` is not a registered type (the message lists them).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpecError(f"{name!r} is not an outcome type; types are {sorted(REGISTRY)}") from None


def _register_builtin() -> None:
    from peerstats.pipeline.outcomes.binary import BinaryOutcome
    from peerstats.pipeline.outcomes.count import CountOutcome

    register("binary", BinaryOutcome())
    register("count", CountOutcome())
    from peerstats.pipeline.outcomes.time_to_event import TimeToEventOutcome  # issue 17

    register("time_to_event", TimeToEventOutcome())


_register_builtin()


def adapter_of(spec: Any, outcome: str) -> OutcomeType:
    """The adapter of one outcome of an analysis spec."""
    return outcome_type(spec.outcome_type(outcome))
