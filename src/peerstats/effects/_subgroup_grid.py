"""Contrast rows of a treatment effect within subgroups, from the fit's reference grid (issue 22).

Row ``v`` of :func:`diff_rows` is the effect (treatment - reference) at a visit with the
modifier at value ``v``: the mean of the reference grid's design rows of the treatment arm at
that visit (the modifier's level ``v``, or the modifier set to ``v``) minus those of the
reference arm (equal-weight marginal means, emmeans). All values' grids are stacked and coded
once: a design matrix's rows do not depend on the other rows, so each value's rows are those
of its own grid.

When the fit's design has a fast layout (:mod:`peerstats.models._fast_design`), the grid is
coded straight from level positions (:meth:`FastLayout.from_codes`, as
:func:`peerstats.models.emmeans._grid_matrix` does for marginal means): the same factor codes
and float numerics the layout reads from the grid frame (``FastLayout.matrix``), so the same
matrix bit for bit, without building the frame (``tests/effects/test_subgroup_grid.py``).
Otherwise the grid frame goes through ``design.matrix``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["diff_rows", "arm_mask"]


def arm_mask(grid: pd.DataFrame, visit: str | None, arm: str) -> np.ndarray:
    """Rows of ``grid`` in ``arm`` (and at ``visit`` unless None)."""
    sel = grid["arm"].astype(str) == arm
    if visit is not None:
        sel &= grid["visit"].astype(str) == visit
    return sel.to_numpy()


def diff_rows(
    fit: Any, var: str, visit: str | None, ref: str, trt: str, values: Sequence[Any]
) -> np.ndarray:
    """One row of L per modifier value: effect (trt - ref) at ``visit`` and modifier = value."""
    design = fit._design
    coded = _coded_grid(design, var, values)
    if coded is not None:
        X, strings, keeps = coded
        trt_rows = _in_arm(strings, visit, trt)
        ref_rows = _in_arm(strings, visit, ref)
    else:
        X, grid, keeps = _framed_grid(design, var, values)
        trt_rows, ref_rows = arm_mask(grid, visit, trt), arm_mask(grid, visit, ref)
    rows, start = [], 0
    for keep in keeps:
        n = int(keep.sum())
        Xg = X[start : start + n]
        start += n
        rows.append(Xg[trt_rows[keep]].mean(axis=0) - Xg[ref_rows[keep]].mean(axis=0))
    return np.vstack(rows)


def _framed_grid(design: Any, var: str, values: Sequence[Any]):
    """The stacked grid as a frame through ``design.matrix``: (X, grid, rows kept per value).
    A continuous modifier's stacked grid is the grid repeated with the values in its column
    (the frames ``grid.assign(var=v)`` concatenated: same columns, dtypes and rows)."""
    from peerstats.models.emmeans import reference_grid

    grid = reference_grid(design)
    if var in design.factors:
        factor = grid[var].astype(str).to_numpy()
        keeps = [factor == str(v) for v in values]
        stacked = pd.concat([grid[keep] for keep in keeps], ignore_index=True)
    else:
        keeps = [np.ones(len(grid), dtype=bool)] * len(values)
        stacked = pd.concat([grid] * len(values), ignore_index=True)
        stacked[var] = np.repeat(np.array([float(v) for v in values]), len(grid))
    return design.matrix(stacked), grid, keeps


def _in_arm(strings: dict[str, np.ndarray], visit: str | None, arm: str) -> np.ndarray:
    sel = strings["arm"] == arm
    if visit is not None:
        sel &= strings["visit"] == visit
    return sel


def _coded_grid(design: Any, var: str, values: Sequence[Any]):
    """(X, level strings of the grid's factors, rows kept per value) from the fast layout, or
    None when the design has none or the grid cannot be coded exactly (then the frame path)."""
    fast = getattr(design, "fast", None)
    factors = design.factor_values or design.factors
    names = list(factors)
    if fast is None or not {"arm", *(["visit"] if "visit" in names else [])} <= set(names):
        return None
    if set(fast.levels) - set(names) or set(fast.numerics) - {*design.numerics, var}:
        return None
    idx = np.indices([len(factors[n]) for n in names]).reshape(len(names), -1)
    strings, codes = {}, {}
    for i, n in enumerate(names):  # the grid's rows: itertools.product of the levels
        strings[n] = np.array([str(x) for x in factors[n]], dtype=object)[idx[i]]
        if n in fast.levels:
            pos = pd.Categorical(list(factors[n]), categories=fast.levels[n]).codes
            if pos.size and pos.min() < 0:
                return None
            codes[n] = pos.astype(np.int64)[idx[i]]
    size = idx.shape[1]
    if var in factors:
        keeps = [strings[var] == str(v) for v in values]
        take = np.concatenate([np.flatnonzero(k) for k in keeps])
        n_rows = take.size
        coded = {n: c[take] for n, c in codes.items()}
    else:
        keeps = [np.ones(size, dtype=bool)] * len(values)
        n_rows = size * len(values)
        coded = {n: np.tile(c, len(values)) for n, c in codes.items()}
    for v in fast.numerics:  # at their mean, as reference_grid puts them
        coded[v] = np.full(n_rows, float(design.data[v].mean()))
    if var not in factors:
        coded[var] = np.repeat(np.array([float(v) for v in values]), size)
    X = fast.from_codes(coded, n_rows)
    return None if X is None else (X, strings, keeps)
