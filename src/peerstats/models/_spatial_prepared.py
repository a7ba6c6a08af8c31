"""The prepared MMRM with a spatial covariance (issue 10.5): see :mod:`._spatial`.

:class:`SpatialPreparedMMRM` is what :func:`peerstats.prepare_mmrm` builds for ``sp_exp``,
``sp_gau`` and ``sp_pow``: block types are the distinct (covariance group, coordinates of the
observed rows in visit order), recomputed for every refit; each subject's own covariance at its
times serves the sandwich, the predictions and the normalized residuals. It subclasses
:class:`~peerstats.models.prepared.PreparedMMRM`, which creates it, so the two modules import
each other (the known import-cycle exception of the prepared model, tests/test_import_cycles.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._prepared import (
    PreparedMMRM,
    _check_visit_counts,
    _Stats,
)
from peerstats.models._reml import REMLEngine, pattern_statistics
from peerstats.models._spatial import (
    SpatialCovariance,
    SpatialGroupedCovariance,
    SpatialStructure,
    distances,
    time_columns,
)

__all__ = ["SpatialPreparedMMRM"]


@dataclass
class _SpatialStats(_Stats):
    """Pooled statistics plus each block type's (group, coordinates) and the visit counts."""

    combos: list = field(default_factory=list)
    visit_counts: np.ndarray | None = None


