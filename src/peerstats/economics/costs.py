"""Costs from resource use: items used times their unit costs, summed per participant.

A service-use questionnaire (CSRI-style) gives, per participant and follow-up assessment, how
often each item was used (GP visits, inpatient days, peer-support sessions ...). Each count is
multiplied by the item's unit cost from a unit-cost table (national tariffs, stated with their
price year and currency), optionally discounted by the year of follow-up in which the recall
period ends, and summed by cost category and in total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from peerstats.economics.qaly import year_index
from peerstats.exceptions import DataValidationError, ModelSpecificationError, SpecError

__all__ = ["resource_costs", "unit_cost_table"]


def unit_cost_table(unit_costs: Mapping[str, float] | pd.DataFrame) -> pd.DataFrame:
    """A unit-cost table indexed by item, columns ``unit_cost`` and ``category``.

    ``unit_costs`` is ``{item: cost}`` or a frame with columns ``item``, ``unit_cost`` and
    optionally ``category`` (each item its own category when absent). Negative or missing unit
    costs raise :class:`~peerstats.exceptions.SpecError`.
    """
    if isinstance(unit_costs, pd.DataFrame):
        need = {"item", "unit_cost"} - set(unit_costs.columns)
        if need:
            raise SpecError(f"the unit-cost table needs columns item and unit_cost; missing {need}")
        t = unit_costs.set_index("item")
    else:
        t = pd.DataFrame({"unit_cost": pd.Series(dict(unit_costs), dtype=float)})
    t = t.copy()
    t["unit_cost"] = pd.to_numeric(t["unit_cost"], errors="coerce")
    if "category" not in t.columns:
        t["category"] = t.index.astype(str)
    bad = t.index[~(t["unit_cost"] >= 0)].tolist()
    if bad:
        raise SpecError(f"unit costs must be numbers >= 0; not so for {bad}")
    if t.index.duplicated().any():
        raise SpecError(
            f"items listed twice in the unit-cost table: {t.index[t.index.duplicated()].tolist()}"
        )
    return t[["unit_cost", "category"]]


def _check_use(use, subject, time, items, table):
    for name, col in {"subject": subject, "time": time}.items():
        if col is not None and col not in use.columns:
            raise ModelSpecificationError(f"{name}={col!r} is not a column of the resource use")
    if items is None:
        items = [c for c in use.columns if c not in (subject, time)]
    absent = [i for i in items if i not in use.columns]
    if absent:
        raise ModelSpecificationError(f"items {absent} are not columns of the resource use")
    no_price = [i for i in items if i not in table.index]
    if no_price:
        raise SpecError(
            f"no unit cost for the resource-use items {no_price}; every item used needs a unit "
            f"cost (the table has {list(table.index)}). Add them, or leave the items out with items="
        )
    counts = use[list(items)].apply(pd.to_numeric, errors="coerce")
    neg = np.argwhere((counts < 0).to_numpy())
    if len(neg):
        f = pd.DataFrame([{"table": "resource_use", "row": use.index[r], "column": items[c],
                           "value": counts.iat[r, c], "check": "negative_use",
                           "message": "resource use below 0"} for r, c in neg])  # fmt: skip
        raise DataValidationError(f, context="resource use")
    return list(items), counts


def resource_costs(
    use: pd.DataFrame,
    *,
    unit_costs: Mapping[str, float] | pd.DataFrame,
    subject: str,
    time: str | None = None,
    items: Sequence[str] | None = None,
    discount_rate: float = 0.0,
) -> pd.DataFrame:
    """Total cost per participant (and per category) from resource use and unit costs.

    Parameters
    ----------
    use : DataFrame
        One row per participant (and assessment): counts of each item used in the recall
        period.
    unit_costs : mapping or DataFrame
        ``{item: unit cost}`` or a table with columns ``item, unit_cost[, category]`` (see
        :func:`unit_cost_table`). Every item used must have one: a missing unit cost raises
        :class:`~peerstats.exceptions.SpecError` naming the items.
    subject : str
        Participant column.
    time : str, optional
        Day (since randomisation) at which the recall period ends; needed for discounting.
    items : list of str, optional
        Item columns (default: every column other than ``subject`` and ``time``).
    discount_rate : float
        Annual rate for costs beyond the first 12 months: a cost reported at day t is
        multiplied by (1 + r)^-y, y = ceil(t / 365.25) - 1 (0 within 12 months).

    Returns
    -------
    DataFrame
        Indexed by ``subject``: one column per category and ``total``. A missing count makes
        that participant's category and total missing (never counted as zero).
    """
    if not 0 <= discount_rate < 1:
        raise SpecError(f"discount_rate must be in [0, 1), got {discount_rate!r}")
    if discount_rate > 0 and time is None:
        raise SpecError("discounting needs time= (the day each recall period ends)")
    table = unit_cost_table(unit_costs)
    items, counts = _check_use(use, subject, time, items, table)
    cost = counts * table.loc[items, "unit_cost"].to_numpy()[None, :]
    if discount_rate > 0:
        t = pd.to_numeric(use[time], errors="coerce").to_numpy()
        cost = cost.mul((1 + discount_rate) ** -year_index(t), axis=0)
    by_cat = cost.T.groupby(table.loc[items, "category"].to_numpy()).sum(min_count=1).T
    by_cat = by_cat.where(~cost.isna().T.groupby(table.loc[items, "category"].to_numpy()).any().T)
    by_cat[subject] = use[subject].to_numpy()
    out = by_cat.groupby(subject, sort=False).sum(min_count=1)
    missing = by_cat.drop(columns=subject).isna().groupby(by_cat[subject], sort=False).any()
    out = out.where(~missing)
    out["total"] = out.sum(axis=1, min_count=out.shape[1])
    return out
