"""Spatial covariance for visits at uneven, subject-specific times (SAS ``TYPE=SP(...)``).

The residual covariance of two observations of one subject depends only on the distance d
between their coordinates (a time, or a point in several dimensions, SAS ``sp(exp)(c1 c2)``):

- ``sp_exp`` (SAS SP(EXP)):  Sigma_ij = sigma^2 exp(-d_ij / rho)       (rho: range)
- ``sp_gau`` (SAS SP(GAU)):  Sigma_ij = sigma^2 exp(-d_ij^2 / rho^2)   (rho: range)
- ``sp_pow`` (SAS SP(POW)):  Sigma_ij = sigma^2 rho^d_ij               (0 < rho < 1)

with d the Euclidean distance, no nugget. The covariance parameters are printed as SAS does:
``SP(EXP)`` / ``SP(GAU)`` / ``SP(POW)`` (rho) and ``Residual`` (sigma^2). ``sp_exp`` and
``sp_pow`` are the same model (rho_pow = exp(-1 / rho_exp)); R mmrm's ``sp_exp`` is this
``sp_pow``, and nlme's ``corExp``, ``corGaus`` and ``corCAR1`` are ``sp_exp``, ``sp_gau`` and
``sp_pow``.

Because times are subject-specific, each subject's covariance differs: the engine's block
types (:mod:`peerstats.models._reml`) are the distinct (covariance group, coordinate vector)
combinations, and subjects sharing both are pooled into one block type. Unconstrained
parameters per group level: theta = (log sigma^2, log rho) for ``sp_exp``/``sp_gau`` and
(log sigma^2, logit rho) for ``sp_pow``; first and second derivatives of every block's
covariance are analytic.

Validated against R ``nlme::gls`` (corExp, corGaus, corCAR1, 2-D corExp) and R mmrm
(Satterthwaite df), tests/reference/r_spatial/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._reml import REMLEngine, pattern_statistics
from peerstats.models.prepared import (
    PreparedMMRM,
    _check_visit_counts,
    _Stats,
)

__all__ = [
    "SPATIAL",
    "SpatialStructure",
    "SpatialCovariance",
    "SpatialGroupedCovariance",
    "SpatialPreparedMMRM",
]

SPATIAL: tuple[str, ...] = ("sp_exp", "sp_gau", "sp_pow")
_SAS_NAME = {"sp_exp": "SP(EXP)", "sp_gau": "SP(GAU)", "sp_pow": "SP(POW)"}


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class SpatialStructure:
    """One spatial correlation function with a common variance: two parameters."""

    name: str
    n_params: int = 2

    # ---- SAS's covariance parameters -------------------------------------------------------
    def sas_names(self) -> list[str]:
        """``["SP(EXP)", "Residual"]`` etc., the order SAS PROC MIXED prints them in."""
        return [_SAS_NAME[self.name], "Residual"]

    def sas_complex(self, theta: np.ndarray) -> np.ndarray:
        """SAS parameters (rho, sigma^2) as an analytic function of theta (complex allowed)."""
        th = np.asarray(theta)
        rho = _expit(th[1]) if self.name == "sp_pow" else np.exp(th[1])
        return np.array([rho, np.exp(th[0])])

    def sas_parameters(self, theta: np.ndarray) -> np.ndarray:
        return np.real(self.sas_complex(np.asarray(theta, dtype=float)))

    def theta_from_sas(self, rho: float, sigma2: float) -> np.ndarray:
        t1 = np.log(rho / (1 - rho)) if self.name == "sp_pow" else np.log(rho)
        return np.array([np.log(sigma2), t1])

    # ---- correlation and its derivatives in theta_1 ----------------------------------------
    def correlation(self, t1, D: np.ndarray, order: int = 0):
        """R(D), and with ``order`` 1 or 2 also dR/dt1 and d2R/dt1^2 (elementwise in D)."""
        if self.name == "sp_exp":
            u = D * np.exp(-t1)  # d / rho
            R = np.exp(-u)
            d1 = R * u
            d2 = R * (u * u - u)
        elif self.name == "sp_gau":
            u2 = (D * np.exp(-t1)) ** 2  # d^2 / rho^2
            R = np.exp(-u2)
            d1 = 2 * R * u2
            d2 = R * (4 * u2 * u2 - 4 * u2)
        else:  # sp_pow: rho^d, rho = expit(t1); d log(rho) / dt1 = 1 - rho
            rho = _expit(t1)
            R = np.exp(D * np.log(rho))
            a = D * (1 - rho)
            d1 = R * a
            d2 = R * (a * a - D * rho * (1 - rho))
        if order == 0:
            return R
        return R, d1, d2

    def sigma(self, theta: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Covariance over points with distance matrix (or stack of matrices) ``D``."""
        return np.exp(theta[0]) * self.correlation(theta[1], D)

    def dsigma(self, theta: np.ndarray, D: np.ndarray) -> np.ndarray:
        """dSigma/dtheta_k, (..., 2, m, m) for D of shape (..., m, m)."""
        s2 = np.exp(theta[0])
        R, d1, _ = self.correlation(theta[1], D, order=1)
        return s2 * np.stack([R, d1], axis=-3)

    def d2sigma(self, theta: np.ndarray, D: np.ndarray) -> np.ndarray:
        """d2Sigma/dtheta_k dtheta_l, (..., 2, 2, m, m)."""
        s2 = np.exp(theta[0])
        R, d1, d2 = self.correlation(theta[1], D, order=2)
        top = np.stack([R, d1], axis=-3)
        bottom = np.stack([d1, d2], axis=-3)
        return s2 * np.stack([top, bottom], axis=-4)

    def d2sigma_sas(self, psi: np.ndarray, D: np.ndarray) -> np.ndarray:
        """d2Sigma/dpsi_k dpsi_l in SAS's parameters psi = (rho, sigma^2), (..., 2, 2, m, m).

        Sigma = sigma^2 f(D; rho) is linear in sigma^2, so d2/dsigma2^2 = 0,
        d2/drho dsigma2 = df/drho and d2/drho^2 = sigma^2 d2f/drho^2 (for Kenward-Roger).
        """
        rho, s2 = float(psi[0]), float(psi[1])
        if self.name == "sp_exp":  # f = exp(-D/rho)
            f = np.exp(-D / rho)
            f1 = f * D / rho**2
            f2 = f * (D**2 / rho**4 - 2 * D / rho**3)
        elif self.name == "sp_gau":  # f = exp(-D^2/rho^2)
            f = np.exp(-(D**2) / rho**2)
            f1 = f * 2 * D**2 / rho**3
            f2 = f * (4 * D**4 / rho**6 - 6 * D**2 / rho**4)
        else:  # f = rho^D
            f = rho**D
            f1 = D * rho ** (D - 1)  # rho > 0: finite, and 0 at D = 0
            f2 = D * (D - 1) * rho ** (D - 2)
        z = np.zeros_like(f)
        return np.stack([np.stack([s2 * f2, f1], axis=-3), np.stack([f1, z], axis=-3)], axis=-4)


