"""Designing the next trial: power and sample size for MMRM and partially nested designs.

- :class:`TrialDesign` (and :func:`read_design` for its YAML form,
  ``data_schemas/design-spec.schema.json``);
- :func:`power`, :func:`sample_size`, :func:`power_curve`: analytic (expected information,
  Satterthwaite df, non-central t) or by simulation (batched REML fits of the analysis model,
  scaled out with ``dask.distributed``).
"""

from peerstats.design.design import TrialDesign, read_design
from peerstats.design.power import (
    PowerCurve,
    PowerResult,
    SampleSize,
    power,
    power_curve,
    sample_size,
)

__all__ = [
    "TrialDesign",
    "read_design",
    "power",
    "sample_size",
    "power_curve",
    "PowerResult",
    "PowerCurve",
    "SampleSize",
]
