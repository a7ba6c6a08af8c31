"""Multiple imputation for trials in rbmi's four steps: draws, impute, analyse, pool.

``peerstats.impute(...)`` is the composition of the first two steps; each step is a public
function that can be read, called and tested alone, as in R rbmi (Gower-Page et al. 2022,
``draws()`` -> ``impute()`` -> ``analyse()`` -> ``pool()``):

============================  =====================================================================
rbmi                          peerstats
============================  =====================================================================
``draws(data, vars, method)``  :func:`draws` -> :class:`Draws`: checks every input, builds the
                              subject x visit grid, applies the ICEs (set-aside values), fits the
                              imputation MMRM and draws its parameters by the method (Gibbs
                              sampler, bootstrap or jackknife refits; :mod:`._draws`).
``impute(draws, references)``  :func:`impute_from_draws` -> :class:`Imputations`: each subject's
                              strategy (MAR, JR, CR, CIR, LMCF; references fixed in the draws)
                              applied to every parameter draw, conditional mean or draw of every
                              missing or set-aside cell.
``analyse(imputations, fun)``  :func:`peerstats.missing.analyse` -> :class:`Analyses`: the
                              per-visit ANCOVA, a user function or an LMM with random terms
                              (``model=``) on each completed set, with an optional delta.
``pool(analysis)``            :func:`peerstats.missing.pool`: the rule of the method (Rubin with
                              Barnard-Rubin df, jackknife, bootstrap, von Hippel & Bartlett).
============================  =====================================================================

Differences from rbmi: the references (``reference=``) and the delta are given to
:func:`draws` (they are checked with the other inputs, before any fit) rather than to impute and
analyse; ``Imputations.with_delta`` changes the delta afterwards without new draws, so one set of
draws and imputations serves every delta of a tipping-point grid. ``Imputations.analyse`` is
``pool(analyse(...))``. :func:`peerstats.missing.impute_multilevel` has its own draws (a Gibbs
sampler with a delivery-group random effect that imputes as it samples, as jomo) and shares the
impute (:func:`impute_from_draws`), analyse and pool steps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Required, TypedDict, Unpack

import numpy as np
import pandas as pd

from peerstats._repr import SummaryAsRepr
from peerstats.exceptions import ConvergenceError, ModelSpecificationError
from peerstats.missing import _draws
from peerstats.missing._base import _Cells
from peerstats.missing._inputs import (
    _DEFAULT_M,  # noqa: F401  (kept importable from here)
    METHODS,
    _cells,
    _check_impute_args,
    _grid_frame,  # noqa: F401  (kept importable from here)
    _levels,
    _n_draws,
    _seed_sequence,
    _subject_grid,
)
from peerstats.missing.imputations import Imputations
from peerstats.missing.strategies import compute_sigma, conditional_impute, strategy_means

__all__ = [
    "impute",
    "draws",
    "impute_from_draws",
    "Draws",
    "ImputeOptions",
    "Imputations",
    "METHODS",
]

MethodName = Literal[
    "bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml"
]


def _prepare(formula, data, **kw):
    """The engine's prepared MMRM (one design, cheap refits)."""
    from peerstats.models.prepared import prepare_mmrm

    return prepare_mmrm(formula, data, **kw)


# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False, eq=False)
class Draws(SummaryAsRepr, _Cells):
    """Parameter draws of the imputation model (step 1 of 4; rbmi's ``draws`` object).

    Made by :func:`draws` (or :func:`peerstats.missing.draws_multilevel`); turned into completed
    datasets by :func:`impute_from_draws`. The subject x visit data, the cells to impute
    (``target``: missing, or set aside after a non-MAR intercurrent event), each subject's
    strategy and the delta are fixed here (the fields shared with :class:`Imputations`);
    ``parameters`` holds the draws (``beta`` (S, p) and ``sigma`` (S, G, T, T) of the MMRM;
    for the multilevel sampler ``B``, ``Omega``, ``Sigma``).
    """

    parameters: dict  # the draws (see the class docstring)
    weights: np.ndarray | None = None  # resampling weights of each set (see Imputations)
    rows: np.ndarray | None = None  # bootstrap-ml rows (see Imputations)
    D: int | None = None
    design: dict = field(default_factory=dict)  # X_all, X_ref (nT, p), g_of, r_of
    random: bool = True  # False: conditional mean imputation
    seed: Any = None  # the SeedSequence entropy
    impute_seed: Any = None  # the SeedSequence of the impute step's random stream
    values: np.ndarray | None = None  # imputed within the sampler (data augmentation)
    info: dict = field(default_factory=dict)
    client: Any = None

    @property
    def n_draws(self) -> int:
        """Number of parameter draws (= completed datasets the impute step makes)."""
        first = next(iter(self.parameters.values()))
        return int(np.shape(first)[0])

    def summary(self) -> str:
        """Plain text: method, draws, subjects and cells to impute."""
        return (
            f"Draws: method {self.method}, {self.n_draws} parameter draws of the imputation "
            f"model; {len(self.subjects)} subjects, {len(self.visits)} visits, "
            f"{int(self.target.sum())} cells to impute"
        )

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(self.summary())}</p>"


