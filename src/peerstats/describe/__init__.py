"""peerstats.describe: baseline tables, outcome tables, responder, feasibility and survey
descriptives. Every function returns a :class:`~peerstats.describe.render.Table` (tidy raw
numbers in ``.data``, the printed table in ``.display``, ``render("markdown"|"html"|"latex")``).
"""

from peerstats.describe.feasibility import attendance, feasibility, wilson_ci, within_group_change
from peerstats.describe.outcome_table import outcome_table, pooled_sd
from peerstats.describe.render import Table, render_table
from peerstats.describe.responder import reliable_change, responder_analysis, risk_difference
from peerstats.describe.survey import describe_categorical, describe_numeric, response_rates
from peerstats.describe.table_one import standardised_difference, table_one

__all__ = [
    "Table",
    "attendance",
    "describe_categorical",
    "describe_numeric",
    "feasibility",
    "outcome_table",
    "pooled_sd",
    "reliable_change",
    "render_table",
    "responder_analysis",
    "response_rates",
    "risk_difference",
    "standardised_difference",
    "table_one",
    "wilson_ci",
    "within_group_change",
]
