"""The design matrix of the common formula shapes without formulaic (issue 22: speed, cold start).

formulaic (with narwhals) costs 0.1-0.3 s to import and a few milliseconds per model matrix, more
than the REML fit of a 200-subject trial. Almost every trial model is a sum of named columns and
their interactions (``"FEV1 ~ RACE + SEX + ARMCD * AVISIT"``, ``"y ~ baseline + arm * visit"``),
so this module builds that case itself and leaves everything else to formulaic:

- the right-hand side uses only column names, ``+``, ``*`` and ``:`` (no parentheses,
  functions, ``1``/``0``/``-``, backticks or dots);
- the formula is hierarchical: with every interaction all of its lower-order terms are present
  (then formulaic codes every factor of every term with treatment contrasts, reference dropped);
- every factor has at least two levels with data, numeric columns are float or integer (with at
  most one integer column per term, so products round exactly as formulaic's).

What it builds is formulaic's own result, bit for bit: the same terms in the same order (sorted
by degree, stable in the order of appearance, a repeated term keeps its first spelling), the
same column names (``ARMCD[T.TRT]:AVISIT[T.VIS2]``, the first factor varying fastest) and the
same values (formulaic's pandas materializer multiplies the one-column factors first, in order,
then the indicator columns; indicators are exact 0/1, so only the order of the numeric products
matters, and it is kept). ``tests/models/test_fast_design.py`` checks the columns, names, term
indices and every bit of X against formulaic on many formulas and data types; a formula outside
the fast shapes, or new data the layout cannot code exactly (missing values, unknown levels),
goes to formulaic.
"""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FastLayout", "simple_terms", "fast_layout"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# names formulaic may read as something other than a column
_RESERVED = frozenset({"C", "I", "Q", "True", "False", "None"})


def _names(piece: str) -> tuple[str, ...] | None:
    """``a:b:c`` -> ("a", "b", "c"); None unless plain, distinct names."""
    names = tuple(s.strip() for s in piece.split(":"))
    for n in names:
        if not _NAME.match(n) or keyword.iskeyword(n) or n in _RESERVED:
            return None
    return names if len(set(names)) == len(names) else None


def _expand(summand: str) -> list[tuple[str, ...]] | None:
    """The terms of one summand ``A * B * ...`` (each operand a ``:`` product), as formulaic."""
    acc: list[tuple[str, ...]] = []
    for piece in summand.split("*"):
        op = _names(piece)
        if op is None:
            return None
        merged = [t + tuple(x for x in op if x not in t) for t in acc]
        acc = acc + [op] + merged
    return acc


@functools.lru_cache(maxsize=256)
def simple_terms(rhs: str) -> tuple[tuple[str, ...], ...] | None:
    """The non-intercept terms of a simple, hierarchical right-hand side in formulaic's order,
    or None when the formula is anything else (then formulaic builds it)."""
    terms: list[tuple[str, ...]] = []
    seen: set[frozenset] = set()
    for summand in rhs.split("+"):
        expanded = _expand(summand)
        if expanded is None:
            return None
        for t in expanded:
            if frozenset(t) not in seen:
                seen.add(frozenset(t))
                terms.append(t)
    if not terms:
        return None
    for t in terms:  # hierarchical: every proper subset of every interaction is a term
        for k in range(1, len(t)):
            for sub in _subsets(t, k):
                if frozenset(sub) not in seen:
                    return None
    return tuple(sorted(terms, key=len))


def _subsets(t: tuple[str, ...], k: int):
    import itertools

    return itertools.combinations(t, k)


@dataclass(frozen=True)
class FastLayout:
    """Terms, factor levels and columns of a fast design; :meth:`matrix` codes new data."""

    terms: tuple[tuple[str, ...], ...]
    levels: dict  # factor -> its levels (reference first), as stored in the data
    numerics: tuple[str, ...]
    integers: frozenset  # numerics stored as integers (formulaic multiplies them as integers)
    columns: list[str]
    term_columns: dict[str, list[int]]

    def matrix(self, data: pd.DataFrame) -> np.ndarray | None:
        """X of ``data`` (formulaic's values), or None when ``data`` cannot be coded exactly
        here (a missing value, a level unknown to the fit, a non-numeric covariate)."""
        coded = _code(data, self.levels, self.numerics)
        if coded is None:
            return None
        return _build(self, coded, len(data))

    def from_codes(self, coded: dict, n: int) -> np.ndarray | None:
        """X from factor codes (0 = reference level) and float numerics (as :meth:`matrix`)."""
        for v in self.numerics:
            if not np.isfinite(coded[v]).all():
                return None
        return _build(self, coded, n)


