"""The completed datasets of multiple imputation: :class:`Imputations` (rbmi's imputation object).

An :class:`Imputations` holds the data of every completed set compactly: the observed outcomes
once, the imputed values per set (``values``), and for the resampling methods the subject
weights or bootstrap rows. ``datasets`` builds the completed DataFrames lazily; ``analyse``
is the analyse and pool steps (:mod:`peerstats.missing.analyses`, :mod:`peerstats.missing.pooling`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.missing._base import _Cells
from peerstats.missing._inputs import _check_columns, _levels, _parse_delta

__all__ = ["Imputations"]


def _stacked_outcomes(datasets, outcome: str, order, n: int, T: int) -> np.ndarray:
    """(S, n, T) outcomes of the completed datasets, subject-major."""
    Ys = []
    for d in datasets:
        if len(d) != len(datasets[0]):
            raise ModelSpecificationError("completed datasets differ in their number of rows")
        Ys.append(d[outcome].to_numpy(dtype=float)[order].reshape(n, T))
    return np.stack(Ys)


@dataclass(frozen=True, repr=False, eq=False)
class Imputations(_Cells):
    """Completed datasets from :func:`peerstats.impute` (or :meth:`from_datasets`).

    Attributes are read-only. ``datasets`` builds completed DataFrames lazily; ``analyse``
    fits the per-visit ANCOVA (or a user analysis) on each and pools them by the method's rule.
    """

    values: np.ndarray  # (S, n_target) imputed values per completed set (per row, see rows)
    weights: np.ndarray | None  # (S, n) subject frequency weights (jackknife / bootstrap), or
    # (S, R) 0/1 row indicators when ``rows`` is given
    D: int | None = None  # imputations per bootstrap sample (bootstrap-ml)
    seed: Any = None  # the SeedSequence entropy
    draws: dict = field(default_factory=dict)  # beta / sigma draws of the imputation model
    info: dict = field(default_factory=dict)
    client: Any = None  # the dask Client given to impute (default of tipping_point)
    # bootstrap-ml: (R,) subject index of each row of ``values`` / ``weights``. A bootstrap
    # sample is a dataset of n rows: a subject drawn w times is w rows, each imputed on its own
    # (von Hippel & Bartlett 2021; rbmi method_bmlmi). Rows 0..n-1 are the subjects (copy 1),
    # then the second copies of the subjects drawn at least twice in some sample, and so on; a
    # set uses the rows whose weight is 1. None: one row per subject.
    rows: np.ndarray | None = None

    # ---- construction from outside imputations (e.g. mice, jomo) --------------------------
    @classmethod
    def from_datasets(
        cls,
        datasets: Sequence[pd.DataFrame],
        *,
        outcome: str,
        subject: str,
        visit: str,
        arm: str,
        method: Literal["bayes", "approx-bayes"] = "bayes",
        missing: pd.Series | np.ndarray | None = None,
    ) -> Imputations:
        """Wrap completed datasets made elsewhere (the same subjects and visits in each) so that
        :meth:`analyse` pools them by Rubin's rules. ``missing`` (aligned with the rows of the
        first dataset) marks the imputed cells (for counts and delta); default: the cells whose
        value differs between the datasets (a cell imputed to the same value in every set is
        then counted as observed, which changes no pooled number)."""
        if len(datasets) < 2:
            raise ModelSpecificationError("from_datasets needs at least 2 completed datasets")
        base = datasets[0]
        _check_columns(base, outcome=outcome, subject=subject, visit=visit, arm=arm)
        subjects = pd.Index(pd.unique(base[subject]))
        vlev = _levels(base[visit])
        alev = [str(a) for a in _levels(base[arm])]
        n, T = len(subjects), len(vlev)
        si = subjects.get_indexer(base[subject])
        vi = pd.Index([str(v) for v in vlev]).get_indexer(base[visit].astype(str))
        if len(base) != n * T:
            raise ModelSpecificationError(
                "from_datasets needs one row per subject and visit in each dataset"
            )
        order = np.lexsort((vi, si))
        frame = base.iloc[order].reset_index(drop=True)
        Ys = _stacked_outcomes(datasets, outcome, order, n, T)
        if missing is None:  # the imputed cells are those whose value differs between sets
            miss = (Ys != Ys[0]).any(axis=0) | np.isnan(Ys).any(axis=0)
        else:
            miss = np.asarray(missing, dtype=bool)[order].reshape(n, T)
        arm_of = pd.Index(alev).get_indexer(frame[arm].astype(str).to_numpy()[::T])
        return cls(
            method=method,
            outcome=outcome,
            subject=subject,
            visit=visit,
            arm=arm,
            subjects=subjects,
            visits=tuple(vlev),
            arm_levels=tuple(alev),
            frame=frame,
            y=np.where(miss, np.nan, Ys[0]),
            target=miss,
            missing=miss,
            set_aside=np.zeros((n, T), dtype=bool),
            values=Ys[:, miss],
            weights=None,
            arm_of=arm_of,
            ice_visit=np.full(n, T),
            strategy=np.array(["MAR"] * n, dtype=object),
            delta=np.zeros((n, T)),
            info={"source": "from_datasets"},
        )

    # ---- basic facts ----------------------------------------------------------------------
    @property
    def n_imputations(self) -> int:
        """Number of completed datasets (for condmean: 1 + the number of resamples)."""
        return int(self.values.shape[0])

    @property
    def n_imputed(self) -> pd.DataFrame:
        """Per arm and visit: subjects, observed, missing, set aside after a non-MAR ICE, imputed."""
        rows = []
        for a, lev in enumerate(self.arm_levels):
            sel = self.arm_of == a
            for j, v in enumerate(self.visits):
                rows.append(
                    {
                        self.arm: lev,
                        self.visit: v,
                        "n_subjects": int(sel.sum()),
                        "n_observed": int((~self.missing[sel, j]).sum()),
                        "n_missing": int(self.missing[sel, j].sum()),
                        "n_set_aside": int(self.set_aside[sel, j].sum()),
                        "n_imputed": int(self.target[sel, j].sum()),
                    }
                )
        out = pd.DataFrame(rows)
        out["fraction_imputed"] = out["n_imputed"] / out["n_subjects"]
        return out

    def completed(self, delta: bool = True) -> np.ndarray:
        """(S, n, T) completed outcomes of every set (with the delta on imputed cells).

        bootstrap-ml: (S, R, T), one row per row of :attr:`rows` (a subject drawn more than once
        into a bootstrap sample has a row per copy, each imputed on its own); a set uses the rows
        whose weight (:attr:`weights`) is 1."""
        S = self.values.shape[0]
        y, target = self._by_row(self.y), self._by_row(self.target)
        Y = np.broadcast_to(y, (S,) + y.shape).copy()
        Y[:, target] = self.values
        if delta:
            Y += self._by_row(self.delta)[None]
        return Y

    # ---- rows (bootstrap-ml: one row per copy of a subject) ---------------------------------
    def _by_row(self, a: np.ndarray) -> np.ndarray:
        """A per-subject array (first axis n) taken per row of ``values`` / ``weights``."""
        return a if self.rows is None else a[self.rows]

    @property
    def _row_copy(self) -> np.ndarray:
        """(R,) copy number of each row (1: the subject itself, 2: its second copy, ...)."""
        if self.rows is None:
            return np.ones(len(self.subjects), dtype=np.int64)
        return pd.Series(self.rows).groupby(self.rows).cumcount().to_numpy() + 1

    def _row_frame(self) -> pd.DataFrame:
        """``frame`` with one block of T rows per row of ``values`` (subject-major)."""
        if self.rows is None:
            return self.frame
        T = len(self.visits)
        idx = (self.rows[:, None] * T + np.arange(T)[None, :]).reshape(-1)
        return self.frame.iloc[idx].reset_index(drop=True)

    def _visit_outcomes(self, j: int, delta: np.ndarray | None = None):
        """At visit j: the frame rows (R), the completed outcomes Y (S, R) with delta, and the
        imputed-cell mask (R,)."""
        T = len(self.visits)
        S = self.values.shape[0]
        fr = self._row_frame().iloc[j::T]
        y, target = self._by_row(self.y), self._by_row(self.target)
        dl = self._by_row(self.delta if delta is None else delta)
        Y = np.broadcast_to(y[:, j], (S, len(fr))).copy()
        tj = target[:, j]
        Y[:, tj] = self.values[:, self._target_pos[tj, j]]
        Y[:, tj] += dl[tj, j]
        return fr, Y, tj

    @property
    def datasets(self) -> _Datasets:
        """The completed datasets as DataFrames, built lazily (``len``, index, iterate).

        Jackknife sets leave their subject out; bootstrap sets repeat subjects as drawn (a
        repeated subject gets the id ``"<id>#<k>"``, k = 2, 3, ...; with bootstrap-ml each copy
        has its own imputed values, with condmean-bootstrap the copies share their conditional
        means). Delta is applied.
        """
        return _Datasets(self)

    def with_delta(self, delta) -> Imputations:
        """The same imputations with another delta (per subject and visit, or per arm and visit);
        no new draws."""
        d = _parse_delta(
            delta,
            self.subjects,
            self.visits,
            list(self.arm_levels),
            self.arm_of,
            self.subject,
            self.visit,
            self.arm,
            self.target,
        )
        return replace(self, delta=d)

    # ---- analysis -------------------------------------------------------------------------
    def _visit_index(self, v) -> int:
        vtxt = [str(x) for x in self.visits]
        if str(v) not in vtxt:
            raise ModelSpecificationError(f"visit {v!r} is not a visit; visits are {vtxt}")
        return vtxt.index(str(v))

    def _ancova_arrays(self, covariates, reference, visits=None, delta=None):
        """Per visit: est (S, k), var (S, k), dfc (S,), and LS means est/var (S, A)
        (see :func:`peerstats.missing.analyse.ancova_arrays`)."""
        from peerstats.missing.analyses import ancova_arrays

        return ancova_arrays(self, covariates, reference, visits=visits, delta=delta)

    @property
    def _target_pos(self) -> np.ndarray:
        """(R, T) column of each imputed cell in ``values`` (-1: not imputed)."""
        target = self._by_row(self.target)
        pos = np.full(target.shape, -1, dtype=np.int64)
        pos[target] = np.arange(int(target.sum()))
        return pos

    def analyse(
        self,
        fn: Callable[[pd.DataFrame], Any] | None = None,
        *,
        covariates: Sequence[str] | str = (),
        by: str | None = None,
        reference: str | None = None,
        level: float = 0.95,
        bootstrap: Literal["percentile", "normal"] = "percentile",
        df_complete: float | None = None,
        model: str | None = None,
        model_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Analyse every completed set and pool by the method's rule: ``pool(analyse(self, ...))``.

        The two steps are :func:`peerstats.missing.analyse` (one analysis per completed set,
        returning :class:`~peerstats.missing.Analyses`) and :func:`peerstats.missing.pool`;
        see :func:`peerstats.missing.analyse` for the analyses (per-visit ANCOVA by default,
        a user function ``fn``, or a linear mixed model ``model=`` with random terms) and
        the columns of the pooled table.
        """
        from peerstats.missing.analyses import analyse
        from peerstats.missing.pooling import _check_pool_options, pool

        _check_pool_options(level, bootstrap)
        res = analyse(
            self,
            fn,
            covariates=covariates,
            by=by,
            reference=reference,
            df_complete=df_complete,
            model=model,
            model_options=model_options,
        )
        return pool(res, level=level, bootstrap=bootstrap)

    def lsmeans(
        self,
        *,
        covariates: Sequence[str] | str = (),
        level: float = 0.95,
        bootstrap: Literal["percentile", "normal"] = "percentile",
    ) -> pd.DataFrame:
        """Pooled per-arm LS means of the per-visit ANCOVA (covariates at their mean):
        ``<visit>, <arm>, estimate, std_error, df, statistic, p_value, ci_lower, ci_upper,
        fraction_missing_info``."""
        from peerstats.missing.analyses import analyse, pool_lsmeans

        return pool_lsmeans(analyse(self, covariates=covariates), level=level, bootstrap=bootstrap)

    # ---- display --------------------------------------------------------------------------
    def _header(self) -> list[tuple[str, str]]:
        S = self.n_imputations
        what = {
            "condmean-jackknife": f"{S} sets (full data + {S - 1} leave-one-out)",
            "condmean-bootstrap": f"{S} sets (full data + {S - 1} bootstrap samples)",
            "bootstrap-ml": f"{S} sets ({S // (self.D or 1)} bootstrap samples x {self.D})",
        }.get(self.method, f"{S} completed datasets")
        strat = pd.Series(self.strategy[self.ice_visit < len(self.visits)]).value_counts()
        ice_txt = ", ".join(f"{k} {v}" for k, v in strat.items()) or "none (all MAR)"
        return [
            ("Method", self.method),
            ("Imputations", what),
            ("Outcome / visits", f"{self.outcome} / {', '.join(map(str, self.visits))}"),
            ("Subjects", f"{len(self.subjects)} ({', '.join(self.arm_levels)})"),
            ("Non-MAR ICEs", ice_txt),
            (
                "Imputed values",
                f"{int(self.target.sum())} ({int(self.missing.sum())} missing, "
                f"{int(self.set_aside.sum())} set aside after a non-MAR ICE)",
            ),
            ("Delta", "none" if not self.delta.any() else "applied to imputed values"),
        ]

    def summary(self) -> str:
        """Plain text: method, counts, imputed values per arm and visit."""
        lines = [f"{k:<18}{v}" for k, v in self._header()]
        lines += ["", self.n_imputed.to_string(index=False)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._header()
        )
        return f"<div><table>{head}</table>{self.n_imputed.to_html(index=False)}</div>"


