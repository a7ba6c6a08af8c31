"""Subgroup analyses from the primary model with a treatment-by-subgroup interaction.

For each subgroup variable the primary model of :func:`peerstats.analyze` (MMRM, or the partially
nested model for group-delivered arms) is refitted once with ``variable * arm * visit`` added, and
the treatment effect at the chosen visit is estimated within each level from that one model (not
from separate fits per subgroup, which would change the covariance estimate and the baseline
adjustment between subgroups). The interaction test is the F test that the treatment effect at
that visit is the same in every level (Satterthwaite denominator df, as the primary model). A
continuous modifier is kept continuous: the effect is a line in it, drawn with its confidence band.

Validated in ``tests/effects/test_subgroups.py`` against R (``nlme::gls`` with ``corSymm`` +
``varIdent`` and ``emmeans``; R ``mmrm`` with Satterthwaite df and ``df_md``), on the bundled
``social_inclusion`` trial (``tests/reference/r_effects19/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from peerstats.effects._printable import SummaryRepr
from peerstats.effects._subgroup_grid import arm_mask as _arm_mask
from peerstats.effects._subgroup_grid import diff_rows as _diff_rows
from peerstats.effects._subgroup_refit import Refitter
from peerstats.exceptions import (
    DataValidationError,
    ModelSpecificationError,
    SpecError,
)

__all__ = ["subgroups", "SubgroupAnalysis"]

EXPLORATORY = (
    "Subgroup analyses are exploratory: {k} subgroup variable(s) were tested without adjustment "
    "for multiplicity; an interaction p-value, not a significant effect within one subgroup, is "
    "the evidence of a different effect."
)
_TIDY = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]


def _level_code(v: Any) -> str:
    if isinstance(v, float) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _is_continuous(s: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(s)
        and not pd.api.types.is_bool_dtype(s)
        and (s.dropna().nunique() > 5)
    )


def _label(labels: Any, var: str) -> str:
    if labels is not None and var in getattr(labels, "covariates", {}):
        return str(labels.covariates[var])
    return var.replace("_", " ").capitalize()


def _level_label(labels: Any, var: str, code: str) -> str:
    if labels is not None:
        lv = getattr(labels, "levels", {}).get(var, {})
        if code in lv:
            return str(lv[code])
    return code


def _analysed_rows(trial: Any, outcome: str, visit: str) -> pd.DataFrame:
    """``subject`` and ``arm`` of the participants with an observed outcome (and baseline) at
    ``visit`` (their first such row)."""
    a = trial.assessments
    rows = a[(a["visit"].astype(str) == visit) & a[outcome].notna()]
    bcol = f"{outcome}_baseline"
    if bcol in rows.columns:
        rows = rows[rows[bcol].notna()]
    return rows[["subject", "arm"]].drop_duplicates("subject")


def _check_cells(cells: pd.DataFrame, var: str, arms: Sequence[str]) -> None:
    level = cells["level"]
    seen = level.notna().to_numpy()
    levels = sorted(level[seen].unique())
    if len(levels) < 2:
        raise _fail(
            var,
            f"subgroup variable {var!r} has {len(levels)} level(s) among the "
            "analysed participants; a subgroup analysis needs at least two",
        )
    # the (level, arm) pairs with a participant; levels compare as pandas groups them (==)
    present = set(zip(level[seen].tolist(), cells["arm"].astype(str)[seen].tolist()))
    empty = [(lev, arm) for lev in levels for arm in arms if (lev, arm) not in present]
    if empty:
        raise _fail(
            var,
            f"subgroup variable {var!r} has no analysed participant in cell(s) "
            f"{[f'{lev} x {arm}' for lev, arm in empty]}; the treatment effect in that "
            "subgroup is not estimable (merge levels or drop the variable)",
        )


def _fail(var: str, message: str) -> DataValidationError:
    row = {"table": "participants", "column": var, "check": "subgroup", "message": message}
    return DataValidationError(pd.DataFrame([row]), context="subgroup analysis")


def _tests(fit: Any, L: np.ndarray, level: float) -> pd.DataFrame:
    """``fit.test(ell, level=level)`` of each row ``ell`` of ``L``, as one frame (tidy columns,
    one row per row of L): the same numbers, without a DataFrame per contrast (issue 22)."""
    if L.shape[1] != len(fit._design.columns):  # as fit.test refuses it
        return pd.concat([fit.test(ell, level=level) for ell in L], ignore_index=True)[_TIDY]
    inf = fit._inference
    rows = [inf.test_1d(np.asarray(ell, dtype=float), alpha=1 - level) for ell in L]
    return pd.DataFrame(rows, columns=_TIDY, dtype=float)


def _categorical(fit, var, visit, ref, trt, level, cells, labels) -> tuple[pd.DataFrame, dict]:
    design = fit._design
    order = [str(x) for x in (design.natural_order.get(var) or design.factors[var])]
    L = _diff_rows(fit, var, visit, ref, trt, order)
    tested = _tests(fit, L, level)
    level_of = cells["level"].astype(str).to_numpy()
    arm_of = cells["arm"].astype(str).to_numpy()
    rows = []
    for i, code in enumerate(order):
        in_level = level_of == code
        rows.append(
            {
                "variable": var,
                "variable_label": _label(labels, var),
                "level": code,
                "level_label": _level_label(labels, var, code),
                "n": int(in_level.sum()),
                f"n_{ref}": int((in_level & (arm_of == ref)).sum()),
                f"n_{trt}": int((in_level & (arm_of == trt)).sum()),
                **{k: float(tested[k].iat[i]) for k in _TIDY},
            }
        )
    inter = fit.test(L[1:] - L[0]).iloc[0] if len(order) > 2 else fit.test(L[1] - L[0]).iloc[0]
    test = _interaction_row(var, labels, inter, len(order))
    return pd.DataFrame(rows), test


def _interaction_row(var: str, labels: Any, res: pd.Series, n_levels: int) -> dict:
    if "num_df" in res.index:
        num, den, F = float(res["num_df"]), float(res["den_df"]), float(res["statistic"])
    else:  # one contrast: t test, F = t^2
        num, den, F = 1.0, float(res["df"]), float(res["statistic"]) ** 2
    return {
        "variable": var,
        "variable_label": _label(labels, var),
        "n_levels": n_levels,
        "num_df": num,
        "den_df": den,
        "F": F,
        "p_value": float(res["p_value"]),
    }


def _continuous(
    fit, var, visit, ref, trt, level, cells, labels
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    x = cells["level"].dropna().astype(float)
    grid_x = np.linspace(x.quantile(0.05), x.quantile(0.95), 41)
    quart = np.quantile(x, [0.25, 0.5, 0.75])
    # every contrast of the variable from one stacked grid (rows do not depend on each other)
    L_all = _diff_rows(fit, var, visit, ref, trt, [*grid_x, 1.0, 0.0, *quart])
    L, one, zero, Lq = L_all[:41], L_all[41], L_all[42], L_all[43:]
    curve = _tests(fit, L, level)
    curve.insert(0, var, grid_x)
    s = fit.test(one - zero, level=level).iloc[0]
    test = _interaction_row(var, labels, s, 0)
    test.update(
        {
            "slope": float(s["estimate"]),
            "slope_ci_lower": float(s["ci_lower"]),
            "slope_ci_upper": float(s["ci_upper"]),
        }
    )
    tested = _tests(fit, Lq, level)
    rows = []
    for i, (name, xv) in enumerate(zip(["lower quartile", "median", "upper quartile"], quart)):
        rows.append(
            {
                "variable": var,
                "variable_label": _label(labels, var),
                "level": f"{xv:g}",
                "level_label": f"{name} ({xv:g})",
                "n": int(len(x)),
                **{k: float(tested[k].iat[i]) for k in _TIDY},
            }
        )
    return pd.DataFrame(rows), test, curve


def _participant_values(trial: Any, var: str) -> tuple[pd.Series, bool]:
    part = trial.participants.drop_duplicates("subject").set_index("subject")
    if var not in part.columns:
        raise SpecError(
            f"subgroup variable {var!r} is not a column of the participants table; columns are "
            f"{list(part.columns)}"
        )
    s = part[var]
    cont = _is_continuous(s)
    if not cont:
        s = s.map(lambda v: v if pd.isna(v) else _level_code(v))
    return s, cont


def subgroups(
    trial_or_fit: Any,
    *,
    outcome: str,
    visit: str | None = None,
    by: Sequence[str],
    df: str = "satterthwaite",
    level: float = 0.95,
    labels: Any = None,
    covariates: Sequence[str] = (),
    primary: Any = None,
) -> SubgroupAnalysis:
    """Treatment effect within subgroups, from the primary model with an interaction.

    Parameters
    ----------
    trial_or_fit : Trial or fitted model
        A validated trial (the primary model is refitted with each interaction), or a fit of
        :func:`peerstats.mmrm` / :func:`peerstats.lmm` whose formula already has
        ``variable * arm * visit`` for every ``by`` variable (used as it is; the "overall" row is
        then that model's effect averaged over the levels).
    outcome : str
        An outcome of the spec.
    visit : str, optional
        Post-baseline visit of the effect; default the last one.
    by : sequence of str
        Subgroup variables (participant columns). Numeric variables with more than five
        distinct values are continuous modifiers (effect curve); others are categorical.
    df, level
        As :func:`peerstats.analyze`.
    labels : Labels, optional
        Display names of variables and levels (``peerstats.Labels``).
    covariates : sequence of str
        Baseline covariates of the primary model (as :func:`peerstats.analyze`).
    primary : TrialAnalysis, optional
        The primary model when it is at hand: ``peerstats.analyze(trial, outcome=outcome,
        df=df, level=level, covariates=covariates)`` (anything with that ``outcome`` and its
        ``contrasts``). Its contrast at ``visit`` is the "overall" row; without it the primary
        model is fitted here (the same numbers, one more fit).

    Returns
    -------
    SubgroupAnalysis
        ``table`` (one row per subgroup level; continuous modifiers at their quartiles),
        ``interactions`` (F test per variable), ``curves`` (continuous modifiers), ``overall``
        (the primary model's effect), ``n_tested``, ``warning``, ``plot()``.

    Notes
    -----
    Model: the primary model plus ``variable * arm * visit``; subgroup effect = difference of
    equal-weight marginal means (emmeans) between arms at ``visit`` within the level; the
    interaction F test is L beta = 0 with rows (effect in level l) - (effect in the first level),
    Satterthwaite denominator df (Fai & Cornelius 1996). Validated against R nlme/emmeans and R
    mmrm on ``social_inclusion`` (``tests/effects/test_subgroups.py``).
    """
    from peerstats.models.analyze import analyze

    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise SpecError("by= must name at least one subgroup variable")
    if hasattr(trial_or_fit, "_design") and hasattr(trial_or_fit, "test"):
        return subgroups_from_fit(
            trial_or_fit, outcome=outcome, visit=visit, by=by, level=level, labels=labels
        )
    if hasattr(trial_or_fit, "contrasts") and hasattr(trial_or_fit, "fit"):
        raise SpecError(
            "subgroups got a TrialAnalysis (the primary model has no treatment-by-subgroup "
            "interaction); pass the Trial (subgroups refits the primary model with it) or a fit "
            "with the interaction"
        )
    trial = trial_or_fit
    if not hasattr(trial, "spec") or not hasattr(trial, "assessments"):
        raise SpecError(
            "subgroups needs a Trial (peerstats.load_trial or peerstats.datasets.load) "
            "or a fitted model with the interaction"
        )
    visit, many, ref, trt = _design(trial.spec, visit)
    covariates = [str(c) for c in covariates]
    if primary is None:
        primary = analyze(trial, outcome=outcome, df=df, level=level, covariates=covariates)
    overall = _overall_row(primary, outcome, visit)
    known = _known_variables(trial, by)
    refit = Refitter(trial, outcome, covariates, df, {v: k[2] for v, k in known.items()})
    rows = _analysed_rows(trial, outcome, visit)
    results = [
        _one_variable(trial, var, known.get(var), rows, visit, many, ref, trt, refit, level,
                      labels)
        for var in by
    ]
    return SubgroupAnalysis(
        outcome=outcome,
        visit=visit,
        reference=ref,
        treatment=trt,
        overall=overall[_TIDY].astype(float),
        n_overall=int(rows["subject"].nunique()),
        level=level,
        **_assemble(by, results),
    )


def _design(spec: Any, visit: str | None) -> tuple[str, bool, str, str]:
    """The visit (default the last), whether there are several post-baseline visits, and the
    reference and treatment arms (exactly two arms)."""
    post = list(spec.visits)[1:]
    visit = str(visit if visit is not None else post[-1])
    if visit not in post:
        raise SpecError(f"{visit!r} is not a post-baseline visit; visits are {post}")
    arms = [str(a) for a in spec.arms.levels]
    if len(arms) != 2:
        raise ModelSpecificationError(f"subgroups compares two arms; this trial has {arms}")
    ref = str(spec.arms.reference or arms[0])
    trt = [a for a in arms if a != ref][0]
    return visit, len(post) > 1, ref, trt


def _overall_row(primary: Any, outcome: str, visit: str) -> pd.Series:
    """The primary model's contrast at ``visit`` (a given ``primary`` is checked first)."""
    ct = getattr(primary, "contrasts", None)
    if not isinstance(ct, pd.DataFrame) or "visit" not in ct.columns:
        raise SpecError(
            "primary= must be the primary model's analysis (peerstats.analyze) with its "
            f"contrasts; got {type(primary).__name__}"
        )
    if getattr(primary, "outcome", outcome) != outcome:
        raise SpecError(f"primary= analyses {primary.outcome!r}, not the outcome {outcome!r}")
    at = ct[ct["visit"].astype(str) == visit]
    if at.empty:
        raise SpecError(
            f"primary= has no contrast at visit {visit!r}; its visits are "
            f"{[str(v) for v in ct['visit']]}"
        )
    return at.iloc[0]


def _one_variable(trial, var, known, rows, visit, many, ref, trt, refit, level, labels):
    """Refit with ``var * arm (* visit)``: the subgroup table, the interaction test and, for a
    continuous variable, the effect curve (else None). ``known``: the variable's
    :func:`_known_variables` entry (None: not a participant column, raises here)."""
    arms = [str(a) for a in trial.spec.arms.levels]
    values, cont, _ = known if known is not None else (*_participant_values(trial, var), None)
    cells = rows.assign(level=rows["subject"].map(values))  # by arm x level
    if not cont:
        _check_cells(cells, var, arms)
    if var in trial.assessments.columns and not cont:
        raise ModelSpecificationError(
            f"{var!r} is already a model column (a stratum); use it as a subgroup through a "
            "participant column of another name"
        )
    fit = refit.fit(var, f"{var} * arm * visit" if many else f"{var} * arm")
    at = visit if many else None
    if cont:
        return _continuous(fit, var, at, ref, trt, level, cells, labels)
    tab, test = _categorical(fit, var, at, ref, trt, level, cells, labels)
    return tab, test, None


def _recoded(trial: Any, values: pd.Series, cont: bool) -> pd.Series:
    """The subgroup variable as the refit reads it, aligned with ``trial.participants``:
    categorical levels as codes (:func:`_level_code`) in their natural order."""
    col = trial.participants["subject"].map(values)
    if cont:
        return col
    lv = sorted(values.dropna().unique(), key=_sort_key)
    return pd.Series(pd.Categorical(col, categories=lv), index=col.index, name=col.name)


def _known_variables(trial: Any, by: Sequence[str]) -> dict[str, tuple[pd.Series, bool, pd.Series]]:
    """Per variable of ``by`` that is a participant column: :func:`_participant_values`
    (values by subject, continuous or not) and :func:`_recoded`. The others raise their error
    when their turn comes, as before."""
    out = {}
    for var in by:
        try:
            values, cont = _participant_values(trial, var)
        except SpecError:
            continue
        out[var] = (values, cont, _recoded(trial, values, cont))
    return out


def _sort_key(v: Any) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


@dataclass(repr=False, eq=False)
class SubgroupAnalysis(SummaryRepr):
    """Result of :func:`subgroups`."""

    outcome: str
    visit: str
    reference: str
    treatment: str
    table: pd.DataFrame
    interactions: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    overall: pd.Series
    n_overall: int
    level: float
    warning: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_tested(self) -> int:
        """Number of subgroup variables tested."""
        return len(self.interactions)

    @property
    def coef(self) -> pd.DataFrame:
        """The subgroup effects (``table``)."""
        return self.table

    def summary(self) -> str:
        cols = [
            "variable_label",
            "level_label",
            "n",
            "estimate",
            "ci_lower",
            "ci_upper",
            "interaction_p",
        ]
        head = (
            f"Treatment effect ({self.treatment} - {self.reference}) on {self.outcome} at "
            f"{self.visit}, by subgroup; overall {self.overall['estimate']:.3f} "
            f"[{self.overall['ci_lower']:.3f}, {self.overall['ci_upper']:.3f}]\n"
        )
        return head + self.table[cols].to_string(index=False) + "\n" + self.warning

    def effect_records(self) -> list:
        """One :class:`~peerstats.effects.EffectRecord` per subgroup row."""
        from peerstats.effects.record import EffectRecord

        return [
            EffectRecord(
                outcome=self.outcome,
                scale="mean_difference",
                estimate=r.estimate,
                ci_lower=r.ci_lower,
                ci_upper=r.ci_upper,
                p_value=r.p_value,
                comparison=f"{self.treatment} vs {self.reference}",
                visit=self.visit,
                population=f"subgroup {r.variable_label}: {r.level_label}",
                n_analysed=int(r.n),
                model="primary model with treatment-by-subgroup interaction",
                level=self.level,
                std_error=r.std_error,
                df=r.df,
                statistic=r.statistic,
                extra={"interaction_p": r.interaction_p, "exploratory": True},
            )
            for r in self.table.itertuples()
        ]

    def plot(self, *, ax: Any = None, curve: str | None = None) -> Any:
        """Forest plot (overall effect on top, subgroups as rows, interaction p at the right);
        with ``curve=variable`` the effect curve of a continuous modifier with its band."""
        from peerstats.effects._subgroup_plot import effect_curve, forest

        if curve is not None:
            return effect_curve(self, curve, ax=ax)
        return forest(self, ax=ax)


# ---- subgroups from a model already fitted with the interaction(s) (no refit)
def _has_interaction(design: Any, var: str, arm: str) -> bool:
    from peerstats.models.emmeans import _rhs_terms

    _, terms = _rhs_terms(design)
    return any(var in t and arm in t for t in terms)


def subgroups_from_fit(
    fit: Any,
    *,
    outcome: str | None,
    visit: str | None,
    by: Sequence[str],
    level: float,
    labels: Any,
    arm: str = "arm",
    reference: str | None = None,
) -> Any:
    """See :func:`peerstats.subgroups` (``trial_or_fit`` a fitted model)."""
    design = fit._design
    ref, trt = _fit_arms(design, arm, reference)
    visit, rows = _fit_visit_rows(design, visit)
    v = visit if "visit" in design.factors else None
    ids = _subject_ids(rows)
    results = []
    for var in by:
        cells = _fit_cells(design, rows, ids, var, arm)
        if var in design.numerics:
            results.append(_continuous(fit, var, v, ref, trt, level, cells, labels))
        else:
            cells["level"] = cells["level"].map(_level_code)
            _check_cells(cells, var, [ref, trt])
            results.append((*_categorical(fit, var, v, ref, trt, level, cells, labels), None))
    overall = _overall(fit, arm, v, ref, trt, level)
    return SubgroupAnalysis(
        outcome=outcome or design.formula.split("~")[0].strip(),
        visit=str(visit),
        reference=ref,
        treatment=trt,
        overall=overall[_TIDY].astype(float),
        n_overall=int(pd.Series(ids).nunique()),
        level=level,
        **_assemble(by, results),
        notes=(
            "overall: the fitted model's effect averaged over the subgroup levels with equal "
            "weights (not the primary model without interaction)",
        ),
    )


def _assemble(by: Sequence[str], results: list[tuple]) -> dict[str, Any]:
    """The subgroup table (with the interaction p), interaction tests, effect curves and the
    exploratory warning, as :class:`SubgroupAnalysis` fields."""
    tables, tests, curves = [], [], {}
    for var, (tab, test, curve) in zip(by, results):
        if curve is not None:
            curves[var] = curve
        tab["interaction_p"] = test["p_value"]
        tables.append(tab)
        tests.append(test)
    return {
        "table": pd.concat(tables, ignore_index=True),
        "interactions": pd.DataFrame(tests).set_index("variable"),
        "curves": curves,
        "warning": EXPLORATORY.format(k=len(by)),
    }


def _fit_arms(design: Any, arm: str, reference: str | None) -> tuple[str, str]:
    """Reference and treatment arm of a fit (exactly two levels of ``arm``)."""
    if arm not in design.factors:
        raise ModelSpecificationError(
            f"the fit has no factor {arm!r}; factors are {list(design.factors)}"
        )
    arms = [str(a) for a in design.factors[arm]]
    if len(arms) != 2:
        raise ModelSpecificationError(f"subgroups compares two arms; the fit has {arms}")
    ref = str(reference) if reference is not None else arms[0]
    return ref, [a for a in arms if a != ref][0]


def _fit_visit_rows(design: Any, visit: str | None) -> tuple[str | None, pd.DataFrame]:
    """The visit (default the last; as given when the fit has no visit factor) and its rows."""
    data = design.data
    if "visit" not in design.factors:
        return visit, data
    visits = [str(v) for v in (design.natural_order.get("visit") or design.factors["visit"])]
    visit = str(visit if visit is not None else visits[-1])
    if visit not in visits:
        raise SpecError(f"{visit!r} is not a visit of the fit; visits are {visits}")
    return visit, data[data["visit"].astype(str) == visit]


def _subject_ids(rows: pd.DataFrame) -> np.ndarray:
    if "subject" in rows.columns:
        return rows["subject"].to_numpy()
    return pd.Series(np.arange(len(rows)), index=rows.index).to_numpy()


def _fit_cells(design: Any, rows: pd.DataFrame, ids, var: str, arm: str) -> pd.DataFrame:
    """Subject, arm and subgroup level of the fit's rows at the visit (the variable must be in
    the fit with its interaction with the arm)."""
    if var not in design.data.columns:
        raise SpecError(f"subgroup variable {var!r} is not in the fitted model's data")
    if not _has_interaction(design, var, arm):
        raise ModelSpecificationError(
            f"the fit has no {var} x {arm} interaction; fit the model with "
            f"'{var} * {arm} * visit' or pass the Trial (subgroups refits the primary model)"
        )
    return pd.DataFrame(
        {"subject": ids, "arm": rows[arm].astype(str).to_numpy(), "level": rows[var].to_numpy()}
    )


def _overall(fit: Any, arm: str, visit: str | None, ref: str, trt: str, level: float) -> pd.Series:
    from peerstats.models.emmeans import reference_grid

    grid = reference_grid(fit._design)
    X = fit._design.matrix(grid)
    ell = X[_arm_mask(grid, visit, trt)].mean(axis=0) - X[_arm_mask(grid, visit, ref)].mean(axis=0)
    return fit.test(ell, level=level).iloc[0]