class SpatialPreparedMMRM(PreparedMMRM):
    """A prepared MMRM with a spatial covariance (see :func:`peerstats.prepare_mmrm`).

    Block types are the distinct (covariance group, coordinates of the observed rows in visit
    order); refits recompute them for the rows they use. ``coordinates`` holds every row's
    coordinates (NaN where a time is missing; only rows with an observed outcome need one).
    """

    def __init__(self, *, time, **kwargs) -> None:
        self.time = time
        super().__init__(**kwargs)

    # ---- layout and covariance ---------------------------------------------------------------
    def _build_layout(self, data: pd.DataFrame) -> None:
        super()._build_layout(data)
        self.time_columns = time_columns(data, self.time, self.covariance)
        coords = data[self.time_columns].to_numpy(dtype=float, na_value=np.nan).copy()
        coords[~np.isfinite(coords)] = np.nan
        self.coordinates = coords
        self.coordinates.setflags(write=False)
        self._check_coordinates(self._observed, labels=data.index)

    def _check_coordinates(self, rows: np.ndarray, labels=None) -> None:
        """Missing coordinates or two rows of one subject at the same point, on ``rows``."""
        idx = np.flatnonzero(rows)
        X = self.coordinates[idx]
        cols = self.time_columns
        missing = ~np.isfinite(X).all(axis=1)
        if missing.any():
            where = idx[missing]
            shown = (labels[where] if labels is not None else where).tolist()[:10]
            raise ModelSpecificationError(
                f"time column(s) {cols} are missing (or infinite) on {int(missing.sum())} "
                f"row(s) with an observed outcome (first row {'labels' if labels is not None else 'positions'}: "
                f"{shown}); every analysed row needs its time"
            )
        frame = pd.DataFrame(X, columns=cols)
        frame["__subject"] = self.subject_codes[idx]
        dup = frame.duplicated(keep=False).to_numpy()
        if dup.any():
            who = pd.unique(self.subjects[self.subject_codes[idx][dup]]).tolist()[:10]
            raise ModelSpecificationError(
                f"{int(dup.sum())} analysed row(s) share their time {cols} with another row of "
                f"the same subject (subjects: {who}); a spatial covariance without a nugget is "
                "singular at distance 0. Each subject's times must be distinct."
            )

    def _setup_covariance(self) -> None:
        self.structure = SpatialStructure(self.covariance)
        obs = self._observed
        T, c = len(self.visits), self.coordinates.shape[1]
        vc = np.full((T, c), np.nan)
        for t in range(T):
            sel = obs & (self.visit_codes == t)
            if sel.any():
                vc[t] = self.coordinates[sel].mean(axis=0)
        self._grouped = SpatialGroupedCovariance(self.structure, self._levels, vc)

    # ---- statistics ----------------------------------------------------------------------------
    def _statistics(self, rows: np.ndarray, y: np.ndarray, fw: np.ndarray | None) -> _Stats:
        """Pooled statistics of ``rows``: block types = (group, coordinates in visit order)."""
        if not np.array_equal(rows, self._observed):
            self._check_coordinates(rows)
        idx = np.flatnonzero(rows)
        subj = self.subject_codes[idx]
        vis = self.visit_codes[idx]
        grp = self.group_codes[idx]
        coords = self.coordinates[idx]
        n = idx.size
        c = coords.shape[1]
        order = np.lexsort((vis, subj))
        s_sorted = subj[order]
        first = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n) - start
        n_units = len(self.subjects)
        m_max = int(position.max()) + 1 if n else 1
        pad = np.full((n_units, m_max, c), -np.inf)
        pad[subj, position] = coords
        ugroup = np.zeros(n_units)
        ugroup[subj] = grp
        present = np.zeros(n_units, dtype=bool)
        present[subj] = True
        key = np.column_stack([ugroup, pad.reshape(n_units, -1)])[present]
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        combo = np.zeros(n_units, dtype=np.int64)
        combo[present] = inv.reshape(-1)
        combos = []
        for row in uniq:
            pts = row[1:].reshape(m_max, c)
            combos.append((int(row[0]), pts[np.isfinite(pts).all(axis=1)]))
        rw = None if self._row_weights is None else self._row_weights[idx]
        classes, info = pattern_statistics(
            self.X_all[idx], y[idx], subj, position, combo[subj], rw, fw
        )
        f_row = np.ones(n) if fw is None else fw[subj]
        counts = np.zeros((len(self._levels), len(self.visits)))
        np.add.at(counts, (grp, vis), f_row)
        return _SpatialStats(
            classes=classes,
            n_obs=float(f_row.sum()),
            log_w=0.0 if rw is None else float(f_row @ np.log(rw)),
            n_units=info["n_units"],
            combos=combos,
            visit_counts=counts,
        )

    def _check_statistics(self, st: _Stats, N=None, XtX=None) -> None:
        from peerstats.models._design import check_rank_gram

        if st.n_units < 2:
            raise ModelSpecificationError("an MMRM needs at least two subjects")
        _check_visit_counts(st.visit_counts, self)
        p = len(self.columns)
        XtX = np.zeros((p, p))
        for sc in st.classes:
            j = np.arange(sc.m)
            XtX += sc.SXX[:, j, j].sum(axis=(0, 1))
        check_rank_gram(XtX, self.columns, int(round(st.n_obs)))
        if st.n_obs - p <= 0:
            raise ModelSpecificationError(
                f"{st.n_obs:g} observations for {p} fixed effects: no residual degrees of freedom"
            )

    def _engine(self, st: _Stats) -> REMLEngine:
        cov = SpatialCovariance(self._grouped, st.classes, st.combos)
        return REMLEngine(
            st.classes, cov, n_obs=st.n_obs, method=self.method, log_weight_sum=st.log_w
        )

    def _initial_theta(self, engine: REMLEngine, st: _Stats) -> np.ndarray:
        return _start(engine, self._grouped, st)

    def jackknife(self) -> list:
        """Leave-one-subject-out refits (each recomputes the block types without the subject)."""
        self._theta_start()
        has = np.zeros(len(self.subjects), dtype=bool)
        has[self.subject_codes[self._observed]] = True
        return [self.refit(drop=i) if has[i] else self._full_refit for i in range(len(has))]

    # ---- each subject's own covariance -------------------------------------------------------
    def subject_sigmas(self, theta: np.ndarray | None = None) -> np.ndarray:
        """(n_subjects, T, T): every subject's covariance over the visit levels at its own
        times (rows and columns NaN for a visit without a row or without a time), at ``theta``
        (default: the full fit's). For conditional predictions of missing visits."""
        theta = self._theta_start() if theta is None else np.asarray(theta, dtype=float)
        n, T, c = len(self.subjects), len(self.visits), self.coordinates.shape[1]
        pts = np.full((n, T, c), np.nan)
        ok = (self.subject_codes >= 0) & (self.visit_codes >= 0)
        pts[self.subject_codes[ok], self.visit_codes[ok]] = self.coordinates[ok]
        D = distances(pts)
        g = np.zeros(n, dtype=np.int64)
        valid = ok & (self.group_codes >= 0)
        g[self.subject_codes[valid]] = self.group_codes[valid]
        out = np.empty((n, T, T))
        for k, s in enumerate(self._grouped.slices()):
            out[g == k] = self.structure.sigma(theta[s], D[g == k])
        return out

    def sigmas_at(self, theta, data, y, sc, vc, gc):
        """Per-subject covariances over the visit levels at the subjects' own times, for the
        rows of ``data`` (None: the prepared data) coded ``sc`` / ``vc`` / ``gc`` as by the
        predictions' layout (-1 = unusable row). Returns ``(sigmas (n, T, T), sc)`` with rows
        whose time is missing set to -1 (no conditional prediction: NaN); an observed row
        without a time, or two rows of a subject at one time, is an error."""
        if data is None:
            coords = np.asarray(self.coordinates)
        else:
            cols = time_columns(data, self.time, self.covariance)
            coords = data[cols].to_numpy(dtype=float, na_value=np.nan)
        usable = sc >= 0
        missing = usable & ~np.isfinite(coords).all(axis=1)
        observed = usable & ~np.isnan(y)
        if (missing & observed).any():
            where = np.flatnonzero(missing & observed)[:10].tolist()
            raise ModelSpecificationError(
                f"time column(s) {self.time_columns} are missing on {int((missing & observed).sum())}"
                f" row(s) with an observed outcome (first row positions: {where}); conditional "
                "predictions with a spatial covariance need the time of every observed row"
            )
        sc = np.where(missing, -1, sc)
        ok = sc >= 0
        frame = pd.DataFrame(coords[ok])
        frame["__s"] = sc[ok]
        if frame.duplicated().any():
            raise ModelSpecificationError(
                f"two rows of a subject share their time {self.time_columns}; a spatial "
                "covariance without a nugget is singular at distance 0"
            )
        n = int(sc[ok].max()) + 1 if ok.any() else 0
        T, c = len(self.visits), coords.shape[1]
        pts = np.full((n, T, c), np.nan)
        pts[sc[ok], vc[ok]] = coords[ok]
        g = np.zeros(n, dtype=np.int64)
        g[sc[ok]] = gc[ok]
        D = distances(pts)
        out = np.empty((n, T, T))
        for k, s in enumerate(self._grouped.slices()):
            out[g == k] = self.structure.sigma(theta[s], D[g == k])
        return out, sc


