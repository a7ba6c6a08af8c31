"""The primary model refitted with a treatment-by-subgroup interaction, one variable at a time,
on post-baseline rows prepared once (issue 22).

:func:`peerstats.analyze` with ``terms=["var * arm * visit"]`` and ``var`` among the covariates
rebuilds everything for each subgroup variable: it merges the covariates into the assessments,
computes the baseline SD, selects the post-baseline rows and, after the fit, the primary
contrasts and Cohen's d, which a subgroup analysis does not use. :class:`Refitter` merges the
covariates and every subgroup variable once and selects the post-baseline rows once; each refit
takes a copy without the other variables' columns (a variable that is a covariate already gets
rows of its own, the covariate recoded). That copy is the frame ``analyze`` builds for
that variable (same rows, index, column order and dtypes: a left merge keeps the left rows in
order, and each merged column depends on its own participant column only), fitted through the
same steps of :mod:`peerstats.models.analyze` (strata, formula, options, model), so the fit is
the same, bit for bit (``tests/effects/test_subgroup_refit.py`` compares every number with
``analyze``). Variables this path does not cover (already a covariate or a column of the
assessments, a single-arm design) go through ``analyze`` itself.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from peerstats.exceptions import DataWarning

__all__ = ["Refitter"]


class _TrialView:
    """What :func:`peerstats.analyze` reads of a trial, with recoded participant columns."""

    def __init__(self, trial: Any, participants: pd.DataFrame) -> None:
        self.spec = trial.spec
        self.assessments = trial.assessments
        self.participants = participants


class Refitter:
    """Refit ``outcome``'s primary model with ``var * arm (* visit)`` for each recoded subgroup
    variable.

    A variable that is not a covariate is merged with the others into rows shared by their
    refits; one that is a covariate already gets its own rows with that covariate recoded (as
    ``analyze`` would see it); a column of the assessments, or a single-arm design, goes
    through ``analyze``.

    Parameters
    ----------
    trial : Trial
        The validated trial.
    outcome : str
        The outcome of the primary model.
    covariates : list of str
        The primary model's baseline covariates.
    df : str
        Degrees-of-freedom method of the fit.
    recoded : dict of str to Series
        Subgroup variable -> its participant column as the refit uses it (categorical levels
        recoded), indexed as ``trial.participants``.
    """

    def __init__(
        self, trial: Any, outcome: str, covariates: list[str], df: str,
        recoded: dict[str, pd.Series],
    ) -> None:
        self.trial, self.outcome, self.df = trial, outcome, df
        self.covariates = covariates
        plain = [
            v for v in recoded if v not in trial.assessments.columns
        ] if trial.spec.design != "single-arm" else []
        #: variables added to the covariates (shared rows) / already covariates (own rows)
        self.fast = [v for v in plain if v not in covariates]
        self.own = [v for v in plain if v in covariates]
        self.recoded = recoded
        self._post: pd.DataFrame | None = None

    def fit(self, var: str, term: str) -> Any:
        """The fit of the primary model plus ``term`` (the interaction of ``var``)."""
        if var in self.fast:
            if self._post is None:
                self._post = self._prepare(self.fast, self.fast)
            others = [v for v in self.fast if v != var]
            return self._fit_rows(self._post.drop(columns=others), [*self.covariates, var], term)
        if var in self.own:  # a covariate already: analyze's rows with that covariate recoded
            return self._fit_rows(self._prepare([var], []), self.covariates, term)
        return self._fit_by_analyze(var, term)

    def _participants(self, var: str) -> pd.DataFrame:
        part = self.trial.participants.copy()
        part[var] = self.recoded[var]
        return part

    def _fit_by_analyze(self, var: str, term: str) -> Any:
        from peerstats.models.analyze import analyze

        covs = list(dict.fromkeys(
            self.covariates + ([] if var in self.trial.assessments.columns else [var])))
        view = _TrialView(self.trial, self._participants(var))
        with warnings.catch_warnings():  # the primary fit has already warned about the same rows
            warnings.simplefilter("ignore", DataWarning)
            return analyze(view, outcome=self.outcome, df=self.df, covariates=covs,
                           terms=[term]).fit

    def _prepare(self, recode: list[str], extra: list[str]) -> pd.DataFrame:
        """The post-baseline rows of ``analyze`` with the participant columns ``recode``
        recoded and the covariates then ``extra`` merged in (in that order, as ``analyze``
        merges ``covariates + [var]``)."""
        from peerstats.models.analyze import _post_baseline, _with_covariates

        part = self.trial.participants.copy()
        for v in recode:
            part[v] = self.recoded[v]
        view = _TrialView(self.trial, part)
        spec = self.trial.spec
        a = _with_covariates(view, [*self.covariates, *extra])
        with warnings.catch_warnings():  # as above: the primary fit has warned already
            warnings.simplefilter("ignore", DataWarning)
            post, self._present = _post_baseline(
                a, self.outcome, list(spec.visits), [str(x) for x in spec.arms.levels], []
            )
        return post

    def _fit_rows(self, post: pd.DataFrame, covs: list[str], term: str) -> Any:
        """``analyze``'s steps after the post-baseline rows: strata, formula, model
        (``covs``: the covariates of the refit)."""
        from peerstats.models.analyze import _fit_model, _strata

        spec, outcome = self.trial.spec, self.outcome
        observed = post[outcome].notna()
        many = len(self._present) > 1
        strata = _strata(post, spec, observed, covs)
        rhs = [f"{outcome}_baseline", *strata, *covs, "arm * visit" if many else "arm"]
        fixed = f"{outcome} ~ " + " + ".join([*rhs, term])
        arms = [str(x) for x in spec.arms.levels]
        opts = {"df": self.df, "reference": {"arm": spec.arms.reference or arms[0]},
                "vcov": "model"}
        delivered = [str(x) for x in spec.arms.group_delivered]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            fit, *_ = _fit_model(post, fixed, delivered, observed, many, None, None, [], opts)
        return fit
