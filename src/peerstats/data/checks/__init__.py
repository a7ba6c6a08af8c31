"""The checks of :func:`peerstats.validate`, by what they check.

``structure``
    tables and columns present, keys filled and not repeated.
``values``
    numbers, ranges, whole numbers, yes/no, labels, covariates.
``identifiers``
    privacy: identifiers and control characters in headers, labels and cells.
``consistency``
    across tables: unknown subjects, files that disagree, outcomes after withdrawal,
    time-to-event dates.

Every check writes to one :class:`~peerstats.data.checks._log.Log` (all failures collected,
masked); :mod:`peerstats.data.validation` runs them table by table.
"""
