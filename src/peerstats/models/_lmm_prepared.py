"""A prepared ``peerstats.lmm``: the same model refitted on datasets that differ only in the
response (private; used by the pipeline's sensitivity analyses on imputed datasets).

Building the fixed-effects design with formulaic and the random-effect designs is most of the
cost of one small partially nested fit. On the completed datasets of a multiple imputation the
designs are the same for every dataset (the covariates, grouping columns, arms and visits are
unchanged; only imputed outcome values differ), so :class:`PreparedLMM` builds them once and
refits with a new ``y``. A dataset qualifies only when every column the designs use is equal
(values, missing positions and dtype), the index is the same and the outcome is missing on the
same rows; otherwise :meth:`PreparedLMM.fit` falls back to a full :func:`peerstats.lmm`.

Notes
-----
With the same X, Z, residual layout and a new y, the fit runs the same steps as
:func:`peerstats.lmm` on the same arrays, so the results are identical (tests/models/
test_lmm_prepared.py compares every number with :func:`peerstats.lmm` to 1e-10).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd

from peerstats.models._design import FixedDesign
from peerstats.models._lmm_setup import LMMData, check_options, prepare
from peerstats.models._random import random_term_columns

__all__ = ["PreparedLMM"]


class PreparedLMM:
    """``peerstats.lmm(formula, data, **options)`` with the designs of ``data`` kept.

    :meth:`fit` refits on a dataset that differs from ``data`` only in the outcome's values;
    ``n_reused`` counts the refits that reused the designs.
    """

    def __init__(self, formula: str, data: pd.DataFrame, **options: Any) -> None:
        from peerstats.models.lmm import _lmm_defaults

        self.formula = formula
        self.options = _lmm_defaults(options)
        self.opt, fixed, terms = check_options(formula, data, **self.options)
        self.d: LMMData = prepare(data, self.opt, fixed, terms)
        lhs_vars, group_cols = random_term_columns(terms, data)
        o = self.opt
        extra = [c for c in (o.residual_by, o.subject, o.visit) if c is not None]
        self.columns = list(
            dict.fromkeys([*self.d.design.variables, *lhs_vars, *group_cols, *extra])
        )
        self.outcome = self.d.design.outcome
        self.columns = [c for c in self.columns if c != self.outcome]
        self._ref = data
        self._observed = data[self.outcome].notna().to_numpy()
        self.n_reused = 0
        self._matrices: dict = {}  # reference-grid model matrices, shared by the refits

    def same_design(self, data: pd.DataFrame) -> bool:
        """Whether ``data`` has the same designs as the prepared data (only y may differ)."""
        ref = self._ref
        if not isinstance(data, pd.DataFrame) or self.outcome not in data.columns:
            return False
        if len(data) != len(ref) or not data.index.equals(ref.index):
            return False
        if not pd.api.types.is_numeric_dtype(data[self.outcome]):
            return False
        for c in self.columns:
            if c not in data.columns or data[c].dtype != ref[c].dtype:
                return False
            if not data[c].equals(ref[c]):
                return False
        return bool(np.array_equal(data[self.outcome].notna().to_numpy(), self._observed))

    def fit(self, data: pd.DataFrame, *, start: np.ndarray | None = None):
        """The fit of :func:`peerstats.lmm` on ``data`` (with ``start=`` as there)."""
        import peerstats
        from peerstats.models.lmm import _single_threaded_blas, fit_prepared

        if not self.same_design(data):
            return peerstats.lmm(self.formula, data, **{**self.options, "start": start})
        t0 = time.perf_counter()
        d = self._with_response(data)
        opt = dataclasses.replace(self.opt, start=start)
        self.n_reused += 1
        with _single_threaded_blas():
            return fit_prepared(self.formula, data, opt, d, t0)

    def _with_response(self, data: pd.DataFrame) -> LMMData:
        """The prepared designs with the outcome of ``data``."""
        d, design = self.d, self.d.design
        y = data[self.outcome].iloc[design.rows].to_numpy(dtype=float)
        used = design.data.copy()
        used[self.outcome] = y
        new_design = _ReusedDesign(
            **{f.name: getattr(design, f.name) for f in dataclasses.fields(FixedDesign)},
            _cache=self._matrices,
        )
        new_design = dataclasses.replace(new_design, y=y, data=used)
        frame = d.data
        if frame is not self._ref:  # prepare() made the visit a factor: keep that column
            frame = frame.assign(**{self.outcome: data[self.outcome].to_numpy()})
        else:
            frame = data
        return dataclasses.replace(d, data=frame, design=new_design)


def _frame_key(frame: pd.DataFrame) -> tuple:
    """An exact key of a (small) frame's content: names, dtypes, categories and values."""
    key: list = [tuple(map(str, frame.columns)), len(frame)]
    for c in frame.columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = tuple((type(v).__name__, str(v)) for v in s.dtype.categories)
            key.append(("cat", cats, s.cat.codes.to_numpy().tobytes()))
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            key.append((str(s.dtype), s.to_numpy().tobytes()))
        else:
            key.append((str(s.dtype), tuple((type(v).__name__, str(v)) for v in s)))
    return tuple(key)


@dataclasses.dataclass(frozen=True)
class _ReusedDesign(FixedDesign):
    """The prepared fixed design with a refit's response; the model matrices of new data (the
    reference grids of emmeans and contrasts, which do not involve the response) are computed
    once and shared by all refits (an exact copy of formulaic's matrix is returned)."""

    _cache: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        if self.outcome in newdata.columns:
            return super().matrix(newdata)
        key = _frame_key(newdata)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= 64:
                self._cache.clear()
            hit = self._cache[key] = super().matrix(newdata)
        return hit.copy()
