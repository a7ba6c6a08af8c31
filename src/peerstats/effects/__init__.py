"""Effects: the one record every analysis returns, and analyses that work on effects.

:class:`EffectRecord` is the tidy shape of one treatment effect, whatever the outcome type
(continuous, binary, count, time to event, economic). Tables, the forest plot, the headline and
``results.json`` read records only. See ``docs/ARCHITECTURE.md``.

Issue 19 adds, imported on first use (so ``import peerstats.effects`` stays light):
:func:`subgroups`, :func:`site_heterogeneity`, :func:`meta_analysis`, :func:`mediation`,
:func:`multiple_testing` and :func:`plot_graph`.
"""

from __future__ import annotations

from peerstats._lazy import lazy_module
from peerstats.effects.record import SCALES, EffectRecord, records_frame

_LAZY = {
    "subgroups": "peerstats.effects.subgroups",
    "SubgroupAnalysis": "peerstats.effects.subgroups",
    "site_heterogeneity": "peerstats.effects.heterogeneity",
    "SiteHeterogeneity": "peerstats.effects.heterogeneity",
    "meta_analysis": "peerstats.effects.heterogeneity",
    "MetaAnalysis": "peerstats.effects.heterogeneity",
    "random_site_effect": "peerstats.effects.heterogeneity",
    "RandomSiteEffect": "peerstats.effects.heterogeneity",
    "mediation": "peerstats.effects.mediation",
    "MediationResult": "peerstats.effects.mediation",
    "MediationSensitivity": "peerstats.effects.mediation",
    "multiple_testing": "peerstats.effects.multiplicity",
    "plot_graph": "peerstats.effects.multiplicity",
}

__all__ = ["EffectRecord", "records_frame", "SCALES", *_LAZY]


__getattr__, __dir__ = lazy_module(globals(), _LAZY)
