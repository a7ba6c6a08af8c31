"""Input checks and the subject x visit grid of multiple imputation (step 0 of :mod:`impute`).

Everything here runs before any model is fitted: column, method, seed, reference, ICE and delta
checks with messages that name the valid choices, and the one-row-per-subject-and-visit frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peerstats.exceptions import DataWarning, ModelSpecificationError
from peerstats.missing.strategies import STRATEGIES

METHODS = ("bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml")
_DEFAULT_M = {"bayes": 100, "approx-bayes": 100, "condmean-bootstrap": 200, "bootstrap-ml": 100}
_BMLMI_D = 2


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [c for c in series.cat.categories if (series == c).any()]
    vals = list(pd.unique(series.dropna()))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


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


def _ice_rows(ice, subjects: pd.Index, subject: str, visit: str):
    """Check the ICE table's shape: (position of each row's subject, upper-case strategies)."""
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
    pos = pd.Index(subjects.astype(str)).get_indexer(ice[subject].astype(str))
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
    return pos, st


def _ice_arms_agree(ice, pos, subject: str, arm_of) -> None:
    """An optional arm column of the ICE table must give each subject its arm in data."""
    if arm_of is None or arm_of[1] not in ice.columns:
        return
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


def _ice_visit_index(v, visit_levels: list, who) -> int:
    """Index of the ICE visit ``v`` (as text, or as a number of numeric visits)."""
    vtxt = [str(x) for x in visit_levels]
    if pd.isna(v):
        raise ModelSpecificationError(
            f"ice visit is missing for subject {who!r}; visits are {vtxt}"
        )
    num = pd.to_numeric(pd.Series(visit_levels), errors="coerce")
    if str(v) in vtxt:
        return vtxt.index(str(v))
    is_num = isinstance(v, int | float | np.number) and bool(num.notna().all())
    if is_num and (num == v).any():
        return int(np.flatnonzero(num.to_numpy() == v)[0])
    if is_num and v < num.min():
        raise ModelSpecificationError(
            f"ice visit {v!r} of subject {who!r} is before the first visit {vtxt[0]}; an ICE "
            f"is given as the first visit it affects, one of {vtxt}"
        )
    raise ModelSpecificationError(
        f"ice visit {v!r} (subject {who!r}) is not a visit; visits are {vtxt}"
    )


def _parse_ice(ice, subjects: pd.Index, visit_levels: list, subject: str, visit: str, arm_of):
    """(first non-MAR visit index per subject (T: none), strategy per subject)."""
    n, T = len(subjects), len(visit_levels)
    k = np.full(n, T, dtype=np.int64)
    strat = np.array(["MAR"] * n, dtype=object)
    if ice is None:
        return k, strat
    pos, st = _ice_rows(ice, subjects, subject, visit)
    _ice_arms_agree(ice, pos, subject, arm_of)
    for i, (p, v, s) in enumerate(zip(pos, ice[visit], st)):
        who = ice[subject].iloc[i]
        j = _ice_visit_index(v, visit_levels, who)
        if s == "LMCF" and j == 0:
            raise ModelSpecificationError(
                f"LMCF for subject {who!r} with an ICE at the first visit "
                f"{str(visit_levels[0])!r}: last mean carried forward needs at least one visit "
                "before the ICE; use JR, CR or CIR"
            )
        k[p] = j if s != "MAR" else T
        strat[p] = s
    return k, strat


def _delta_frame(delta, visit_levels, subject: str, visit: str, arm: str) -> pd.DataFrame:
    """The delta as a DataFrame (a mapping per arm becomes rows arm, visit, delta)."""
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
    return delta


def _delta_positions(levels, keys, vpos, unit: str, unknown: Callable[[np.ndarray], str]):
    """Positions of ``keys`` in ``levels``; refuses unknown keys (message ``unknown(bad)``,
    ``bad`` the mask of unknown rows) and a repeated ``unit`` x visit combination."""
    pos = pd.Index(levels).get_indexer(keys)
    if (pos < 0).any():
        raise ModelSpecificationError(unknown(pos < 0))
    if pd.Series(list(zip(pos, vpos))).duplicated().any():
        raise ModelSpecificationError(f"delta repeats {unit} x visit combination")
    return pos


def _delta_per_subject(delta, d, vpos, subjects, subject, target, out) -> None:
    spos = _delta_positions(
        subjects.astype(str), delta[subject].astype(str), vpos, "a subject",
        lambda bad: f"delta names subject(s) {delta[subject][bad].tolist()[:10]} that are not "
        f"in data[{subject!r}]",
    )
    on_obs = (~target[spos, vpos]) & (d != 0)
    if on_obs.any():
        raise ModelSpecificationError(
            f"delta is non-zero for {int(on_obs.sum())} observed value(s) (first subject "
            f"{delta[subject].iloc[np.flatnonzero(on_obs)[0]]!r}); delta shifts imputed "
            "values only"
        )
    out[spos, vpos] = d


def _delta_per_arm(delta, d, vpos, arm_levels, arm_of, arm, T) -> np.ndarray:
    apos = _delta_positions(
        arm_levels, delta[arm].astype(str), vpos, "an arm",
        lambda bad: f"delta names arm(s) {sorted(set(delta[arm][bad].astype(str)))}; arms are "
        f"{arm_levels}",
    )
    table = np.zeros((len(arm_levels), T))
    table[apos, vpos] = d
    return table[arm_of]


def _arm_constants(delta, arm_levels) -> list[tuple[int, float]] | None:
    """(arm position, value) of a delta ``{arm: finite number}`` naming known arms once each
    (a tipping-point cell); None for anything else (the general path checks and refuses)."""
    if not isinstance(delta, Mapping) or not delta:
        return None
    if not all(isinstance(a, str) for a in arm_levels):
        return None
    levels = list(arm_levels)
    keys = [str(a) for a in delta]
    if len(set(keys)) != len(keys) or any(k not in levels for k in keys):
        return None
    out = []
    for k, v in zip(keys, delta.values()):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            return None
        x = float(v)
        if not np.isfinite(x):
            return None
        out.append((levels.index(k), x))
    return out


def _parse_delta(
    delta, subjects, visit_levels, arm_levels, arm_of, subject, visit, arm, target
) -> np.ndarray:
    """(n, T) additive shifts for the imputed cells."""
    n, T = len(subjects), len(visit_levels)
    out = np.zeros((n, T))
    if delta is None:
        return out
    fast = _arm_constants(delta, arm_levels)
    if fast is not None:  # {arm: number}: the table the general path builds, without frames
        table = np.zeros((len(arm_levels), T))
        for apos, value in fast:
            table[apos, :] = value
        return np.where(target, table[arm_of], 0.0)
    vtxt = [str(v) for v in visit_levels]
    delta = _delta_frame(delta, visit_levels, subject, visit, arm)
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
        _delta_per_subject(delta, d, vpos, subjects, subject, target, out)
    elif arm in delta.columns:
        out = _delta_per_arm(delta, d, vpos, arm_levels, arm_of, arm, T)
    else:
        raise ModelSpecificationError(
            f"delta needs a {subject!r} column (per subject) or an {arm!r} column (per arm)"
        )
    return np.where(target, out, 0.0)


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


def _check_impute_args(
    formula, data, *, subject, visit, arm, method, covariance, group, post_ice, prior
) -> tuple[str, str, list]:
    """Every option of :func:`peerstats.impute` checked: (covariance, outcome, formula vars)."""
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
    outcome, rhs_vars = _formula_vars(
        formula, data, subject=subject, visit=visit, arm=arm, group=group
    )
    return covariance, outcome, rhs_vars


def _formula_vars(formula, data, **cols) -> tuple[str, list]:
    """(outcome, right-hand-side variables) of the imputation formula, all columns of data."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecificationError(
            f"formula {formula!r} must be 'outcome ~ terms', e.g. 'y ~ arm * visit + y_baseline'"
        )
    _check_columns(data, **cols)
    outcome = formula.split("~", 1)[0].strip()
    _check_columns(data, outcome=outcome)
    from peerstats.models._design import required_variables

    rhs_vars = required_variables(formula.split("~", 1)[1])
    arm = cols["arm"]
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
    return outcome, rhs_vars