def _start(engine: REMLEngine, grouped: SpatialGroupedCovariance, st: _SpatialStats) -> np.ndarray:
    """Variance of OLS residuals and the best of a grid of ranges (by the REML/ML criterion)."""
    classes = st.classes
    p = classes[0].SXX.shape[-1]
    XtX = np.zeros((p, p))
    Xty = np.zeros(p)
    yy = 0.0
    for sc in classes:
        j = np.arange(sc.m)
        XtX += sc.SXX[:, j, j].sum(axis=(0, 1))
        Xty += sc.SXy[:, j, j].sum(axis=(0, 1))
        yy += float(sc.Syy[:, j, j].sum())
    beta = np.linalg.lstsq(XtX, Xty, rcond=None)[0]
    s2 = max((yy - beta @ Xty) / max(st.n_obs - p, 1), 1e-8)
    dists = np.concatenate(
        [np.zeros(0)]
        + [distances(pts[None])[0][np.triu_indices(len(pts), 1)] for _, pts in st.combos]
    )
    dists = dists[dists > 0]
    if dists.size == 0:  # nobody has two observations: the range is not informed
        scales = np.array([1.0])
    else:
        scales = np.quantile(dists, [0.05, 0.25, 0.5, 0.75, 0.95]) * np.array(
            [0.5, 1.0, 1.0, 1.0, 2.0]
        )
    structure = grouped.structure
    best, best_obj = None, np.inf
    G = len(grouped.levels)
    for h in scales:
        # correlation exp(-1) at distance h, for every structure
        rho = np.exp(-1.0 / h) if structure.name == "sp_pow" else h
        th = np.tile(structure.theta_from_sas(rho, s2), G)
        state = engine.evaluate(th, gradient=False)
        if state is not None and state.objective < best_obj:
            best, best_obj = th, state.objective
    if best is None:  # pragma: no cover - a tiny range gives sigma^2 I, always positive definite
        best = np.tile(structure.theta_from_sas(np.exp(-1.0), s2), G)
    return best
