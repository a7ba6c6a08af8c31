"""The analysis model of the imputation-based sensitivity analyses (issue 20.3).

By default each completed dataset of a multiple-imputation, reference-based, multilevel or
tipping-point analysis is analysed with the PRIMARY analysis model: the same formula, random
terms, residual structure, fixed-effects covariance and degrees-of-freedom method as the
primary fit (for a group-delivered arm the partially nested linear mixed model, ``peerstats.lmm``;
otherwise the MMRM, ``peerstats.mmrm``), and the per-visit treatment contrasts are pooled by
the imputation method's rule (Rubin's rules for bayes / approx-bayes). The per-visit ANCOVA of
:meth:`peerstats.Imputations.analyse` stays available as ``analysis_model: ancova``.

Each refit uses :meth:`Imputations.analyse` with ``fn=`` (a function fitting the primary model
on one completed dataset); the pipeline only builds the call. Rubin's complete-data degrees of
freedom (Barnard & Rubin 1999) are, per contrast, the mean over the completed datasets of the
primary model's df (e.g. Satterthwaite) on the completed data. Every LMM refit starts its
optimiser from the primary fit's variance parameters (``lmm(start=...)``); the answer is the
same optimum, reached in fewer iterations.

Issue 22: where only the outcome differs between the completed datasets (Rubin's rules, no
resampling weights) the LMM is refitted on the new responses without a data frame per fit, all
imputations of an analysis (or of a tipping-point delta) together, and only the contrasts'
estimate, variance and df are kept (:mod:`peerstats.pipeline._sensitivity_fast`); an MMRM that
:func:`peerstats.mmrm_many` batches is fitted on every completed dataset in one call
(:mod:`peerstats.pipeline._sensitivity_mmrm`). Both pool to the numbers of the per-dataset path
(tests/pipeline/test_sensitivity_fast.py, test_sensitivity_mmrm.py).

Validated against R: tests/reference/r_sens_primary/ (nlme::lme with the same random terms
and varIdent by arm on the same completed datasets, pooled by Rubin's rules by hand).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError, SpecError
from peerstats.pipeline._sensitivity_fast import (
    _warn_singular,
    fast_refits,
    pool_fast,
    pooled_fast,
    warm_start,
)

__all__ = ["ANALYSIS_MODELS", "PrimaryAnalyser", "primary_analyser", "pool_primary", "tipping"]

#: values of a sensitivity entry's ``analysis_model``
ANALYSIS_MODELS = ("primary", "ancova")

_RUBIN = ("bayes", "approx-bayes")
_COLS = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]


@dataclass
class PrimaryAnalyser:
    """The primary model's call, refitted on one completed dataset at a time.

    ``kind`` is ``"lmm"`` or ``"mmrm"``; ``formula`` and ``options`` are passed to
    :func:`peerstats.lmm` / :func:`peerstats.mmrm` unchanged; ``subject_columns`` (one row per
    participant) are merged into each dataset (delivery group, covariates); ``delivered`` are
    the group-delivered arms (``delivered`` indicator, groups of one where no group is known).
    """

    kind: str
    formula: str
    options: dict
    outcome: str
    reference: str
    level: float
    words: str
    delivered: list[str] = field(default_factory=list)
    subject_columns: pd.DataFrame | None = None
    start: np.ndarray | None = None
    n_fits: int = 0
    n_singular: int = 0
    prepared: Any = field(default=None, repr=False)
    _last_subject_values: Any = field(default=None, repr=False)
    _fast: Any = field(default=None, repr=False)  # the _FastRefits of ``prepared``

    def data(self, d: pd.DataFrame) -> pd.DataFrame:
        """A completed dataset with the columns the primary model needs."""
        d = d.copy()
        if self.subject_columns is not None:
            extra = [c for c in self.subject_columns.columns if c != "subject" and c not in d]
            if extra:
                for c, values in self._subject_values(d["subject"], extra).items():
                    d[c] = values.copy()
        if self.delivered:
            d["delivered"] = d["arm"].astype(str).isin(self.delivered).astype(float)
            grp = d["group"].astype(object) if "group" in d else pd.Series(None, index=d.index)
            grp = grp.where(d["delivered"] > 0, None)
            lone = (d["delivered"] > 0) & grp.isna()
            d["group"] = grp.where(~lone, "_single:" + d["subject"].astype(str))
        return d

    def _subject_values(self, subject: pd.Series, extra: list[str]) -> dict[str, np.ndarray]:
        """The participant columns ``extra`` on the rows of ``subject``; the last result is
        reused while the subject column is the same (every imputed dataset of one analysis)."""
        last = self._last_subject_values
        if last is not None and last[1] == extra and last[0].equals(subject):
            return last[2]
        sc = self.subject_columns.set_index("subject")
        # bootstrap copies of a participant are "<id>#<k>"
        key = subject.astype(str).str.replace(r"#\d+$", "", regex=True)
        out = {c: key.map(sc[c]).to_numpy() for c in extra}
        self._last_subject_values = (subject.copy(), list(extra), out)
        return out

    def fit(self, d: pd.DataFrame) -> Any:
        """Fit the primary model on one completed dataset (warm-started where possible); a
        singular fit is counted (:attr:`n_singular`), not warned about once per dataset."""
        from peerstats.exceptions import SingularFitWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            fit = self._fit(d)
        self.n_fits += 1
        self.n_singular += bool(getattr(fit, "singular", False))
        return fit

    def _fit(self, d: pd.DataFrame) -> Any:
        import peerstats

        data = self.data(d)
        if self.kind != "lmm":
            return peerstats.mmrm(self.formula, data, **self.options)
        lmm = self._prepared(data)
        if self.start is not None:
            try:
                return lmm(data, start=self.start)
            except ModelSpecificationError:  # e.g. a component fixed at zero in the primary
                self.start = None
        return lmm(data)

    def _prepared(self, data: pd.DataFrame) -> Any:
        """The LMM fitter: a :class:`~peerstats.models._lmm_prepared.PreparedLMM` built on the
        first completed dataset and reused while only the outcome differs (the designs are
        the same on every imputed dataset); its ``fit`` falls back to :func:`peerstats.lmm`
        on a dataset whose designs differ. Same numbers as :func:`peerstats.lmm`."""
        from peerstats.models._lmm_prepared import PreparedLMM

        prep = self.prepared
        if prep is None or not prep.same_design(data):
            try:
                prep = PreparedLMM(self.formula, data, **self.options)
            except ModelSpecificationError:  # let peerstats.lmm raise (or not) as before
                import peerstats

                return lambda dd, start=None: peerstats.lmm(
                    self.formula, dd, start=start, **self.options
                )
            self.prepared = prep
        return prep.fit

    def contrasts(self, d: pd.DataFrame) -> pd.DataFrame:
        """Per-visit treatment contrasts of the primary model on one completed dataset:
        ``visit, contrast, estimate, std_error, df``."""
        fit = self.fit(d)
        visits = list(pd.unique(d["visit"].astype(str)))
        if len(visits) == 1:
            ct = fit.contrasts("arm", reference=self.reference, level=self.level)
            ct = ct.assign(visit=visits[0])
        else:
            ct = fit.contrasts("arm", by="visit", reference=self.reference, level=self.level)
        ct["visit"] = ct["visit"].astype(str)
        return ct[["visit", "contrast", "estimate", "std_error", "df"]]


def _model_options(run: Any, prim: Any, reference: str) -> tuple[str, str, dict]:
    """(kind, formula, options) of the primary fit as the pipeline made it."""
    m = run.spec.model
    common: dict[str, Any] = {
        "subject": "subject",
        "df": m.df,
        "reference": {"arm": reference},
        "vcov": m.vcov,
    }
    formula = str(prim.formula).split("  [")[0]
    if prim.model == "partially nested lmm":
        if m.covariance is not None:
            common.update(residual=m.covariance, visit="visit")
        return "lmm", formula, {**common, "residual_by": "arm"}
    if prim.model == "lmm":
        residual = m.covariance or "iid"
        return (
            "lmm",
            formula,
            {
                **common,
                "visit": "visit",
                "residual": residual,
                "residual_by": m.residual_by,
            },
        )
    if prim.model == "mmrm":
        return "mmrm", formula, {**common, "visit": "visit", "covariance": m.covariance or "us"}
    raise SpecError(
        f"sensitivity: the primary model {prim.model!r} cannot be refitted on imputed data; use "
        "analysis_model: ancova"
    )


def primary_analyser(run: Any, outcome: str, reference: str, words: str) -> PrimaryAnalyser:
    """The primary analysis model of ``outcome`` as a :class:`PrimaryAnalyser`."""
    trial, spec = run.trial, run.spec
    prim = run.fits[outcome]
    kind, formula, options = _model_options(run, prim, reference)
    part = trial.randomised.assign(subject=lambda x: x["subject"].astype(str))
    cols = [c for c in ("group", *spec.model.covariates) if c in part.columns]
    subject_columns = part[["subject", *cols]].drop_duplicates("subject") if cols else None
    start = getattr(prim.fit, "_theta", None) if kind == "lmm" else None
    return PrimaryAnalyser(
        kind=kind,
        formula=formula,
        options=options,
        outcome=outcome,
        reference=reference,
        level=spec.model.level,
        words=words,
        delivered=[str(x) for x in trial.spec.arms.group_delivered] if kind == "lmm" else [],
        subject_columns=subject_columns,
        start=None if start is None else np.asarray(start, dtype=float).copy(),
    )


def pool_primary(imp: Any, analyser: PrimaryAnalyser) -> pd.DataFrame:
    """The primary model on every completed dataset of ``imp``, pooled by the method's rule:
    one row per visit and contrast with ``visit, contrast, estimate, std_error, df, statistic,
    p_value, ci_lower, ci_upper, fraction_missing_info``.

    Rubin's rules (bayes, approx-bayes): Barnard-Rubin df with the complete-data df of each
    contrast the mean of the primary model's df over the completed datasets."""
    from peerstats.missing.pooling import POOL_COLUMNS, pool_arrays

    fast = fast_refits(analyser, imp)
    out = pool_fast(imp, analyser, fast)[0] if fast is not None else None
    if out is None and analyser.kind == "mmrm":
        from peerstats.pipeline._sensitivity_mmrm import mmrm_pooled

        out = (mmrm_pooled([imp], analyser) or [None])[0]
    if out is not None:
        return out
    ests: list[np.ndarray] = []
    variances: list[np.ndarray] = []
    dfs: list[np.ndarray] = []
    keys: list[tuple[str, str]] = []

    def fn(d: pd.DataFrame) -> pd.DataFrame:
        ct = analyser.contrasts(d)
        keys[:] = list(zip(ct["visit"], ct["contrast"]))
        ests.append(ct["estimate"].to_numpy(float))
        variances.append(ct["std_error"].to_numpy(float) ** 2)
        dfs.append(ct["df"].to_numpy(float))
        return pd.DataFrame(
            {
                "term": [f"{v}|{c}" for v, c in keys],
                "estimate": ct["estimate"].to_numpy(float),
                "std_error": ct["std_error"].to_numpy(float),
            }
        )

    before = (analyser.n_fits, analyser.n_singular)
    out = imp.analyse(fn=fn, level=analyser.level)
    _warn_singular(analyser, before)
    if imp.method in _RUBIN:
        dfc = np.mean(np.stack(dfs), axis=0)
        dfc = None if not np.all(np.isfinite(dfc)) else dfc
        pooled = pool_arrays(np.stack(ests), np.stack(variances), dfc, level=analyser.level)
        out = pd.DataFrame({c: np.atleast_1d(pooled[c]) for c in POOL_COLUMNS})
    out = out.drop(columns="term", errors="ignore")
    out.insert(0, "contrast", [c for _, c in keys])
    out.insert(0, "visit", [v for v, _ in keys])
    return out


