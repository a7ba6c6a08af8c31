"""Formula -> design matrices for the fixed part of a model.

Categorical columns (pandas Categorical, strings, booleans) use treatment coding with the first
level as reference: the order of a pandas Categorical is respected, otherwise levels are sorted,
and ``reference={"ARMCD": "PBO"}`` moves a level to the front. Rows with a missing outcome are
dropped (and counted by the caller); a missing covariate is an error that names the rows.
Rank-deficient designs are refused with the aliased columns named (SAS would silently set them
to zero).

X is formulaic's model matrix. For the common shapes (column names joined by ``+``, ``*``, ``:``,
hierarchical) :mod:`peerstats.models._fast_design` builds the identical matrix without importing
formulaic (issue 22: cold start and the cost per fit); formulaic's spec is then built only if new
data needs it (``FixedDesign.spec``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._fast_design import fast_layout, simple_terms

__all__ = ["FixedDesign", "build_fixed_design", "as_categorical"]


def as_categorical(
    series: pd.Series, reference: str | None = None, *, name: str | None = None
) -> pd.Series:
    """Return ``series`` as a pandas Categorical with ``reference`` as its first level."""
    name = name or str(series.name)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = [c for c in series.cat.categories]
        out = series
    else:
        out = series.astype("category")
        values = list(out.cat.categories)
        try:
            cats = sorted(values)
        except TypeError:
            cats = sorted(values, key=str)
        if cats != values:
            out = out.cat.reorder_categories(cats)
    if reference is not None:
        if reference not in cats:
            raise ModelSpecificationError(
                f"reference level {reference!r} is not a level of {name!r}; levels are {cats}"
            )
        cats = [reference] + [c for c in cats if c != reference]
        out = out.cat.reorder_categories(cats)
    return out


def _is_categorical(series: pd.Series) -> bool:
    return (
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or pd.api.types.is_bool_dtype(series.dtype)
    )


@dataclass(frozen=True)
class FixedDesign:
    """The fixed-effects design of a fitted model (internal)."""

    formula: str
    outcome: str
    X: np.ndarray
    y: np.ndarray
    columns: list[str]
    term_columns: dict[str, list[int]]
    model_spec: Any
    data: pd.DataFrame  # the rows used, with categoricals coded as in the fit
    rows: np.ndarray  # positions (0-based) of the used rows in the input data
    factors: dict[str, list[str]]  # categorical variable -> levels as str (reference first)
    numerics: list[str]
    variables: list[str]
    n_dropped: int
    reference: dict[str, str] = field(default_factory=dict)
    factor_values: dict[str, list] = field(default_factory=dict)  # levels as stored in data
    natural_order: dict[str, list] = field(default_factory=dict)  # data order, before reference=
    data_levels: dict[str, set] = field(default_factory=dict)  # levels (str) on any input row
    fast: Any = None  # the FastLayout when formulaic was not needed (models/_fast_design.py)

    def matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """The design matrix of ``newdata`` under the fitted coding."""
        if self.fast is not None:
            X = self.fast.matrix(newdata)
            if X is not None:
                return X
        mm = self.spec().get_model_matrix(newdata, na_action="ignore")
        return np.asarray(mm, dtype=float)

    def spec(self) -> Any:
        """formulaic's model spec of the fit (built on first use for a fast design)."""
        if self.model_spec is None:
            rhs = _split_formula(self.formula)[1]
            spec = _formulaic_matrix(rhs, self.data).model_spec
            object.__setattr__(self, "model_spec", spec)  # a cache: the design is unchanged
        return self.model_spec


def _split_formula(formula: str) -> tuple[str, str]:
    if "~" not in formula:
        raise ModelSpecificationError(
            f"formula {formula!r} has no '~'; write it as 'outcome ~ terms', e.g. "
            "'FEV1 ~ ARMCD * AVISIT'"
        )
    lhs, rhs = formula.split("~", 1)
    lhs, rhs = lhs.strip(), rhs.strip()
    if not lhs or not rhs:
        raise ModelSpecificationError(f"formula {formula!r} needs an outcome and terms")
    return lhs, rhs


def required_variables(rhs: str) -> list[str]:
    """The data columns a right-hand side uses (formulaic's ``required_variables``; a simple
    right-hand side, also with an intercept written ``0 +`` or ``1 +`` as in a random term's
    ``(0 + delivered | group)``, is read without importing formulaic)."""
    summands = [s.strip() for s in rhs.split("+")]
    named = [s for s in summands if s not in ("0", "1")]
    if not named:
        return []
    terms = simple_terms(" + ".join(named))
    if terms is not None:
        return sorted({v for t in terms for v in t})
    return list(_required_variables(rhs))


