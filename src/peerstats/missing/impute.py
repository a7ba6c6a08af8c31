"""Multiple imputation for trials: ``peerstats.impute`` and the :class:`Imputations` it returns.

The steps follow rbmi (Gower-Page et al. 2022): parameter *draws* from the imputation model
(an MMRM fitted to the outcomes that are missing at random), *impute* (each subject's
intercurrent-event strategy applied to those draws), *analyse* (an ANCOVA per visit, or any
user analysis, on each completed set, with an optional delta) and *pool* (the rule that fits
the method). One set of draws and imputations serves every delta of a tipping-point grid.
"""

from __future__ import annotations

import html
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import ConvergenceError, DataWarning, ModelSpecificationError
from peerstats.missing._analysis import ancova_design, ancova_many, pool_by_method
from peerstats.missing.pool import POOL_COLUMNS
from peerstats.missing.strategies import (
    STRATEGIES,
    compute_sigma,
    conditional_impute,
    strategy_means,
)

__all__ = ["impute", "Imputations", "METHODS"]

METHODS = ("bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml")
MethodName = Literal[
    "bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml"
]
_DEFAULT_M = {"bayes": 100, "approx-bayes": 100, "condmean-bootstrap": 200, "bootstrap-ml": 100}
_BMLMI_D = 2
CONTRAST_COLUMNS = [
    "contrast",
    "estimate",
    "std_error",
    "df",
    "statistic",
    "p_value",
    "ci_lower",
    "ci_upper",
]


def _prepare(formula, data, **kw):
    """The engine's prepared MMRM (one design, cheap refits)."""
    from peerstats.models.prepared import prepare_mmrm

    return prepare_mmrm(formula, data, **kw)


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [c for c in series.cat.categories if (series == c).any()]
    vals = list(pd.unique(series.dropna()))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


# ------------------------------------------------------------------------------------------
# input checks (all before any fitting)
# ------------------------------------------------------------------------------------------
def _check_columns(data, **cols):
    for name, col in cols.items():
        if col is None:
            continue
        if not isinstance(col, str):
            raise ModelSpecificationError(f"{name} must be a column name (str), not {col!r}")
        if col not in data.columns:
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )


