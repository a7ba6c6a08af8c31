"""EQ-5D utilities from published value sets, defined as data.

A value set is a YAML file under ``data_schemas/eq5d/`` (schema
``data_schemas/eq5d-value-set.schema.json``) naming its publication and holding either an
additive model (a constant, one decrement per dimension level, indicator terms) or a lookup table
of every profile (the van Hout 2012 crosswalk). The coefficients were transcribed from the R
package ``eq5d`` (which carries the published tables) by
``tests/reference/r_economics/make_eq5d_yaml.py`` and are checked against that package's output
for every level combination (``tests/economics/test_eq5d.py``).

Why our own code: no maintained Python library ships these value sets as citable data; the
scoring rule itself is a sum of table entries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import DataValidationError, SpecError

__all__ = ["eq5d", "value_sets", "ValueSet", "load_value_set", "DIMENSIONS"]

#: the five EQ-5D dimensions, in the order of a five-digit profile
DIMENSIONS: tuple[str, ...] = ("MO", "SC", "UA", "PD", "AD")

# accepted column names (lower case, letters and digits only), beyond the codes themselves
_ALIASES: dict[str, tuple[str, ...]] = {
    "MO": ("mo", "mobility"),
    "SC": ("sc", "selfcare", "care"),
    "UA": ("ua", "usualactivities", "usualactivity", "usual", "activities", "activity"),
    "PD": ("pd", "paindiscomfort", "pain", "discomfort"),
    "AD": ("ad", "anxietydepression", "anxiety", "depression"),
}
_PREFIX = re.compile(r"^(eq5d(3l|5l|y)?|eq)")


@dataclass(frozen=True)
class ValueSet:
    """One published EQ-5D value set (read from YAML; see :func:`load_value_set`)."""

    id: str
    instrument: str
    levels: int
    model: str
    source: Mapping[str, str]
    country: str = ""
    method: str = ""
    constant: float = 1.0
    decrements: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    terms: Mapping[str, float] = field(default_factory=dict)
    table: np.ndarray | None = None

    @property
    def citation(self) -> str:
        """The publication the coefficients come from."""
        return self.source.get("citation", "")

    def score(self, levels: np.ndarray) -> np.ndarray:
        """Utilities of valid level rows ``levels`` (n, 5), integers in 1..``self.levels``."""
        L = np.asarray(levels, dtype=np.int64)
        if self.model == "lookup":
            powers = self.levels ** np.arange(4, -1, -1)
            return self.table[((L - 1) * powers).sum(axis=1)]
        u = np.full(len(L), float(self.constant))
        for j, d in enumerate(DIMENSIONS):
            u += np.asarray(self.decrements[d], dtype=float)[L[:, j] - 1]
        indicators = {
            "any_above_1": (L > 1).any(axis=1),
            "any_level_3": (L == 3).any(axis=1),
            "any_level_4_or_5": (L >= 4).any(axis=1),
            "any_level_5": (L == 5).any(axis=1),
        }
        for name, coef in self.terms.items():
            u += coef * indicators[name]
        return u


def _schema() -> dict[str, Any]:
    text = resources.files("peerstats").joinpath("data_schemas/eq5d-value-set.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


_VALIDATOR: list[Any] = []  # the value-set schema's validator, built once per process


def _schema_error(spec: Mapping[str, Any]) -> Any:
    """The error ``jsonschema.validate(spec, schema)`` would raise (its ``best_match``), or
    None; without re-checking the shipped schema against the metaschema on every call (most of
    the time of ``validate``; issue 22; ``tests/economics/test_eq5d_schema.py`` checks it)."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    if not _VALIDATOR:
        schema = _schema()
        _VALIDATOR.append(validator_for(schema)(schema))
    return best_match(_VALIDATOR[0].iter_errors(dict(spec)))


def _from_dict(spec: Mapping[str, Any], where: str) -> ValueSet:
    error = _schema_error(spec)
    if error is not None:
        raise SpecError(f"{where}: not a valid EQ-5D value set: {error.message}")
    k = int(spec["levels"])
    table = None
    if spec["model"] == "lookup":
        grid = _all_profiles(k)
        missing = [p for p in grid if p not in spec["table"]]
        if missing:
            raise SpecError(
                f"{where}: the lookup table lacks {len(missing)} profiles, e.g. {missing[:3]}"
            )
        table = np.array([float(spec["table"][p]) for p in grid])
    decrements = {d: tuple(float(x) for x in v) for d, v in spec.get("decrements", {}).items()}
    bad = [d for d, v in decrements.items() if len(v) != k]
    if bad:
        raise SpecError(f"{where}: decrements of {bad} do not have {k} levels")
    return ValueSet(
        id=spec["id"], instrument=spec["instrument"], levels=k, model=spec["model"],
        source=dict(spec["source"]), country=spec.get("country", ""),
        method=spec.get("method", ""), constant=float(spec.get("constant", 1.0)),
        decrements=decrements, terms=dict(spec.get("terms", {})), table=table,
    )  # fmt: skip