@functools.lru_cache(maxsize=256)
def _required_variables(rhs: str) -> tuple[str, ...]:
    import formulaic

    try:
        f = formulaic.Formula(rhs)
    except Exception as exc:  # formulaic's parser errors are not one class
        raise ModelSpecificationError(f"cannot parse formula terms {rhs!r}: {exc}") from exc
    return tuple(sorted(str(v) for v in f.required_variables))


def build_fixed_design(
    formula: str,
    data: pd.DataFrame,
    *,
    extra_columns: list[str],
    reference: Mapping[str, str] | None = None,
    check_rank: bool = True,
) -> FixedDesign:
    """Validate the data against ``formula`` and build X and y.

    ``extra_columns`` (subject, visit, group, weights) must be present and non-missing on the
    rows that are used; they are carried along in ``FixedDesign.data``. With
    ``check_rank=False`` the caller must call :func:`check_rank_gram` itself (the MMRM does,
    from its pooled X'X).
    """
    outcome, rhs = _split_formula(_check_data_frame(data, formula))
    variables = _check_columns(data, outcome, rhs, extra_columns)
    reference = dict(reference or {})
    bad_ref = [k for k in reference if k not in variables]
    if bad_ref:
        raise ModelSpecificationError(
            f"reference= names {bad_ref}, which are not factors in the formula; "
            f"formula variables are {variables}"
        )
    keep = data[outcome].notna().to_numpy()
    if not keep.any():
        raise ModelSpecificationError(f"no rows with a non-missing outcome {outcome!r}")
    rows = np.flatnonzero(keep)
    work = data[list(dict.fromkeys([outcome, *variables, *extra_columns]))]
    work, natural, data_levels = _code_factors(work, variables, reference)
    used = work.iloc[rows]
    _refuse_missing(used, list(dict.fromkeys([*variables, *extra_columns])))
    coding = _used_factors(used, variables, reference, natural)
    used = coding.pop("used")
    X, columns, term_columns, spec, fast = _model_matrix(rhs, used, coding["factors"])
    _refuse_empty_terms(formula, term_columns, coding["factors"], natural)
    if check_rank:
        _check_rank(X, columns)
    return FixedDesign(
        formula=formula,
        outcome=outcome,
        X=X,
        y=used[outcome].to_numpy(dtype=float),
        columns=columns,
        term_columns=term_columns,
        model_spec=spec,
        data=used,
        rows=rows,
        variables=variables,
        n_dropped=int((~keep).sum()),
        reference=reference,
        data_levels=data_levels,
        fast=fast,
        **coding,
    )


def _check_data_frame(data, formula: str) -> str:
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    return formula


def refuse_unknown(names: Iterable[str], known, message: Callable[[list[str]], str]) -> None:
    """ModelSpecificationError(``message(unknown)``) when some of ``names`` are not in
    ``known`` (``unknown`` in the order of ``names``)."""
    unknown = [v for v in names if v not in known]
    if unknown:
        raise ModelSpecificationError(message(unknown))


def _check_columns(data: pd.DataFrame, outcome: str, rhs: str, extra: list[str]) -> list[str]:
    """The formula's variables; the outcome, variables and extra columns must exist."""
    if outcome not in data.columns:
        raise ModelSpecificationError(
            f"outcome {outcome!r} is not a column of data; columns are {list(data.columns)}"
        )
    variables = required_variables(rhs)
    refuse_unknown(
        [*variables, *extra], data.columns,
        lambda absent: f"column(s) {absent} not found in data; columns are {list(data.columns)}",
    )
    if not pd.api.types.is_numeric_dtype(data[outcome]):
        raise ModelSpecificationError(f"outcome {outcome!r} must be numeric")
    return variables


def _code_factors(work: pd.DataFrame, variables: list[str], reference: dict):
    """Categorical coding once, on the full column (levels of all rows, reference first);
    also each factor's levels in data order and the levels present on any row."""
    conv = {}
    natural: dict[str, list] = {}
    data_levels: dict[str, set] = {}
    for v in variables:
        col = work[v]
        if _is_categorical(col):
            cat = as_categorical(col, name=v)
            natural[v] = list(cat.cat.categories)
            codes = cat.cat.codes.to_numpy()
            seen = np.bincount(codes[codes >= 0], minlength=len(natural[v])) > 0
            data_levels[v] = {str(c) for c, k in zip(natural[v], seen) if k}
            new = as_categorical(cat, reference.get(v), name=v) if v in reference else cat
            if new is not col:  # already a Categorical in that order: nothing to assign
                conv[v] = new
    return (work.assign(**conv) if conv else work), natural, data_levels


