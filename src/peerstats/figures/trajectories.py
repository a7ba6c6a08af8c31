"""Outcome trajectories: observed means with 95% CIs per arm over visits, model means overlaid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from peerstats.describe._common import arm_levels, data_error, outcome_info, visit_levels
from peerstats.exceptions import ModelSpecificationError
from peerstats.figures.palette import arm_colors, arm_markers

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["observed_means", "plot_trajectories"]


def observed_means(
    data: pd.DataFrame,
    outcome: str,
    *,
    arm: str = "arm",
    visit: str = "visit",
    level: float = 0.95,
) -> pd.DataFrame:
    """Observed mean, SD and t-based CI of ``outcome`` per arm and visit.

    Returns columns ``arm, visit, n, mean, sd, std_error, ci_lower, ci_upper`` (visits keep
    their categorical order).
    """
    for c in (arm, visit, outcome):
        if c not in data.columns:
            raise data_error(
                "assessments",
                "missing_column",
                f"{c!r} is not a column; columns are {list(data.columns)}",
                column=c,
            )
    g = data.dropna(subset=[outcome]).groupby([arm, visit], observed=True, sort=True)[outcome]
    out = g.agg(n="count", mean="mean", sd="std").reset_index()
    out["std_error"] = out["sd"] / np.sqrt(out["n"])
    tcrit = stats.t.ppf(0.5 + level / 2, np.maximum(out["n"] - 1, 1))
    out["ci_lower"] = out["mean"] - tcrit * out["std_error"]
    out["ci_upper"] = out["mean"] + tcrit * out["std_error"]
    out.loc[out["n"] < 2, ["ci_lower", "ci_upper"]] = np.nan
    return out.rename(columns={arm: "arm", visit: "visit"})


def plot_trajectories(
    trial: Any,
    outcome: str,
    *,
    fit: Any = None,
    ax: Axes | None = None,
    spaghetti: bool = False,
    arm_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    visit_labels: dict[str, str] | None = None,
    ylabel: str | None = None,
    level: float = 0.95,
    dodge: float = 0.06,
) -> Axes:
    """Observed mean ± 95% CI per arm over visits, optionally with model-estimated means.

    Parameters
    ----------
    trial : Trial or trial-like, or a long DataFrame
        Long assessments with ``subject, arm, visit`` and the outcome column.
    outcome : str
        Outcome column.
    fit : fitted model, optional
        A model with ``emmeans(["arm", "visit"])`` (peerstats MMRM result); its marginal
        means and CIs are drawn as open markers joined by dashed lines, slightly offset.
    ax : matplotlib Axes, optional
    spaghetti : bool
        Also draw each participant's observed trajectory as a thin line.
    arm_labels, colors, visit_labels : dict, optional
        Display names and colours (default colours: :func:`~peerstats.figures.palette.arm_colors`).
    ylabel : str, optional
        Default: "<label>, mean (95% CI)" with the outcome's label (or instrument) from the
        spec, else its name.
    level : float
        Confidence level of the observed-mean intervals (t distribution).
    dodge : float
        Horizontal offset between arms (in visit units) so that intervals do not overlap.

    Returns
    -------
    matplotlib.axes.Axes
    """
    data, arms, visits, info = _trial_levels(trial, outcome)
    if "arm" not in data.columns:
        data = data.assign(arm=arms[0] if arms else "all")
        arms = arms or ["all"]
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.5, 3.4), layout="constrained")
    style = _Style(
        colors=dict(colors or arm_colors(arms)),
        markers=arm_markers(arms),
        labels=dict(arm_labels or {}),
        xpos={v: i for i, v in enumerate(visits)},
        offset={
            a: (i - (len(arms) - 1) / 2) * dodge * (2 if fit is not None else 1)
            for i, a in enumerate(arms)
        },
    )
    d = data.copy()
    d["arm"] = d["arm"].astype(str)
    d["visit"] = d["visit"].astype(str)
    if spaghetti:
        _draw_spaghetti(ax, d, outcome, style)
    _draw_observed(ax, observed_means(d, outcome, level=level), arms, style, fit is not None)
    if fit is not None:
        _draw_model_means(ax, fit, outcome, arms, style, level=level, dodge=dodge)
    vlabels = dict(visit_labels or {})
    ax.set_xticks(range(len(visits)), [vlabels.get(v, v) for v in visits])
    ax.set_xlim(-0.4, len(visits) - 0.6)
    ax.set_xlabel("Visit")
    if ylabel is None:
        name = info.get("label") or info.get("instrument") or outcome
        ylabel = f"{name}, mean ({int(round(100 * level))}% CI)"
    ax.set_ylabel(ylabel)
    lo, hi = info.get("min"), info.get("max")
    if spaghetti and lo is not None and hi is not None:
        ax.set_ylim(lo, hi)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax


@dataclass(frozen=True)
class _Style:
    """Per-arm colours, markers, labels and offsets, and the x position of each visit."""

    colors: dict[str, str]
    markers: dict[str, str]
    labels: dict[str, str]
    xpos: dict[str, int]
    offset: dict[str, float]


def _categories(values: pd.Series, default: Any) -> list[str]:
    """Category order of a categorical column, else ``default`` of the values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(v) for v in values.cat.categories]
    return [str(v) for v in default(values.dropna())]


