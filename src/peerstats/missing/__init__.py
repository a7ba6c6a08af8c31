"""peerstats.missing: estimands and missing data (issue 9).

- :func:`impute` - multiple imputation (bayes, approx-bayes, condmean-jackknife,
  condmean-bootstrap, bootstrap-ml) with reference-based ICE strategies (MAR, JR, CR, CIR,
  LMCF) and delta adjustment; returns :class:`Imputations` (``datasets``, ``analyse``).
- rbmi's four steps, each alone: :func:`draws` -> :class:`Draws`, :func:`impute_from_draws`
  -> :class:`Imputations`, :func:`analyse` -> :class:`Analyses`, :func:`pool` (``impute`` is
  the first two; ``Imputations.analyse`` the last two; :func:`impute_multilevel` is
  :func:`draws_multilevel` then the same steps).
- :func:`pool` - Rubin's rules with Barnard-Rubin df (as R mice), or the method's rule for an
  :class:`Analyses`.
- :func:`tipping_point` - delta grids (one or both arms) on the same imputations, locally or on a
  dask.distributed Client; :class:`TippingPoint` (``table``, ``tipping``, ``plot``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "impute": "peerstats.missing.impute",
    "Imputations": "peerstats.missing.impute",
    "pool": "peerstats.missing.pooling",
    "tipping_point": "peerstats.missing.tipping",
    "TippingPoint": "peerstats.missing.tipping",
    # issue 23.3: rbmi's four steps, each public
    "draws": "peerstats.missing.impute",
    "Draws": "peerstats.missing.impute",
    "impute_from_draws": "peerstats.missing.impute",
    "analyse": "peerstats.missing.analyses",
    "Analyses": "peerstats.missing.analyses",
    "impute_multilevel": "peerstats.missing.multilevel",
    "draws_multilevel": "peerstats.missing.multilevel",
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