class _Datasets(Sequence):
    def __init__(self, imp: Imputations) -> None:
        self._imp = imp

    def __len__(self) -> int:
        return self._imp.n_imputations

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        imp = self._imp
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        Y = imp._by_row(imp.y).copy()
        Y[imp._by_row(imp.target)] = imp.values[i]
        Y = Y + imp._by_row(imp.delta)
        df = imp._row_frame().copy()
        df[imp.outcome] = Y.reshape(-1)
        if imp.weights is None:
            return df
        T = len(imp.visits)
        w = np.asarray(imp.weights[i]).round().astype(int)
        if imp.rows is not None:  # bootstrap-ml: each row is one copy, its own imputed values
            copy = imp._row_copy
            sel = np.repeat(w > 0, T)
            part = df[sel]
            rep = np.repeat(copy, T)[sel]
            ids = part[imp.subject].astype(str).to_numpy(dtype=object)
            ids = np.where(rep > 1, ids + "#" + rep.astype(str), ids)
            if (rep > 1).any():
                part = part.assign(**{imp.subject: ids})
            return part.reset_index(drop=True)
        parts = []
        for rep in range(1, int(w.max()) + 1):
            sel = np.repeat(w >= rep, T)
            part = df[sel]
            if rep > 1:
                part = part.assign(**{imp.subject: part[imp.subject].astype(str) + f"#{rep}"})
            parts.append(part)
        return pd.concat(parts).reset_index(drop=True)
