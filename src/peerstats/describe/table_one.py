"""Table 1: baseline characteristics of the randomised participants by arm."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.describe._common import (
    arm_levels,
    as_frames,
    covariate_names,
    outcome_names,
    randomised_mask,
    reference_arm,
    visit_levels,
)
from peerstats.describe.render import Table
from peerstats.exceptions import DataValidationError

__all__ = ["table_one", "standardised_difference"]

OVERALL = "Overall"


def standardised_difference(x1: pd.Series, x0: pd.Series, *, categorical: bool = False) -> float:
    """Standardised mean difference between two groups (Austin 2009; Yang & Dalton 2012).

    Continuous: :math:`d = (\\bar x_1 - \\bar x_0) / \\sqrt{(s_1^2 + s_0^2)/2}` (signed).
    Categorical with levels :math:`1..K`: :math:`d = \\sqrt{(p_1 - p_0)' S^{-1} (p_1 - p_0)}`
    with :math:`S = (S_1 + S_0)/2`, :math:`S_g = \\mathrm{diag}(p_g) - p_g p_g'` over levels
    2..K (always non-negative; for two levels it is
    :math:`|p_1 - p_0| / \\sqrt{(p_1(1-p_1) + p_0(1-p_0))/2}`).
    Missing values are ignored.
    """
    x1, x0 = x1.dropna(), x0.dropna()
    if len(x1) == 0 or len(x0) == 0:
        return float("nan")
    if not categorical:
        x1, x0 = x1.astype(float), x0.astype(float)
        s = np.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2)
        return float((x1.mean() - x0.mean()) / s) if s > 0 else float("nan")
    levels = sorted(set(x1.astype(str)) | set(x0.astype(str)))
    if len(levels) < 2:
        return 0.0
    p1 = x1.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()[1:]
    p0 = x0.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()[1:]
    s1 = np.diag(p1) - np.outer(p1, p1)
    s0 = np.diag(p0) - np.outer(p0, p0)
    s = (s1 + s0) / 2
    diff = p1 - p0
    val = float(diff @ np.linalg.pinv(s) @ diff)
    return float(np.sqrt(max(val, 0.0)))


def _is_categorical(s: pd.Series) -> bool:
    """Non-numeric, boolean, or a numeric 0/1 indicator (shown as n (%), not mean (SD))."""
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    values = set(pd.unique(s.dropna()))
    return len(values) > 0 and values <= {0, 1}


def _baseline_outcomes(trial: Any, part: pd.DataFrame) -> pd.DataFrame:
    """Baseline outcome values per subject (``<outcome> (baseline)`` columns)."""
    a = getattr(trial, "assessments", None)
    outs = outcome_names(trial)
    visits = visit_levels(trial)
    if a is None or not outs or not visits:
        return pd.DataFrame(index=part.index)
    base = a[a["visit"].astype(str) == visits[0]]
    cols = [o for o in outs if o in base.columns]
    if not cols:
        return pd.DataFrame(index=part.index)
    wide = base.drop_duplicates("subject").set_index(base["subject"].astype(str))[cols]
    out = wide.reindex(part["subject"].astype(str)).set_axis(part.index)
    return out.rename(columns={c: f"{c} (baseline)" for c in cols})


def _label_level(level_labels: Mapping[str, str] | None, level: Any) -> str:
    """Display name of a level: its label when given (``0``, ``0.0`` and ``"0"`` match), else
    the level itself (a whole number stored as float shows without ``.0``)."""
    text = str(level)
    if level_labels:
        if text in level_labels:
            return str(level_labels[text])
        try:
            num = float(text)
        except ValueError:
            num = None
        if num is not None:
            for key, lab in level_labels.items():
                try:
                    if float(key) == num:
                        return str(lab)
                except (TypeError, ValueError):
                    continue
    try:
        num = float(text)
        if num.is_integer() and text.endswith(".0"):
            return str(int(num))
    except ValueError:
        pass
    return text


_YES = ("1", "1.0", "True", "true", "yes", "Yes", "YES", "ja", "Ja", "y", "Y")
_NO = ("0", "0.0", "False", "false", "no", "No", "NO", "nej", "Nej", "n", "N")


def _binary_yes_level(levels: Sequence[str]) -> str | None:
    """The "yes" level of a binary variable (levels 0/1, False/True, no/yes), else None."""
    if len(levels) != 2:
        return None
    yes = [lev for lev in levels if lev in _YES]
    no = [lev for lev in levels if lev in _NO]
    if len(yes) == 1 and len(no) == 1:
        return yes[0]
    return None


def _select_participants(
    trial: Any,
    by: str,
    variables: Sequence[str] | None,
    include_baseline_outcomes: bool,
    strata: bool = False,
) -> tuple[pd.DataFrame, list[str], str | None, pd.DataFrame, list[str]]:
    """Step 1: the participants described, the arms (reference first), the extra baseline
    outcome columns and the default variables (the stratification factors first when
    ``strata``)."""
    if isinstance(trial, pd.DataFrame):
        part = trial
        arms = [str(a) for a in pd.unique(part[by].dropna())]
        return part, arms, (arms[0] if arms else None), pd.DataFrame(index=part.index), []
    part, _ = as_frames(trial)
    part = part.loc[randomised_mask(part)]
    if by == "arm":
        arms = arm_levels(trial)
        ref = reference_arm(trial, arms)
    else:
        arms = [str(a) for a in pd.unique(part[by].dropna())]
        ref = arms[0] if arms else None
    extra = (
        _baseline_outcomes(trial, part)
        if include_baseline_outcomes and variables is None
        else pd.DataFrame(index=part.index)
    )
    names = list(covariate_names(trial))
    if strata:
        spec_strata = getattr(getattr(trial, "spec", None), "strata", ()) or ()
        first = [str(c) for c in spec_strata if str(c) in part.columns and str(c) not in names]
        names = first + names
    return part, arms, ref, extra, names


def _missing_column_error(columns: Sequence[str], available: Sequence[str]) -> DataValidationError:
    return DataValidationError(
        pd.DataFrame(
            [
                {
                    "table": "participants",
                    "column": v,
                    "check": "missing_column",
                    "message": f"{v!r} is not a column; columns are {list(available)}",
                }
                for v in columns
            ]
        )
    )


def _levels_of(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(v) for v in series.cat.categories]
    return sorted(str(v) for v in series.dropna().unique())


def _tidy_rows(
    data: pd.DataFrame,
    groups: dict[str, pd.DataFrame],
    variables: Sequence[str],
    is_cat: dict[str, bool],
    arms: list[str],
    ref: str | None,
    smd: bool,
) -> pd.DataFrame:
    """Step 2: the tidy numbers (n, mean, SD, quartiles, counts, percentages, missing, SMD)."""
    rows: list[dict[str, Any]] = []

    def add(var: str, level: Any, arm: str, stat: str, value: float) -> None:
        rows.append(
            {"variable": var, "level": level, "arm": arm, "statistic": stat, "value": float(value)}
        )

    for g, d in groups.items():
        add("n", None, g, "n", len(d))
    for var in variables:
        for g, d in groups.items():
            x = d[var]
            miss = int(x.isna().sum())
            add(var, None, g, "missing", miss)
            add(var, None, g, "missing_percent", 100 * miss / len(d) if len(d) else np.nan)
            x = x.dropna()
            if is_cat[var]:
                counts = x.astype(str).value_counts().reindex(_levels_of(data[var]), fill_value=0)
                for lev, cnt in counts.items():
                    add(var, lev, g, "count", cnt)
                    add(var, lev, g, "percent", 100 * cnt / len(x) if len(x) else np.nan)
            else:
                x = x.astype(float)
                add(var, None, g, "n", len(x))
                add(var, None, g, "mean", x.mean() if len(x) else np.nan)
                add(var, None, g, "sd", x.std(ddof=1) if len(x) > 1 else np.nan)
                q1, med, q3 = np.percentile(x, [25, 50, 75]) if len(x) else (np.nan,) * 3
                add(var, None, g, "median", med)
                add(var, None, g, "q1", q1)
                add(var, None, g, "q3", q3)
        if smd and ref is not None:
            for a in arms:
                if a == ref:
                    continue
                val = standardised_difference(
                    groups[a][var], groups[ref][var], categorical=is_cat[var]
                )
                add(var, None, a, "smd", val)
    return pd.DataFrame(rows, columns=["variable", "level", "arm", "statistic", "value"])


class _Display:
    """Step 3: the printed table from the tidy numbers (labels, suppression, binary rows)."""

    def __init__(
        self,
        tidy: pd.DataFrame,
        columns: list[str],
        suppress_below: int | None,
        digits: int,
    ) -> None:
        self.tidy = tidy
        self.columns = columns
        self.suppress_below = suppress_below
        self.digits = digits
        self._index = {
            (r.variable, None if pd.isna(r.level) else r.level, r.arm, r.statistic): r.value
            for r in tidy.itertuples(index=False)
        }

    def get(self, var: str, level: Any, arm: str, stat: str) -> float:
        return float(self._index.get((var, level, arm, stat), float("nan")))

    def count_text(self, cnt: float, pct: float | None, hidden: bool = False) -> str:
        k = self.suppress_below
        if hidden or (k is not None and 1 <= cnt < k):
            return f"<{k}" if not hidden or cnt < k else "suppressed"
        if pct is None:  # missing: 'count' style
            return f"{int(cnt)}"
        return f"{int(cnt)} ({pct:.{self.digits}f}%)"

    def hidden_cells(self, var: str, levels: list) -> set:
        """(level, column) cells to suppress: the small ones plus complementary ones, so that
        no suppressed count can be recovered as a column total minus the shown cells, or as
        Overall minus the other arms (iterated until nothing changes)."""
        k = self.suppress_below
        if k is None:
            return set()
        columns = self.columns
        keys = [*levels, None]  # None: the missing row
        cnt = {
            (lev, g): self.get(var, lev, g, "count" if lev is not None else "missing")
            for lev in keys
            for g in columns
        }
        cnt = {key: (0.0 if v != v else v) for key, v in cnt.items()}
        hide = {key for key, v in cnt.items() if 1 <= v < k}
        arm_cols = [g for g in columns if g != OVERALL]
        changed = True
        while changed:
            changed = False
            if OVERALL in columns:  # a hidden arm cell must not be Overall minus the others
                for lev in keys:
                    arm_hidden = [g for g in arm_cols if (lev, g) in hide]
                    if len(arm_hidden) == 1 and (lev, OVERALL) not in hide:
                        hide.add((lev, OVERALL))
                        changed = True
            for g in columns:  # a column's lone hidden cell must not be total minus the rest
                hidden = [lev for lev in keys if (lev, g) in hide]
                if len(hidden) == 1:
                    others = [lev for lev in keys if (lev, g) not in hide and cnt[(lev, g)] > 0]
                    if others:
                        hide.add((min(others, key=lambda lev: cnt[(lev, g)]), g))
                        changed = True
        return hide


def table_one(
    trial: Any,
    by: str = "arm",
    *,
    variables: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    nonnormal: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    level_labels: Mapping[str, Mapping[str, str]] | None = None,
    arm_labels: Mapping[str, str] | None = None,
    binary_one_row: bool = True,
    overall: bool = True,
    smd: bool = True,
    suppress_below: int | None = None,
    include_baseline_outcomes: bool = True,
    digits: int | Mapping[str, int] = 1,
    missing: Literal["row", "count", "none"] = "row",
    strata: bool = False,
) -> Table:
    """Baseline characteristics by arm (CONSORT item 15).

    Parameters
    ----------
    trial : Trial or trial-like
        Randomised participants (``randomised == 1``) are described; or a participants
        DataFrame directly.
    by : str
        Grouping column (default ``"arm"``).
    variables : sequence of str, optional
        Columns of the participants table. Default: the spec's ``covariates`` followed by the
        baseline values of the outcomes (``include_baseline_outcomes``; named
        ``"<outcome> (baseline)"``).
    categorical : sequence of str
        Numeric columns to treat as categorical (non-numeric columns and 0/1 indicators
        always are).
    nonnormal : sequence of str
        Numeric columns summarised as median [Q1, Q3] instead of mean (SD).
    labels : dict, optional
        Display names of variables, e.g. ``{"living_alone": "Living alone"}``.
    level_labels : dict of dict, optional
        Display names of the levels of categorical variables, e.g.
        ``{"gender": {"man": "Man", "woman": "Woman"}}`` (numeric codes match in any
        spelling: ``0``, ``0.0``, ``"0"``).
    arm_labels : dict, optional
        Display names of the arms (column headers and the SMD note).
    binary_one_row : bool
        Show a binary variable (levels 0/1, False/True, no/yes) as one row: the count and
        percentage of "yes" (the tidy ``.data`` keeps both levels).
    overall : bool
        Add an Overall column (not for a single group).
    smd : bool
        Add standardised mean differences against the reference arm (see
        :func:`standardised_difference`); CONSORT discourages baseline significance tests, so
        no p-values are given.
    suppress_below : int, optional
        Small-cell suppression: counts ``1 <= n < k`` are shown as ``"<k"`` without a
        percentage (privacy of small trials; the raw numbers stay in ``.data``). Complementary
        cells are shown as ``"suppressed"`` so that a hidden count is not a column total minus
        the shown cells, nor Overall minus the other arms. This stops recovery by subtraction;
        it is not a full statistical disclosure control (bounds can still narrow a cell).
    include_baseline_outcomes : bool
        Add the outcomes at the baseline visit when ``variables`` is not given.
    digits : int or dict of str to int
        Decimals for means, SDs, medians and percentages in the display; a dict gives them
        per variable (``{"age": 0, "default": 1}``; ``default`` for the others and for
        percentages).
    missing : {"row", "count", "none"}
        How missing values show: a ``missing`` row with n (%) (``row``), with n only
        (``count``), or no row (``none``; a note says so, and ``.data`` keeps the counts).
    strata : bool
        Add the trial spec's stratification factors (``strata:``, e.g. the site or
        municipality) as the first row blocks, one row per level, when ``variables`` is not
        given (the analysis spec's ``table_one: {strata: true}``).

    Returns
    -------
    Table
        ``.data`` is tidy: ``variable, level, arm, statistic, value`` with statistics ``n``,
        ``mean``, ``sd``, ``median``, ``q1``, ``q3``, ``count``, ``percent``, ``missing``,
        ``missing_percent`` and ``smd`` (arm = the compared arm); codes, not labels.
        ``.display`` is the printed table: rows ``Variable``/``level``, one column per arm
        (with n), Overall, SMD; labels applied.

    Notes
    -----
    Percentages of categorical levels use the non-missing values as denominator; missing
    values are counted on a separate row. Quartiles are type-7 (numpy "linear") percentiles.
    The steps: select the participants, compute the tidy numbers, lay out the display.
    """
    if missing not in ("row", "count", "none"):
        raise ValueError(f"missing must be 'row', 'count' or 'none', not {missing!r}")
    data, variables, arms, ref = _described_data(
        trial, by, variables, include_baseline_outcomes, strata
    )
    groups = {a: data[data[by] == a] for a in arms}
    if overall and len(arms) > 1:
        groups[OVERALL] = data
    columns = list(groups)
    cats = set(categorical)
    if strata:  # a stratum is a factor even when coded by numbers (site 1, 2, 3)
        cats |= {str(c) for c in getattr(getattr(trial, "spec", None), "strata", ()) or ()}
    is_cat = {v: v in cats or _is_categorical(data[v]) for v in variables}
    tidy = _tidy_rows(data, groups, variables, is_cat, arms, ref, smd)
    display = _layout_display(
        tidy,
        variables,
        is_cat,
        columns,
        arms,
        ref,
        smd=smd,
        nonnormal=set(nonnormal),
        labels=dict(labels or {}),
        level_labels={k: dict(v) for k, v in (level_labels or {}).items()},
        arm_labels={str(k): str(v) for k, v in (arm_labels or {}).items()},
        binary_one_row=binary_one_row,
        suppress_below=suppress_below,
        digits=digits,
        missing=missing,
    )
    binary = binary_one_row and any(
        is_cat[v] and _binary_yes_level(_levels_of(data[v])) for v in variables
    )
    notes = _table_notes(tidy, arms, ref, arm_labels, smd, missing, binary, suppress_below)
    return Table(tidy, display, caption="Baseline characteristics", notes=notes)


def _described_data(
    trial: Any,
    by: str,
    variables: Sequence[str] | None,
    include_baseline_outcomes: bool,
    strata: bool,
) -> tuple[pd.DataFrame, Sequence[str], list[str], str | None]:
    """The participants with the extra baseline outcome columns (``by`` as text), the
    variables described (checked to be columns), the arms and the reference arm."""
    part, arms, ref, extra, default_vars = _select_participants(
        trial, by, variables, include_baseline_outcomes, strata
    )
    if by not in part.columns:
        raise _missing_column_error([by], part.columns)
    data = pd.concat([part, extra], axis=1)
    if variables is None:
        variables = [v for v in default_vars if v in data.columns] + list(extra.columns)
    missing_cols = [v for v in variables if v not in data.columns]
    if missing_cols:
        raise _missing_column_error(missing_cols, part.columns)
    data = data.copy()
    data[by] = data[by].astype("string")
    return data, variables, arms, ref


def _table_notes(
    tidy: pd.DataFrame,
    arms: list[str],
    ref: str | None,
    arm_labels: Mapping[str, str] | None,
    smd: bool,
    missing: str,
    binary: bool,
    suppress_below: int | None,
) -> list[str]:
    """The notes under the table (SMD, percentages, hidden missing values, yes/no rows,
    suppression)."""
    ref_name = (arm_labels or {}).get(ref, ref) if ref is not None else None
    notes = []
    if smd and ref is not None and len(arms) > 1:
        notes.append(
            "SMD: standardised mean difference against the reference arm "
            f"({ref_name}); pooled SD for numeric, Yang & Dalton (2012) for categorical variables."
        )
    notes.append("Percentages of categories are of non-missing values.")
    if missing == "none" and int(tidy.loc[tidy.statistic == "missing", "value"].sum()) > 0:
        notes.append("Missing values are not shown.")
    if binary:
        notes.append("Yes/no characteristics show the number (%) answering yes.")
    if suppress_below is not None:
        notes.append(
            f"Counts from 1 to {suppress_below - 1} are suppressed (shown as <{suppress_below})."
        )
    return notes


def _layout_display(
    tidy: pd.DataFrame,
    variables: Sequence[str],
    is_cat: dict[str, bool],
    columns: list[str],
    arms: list[str],
    ref: str | None,
    *,
    smd: bool,
    nonnormal: set[str],
    labels: dict[str, str],
    level_labels: dict[str, dict[str, str]],
    arm_labels: dict[str, str],
    binary_one_row: bool,
    suppress_below: int | None,
    digits: int | Mapping[str, int],
    missing: str = "row",
) -> pd.DataFrame:
    """Step 3: the display frame (one row per variable, level and missing row)."""
    per_var, base = _split_digits(digits)
    disp = _Display(tidy, columns, suppress_below, base)
    alab = {g: arm_labels.get(g, g) for g in columns}
    smd_name = _smd_names(arms, ref, smd, alab, arm_labels)
    head = {g: f"{alab[g]} (n = {int(disp.get('n', None, g, 'n'))})" for g in columns}
    rows = []
    for var in variables:
        label = labels.get(var, var)
        smd_vals = {name: f"{disp.get(var, None, a, 'smd'):z.2f}" for a, name in smd_name.items()}
        blank = {k: "" for k in smd_vals}
        hide: set = set()
        if is_cat[var]:
            got, hide = _categorical_rows(
                disp, var, label, head, smd_vals, blank, binary_one_row, level_labels.get(var)
            )
            rows.extend(got)
        else:
            var_digits = int(per_var.get(var, base))
            rows.append(
                _numeric_row(disp, var, label, head, var_digits, var in nonnormal, smd_vals)
            )
        if missing != "none" and any(disp.get(var, None, g, "missing") > 0 for g in columns):
            hide = disp.hidden_cells(var, []) if not is_cat[var] else hide
            stats = ("missing", "missing_percent" if missing == "row" else None)
            rows.append(_count_row(disp, head, "  missing", var, None, hide, blank, stats))
    return pd.DataFrame(
        rows, columns=["Characteristic", *head.values(), *smd_name.values()]
    ).fillna("")


def _split_digits(digits: int | Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Per-variable decimals and the default (a dict's ``default`` entry, else 1)."""
    per_var = dict(digits) if isinstance(digits, Mapping) else {}
    base = int(per_var.pop("default", 1)) if isinstance(digits, Mapping) else int(digits)
    return per_var, base


def _smd_names(
    arms: list[str],
    ref: str | None,
    smd: bool,
    alab: dict[str, str],
    arm_labels: dict[str, str],
) -> dict[str, str]:
    """The SMD column name of each compared arm (plain ``SMD`` when there is one)."""
    smd_cols = [a for a in arms if a != ref] if smd and ref is not None else []
    if len(smd_cols) == 1:
        return {smd_cols[0]: "SMD"}
    return {a: f"SMD {alab[a]} vs {arm_labels.get(ref, ref)}" for a in smd_cols}


def _count_row(
    disp: _Display,
    head: dict[str, str],
    name: str,
    var: str,
    level: Any,
    hide: set,
    extra: dict[str, str],
    stats: tuple[str, str | None] = ("count", "percent"),
) -> dict[str, str]:
    """One n (%) row: a categorical variable's level, or (``stats`` ``("missing",
    "missing_percent")``, or ``("missing", None)`` for n only) the missing row."""
    count, percent = stats
    r = {"Characteristic": name}
    for g in disp.columns:
        r[head[g]] = disp.count_text(
            disp.get(var, level, g, count),
            disp.get(var, level, g, percent) if percent is not None else None,
            (level, g) in hide,
        )
    r.update(extra)
    return r


def _categorical_rows(
    disp: _Display,
    var: str,
    label: str,
    head: dict[str, str],
    smd_vals: dict[str, str],
    blank: dict[str, str],
    binary_one_row: bool,
    level_labels: dict[str, str] | None,
) -> tuple[list[dict[str, str]], set]:
    """The rows of a categorical variable (one "yes" row for a binary one, else a heading and
    one row per level) and its suppressed cells."""
    tidy = disp.tidy
    levels = list(tidy[(tidy.variable == var) & (tidy.statistic == "count")].level.unique())
    hide = disp.hidden_cells(var, levels)
    yes = _binary_yes_level(levels) if binary_one_row else None
    if yes is not None:
        return [_count_row(disp, head, f"{label}, n (%)", var, yes, hide, smd_vals)], hide
    rows = [
        {"Characteristic": f"{label}, n (%)", **{head[g]: "" for g in disp.columns}, **smd_vals}
    ]
    for lev in levels:
        name = f"  {_label_level(level_labels, lev)}"
        rows.append(_count_row(disp, head, name, var, lev, hide, blank))
    return rows, hide


def _numeric_row(
    disp: _Display,
    var: str,
    label: str,
    head: dict[str, str],
    digits: int,
    nonnormal: bool,
    smd_vals: dict[str, str],
) -> dict[str, str]:
    """The row of a numeric variable: mean (SD), or median [Q1, Q3] when ``nonnormal``."""
    get = disp.get
    if nonnormal:
        r = {"Characteristic": f"{label}, median [Q1, Q3]"}
        for g in disp.columns:
            r[head[g]] = (
                f"{get(var, None, g, 'median'):z.{digits}f} "
                f"[{get(var, None, g, 'q1'):z.{digits}f}, {get(var, None, g, 'q3'):z.{digits}f}]"
            )
    else:
        r = {"Characteristic": f"{label}, mean (SD)"}
        for g in disp.columns:
            r[head[g]] = (
                f"{get(var, None, g, 'mean'):z.{digits}f} ({get(var, None, g, 'sd'):z.{digits}f})"
            )
    r.update(smd_vals)
    return r
