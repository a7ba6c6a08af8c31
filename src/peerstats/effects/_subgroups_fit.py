"""Subgroup effects from a model that is already fitted with the interaction(s).

:func:`peerstats.subgroups` given a fit (``peerstats.mmrm`` / ``peerstats.lmm`` result) whose
formula contains ``variable * arm * visit`` (or ``variable * arm``) for every ``by`` variable:
no refit, the same contrasts and interaction tests as the trial path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError, SpecError


def _has_interaction(design: Any, var: str, arm: str) -> bool:
    from peerstats.models.emmeans import _rhs_terms

    _, terms = _rhs_terms(design)
    return any(var in t and arm in t for t in terms)


def subgroups_from_fit(fit: Any, *, outcome: str | None, visit: str | None, by: Sequence[str],
                       level: float, labels: Any, arm: str = "arm",
                       reference: str | None = None) -> Any:
    """See :func:`peerstats.subgroups` (``trial_or_fit`` a fitted model)."""
    from peerstats.effects.subgroups import (
        _TIDY, EXPLORATORY, SubgroupAnalysis, _categorical, _check_cells, _continuous,
        _level_code,
    )

    design = fit._design
    if arm not in design.factors:
        raise ModelSpecificationError(f"the fit has no factor {arm!r}; factors are {list(design.factors)}")
    arms = [str(a) for a in design.factors[arm]]
    if len(arms) != 2:
        raise ModelSpecificationError(f"subgroups compares two arms; the fit has {arms}")
    ref = str(reference) if reference is not None else arms[0]
    trt = [a for a in arms if a != ref][0]
    data = design.data
    has_visit = "visit" in design.factors
    if has_visit:
        visits = [str(v) for v in (design.natural_order.get("visit") or design.factors["visit"])]
        visit = str(visit if visit is not None else visits[-1])
        if visit not in visits:
            raise SpecError(f"{visit!r} is not a visit of the fit; visits are {visits}")
        rows = data[data["visit"].astype(str) == visit]
    else:
        rows = data
    subject = "subject" if "subject" in rows.columns else None
    tables, tests, curves = [], [], {}
    for var in by:
        if var not in data.columns:
            raise SpecError(f"subgroup variable {var!r} is not in the fitted model's data")
        if not _has_interaction(design, var, arm):
            raise ModelSpecificationError(
                f"the fit has no {var} x {arm} interaction; fit the model with "
                f"'{var} * {arm} * visit' or pass the Trial (subgroups refits the primary model)"
            )
        ids = rows[subject] if subject else pd.Series(np.arange(len(rows)), index=rows.index)
        cells = pd.DataFrame({"subject": ids.to_numpy(), "arm": rows[arm].astype(str).to_numpy(),
                              "level": rows[var].to_numpy()})
        cont = var in design.numerics
        v = visit if has_visit else None
        if cont:
            tab, test, curve = _continuous(fit, var, v, ref, trt, level, cells, labels)
            curves[var] = curve
        else:
            cells["level"] = cells["level"].map(_level_code)
            _check_cells(cells, var, [ref, trt])
            tab, test = _categorical(fit, var, v, ref, trt, level, cells, labels)
        tab["interaction_p"] = test["p_value"]
        tables.append(tab)
        tests.append(test)
    overall = _overall(fit, arm, v if has_visit else None, ref, trt, level)
    return SubgroupAnalysis(
        outcome=outcome or design.formula.split("~")[0].strip(), visit=str(visit),
        reference=ref, treatment=trt, table=pd.concat(tables, ignore_index=True),
        interactions=pd.DataFrame(tests).set_index("variable"), curves=curves,
        overall=overall[_TIDY].astype(float), n_overall=int(cells["subject"].nunique()),
        level=level, warning=EXPLORATORY.format(k=len(by)),
        notes=("overall: the fitted model's effect averaged over the subgroup levels with equal "
               "weights (not the primary model without interaction)",),
    )


def _overall(fit: Any, arm: str, visit: str | None, ref: str, trt: str, level: float) -> pd.Series:
    from peerstats.effects.subgroups import _arm_rows
    from peerstats.models.emmeans import reference_grid

    grid = reference_grid(fit._design)
    ell = (_arm_rows(fit._design, grid, visit, trt).mean(axis=0)
           - _arm_rows(fit._design, grid, visit, ref).mean(axis=0))
    return fit.test(ell, level=level).iloc[0]