# ------------------------------------------------------------------------------------------
def _covariance_groups(prep, fit_frame, group, arm, grid, ref_map):
    """(G, covariance group of each subject, group of each subject's reference arm)."""
    n, T = len(grid.subjects), len(grid.visit_levels)
    if group is None:
        g_of = np.zeros(n, dtype=np.int64)
        return 1, g_of, g_of
    glev = [str(g) for g in prep.group_levels]
    g_of = pd.Index(glev).get_indexer(fit_frame[group].astype(str).to_numpy()[::T])
    if group == arm:
        r_of = pd.Index(glev).get_indexer([ref_map[grid.arm_levels[a]] for a in grid.arm_of])
    else:
        r_of = g_of
    return len(glev), g_of, r_of


def _imputation_model(
    formula, data, grid, cells, *, outcome, subject, visit, arm, covariance, group
):
    """Fit the imputation MMRM to the outcomes kept; its designs as observed and with each
    subject's reference arm (for JR, CR, CIR)."""
    n, T = len(grid.subjects), len(grid.visit_levels)
    fit_frame = grid.frame.copy()
    fit_frame[outcome] = cells["y"].reshape(-1)
    for c in (visit,) + ((group,) if group else ()):
        if not isinstance(fit_frame[c].dtype, pd.CategoricalDtype):
            fit_frame[c] = pd.Categorical(fit_frame[c], categories=_levels(data[c]))
    if not isinstance(fit_frame[arm].dtype, pd.CategoricalDtype):
        fit_frame[arm] = pd.Categorical(fit_frame[arm], categories=grid.arm_levels_raw)
    prep = _prepare(
        formula, fit_frame, subject=subject, visit=visit, covariance=covariance, group=group
    )
    X_all = np.asarray(prep.X_all, dtype=float)
    ref_frame = fit_frame.copy()
    raw, txt = grid.arm_levels_raw, grid.arm_levels
    ref_arm_raw = [raw[txt.index(cells["reference"][a])] for a in txt]
    ref_frame[arm] = pd.Categorical(
        np.repeat(np.array(ref_arm_raw, dtype=object)[grid.arm_of], T), categories=raw
    )
    X_ref = np.asarray(prep.design_matrix(ref_frame), dtype=float)
    G, g_of, r_of = _covariance_groups(prep, fit_frame, group, arm, grid, cells["reference"])
    eng_pos = pd.Index(prep.subjects).get_indexer(grid.subjects)
    full = prep.refit()
    if not full.converged:
        raise ConvergenceError("the imputation model did not converge on the full data")
    model = _draws._Model(
        prep, full, n, T, X_all.shape[1], G, grid.arm_of, len(grid.arm_levels), eng_pos
    )
    return model, {"X_all": X_all, "X_ref": X_ref, "g_of": g_of, "r_of": r_of}


def _parameter_draws(method, model, design, y, n_par, D, rng, client, prior) -> tuple:
    """(betas, sigmas, {weights, rows, random}, info) of the method."""
    info: dict[str, Any] = {"n_failed_draws": 0}
    if method == "bayes":
        betas, sigmas, extra = _draws.bayes_draws(
            model, design["X_all"], y, design["g_of"], n_par, rng, prior
        )
        info.update(extra)
        return betas, sigmas, {"weights": None, "rows": None, "random": True}, info
    if method == "condmean-jackknife":
        betas, sigmas, weights = _draws.jackknife_draws(model)
        return betas, sigmas, {"weights": weights, "rows": None, "random": False}, info
    betas, sigmas, weights, rows = _draws.resampling_draws(model, method, n_par, D, rng, client)
    random = method != "condmean-bootstrap"
    return betas, sigmas, {"weights": weights, "rows": rows, "random": random}, info


