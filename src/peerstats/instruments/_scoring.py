"""Scoring: item checks, reverse keys, proration, subscales, conversions, alpha, severity."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats import _dist
from peerstats.exceptions import DataValidationError, DataWarning, SpecError
from peerstats.instruments._definition import Instrument, MissingRule
from peerstats.instruments._registry import get_instrument

__all__ = ["ScoreResult", "score", "cronbach_alpha", "severity", "prepare_items"]


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one instrument for every row of the data.

    Attributes
    ----------
    total
        Total score per row (aligned to ``data.index``); missing where too few items were
        answered. Converted (e.g. SWEMWBS metric) when a conversion was asked for.
    subscales
        One column per subscale (empty frame, same index, when the instrument has none).
    prorated
        True where the total was prorated from fewer than all items.
    n_answered
        Number of answered items per row.
    flags
        One nullable boolean column per item flag (e.g. PHQ-9 item 9 >= 1); missing where the
        item is missing.
    raw_total
        The total before any conversion (equal to ``total`` without a conversion).
    report
        Counts and the rules used: ``instrument, n_rows, n_complete, n_prorated, n_missing,
        n_no_items, rule, reverse, conversion, subscales, flags``.
    """

    instrument: Instrument
    total: pd.Series
    subscales: pd.DataFrame
    prorated: pd.Series
    n_answered: pd.Series
    flags: pd.DataFrame
    raw_total: pd.Series
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_complete(self) -> int:
        """Rows with every item answered."""
        return int(self.report["n_complete"])

    @property
    def n_prorated(self) -> int:
        """Rows whose total was prorated."""
        return int(self.report["n_prorated"])

    @property
    def n_missing(self) -> int:
        """Rows left without a total (too few items answered, including no item at all)."""
        return int(self.report["n_missing"])

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: total, subscales, prorated, n_answered and flags, one row per input row."""
        name = self.total.name
        parts = [
            self.total.rename(name),
            self.subscales,
            self.prorated.rename(f"{name}_prorated"),
            self.n_answered.rename(f"{name}_n_answered"),
            self.flags,
        ]
        return pd.concat(parts, axis=1)

    def summary(self) -> str:
        """A few lines: counts and the missing-item rule."""
        r = self.report
        rule = r["rule"]
        lines = [
            f"{r['instrument']}: {r['n_rows']} rows, {r['n_complete']} complete, "
            f"{r['n_prorated']} prorated, {r['n_missing']} missing "
            f"({r['n_no_items']} with no item answered)",
            f"  rule: {rule['method']}, at least {rule['required']} of {rule['n_items']} items",
        ]
        if r.get("conversion"):
            lines.append(f"  converted with table {r['conversion']!r}")
        for fname, n in r.get("flags", {}).items():
            lines.append(f"  flag {fname}: {n} rows")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ScoreResult({self.summary()})"


def _resolve_columns(
    inst: Instrument, items: Sequence[str] | Mapping[str, str] | None
) -> dict[str, str]:
    """Instrument item name -> data column."""
    if items is None:
        return {name: name for name in inst.items}
    if isinstance(items, Mapping):
        unknown = [k for k in items if k not in inst.items]
        if unknown:
            raise SpecError(
                f"items maps unknown {inst.name} items {unknown}; items are {list(inst.items)}"
            )
        return {name: str(items.get(name, name)) for name in inst.items}
    if isinstance(items, str):
        raise SpecError("items must be a list of column names (one per item), not a string")
    cols = list(items)
    if len(cols) != inst.n_items:
        raise SpecError(
            f"{inst.name} has {inst.n_items} items, but {len(cols)} columns were given: {cols}"
        )
    if len(set(cols)) != len(cols):
        raise SpecError(f"items lists a column more than once: {cols}")
    return dict(zip(inst.items, cols, strict=True))


def prepare_items(
    data: pd.DataFrame,
    instrument: str | Instrument,
    items: Sequence[str] | Mapping[str, str] | None = None,
    *,
    table: str = "items",
    row_numbers: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Check item columns and return them as floats, reverse-keyed, named as the instrument's items.

    Every problem is collected: missing columns (``missing_column``), values that are not
    numbers (``non_numeric``), not whole numbers (``non_integer``) or outside
    ``item_min..item_max`` (``out_of_range``). ``row`` is the index position + 1, or
    ``row_numbers[position]`` when given (e.g. the row in the user's file); ``table`` names the
    table in the failures.

    Raises
    ------
    DataValidationError
        Listing every bad cell.
    """
    inst = get_instrument(instrument)
    if not isinstance(data, pd.DataFrame):
        raise SpecError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    colmap = _resolve_columns(inst, items)
    if row_numbers is not None and len(row_numbers) != len(data):
        raise SpecError(f"row_numbers has {len(row_numbers)} entries for {len(data)} rows")
    failures: list[dict[str, Any]] = []
    for item, col in colmap.items():
        if col not in data.columns:
            msg = f"column {col!r} for {inst.name} item {item!r} is missing"
            failures.append(_column_failure(table, col, "missing_column", msg))
    out = {}
    for item, col in colmap.items():
        if col not in data.columns:
            continue
        raw = data[col]
        if isinstance(raw, pd.DataFrame):
            msg = f"column {col!r} appears twice"
            failures.append(_column_failure(table, col, "duplicate_column", msg))
            continue
        values = _item_values(raw)
        failures += _item_failures(raw, values, inst, table, col, row_numbers)
        if item in inst.reverse:
            values = inst.item_min + inst.item_max - values
        out[item] = values
    if failures:
        raise DataValidationError(pd.DataFrame(failures), context=f"scoring {inst.name}")
    return pd.DataFrame(out, index=data.index, columns=list(inst.items))