def _n_draws(method: str, n_imputations) -> tuple[int | None, int | None]:
    """(number of parameter draws / resamples, D for bootstrap-ml)."""
    if method == "condmean-jackknife":
        if n_imputations is not None:
            raise ModelSpecificationError(
                "n_imputations must be None for method='condmean-jackknife' (one leave-one-out "
                f"refit per subject); got {n_imputations!r}"
            )
        return None, None
    if method == "bootstrap-ml":
        if n_imputations is None:
            return _DEFAULT_M[method], _BMLMI_D
        if isinstance(n_imputations, tuple | list) and len(n_imputations) == 2:
            B, D = n_imputations
        else:
            B, D = n_imputations, _BMLMI_D
        for nm, v, lo in (("bootstrap samples B", B, 2), ("imputations per sample D", D, 2)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
                raise ModelSpecificationError(
                    f"n_imputations for 'bootstrap-ml' is B or (B, D); {nm}={v!r} must be an "
                    f"integer >= {lo}"
                )
        return int(B), int(D)
    m = _DEFAULT_M[method] if n_imputations is None else n_imputations
    if isinstance(m, bool) or not isinstance(m, int | np.integer):
        raise ModelSpecificationError(f"n_imputations must be an integer; got {n_imputations!r}")
    if m < 2:
        what = "Rubin's rules" if method in ("bayes", "approx-bayes") else "a bootstrap"
        raise ModelSpecificationError(
            f"n_imputations={m} is too small: {what} need(s) at least 2 (method={method!r})"
        )
    return int(m), None


def _seed_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        return np.random.SeedSequence(seed)
    raise ModelSpecificationError(
        f"seed must be None, an int or a numpy SeedSequence; got {seed!r}"
    )


def _parse_reference(reference, arm_levels: list[str], arm: str, needed: bool) -> dict[str, str]:
    if reference is None:
        if needed:
            raise ModelSpecificationError(
                "ice uses a reference-based strategy (JR, CR, CIR) but reference= is not given; "
                f"map each arm to its reference arm, e.g. reference={{'{arm_levels[-1]}': "
                f"'{arm_levels[0]}'}} (arms of {arm!r}: {arm_levels})"
            )
        return {a: a for a in arm_levels}
    if isinstance(reference, str):
        reference = {a: reference for a in arm_levels}
    if not isinstance(reference, Mapping):
        raise ModelSpecificationError(
            f"reference must map each arm to its reference arm (dict) or name one arm; got "
            f"{reference!r}"
        )
    out = {a: a for a in arm_levels}
    for k, v in reference.items():
        if str(k) not in arm_levels:
            raise ModelSpecificationError(
                f"reference names arm {k!r}, which is not a level of {arm!r}; arms are {arm_levels}"
            )
        if str(v) not in arm_levels:
            raise ModelSpecificationError(
                f"reference arm {v!r} (for arm {k!r}) does not exist; arms of {arm!r} are "
                f"{arm_levels}"
            )
        out[str(k)] = str(v)
    return out


def _parse_ice(ice, subjects: pd.Index, visit_levels: list, subject: str, visit: str, arm_of):
    n, T = len(subjects), len(visit_levels)
    k = np.full(n, T, dtype=np.int64)
    strat = np.array(["MAR"] * n, dtype=object)
    if ice is None:
        return k, strat
    if not isinstance(ice, pd.DataFrame):
        raise ModelSpecificationError(
            f"ice must be a DataFrame with columns {subject!r}, {visit!r} and 'strategy'; got "
            f"{type(ice).__name__}"
        )
    need = [subject, visit, "strategy"]
    miss = [c for c in need if c not in ice.columns]
    if miss:
        raise ModelSpecificationError(
            f"ice is missing column(s) {miss}; it needs {need} (the subject and visit columns "
            "named as in data)"
        )
    subj_txt = subjects.astype(str)
    pos = pd.Index(subj_txt).get_indexer(ice[subject].astype(str))
    if (pos < 0).any():
        bad = ice[subject][pos < 0].tolist()[:10]
        raise ModelSpecificationError(
            f"ice names subject(s) {bad} that are not in data[{subject!r}]"
        )
    dup = ice[subject].astype(str).duplicated()
    if dup.any():
        raise ModelSpecificationError(
            f"ice has more than one row for subject(s) {ice[subject][dup].tolist()[:10]}; give "
            "each subject's first intercurrent event once"
        )
    st = ice["strategy"].astype(str).str.upper()
    badst = sorted(set(st) - set(STRATEGIES))
    if badst:
        raise ModelSpecificationError(
            f"ice strategy {badst} is not known; strategies are {list(STRATEGIES)}"
        )
    if arm_of is not None and arm_of[1] in ice.columns:  # optional arm column: must agree
        col, arm_levels, codes = arm_of[1], arm_of[2], arm_of[0]
        given = ice[col].astype(str)
        unknown = sorted(set(given) - set(arm_levels))
        if unknown:
            raise ModelSpecificationError(
                f"ice names arm(s) {unknown}, which are not arms; arms of {col!r} are {arm_levels}"
            )
        wrong = given.to_numpy() != np.array(arm_levels, dtype=object)[codes[pos]]
        if wrong.any():
            raise ModelSpecificationError(
                f"ice gives subject(s) {ice[subject][wrong].tolist()[:5]} an arm that differs "
                f"from their arm in data"
            )
    vtxt = [str(v) for v in visit_levels]
    for i, (p, v, s) in enumerate(zip(pos, ice[visit], st)):
        if pd.isna(v):
            raise ModelSpecificationError(
                f"ice visit is missing for subject {ice[subject].iloc[i]!r}; visits are {vtxt}"
            )
        num_levels = pd.to_numeric(pd.Series(visit_levels), errors="coerce")
        if str(v) in vtxt:
            j = vtxt.index(str(v))
        elif (
            isinstance(v, int | float | np.number)
            and num_levels.notna().all()
            and (num_levels == v).any()
        ):
            j = int(np.flatnonzero(num_levels.to_numpy() == v)[0])
        else:
            num = pd.to_numeric(pd.Series(visit_levels), errors="coerce")
            if num.notna().all() and isinstance(v, int | float | np.number) and v < num.min():
                raise ModelSpecificationError(
                    f"ice visit {v!r} of subject {ice[subject].iloc[i]!r} is before the first "
                    f"visit {vtxt[0]}; an ICE is given as the first visit it affects, "
                    f"one of {vtxt}"
                )
            raise ModelSpecificationError(
                f"ice visit {v!r} (subject {ice[subject].iloc[i]!r}) is not a visit; visits "
                f"are {vtxt}"
            )
        if s == "LMCF" and j == 0:
            raise ModelSpecificationError(
                f"LMCF for subject {ice[subject].iloc[i]!r} with an ICE at the first visit "
                f"{vtxt[0]!r}: last mean carried forward needs at least one visit before the "
                "ICE; use JR, CR or CIR"
            )
        k[p] = j if s != "MAR" else T
        strat[p] = s
    return k, strat


def _parse_delta(
    delta, subjects, visit_levels, arm_levels, arm_of, subject, visit, arm, target
) -> np.ndarray:
    """(n, T) additive shifts for the imputed cells."""
    n, T = len(subjects), len(visit_levels)
    out = np.zeros((n, T))
    if delta is None:
        return out
    vtxt = [str(v) for v in visit_levels]
    if isinstance(delta, Mapping):  # {arm: value} or {arm: {visit: value}}
        rows = []
        for a, v in delta.items():
            if isinstance(v, Mapping):
                rows += [{arm: a, visit: vv, "delta": d} for vv, d in v.items()]
            else:
                rows += [{arm: a, visit: vv, "delta": v} for vv in visit_levels]
        delta = pd.DataFrame(rows)
    if not isinstance(delta, pd.DataFrame):
        raise ModelSpecificationError(
            "delta must be a DataFrame (columns subject, visit, delta; or arm, visit, delta) or "
            f"a mapping {{arm: value}} / {{arm: {{visit: value}}}}; got {type(delta).__name__}"
        )
    if "delta" not in delta.columns or visit not in delta.columns:
        raise ModelSpecificationError(
            f"delta needs the columns {visit!r} and 'delta', plus {subject!r} (per subject) or "
            f"{arm!r} (per arm); it has {list(delta.columns)}"
        )
    d = pd.to_numeric(delta["delta"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(d)):
        bad = delta["delta"][~np.isfinite(d)].tolist()[:5]
        raise ModelSpecificationError(f"delta values must be finite numbers; got {bad}")
    vpos = pd.Index(vtxt).get_indexer(delta[visit].astype(str))
    if (vpos < 0).any():
        raise ModelSpecificationError(
            f"delta names visit(s) {sorted(set(delta[visit][vpos < 0].astype(str)))}; visits "
            f"are {vtxt}"
        )
    if subject in delta.columns:
        spos = pd.Index(subjects.astype(str)).get_indexer(delta[subject].astype(str))
        if (spos < 0).any():
            raise ModelSpecificationError(
                f"delta names subject(s) {delta[subject][spos < 0].tolist()[:10]} that are not "
                f"in data[{subject!r}]"
            )
        if pd.Series(list(zip(spos, vpos))).duplicated().any():
            raise ModelSpecificationError("delta repeats a subject x visit combination")
        on_obs = (~target[spos, vpos]) & (d != 0)
        if on_obs.any():
            raise ModelSpecificationError(
                f"delta is non-zero for {int(on_obs.sum())} observed value(s) (first subject "
                f"{delta[subject].iloc[np.flatnonzero(on_obs)[0]]!r}); delta shifts imputed "
                "values only"
            )
        out[spos, vpos] = d
    elif arm in delta.columns:
        apos = pd.Index(arm_levels).get_indexer(delta[arm].astype(str))
        if (apos < 0).any():
            raise ModelSpecificationError(
                f"delta names arm(s) {sorted(set(delta[arm][apos < 0].astype(str)))}; arms are "
                f"{arm_levels}"
            )
        if pd.Series(list(zip(apos, vpos))).duplicated().any():
            raise ModelSpecificationError("delta repeats an arm x visit combination")
        table = np.zeros((len(arm_levels), T))
        table[apos, vpos] = d
        out = table[arm_of]
    else:
        raise ModelSpecificationError(
            f"delta needs a {subject!r} column (per subject) or an {arm!r} column (per arm)"
        )
    return np.where(target, out, 0.0)


# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False, eq=False)
class Imputations:
    """Completed datasets from :func:`peerstats.impute` (or :meth:`from_datasets`).

    Attributes are read-only. ``datasets`` builds completed DataFrames lazily; ``analyse``
    fits the per-visit ANCOVA (or a user analysis) on each and pools them by the method's rule.
    """

    method: str
    outcome: str
    subject: str
    visit: str
    arm: str
    subjects: pd.Index
    visits: tuple
    arm_levels: tuple
    frame: pd.DataFrame  # one row per subject x visit (subject-major), every column of data
    y: np.ndarray  # (n, T) outcomes kept (NaN: missing or set aside)
    target: np.ndarray  # (n, T) cells imputed
    missing: np.ndarray  # (n, T) originally missing
    set_aside: np.ndarray  # (n, T) observed after a non-MAR ICE, set aside and imputed
    values: np.ndarray  # (S, n_target) imputed values per completed set (per row, see rows)
    weights: np.ndarray | None  # (S, n) subject frequency weights (jackknife / bootstrap), or
    # (S, R) 0/1 row indicators when ``rows`` is given
    arm_of: np.ndarray  # (n,) arm code per subject
    ice_visit: np.ndarray  # (n,) first non-MAR visit index (T: none)
    strategy: np.ndarray  # (n,) strategy per subject
    delta: np.ndarray  # (n, T) delta applied to imputed cells
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

    def __getstate__(self) -> dict:  # a Client does not pickle: drop it
        state = dict(self.__dict__)
        state["client"] = None
        return state

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
        first dataset) marks the imputed cells (for counts and delta); default: none."""
        if len(datasets) < 2:
            raise ModelSpecificationError("from_datasets needs at least 2 completed datasets")
        base = datasets[0]
        _check_columns(base, outcome=outcome, subject=subject, visit=visit, arm=arm)
        subjects = pd.Index(pd.unique(base[subject]))
        vlev = _levels(base[visit])
        alev = [str(a) for a in _levels(base[arm])]
        T = len(vlev)
        si = subjects.get_indexer(base[subject])
        vi = pd.Index([str(v) for v in vlev]).get_indexer(base[visit].astype(str))
        n = len(subjects)
        if len(base) != n * T:
            raise ModelSpecificationError(
                "from_datasets needs one row per subject and visit in each dataset"
            )
        order = np.lexsort((vi, si))
        frame = base.iloc[order].reset_index(drop=True)
        Ys = []
        for d in datasets:
            if len(d) != len(base):
                raise ModelSpecificationError("completed datasets differ in their number of rows")
            Ys.append(d[outcome].to_numpy(dtype=float)[order].reshape(n, T))
        Ys = np.stack(Ys)
        miss = (
            np.zeros((n, T), dtype=bool)
            if missing is None
            else np.asarray(missing, dtype=bool)[order].reshape(n, T)
        )
        y = np.where(miss, np.nan, Ys[0])
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
            y=y,
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
        """Per visit: est (S, k), var (S, k), dfc (S,), and LS means est/var (S, A)."""
        covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
        bad = [c for c in covariates if c not in self.frame.columns]
        if bad:
            raise ModelSpecificationError(
                f"covariate(s) {bad} are not columns of data; columns are "
                f"{list(self.frame.columns)}"
            )
        if self.outcome in covariates or self.arm in covariates:
            raise ModelSpecificationError(
                "covariates must not include the outcome or the arm (the ANCOVA is outcome ~ "
                "arm + covariates)"
            )
        ref = self.arm_levels[0] if reference is None else str(reference)
        if ref not in self.arm_levels:
            raise ModelSpecificationError(
                f"reference={reference!r} is not an arm; arms are {list(self.arm_levels)}"
            )
        T = len(self.visits)
        js = range(T) if visits is None else [self._visit_index(v) for v in visits]
        out = {}
        for j in js:
            fr, Y, _ = self._visit_outcomes(j, delta)
            X, names, others = ancova_design(fr, self.arm, self.arm_levels, ref, covariates)
            beta, cov, dfr, xbar = ancova_many(X, Y, self.weights, len(others))
            k = len(others)
            est = beta[:, 1 : 1 + k]
            var = np.stack([cov[:, 1 + a, 1 + a] for a in range(k)], axis=1)
            # LS means: arm columns set, covariates at their (weighted) mean
            A = len(self.arm_levels)
            L = np.repeat(xbar[:, None, :], A, axis=1).copy()  # (S, A, q)
            L[:, :, 0] = 1.0
            L[:, :, 1 : 1 + k] = 0.0
            for a, lev in enumerate(self.arm_levels):
                if lev != ref:
                    L[:, a, 1 + others.index(lev)] = 1.0
            lm = np.einsum("saq,sq->sa", L, beta)
            lv = np.einsum("saq,sqr,sar->sa", L, cov, L)
            out[j] = (est, var, dfr, lm, lv, others, ref)
        return out

    @property
    def _target_pos(self) -> np.ndarray:
        """(R, T) column of each imputed cell in ``values`` (-1: not imputed)."""
        target = self._by_row(self.target)
        pos = np.full(target.shape, -1, dtype=np.int64)
        pos[target] = np.arange(int(target.sum()))
        return pos

    def _pool(self, est, var, dfr, level, bootstrap):
        dfc = dfr[0] if self.method in ("bayes", "approx-bayes") else None
        if dfc is not None and not np.allclose(dfr, dfc):  # pragma: no cover - same design
            dfc = float(np.mean(dfr))
        return pool_by_method(
            self.method, est, var, dfc, level=level, D=self.D, bootstrap=bootstrap
        )

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
    ) -> pd.DataFrame:
        """Analyse every completed set and pool by the method's rule.

        Without ``fn``: the ANCOVA ``outcome ~ arm + covariates`` at each visit (``by`` must be
        the visit column, the default). Returns one row per visit and contrast with the columns
        of ``fit.contrasts()`` (``<visit>, contrast, estimate, std_error, df, statistic,
        p_value, ci_lower, ci_upper``), then ``fraction_missing_info`` (Rubin methods; NaN
        otherwise) and one ``lsmean_<arm>`` column per arm (pooled LS means; their SEs and CIs:
        :meth:`lsmeans`).

        With ``fn(data) -> (estimates, variances)`` (scalars, arrays, or Series indexed by
        term; or a DataFrame with ``estimate`` and ``std_error`` columns): one row per term,
        ``term`` then the pooled columns. ``df_complete`` sets the complete-data df for Rubin.

        Pooling: Rubin's rules with Barnard-Rubin df (bayes, approx-bayes); the jackknife
        (condmean-jackknife) or bootstrap (condmean-bootstrap; ``bootstrap="percentile"``, as
        rbmi, or ``"normal"``) with the full-data estimate; von Hippel & Bartlett (bootstrap-ml).
        """
        if not 0 < level < 1:
            raise ModelSpecificationError(f"level must be in (0, 1); got {level!r}")
        if bootstrap not in ("percentile", "normal"):
            raise ModelSpecificationError(
                f"bootstrap={bootstrap!r} is not valid; choose 'percentile' or 'normal'"
            )
        if fn is not None:
            return self._analyse_fn(fn, level, bootstrap, df_complete)
        if by is not None and by != self.visit:
            raise ModelSpecificationError(
                f"by={by!r}: the per-visit ANCOVA is by the visit column {self.visit!r}"
            )
        res = self._ancova_arrays(covariates, reference)
        rows = []
        for j, (est, var, dfr, lm, lv, others, ref) in res.items():
            pooled = self._pool(est, var, dfr, level, bootstrap)
            lsm = self._pool(lm, lv, dfr, level, bootstrap)["estimate"]
            for a, lev in enumerate(others):
                row = {self.visit: self.visits[j], "contrast": f"{lev} - {ref}"}
                row.update({c: float(np.asarray(pooled[c])[a]) for c in POOL_COLUMNS})
                for b, name in enumerate(self.arm_levels):
                    row[f"lsmean_{name}"] = float(lsm[b])
                rows.append(row)
        out = pd.DataFrame(rows)
        out[self.visit] = pd.Categorical(out[self.visit], categories=list(self.visits))
        return out

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
        res = self._ancova_arrays(covariates, None)
        rows = []
        for j, (_, _, dfr, lm, lv, _, _) in res.items():
            pooled = self._pool(lm, lv, dfr, level, bootstrap)
            for a, lev in enumerate(self.arm_levels):
                row = {self.visit: self.visits[j], self.arm: lev}
                row.update({c: float(np.asarray(pooled[c])[a]) for c in POOL_COLUMNS})
                rows.append(row)
        return pd.DataFrame(rows)

    def _analyse_fn(self, fn, level, bootstrap, df_complete) -> pd.DataFrame:
        ests, vars_, names = [], [], None
        failed = []
        for i, d in enumerate(self.datasets):
            try:
                r = fn(d)
            except Exception as exc:
                failed.append((i, exc))
                continue
            if isinstance(r, pd.DataFrame):
                e = r["estimate"]
                v = r["std_error"] ** 2 if "std_error" in r else r["variance"]
                names = (
                    [str(x) for x in r.index] if "term" not in r else r["term"].astype(str).tolist()
                )
                e, v = e.to_numpy(dtype=float), np.asarray(v, dtype=float)
            else:
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise ModelSpecificationError(
                        "fn must return (estimates, variances) or a DataFrame with 'estimate' "
                        f"and 'std_error' columns; got {type(r).__name__}"
                    )
                e, v = r
                if isinstance(e, pd.Series):
                    names = [str(x) for x in e.index]
                e = np.atleast_1d(np.asarray(e, dtype=float))
                v = np.atleast_1d(np.asarray(v, dtype=float))
            ests.append(e)
            vars_.append(v)
        if failed:
            i, exc = failed[0]
            raise ModelSpecificationError(
                f"the analysis failed on {len(failed)} of {self.n_imputations} completed "
                f"datasets (first: set {i}: {exc!r}); peerstats does not pool over fewer sets"
            )
        E, V = np.stack(ests), np.stack(vars_)
        if self.method in ("bayes", "approx-bayes"):
            from peerstats.missing.pool import pool_arrays

            pooled = pool_arrays(E, V, df_complete, level=level)
        else:
            pooled = pool_by_method(
                self.method, E, V, None, level=level, D=self.D, bootstrap=bootstrap
            )
        out = pd.DataFrame({c: np.atleast_1d(pooled[c]) for c in POOL_COLUMNS})
        out.insert(0, "term", names if names is not None else [str(j) for j in range(E.shape[1])])
        return out

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


# ------------------------------------------------------------------------------------------
def impute(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    method: MethodName,
    n_imputations: int | tuple[int, int] | None = None,
    ice: pd.DataFrame | None = None,
    reference: Mapping[str, str] | str | None = None,
    delta: pd.DataFrame | Mapping | None = None,
    seed: int | np.random.SeedSequence | None = None,
    covariance: str = "us",
    group: str | None = None,
    client: Any = None,
    post_ice: Literal["keep", "impute", "error"] = "impute",
    prior: Literal["jeffreys", "rbmi"] = "jeffreys",
) -> Imputations:
    """Multiple imputation of a trial's missing outcomes, with reference-based strategies.

    Parameters
    ----------
    formula : str
        The imputation model, an MMRM mean such as ``"qpr15 ~ arm * visit + qpr15_baseline"``.
        It must contain ``arm``.
    data : DataFrame
        Long data, one row per subject and visit (absent rows are added; subject-level columns
        are copied into them).
    subject, visit, arm : str
        Columns. Visit order is the Categorical order, else sorted; the first arm level (same
        rule) is the reference of the analysis contrasts.
    method : {"bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml"}
        ``bayes``: posterior draws of beta and Sigma by data-augmentation Gibbs sampling of the
        unstructured MMRM (flat prior on beta; prior on Sigma from ``prior``; see
        ``peerstats.missing._bayes``), one imputation per draw. ``approx-bayes``: one bootstrap
        sample of subjects (stratified by arm) per imputation, REML refit (Little & Rubin 2002).
        ``condmean-jackknife`` / ``condmean-bootstrap``: conditional mean imputation (Wolbers et
        al. 2022), deterministic, with leave-one-subject-out / bootstrap refits for the standard
        error. ``bootstrap-ml``: von Hippel & Bartlett (2021), B bootstrap samples x D random
        imputations.
    n_imputations : int or (B, D), optional
        Completed datasets (bayes, approx-bayes; default 100, at least 2), bootstrap samples
        (condmean-bootstrap, default 200), (B, D) or B with D = 2 (bootstrap-ml, default
        B = 100). Must be None for condmean-jackknife.
    ice : DataFrame, optional
        Columns ``subject`` and ``visit`` (named as in data) and ``strategy`` (MAR, JR, CR, CIR,
        LMCF): the first visit each subject's intercurrent event affects. What happens to
        outcomes observed at or after that visit under a non-MAR strategy is ``post_ice``.
    reference : mapping or str, optional
        Reference arm of each arm, e.g. ``{"peer": "usual"}``; needed for JR, CR and CIR.
    delta : DataFrame or mapping, optional
        Added to imputed values after imputation: a DataFrame (subject, visit, delta) or (arm,
        visit, delta), or ``{arm: value}`` / ``{arm: {visit: value}}``.
    seed : int or SeedSequence, optional
        Every random stream derives from ``numpy.random.SeedSequence(seed)``.
    covariance : str
        Covariance of the imputation MMRM (``"us"`` for bayes; any mmrm structure otherwise).
    group : str, optional
        A separate covariance per level (usually the arm), as ``mmrm(group=)``.
    post_ice : {"impute", "keep", "error"}
        The estimand's handling of outcomes observed at or after a non-MAR intercurrent event.
        ``"impute"`` (default; a hypothetical strategy): they are set aside and imputed under
        the strategy (counted in ``n_imputed`` as ``n_set_aside`` and warned about).
        ``"keep"`` (a treatment-policy strategy: outcomes after the event are data): they are
        analysed as observed, and the strategy applies from the subject's first *missing* visit
        at or after the event (an observed value after such a gap is set aside, with the same
        warning). ``"error"``: they are refused. The pipeline's estimand block uses ``"keep"``
        for ``strategy: treatment policy`` and ``"impute"`` for ``hypothetical``, unless an
        intercurrent event says ``post_ice:``; the guide's recipe (docs/guide/sensitivity.md)
        and the pipeline give the same number (tests/pipeline/test_post_ice.py).
    prior : {"jeffreys", "rbmi"}
        Only for ``method="bayes"``: the prior of each covariance matrix. ``"jeffreys"``
        (default) |Sigma|^-(T+1)/2; ``"rbmi"`` inverse Wishart(T + 2, REML estimate), the
        default of R rbmi ``method_bayes`` and the SAS five macros. The rbmi prior gives
        slightly smaller between-imputation variance (standard errors 0.2-2% smaller in the
        comparison of issue 20.8); name it when comparing with rbmi or SAS.
    client : dask.distributed.Client, optional
        Bootstrap refits (approx-bayes, condmean-bootstrap, bootstrap-ml) run in chunks on the
        workers (the bootstrap samples are drawn here, so the draws are the same as without a
        client; BLAS one thread per task); kept as the default client of
        :func:`peerstats.tipping_point`. The jackknife and the Gibbs sampler run locally.

    Returns
    -------
    Imputations

    Raises
    ------
    ModelSpecificationError
        Unknown method, subject, visit, strategy or arm in ``ice``; a reference arm that does
        not exist; an ICE before the first visit; LMCF at the first visit; ``n_imputations`` < 2;
        a non-finite delta; missing model covariates - all before any fitting.
    ConvergenceError
        A refit of the imputation model failed (approx-bayes, condmean, bootstrap-ml): the
        number of failed refits is given; nothing is pooled over fewer sets.
    """
    t0 = time.perf_counter()
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not isinstance(method, str) or method not in METHODS:
        raise ModelSpecificationError(
            f"method={method!r} is not valid; choose one of {list(METHODS)}"
        )
    if not isinstance(covariance, str):
        raise ModelSpecificationError(f"covariance must be a string; got {covariance!r}")
    covariance = covariance.lower()
    if method == "bayes" and covariance != "us":
        raise ModelSpecificationError(
            f"method='bayes' samples the unstructured covariance (covariance='us'); got "
            f"covariance={covariance!r}. Use 'approx-bayes' for other structures."
        )
    if prior not in ("jeffreys", "rbmi") or (prior != "jeffreys" and method != "bayes"):
        raise ModelSpecificationError(
            f"prior={prior!r} is not valid with method={method!r}; choose 'jeffreys' or 'rbmi' "
            "(a prior applies to method='bayes' only)"
        )
    if post_ice not in ("keep", "impute", "error"):
        raise ModelSpecificationError(
            f"post_ice={post_ice!r} is not valid; choose one of ['keep', 'impute', 'error']"
        )
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecificationError(
            f"formula {formula!r} must be 'outcome ~ terms', e.g. 'y ~ arm * visit + y_baseline'"
        )
    _check_columns(data, subject=subject, visit=visit, arm=arm, group=group)
    outcome = formula.split("~", 1)[0].strip()
    _check_columns(data, outcome=outcome)
    from peerstats.models._design import required_variables

    rhs_vars = required_variables(formula.split("~", 1)[1])
    if arm not in rhs_vars:
        raise ModelSpecificationError(
            f"arm={arm!r} must appear in the imputation formula {formula!r} (reference-based "
            "imputation sets it to the reference arm)"
        )
    missing_cols = [c for c in rhs_vars if c not in data.columns]
    if missing_cols:
        raise ModelSpecificationError(
            f"column(s) {missing_cols} of the formula are not in data; columns are "
            f"{list(data.columns)}"
        )
    n_par, D = _n_draws(method, n_imputations)
    ss = _seed_sequence(seed)

    # ---- the subject x visit grid -------------------------------------------------------------
    if data[arm].isna().any():
        raise ModelSpecificationError(
            f"arm {arm!r} is missing on {int(data[arm].isna().sum())} row(s)"
        )
    visit_levels = _levels(data[visit])
    arm_levels_raw = _levels(data[arm])
    arm_levels = [str(a) for a in arm_levels_raw]
    subjects = pd.Index(pd.unique(data[subject]))
    n, T = len(subjects), len(visit_levels)
    si = subjects.get_indexer(data[subject])
    vi = pd.Index([str(v) for v in visit_levels]).get_indexer(data[visit].astype(str))
    key = si.astype(np.int64) * T + vi
    if pd.Series(key).duplicated().any():
        raise ModelSpecificationError(
            f"data repeat a {subject!r} x {visit!r} combination; one row per subject and visit"
        )
    per_subj_arm = data.groupby(si)[arm].nunique()
    if (per_subj_arm > 1).any():
        raise ModelSpecificationError(f"arm {arm!r} must be constant within subject")
    frame = _grid_frame(data, subjects, visit_levels, si, vi, subject, visit, outcome)
    need = [c for c in rhs_vars if c not in (visit, outcome)]
    na = frame[need].isna()
    if na.to_numpy().any():
        detail = {
            c: frame.loc[na[c], subject].astype(str).unique().tolist()[:5]
            for c in need
            if na[c].any()
        }
        raise ModelSpecificationError(
            f"imputation needs the model covariates at every visit of every subject; missing "
            f"(column: first subjects) {detail}"
        )
    Y0 = pd.to_numeric(frame[outcome], errors="coerce").to_numpy(dtype=float).reshape(n, T)
    arm_of = pd.Index(arm_levels).get_indexer(frame[arm].astype(str).to_numpy()[::T])

    # ---- ICE, reference, set-aside ------------------------------------------------------------
    ice_k, strat = _parse_ice(
        ice, subjects, visit_levels, subject, visit, (arm_of, arm, arm_levels)
    )
    ref_needed = bool(np.isin(strat, ["JR", "CR", "CIR"]).any())
    ref_map = _parse_reference(reference, arm_levels, arm, ref_needed)
    missing = np.isnan(Y0)
    if post_ice == "keep":  # the strategy starts at the first missing visit at/after the event
        from_ice = missing & (np.arange(T)[None, :] >= ice_k[:, None])
        ice_k = np.where(from_ice.any(axis=1), from_ice.argmax(axis=1), T)
    post = np.arange(T)[None, :] >= ice_k[:, None]
    set_aside = post & ~missing
    if set_aside.any():
        who = subjects[set_aside.any(axis=1)].tolist()[:5]
        msg = (
            f"{int(set_aside.sum())} outcome value(s) of {int(set_aside.any(axis=1).sum())} "
            f"subject(s) were observed at or after a non-MAR intercurrent event (first: {who})"
        )
        if post_ice == "error":
            raise ModelSpecificationError(
                msg + "; with post_ice='error' these are refused. Use post_ice='impute' to set "
                "them aside and impute them under the strategy, or a MAR strategy to keep them."
            )
        warnings.warn(
            msg + "; they are set aside and imputed under the ICE strategy.",
            DataWarning,
            stacklevel=2,
        )
    target = missing | set_aside
    Yfit = np.where(target, np.nan, Y0)
    delta_arr = _parse_delta(
        delta, subjects, visit_levels, arm_levels, arm_of, subject, visit, arm, target
    )
    if not (~target).any(axis=0).all():
        empty = [str(visit_levels[j]) for j in range(T) if target[:, j].all()]
        raise ModelSpecificationError(
            f"visit(s) {empty} have no observed (MAR) outcome to build the imputation model on; "
            "drop them or choose another ICE strategy"
        )

    # ---- the imputation model -----------------------------------------------------------------
    fit_frame = frame.copy()
    fit_frame[outcome] = Yfit.reshape(-1)
    for c in (visit,) + ((group,) if group else ()):
        if not isinstance(fit_frame[c].dtype, pd.CategoricalDtype):
            fit_frame[c] = pd.Categorical(fit_frame[c], categories=_levels(data[c]))
    if not isinstance(fit_frame[arm].dtype, pd.CategoricalDtype):
        fit_frame[arm] = pd.Categorical(fit_frame[arm], categories=arm_levels_raw)
    prep = _prepare(
        formula, fit_frame, subject=subject, visit=visit, covariance=covariance, group=group
    )
    X_all = np.asarray(prep.X_all, dtype=float)
    ref_frame = fit_frame.copy()
    ref_arm_raw = [arm_levels_raw[arm_levels.index(ref_map[a])] for a in arm_levels]
    ref_frame[arm] = pd.Categorical(
        np.repeat(np.array(ref_arm_raw, dtype=object)[arm_of], T), categories=arm_levels_raw
    )
    X_ref = np.asarray(prep.design_matrix(ref_frame), dtype=float)
    p = X_all.shape[1]
    # covariance groups per subject, and the group of each subject's reference arm
    if group is None:
        G = 1
        g_of = np.zeros(n, dtype=np.int64)
        r_of = g_of
    else:
        glev = [str(g) for g in prep.group_levels]
        G = len(glev)
        g_of = pd.Index(glev).get_indexer(fit_frame[group].astype(str).to_numpy()[::T])
        if group == arm:
            r_of = pd.Index(glev).get_indexer([ref_map[arm_levels[a]] for a in arm_of])
        else:
            r_of = g_of
    # subjects of the engine (those with an observed outcome) in our order
    eng_pos = pd.Index(prep.subjects).get_indexer(subjects)
    n_eng = len(prep.subjects)

    def _weights_for_engine(w_ours: np.ndarray) -> np.ndarray:
        w = np.zeros(n_eng)
        ok = eng_pos >= 0
        w[eng_pos[ok]] = w_ours[ok]
        return w

    full = prep.refit()
    if not full.converged:
        raise ConvergenceError("the imputation model did not converge on the full data")
    rng_draws, rng_imp = (np.random.default_rng(s) for s in ss.spawn(2))

    def _stratified_counts(rng, B):
        W = np.zeros((B, n))
        for a in range(len(arm_levels)):
            idx = np.flatnonzero(arm_of == a)
            draws = rng.integers(0, idx.size, size=(B, idx.size))
            for b in range(B):
                W[b] += np.bincount(idx[draws[b]], minlength=n)
        return W

    def _refits(W):
        betas, sigmas, failed = [], [], 0
        first_error = None
        EW = np.stack([_weights_for_engine(w) for w in W])
        if client is None:
            results = _refit_chunk(prep, EW)
        else:  # chunks of bootstrap refits on the workers (weights drawn here: same draws)
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            size = max(1, math.ceil(len(EW) / (4 * n_workers)))
            [pf] = client.scatter([prep], broadcast=True, hash=False)
            futures = [
                client.submit(_refit_chunk, pf, EW[s : s + size], pure=False)
                for s in range(0, len(EW), size)
            ]
            results = [r for chunk in client.gather(futures) for r in chunk]
        for beta, sig, err in results:
            if err is not None or beta is None or not np.all(np.isfinite(beta)):
                failed += 1
                first_error = first_error or err
                continue
            betas.append(beta)
            sigmas.append(sig)
        if failed:
            raise ConvergenceError(
                f"the imputation model failed to converge in {failed} of {len(W)} bootstrap "
                "refits; peerstats does not pool over fewer sets. Simplify the covariance "
                "(covariance=) or the mean model."
                + (f" First error: {first_error}" if first_error is not None else "")
            )
        return np.stack(betas), np.stack(sigmas)

    weights = None
    rows = None
    info: dict[str, Any] = {"n_failed_draws": 0}
    full_sig = np.stack([np.asarray(s) for s in full.sigmas])
    if method == "bayes":
        from peerstats.missing._bayes import BURN, CHAINS, THIN, gibbs_mmrm

        betas, sigmas = gibbs_mmrm(
            X_all.reshape(n, T, p),
            Yfit,
            g_of,
            G,
            np.asarray(full.beta),
            full_sig,
            n_par,
            rng_draws,
            prior=prior,
        )
        info.update(
            sampler="data-augmentation Gibbs (flat beta, "
            + ("Jeffreys Sigma)" if prior == "jeffreys" else "rbmi inverse Wishart Sigma)"),
            prior=prior,
            burn=BURN,
            thin=THIN,
            chains=min(CHAINS, n_par),
        )
        random = True
    elif method == "approx-bayes":
        betas, sigmas = _refits(_stratified_counts(rng_draws, n_par))
        random = True
    elif method == "condmean-jackknife":
        try:
            refits = prep.jackknife()
        except (ConvergenceError, ModelSpecificationError) as exc:
            raise ConvergenceError(
                f"a leave-one-out refit of the imputation model failed ({exc}); the jackknife "
                "is not computed over fewer subjects"
            ) from exc
        bad = sum(1 for r in refits if not r.converged)
        if bad:
            raise ConvergenceError(
                f"the imputation model failed to converge in {bad} of {len(refits)} "
                "leave-one-out refits; the jackknife is not computed over fewer subjects"
            )
        jb = np.empty((n, p))
        js = np.empty((n, G, T, T))
        for i in range(n):
            if eng_pos[i] >= 0:
                r = refits[eng_pos[i]]
                jb[i] = r.beta
                js[i] = np.stack([np.asarray(s) for s in r.sigmas])
            else:  # no observed outcome: leaving the subject out does not change the fit
                jb[i] = full.beta
                js[i] = full_sig
        betas = np.vstack([np.asarray(full.beta)[None], jb])
        sigmas = np.concatenate([full_sig[None], js])
        weights = np.vstack([np.ones((1, n)), 1 - np.eye(n)])
        random = False
    elif method == "condmean-bootstrap":
        W = _stratified_counts(rng_draws, n_par)
        b, s = _refits(W)
        betas = np.vstack([np.asarray(full.beta)[None], b])
        sigmas = np.concatenate([full_sig[None], s])
        weights = np.vstack([np.ones((1, n)), W])
        random = False
    else:  # bootstrap-ml
        W = _stratified_counts(rng_draws, n_par)
        b, s = _refits(W)
        betas = np.repeat(b, D, axis=0)
        sigmas = np.repeat(s, D, axis=0)
        # a bootstrap sample is n rows: a subject drawn w times is w rows, each imputed
        # independently (von Hippel & Bartlett 2021; rbmi method_bmlmi), analysed unweighted
        rows, row_w = _bootstrap_rows(W)
        weights = np.repeat(row_w, D, axis=0)
        random = True

    # ---- impute ----------------------------------------------------------------------------
    if rows is None:
        values = _impute_values(
            betas,
            sigmas,
            X_all,
            X_ref,
            Yfit,
            target,
            ice_k,
            strat,
            g_of,
            r_of,
            rng_imp if random else None,
        )
    else:
        xr = (rows[:, None] * T + np.arange(T)[None, :]).reshape(-1)
        values = _impute_values(
            betas,
            sigmas,
            X_all[xr],
            X_ref[xr],
            Yfit[rows],
            target[rows],
            ice_k[rows],
            strat[rows],
            g_of[rows],
            r_of[rows],
            rng_imp,
        )
    info["seconds"] = time.perf_counter() - t0
    return Imputations(
        method=method,
        outcome=outcome,
        subject=subject,
        visit=visit,
        arm=arm,
        subjects=subjects,
        visits=tuple(visit_levels),
        arm_levels=tuple(arm_levels),
        frame=frame,
        y=Yfit,
        target=target,
        missing=missing,
        set_aside=set_aside,
        values=values,
        weights=weights,
        arm_of=arm_of,
        ice_visit=ice_k,
        strategy=strat,
        delta=delta_arr,
        D=D,
        seed=ss.entropy,
        draws={"beta": betas, "sigma": sigmas, "columns": list(prep.columns)},
        info={**info, "reference": ref_map},
        client=client,
        rows=rows,
    )


def _bootstrap_rows(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the bootstrap samples with counts W (B, n): (rows (R,) subject of each row,
    indicators (B, R)). Rows 0..n-1 are copy 1 of every subject, then copy 2 of the subjects
    drawn at least twice in some sample, ...; sample b uses row (i, copy c) iff W[b, i] >= c,
    i.e. exactly the rows np.repeat(np.arange(n), W[b])."""
    Wi = np.rint(W).astype(np.int64)
    n = Wi.shape[1]
    top = Wi.max(axis=0)
    rows = np.concatenate(
        [np.arange(n)] + [np.flatnonzero(top >= c) for c in range(2, int(top.max()) + 1)]
    )
    copy = pd.Series(rows).groupby(rows).cumcount().to_numpy() + 1
    return rows, (Wi[:, rows] >= copy[None, :]).astype(float)


def _refit_chunk(prep, weights: np.ndarray) -> list:
    """Bootstrap refits of the prepared model, one per row of ``weights``: (beta, sigmas, error)
    with error None on success (run locally or as one task on a dask worker, BLAS one thread)."""
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=1):
        for w in weights:
            try:
                r = prep.refit(subject_weights=w)
            except (ConvergenceError, ModelSpecificationError) as exc:
                out.append((None, None, str(exc)))
                continue
            if not r.converged:
                out.append((None, None, "did not converge"))
                continue
            out.append((np.asarray(r.beta), np.stack([np.asarray(x) for x in r.sigmas]), None))
    return out