@dataclass(frozen=True)
class _Grid:
    """The subject x visit grid of the data (subject-major)."""

    subjects: pd.Index
    visit_levels: list
    arm_levels_raw: list
    arm_levels: list  # as text
    frame: pd.DataFrame
    Y0: np.ndarray  # (n, T) outcomes as recorded
    arm_of: np.ndarray  # (n,) arm code


def _subject_visit_index(data, subject, visit, visit_levels, who: str = "subject"):
    """(subjects in order of appearance, subject index and visit index of each row); a
    subject x visit combination may appear once."""
    subjects = pd.Index(pd.unique(data[subject]))
    si = subjects.get_indexer(data[subject])
    vi = pd.Index([str(v) for v in visit_levels]).get_indexer(data[visit].astype(str))
    if pd.Series(si.astype(np.int64) * len(visit_levels) + vi).duplicated().any():
        raise ModelSpecificationError(
            f"data repeat a {subject!r} x {visit!r} combination; one row per {who} and visit"
        )
    return subjects, si, vi


def _subject_grid(data, *, subject, visit, arm, outcome, rhs_vars) -> _Grid:
    """One row per subject and visit, with the model covariates complete."""
    if data[arm].isna().any():
        raise ModelSpecificationError(
            f"arm {arm!r} is missing on {int(data[arm].isna().sum())} row(s)"
        )
    visit_levels = _levels(data[visit])
    arm_levels_raw = _levels(data[arm])
    arm_levels = [str(a) for a in arm_levels_raw]
    subjects, si, vi = _subject_visit_index(data, subject, visit, visit_levels)
    n, T = len(subjects), len(visit_levels)
    if (data.groupby(si)[arm].nunique() > 1).any():
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
    return _Grid(subjects, visit_levels, arm_levels_raw, arm_levels, frame, Y0, arm_of)