def _data_fields(subjects, visit_levels, arm_levels, frame, arm_of) -> dict:
    """The subject x visit fields of a Draws."""
    return {
        "subjects": subjects,
        "visits": tuple(visit_levels),
        "arm_levels": tuple(arm_levels),
        "frame": frame,
        "arm_of": arm_of,
    }


def _cell_fields(cells: dict) -> dict:
    """The fields of a Draws that say which cells are imputed, how, and their delta."""
    return {
        "y": cells["y"],
        "target": cells["target"],
        "missing": cells["missing"],
        "set_aside": cells["set_aside"],
        "ice_visit": cells["ice_k"],
        "strategy": cells["strategy"],
        "delta": cells["delta"],
    }


class ImputeOptions(TypedDict, total=False):
    """The keyword arguments of :func:`peerstats.impute`, which :func:`draws` takes as they are."""

    subject: Required[str]
    visit: Required[str]
    arm: Required[str]
    method: Required[MethodName]
    n_imputations: int | tuple[int, int] | None
    ice: pd.DataFrame | None
    reference: Mapping[str, str] | str | None
    delta: pd.DataFrame | Mapping | None
    seed: int | np.random.SeedSequence | None
    covariance: str
    group: str | None
    client: Any
    post_ice: Literal["keep", "impute", "error"]
    prior: Literal["jeffreys", "rbmi"]


_OPTION_DEFAULTS = {
    "n_imputations": None,
    "ice": None,
    "reference": None,
    "delta": None,
    "seed": None,
    "covariance": "us",
    "group": None,
    "client": None,
    "post_ice": "impute",
    "prior": "jeffreys",
}


def _options(options: dict, defaults: dict, required: tuple, what: str) -> dict:
    """Keyword options with their defaults; unknown or missing names refused."""
    unknown = sorted(set(options) - set(defaults) - set(required))
    if unknown:
        raise ModelSpecificationError(
            f"{what}() got unknown argument(s) {unknown}; it takes {[*required, *defaults]}"
        )
    absent = [k for k in required if k not in options]
    if absent:
        raise ModelSpecificationError(f"{what}() needs the argument(s) {absent}")
    return {**defaults, **options}


def draws(formula: str, data: pd.DataFrame, **options: Unpack[ImputeOptions]) -> Draws:
    """Fit the imputation model and draw its parameters (step 1 of 4, rbmi ``draws()``).

    Parameters
    ----------
    formula : str
        The imputation model, as :func:`peerstats.impute`.
    data : DataFrame
        Long data, one row per subject and visit.
    **options
        The keyword arguments of :func:`peerstats.impute` (``subject``, ``visit``, ``arm``,
        ``method`` required; ``n_imputations``, ``ice``, ``reference``, ``delta``, ``seed``,
        ``covariance``, ``group``, ``client``, ``post_ice``, ``prior``), with the same
        meaning and defaults: ``impute(...)`` is ``impute_from_draws(draws(...))``.

    Returns
    -------
    Draws
        The checked data (grid, strategies, cells to impute, delta) and the parameter draws:
        ``parameters["beta"]`` (S, p), ``parameters["sigma"]`` (S, G, T, T). For the
        condmean methods the first draw is the full-data fit, then one per leave-one-out or
        bootstrap refit; for bootstrap-ml each refit is repeated D times.

    Raises
    ------
    ModelSpecificationError
        As :func:`peerstats.impute`, all before any fitting.
    ConvergenceError
        The imputation model or one of its refits did not converge.

    Notes
    -----
    ``seed`` spawns two streams (``numpy.random.SeedSequence(seed).spawn(2)``): the first draws
    the parameters (Gibbs sampler or bootstrap samples), the second is kept in
    ``Draws.impute_seed`` for the impute step, so ``impute_from_draws`` gives the same values
    every time it is called on the same draws.
    """
    t0 = time.perf_counter()
    o = _options(options, _OPTION_DEFAULTS, ("subject", "visit", "arm", "method"), "draws")
    method, client = o["method"], o["client"]
    cols = {"subject": o["subject"], "visit": o["visit"], "arm": o["arm"]}
    opts = {k: o[k] for k in ("method", "group", "post_ice", "prior")}
    covariance, outcome, rhs_vars = _check_impute_args(
        formula, data, covariance=o["covariance"], **cols, **opts
    )
    n_par, D = _n_draws(method, o["n_imputations"])
    ss = _seed_sequence(o["seed"])
    grid = _subject_grid(data, outcome=outcome, rhs_vars=rhs_vars, **cols)
    cells = _cells(grid, **{k: o[k] for k in ("ice", "reference", "delta", "post_ice")}, **cols)
    fit_opts = {"outcome": outcome, "covariance": covariance, "group": o["group"]}
    model, design = _imputation_model(formula, data, grid, cells, **fit_opts, **cols)
    draw_ss, impute_ss = ss.spawn(2)
    rng = np.random.default_rng(draw_ss)
    betas, sigmas, resampling, info = _parameter_draws(
        method, model, design, cells["y"], n_par, D, rng, client, o["prior"]
    )
    info["seconds"] = time.perf_counter() - t0
    info["reference"] = cells["reference"]
    return Draws(
        method=method,
        outcome=outcome,
        **cols,
        **_data_fields(grid.subjects, grid.visit_levels, grid.arm_levels, grid.frame, grid.arm_of),
        **_cell_fields(cells),
        parameters={"beta": betas, "sigma": sigmas, "columns": list(model.prep.columns)},
        **resampling,
        D=D,
        design=design,
        seed=ss.entropy,
        impute_seed=impute_ss,
        info=info,
        client=client,
    )