def _column_failure(table: str, col: str, check: str, message: str) -> dict[str, Any]:
    return dict(table=table, row=None, column=col, value=None, check=check, message=message)


def _item_values(raw: pd.Series) -> np.ndarray:
    """Responses as floats (a writable copy); True/False are not responses (NaN)."""
    if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "fiu":
        # plain numbers (the Trial's item columns): the same floats as the conversion below,
        # without a round trip through Python objects (issue 22, loading a trial)
        return raw.to_numpy(dtype=float, copy=True)
    missing = raw.isna().to_numpy()
    values = pd.to_numeric(raw.astype(object).where(~missing, None), errors="coerce")
    values = np.array(values, dtype=float)  # a writable copy
    if raw.dtype == bool or str(raw.dtype) == "boolean":
        values = np.full(len(raw), np.nan)
    elif raw.dtype == object:  # True/False are not responses, even though they convert
        is_bool = np.array([isinstance(v, bool | np.bool_) for v in raw], dtype=bool)
        values[is_bool] = np.nan
    return values


def _item_failures(
    raw: pd.Series,
    values: np.ndarray,
    inst: Instrument,
    table: str,
    col: str,
    row_numbers: Sequence[int] | None,
) -> list[dict[str, Any]]:
    """One failure per response that is not a number, not whole, or outside the item range."""
    failures = []
    bad_type = np.isnan(values) & ~raw.isna().to_numpy()
    finite = ~np.isnan(values)
    not_int = finite & (values != np.round(values))
    outside = finite & ((values < inst.item_min) | (values > inst.item_max))
    for pos in np.flatnonzero(bad_type | not_int | outside):
        from peerstats._identifiers import mask_value  # an identifier is never echoed

        value = mask_value(raw.iloc[pos])
        if bad_type[pos]:
            check, msg = "non_numeric", f"{value!r} is not a number"
        elif outside[pos]:
            check = "out_of_range"
            msg = f"{value!r} is outside the {inst.name} item range {inst.item_min}-{inst.item_max}"
        else:
            check, msg = "non_integer", f"{value!r} is not a whole-number response"
        row = int(pos) + 1 if row_numbers is None else int(row_numbers[pos])
        failures.append(
            dict(table=table, row=row, column=col, value=value, check=check, message=msg)
        )
    return failures


