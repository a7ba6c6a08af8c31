"""The validated trial: participants, assessments (long), sessions.

A :class:`Trial` is only built by :func:`load_trial` (through :mod:`peerstats.data.validation`), so
every Trial has passed every check. Its frames use the standard column names ``subject, arm,
visit, site, group, peer``; ``arm`` and ``visit`` are ordered categoricals in spec order.
The class and its assembly live in :mod:`peerstats.data.trial`, below validation, so that
validation and this module do not import each other.
"""

from __future__ import annotations

from pathlib import Path

from peerstats.data.trial import Trial
from peerstats.data.trial_spec import TrialSpec
from peerstats.data.validation import validate

__all__ = ["Trial", "load_trial"]


def load_trial(spec: str | Path | dict | TrialSpec, *, base_dir: str | Path | None = None) -> Trial:
    """Read, validate and assemble a trial.

    Parameters
    ----------
    spec : str, Path, dict or TrialSpec
        Path to the YAML trial spec, or the spec as a dict.
    base_dir : str or Path, optional
        For a dict spec: the directory data paths are relative to (default: current directory).

    Returns
    -------
    Trial

    Raises
    ------
    SpecError
        If the spec is malformed (every problem listed).
    DataValidationError
        If any data check fails; ``.failures`` lists every problem.

    Examples
    --------
    >>> trial = load_trial("trial.yaml")  # doctest: +SKIP
    >>> print(trial.summary())  # doctest: +SKIP
    """
    report = validate(spec, base_dir=base_dir)
    report.raise_for_failures()
    return report.trial