# ------------------------------------------------------------------------------------------
def _check_draws(d) -> None:
    """A Draws whose parts agree (a mismatched object is refused before imputing)."""
    if not isinstance(d, Draws):
        raise ModelSpecificationError(
            f"impute_from_draws needs a Draws (from peerstats.missing.draws); got "
            f"{type(d).__name__}"
        )
    n, T = d.y.shape
    n_target = int(d.target.sum())
    if d.values is not None:
        if d.values.ndim != 2 or d.values.shape[1] != n_target:
            raise ModelSpecificationError(
                f"the draws hold imputed values for {d.values.shape[1:]} cells but {n_target} "
                "cells are to be imputed"
            )
        return
    beta, sigma = d.parameters.get("beta"), d.parameters.get("sigma")
    X = d.design.get("X_all")
    if beta is None or sigma is None or X is None:
        raise ModelSpecificationError("the draws lack beta, sigma or the model design")
    S = beta.shape[0]
    problems = []
    if sigma.shape[0] != S:
        problems.append(f"{S} beta draws but {sigma.shape[0]} covariance draws")
    if beta.shape[1] != X.shape[1]:
        problems.append(f"beta has {beta.shape[1]} columns, the design {X.shape[1]}")
    if sigma.shape[-1] != T or X.shape[0] != n * T:
        problems.append(f"the covariance or design does not fit {n} subjects x {T} visits")
    if d.weights is not None and d.weights.shape[0] != S:
        problems.append(f"{d.weights.shape[0]} weight rows for {S} draws")
    if problems:
        raise ModelSpecificationError("mismatched draws: " + "; ".join(problems))


def _conditional_values(d: Draws) -> np.ndarray:
    """(S, n_target) imputed values of every draw (conditional mean or conditional draw)."""
    beta, sigma = d.parameters["beta"], d.parameters["sigma"]
    X_all, X_ref, g_of, r_of = (d.design[k] for k in ("X_all", "X_ref", "g_of", "r_of"))
    rng = np.random.default_rng(d.impute_seed)
    if d.rows is None:
        return _impute_values(
            beta,
            sigma,
            X_all,
            X_ref,
            d.y,
            d.target,
            d.ice_visit,
            d.strategy,
            g_of,
            r_of,
            rng if d.random else None,
        )
    T = len(d.visits)
    r = d.rows
    xr = (r[:, None] * T + np.arange(T)[None, :]).reshape(-1)
    return _impute_values(
        beta,
        sigma,
        X_all[xr],
        X_ref[xr],
        d.y[r],
        d.target[r],
        d.ice_visit[r],
        d.strategy[r],
        g_of[r],
        r_of[r],
        rng,
    )


