"""Time-to-event analysis for trials (issue 17): Kaplan-Meier, log-rank, Cox (strata, robust
cluster variance, gamma frailty, Schoenfeld tests), RMST, competing risks (Aalen-Johansen /
Gray's test, Fine-Gray), validated against R survival, survRM2 and cmprsk."""

from .cox import CoxResult, coxph

__all__ = ["coxph", "CoxResult"]
