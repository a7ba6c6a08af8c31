"""One error and warning hierarchy for peerstats.

Every error peerstats raises on purpose is a :class:`PeerstatsError`; every warning is a
:class:`PeerstatsWarning`. Catch these, not the built-in bases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "PeerstatsError",
    "DataValidationError",
    "SpecError",
    "ConvergenceError",
    "ModelSpecificationError",
    "InsufficientDataError",
    "ReconciliationError",
    "PeerstatsWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "DataWarning",
]

FAILURE_COLUMNS = ["table", "row", "column", "value", "check", "message"]

#: longest message an error carries (a longer one is cut, saying so): no input can make an
#: error message, and so a log or a terminal, arbitrarily large
MAX_MESSAGE = 20_000
#: longest line of one failure in a DataValidationError message
MAX_FAILURE_LINE = 500


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" ... [{len(text) - limit} more characters not shown]"


class PeerstatsError(Exception):
    """Base class of every error peerstats raises on purpose (messages are capped at
    ``MAX_MESSAGE`` characters)."""

    def __init__(self, *args: Any) -> None:
        if args and isinstance(args[0], str):
            args = (_cap(args[0], MAX_MESSAGE), *args[1:])
        super().__init__(*args)


class DataValidationError(PeerstatsError, ValueError):
    """Trial data failed validation.

    ``.failures`` is a DataFrame with one row per problem and the columns
    ``table, row, column, value, check, message``. ``row`` is the row as the user sees it in
    the file (1-based data row; the header is row 0 for delimited files), or missing when the
    problem concerns a whole table or column.
    """

    def __init__(self, failures: pd.DataFrame, *, max_shown: int = 20, context: str = "") -> None:
        import pandas as pd

        failures = pd.DataFrame(failures).reset_index(drop=True)
        for col in FAILURE_COLUMNS:
            if col not in failures.columns:
                failures[col] = None
        self.failures = failures[FAILURE_COLUMNS]
        self.max_shown = max_shown
        self.context = context
        super().__init__(self._message())

    def _message(self) -> str:
        """One line per kind of problem and column (a problem repeated over rows is one line
        with its count, first rows and values), after a summary by kind (issue 21)."""
        n = len(self.failures)
        head = f"{n} problem{'s' if n != 1 else ''} found in the trial data"
        if self.context:
            head += f" ({self.context})"
        groups = _groups(self.failures)
        kinds = self.failures["check"].astype(str).value_counts(sort=False)
        lines = [head + ":"]
        if len(groups) > 1:
            lines.append("  by kind: " + ", ".join(f"{k} {v:,}" for k, v in kinds.items()))
        for g in groups[: self.max_shown]:
            lines.append(_cap(_group_line(g), MAX_FAILURE_LINE))
        if len(groups) > self.max_shown:
            lines.append(
                f"  ... and {len(groups) - self.max_shown} more (all of them: `peerstats validate "
                "SPEC --failures FILE` writes a CSV; in Python, the exception's .failures table)"
            )
        return "\n".join(lines)


#: rows and values named on the line of a repeated problem
SHOWN_ROWS = 5


def _groups(failures: Any) -> list[list]:
    """Failures grouped by (table, column, check), in order of first appearance."""
    out: dict[tuple, list] = {}
    for rec in failures.itertuples(index=False):
        col = None if _is_missing(rec.column) else str(rec.column)
        out.setdefault((str(rec.table), col, str(rec.check)), []).append(rec)
    return list(out.values())


def _group_line(recs: list) -> str:
    first = recs[0]
    where = str(first.table)
    rows = [int(r.row) for r in recs if not _is_missing(r.row)]
    if len(recs) == 1 and rows:
        where += f" row {rows[0]}"
    if not _is_missing(first.column):
        where += f", column {first.column!r}"
    if len(recs) == 1:
        return f"  - [{first.check}] {where}: {first.message}"
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS]) + (", ..." if len(rows) > SHOWN_ROWS else "")
    values = list(dict.fromkeys(str(r.value) for r in recs if not _is_missing(r.value)))
    vtext = ", ".join(repr(v) for v in values[:SHOWN_ROWS]) + (", ..." if len(values) > SHOWN_ROWS else "")
    count = f"{len(recs):,} rows" + (f" ({shown})" if rows else "")
    if values:
        count += f", values {vtext}"
    return f"  - [{first.check}] {where}: {count}; e.g. {first.message}"


def _is_missing(value: Any) -> bool:
    """None, NaN, pd.NA or NaT (a failure row may hold any of them)."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like values are never "missing"
        return False


class SpecError(PeerstatsError, ValueError):
    """A trial or analysis spec is malformed (schema violation, unknown option, bad path)."""


class ModelSpecificationError(PeerstatsError, ValueError):
    """A model cannot be set up as asked (bad formula, collinear design, unknown option,
    missing covariates, a visit with no observations)."""


class InsufficientDataError(ModelSpecificationError):
    """The data are too few for the model (participants, observations, groups), found before
    any fitting; the message says how many there are and what the model needs. The command
    line treats it as a data problem (exit 1)."""


class ConvergenceError(PeerstatsError, RuntimeError):
    """The optimiser did not converge, or the covariance became singular.

    Attributes ``tried`` (what was attempted) and ``gradient`` (the last gradient, if any).
    """

    def __init__(self, message: str, *, tried: Any = None, gradient: Any = None) -> None:
        self.tried = tried
        self.gradient = gradient
        super().__init__(message)


class ReconciliationError(PeerstatsError, ValueError):
    """Numbers that must agree (e.g. CONSORT analysed n and a model's n) do not."""


class PeerstatsWarning(UserWarning):
    """Base class of every warning peerstats emits."""


class ConvergenceWarning(PeerstatsWarning):
    """A fit returned with ``converged=False``."""


class SingularFitWarning(PeerstatsWarning):
    """A variance component was estimated at (or near) zero."""


class DataWarning(PeerstatsWarning):
    """Something in the data deserves attention but is not an error."""