def _code(data: pd.DataFrame, levels: dict, numerics) -> dict | None:
    """Factor codes (0 = reference) and float numerics of ``data``; None if not exact."""
    out: dict = {}
    for v, lev in levels.items():
        col = data[v]
        if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == lev:
            codes = col.cat.codes.to_numpy()
        else:
            codes = pd.Categorical(col, categories=lev).codes
        if codes.size and codes.min() < 0:
            return None
        out[v] = codes
    for v in numerics:
        col = data[v]
        if not _plain_numeric(col.dtype):
            return None
        x = col.to_numpy(dtype=np.float64)
        if not np.isfinite(x).all():
            return None
        out[v] = x
    return out


def _plain_numeric(dtype) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind in "fiu" and (
        dtype.kind != "f" or dtype.itemsize == 8
    )


def _build(layout: FastLayout, coded: dict, n: int) -> np.ndarray | None:
    X = np.empty((n, len(layout.columns)))
    X[:, 0] = 1.0
    for t in layout.terms:
        if not _fill_term(X, layout.term_columns[":".join(t)], t, coded, layout):
            return None
    return X


def _fill_term(X: np.ndarray, cols: list[int], t, coded: dict, layout: FastLayout) -> bool:
    """Write the columns ``cols`` of term ``t`` into X: the indicator of each combination of
    non-reference levels (the first factor fastest) times the product of the term's numeric
    columns, in their order. False when that product is not finite (formulaic then decides).

    formulaic's indicators are booleans: times a float they give 0.0 * x (-0.0 for negative
    x), times an integer column an integer 0 (+0.0 once stacked as floats); both kept."""
    levels = layout.levels
    factors = [v for v in t if v in levels]
    numerics = [v for v in t if v not in levels]
    prod = None
    if numerics:
        prod = coded[numerics[0]]
        for v in numerics[1:]:
            prod = prod * coded[v]
        if not np.isfinite(prod).all():
            return False
    if not factors:
        X[:, cols[0]] = prod
        return True
    index = _combination_index(factors, coded, levels)
    integer_zeros = prod is not None and all(v in layout.integers for v in numerics)
    for k, c in enumerate(cols):
        X[:, c] = index == k
        if prod is not None:
            X[:, c] *= prod
            if integer_zeros:
                X[:, c] += 0.0  # -0.0 + 0.0 is +0.0: the integer zeros of formulaic
    return True


def _combination_index(factors: list[str], coded: dict, levels: dict) -> np.ndarray:
    """Per row, the position of its combination of non-reference levels among the term's
    columns (first factor fastest); -1 where any factor is at its reference level."""
    if len(factors) == 1:
        return coded[factors[0]].astype(np.int64) - 1
    width, index = 1, np.zeros(len(coded[factors[0]]), dtype=np.int64)
    valid = np.ones(index.size, dtype=bool)
    for v in factors:
        c = coded[v].astype(np.int64)
        valid &= c > 0
        index += (c - 1) * width
        width *= len(levels[v]) - 1
    index[~valid] = -1
    return index


def fast_layout(rhs: str, used: pd.DataFrame, factors: dict) -> FastLayout | None:
    """The fast layout of ``rhs`` on the rows ``used`` (factors already Categoricals with their
    used levels, reference first), or None when formulaic must build the design."""
    terms = simple_terms(rhs)
    if terms is None:
        return None
    names = {v for t in terms for v in t}
    if not names <= set(used.columns):
        return None
    levels: dict = {}
    numerics: list[str] = []
    for v in sorted(names):
        col = used[v]
        if v in factors:
            if not isinstance(col.dtype, pd.CategoricalDtype) or len(col.cat.categories) < 2:
                return None
            levels[v] = list(col.cat.categories)
        elif _plain_numeric(col.dtype):
            numerics.append(v)
        else:
            return None
    for t in terms:  # integer products: at most one integer column per term (exact rounding)
        if sum(used[v].dtype.kind in "iu" for v in t if v in numerics) > 1:
            return None
    columns, term_columns = _names_of(terms, levels)
    integers = frozenset(v for v in numerics if used[v].dtype.kind in "iu")
    return FastLayout(terms, levels, tuple(numerics), integers, columns, term_columns)


def _names_of(terms, levels: dict) -> tuple[list[str], dict[str, list[int]]]:
    """formulaic's column names and term -> column positions (intercept "1" first)."""
    import itertools

    columns = ["Intercept"]
    term_columns: dict[str, list[int]] = {"1": [0]}
    for t in terms:
        per = [
            [f"{v}[T.{lev}]" for lev in levels[v][1:]] if v in levels else [v] for v in t
        ]
        names = [":".join(reversed(c)) for c in itertools.product(*reversed(per))]
        term_columns[":".join(t)] = list(range(len(columns), len(columns) + len(names)))
        columns += names
    return columns, term_columns