def tipping(imp: Any, analyser: PrimaryAnalyser, grids: dict[str, list[float]], visit: str) -> Any:
    """Tipping-point grid with the primary model: each cell adds its delta to every imputed
    value of its arm(s) (all visits, :meth:`Imputations.with_delta`), refits the primary model
    on every completed dataset and pools; the contrast at ``visit`` is reported. Returns a
    :class:`peerstats.missing.tipping.TippingPoint` (as :func:`peerstats.tipping_point`)."""
    from peerstats.missing.tipping import TippingPoint

    arm_names = [str(a) for a in grids]
    values = [np.asarray(grids[a], dtype=float) for a in arm_names]
    if len(values) == 1:
        cells = values[0][:, None]
    else:
        g0, g1 = np.meshgrid(values[0], values[1], indexing="ij")
        cells = np.column_stack([g0.ravel(), g1.ravel()])
    others = [a for a in imp.arm_levels if a != analyser.reference]
    contrast = f"{others[0]} - {analyser.reference}"
    rows = []
    fast = fast_refits(analyser, imp)
    done: list[tuple[np.ndarray, np.ndarray]] = []  # (cell, optima per imputation)
    shifts = [imp.with_delta({a: float(d) for a, d in zip(arm_names, c)}) for c in cells]
    batch = None
    if fast is None and analyser.kind == "mmrm":  # every cell in one mmrm_many call
        from peerstats.pipeline._sensitivity_mmrm import mmrm_pooled

        batch = mmrm_pooled(shifts, analyser)
    for j, (cell, shifted) in enumerate(zip(cells, shifts)):
        res = None if batch is None else batch[j]
        if fast is not None:  # the pooled columns only: no table per cell
            pooled, thetas = pooled_fast(shifted, analyser, fast, warm_start(done, cell),
                                         stacklevel=4)  # fmt: skip
            done.append((cell, thetas))
            if pooled is not None:
                if (str(visit), contrast) not in fast.keys:  # as the table's empty selection
                    raise IndexError("index 0 is out of bounds for axis 0 with size 0")
                i = fast.keys.index((str(visit), contrast))
                rows.append([float(pooled[c][i]) for c in _COLS])
                continue
        if res is None:
            res = pool_primary(shifted, analyser)
        at = (res["visit"].astype(str) == str(visit)).to_numpy() & (
            res["contrast"] == contrast
        ).to_numpy()
        i = int(np.flatnonzero(at)[0])  # the first matching row, as .iloc[0] of the filter
        rows.append([float(res[c].to_numpy()[i]) for c in _COLS])
    table = pd.DataFrame(cells, columns=[f"delta_{a}" for a in arm_names])
    for i, c in enumerate(_COLS):
        table[c] = [r[i] for r in rows]
    table["significant"] = table["p_value"] < 1 - analyser.level
    return TippingPoint(
        table=table,
        arms=tuple(arm_names),
        visit=str(visit),
        contrast=contrast,
        level=analyser.level,
        method=imp.method,
    )