def _all_profiles(levels: int) -> list[str]:
    """Every profile of a ``levels``-level instrument, last dimension fastest ("11111", ...)."""
    idx = np.indices((levels,) * 5).reshape(5, -1).T + 1
    return ["".join(map(str, row)) for row in idx]


def load_value_set(path: str | Path) -> ValueSet:
    """Read a value set from a YAML file following ``data_schemas/eq5d-value-set.schema.json``.

    Parameters
    ----------
    path : str or Path
        The YAML file (for a value set peerstats does not ship).

    Returns
    -------
    ValueSet
    """
    import yaml

    path = Path(path)
    return _from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


@lru_cache(maxsize=1)
def _shipped() -> dict[str, ValueSet]:
    import yaml

    folder = resources.files("peerstats").joinpath("data_schemas/eq5d")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            vs = _from_dict(yaml.safe_load(entry.read_text(encoding="utf-8")), entry.name)
            out[vs.id] = vs
    return out


@lru_cache(maxsize=16)
def _shipped_one(value_set: str) -> ValueSet | None:
    """The shipped value set ``value_set`` read from its own file ``<id>.yaml`` alone (the
    crosswalk's 3,125-profile table is parsed and validated only when it is asked for); None
    when no file has that name and id."""
    import yaml

    folder = resources.files("peerstats").joinpath("data_schemas/eq5d")
    entry = folder.joinpath(f"{value_set}.yaml")
    if "/" in value_set or not entry.is_file():
        return None
    vs = _from_dict(yaml.safe_load(entry.read_text(encoding="utf-8")), entry.name)
    return vs if vs.id == value_set else None


def value_sets() -> pd.DataFrame:
    """The shipped value sets: id, instrument, country, method and citation, one row each."""
    rows = [
        {"id": v.id, "instrument": v.instrument, "country": v.country, "method": v.method,
         "citation": v.citation, "doi": v.source.get("doi", "")}
        for v in _shipped().values()
    ]  # fmt: skip
    return pd.DataFrame(rows).set_index("id")


def _get(value_set: str | ValueSet | Path) -> ValueSet:
    if isinstance(value_set, ValueSet):
        return value_set
    if isinstance(value_set, Path) or str(value_set).endswith((".yaml", ".yml")):
        return load_value_set(value_set)
    one = _shipped_one(str(value_set))
    if one is not None:
        return one
    sets = _shipped()
    if value_set not in sets:
        raise SpecError(
            f"{value_set!r} is not a value set peerstats ships; value sets are {sorted(sets)} "
            "(or pass the path of a YAML file following data_schemas/eq5d-value-set.schema.json)"
        )
    return sets[value_set]


