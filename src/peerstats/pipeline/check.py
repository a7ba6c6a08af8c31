"""Compare a run's ``results.json`` with a stored one (``peerstats check``).

Both files are flattened to ``path -> value`` (``models/qpr15/coefficients/arm[T.peer]/estimate``);
numbers match when ``|a - e| <= atol + rtol * |e|`` (``numpy.isclose``), everything else
(text, booleans, missing values) must be equal. Keys present in one file only are drift too.
``primary/sentence``-style display text is not compared: it is derived from checked numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from peerstats.exceptions import SpecError

__all__ = ["compare_results", "Comparison", "load_results", "flatten", "RTOL", "ATOL"]

RTOL = 1e-4
"""Default relative tolerance: the printed precision of SAS/R references (openpharma/mmrm)."""
ATOL = 1e-8
"""Default absolute tolerance, for values near zero (tiny p-values)."""

IGNORED_KEYS = frozenset({"sentence"})


def load_results(path: str | Path) -> dict:
    """Read ``results.json`` from a file or a result folder.

    Raises
    ------
    SpecError
        No such file, or not JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise SpecError(f"no results file at {p}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{p} is not a peerstats results file (its top level is not an object)")
    return doc


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a/b/0": 1, "a/b/1": 2}`` (empty containers kept)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = {}
        for k, v in obj.items():
            if k in IGNORED_KEYS:
                continue
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        if not obj and prefix:
            out[prefix] = []
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}/{i}" if prefix else str(i)))
    else:
        out[prefix] = obj
    return out


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_results`.

    Attributes
    ----------
    drift : DataFrame
        One row per differing value: ``path, expected, actual, abs_diff, rel_diff, status``
        (status ``changed``, ``missing`` (in actual), ``new`` (not expected)).
    n_compared : int
        Values compared.
    rtol, atol : float
    """

    drift: pd.DataFrame
    n_compared: int
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        """True when nothing drifted."""
        return self.drift.empty

    def to_text(self, max_rows: int = 50) -> str:
        """A plain-text table of what drifted."""
        head = f"{self.n_compared} values compared (rtol {self.rtol:g}, atol {self.atol:g}): "
        if self.ok:
            return head + "all match."
        d = self.drift
        lines = [head + f"{len(d)} drifted."]
        max_rows = max(0, int(max_rows))
        if max_rows == 0:  # the count only (--max-rows 0)
            return lines[0]
        shown = d.head(max_rows).copy()

        def fmt(x: Any) -> str:
            if x is None or (isinstance(x, float) and math.isnan(x)):
                return "-"
            if _is_num(x):
                return f"{x:.10g}"
            s = json.dumps(x) if not isinstance(x, str) else x
            return s if len(s) <= 40 else s[:37] + "..."

        cols = ["status", "path", "expected", "actual", "abs_diff", "rel_diff"]
        cells = [
            [str(r["status"]), str(r["path"])] + [fmt(r[c]) for c in cols[2:]]
            for _, r in shown.iterrows()
        ]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
        lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)
        if len(d) > max_rows:
            lines.append(f"... and {len(d) - max_rows} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()


def compare_results(
    actual: dict | str | Path,
    expected: dict | str | Path,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Comparison:
    """Compare two results (dicts, results.json files or result folders).

    Parameters
    ----------
    actual, expected : dict or path
    rtol, atol : float
        Numbers ``a`` (actual) and ``e`` (expected) match when
        ``|a - e| <= atol + rtol * |e|``.

    Returns
    -------
    Comparison
    """
    if not (math.isfinite(rtol) and math.isfinite(atol)) or rtol < 0 or atol < 0:
        raise SpecError(f"tolerances must be finite and non-negative; got rtol={rtol}, atol={atol}")
    a = flatten(actual if isinstance(actual, dict) else load_results(actual))
    e = flatten(expected if isinstance(expected, dict) else load_results(expected))
    rows = []
    n = 0
    for path, ev in e.items():
        if path not in a:
            rows.append((path, ev, None, None, None, "missing"))
            continue
        av = a[path]
        n += 1
        if _is_num(ev) and _is_num(av):
            x, y = float(av), float(ev)
            if not (math.isfinite(x) and math.isfinite(y)):
                same = x == y or (math.isnan(x) and math.isnan(y))  # inf == inf, NaN == NaN
                if not same:
                    rows.append((path, ev, av, None, None, "changed"))
                continue
            diff = abs(x - y)
            if not diff <= atol + rtol * abs(y):
                rel = diff / abs(y) if y != 0 else math.inf
                rows.append((path, ev, av, diff, rel, "changed"))
        elif type(ev) is not type(av) or ev != av:  # True is not 1
            rows.append((path, ev, av, None, None, "changed"))
    for path, av in a.items():
        if path not in e:
            rows.append((path, None, av, None, None, "new"))
    drift = pd.DataFrame(
        rows, columns=["path", "expected", "actual", "abs_diff", "rel_diff", "status"]
    )
    return Comparison(drift=drift, n_compared=n, rtol=rtol, atol=atol)
