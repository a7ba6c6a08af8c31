"""Trial-based economic evaluation (issue 18): EQ-5D utilities from published value sets,
QALYs by area under the curve, costs from resource use x unit costs, and cost-effectiveness
(SUR or bootstrap) with ICER, net monetary benefit and the acceptability curve."""

from peerstats.economics.cea import CostEffectiveness, cost_effectiveness
from peerstats.economics.costs import resource_costs, unit_cost_table
from peerstats.economics.eq5d import DIMENSIONS, ValueSet, eq5d, load_value_set, value_sets
from peerstats.economics.plots import acceptability, ce_plane, ceac_plot, evpi, evpi_plot
from peerstats.economics.qaly import qalys

__all__ = [
    "eq5d", "value_sets", "load_value_set", "ValueSet", "DIMENSIONS", "qalys",
    "resource_costs", "unit_cost_table", "cost_effectiveness", "CostEffectiveness",
    "ce_plane", "ceac_plot", "acceptability", "evpi", "evpi_plot",
]  # fmt: skip