def _match_columns(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> list[str]:
    """The frame's column for each dimension, in MO, SC, UA, PD, AD order."""
    if columns is not None:
        missing = [d for d in DIMENSIONS if d not in columns]
        if missing:
            raise SpecError(
                f"columns= must map every dimension {list(DIMENSIONS)}; missing {missing}"
            )
        return [columns[d] for d in DIMENSIONS]
    found = {}
    for col in frame.columns:
        key = _PREFIX.sub("", re.sub(r"[^a-z0-9]", "", str(col).lower()))
        for d, names in _ALIASES.items():
            if key in names:
                found.setdefault(d, []).append(col)
    missing = [d for d in DIMENSIONS if d not in found]
    twice = {d: c for d, c in found.items() if len(c) > 1}
    if missing or twice:
        raise SpecError(
            f"cannot find the EQ-5D dimensions in columns {list(frame.columns)}: "
            + (f"no column for {missing}; " if missing else "")
            + (f"more than one column for {twice}; " if twice else "")
            + "name them MO, SC, UA, PD, AD (or mobility, self_care, usual_activities, "
            "pain_discomfort, anxiety_depression), or pass columns={'MO': ..., ...}"
        )
    return [found[d][0] for d in DIMENSIONS]


def _levels_from_strings(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Parse five-digit profiles; returns levels (n, 5) float (NaN where unreadable), and a
    mask of entries that are entirely missing."""
    n = len(values)
    L = np.full((n, 5), np.nan)
    empty = np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            empty[i] = True
            continue
        s = str(v).strip()
        if isinstance(v, (int, np.integer)) or re.fullmatch(r"\d{5}(\.0+)?", s):
            s = s.split(".")[0]
        if len(s) == 5 and s.isdigit():
            L[i] = [int(c) for c in s]
        elif s == "":
            empty[i] = True
        else:
            L[i, 0] = -1  # unreadable: reported as invalid
    return L, empty


def _invalid_rows(L: np.ndarray, empty: np.ndarray, k: int) -> np.ndarray:
    ok = np.isfinite(L).all(axis=1) & (L >= 1).all(axis=1) & (L <= k).all(axis=1)
    ok &= (L == np.round(L)).all(axis=1) if ok.any() else ok
    return ~ok & ~empty


def _failures(raw: list[str], labels: Sequence[Any], bad: np.ndarray, vs: ValueSet) -> pd.DataFrame:
    rows = [
        {"table": "eq5d", "row": labels[i], "column": "profile", "value": raw[i],
         "check": "eq5d_profile",
         "message": f"{raw[i]!r} is not an {vs.instrument} profile: five dimensions "
                    f"(MO, SC, UA, PD, AD), each a level 1 to {vs.levels}"}
        for i in np.flatnonzero(bad)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def eq5d(
    profiles: Any,
    *,
    value_set: str | ValueSet | Path,
    invalid: Literal["raise", "nan"] = "raise",
    columns: Mapping[str, str] | None = None,
) -> Any:
    """EQ-5D utilities (index values) of health profiles under a published value set.

    Parameters
    ----------
    profiles : str, sequence of str, Series, or DataFrame
        Five-digit profiles in the order MO, SC, UA, PD, AD (``"11121"``; integers such as
        ``11121`` are read the same way), or a frame with one column per dimension. Columns are
        found by name: ``MO/SC/UA/PD/AD`` or ``mobility, self_care, usual_activities,
        pain_discomfort, anxiety_depression`` (case, separators and an ``eq5d_``/``eq5d5l_``
        prefix ignored), or given with ``columns=``.
    value_set : str, ValueSet or path
        One of :func:`value_sets` (``"uk-3l-dolan1997"``, ``"se-3l-burstrom2014"``,
        ``"dk-5l-jensen2021"``, ``"se-5l-burstrom2020"``, ``"se-5l-sun2022"``,
        ``"uk-5l-devlin2018"``, ``"uk-crosswalk-vanhout2012"``), or a YAML file of your own.
    invalid : {"raise", "nan"}
        What to do with an invalid profile (a level outside 1..levels, a non-integer level, one
        to four dimensions missing, an unreadable string). ``"raise"`` (default): a
        :class:`~peerstats.exceptions.DataValidationError` whose ``.failures`` lists every one.
        ``"nan"``: the opt-in to return NaN for them (never a score). A profile with all five
        dimensions missing is a missing assessment, not an invalid profile: NaN in both modes.
    columns : mapping, optional
        ``{"MO": column, ...}`` when the frame's column names are not recognised.

    Returns
    -------
    float, ndarray or Series
        A float for one string; an array for a list/array; a Series named ``"utility"`` with the
        input's index for a Series or DataFrame. Values are unrounded (the published sets are
        printed to 3 or 4 decimals).

    Notes
    -----
    Additive sets: :math:`u = c + \\sum_d \\beta_{d, l_d} + \\sum_t \\gamma_t I_t`, where
    :math:`I_t` are the set's indicator terms (any level above 1; any level 3; any level 4 or 5;
    any level 5). The crosswalk is a lookup of all 3,125 profiles. Validated for every level
    combination (243 or 3,125 per set) against the R package ``eq5d`` 0.16.3.9000
    (``tests/reference/r_economics/eq5d_value_sets.R``), max abs difference below 1e-12.

    Examples
    --------
    >>> import peerstats
    >>> round(peerstats.eq5d("11112", value_set="uk-3l-dolan1997"), 3)
    0.848
    """
    if invalid not in ("raise", "nan"):
        raise SpecError(f"invalid must be 'raise' or 'nan', got {invalid!r}")
    vs = _get(value_set)
    L, empty, raw, labels, kind = _parse(profiles, columns)
    bad = _invalid_rows(L, empty, vs.levels)
    if bad.any() and invalid == "raise":
        raise DataValidationError(
            _failures(raw, labels, bad, vs),
            context=f"EQ-5D profiles scored with {vs.id}; pass invalid='nan' to return NaN for them",
        )
    out = np.full(len(L), np.nan)
    good = ~bad & ~empty
    out[good] = vs.score(L[good].astype(np.int64))
    if kind == "scalar":
        return float(out[0])
    if kind == "array":
        return out
    return pd.Series(out, index=labels, name="utility")


def _parse(profiles: Any, columns: Mapping[str, str] | None):
    """Levels (n, 5), all-missing mask, raw text per row, row labels, and the input kind."""
    if isinstance(profiles, pd.DataFrame):
        cols = _match_columns(profiles, columns)
        L = np.array(profiles[cols].apply(pd.to_numeric, errors="coerce"), dtype=float)
        nonnum = profiles[cols].notna().to_numpy() & np.isnan(L)
        L[nonnum] = -1
        empty = profiles[cols].isna().all(axis=1).to_numpy()
        raw = [
            "".join("." if pd.isna(x) else str(x) for x in r)
            for r in profiles[cols].itertuples(index=False)
        ]
        return L, empty, raw, profiles.index, "frame"
    if isinstance(profiles, (str, int, np.integer)):
        values, labels, kind = [profiles], [0], "scalar"
    elif isinstance(profiles, pd.Series):
        values, labels, kind = list(profiles), profiles.index, "series"
    else:
        values = list(np.asarray(profiles, dtype=object).ravel())
        labels, kind = list(range(len(values))), "array"
    L, empty = _levels_from_strings(values)
    return L, empty, [str(v) for v in values], labels, kind