def _distances(coords: np.ndarray) -> np.ndarray:
    """Euclidean distance matrices of (B, m, c) coordinates -> (B, m, m)."""
    diff = coords[:, :, None, :] - coords[:, None, :, :]
    return np.sqrt((diff**2).sum(axis=-1))


class SpatialCovariance:
    """Covariance model for :class:`~peerstats.models._reml.REMLEngine`: block type b (group
    g_b, coordinates x_b) has V_b = Sigma_{g_b}(theta; D(x_b))."""

    def __init__(self, grouped: SpatialGroupedCovariance, classes, combos: list) -> None:
        self.grouped = grouped
        self.structure = grouped.structure
        self.n_params = grouped.n_params
        self._blocks = []  # per size class: (group index (B,), distances (B, m, m))
        for sc in classes:
            g = np.array([combos[k[0]][0] for k in sc.keys], dtype=np.int64)
            coords = np.stack([combos[k[0]][1] for k in sc.keys])  # (B, m, c)
            self._blocks.append((g, _distances(coords)))

    def block_covariances(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        st = self.structure
        K = self.n_params
        out = []
        for g_idx, D in self._blocks:
            B, m = D.shape[0], D.shape[1]
            V = np.empty((B, m, m))
            dV = np.zeros((B, K, m, m))
            for g, s in enumerate(self.grouped.slices()):
                sel = g_idx == g
                if not sel.any():
                    continue
                V[sel] = st.sigma(theta[s], D[sel])
                dV[sel, s] = st.dsigma(theta[s], D[sel])
            out.append((V, dV))
        return out

    def block_second_derivatives(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per size class d2V_b/dtheta_k dtheta_l, (B, K, K, m, m) (analytic)."""
        st = self.structure
        K = self.n_params
        out = []
        for g_idx, D in self._blocks:
            B, m = D.shape[0], D.shape[1]
            d2 = np.zeros((B, K, K, m, m))
            for g, s in enumerate(self.grouped.slices()):
                sel = np.flatnonzero(g_idx == g)
                if sel.size:
                    d2[
                        sel[:, None, None],
                        np.arange(K)[s][None, :, None],
                        np.arange(K)[s][None, None, :],
                    ] = st.d2sigma(theta[s], D[sel])
            out.append(d2)
        return out

    def block_second_derivatives_sas(self, theta: np.ndarray) -> list[np.ndarray]:
        """As :meth:`block_second_derivatives` in SAS's parameters (rho, sigma^2) per group."""
        st = self.structure
        K = self.n_params
        out = []
        for g_idx, D in self._blocks:
            B, m = D.shape[0], D.shape[1]
            d2 = np.zeros((B, K, K, m, m))
            for g, s in enumerate(self.grouped.slices()):
                sel = np.flatnonzero(g_idx == g)
                if sel.size:
                    psi = st.sas_parameters(theta[s])
                    d2[
                        sel[:, None, None],
                        np.arange(K)[s][None, :, None],
                        np.arange(K)[s][None, None, :],
                    ] = st.d2sigma_sas(psi, D[sel])
            out.append(d2)
        return out


@dataclass(frozen=True)
class SpatialGroupedCovariance:
    """A spatial structure with separate parameters per group level (SAS ``group=``).

    Mirrors :class:`~peerstats.models._covariance.GroupedCovariance` for the result tables:
    :meth:`sigmas` gives, per level, the covariance across the visit levels evaluated at each
    visit's mean coordinates over the analysed rows (a summary: every subject's own covariance
    uses its own times).
    """

    structure: SpatialStructure
    levels: tuple[str, ...]
    visit_coordinates: np.ndarray  # (T, c) mean coordinates per visit level

    @property
    def n_params(self) -> int:
        return self.structure.n_params * len(self.levels)

    def slices(self) -> list[slice]:
        k = self.structure.n_params
        return [slice(g * k, (g + 1) * k) for g in range(len(self.levels))]

    def sigmas(self, theta: np.ndarray) -> list[np.ndarray]:
        D = _distances(self.visit_coordinates[None])[0]
        return [self.structure.sigma(theta[s], D) for s in self.slices()]

    def sas_table(self, theta: np.ndarray) -> list[tuple[str, str | None, float]]:
        rows = []
        names = self.structure.sas_names()
        for lev, s in zip(self.levels, self.slices()):
            for n, v in zip(names, self.structure.sas_parameters(theta[s])):
                rows.append((n, lev if len(self.levels) > 1 else None, float(v)))
        return rows


def _time_columns(data: pd.DataFrame, time, covariance: str) -> list[str]:
    """Check ``time`` (columns present and numeric) and return the coordinate columns."""
    if time is None:
        raise ModelSpecificationError(
            f"covariance={covariance!r} is a spatial structure: it needs time= (a numeric column "
            "of subject-specific times, or a list of coordinate columns, as SAS "
            f"sp({covariance[3:]})(time))"
        )
    cols = [time] if isinstance(time, str) else list(time)
    if not cols or not all(isinstance(c, str) for c in cols):
        raise ModelSpecificationError(
            f"time={time!r} must be a column name or a non-empty list of column names"
        )
    if len(set(cols)) != len(cols):
        raise ModelSpecificationError(f"time={cols} names a column twice")
    absent = [c for c in cols if c not in data.columns]
    if absent:
        raise ModelSpecificationError(
            f"time column(s) {absent} are not columns of data; columns are {list(data.columns)}"
        )
    bad = [
        c
        for c in cols
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])
    ]
    if bad:
        raise ModelSpecificationError(
            f"time column(s) {bad} must be numeric (times or coordinates; dtype "
            f"{[str(data[c].dtype) for c in bad]}); convert dates to e.g. days since "
            "randomisation first"
        )
    return cols


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
        self.time_columns = _time_columns(data, self.time, self.covariance)
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
        D = _distances(pts)
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
            cols = _time_columns(data, self.time, self.covariance)
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
        D = _distances(pts)
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
        + [_distances(pts[None])[0][np.triu_indices(len(pts), 1)] for _, pts in st.combos]
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