def _refuse_missing(used: pd.DataFrame, check_cols: list[str]) -> None:
    """Missing covariates / ids: an error naming the rows, never a silent drop."""
    if not any(_has_missing(used[c]) for c in check_cols):
        return
    na = used[check_cols].isna()
    if na.to_numpy().any():
        bad = na.any(axis=1)
        detail = {c: used.index[na[c]].tolist()[:10] for c in check_cols if na[c].any()}
        raise ModelSpecificationError(
            f"{int(bad.sum())} row(s) with a non-missing outcome have missing values in model "
            f"columns (row labels by column, first 10 each): {detail}. Impute or remove them "
            "explicitly; peerstats does not drop them silently."
        )


def _has_missing(col: pd.Series) -> bool:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return bool(col.cat.codes.to_numpy().min(initial=0) < 0)
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fc":
        return bool(np.isnan(col.to_numpy()).any())
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
        return False
    return bool(col.isna().any())


def _used_factors(used: pd.DataFrame, variables: list[str], reference: dict, natural) -> dict:
    """Factors with the levels that have rows (unused levels dropped), numerics, and the rows."""
    factors: dict[str, list[str]] = {}
    factor_values: dict[str, list] = {}
    natural_order: dict[str, list] = {}
    numerics: list[str] = []
    conv = {}
    for v in variables:
        if v in natural or isinstance(used[v].dtype, pd.CategoricalDtype):
            # levels with no rows left cannot be estimated: drop them (the caller decides
            # whether a level that has rows but no observed outcome is an error)
            col = used[v]
            cat = _without_unused(col)
            if reference.get(v) is not None and reference[v] not in list(cat.cat.categories):
                raise ModelSpecificationError(
                    f"reference level {reference[v]!r} of {v!r} has no rows with an observed "
                    f"outcome; levels with data are {list(cat.cat.categories)}"
                )
            if cat is not col:
                conv[v] = cat
            factors[v] = [str(c) for c in cat.cat.categories]
            factor_values[v] = list(cat.cat.categories)
            present = set(factor_values[v])
            natural_order[v] = [c for c in natural[v] if c in present]
        elif v in reference:
            raise ModelSpecificationError(
                f"reference= is given for {v!r}, which is numeric; only factors have "
                "reference levels"
            )
        else:
            numerics.append(v)
    return {
        "used": used.assign(**conv) if conv else used,
        "factors": factors,
        "factor_values": factor_values,
        "natural_order": natural_order,
        "numerics": numerics,
    }


def _without_unused(col: pd.Series) -> pd.Series:
    """``col`` without its categories that have no rows (``col`` itself when all have rows)."""
    codes = col.cat.codes.to_numpy()
    k = len(col.cat.categories)
    if codes.size and np.bincount(codes[codes >= 0], minlength=k).all():
        return col
    return col.cat.remove_unused_categories()


def _formulaic_matrix(rhs: str, used: pd.DataFrame):
    import formulaic

    try:
        return formulaic.model_matrix(rhs, used, na_action="raise", output="numpy")
    except Exception as exc:
        raise ModelSpecificationError(f"cannot build the design of {rhs!r}: {exc}") from exc


def _model_matrix(rhs: str, used: pd.DataFrame, factors: dict):
    """X, column names, columns per term, formulaic's model spec (None when the fast layout
    built X: formulaic is then imported only if a spec is asked for) and the fast layout."""
    fast = fast_layout(rhs, used, factors)
    if fast is not None:
        X = fast.matrix(used)
        if X is not None:
            return X, list(fast.columns), dict(fast.term_columns), None, fast
    mm = _formulaic_matrix(rhs, used)
    spec = mm.model_spec
    # a factor written inside the formula (C(x), or a transform of a factor) would be treated as
    # numeric by marginal means and type III tests: refuse it rather than give wrong numbers
    inline = [str(f) for f in getattr(spec, "factor_contrasts", {}) if str(f) not in factors]
    if inline:
        raise ModelSpecificationError(
            f"{inline}: write factors as columns (a pandas Categorical, with reference= for the "
            "reference level), not C(...) inside the formula; marginal means and type III "
            "tests need to know them as factors"
        )
    X = np.ascontiguousarray(mm, dtype=float)
    columns = [str(c) for c in spec.column_names]
    term_columns = {str(t): list(ix) for t, ix in spec.term_indices.items()}
    return X, columns, term_columns, spec, None