def _impute_values(
    betas, sigmas, X_all, X_ref, Y, target, ice_k, strat, g_of, r_of, rng, chunk: int = 256
):
    """(S, n_target) imputed values: strategy means and covariances per draw, then the
    conditional mean (rng None) or a conditional draw of every target cell."""
    S = betas.shape[0]
    n, T = Y.shape
    cond = ~np.isnan(Y)
    # covariance key per subject: (kind, g, r, k)
    kinds = {}
    cov_key = np.empty(n, dtype=np.int64)
    for i in range(n):
        s, k, g, r = strat[i], int(ice_k[i]), int(g_of[i]), int(r_of[i])
        if k >= T or s in ("MAR", "LMCF"):
            kk = ("own", g)
        elif s == "CR" or k == 0:
            kk = ("own", r)
        elif g == r:
            kk = ("own", g)
        else:  # JR / CIR with separate covariances: Carpenter et al.'s conditional construction
            kk = ("mix", g, r, k)
        cov_key[i] = kinds.setdefault(kk, len(kinds))
    out = np.empty((S, int(target.sum())))
    for s0 in range(0, S, chunk):
        sl = slice(s0, min(S, s0 + chunk))
        B = betas[sl]
        mu_own = (X_all @ B.T).T.reshape(-1, n, T)
        mu_ref = (X_ref @ B.T).T.reshape(-1, n, T)
        mu = strategy_means(mu_own, mu_ref, ice_k, strat)
        covs = {}
        sig = sigmas[sl]
        for kk, idx in kinds.items():
            if kk[0] == "own":
                covs[idx] = sig[:, kk[1]]
            else:
                covs[idx] = compute_sigma(sig[:, kk[1]], sig[:, kk[2]], kk[3])
        out[sl] = conditional_impute(mu, Y, cond, target, cov_key, covs, rng)
    return out

