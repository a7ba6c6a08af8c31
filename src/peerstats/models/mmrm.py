"""Mixed model for repeated measures (MMRM), as SAS PROC MIXED with a REPEATED statement.

``peerstats.mmrm`` fits y_i ~ N(X_i beta, Sigma_i) independently over subjects, where Sigma_i is
the structured covariance across visits (``us``, ``cs``, ``csh``, ``ar1``, ``ar1h``, ``toep``,
``toeph``, ``ad``, ``adh``) restricted to the visits subject i attended, or a spatial covariance
of subject-specific times (``sp_exp``, ``sp_gau``, ``sp_pow`` with ``time=``), optionally with
separate parameters per level of ``group`` (SAS ``group=``) and weights (SAS ``WEIGHT``:
Sigma_i = W_i^-1/2 Sigma W_i^-1/2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._memory import steady_pages
from peerstats.models._mmrm_result import check_df_options
from peerstats.models._sandwich import check_vcov, mmrm_blocks, sandwich_inference
from peerstats.models.prepared import (
    CovarianceName,
    DfName,
    MethodName,
    prepare_mmrm,
)
from peerstats.models.results import MixedModelResult

__all__ = ["mmrm"]

VcovName = Literal["model", "empirical", "empirical-bias-reduced", "jackknife"]
# structures whose Sigma is indexed by visit (the empirical covariance's blocks rely on it)
_VISIT_INDEXED = ("us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "adh", "ad")


def mmrm(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    covariance: CovarianceName = "us",
    group: str | None = None,
    weights: str | None = None,
    method: MethodName = "reml",
    df: DfName = "satterthwaite",
    reference: Mapping[str, str] | None = None,
    kr_information: Literal["observed", "expected"] = "observed",
    vcov: VcovName = "model",
    time: str | Sequence[str] | None = None,
) -> MixedModelResult:
    """Fit a mixed model for repeated measures (MMRM) by REML or ML.

    Parameters
    ----------
    formula : str
        Fixed effects, e.g. ``"FEV1 ~ RACE + SEX + ARMCD * AVISIT"``. Categorical columns use
        treatment coding with the first level (pandas Categorical order, else sorted) as
        reference.
    data : DataFrame
        Long data: one row per subject and visit. Rows with a missing outcome are dropped and
        counted (``n_dropped``); missing values in any other model column are an error.
    subject, visit : str
        Columns identifying the subject and the visit. Visit order (for ``ar1``, ``toep``,
        ``adh`` ... and the rows of ``covariance``) is the Categorical order, else sorted. The
        visit (and ``group``) column is a factor wherever it appears in the formula, also when
        stored as numbers (as a SAS CLASS variable): ``"y ~ arm * visit"`` has one mean per
        arm and visit, never a linear trend.
    covariance : {"us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh", "sp_exp", \
"sp_gau", "sp_pow"}
        Residual covariance across visits (SAS ``type=UN, CS, CSH, AR(1), ARH(1), TOEP, TOEPH,
        ANTE(1)``; ``ad`` is homogeneous antedependence, one variance and T-1 correlations, as
        R mmrm's ``ad``), or spatial in ``time`` (SAS ``type=SP(EXP)(time)``, ``SP(GAU)``,
        ``SP(POW)``: sigma^2 exp(-d/rho), sigma^2 exp(-d^2/rho^2), sigma^2 rho^d, d the
        Euclidean distance between a subject's times; see :mod:`peerstats.models._spatial`).
    group : str, optional
        Column (constant within subject, usually the arm) with separate covariance parameters
        per level (SAS ``group=``).
    weights : str, optional
        Column of positive weights (SAS ``WEIGHT``).
    method : {"reml", "ml"}
    df : {"satterthwaite", "kenward-roger", "kenward-roger-linear", "kenward-roger-mmrm", "residual", "between-within", "asymptotic"}
        Denominator degrees of freedom for t and F tests (SAS ``ddfm=``). The Kenward-Roger
        variants differ only in the adjusted covariance of beta (same df):
        ``kenward-roger`` is SAS ``ddfm=kr``; ``kenward-roger-linear`` SAS ``ddfm=kr(linear)``
        and R mmrm ``Kenward-Roger-Linear``; ``kenward-roger-mmrm`` R mmrm's default
        ``Kenward-Roger`` (us, cs, csh, ar1, ar1h), which differs from SAS even for ``us``
        (see :mod:`peerstats.models._kr_variants`). ``residual`` is
        n_obs - rank(X) (SAS DDFM=RESIDUAL); ``between-within`` as SAS DDFM=BETWITHIN (with
        ``covariance="us"`` every effect gets the between-subject df, as SAS); ``asymptotic``
        uses the normal / chi-square distributions. With an empirical ``vcov``,
        ``satterthwaite`` means the df of Bell & McCaffrey / Pustejovsky & Tipton (clubSandwich)
        and multi-row tests use their HTZ test; Kenward-Roger is not available.
    reference : mapping, optional
        Reference level per factor, e.g. ``{"ARMCD": "PBO"}``.
    kr_information : {"observed", "expected"}
        Only with ``df="kenward-roger"``: the information matrix whose inverse estimates the
        covariance of the covariance parameters. ``"observed"`` (default) as SAS PROC MIXED and
        R mmrm; ``"expected"`` as pbkrtest / lmerTest (validated against pbkrtest on the
        compound-symmetry model, tests/reference/r_mmrm/).
    vcov : {"model", "empirical", "empirical-bias-reduced", "jackknife"}
        Covariance of the fixed effects used by every test, interval, marginal mean, contrast
        and ``anova``: ``model`` (X'V^-1X)^-1; ``empirical`` the CR0 sandwich clustered by
        subject (SAS ``EMPIRICAL``); ``empirical-bias-reduced`` Bell-McCaffrey CR2;
        ``jackknife`` CR3. SAS's default df with EMPIRICAL is ``df="between-within"``.
        Validated against R clubSandwich on nlme::gls fits (tests/reference/r_sandwich/); see
        :mod:`peerstats.models._sandwich`.
    time : str or list of str, optional
        Only (and required) with a spatial ``covariance``: a numeric column of subject-specific
        times, or several coordinate columns (Euclidean distance, SAS ``sp(exp)(c1 c2)``).
        Missing times on analysed rows and repeated times within a subject are errors. The
        ``covariance`` property then shows the covariance at each visit's mean time.

    Returns
    -------
    MixedModelResult
        ``coef``, ``covariance``, ``correlation``, ``cov_parameters``, ``loglik``, ``aic``,
        ``bic``, ``emmeans()``, ``contrasts()``, ``anova()``, ``summary()``.

    Raises
    ------
    ModelSpecificationError
        Unknown options, missing columns or covariates, rank-deficient design, duplicated
        subject-visit rows, a visit or group level without data.
    ConvergenceError
        The optimiser did not converge or the covariance is singular (``.tried``,
        ``.gradient``).

    Notes
    -----
    REML: -2 l = sum_i log|Sigma_i| + log|X'V^-1X| + r'V^-1 r + (n - p) log 2 pi (ML drops the
    second term and uses n; with weights, - sum log w is added, as SAS). Minimised from the
    covariance of OLS residuals by Fisher scoring, then Newton-Raphson with the observed
    Hessian, both in closed form (Wolfinger, Tobias & Sall 1994; checked against finite
    differences in tests/models/test_reml_derivatives.py); the sufficient statistics are pooled
    per (group, missingness pattern), so an iteration costs the same for 200 or 1,000,000
    subjects. ``peerstats.prepare_mmrm`` builds the same model once for cheap refits.
    Converged when the Newton decrement g'H^-1g < max(1e-9, 1e-12 |-2 l|) (SAS's default is
    a relative 1e-8: our -2 log-likelihood is at or below SAS's in every reference listing).
    ``n_subjects`` counts subjects with at least one observed outcome; BIC uses the number of
    subjects in the data, as SAS.

    Satterthwaite df as SAS PROC MIXED: the covariance of the covariance parameters is the
    inverse observed information (Hessian of the REML/ML criterion); multi-row F tests follow
    Fai & Cornelius (1996) as SAS. Kenward-Roger (Kenward & Roger 1997): adjusted covariance of
    beta and scaled F, with W = inverse *observed* information as SAS and R mmrm (so a single
    contrast's KR df equal its Satterthwaite df; pbkrtest/lmerTest use the expected information
    and differ by a few percent in df). Computed in SAS's covariance parameterisation: linear
    for ``us`` (UN(i,j)), ``cs`` (CS, Residual) and ``toep`` (TOEP(k), Residual), so the
    second-derivative term R vanishes (SAS ``ddfm=kr`` and ``kr(firstorder)`` coincide); for the
    non-linear structures (csh, ar1, ar1h, toeph, adh: variances and correlations) R is
    included by central differences, as SAS ``ddfm=kr`` (not ``kr(firstorder)``). Only REML.

    Validated against SAS PROC MIXED listings on the FEV data (tests/reference/sas_fev/:
    estimates, SEs, covariance parameters, -2 log-likelihood, Satterthwaite df, LSMEANS and
    their differences) and against R (tests/reference/r_mmrm/).

    Examples
    --------
    >>> fit = peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", fev, subject="USUBJID",
    ...                      visit="AVISIT", covariance="us", reference={"ARMCD": "PBO"})
    >>> fit.contrasts(arm="ARMCD", by="AVISIT")  # doctest: +SKIP
    """
    df, kr_information = check_df_options(df, kr_information, method)
    vcov = check_vcov(vcov, df)
    with steady_pages():  # (1M subjects: no huge-page stalls, see models/_memory.py)
        prep = prepare_mmrm(
            formula,
            data,
            subject=subject,
            visit=visit,
            covariance=covariance,
            group=group,
            weights=weights,
            method=method,
            reference=reference,
            time=time,
        )
        return with_vcov(prep.fit(df=df, kr_information=kr_information), vcov)


def with_vcov(result: MixedModelResult, vcov: str) -> MixedModelResult:
    """``result`` with the empirical covariance ``vcov`` (clustered by subject) in every test."""
    if vcov == "model":
        return result
    prep = result._prepared
    if result.covariance_type not in _VISIT_INDEXED and not hasattr(prep, "subject_sigmas"):
        # the blocks below index one Sigma per group by visit; structures whose covariance
        # depends on subject-specific times need their own per-subject V (spatial: below)
        raise ModelSpecificationError(
            f"vcov={vcov!r} is not available with covariance={result.covariance_type!r} yet; "
            f"use one of {list(_VISIT_INDEXED)} or vcov='model'"
        )
    design = result._design
    rows = design.rows
    w = None if prep._row_weights is None else prep._row_weights[rows]
    # spatial structures: each subject's own covariance at its times (issue 10.5)
    sigmas, key = result._sigmas, prep.group_codes[rows]
    if hasattr(prep, "subject_sigmas"):
        sigmas, key = prep.subject_sigmas(result._theta), prep.subject_codes[rows]
    blocks = mmrm_blocks(
        design.X,
        design.y,
        result._inference.beta,
        prep.subject_codes[rows],
        prep.visit_codes[rows],
        key,
        sigmas,
        w,
    )
    inference = sandwich_inference(result._inference, vcov, blocks)
    return dataclasses.replace(result, _inference=inference, vcov_method=vcov)
