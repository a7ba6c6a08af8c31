"""peerstats.pipeline: an analysis spec (the SAP as data) in, a reproducible result folder out.

- :func:`read_analysis_spec` / :class:`AnalysisSpec` - ``analyses/<name>.yaml``, checked against
  ``data_schemas/analysis-spec.schema.json``.
- :func:`run` - write ``report.html``, ``results.json``, ``tables/``, ``figures/``,
  ``manifest.json`` atomically (``peerstats run SPEC --out DIR``); :func:`run_analysis` computes
  the same in memory.
- :func:`compare_results` - compare results with stored expected results at stated tolerances
  (``peerstats check``).

Everything here calls the public peerstats API; no statistics are computed in this layer.
"""

from __future__ import annotations

from peerstats.pipeline.analysis_spec import AnalysisSpec, analysis_spec_schema, read_analysis_spec
from peerstats.pipeline.check import Comparison, compare_results, load_results
from peerstats.pipeline.run import AnalysisRun, Progress, run, run_analysis, write_results

__all__ = [
    "AnalysisSpec",
    "read_analysis_spec",
    "analysis_spec_schema",
    "run",
    "run_analysis",
    "write_results",
    "AnalysisRun",
    "Progress",
    "compare_results",
    "load_results",
    "Comparison",
]
