"""The prepared MMRM: the design is built once, then refitted cheaply on new data of the same shape.

``prepare_mmrm`` does everything of :func:`peerstats.mmrm` that depends on the formula, the
factors and the layout of the data (design matrix for *every* row, subject / visit / group codes,
the checks), and pools the sufficient statistics per (group, missingness pattern).
:meth:`PreparedMMRM.fit` then gives exactly ``mmrm()``'s result (``mmrm`` is
``prepare_mmrm(...).fit(...)``), and :meth:`PreparedMMRM.refit` refits the same model on a new
outcome vector, frequency weights per subject (bootstrap counts) or a subset of subjects,
at the cost of the sufficient statistics and a warm-started optimisation only: no formula, no
factor handling. :meth:`PreparedMMRM.jackknife` leaves out one subject at a time by
subtracting that subject's cross products from the pooled statistics.

This is what multiple imputation, the jackknife, the bootstrap and power simulation call in
their loops.

A frequency weight f_i makes subject i count as f_i identical copies of itself: its cross
products are multiplied by f_i, it adds f_i units to its pattern, and f_i * m_i observations to
n; so a weight of 2 equals duplicating the subject's rows under a new id (checked in
tests/models/test_prepared.py against ``mmrm()`` on the duplicated data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter as _perf_counter  # prepare_mmrm has an argument named time

import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._covariance import STRUCTURES
from peerstats.models._design import build_fixed_design, check_empty_levels, choice
from peerstats.models._prepared import (
    HETEROGENEOUS,
    CovarianceName,
    DfName,
    MethodName,
    PreparedMMRM,
    Refit,
    _check_columns,
    _visit_group_as_factors,
)
from peerstats.models._spatial import SPATIAL  # issue 10.5
from peerstats.models._spatial_prepared import SpatialPreparedMMRM

__all__ = [
    "prepare_mmrm",
    "PreparedMMRM",
    "Refit",
    "CovarianceName",
    "DfName",
    "MethodName",
    "HETEROGENEOUS",
    "choice",
]


# ---------------------------------------------------------------------------------------------
def prepare_mmrm(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    covariance: CovarianceName = "us",
    group: str | None = None,
    weights: str | None = None,
    method: MethodName = "reml",
    reference: Mapping[str, str] | None = None,
    time: str | Sequence[str] | None = None,
) -> PreparedMMRM:
    """Build an MMRM once for repeated fits (see :func:`peerstats.mmrm` for the arguments).

    ``data`` may hold rows whose outcome is missing: they are kept in the layout (``X_all``,
    codes) for predictions and imputation, but not in the likelihood. Every check of
    :func:`peerstats.mmrm` is made here, on the rows with an observed outcome.

    Returns
    -------
    PreparedMMRM
        ``fit()`` (equals ``mmrm()``), ``refit(y=, subject_weights=, drop=, theta0=)``,
        ``jackknife()``, ``design_matrix(newdata)`` and the layout attributes.

    Examples
    --------
    >>> prep = peerstats.prepare_mmrm("FEV1 ~ ARMCD * AVISIT", fev, subject="USUBJID",
    ...                               visit="AVISIT")  # doctest: +SKIP
    >>> fit = prep.fit()  # doctest: +SKIP
    >>> jack = prep.jackknife()  # doctest: +SKIP
    """
    t0 = _perf_counter()

    covariance = choice("covariance", covariance, STRUCTURES + SPATIAL)
    if time is not None and covariance not in SPATIAL:
        raise ModelSpecificationError(
            f"time= only applies to the spatial structures {list(SPATIAL)}, not "
            f"covariance={covariance!r} (indexed by the visit levels)"
        )
    method = choice("method", method, ("reml", "ml"))
    _check_columns(data, subject=subject, visit=visit, group=group, weights=weights)
    data = _visit_group_as_factors(data, visit, group)
    extra = [subject, visit] + [c for c in (group, weights) if c is not None]
    design = build_fixed_design(
        formula, data, extra_columns=extra, reference=reference, check_rank=False
    )
    check_empty_levels(design, skip=(visit,))  # visits: checked per structure below
    cls, extra_args = PreparedMMRM, {}
    if covariance in SPATIAL:
        cls, extra_args = SpatialPreparedMMRM, {"time": time}
    prep = cls(
        **extra_args,
        formula=formula,
        data=data,
        design=design,
        subject=subject,
        visit=visit,
        covariance=covariance,
        group=group,
        weights=weights,
        method=method,
    )
    prep._seconds_prepare = _perf_counter() - t0
    return prep
