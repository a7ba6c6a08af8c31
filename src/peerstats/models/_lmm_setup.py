"""``peerstats.lmm``, first steps: check the options, build the fixed and random designs and the
residual layout (levels of ``residual_by``, the structure across visits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._covariance import STRUCTURES, GroupedCovariance, make_structure
from peerstats.models._ddf import DF_METHODS
from peerstats.models._design import (
    as_categorical,
    build_fixed_design,
    check_empty_levels,
)
from peerstats.models._random import (
    RandomTerm,
    build_random_design,
    random_term_columns,
    random_term_data,
    split_formula,
)
from peerstats.models._sandwich import check_vcov

__all__ = ["LMMOptions", "LMMData", "check_options", "prepare"]

_KR_LINEAR = ("iid", "us", "cs", "toep")


@dataclass
class LMMOptions:
    """The checked options of one ``peerstats.lmm`` call."""

    residual: str
    residual_by: str | None
    subject: str | None
    visit: str | None
    method: str
    df: str
    reference: Any
    kr_information: str
    vcov: str


@dataclass
class LMMData:
    """Everything the fit needs from the data."""

    data: pd.DataFrame  # the caller's frame (visit as a factor with a residual structure)
    design: Any  # the fixed-effects design (peerstats.models._design)
    terms: list[RandomTerm]
    rdesigns: list
    res_levels: list[str]
    res_code: np.ndarray
    structure: Any = None
    subj_codes: np.ndarray | None = None
    vpos: np.ndarray | None = None
    visit_levels: list = field(default_factory=list)

    @property
    def used(self) -> pd.DataFrame:
        return self.design.data

    @property
    def n_obs(self) -> int:
        return len(self.design.data)

    @property
    def p(self) -> int:
        return self.design.X.shape[1]


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ModelSpecificationError(
            f"{name}={value!r} is not valid; choose one of {list(choices)}"
        )
    return value.lower()


def check_options(formula, data, **kw) -> tuple[LMMOptions, str, list[RandomTerm]]:
    """Validate the arguments of ``peerstats.lmm``; returns the options and the split formula."""
    opt = LMMOptions(
        residual=_choice("residual", kw["residual"], ("iid", *STRUCTURES)),
        residual_by=kw["residual_by"],
        subject=kw["subject"],
        visit=kw["visit"],
        method=_choice("method", kw["method"], ("reml", "ml")),
        df=_choice("df", kw["df"], DF_METHODS),
        reference=kw["reference"],
        kr_information=_choice("kr_information", kw["kr_information"], ("observed", "expected")),
        vcov="model",
    )
    opt.vcov = check_vcov(kw["vcov"], opt.df)
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not isinstance(formula, str):
        raise ModelSpecificationError(f"formula must be a string, not {type(formula).__name__}")
    fixed, terms = split_formula(formula)
    if not terms:
        raise ModelSpecificationError(
            f"formula {formula!r} has no random term such as (1 | id); use peerstats.mmrm for "
            "a model with only a residual covariance"
        )
    _check_combinations(opt, data)
    return opt, fixed, terms


def _check_combinations(opt: LMMOptions, data: pd.DataFrame) -> None:
    if opt.residual != "iid" and (opt.subject is None or opt.visit is None):
        raise ModelSpecificationError(
            f"residual={opt.residual!r} needs subject= and visit= (the structure is across "
            "visits within subject)"
        )
    if opt.df == "kenward-roger" and opt.residual not in _KR_LINEAR:
        raise ModelSpecificationError(
            f"df='kenward-roger' with residual={opt.residual!r} is not available (only with "
            f"residual in {list(_KR_LINEAR)}, whose covariance is linear in its parameters); "
            "use df='satterthwaite'"
        )
    for name in ("residual_by", "subject", "visit"):
        col = getattr(opt, name)
        if col is not None and (not isinstance(col, str) or col not in data.columns):
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )


def prepare(data: pd.DataFrame, opt: LMMOptions, fixed: str, terms) -> LMMData:
    """Fixed design, random designs and the residual layout of the rows used."""
    lhs_vars, group_cols = random_term_columns(terms, data)
    extra = list(
        dict.fromkeys(
            [*lhs_vars, *[c for c in (opt.residual_by, opt.subject, opt.visit) if c is not None]]
        )
    )
    if opt.residual != "iid" and not isinstance(data[opt.visit].dtype, pd.CategoricalDtype):
        # as in mmrm (SAS CLASS): the visit is a factor, also when stored as numbers
        data = data.assign(**{opt.visit: as_categorical(data[opt.visit], name=opt.visit)})
    design = build_fixed_design(fixed, data, extra_columns=extra, reference=opt.reference)
    check_empty_levels(design, data)
    n_obs, p = design.X.shape
    if n_obs - p <= 0:
        raise ModelSpecificationError(
            f"{n_obs} observations for {p} fixed effects: no residual degrees of freedom"
        )
    rdesigns = _random_designs(data, design, terms, [*group_cols, *lhs_vars])
    res_levels, res_code = _residual_levels(data, design.data, opt.residual_by)
    out = LMMData(data, design, terms, rdesigns, res_levels, res_code)
    if opt.residual != "iid":
        _residual_structure(out, opt)
    return out


def _random_designs(data, design, terms, columns) -> list:
    """The random-effect design of each term on the rows used."""
    rows = getattr(design, "rows", None)
    if rows is None:  # pragma: no cover - designs carry their row positions
        rows = data.index.get_indexer(design.data.index)
    rdata = random_term_data(data, rows, columns)
    rdesigns = [build_random_design(rdata, t) for t in terms]
    for t, rd in zip(terms, rdesigns):
        if rd.n_levels == 0:
            raise ModelSpecificationError(f"random term {t} has no level with data")
    return rdesigns


def _residual_levels(data, used, residual_by) -> tuple[list[str], np.ndarray]:
    """Levels of ``residual_by`` and the level of each row used (one level without it)."""
    if residual_by is None:
        return [""], np.zeros(len(used), dtype=np.int64)
    res_levels = [str(v) for v in as_categorical(data[residual_by]).cat.categories]
    res_code = pd.Categorical(used[residual_by].astype(str), categories=res_levels).codes
    res_code = np.asarray(res_code, dtype=np.int64)
    cnt = np.bincount(res_code, minlength=len(res_levels))
    thin = [res_levels[i] for i in range(len(res_levels)) if cnt[i] < 2]
    if thin:
        raise ModelSpecificationError(
            f"residual_by={residual_by!r}: level(s) {thin} have fewer than two observations; "
            "their residual variance cannot be estimated"
        )
    return res_levels, res_code


def _residual_structure(d: LMMData, opt: LMMOptions) -> None:
    """Visit positions, subject codes and the grouped structure of a residual across visits."""
    data, used, visit, subject = d.data, d.used, opt.visit, opt.subject
    if isinstance(data[visit].dtype, pd.CategoricalDtype):
        d.visit_levels = list(data[visit].cat.categories)
    else:  # pragma: no cover - prepare() made it a factor
        d.visit_levels = list(as_categorical(data[visit]).cat.categories)
    d.vpos = pd.Categorical(used[visit], categories=d.visit_levels).codes.astype(np.int64)
    subj, _ = pd.factorize(used[subject], sort=False)
    d.subj_codes = subj.astype(np.int64)
    T = len(d.visit_levels)
    dup = pd.Series(d.subj_codes * T + d.vpos).duplicated()
    if dup.any():
        rows = used.index[dup.to_numpy()].tolist()[:10]
        raise ModelSpecificationError(
            f"{int(dup.sum())} row(s) repeat a {subject!r} x {visit!r} combination (first "
            f"rows: {rows}); each subject can have one row per visit"
        )
    if opt.residual_by is not None:
        per = pd.Series(d.res_code).groupby(d.subj_codes).nunique()
        if (per > 1).any():
            raise ModelSpecificationError(
                f"residual_by={opt.residual_by!r} must be constant within subject when "
                f"residual={opt.residual!r}"
            )
    d.structure = GroupedCovariance(make_structure(opt.residual, T), tuple(d.res_levels))