def _apply_rule(
    values: pd.DataFrame, scoring: str, rule: MissingRule
) -> tuple[pd.Series, pd.Series, pd.Series, int]:
    k = values.shape[1]
    required = rule.required(k)
    n_answered = values.notna().sum(axis=1)
    mean = values.mean(axis=1, skipna=True)
    score = mean * k if scoring == "sum" else mean
    scored = n_answered >= required
    score = score.where(scored)
    prorated = scored & (n_answered < k)
    return score, prorated, n_answered, required


def score(
    data: pd.DataFrame,
    instrument: str | Instrument,
    items: Sequence[str] | Mapping[str, str] | None = None,
    *,
    min_answered: float | None = None,
    conversion: str | None = None,
    table: str = "items",
    row_numbers: Sequence[int] | None = None,
) -> ScoreResult:
    """Score an instrument: check items, reverse-key, apply the missing-item rule.

    Parameters
    ----------
    data
        One row per questionnaire (e.g. subject x visit), item responses in columns.
    instrument
        Name or alias (``"GAD-7"``, ``"qpr15"``) or an :class:`Instrument`.
    items
        Data columns of the items: a list in item order, or a mapping instrument item ->
        column. Default: the instrument's item names (e.g. ``gad_1 .. gad_7``).
    min_answered
        Override the instrument's missing-item rule: the fraction of items (0 < x <= 1) that
        must be answered; the total is then prorated from the item mean.
    conversion
        Name of a published conversion table of the instrument (e.g. ``"metric"`` for SWEMWBS).
        ``total`` then holds converted scores and ``raw_total`` the raw ones.
    table, row_numbers
        How bad cells are located in ``DataValidationError.failures``: the table name and the
        row number of each data row (default: index position + 1).

    Returns
    -------
    ScoreResult

    Raises
    ------
    DataValidationError
        Missing item columns, non-numeric, non-integer or out-of-range item values; every bad
        cell is listed (table ``items``, row = index position + 1, column, value).
    SpecError
        Unknown instrument or conversion, wrong number of item columns, bad ``min_answered``.

    Notes
    -----
    Reverse-keyed items are recoded ``item_min + item_max - x``. With the rule
    ``{method: prorate, min_answered: p}`` a sum score of ``k`` items with ``m >= ceil(p k)``
    answered is ``mean(answered) * k``; a mean score is ``mean(answered)``; fewer answered items
    leave the score missing. Prorated totals are not rounded.

    Examples
    --------
    >>> import pandas as pd
    >>> from peerstats.instruments import score
    >>> df = pd.DataFrame({f"gad_{i}": [1, 2] for i in range(1, 8)})
    >>> score(df, "GAD-7").total.tolist()
    [7.0, 14.0]
    """
    inst = get_instrument(instrument)
    rule, sub_rule = _rules(inst, min_answered)
    if conversion is not None and conversion not in inst.conversions:
        choices = list(inst.conversions) or "none"
        raise SpecError(
            f"{conversion!r} is not a conversion of {inst.name}; conversions are {choices}"
        )
    values = prepare_items(data, inst, items, table=table, row_numbers=row_numbers)
    total, prorated, n_answered, required = _apply_rule(values, inst.scoring, rule)
    name = _column_name(inst)
    total = total.rename(name)
    raw_total = total.copy()
    report: dict[str, Any] = {
        "instrument": inst.name,
        "n_rows": len(values),
        "n_complete": int((n_answered == inst.n_items).sum()),
        "n_prorated": int(prorated.sum()),
        "n_missing": int(total.isna().sum()),
        "n_no_items": int((n_answered == 0).sum()),
        "rule": {
            "method": rule.method,
            "min_answered": rule.min_answered,
            "required": required,
            "n_items": inst.n_items,
            "source": rule.source,
        },
        "reverse": list(inst.reverse),
        "reverse_verified": inst.reverse_verified,
        "conversion": conversion,
    }
    if conversion is not None:
        total = _convert(total, inst, conversion, report)
    subscales, report["subscales"] = _subscales(values, inst, sub_rule, name)
    flags = _flags(values, inst, name)
    report["flags"] = {f: int(flags[c].sum()) for f, c in zip(inst.flags, flags.columns)}
    return ScoreResult(
        instrument=inst,
        total=total,
        subscales=subscales,
        prorated=prorated.rename(f"{name}_prorated"),
        n_answered=n_answered.rename(f"{name}_n_answered"),
        flags=flags,
        raw_total=raw_total,
        report=report,
    )