def _trial_levels(trial: Any, outcome: str):
    """(long data, arms, visits, outcome info) of a trial or of a long data frame."""
    if isinstance(trial, pd.DataFrame):
        arms = _categories(trial["arm"], lambda v: sorted(v.unique()))
        return trial, arms, _categories(trial["visit"], pd.unique), {}
    info = outcome_info(trial, outcome)
    return trial.assessments, arm_levels(trial), visit_levels(trial), info


def _draw_spaghetti(ax: Axes, d: pd.DataFrame, outcome: str, style: _Style) -> None:
    """One faint line per participant."""
    for (a, _), g in d.dropna(subset=[outcome]).groupby(["arm", "subject"], sort=False):
        if a not in style.colors:
            continue
        x = g["visit"].map(style.xpos).to_numpy(dtype=float)
        order = np.argsort(x)
        ax.plot(
            x[order],
            g[outcome].to_numpy()[order],
            color=style.colors.get(a, "grey"),
            alpha=0.12,
            lw=0.6,
            zorder=1,
            gid="spaghetti",
        )


def _errorbar(ax: Axes, frame: pd.DataFrame, y: str, a: str, style: _Style, **kw: Any) -> None:
    """Means ``y`` at ``x`` with their CI (``ci_lower``, ``ci_upper``) in the arm's style."""
    yerr = np.vstack([frame[y] - frame["ci_lower"], frame["ci_upper"] - frame[y]])
    ax.errorbar(
        frame["x"],
        frame[y],
        yerr=yerr,
        color=style.colors[a],
        marker=style.markers[a],
        ms=5,
        capsize=3,
        **kw,
    )


def _draw_observed(ax: Axes, obs: pd.DataFrame, arms, style: _Style, with_fit: bool) -> None:
    """Observed means with their CIs, per arm."""
    for a in arms:
        o = obs[obs["arm"] == a].copy()
        o = o[o["visit"].isin(style.xpos)]
        o["x"] = o["visit"].map(style.xpos) + style.offset[a]
        o = o.sort_values("x")
        label = style.labels.get(a, a)
        label = f"{label} (observed)" if with_fit else label
        _errorbar(ax, o, "mean", a, style, lw=1.5, label=label, zorder=3, gid=f"observed:{a}")


def _model_means(fit: Any, outcome: str, arms: list[str], level: float) -> pd.DataFrame:
    """The fit's estimated means per arm and visit (``arm``, ``visit`` as strings)."""
    fv = getattr(fit, "visit", "visit")
    fv = fv if isinstance(fv, str) else "visit"
    response = str(getattr(fit, "formula", "")).split("~")[0].strip()
    if response and response != outcome:
        raise ModelSpecificationError(
            f"the fit models {response!r}, not {outcome!r}: its means cannot be overlaid"
        )
    if len(arms) == 1 and "arm" not in _fit_factors(fit):
        # single-arm study: the model has no arm term, its means are per visit
        em = fit.emmeans([fv], level=level).assign(arm=arms[0])
    else:
        em = fit.emmeans(["arm", fv], level=level)
    return em.assign(arm=em["arm"].astype(str), visit=em[fv].astype(str))


def _draw_model_means(ax, fit, outcome, arms, style: _Style, *, level, dodge) -> None:
    """Model-estimated means (open markers, dashed), beside the observed ones."""
    em = _model_means(fit, outcome, arms, level)
    for a in arms:
        e = em[em["arm"] == a].copy()
        if e.empty:
            continue
        e["x"] = e["visit"].map(style.xpos) + style.offset[a] + dodge
        e = e.dropna(subset=["x"]).sort_values("x")
        label = f"{style.labels.get(a, a)} (model)"
        _errorbar(
            ax, e, "estimate", a, style, mfc="white", lw=1.2, ls="--", label=label, zorder=4,
            gid=f"model:{a}",
        )  # fmt: skip


def _fit_factors(fit: Any) -> set[str]:
    """Names of the categorical factors of a peerstats fit (empty when unknown)."""
    factors = getattr(getattr(fit, "_design", None), "factors", None)
    return set(factors) if isinstance(factors, dict) else set()