def _grid_frame(data, subjects, visits, si, vi, subject, visit, outcome) -> pd.DataFrame:
    """One row per participant x visit (participant-major); absent rows copy the participant's
    first row for columns constant within participant, the rest missing."""
    n, T = len(subjects), len(visits)
    key = si.astype(np.int64) * T + vi
    grid_pos = np.full(n * T, -1, dtype=np.int64)
    grid_pos[key] = np.arange(len(data))
    absent = grid_pos < 0
    first_pos = pd.Series(np.arange(len(data))).groupby(si).first().reindex(np.arange(n)).to_numpy()
    frame = data.iloc[np.where(absent, np.repeat(first_pos, T), grid_pos)].reset_index(drop=True)
    if absent.any():
        by_subj = data.groupby(si)
        for c in data.columns:
            if c in (subject, visit):
                continue
            if c == outcome or (by_subj[c].nunique(dropna=False) > 1).any():
                if pd.api.types.is_integer_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]):
                    frame[c] = frame[c].astype(float)
                frame.loc[absent, c] = np.nan
        vt = np.tile(np.arange(T), n)
        if isinstance(data[visit].dtype, pd.CategoricalDtype):
            frame[visit] = pd.Categorical(
                np.array(visits, dtype=object)[vt], categories=data[visit].cat.categories
            )
        else:
            frame[visit] = pd.Series(visits).iloc[vt].to_numpy()
    return frame
