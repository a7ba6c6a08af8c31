"""Temporary stand-in for ``peerstats.models.prepared`` (the engine's prepared model) with the
same interface, built on full ``mmrm()`` fits. Used only until the engine lands on main."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from peerstats.models.mmrm import mmrm


@dataclass(frozen=True)
class Refit:
    beta: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    sigmas: list
    neg2loglik: float
    converged: bool
    iterations: int


class _Prepared:
    def __init__(self, formula, data, *, subject, visit, covariance="us", group=None,
                 reference=None, method="reml"):
        self.formula = formula
        self.data = data.reset_index(drop=True)
        self.kw = dict(subject=subject, visit=visit, covariance=covariance, group=group,
                       reference=reference, method=method)
        self.subject, self.visit, self.group = subject, visit, group
        self._fit = mmrm(formula, self.data, **self.kw)
        d = self._fit._design
        self.columns = list(d.columns)
        self.visits = self._fit.visits
        codes, uniq = pd.factorize(self.data[subject], sort=False)
        self.subjects = pd.Index(uniq)
        self.subject_codes = codes.astype(np.int64)
        self.visit_codes = np.asarray(self.data[visit].astype("category").cat.codes
                                      if not isinstance(self.data[visit].dtype, pd.CategoricalDtype)
                                      else self.data[visit].cat.codes, dtype=np.int64)
        self.group_levels = self._fit.group_levels
        if group is not None:
            g = self.data[group]
            cats = g.cat.categories if isinstance(g.dtype, pd.CategoricalDtype) else sorted(g.unique())
            self.group_codes = np.asarray(pd.Categorical(g, categories=cats).codes, dtype=np.int64)
        else:
            self.group_codes = np.zeros(len(self.data), dtype=np.int64)
        self.X_all = d.matrix(self.data)
        self.y_all = self.data[d.outcome].to_numpy(dtype=float)
        self.outcome = d.outcome

    def fit(self, **kw):
        return self._fit

    def design_matrix(self, newdata):
        return self._fit._design.matrix(newdata)

    def _one(self, data):
        try:
            f = mmrm(self.formula, data, **self.kw)
        except Exception:
            return Refit(np.full(len(self.columns), np.nan), None, None, None, np.nan, False, 0)
        return Refit(np.asarray(f._inference.beta), np.asarray(f._inference.C), f._theta,
                     [np.asarray(s) for s in f._sigmas], f.neg2loglik, True, f.iterations)

    def refit(self, y=None, *, subject_weights=None, drop=None, theta0=None):
        data = self.data
        if y is not None:
            data = data.assign(**{self.outcome: np.asarray(y, dtype=float)})
        if drop is not None:
            mask = np.zeros(len(self.subjects), dtype=bool)
            mask[drop] = True
            data = data[~mask[self.subject_codes]]
        if subject_weights is not None:
            w = np.asarray(subject_weights).astype(int)
            parts = []
            for rep in range(1, int(w.max()) + 1):
                sel = w[self.subject_codes] >= rep
                part = data[sel[: len(data)]] if drop is None else None
                part = data.loc[sel]
                part = part.assign(**{self.subject: part[self.subject].astype(str) + f"__{rep}"})
                parts.append(part)
            data = pd.concat(parts, ignore_index=True)
        return self._one(data)

    def jackknife(self):
        return [self.refit(drop=i) for i in range(len(self.subjects))]


def prepare_mmrm(formula, data, *, subject, visit, covariance="us", group=None, weights=None,
                 method="reml", reference=None):
    return _Prepared(formula, data, subject=subject, visit=visit, covariance=covariance,
                     group=group, reference=reference, method=method)
