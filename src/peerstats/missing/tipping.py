"""Tipping-point analysis: a grid of deltas re-analysed with the same imputations.

The imputations (and the draws behind them) are made once; each grid cell adds its delta to the
imputed values of one arm (1-D) or of both arms (2-D) and re-runs the pooled ANCOVA at one
visit. Cells are independent tasks: locally they run in a loop, with ``client=`` (a
``dask.distributed.Client``) chunks of cells run on the workers. Each cell receives its own
child of ``numpy.random.SeedSequence(seed).spawn(n_cells)`` (never one per worker), BLAS is
pinned to one thread inside every task (threadpoolctl) on both paths, so the numbers are
identical with and without a client, on any number of workers. (The default analysis is
deterministic given the shared imputations; the per-cell seed is there for analyses that draw.)
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peerstats._repr import SummaryAsRepr
from peerstats._scaleout import run_tasks
from peerstats.exceptions import ModelSpecificationError
from peerstats.missing._analysis import ancova_design, ancova_many, pool_by_method
from peerstats.missing.impute import Imputations

__all__ = ["tipping_point", "TippingPoint"]

_COLS = ["estimate", "std_error", "df", "statistic", "p_value", "ci_lower", "ci_upper"]


def _run_cells(payload: dict, cells: np.ndarray, seeds: Sequence) -> np.ndarray:
    """Analyse a chunk of grid cells; ``cells`` (m, n_arms) deltas. Returns (m, 7)."""
    from threadpoolctl import threadpool_limits

    out = np.empty((len(cells), len(_COLS)))
    with threadpool_limits(limits=1):
        # fresh copies: a deserialised buffer may be aligned differently, and SIMD summation
        # order (hence the last bits) depends on alignment
        X, Y0 = np.array(payload["X"], copy=True), np.array(payload["Y"], copy=True)
        W = None if payload["W"] is None else np.array(payload["W"], copy=True)
        masks = np.array(
            payload["masks"], copy=True
        )  # (n_arms, n) target cells of each shifted arm at the visit
        for c, (d, _seed) in enumerate(zip(cells, seeds)):
            shift = (np.asarray(d)[:, None] * masks).sum(axis=0)
            Y = Y0 + shift[None, :]
            beta, cov, dfr, _ = ancova_many(X, Y, W, payload["k"])
            col = payload["col"]
            est = beta[:, col : col + 1]
            var = cov[:, col, col][:, None]
            dfc = dfr[0] if payload["method"] in ("bayes", "approx-bayes") else None
            res = pool_by_method(
                payload["method"],
                est,
                var,
                dfc,
                level=payload["level"],
                D=payload["D"],
                bootstrap=payload["bootstrap"],
            )
            out[c] = [float(np.asarray(res[k])[0]) for k in _COLS]
    return out


@dataclass(frozen=True, repr=False, eq=False)
class TippingPoint(SummaryAsRepr):
    """Result of :func:`tipping_point`: ``table`` (one row per grid cell), ``tipping``."""

    table: pd.DataFrame
    arms: tuple[str, ...]
    visit: str
    contrast: str
    level: float
    method: str

    @property
    def delta_columns(self) -> list[str]:
        """Names of the delta columns of ``table`` (``delta_<arm>``)."""
        return [f"delta_{a}" for a in self.arms]

    @property
    def tipping(self) -> pd.DataFrame:
        """Where the conclusion changes (significant at 1 - level vs not).

        1-D: one row per change along the grid, ``delta_<arm>`` interpolated linearly where
        the confidence limit nearest zero crosses zero, and ``from_grid`` (the last grid delta
        before the change). 2-D: for each delta of the first arm, the tipping delta of the
        second arm nearest to zero (NaN when the conclusion never changes along that row).
        """
        t = self.table
        cols = self.delta_columns
        if len(cols) == 1:
            return _flips(t.sort_values(cols[0]), cols[0])
        rows = []
        for d1, sub in t.groupby(cols[0], sort=True):
            f = _flips(sub.sort_values(cols[1]), cols[1])
            val = np.nan
            if len(f):
                val = float(f[cols[1]].iloc[np.argmin(np.abs(f[cols[1]].to_numpy()))])
            rows.append({cols[0]: d1, cols[1]: val})
        return pd.DataFrame(rows)

    @property
    def tipping_delta(self) -> float:
        """1-D: the tipping delta nearest to zero (NaN when the conclusion never changes)."""
        if len(self.arms) != 1:
            raise ModelSpecificationError("tipping_delta is for a 1-D grid; use .tipping")
        f = self.tipping
        if not len(f):
            return float("nan")
        v = f[self.delta_columns[0]].to_numpy()
        return float(v[np.argmin(np.abs(v))])

    def plot(self, ax=None):
        """1-D: estimate and confidence band against delta, with the tipping delta marked.
        2-D: heatmap of the p value with the significance boundary. Returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        t = self.table
        cols = self.delta_columns
        if len(cols) == 1:
            s = t.sort_values(cols[0])
            x = s[cols[0]].to_numpy()
            ax.fill_between(
                x, s["ci_lower"], s["ci_upper"], alpha=0.25, label=f"{self.level:.0%} CI"
            )
            ax.plot(x, s["estimate"], marker="o", ms=3, label="estimate")
            ax.axhline(0, color="black", lw=0.8)
            td = self.tipping_delta
            if np.isfinite(td):
                ax.axvline(td, color="crimson", ls="--", lw=1, label=f"tipping delta {td:.3g}")
            ax.set_xlabel(f"delta added to imputed values, arm {self.arms[0]}")
            ax.set_ylabel(f"{self.contrast} at {self.visit}")
            ax.legend(frameon=False, fontsize="small")
        else:
            piv = t.pivot(index=cols[1], columns=cols[0], values="p_value")
            x = piv.columns.to_numpy(dtype=float)
            y = piv.index.to_numpy(dtype=float)
            im = ax.pcolormesh(
                x, y, piv.to_numpy(), shading="nearest", cmap="viridis_r", vmin=0, vmax=1
            )
            ax.figure.colorbar(im, ax=ax, label="p value")
            if len(x) > 1 and len(y) > 1:
                ax.contour(
                    x, y, piv.to_numpy(), levels=[1 - self.level], colors="white", linewidths=1.5
                )
            ax.set_xlabel(f"delta, arm {self.arms[0]}")
            ax.set_ylabel(f"delta, arm {self.arms[1]}")
            ax.set_title(f"{self.contrast} at {self.visit}", fontsize="medium")
        return ax

    def summary(self) -> str:
        """Plain text: the setting, the tipping delta(s) and the grid."""
        head = (
            f"Tipping point ({self.method}): {self.contrast} at {self.visit}, "
            f"delta on imputed values of {', '.join(self.arms)}; {len(self.table)} cells"
        )
        tip = self.tipping
        lines = [head, "", "Tipping:", tip.to_string(index=False) if len(tip) else "  none in grid"]
        lines += ["", self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            f"<div><p>{html.escape(self.summary().splitlines()[0])}</p><h4>Tipping</h4>"
            f"{self.tipping.to_html(index=False)}<h4>Grid</h4>"
            f"{self.table.to_html(index=False, float_format=lambda v: f'{v:.4g}')}</div>"
        )


