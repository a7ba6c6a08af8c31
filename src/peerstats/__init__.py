"""peerstats: statistical analysis of randomised trials of peer support in mental health.

The public API is listed in ``__all__``. Submodules are imported lazily, so ``import peerstats``
is fast and a notebook only pays for what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

from peerstats.exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    DataValidationError,
    DataWarning,
    InsufficientDataError,
    ModelSpecificationError,
    PeerstatsError,
    PeerstatsWarning,
    ReconciliationError,
    SingularFitWarning,
    SpecError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "load_trial": "peerstats.data.load",
    "Trial": "peerstats.data.trial",
    "validate": "peerstats.data.validation",
    "TrialSpec": "peerstats.data.trial_spec",
    "read_spec": "peerstats.data.trial_spec",
    "score": "peerstats.instruments",
    "get_instrument": "peerstats.instruments",
    "list_instruments": "peerstats.instruments",
    "mmrm": "peerstats.models.mmrm",
    "lmm": "peerstats.models.lmm",
    # issue 10 (engine): the prepared MMRM for refits (MI, jackknife, bootstrap, simulation)
    "prepare_mmrm": "peerstats.models.prepared",
    "analyze": "peerstats.models.analyze",
    "datasets": "peerstats.datasets",
    # reporting (issue 5): CONSORT, tables, figures
    "consort": "peerstats.figures.consort",
    "ConsortFlow": "peerstats.figures.consort",
    "table_one": "peerstats.describe.table_one",
    "outcome_table": "peerstats.describe.outcome_table",
    "responder_analysis": "peerstats.describe.responder",
    "feasibility": "peerstats.describe.feasibility",
    "within_group_change": "peerstats.describe.feasibility",
    "response_rates": "peerstats.describe.survey",
    "describe_numeric": "peerstats.describe.survey",
    "describe_categorical": "peerstats.describe.survey",
    "render_table": "peerstats.describe.render",
    "plot_trajectories": "peerstats.figures.trajectories",
    "plot_forest": "peerstats.figures.forest",
    "plot_change": "peerstats.figures.distributions",
    "plot_attendance": "peerstats.figures.distributions",
    # issue 12 (docs): model comparison, effect sizes, residual diagnostics, labels
    "compare": "peerstats.models.effects",
    "effect_size": "peerstats.models.effects",
    "plot_diagnostics": "peerstats.figures.diagnostics",
    "Labels": "peerstats.describe.labels",
    # issue 9: multiple imputation, reference-based strategies, tipping point
    "impute": "peerstats.missing.impute",
    "Imputations": "peerstats.missing.impute",
    "pool": "peerstats.missing.pooling",
    "tipping_point": "peerstats.missing.tipping",
    "TippingPoint": "peerstats.missing.tipping",
    # estimands and sensitivity populations (issue 9.4-9.5)
    "cace": "peerstats.missing.cace",
    "complete_case": "peerstats.missing.populations",
    "per_protocol": "peerstats.missing.populations",
    "impute_multilevel": "peerstats.missing.multilevel",
    # issue 11: designing the next trial (power, sample size, power curves)
    "TrialDesign": "peerstats.design.design",
    "read_design": "peerstats.design.design",
    "power": "peerstats.design.power",
    "sample_size": "peerstats.design.power",
    "power_curve": "peerstats.design.power",
    # issue 16 (items 2, 3): GEE and marginal (g-computation) treatment effects
    "gee": "peerstats.models.gee",
    "marginal_effect": "peerstats.models.marginal",
    # issue 18: trial-based economic evaluation (EQ-5D, QALYs, costs, cost-effectiveness)
    "eq5d": "peerstats.economics.eq5d",
    "qalys": "peerstats.economics.qaly",
    "resource_costs": "peerstats.economics.costs",
    "cost_effectiveness": "peerstats.economics.cea",
    # issue 17: time to event, competing risks, group frailty
    "kaplan_meier": "peerstats.survival",
    "coxph": "peerstats.survival",
    "rmst": "peerstats.survival",
    "cumulative_incidence": "peerstats.survival",
    "fine_gray": "peerstats.survival",
    # issue 21: data in (REDCap exports, labels from the source)
    "read_redcap": "peerstats.io.redcap",
    "read_redcap_dictionary": "peerstats.io.redcap",
    # issue 19: subgroups, site heterogeneity, mediation, multiplicity
    "multiple_testing": "peerstats.effects.multiplicity",
    "plot_graph": "peerstats.effects.multiplicity",
    "mediation": "peerstats.effects.mediation",
    "subgroups": "peerstats.effects.subgroups",
    "site_heterogeneity": "peerstats.effects.heterogeneity",
    "meta_analysis": "peerstats.effects.heterogeneity",
    "random_site_effect": "peerstats.effects.heterogeneity",
    # issue 16: generalised linear mixed models (binary and count outcomes)
    "glmm": "peerstats.models.glmm",
    # issue 22.5: the same MMRM fitted to many data sets (simulation studies), one engine with power
    "mmrm_many": "peerstats.models.many",
    "ManyMMRMResult": "peerstats.models.many",
}

__all__ = [
    "__version__",
    "PeerstatsError",
    "DataValidationError",
    "SpecError",
    "ModelSpecificationError",
    "InsufficientDataError",
    "ConvergenceError",
    "ReconciliationError",
    "PeerstatsWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "DataWarning",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "datasets" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'peerstats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
