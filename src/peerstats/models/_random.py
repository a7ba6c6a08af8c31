"""lme4-style random-effect terms: parsing and random-effect design matrices.

``y ~ x + (1 | id) + (0 + peer | group) + (1 | site/group)`` is split into the fixed-effect
formula ``y ~ x`` and a list of :class:`RandomTerm`. Each term contributes, per level of its
grouping factor, a small block of columns of Z; the covariance of those columns is unstructured
(``q x q``, as lme4) for that term.

Grouping-factor conventions (documented for users in ``peerstats.lmm``):

- nested ``(1 | a/b)`` expands to ``(1 | a) + (1 | a:b)`` exactly as lme4 does;
- a row whose grouping value is missing gets no random effect from that term **only if** the
  term's columns are all zero on that row (the partially nested case: ``(0 + peer | group)``
  with ``group`` empty for the unclustered control arm). Otherwise it is a
  :class:`ModelSpecificationError`, never a silent drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peerstats.exceptions import InsufficientDataError, ModelSpecificationError

__all__ = [
    "RandomTerm",
    "RandomDesign",
    "split_formula",
    "build_random_design",
    "random_term_columns",
    "random_term_data",
]

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


@dataclass(frozen=True)
class RandomTerm:
    """One ``(lhs | group)`` term; ``group`` may be an interaction ``a:b``."""

    lhs: str
    group: str

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(g.strip() for g in self.group.split(":"))

    def __str__(self) -> str:
        return f"({self.lhs} | {self.group})"


def _find_random_spans(rhs: str) -> list[tuple[int, int]]:
    """Spans of top-level parenthesised groups that contain a bar."""
    spans = []
    depth = 0
    start = -1
    for i, ch in enumerate(rhs):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ModelSpecificationError(f"unbalanced parentheses in formula: {rhs!r}")
            if depth == 0 and "|" in rhs[start : i + 1]:
                spans.append((start, i + 1))
    if depth != 0:
        raise ModelSpecificationError(f"unbalanced parentheses in formula: {rhs!r}")
    return spans


def split_formula(formula: str) -> tuple[str, list[RandomTerm]]:
    """Split an lme4-style formula into its fixed part and random terms.

    Parameters
    ----------
    formula : str
        For example ``"qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group)"``.

    Returns
    -------
    fixed : str
        The formula without random terms (``"qpr ~ baseline + arm * visit"``).
    terms : list of RandomTerm
        Nested groupings ``a/b`` are expanded to ``a`` and ``a:b``.

    Examples
    --------
    >>> split_formula("y ~ x + (1 | site/group)")
    ('y ~ x', [RandomTerm(lhs='1', group='site'), RandomTerm(lhs='1', group='site:group')])
    """
    if "~" not in formula:
        raise ModelSpecificationError(f"formula needs an outcome: 'y ~ ...', got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    spans = _find_random_spans(rhs)
    terms: list[RandomTerm] = []
    for a, b in spans:
        inner = rhs[a + 1 : b - 1]
        if "||" in inner:
            raise ModelSpecificationError(
                f"uncorrelated random effects '||' are not supported: {inner!r}; "
                "write separate terms, e.g. (1 | g) + (0 + x | g)"
            )
        if inner.count("|") != 1:
            raise ModelSpecificationError(f"random term must be (expr | group): {inner!r}")
        expr, group = (s.strip() for s in inner.split("|"))
        if not expr:
            raise ModelSpecificationError(f"random term has no left-hand side: ({inner})")
        parts = [g.strip() for g in group.split("/")]
        if not all(re.fullmatch(rf"{_NAME}(\s*:\s*{_NAME})*", p) for p in parts):
            raise ModelSpecificationError(
                f"grouping factor must be column names joined by ':' or '/': {group!r}"
            )
        for k in range(1, len(parts) + 1):
            g = ":".join(p.replace(" ", "") for p in parts[:k])
            terms.append(RandomTerm(lhs=expr, group=g))
    fixed_rhs = rhs
    for a, b in reversed(spans):
        fixed_rhs = fixed_rhs[:a] + fixed_rhs[b:]
    # tidy leftover '+' signs
    fixed_rhs = re.sub(r"\+\s*(\+\s*)+", "+ ", fixed_rhs)
    fixed_rhs = re.sub(r"^\s*\+\s*|\s*\+\s*$", "", fixed_rhs.strip())
    if not fixed_rhs:
        fixed_rhs = "1"
    return f"{lhs.strip()} ~ {fixed_rhs.strip()}", terms


@dataclass(frozen=True)
class RandomDesign:
    """Random-effect design for one term.

    ``columns`` names the q effects per level; ``levels`` the grouping levels (strings);
    ``Z`` is an (n_obs x q) array of term values and ``codes`` the level index of each row
    (-1 where the row gets no random effect from this term).
    """

    term: RandomTerm
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    Z: np.ndarray
    codes: np.ndarray

    @property
    def q(self) -> int:
        return len(self.columns)

    @property
    def n_levels(self) -> int:
        return len(self.levels)


def _group_labels(data: pd.DataFrame, term: RandomTerm) -> pd.Series:
    """``"a:b"`` labels of the grouping columns (None where one is missing)."""
    parts = [data[c] for c in term.group_columns]
    na = pd.concat([p.isna() for p in parts], axis=1).any(axis=1)
    lab = parts[0].astype(str)
    for p in parts[1:]:
        lab = lab + ":" + p.astype(str)
    return lab.where(~na, None)


def _group_codes(data: pd.DataFrame, term: RandomTerm) -> tuple[np.ndarray, tuple[str, ...]]:
    """Level of each row (-1 where a grouping value is missing) and the level names, sorted
    as strings: the categories of ``pd.Categorical(_group_labels(...))``, found by factorising
    the column itself rather than a string per row (issue 22.1)."""
    if len(term.group_columns) == 1 and term.group_columns[0] in data.columns:
        codes, uniques = pd.factorize(data[term.group_columns[0]])
        names = np.array([str(u) for u in uniques], dtype=object)
    else:
        codes, names = pd.factorize(_group_labels(data, term))
        names = np.asarray(names, dtype=object)
    if len(set(names)) < len(names):  # values that print alike (1 and "1") are one level
        codes, names = pd.factorize(_group_labels(data, term))
        names = np.asarray(names, dtype=object)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1).astype(np.int64)
    return codes, tuple(str(v) for v in names[order])


def _check_two_levels(term: RandomTerm, labels: pd.Series, Z: np.ndarray, na: np.ndarray) -> None:
    """A variance between levels needs two levels where the term is not zero (issue 24.10:
    every delivery-group member in one group fitted for minutes before failing)."""
    active = ~na & (np.abs(Z).sum(axis=1) > 0)
    levels = pd.unique(labels[active])
    if active.any() and len(levels) < 2:
        raise InsufficientDataError(
            f"random term {term}: all {int(active.sum())} rows where it applies are in one "
            f"level of {term.group!r}, so there is no variance between levels to estimate; "
            "a random effect needs at least two levels (check the group column, or remove "
            "the term)"
        )


def _term_matrix(term: RandomTerm, data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """The columns of a term's left-hand side, by formulaic."""
    import formulaic

    try:
        mm = formulaic.model_matrix(term.lhs.strip(), data, na_action="ignore")
    except Exception as exc:  # formulaic raises a variety of errors
        raise ModelSpecificationError(f"cannot evaluate random term {term}: {exc}") from exc
    Z = np.asarray(mm, dtype=float)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.shape[1] == 0:
        raise ModelSpecificationError(f"random term {term} has no columns")
    return Z, tuple("(Intercept)" if c == "Intercept" else str(c) for c in mm.columns)


