"""Estimated marginal means (SAS LSMEANS / R emmeans) and type III hypotheses.

The reference grid holds every combination of the levels of the factors in the model, with
numeric covariates at their mean over the rows used in the fit. A marginal mean of a factor
combination is the equal-weight average of the grid predictions over the remaining factors
(SAS LSMEANS; emmeans' default ``weights = "equal"``), so its contrast vector is the average
of the corresponding rows of the grid design matrix.

Type III tests use the hypothesis of SAS: each term's columns under sum-to-zero (effects) coding
of all factors are zero; we map that hypothesis onto our treatment-coded coefficients through the
exact reparameterisation X_sum = X_treat A.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._design import refuse_unknown

__all__ = ["reference_grid", "emmeans_matrix", "type3_hypotheses"]


def reference_grid(design) -> pd.DataFrame:
    """All factor-level combinations; numeric covariates at their mean."""
    factors = design.factor_values or design.factors
    names = list(factors)
    combos = list(itertools.product(*[factors[n] for n in names])) if names else [()]
    grid = pd.DataFrame(combos, columns=names)
    for n in names:
        grid[n] = pd.Categorical(grid[n], categories=factors[n])
    for v in design.numerics:
        grid[v] = float(design.data[v].mean())
    return grid


def emmeans_matrix(design, specs: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Levels of ``specs`` (a DataFrame) and the contrast matrix of their marginal means."""
    specs = list(specs)
    refuse_unknown(
        specs, design.factors,
        lambda unknown: f"emmeans specs {unknown} are not factors of the model; factors are "
        f"{list(design.factors)}",
    )
    if len(set(specs)) != len(specs):
        raise ModelSpecificationError(f"emmeans specs {specs} repeat a factor")
    grid = reference_grid(design)
    Xg = design.matrix(grid)
    if not specs:
        return pd.DataFrame(index=[0]), Xg.mean(axis=0, keepdims=True)
    # rows in the data's level order (Categorical order, else sorted), not reference-first
    values = {
        s: (design.natural_order.get(s) or (design.factor_values or design.factors)[s])
        for s in specs
    }
    levels = list(itertools.product(*[values[s] for s in specs]))
    # each grid row's combination of the specs' levels as one mixed-radix index into ``levels``
    key = np.zeros(len(grid), dtype=np.int64)
    for s in specs:
        pos = {str(v): i for i, v in enumerate(values[s])}
        cats = np.array([pos[str(c)] for c in grid[s].cat.categories], dtype=np.int64)
        key = key * len(values[s]) + cats[grid[s].cat.codes.to_numpy()]
    sums = np.zeros((len(levels), Xg.shape[1]))
    np.add.at(sums, key, Xg)
    rows = sums / np.bincount(key, minlength=len(levels))[:, None]
    frame = pd.DataFrame(levels, columns=specs)
    for s in specs:
        frame[s] = pd.Categorical(frame[s], categories=values[s])
    return frame, rows


def _rhs_terms(design) -> tuple[bool, list[list[str]]]:
    import formulaic

    rhs = design.formula.split("~", 1)[1]
    has_intercept = False
    terms = []
    for term in formulaic.Formula(rhs):
        facs = [str(f.expr) for f in term.factors]
        if facs == ["1"]:
            has_intercept = True
        else:
            terms.append(facs)
    return has_intercept, terms


def _coded_matrix(design, has_intercept, terms, treat: set[str]):
    import formulaic

    def wrap(expr):
        if expr in design.factors and expr not in treat:
            return f"C({expr}, contr.sum)"
        return expr

    parts = [":".join(wrap(f) for f in t) for t in terms]
    rhs = ("1" if has_intercept else "0") + "".join(f" + {p}" for p in parts)
    mm = formulaic.model_matrix(rhs, design.data, na_action="raise", output="numpy")
    return np.asarray(mm, dtype=float), list(mm.model_spec.term_indices.values())


def type3_hypotheses(design) -> dict[str, np.ndarray]:
    """Term -> L matrix (in the treatment-coded coefficients) of SAS's type III hypothesis.

    For term t, the factors of t keep treatment coding (reference = our first level, which is
    SAS's last level when ``reference=`` mirrors SAS) and every other factor is sum-coded, so
    the columns of t are the treatment contrasts of t averaged with equal weights over the other
    factors (numeric covariates at 0), exactly the rows of SAS's type III estimable functions.
    The basis matters for the multi-degree-of-freedom Satterthwaite df (Fai & Cornelius 1996),
    which is not invariant to it.
    """
    has_intercept, terms = _rhs_terms(design)
    Xt = design.X
    msg = (
        "type III tests need a hierarchical formula (every interaction with its main "
        "effects); use a contrast instead"
    )
    out = {}
    for k, term in enumerate(terms):
        Xs, idx = _coded_matrix(design, has_intercept, terms, set(term))
        if Xs.shape[1] != Xt.shape[1]:
            raise ModelSpecificationError(msg)
        A, *_ = np.linalg.lstsq(Xt, Xs, rcond=None)
        if not np.allclose(Xt @ A, Xs, atol=1e-8 * max(1.0, np.abs(Xs).max())):
            raise ModelSpecificationError(msg)
        Ainv = np.linalg.inv(A)  # beta_coded = A^-1 beta_treat
        cols = idx[k + (1 if has_intercept else 0)]
        out[":".join(term)] = Ainv[list(cols), :]
    return out
