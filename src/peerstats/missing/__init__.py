"""peerstats.missing: estimands and missing data (issue 9).

- :func:`impute` - multiple imputation (bayes, approx-bayes, condmean-jackknife,
  condmean-bootstrap, bootstrap-ml) with reference-based ICE strategies (MAR, JR, CR, CIR,
  LMCF) and delta adjustment; returns :class:`Imputations` (``datasets``, ``analyse``).
- :func:`pool` - Rubin's rules with Barnard-Rubin df (as R mice).
- :func:`tipping_point` - delta grids (one or both arms) on the same imputations, locally or on a
  dask.distributed Client; :class:`TippingPoint` (``table``, ``tipping``, ``plot``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "impute": "peerstats.missing.impute",
    "Imputations": "peerstats.missing.impute",
    "pool": "peerstats.missing.pool",
    "tipping_point": "peerstats.missing.tipping",
    "TippingPoint": "peerstats.missing.tipping",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'peerstats.missing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