def _rules(inst: Instrument, min_answered: float | None) -> tuple[MissingRule, MissingRule | None]:
    """The missing-item rule of the total, and of the subscales (None: each its own)."""
    if min_answered is None:
        return inst.missing, None
    if (
        isinstance(min_answered, bool)
        or not isinstance(min_answered, int | float)
        or not (0 < min_answered <= 1)
    ):
        raise SpecError(f"min_answered must be a fraction in (0, 1], got {min_answered!r}")
    rule = MissingRule(method="prorate", min_answered=float(min_answered), source="user")
    return rule, rule


def _convert(total: pd.Series, inst: Instrument, conversion: str, report: dict) -> pd.Series:
    """Totals through a published conversion table (linear interpolation between its raw
    scores, with a warning)."""
    table = inst.conversions[conversion]["table"]
    xs, ys = np.array(list(table)), np.array(list(table.values()))
    t = total.to_numpy()
    finite = ~np.isnan(t)
    between = finite & ~np.isin(t, xs)
    converted = np.where(finite, np.interp(t, xs, ys), np.nan)
    report["n_interpolated"] = int(between.sum())
    if between.any():
        warnings.warn(
            f"{int(between.sum())} prorated {inst.name} totals fall between the raw scores of "
            f"the {conversion!r} table and were converted by linear interpolation",
            DataWarning,
            stacklevel=3,  # the caller of score()
        )
    return pd.Series(converted, index=total.index, name=total.name)


def _subscales(
    values: pd.DataFrame, inst: Instrument, sub_rule: MissingRule | None, name: str
) -> tuple[pd.DataFrame, dict]:
    subs = {}
    sub_reports = {}
    for sub in inst.subscales:
        s_rule = sub_rule or sub.missing
        s_total, s_pro, s_n, s_req = _apply_rule(values[list(sub.items)], sub.scoring, s_rule)
        subs[f"{name}_{sub.name}"] = s_total
        sub_reports[sub.name] = {
            "n_prorated": int(s_pro.sum()),
            "n_missing": int(s_total.isna().sum()),
            "required": s_req,
            "n_items": len(sub.items),
            "verified": sub.verified,
        }
    return pd.DataFrame(subs, index=values.index), sub_reports


def _flags(values: pd.DataFrame, inst: Instrument, name: str) -> pd.DataFrame:
    """Item flags (e.g. PHQ-9 item 9 at least 1) on the answer as given (not reverse-keyed)."""
    flag_cols = {}
    for fname, flag in inst.flags.items():
        item = values[flag["item"]]
        if flag["item"] in inst.reverse:  # flags refer to the answer as given
            item = inst.item_min + inst.item_max - item
        flag_cols[f"{name}_{fname}"] = pd.array(
            [pd.NA if np.isnan(v) else bool(v >= flag["at_least"]) for v in item], dtype="boolean"
        )
    return pd.DataFrame(flag_cols, index=values.index)


def _column_name(inst: Instrument) -> str:
    return inst.short_name