def _refuse_empty_terms(formula: str, term_columns: dict, factors: dict, natural: dict) -> None:
    empty = [t for t, ix in term_columns.items() if not ix and t != "1"]
    if empty:  # e.g. every participant in one arm: 'arm' would silently leave the model
        single = {v: factors[v] for v in factors if len(factors[v]) < 2}
        why = (
            "; ".join(
                f"factor {v!r} has one level with an observed outcome ({lv}); levels without "
                f"one: {[str(c) for c in natural.get(v, []) if str(c) not in lv]}"
                for v, lv in single.items()
            )
            or "they contribute no columns to the design"
        )
        raise ModelSpecificationError(
            f"the term(s) {empty} of {formula!r} cannot be estimated: {why}. "
            "peerstats does not drop terms silently; check the data (e.g. every participant "
            "in one arm) or remove the term from the formula"
        )


def check_empty_levels(
    design: FixedDesign, data: pd.DataFrame | None = None, *, skip: tuple = ()
) -> None:
    """Refuse factor levels that have rows but no observed outcome (e.g. an all-missing arm):
    nothing can be estimated for them, and dropping them would silently change the analysis.
    ``data=None``: the data the design was built from (its levels were recorded then)."""
    for v in design.factors:
        if v in skip:
            continue
        if data is None:
            present = design.data_levels[v]
        else:
            present = set(map(str, data[v].dropna().unique()))
        empty = sorted(present - set(design.factors[v]))
        if empty:
            raise ModelSpecificationError(
                f"level(s) {empty} of {v!r} have rows but no observed outcome "
                f"{design.outcome!r}; nothing can be estimated for them. Remove those rows "
                "or the level from the analysis."
            )


def _check_rank(X: np.ndarray, columns: list[str]) -> None:
    """Refuse a rank-deficient X, naming the aliased columns and what they are aliased with."""
    check_rank_gram(X.T @ X, columns, X.shape[0])


def check_rank_gram(G: np.ndarray, columns: list[str], n: int) -> None:
    """Rank check from the Gram matrix X'X (p x p), so the cost does not grow with n."""
    from scipy.linalg import qr

    p = G.shape[0]
    if p == 0:
        raise ModelSpecificationError("the model has no fixed-effect columns")
    if n < p:
        raise ModelSpecificationError(
            f"{p} fixed-effect columns but only {n} observations: the model cannot be estimated"
        )
    diag = np.diag(G).copy()
    zero = [columns[j] for j in range(p) if diag[j] <= 0]
    if zero:
        raise ModelSpecificationError(
            f"fixed-effect column(s) {zero} are all zero in the rows used (a level or "
            "combination with no observed outcome); drop the level or simplify the model"
        )
    scale = np.sqrt(diag)
    Gs = G / np.outer(scale, scale)
    _, R, piv = qr(Gs, pivoting=True)
    d = np.abs(np.diag(R))
    rank = int((d > d[0] * 1e-10).sum())
    if rank < p:
        aliased = [columns[j] for j in piv[rank:]]
        basis = piv[:rank]
        detail = []
        for j in piv[rank:]:
            # least squares of column j on the basis columns, from the Gram matrix
            coef = np.linalg.lstsq(Gs[np.ix_(basis, basis)], Gs[basis, j], rcond=None)[0]
            with_ = [columns[basis[k]] for k in np.flatnonzero(np.abs(coef) > 1e-6)]
            detail.append(f"{columns[j]!r} = combination of {with_}")
        raise ModelSpecificationError(
            f"the fixed-effect design is rank deficient (rank {rank} < {p} columns); aliased "
            f"column(s) {aliased}: " + "; ".join(detail) + ". SAS would set these to zero; "
            "peerstats refuses: remove collinear covariates or empty factor combinations."
        )


def choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` lower-cased if it is one of ``choices``, else a ModelSpecificationError."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ModelSpecificationError(
            f"{name}={value!r} is not valid; choose one of {list(choices)}"
        )
    return value.lower()


def _as_levels(col: pd.Series, values: list) -> tuple[pd.Categorical, np.ndarray]:
    """``col`` as a Categorical over the fit's levels ``values`` and a mask of known values.

    Values stored under another type than the fit's levels (1 vs "1") are matched on their text.
    """
    known = col.isin(values).to_numpy()
    if not known.all():
        text = {str(x): x for x in values}
        col = col.map(lambda x: text.get(str(x), x) if pd.notna(x) else x)
        known = col.isin(values).to_numpy()
    cat = pd.Categorical(col.astype(object).where(known).to_numpy(), categories=values)
    return cat, known