def _simple_term_matrix(lhs: str, data: pd.DataFrame):
    """``1``, ``x``, ``0 + x``, ``1 + x`` with a numeric column x, without formulaic (the same
    columns and names; issue 22.1: formulaic costs ~10 ms per term); None for anything else."""
    parts = [t.strip() for t in lhs.split("+")]
    names = [t for t in parts if t not in ("1", "0", "-1")]
    if len(names) > 1 or len(parts) > 2 or any(p == "" for p in parts):
        return None
    for v in names:
        col = data[v] if re.fullmatch(_NAME, v) and v in data.columns else None
        if col is None or not pd.api.types.is_numeric_dtype(col) or col.dtype == bool:
            return None
    intercept = not ({"0", "-1"} & set(parts))
    cols = ([np.ones(len(data))] if intercept else []) + [
        data[v].to_numpy(dtype=float, na_value=np.nan) for v in names
    ]
    if not cols:
        return None
    return np.column_stack(cols), (("(Intercept)",) if intercept else ()) + tuple(names)


def build_random_design(data: pd.DataFrame, term: RandomTerm) -> RandomDesign:
    """Evaluate a random term on ``data`` (rows already restricted to the analysed rows)."""
    Z, columns = _simple_term_matrix(term.lhs, data) or _term_matrix(term, data)
    missing = [c for c in term.group_columns if c not in data.columns]
    if missing:
        raise ModelSpecificationError(
            f"grouping column(s) {missing} of random term {term} not in data; "
            f"columns are {list(data.columns)}"
        )
    codes, levels = _group_codes(data, term)
    na = codes < 0
    bad = na & ((np.abs(np.nan_to_num(Z)).sum(axis=1) > 0) | np.isnan(Z).any(axis=1))
    if bad.any():
        rows = list(data.index[bad][:10])
        raise ModelSpecificationError(
            f"random term {term}: grouping value missing on {int(bad.sum())} row(s) where the "
            f"term is not zero (first rows: {rows}). Only rows whose term columns are all 0 "
            "(e.g. the control arm in (0 + peer | group)) may have no group."
        )
    if np.isnan(Z[~na]).any():
        raise ModelSpecificationError(f"random term {term} has missing values in its columns")
    _check_two_levels(term, pd.Series(codes), Z, na)
    Z = np.where(na[:, None], 0.0, Z)
    return RandomDesign(term=term, columns=columns, levels=levels, Z=Z, codes=codes)


def random_term_columns(terms: list[RandomTerm], data: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Variables of the terms' left-hand sides and their grouping columns (checked present)."""
    from peerstats.models._design import required_variables

    lhs_vars: list[str] = []
    for t in terms:
        if t.lhs.replace(" ", "") not in ("1", "0", "-1"):
            lhs_vars += [v for v in required_variables(t.lhs) if v not in lhs_vars]
    group_cols = sorted({c for t in terms for c in t.group_columns})
    missing = [c for c in group_cols if c not in data.columns]
    if missing:
        raise ModelSpecificationError(
            f"grouping column(s) {missing} not found in data; columns are {list(data.columns)}"
        )
    return lhs_vars, group_cols


def random_term_data(data: pd.DataFrame, rows, columns: list[str]) -> pd.DataFrame:
    """The analysed ``rows`` (positions) of the columns the random terms use; Arrow-backed
    strings as objects (much faster to label and factorise row by row)."""
    rdata = data.iloc[np.asarray(rows)]
    return pd.DataFrame(
        {
            c: rdata[c].astype(object) if pd.api.types.is_string_dtype(rdata[c]) else rdata[c]
            for c in dict.fromkeys(columns)
        },
        index=rdata.index,
    )