def cronbach_alpha(
    data: pd.DataFrame,
    instrument: str | Instrument,
    items: Sequence[str] | Mapping[str, str] | None = None,
    *,
    ci: float = 0.95,
) -> dict[str, float]:
    """Cronbach's alpha of an instrument's items, after reverse-keying, on complete cases.

    Parameters
    ----------
    data, instrument, items
        As for :func:`score`. Pass one visit (e.g. baseline), one row per subject.
    ci
        Confidence level of the interval.

    Returns
    -------
    dict
        ``alpha, ci_lower, ci_upper, n`` (n = complete cases used). With fewer than 3 complete
        cases every value but ``n`` is NaN.

    Raises
    ------
    DataValidationError
        As for :func:`score`.

    Notes
    -----
    ``alpha = k / (k - 1) * (1 - sum(var(item_i)) / var(sum of items))`` (sample variances);
    the same closed form as :func:`pingouin.cronbach_alpha` with listwise deletion
    (tested equal to it). The interval is the
    F-distribution interval of Feldt, Woodruff & Salih (1987),
    ``1 - (1 - alpha) F_{a/2}`` and ``1 - (1 - alpha) F_{1-a/2}`` with ``n - 1`` and
    ``(n - 1)(k - 1)`` degrees of freedom (unrounded; pingouin rounds it to 3 decimals).
    """
    if not 0 < ci < 1:
        raise SpecError(f"ci must be between 0 and 1, got {ci!r}")
    values = prepare_items(data, instrument, items).dropna()
    n = len(values)
    if n < 3:
        return {"alpha": float("nan"), "ci_lower": float("nan"), "ci_upper": float("nan"), "n": n}
    # closed form as in pingouin.cronbach_alpha (listwise deletion; covariance of the items);
    # computed here so that reports never import pingouin (cold start, issue 22)
    k = values.shape[1]
    cov = values.astype(float).cov()
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (k / (k - 1)) * (1 - np.trace(cov) / cov.sum().sum())
    # pingouin rounds its interval to 3 decimals; this one is unrounded (same formula)
    df1 = n - 1
    df2 = df1 * (k - 1)
    tail = (1 - ci) / 2
    lower = 1 - (1 - alpha) * _dist.f_isf(tail, df1, df2)
    upper = 1 - (1 - alpha) * _dist.f_isf(1 - tail, df1, df2)
    return {"alpha": float(alpha), "ci_lower": float(lower), "ci_upper": float(upper), "n": n}


def severity(total: pd.Series | Sequence[float] | float, instrument: str | Instrument) -> Any:
    """Map totals to the instrument's severity bands (e.g. GAD-7 minimal/mild/moderate/severe).

    Parameters
    ----------
    total
        Totals (a Series keeps its index) or one number.
    instrument
        Name or :class:`Instrument` with ``cutoffs.bands``.

    Returns
    -------
    pandas.Series (ordered categorical) or str
        Band label per total; missing totals stay missing.

    Raises
    ------
    SpecError
        If the instrument has no bands.
    DataValidationError
        If a total is outside the instrument's total range.
    """
    inst = get_instrument(instrument)
    if not inst.bands:
        with_bands = [n for n in _names_with_bands()]
        raise SpecError(f"{inst.name} has no cutoff bands; instruments with bands are {with_bands}")
    scalar = np.isscalar(total)
    s = pd.Series([total] if scalar else total, dtype=float)
    if isinstance(total, pd.Series):
        s.index = total.index
    bad = s.notna() & ((s < inst.total_min) | (s > inst.total_max))
    if bad.any():
        failures = [
            dict(
                table="totals",
                row=pos + 1,
                column=s.name,
                value=s.iloc[pos],
                check="out_of_range",
                message=f"{s.iloc[pos]!r} is outside the {inst.name} total range "
                f"{inst.total_min:g}-{inst.total_max:g}",
            )
            for pos in np.flatnonzero(bad.to_numpy())
        ]
        raise DataValidationError(pd.DataFrame(failures), context=f"severity of {inst.name}")
    labels = [label for label, _ in inst.bands]
    edges = [low for _, low in inst.bands] + [np.inf]
    cat = pd.cut(s, bins=edges, labels=labels, right=False)
    cat = cat.cat.as_ordered()
    if scalar:
        value = cat.iloc[0]
        return None if pd.isna(value) else str(value)
    return cat.rename(f"{s.name}_severity" if s.name else "severity")


def _names_with_bands() -> list[str]:
    from peerstats.instruments._registry import list_instruments

    return [n for n in list_instruments() if get_instrument(n).bands]