def _flips(s: pd.DataFrame, col: str) -> pd.DataFrame:
    sig = s["significant"].to_numpy()
    d = s[col].to_numpy(dtype=float)
    rows = []
    for i in np.flatnonzero(sig[1:] != sig[:-1]):
        e0, e1 = s["estimate"].iloc[i], s["estimate"].iloc[i + 1]
        lim = "ci_lower" if (e0 + e1) / 2 > 0 else "ci_upper"
        b0, b1 = s[lim].iloc[i], s[lim].iloc[i + 1]
        x = d[i] + (d[i + 1] - d[i]) * (0 - b0) / (b1 - b0) if b1 != b0 else d[i]
        if not (min(d[i], d[i + 1]) <= x <= max(d[i], d[i + 1])):
            x = (d[i] + d[i + 1]) / 2
        rows.append(
            {
                col: float(x),
                "from_grid": float(d[i]),
                "direction": "loses significance" if sig[i] else "becomes significant",
            }
        )
    return pd.DataFrame(rows, columns=[col, "from_grid", "direction"])


def _delta_grids(deltas, arm, arms_all: list) -> dict:
    """{arm: 1-D grid of deltas} for one or two arms, checked."""
    if isinstance(deltas, Mapping):
        grids = {str(k): np.asarray(v, dtype=float).ravel() for k, v in deltas.items()}
        if arm is not None:
            raise ModelSpecificationError("give the arm(s) either as arm= or as keys of deltas")
    else:
        a = arms_all[-1] if arm is None else str(arm)
        grids = {a: np.asarray(deltas, dtype=float).ravel()}
    if not 1 <= len(grids) <= 2:
        raise ModelSpecificationError(f"deltas must name one or two arms; got {list(grids)}")
    for a, g in grids.items():
        if a not in arms_all:
            raise ModelSpecificationError(f"delta arm {a!r} is not an arm; arms are {arms_all}")
        if g.size == 0 or not np.all(np.isfinite(g)):
            raise ModelSpecificationError(
                f"the delta grid of arm {a!r} must be a non-empty list of finite numbers"
            )
    return grids


def _grid_cells(grids: dict, arm_names: list) -> np.ndarray:
    """(cells, arms) deltas: the grid of one arm, or every combination of two."""
    if len(arm_names) == 1:
        return grids[arm_names[0]][:, None]
    g0, g1 = np.meshgrid(grids[arm_names[0]], grids[arm_names[1]], indexing="ij")
    return np.column_stack([g0.ravel(), g1.ravel()])