def _post_ice(grid: _Grid, ice_k, post_ice: str):
    """(first non-MAR visit per subject, missing, set aside) under the post-ICE handling."""
    T = len(grid.visit_levels)
    missing = np.isnan(grid.Y0)
    if post_ice == "keep":  # the strategy starts at the first missing visit at/after the event
        from_ice = missing & (np.arange(T)[None, :] >= ice_k[:, None])
        ice_k = np.where(from_ice.any(axis=1), from_ice.argmax(axis=1), T)
    set_aside = (np.arange(T)[None, :] >= ice_k[:, None]) & ~missing
    if set_aside.any():
        who = grid.subjects[set_aside.any(axis=1)].tolist()[:5]
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
            stacklevel=5,
        )
    return ice_k, missing, set_aside


def _cells(grid: _Grid, *, ice, reference, delta, post_ice, subject, visit, arm) -> dict:
    """The ICEs applied to the grid: strategies, references, the cells to impute, the delta."""
    T = len(grid.visit_levels)
    ice_k, strat = _parse_ice(
        ice, grid.subjects, grid.visit_levels, subject, visit, (grid.arm_of, arm, grid.arm_levels)
    )
    ref_needed = bool(np.isin(strat, ["JR", "CR", "CIR"]).any())
    ref_map = _parse_reference(reference, grid.arm_levels, arm, ref_needed)
    ice_k, missing, set_aside = _post_ice(grid, ice_k, post_ice)
    target = missing | set_aside
    delta_arr = _parse_delta(
        delta,
        grid.subjects,
        grid.visit_levels,
        grid.arm_levels,
        grid.arm_of,
        subject,
        visit,
        arm,
        target,
    )
    if not (~target).any(axis=0).all():
        empty = [str(grid.visit_levels[j]) for j in range(T) if target[:, j].all()]
        raise ModelSpecificationError(
            f"visit(s) {empty} have no observed (MAR) outcome to build the imputation model on; "
            "drop them or choose another ICE strategy"
        )
    return {
        "ice_k": ice_k,
        "strategy": strat,
        "reference": ref_map,
        "missing": missing,
        "set_aside": set_aside,
        "target": target,
        "y": np.where(target, np.nan, grid.Y0),
        "delta": delta_arr,
    }
