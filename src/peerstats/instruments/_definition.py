"""Instrument definitions: the frozen :class:`Instrument` built from a validated YAML mapping."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from peerstats.exceptions import SpecError

__all__ = ["Instrument", "MissingRule", "Subscale", "instrument_from_dict", "load_instrument_file"]

Scoring = Literal["sum", "mean"]
MissingMethod = Literal["prorate", "complete"]


@dataclass(frozen=True)
class MissingRule:
    """Missing-item rule.

    A (sub)scale is scored when the fraction of answered items is at least ``min_answered``.
    ``method="prorate"``: a sum is the mean of the answered items times the number of items; a
    mean is the mean of the answered items. ``method="complete"``: every item is required.
    """

    method: MissingMethod = "prorate"
    min_answered: float = 0.8
    source: str | None = field(default=None, compare=False)

    def required(self, k: int) -> int:
        """Smallest number of answered items (out of ``k``) that gives a score."""
        if self.method == "complete":
            return k
        return max(1, math.ceil(self.min_answered * k - 1e-9))


@dataclass(frozen=True)
class Subscale:
    """A subscale: item names, scoring and missing-item rule."""

    name: str
    items: tuple[str, ...]
    scoring: Scoring
    missing: MissingRule
    verified: bool = True
    description: str | None = None


@dataclass(frozen=True)
class Instrument:
    """A questionnaire and the rules that score it.

    Build instruments with :func:`get_instrument` (shipped and registered definitions) or
    :func:`load_instrument_file` (your own YAML, checked against
    ``data_schemas/instrument.schema.json``). Use :meth:`replace` to change a detail, e.g. a
    reverse key checked against a licensed manual.
    """

    name: str
    items: tuple[str, ...]
    item_min: int
    item_max: int
    scoring: Scoring
    total_min: float
    total_max: float
    higher_is_better: bool
    reference: str
    aliases: tuple[str, ...] = ()
    description: str | None = None
    reverse: tuple[str, ...] = ()
    reverse_verified: bool = True
    missing: MissingRule = field(default_factory=MissingRule)
    subscales: tuple[Subscale, ...] = ()
    bands: tuple[tuple[str, float], ...] = ()
    caseness: float | None = None
    reliability: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    conversions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: str | None = None
    source: str | None = field(default=None, compare=False)
    short_name: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_items(self) -> int:
        """Number of scored items."""
        return len(self.items)

    @property
    def alpha(self) -> float | None:
        """Published Cronbach's alpha (``reliability.alpha.value``), or None."""
        return (self.reliability.get("alpha") or {}).get("value")

    @property
    def test_retest(self) -> float | None:
        """Published test-retest reliability (``reliability.test_retest.value``), or None."""
        return (self.reliability.get("test_retest") or {}).get("value")

    def replace(self, **changes: Any) -> Instrument:
        """Return a copy with fields of the YAML definition changed, validated again.

        Keys are those of the YAML format, e.g. ``reverse=[3, 7, 8]``,
        ``missing={"method": "prorate", "min_answered": 0.75}``, ``items=[...]``.

        Raises
        ------
        SpecError
            If the changed definition is invalid.
        """
        spec = dict(self.raw)
        spec.update(changes)
        if "items" in changes and "n_items" not in changes and changes["items"] is not None:
            spec["n_items"] = len(changes["items"])
        return instrument_from_dict(spec, source=self.source)

    def to_dict(self) -> dict[str, Any]:
        """The YAML definition as a plain dict (round-trips through :func:`instrument_from_dict`)."""
        return dict(self.raw)

    def __repr__(self) -> str:
        return (
            f"Instrument({self.name!r}, {self.n_items} items {self.item_min}-{self.item_max}, "
            f"{self.scoring} {self.total_min:g}-{self.total_max:g}, "
            f"{'higher' if self.higher_is_better else 'lower'} is better)"
        )


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("peerstats").joinpath("data_schemas/instrument.schema.json").read_text()
    return json.loads(text)