def _payload(imp, j, ref, covariates, arm_names, k, col) -> dict:
    """What every grid cell needs: the visit's ANCOVA design, completed outcomes and the
    imputed cells of each grid arm (rows: subjects; bootstrap-ml: copies of subjects)."""
    fr, Y, tj = imp._visit_outcomes(j)
    X, _, _ = ancova_design(fr, imp.arm, imp.arm_levels, ref, covariates)
    arm_of = imp._by_row(imp.arm_of)
    arms_all = list(imp.arm_levels)
    masks = np.stack([(tj & (arm_of == arms_all.index(a))).astype(float) for a in arm_names])
    return {
        "X": X,
        "Y": Y,
        "W": imp.weights,
        "masks": masks,
        "k": k,
        "col": col,
        "method": imp.method,
        "D": imp.D,
    }


def _run_grid(payload, cells, seeds, client, chunk_size) -> np.ndarray:
    """The pooled results of every cell, locally or in seeded chunks on a dask Client."""
    if client is None:
        return _run_cells(payload, cells, seeds)
    # pure seeded chunks: retried when a worker dies, bounded when stalled (24.13)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = chunk_size or max(1, math.ceil(len(cells) / (4 * n_workers)))
    chunks = [(cells[s : s + size], seeds[s : s + size]) for s in range(0, len(cells), size)]
    return np.vstack(
        run_tasks(_run_cells, payload, chunks, client=client, what="the tipping-point grid")
    )


def tipping_point(
    imputations: Imputations,
    deltas: Sequence[float] | np.ndarray | Mapping[str, Sequence[float]],
    *,
    arm: str | None = None,
    visit: Any = None,
    contrast: str | None = None,
    covariates: Sequence[str] | str = (),
    level: float = 0.95,
    bootstrap: str = "percentile",
    client: Any = None,
    chunk_size: int | None = None,
    seed: int | None = None,
) -> TippingPoint:
    """Re-analyse the same imputations over a grid of deltas.

    Parameters
    ----------
    imputations : Imputations
        From :func:`peerstats.impute` (its own delta, if any, stays applied underneath).
    deltas : array-like or mapping
        A 1-D grid for ``arm``, or ``{arm: grid}`` for one arm, or ``{arm_a: grid_a, arm_b:
        grid_b}`` for the 2-D grid of both arms (every combination). Each delta is added to
        the imputed values of that arm.
    arm : str, optional
        The arm of a 1-D grid (default: the last arm level, e.g. the intervention arm).
    visit : optional
        The visit whose contrast is reported (default: the last visit).
    contrast : str, optional
        With more than two arms, which contrast (``"<arm> - <reference>"``); default the first.
    covariates : list of str
        ANCOVA covariates, as in :meth:`Imputations.analyse`.
    client : dask.distributed.Client, optional
        Map chunks of cells over the workers (default: ``imputations``' client, else local).
    chunk_size : int, optional
        Cells per task (default: about four tasks per worker).
    seed : int, optional
        Root of the per-cell SeedSequence (default: the imputations' seed).

    Returns
    -------
    TippingPoint
        ``table`` with ``delta_<arm>`` column(s), ``estimate, std_error, df, statistic,
        p_value, ci_lower, ci_upper, significant``; ``tipping`` / ``tipping_delta``; ``plot()``.
    """
    if not isinstance(imputations, Imputations):
        raise ModelSpecificationError(
            f"tipping_point needs an Imputations object from peerstats.impute; got "
            f"{type(imputations).__name__}"
        )
    imp = imputations
    arms_all = list(imp.arm_levels)
    grids = _delta_grids(deltas, arm, arms_all)
    if not 0 < level < 1:
        raise ModelSpecificationError(f"level must be in (0, 1); got {level!r}")
    T = len(imp.visits)
    j = T - 1 if visit is None else imp._visit_index(visit)
    ref = arms_all[0]
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    res = imp._ancova_arrays(covariates, None, visits=[imp.visits[j]])  # validates covariates
    others = res[j][5]
    names = [f"{o} - {ref}" for o in others]
    if contrast is not None and contrast not in names:
        raise ModelSpecificationError(f"contrast {contrast!r} is not one of {names}")
    k = 0 if contrast is None else names.index(contrast)
    arm_names = list(grids)
    payload = _payload(imp, j, ref, covariates, arm_names, len(others), 1 + k)
    payload.update(level=level, bootstrap=bootstrap)
    cells = _grid_cells(grids, arm_names)
    root = np.random.SeedSequence(imp.seed if seed is None else seed)
    seeds = root.spawn(len(cells))
    client = client if client is not None else imp.client
    values = _run_grid(payload, cells, seeds, client, chunk_size)
    table = pd.DataFrame(cells, columns=[f"delta_{a}" for a in arm_names])
    for i, c in enumerate(_COLS):
        table[c] = values[:, i]
    table["significant"] = table["p_value"] < 1 - level
    return TippingPoint(
        table=table,
        arms=tuple(arm_names),
        visit=str(imp.visits[j]),
        contrast=names[k],
        level=level,
        method=imp.method,
    )
