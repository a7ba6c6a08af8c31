"""Residual diagnostics of a fitted mixed model: normal QQ plot and residuals against fitted
values, one row per visit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.figures.palette import GREY, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_diagnostics", "model_residuals"]

ResidualType = Literal["normalized", "pearson", "raw"]


def model_residuals(fit: Any, type: ResidualType = "normalized") -> pd.DataFrame:
    """Fitted values and residuals of the analysed rows: ``visit, fitted, residual, type``.

    Uses ``fit.fitted()`` / ``fit.residuals(type=)`` where the model provides them (marginal
    fitted values; ``normalized`` = residuals whitened by the subject's estimated covariance,
    as nlme ``residuals(type = "normalized")``). Otherwise: fitted = X beta, raw residuals
    y - X beta, Pearson residuals = raw / the model SD at that visit (``fit.covariance``
    diagonal), and ``normalized`` falls back to Pearson (the returned ``type`` says which).
    """
    design = getattr(fit, "_design", None)
    if design is None:
        raise ModelSpecificationError("plot_diagnostics needs a peerstats mmrm/lmm fit")
    data = design.data
    vcol = getattr(fit, "visit", None)
    if not (isinstance(vcol, str) and vcol in data.columns):
        vcol = "visit" if "visit" in data.columns else None
    visit = (
        data[vcol].astype(str).to_numpy()
        if isinstance(vcol, str) and vcol in data.columns
        else np.array(["all"] * len(data))
    )
    if callable(getattr(fit, "residuals", None)) and callable(getattr(fit, "fitted", None)):
        try:
            res = np.asarray(fit.residuals(type=type), dtype=float).ravel()
            fv = np.asarray(fit.fitted(), dtype=float).ravel()
            if len(res) == len(data) == len(fv):
                return pd.DataFrame({"visit": visit, "fitted": fv, "residual": res, "type": type})
        except (TypeError, ValueError, ModelSpecificationError):
            pass
    fv = np.asarray(design.X, dtype=float) @ np.asarray(fit.params, dtype=float)
    raw = np.asarray(design.y, dtype=float) - fv
    used = "raw"
    if type in ("pearson", "normalized"):
        cov = getattr(fit, "covariance", None)
        group = getattr(fit, "group", None)
        sd = None
        if isinstance(cov, pd.DataFrame):
            sd = pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=[str(v) for v in cov.index])
            sd = sd.reindex(visit).to_numpy()
        elif isinstance(cov, dict) and group in data.columns:
            g = data[group].astype(str).to_numpy()
            sds = {
                k: pd.Series(np.sqrt(np.diag(v.to_numpy())), index=[str(x) for x in v.index])
                for k, v in cov.items()
            }
            sd = np.array([sds[gi].get(vi, np.nan) for gi, vi in zip(g, visit)])
        if sd is None or not np.isfinite(sd).all():
            sd = np.full(len(raw), np.std(raw, ddof=len(fit.params)) if len(raw) else np.nan)
        raw = raw / sd
        used = "pearson"
    return pd.DataFrame({"visit": visit, "fitted": fv, "residual": raw, "type": used})


def plot_diagnostics(
    fit: Any,
    *,
    type: ResidualType = "normalized",
    visit_labels: dict[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Normal QQ plot and residuals against fitted values, one row per visit.

    Parameters
    ----------
    fit : MixedModelResult or LMMResult
    type : {"normalized", "pearson", "raw"}
        Residuals shown (see :func:`model_residuals`; the axis titles say which were used).
    visit_labels : dict, optional
        Display names of the visits.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from scipy import stats

    r = model_residuals(fit, type)
    kind = str(r["type"].iloc[0]) if len(r) else type
    seen = list(dict.fromkeys(r["visit"]))
    order = [str(v) for v in (getattr(fit, "visits", None) or ())]
    visits = [v for v in order if v in seen] + [v for v in seen if v not in order]
    labels = dict(visit_labels or {})
    fig, axes = plt.subplots(
        len(visits), 2, figsize=(7.0, 2.4 * len(visits) + 0.6), squeeze=False, layout="constrained"
    )
    for (ax_qq, ax_rf), v in zip(axes, visits):
        sub = r[r["visit"] == v]
        (osm, osr), (slope, intercept, _) = stats.probplot(sub["residual"], dist="norm")
        ax_qq.scatter(osm, osr, s=8, color=OKABE_ITO[1], alpha=0.7, linewidths=0, gid="qq")
        ax_qq.plot(osm, slope * np.asarray(osm) + intercept, color=GREY, lw=0.9)
        ax_qq.set_xlabel("Normal quantile")
        ax_qq.set_ylabel(f"{kind.capitalize()} residual")
        ax_qq.set_title(f"{labels.get(v, v)}: normal QQ", fontsize="medium", loc="left")
        ax_rf.scatter(
            sub["fitted"],
            sub["residual"],
            s=8,
            color=OKABE_ITO[2],
            alpha=0.7,
            linewidths=0,
            gid="resid-fitted",
        )
        ax_rf.axhline(0, color=GREY, lw=0.8, ls="--")
        ax_rf.set_xlabel("Fitted value (marginal)")
        ax_rf.set_ylabel(f"{kind.capitalize()} residual")
        ax_rf.set_title(f"{labels.get(v, v)}: residual vs fitted", fontsize="medium", loc="left")
        for ax in (ax_qq, ax_rf):
            ax.spines[["top", "right"]].set_visible(False)
    if title:
        fig.suptitle(title)
    return fig