def _check_schema(spec: Any, where: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  - {path}: {err.message}")
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise SpecError(f"invalid instrument definition {where}:\n" + "\n".join(lines) + more)


def normalise_name(name: str) -> str:
    """Lower-case, alphanumerics only: 'QPR-15' -> 'qpr15'."""
    return re.sub(r"[^0-9a-z]", "", str(name).casefold())


def _resolve(ref: str | int, items: Sequence[str], what: str, where: str) -> str:
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not 1 <= ref <= len(items):
            raise SpecError(
                f"{what} refers to item number {ref} {where}, but items are numbered 1 to {len(items)}"
            )
        return items[ref - 1]
    if ref not in items:
        raise SpecError(f"{what} refers to unknown item {ref!r} {where}; items are {list(items)}")
    return str(ref)


def _missing(spec: Mapping[str, Any] | None, default: MissingRule) -> MissingRule:
    if spec is None:
        return default
    method = spec["method"]
    min_answered = (
        1.0 if method == "complete" else float(spec.get("min_answered", default.min_answered))
    )
    return MissingRule(method=method, min_answered=min_answered, source=spec.get("source"))


def instrument_from_dict(spec: Mapping[str, Any], *, source: str | None = None) -> Instrument:
    """Build an :class:`Instrument` from a definition mapping (as read from YAML).

    Parameters
    ----------
    spec
        The definition; see ``data_schemas/instrument.schema.json``.
    source
        Where the definition came from (used in error messages).

    Raises
    ------
    SpecError
        If the definition violates the schema or is inconsistent (unknown items in ``reverse``,
        a total range that does not match the items, unordered cutoff bands, ...).
    """
    where = (
        f"({source})"
        if source
        else f"({spec.get('name', '?')!r})"
        if isinstance(spec, Mapping)
        else ""
    )
    _check_schema(spec, where)
    spec = dict(spec)
    name = spec["name"]
    items = _item_names(spec, where)
    lo, hi = spec["item_min"], spec["item_max"]
    scoring = spec["scoring"]
    tmin, tmax = _total_range(spec, where)
    reverse = tuple(_resolve(r, items, "reverse", where) for r in spec.get("reverse", []))
    missing = _missing(spec.get("missing"), MissingRule())
    subscales = _subscales(spec.get("subscales") or {}, items, scoring, missing, where)
    cut = spec.get("cutoffs") or {}
    bands = _bands(cut, tmin, where)
    flags = {}
    for fname, flag in (spec.get("flags") or {}).items():
        flags[fname] = {**flag, "item": _resolve(flag["item"], items, f"flag {fname!r}", where)}
    conversions = _conversions(spec.get("conversions") or {}, where)
    aliases = tuple(spec.get("aliases", ()))
    return Instrument(
        name=name,
        items=items,
        item_min=lo,
        item_max=hi,
        scoring=scoring,
        total_min=tmin,
        total_max=tmax,
        higher_is_better=spec["higher_is_better"],
        reference=spec["reference"],
        aliases=aliases,
        description=spec.get("description"),
        reverse=reverse,
        reverse_verified=spec.get("reverse_verified", True),
        missing=missing,
        subscales=subscales,
        bands=bands,
        caseness=cut.get("caseness"),
        reliability=dict(spec.get("reliability") or {}),
        flags=flags,
        conversions=conversions,
        notes=spec.get("notes"),
        source=source,
        short_name=spec.get("short_name") or normalise_name(name) or "score",
        raw=spec,
    )


def _subscales(
    raw: dict, items: tuple[str, ...], scoring: str, missing: MissingRule, where: str
) -> tuple[Subscale, ...]:
    """Subscales: their items resolved; scoring and missing rule default to the total's."""
    subscales = []
    for sname, sub in raw.items():
        sitems = tuple(_resolve(r, items, f"subscale {sname!r}", where) for r in sub["items"])
        subscales.append(
            Subscale(
                name=sname,
                items=sitems,
                scoring=sub.get("scoring", scoring),
                missing=_missing(sub.get("missing"), missing),
                verified=sub.get("verified", True),
                description=sub.get("description"),
            )
        )
    return tuple(subscales)


def _item_names(spec: dict, where: str) -> tuple[str, ...]:
    """The item names: listed, or ``<item_prefix>_1 .. _k``."""
    k = spec["n_items"]
    if "items" in spec:
        items = tuple(spec["items"])
        if len(items) != k:
            raise SpecError(f"n_items is {k} but {len(items)} item names are given {where}")
        return items
    if "item_prefix" in spec:
        return tuple(f"{spec['item_prefix']}_{i}" for i in range(1, k + 1))
    raise SpecError(f"give either 'items' or 'item_prefix' {where}")


def _total_range(spec: dict, where: str) -> tuple[Any, Any]:
    """The total's range, checked against the items' range and the scoring."""
    k = spec["n_items"]
    lo, hi = spec["item_min"], spec["item_max"]
    if lo >= hi:
        raise SpecError(f"item_min ({lo}) must be below item_max ({hi}) {where}")
    scoring = spec["scoring"]
    expected = (k * lo, k * hi) if scoring == "sum" else (lo, hi)
    tmin, tmax = spec["total"]["min"], spec["total"]["max"]
    if (tmin, tmax) != expected:
        raise SpecError(
            f"total range {tmin}-{tmax} does not match {k} items {lo}-{hi} scored by {scoring} "
            f"(expected {expected[0]}-{expected[1]}) {where}"
        )
    return tmin, tmax


def _bands(cut: dict, tmin: Any, where: str) -> tuple[tuple[str, float], ...]:
    """Cutoff bands (label, lower bound), increasing and starting at the total minimum."""
    bands = tuple((str(label), float(v)) for label, v in (cut.get("bands") or {}).items())
    lows = [v for _, v in bands]
    if lows and (lows != sorted(lows) or len(set(lows)) != len(lows)):
        raise SpecError(
            f"cutoff bands must have increasing lower bounds, got {dict(bands)} {where}"
        )
    if lows and lows[0] > tmin:
        raise SpecError(f"the first cutoff band must start at the total minimum {tmin} {where}")
    return bands


def _conversions(raw: dict, where: str) -> dict[str, dict]:
    """Published conversion tables, raw score -> converted score, sorted by raw score."""
    conversions = {}
    for cname, conv in raw.items():
        try:
            table = {float(key): float(v) for key, v in conv["table"].items()}
        except ValueError as exc:
            raise SpecError(
                f"conversion {cname!r} has a non-numeric raw score {where}: {exc}"
            ) from None
        conversions[cname] = {**conv, "table": dict(sorted(table.items()))}
    return conversions


def load_instrument_file(path: str | Path) -> Instrument:
    """Read one instrument definition from a YAML file.

    Parameters
    ----------
    path
        A ``.yaml``/``.yml`` file following ``data_schemas/instrument.schema.json``.

    Returns
    -------
    Instrument

    Raises
    ------
    SpecError
        If the file is missing, is not valid YAML, or is not a valid definition.

    Examples
    --------
    >>> from peerstats.instruments import load_instrument_file, register
    >>> inst = load_instrument_file("my_scale.yaml")  # doctest: +SKIP
    >>> register(inst)  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read instrument file {str(path)!r}: {exc}") from None
    from peerstats._yaml import YAMLBudgetError, load_yaml

    try:
        spec = load_yaml(text)
    except (yaml.YAMLError, YAMLBudgetError) as exc:
        raise SpecError(f"instrument file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError(
            f"instrument file {str(path)!r} must hold a mapping, got {type(spec).__name__}"
        )
    return instrument_from_dict(spec, source=str(path))
