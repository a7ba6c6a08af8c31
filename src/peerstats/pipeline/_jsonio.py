"""Deterministic JSON: plain Python values from pandas/numpy objects, stable text.

Floats are written with Python's shortest round-trip representation (``repr``), so the same
numbers always give the same bytes and reading them back gives the same doubles. NaN and
infinities become ``null`` (JSON has no such numbers). Key order is the order of insertion,
which the pipeline keeps fixed (spec order for outcomes, visits and arms).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plain", "dumps", "frame_records", "frame_keyed"]


def plain(value: Any) -> Any:
    """Convert ``value`` (nested dicts/lists of numpy / pandas scalars) to JSON-able Python."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return frame_records(value)
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, Sequence):
        return [plain(v) for v in value]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as a list of row dicts (columns in frame order)."""
    cols = [str(c) for c in df.columns]
    return [
        {c: plain(v) for c, v in zip(cols, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]


def _key_part(value: Any) -> str:
    v = plain(value)
    return "" if v is None else str(v)


def frame_keyed(df: pd.DataFrame, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A DataFrame as ``{"k1|k2|...": {other columns}}`` so results have stable, named paths.

    Missing key values are written as empty strings; a repeated key gets ``#2``, ``#3``...
    """
    keys = [k for k in keys if k in df.columns]
    out: dict[str, dict[str, Any]] = {}
    for rec in frame_records(df):
        key = "|".join(_key_part(rec.pop(k)) for k in keys)
        name, i = key, 1
        while name in out:
            i += 1
            name = f"{key}#{i}"
        out[name] = rec
    return out


def dumps(obj: Any) -> str:
    """Deterministic, indented JSON text (UTF-8 safe, trailing newline)."""
    return json.dumps(plain(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