def impute_from_draws(draws: Draws) -> Imputations:
    """Impute every target cell from each parameter draw (step 2 of 4, rbmi ``impute()``).

    Parameters
    ----------
    draws : Draws
        From :func:`draws` (or :func:`peerstats.missing.draws_multilevel`, whose sampler has
        already imputed as it sampled: its values are taken as they are).

    Returns
    -------
    Imputations
        One completed dataset per draw (``datasets``), to analyse and pool.

    Raises
    ------
    ModelSpecificationError
        Not a Draws, or its parts disagree (number of beta and covariance draws, design
        columns, subjects x visits, weights).

    Notes
    -----
    Per draw and subject, the strategy's mean (MAR: own arm; JR, CR, CIR, LMCF: Carpenter,
    Roger & Kenward 2013, :mod:`peerstats.missing.strategies`) and covariance, then the
    conditional mean (condmean methods) or one conditional normal draw of the target cells
    given the subject's kept outcomes. Validated with rbmi in tests/missing/test_strategies.py
    and test_impute.py.
    """
    t0 = time.perf_counter()
    _check_draws(draws)
    values = draws.values if draws.values is not None else _conditional_values(draws)
    info = dict(draws.info)
    info["seconds"] = info.get("seconds", 0.0) + time.perf_counter() - t0
    carried = [f.name for f in fields(_Cells)] + ["weights", "rows", "D", "seed", "client"]
    shared = {name: getattr(draws, name) for name in carried}
    return Imputations(**shared, values=values, draws=dict(draws.parameters), info=info)


# ------------------------------------------------------------------------------------------
def impute(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    method: MethodName,
    n_imputations: int | tuple[int, int] | None = None,
    ice: pd.DataFrame | None = None,
    reference: Mapping[str, str] | str | None = None,
    delta: pd.DataFrame | Mapping | None = None,
    seed: int | np.random.SeedSequence | None = None,
    covariance: str = "us",
    group: str | None = None,
    client: Any = None,
    post_ice: Literal["keep", "impute", "error"] = "impute",
    prior: Literal["jeffreys", "rbmi"] = "jeffreys",
) -> Imputations:
    """Multiple imputation of a trial's missing outcomes, with reference-based strategies.

    Parameters
    ----------
    formula : str
        The imputation model, an MMRM mean such as ``"qpr15 ~ arm * visit + qpr15_baseline"``.
        It must contain ``arm``.
    data : DataFrame
        Long data, one row per subject and visit (absent rows are added; subject-level columns
        are copied into them).
    subject, visit, arm : str
        Columns. Visit order is the Categorical order, else sorted; the first arm level (same
        rule) is the reference of the analysis contrasts.
    method : {"bayes", "approx-bayes", "condmean-jackknife", "condmean-bootstrap", "bootstrap-ml"}
        ``bayes``: posterior draws of beta and Sigma by data-augmentation Gibbs sampling of the
        unstructured MMRM (flat prior on beta; prior on Sigma from ``prior``; see
        ``peerstats.missing._bayes``), one imputation per draw. ``approx-bayes``: one bootstrap
        sample of subjects (stratified by arm) per imputation, REML refit (Little & Rubin 2002).
        ``condmean-jackknife`` / ``condmean-bootstrap``: conditional mean imputation (Wolbers et
        al. 2022), deterministic, with leave-one-subject-out / bootstrap refits for the standard
        error. ``bootstrap-ml``: von Hippel & Bartlett (2021), B bootstrap samples x D random
        imputations.
    n_imputations : int or (B, D), optional
        Completed datasets (bayes, approx-bayes; default 100, at least 2), bootstrap samples
        (condmean-bootstrap, default 200), (B, D) or B with D = 2 (bootstrap-ml, default
        B = 100). Must be None for condmean-jackknife.
    ice : DataFrame, optional
        Columns ``subject`` and ``visit`` (named as in data) and ``strategy`` (MAR, JR, CR, CIR,
        LMCF): the first visit each subject's intercurrent event affects. What happens to
        outcomes observed at or after that visit under a non-MAR strategy is ``post_ice``.
    reference : mapping or str, optional
        Reference arm of each arm, e.g. ``{"peer": "usual"}``; needed for JR, CR and CIR.
    delta : DataFrame or mapping, optional
        Added to imputed values after imputation: a DataFrame (subject, visit, delta) or (arm,
        visit, delta), or ``{arm: value}`` / ``{arm: {visit: value}}``.
    seed : int or SeedSequence, optional
        Every random stream derives from ``numpy.random.SeedSequence(seed)``.
    covariance : str
        Covariance of the imputation MMRM (``"us"`` for bayes; any mmrm structure otherwise).
    group : str, optional
        A separate covariance per level (usually the arm), as ``mmrm(group=)``.
    post_ice : {"impute", "keep", "error"}
        The estimand's handling of outcomes observed at or after a non-MAR intercurrent event.
        ``"impute"`` (default; a hypothetical strategy): they are set aside and imputed under
        the strategy (counted in ``n_imputed`` as ``n_set_aside`` and warned about).
        ``"keep"`` (a treatment-policy strategy: outcomes after the event are data): they are
        analysed as observed, and the strategy applies from the subject's first *missing* visit
        at or after the event (an observed value after such a gap is set aside, with the same
        warning). ``"error"``: they are refused. The pipeline's estimand block uses ``"keep"``
        for ``strategy: treatment policy`` and ``"impute"`` for ``hypothetical``, unless an
        intercurrent event says ``post_ice:``; the guide's recipe (docs/guide/sensitivity.md)
        and the pipeline give the same number (tests/pipeline/test_post_ice.py).
    prior : {"jeffreys", "rbmi"}
        Only for ``method="bayes"``: the prior of each covariance matrix. ``"jeffreys"``
        (default) |Sigma|^-(T+1)/2; ``"rbmi"`` inverse Wishart(T + 2, REML estimate), the
        default of R rbmi ``method_bayes`` and the SAS five macros. The rbmi prior gives
        slightly smaller between-imputation variance (standard errors 0.2-2% smaller in the
        comparison of issue 20.8); name it when comparing with rbmi or SAS.
    client : dask.distributed.Client, optional
        Bootstrap refits (approx-bayes, condmean-bootstrap, bootstrap-ml) run in chunks on the
        workers (the bootstrap samples are drawn here, so the draws are the same as without a
        client; BLAS one thread per task); kept as the default client of
        :func:`peerstats.tipping_point`. The jackknife and the Gibbs sampler run locally.

    Returns
    -------
    Imputations

    Raises
    ------
    ModelSpecificationError
        Unknown method, subject, visit, strategy or arm in ``ice``; a reference arm that does
        not exist; an ICE before the first visit; LMCF at the first visit; ``n_imputations`` < 2;
        a non-finite delta; missing model covariates - all before any fitting.
    ConvergenceError
        A refit of the imputation model failed (approx-bayes, condmean, bootstrap-ml): the
        number of failed refits is given; nothing is pooled over fewer sets.

    Notes
    -----
    ``impute(...)`` is ``impute_from_draws(draws(...))``: rbmi's first two steps (see the
    module docstring). Analyse and pool with ``Imputations.analyse`` (or
    :func:`peerstats.missing.analyse` then :func:`peerstats.missing.pool`).
    """
    options = dict(locals())  # the arguments, as given: draws takes them all
    return impute_from_draws(draws(options.pop("formula"), options.pop("data"), **options))


