"""peerstats.models: mixed models for trials on one REML/ML engine.

- :func:`mmrm` - mixed model for repeated measures (SAS PROC MIXED ``REPEATED``), structured
  residual covariance across visits, Satterthwaite / Kenward-Roger df, marginal means.
- :func:`lmm` - linear mixed models with lme4-style random effects (issue 4), same engine.
- :class:`MixedModelResult` - the shared, immutable result.
- :func:`glmm` - generalised linear mixed models (binomial, Poisson, NB2; Laplace / adaptive
  Gauss-Hermite; zero-inflated and hurdle counts), issue 16; result :class:`GLMMResult`.

Names are imported lazily so ``import peerstats.models`` stays cheap.
"""

from __future__ import annotations

from peerstats._lazy import lazy_module

_LAZY = {
    "mmrm": "peerstats.models.mmrm",
    "prepare_mmrm": "peerstats.models.prepared",
    "PreparedMMRM": "peerstats.models.prepared",
    "Refit": "peerstats.models.prepared",
    "MixedModelResult": "peerstats.models.results",
    "lmm": "peerstats.models.lmm",
    "LMMResult": "peerstats.models.lmm",
    "analyze": "peerstats.models.analyze",
    # issue 16: generalised linear mixed models
    "glmm": "peerstats.models.glmm",
    "GLMMResult": "peerstats.models._glmm_result",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_module(globals(), _LAZY)
