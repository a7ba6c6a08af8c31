"""Time-to-event analysis for trials (issue 17).

Kaplan-Meier with R's CIs and median rule, (stratified) log-rank, Cox models (Efron/Breslow,
strata, robust cluster variance, shared gamma frailty, ``cox.zph``), RMST (survRM2),
cumulative incidence with Gray's test and Fine-Gray regression (cmprsk). All validated against
R in tests/reference/r_survival/.
"""

from .competing import CumulativeIncidence, cumulative_incidence, fine_gray
from .cox import CoxResult, coxph
from .km import KaplanMeier, kaplan_meier
from .rmst import RMST, rmst

__all__ = [
    "kaplan_meier", "KaplanMeier", "coxph", "CoxResult", "rmst", "RMST",
    "cumulative_incidence", "CumulativeIncidence", "fine_gray",
]