def _impute_values(
    betas, sigmas, X_all, X_ref, Y, target, ice_k, strat, g_of, r_of, rng, chunk: int = 256
):
    """(S, n_target) imputed values: strategy means and covariances per draw, then the
    conditional mean (rng None) or a conditional draw of every target cell."""
    S = betas.shape[0]
    n, T = Y.shape
    cond = ~np.isnan(Y)
    # covariance key per subject: (kind, g, r, k)
    kinds = {}
    cov_key = np.empty(n, dtype=np.int64)
    for i in range(n):
        s, k, g, r = strat[i], int(ice_k[i]), int(g_of[i]), int(r_of[i])
        if k >= T or s in ("MAR", "LMCF"):
            kk = ("own", g)
        elif s == "CR" or k == 0:
            kk = ("own", r)
        elif g == r:
            kk = ("own", g)
        else:  # JR / CIR with separate covariances: Carpenter et al.'s conditional construction
            kk = ("mix", g, r, k)
        cov_key[i] = kinds.setdefault(kk, len(kinds))
    out = np.empty((S, int(target.sum())))
    for s0 in range(0, S, chunk):
        sl = slice(s0, min(S, s0 + chunk))
        B = betas[sl]
        mu_own = (X_all @ B.T).T.reshape(-1, n, T)
        mu_ref = (X_ref @ B.T).T.reshape(-1, n, T)
        mu = strategy_means(mu_own, mu_ref, ice_k, strat)
        covs = {}
        sig = sigmas[sl]
        for kk, idx in kinds.items():
            if kk[0] == "own":
                covs[idx] = sig[:, kk[1]]
            else:
                covs[idx] = compute_sigma(sig[:, kk[1]], sig[:, kk[2]], kk[3])
        out[sl] = conditional_impute(mu, Y, cond, target, cov_key, covs, rng)
    return out
