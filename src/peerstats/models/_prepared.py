"""The prepared MMRM's machinery: :class:`PreparedMMRM` (fit, refit, jackknife), :class:`Refit`.

Built by :func:`peerstats.models.prepared.prepare_mmrm`, which also dispatches to the spatial
subclass (:mod:`peerstats.models._spatial_prepared`); this module sits below both, so imports
run one way. See :mod:`peerstats.models.prepared` for what the prepared model is for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from peerstats.exceptions import InsufficientDataError, ModelSpecificationError
from peerstats.models._covariance import GroupedCovariance, make_structure
from peerstats.models._design import (
    FixedDesign,
    _as_levels,
    as_categorical,
    check_rank_gram,
)
from peerstats.models._memory import steady_pages
from peerstats.models._mmrm_result import build_result, check_df_options, empirical_covariances
from peerstats.models._prepared_checks import (
    HETEROGENEOUS,
    _check_pairs,
    _check_singular,
    _check_visit_counts,
    _clearly_full_rank,
    _raise_unless_converged,
    _repeated,
    factorize_ids,
)
from peerstats.models._reml import (
    PatternCovariance,
    PatternLikelihood,
    REMLEngine,
    SizeClass,
    UnitArrays,
    blas_threads,
    pattern_statistics,
)

__all__ = ["PreparedMMRM", "Refit", "HETEROGENEOUS", "_check_visit_counts"]

CovarianceName = Literal[
    "us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh", "sp_exp", "sp_gau", "sp_pow"
]
MethodName = Literal["reml", "ml"]
DfName = Literal["satterthwaite", "kenward-roger", "residual", "asymptotic"]


@dataclass(frozen=True)
class Refit:
    """One refit of a prepared MMRM (no inference beyond the model-based covariance of beta).

    ``sigmas`` holds one (T, T) covariance per group level (one without ``group=``);
    ``neg2loglik`` is -2 log-likelihood (REML or ML, SAS convention) of the refitted data.
    """

    beta: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    sigmas: list[np.ndarray]
    neg2loglik: float
    converged: bool
    iterations: int


@dataclass
class _Stats:
    """Pooled sufficient statistics of one data set (and what the likelihood needs besides)."""

    classes: list[SizeClass] | None
    n_obs: float
    log_w: float
    n_units: int
    pattern: PatternLikelihood | None = None  # prebuilt likelihood (jackknife)
    units: UnitArrays | None = None  # padded rows per subject (the likelihood's subject path)


def _check_columns(data, *, subject, visit, group, weights) -> None:
    for name, col in (("subject", subject), ("visit", visit)):
        if not isinstance(col, str):
            raise ModelSpecificationError(f"{name} must be a column name (str), not {col!r}")
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    for name, col in (
        ("subject", subject),
        ("visit", visit),
        ("group", group),
        ("weights", weights),
    ):
        if col is not None and col not in data.columns:
            raise ModelSpecificationError(
                f"{name}={col!r} is not a column of data; columns are {list(data.columns)}"
            )


def _visit_group_as_factors(data: pd.DataFrame, visit: str, group: str | None) -> pd.DataFrame:
    """Visit and group as categoricals once, on the full data (levels from every row)."""
    conv = {
        c: as_categorical(data[c], name=c)
        for c in {visit, group} - {None}
        if not isinstance(data[c].dtype, pd.CategoricalDtype)
    }
    return data.assign(**conv) if conv else data


# ---------------------------------------------------------------------------------------------
class PreparedMMRM:
    """An MMRM with its design, codes and pooled statistics built once (see :func:`prepare_mmrm`).

    Attributes
    ----------
    columns : list of str
        Fixed-effect column names (order of ``beta``).
    visits : tuple of str
        Visit levels (order of the rows and columns of each Sigma).
    subjects : pandas.Index
        Every subject in ``data`` (also those without an observed outcome), in the order of
        ``subject_codes``, ``subject_weights`` and ``drop``.
    group_levels : tuple of str
        Levels of ``group`` (``()`` without ``group=``).
    X_all : ndarray (n_rows, p)
        Design of every row of ``data`` (NaN where a model column is missing).
    y_all : ndarray (n_rows,)
        The outcome, NaN where missing.
    subject_codes, visit_codes, group_codes : int ndarrays (n_rows,)
        Codes per row of ``data`` (-1 where the column is missing; group codes 0 without
        ``group=``).
    """

    def __init__(
        self,
        *,
        formula: str,
        data: pd.DataFrame,
        design: FixedDesign,
        subject: str,
        visit: str,
        covariance: str,
        group: str | None,
        weights: str | None,
        method: str,
    ) -> None:
        self.formula = formula
        self.design = design
        self.subject = subject
        self.visit = visit
        self.covariance = covariance
        self.group = group
        self.weights = weights
        self.method = method
        self._seconds_prepare = 0.0
        self._theta_hat: np.ndarray | None = None
        self._H_hat: np.ndarray | None = None
        self._full_refit: Refit | None = None
        self.n_rows = len(data)
        self.index = data.index
        self._build_layout(data)
        self.n_subjects_data = len(self.subjects)  # factorize leaves out missing ids, as nunique
        self._check_layout()
        self._setup_covariance()
        self._check_size()
        self._stats = self._statistics(self._observed, self.y_all, None)
        self.__dict__.pop("_obs_codes", None)  # (a subclass's statistics may not use them)
        self._check_statistics(self._stats)

    def _setup_covariance(self) -> None:
        """``structure`` and ``_grouped`` (a spatial model overrides this and the statistics)."""
        self.structure = make_structure(self.covariance, len(self.visits))
        self._grouped = GroupedCovariance(self.structure, self._levels)

    def _initial_theta(self, engine: REMLEngine, st: _Stats) -> np.ndarray:
        """Starting covariance parameters for a fit from scratch."""

        G, T = len(self._levels), len(self.visits)
        return self._grouped.start(empirical_covariances(st.classes, G, T, st.units))

    # ---- layout ------------------------------------------------------------------------------
    def _build_layout(self, data: pd.DataFrame) -> None:
        design, subject, visit, group = self.design, self.subject, self.visit, self.group
        self.columns = list(design.columns)
        visit_levels = list(data[visit].cat.categories)
        self._visit_values = visit_levels
        self.visits = tuple(str(v) for v in visit_levels)
        T = len(visit_levels)
        if T > 40:
            raise ModelSpecificationError(
                f"{visit!r} has {T} levels; peerstats' MMRM supports up to 40 visits"
            )
        self.subject_codes, self.subjects = factorize_ids(data[subject])
        self.visit_codes = np.asarray(data[visit].cat.codes, dtype=np.int64)
        if group is not None:
            self._group_values = list(data[group].cat.categories)
            self._levels = tuple(str(g) for g in self._group_values)
            self.group_levels = self._levels
            self.group_codes = np.asarray(data[group].cat.codes, dtype=np.int64)
        else:
            self._levels = ("",)
            self.group_levels = ()
            self.group_codes = np.zeros(self.n_rows, dtype=np.int64)
        self.y_all = data[design.outcome].to_numpy(dtype=float, na_value=np.nan, copy=True)
        self._observed = np.zeros(self.n_rows, dtype=bool)
        self._observed[design.rows] = True
        self._obs_pos_rows = None  # position of each row among the observed (on first use)
        if self.weights is not None:
            w = pd.to_numeric(data[self.weights], errors="coerce").to_numpy(dtype=float)
            wo = w[design.rows]
            if not np.all(np.isfinite(wo)) or np.any(wo <= 0):
                raise ModelSpecificationError(
                    f"weights {self.weights!r} must be positive and finite"
                )
            self._row_weights = np.where(np.isfinite(w) & (w > 0), w, np.nan)
        else:
            self._row_weights = None
        # the design of every row is built on first use (a fit needs only the observed rows)
        keep = list(dict.fromkeys([*design.variables, subject, visit] + ([group] if group else [])))
        self._data = data[keep]  # (a copy of the model columns: X_all is built on first use)
        self._X_all = None
        self._valid_rows = None
        for a in (self.y_all, self.subject_codes, self.visit_codes, self.group_codes):
            a.setflags(write=False)

    def _materialise(self) -> None:
        """X_all (the design of every row, coded as in the fit; NaN where a model column is
        missing or a factor level is unknown to the fit) and the rows that may enter a
        likelihood when their outcome is observed."""
        design, data = self.design, self._data
        model_cols = list(dict.fromkeys([*design.variables, self.subject, self.visit]))
        if self.group is not None:
            model_cols.append(self.group)
        ok = data[model_cols].notna().all(axis=1).to_numpy().copy()
        for v, values in design.factor_values.items():  # levels unknown to the fit: no design
            ok &= _as_levels(data[v], values)[1]
        ok[design.rows] = False
        X_all = np.full((self.n_rows, len(self.columns)), np.nan)
        if ok.any():
            X_all[ok] = self.design_matrix(data.iloc[np.flatnonzero(ok)])
        X_all[design.rows] = design.X  # the fit's own rows, bit for bit
        ok[design.rows] = True
        if self._row_weights is not None:
            ok &= np.isfinite(self._row_weights)
        X_all.setflags(write=False)
        self._X_all, self._valid_rows = X_all, ok
        self._data = None

    @property
    def X_all(self) -> np.ndarray:
        """Design of every row of ``data`` (n_rows, p); NaN where a model column is missing."""
        if self._X_all is None:
            self._materialise()
        return self._X_all

    @property
    def _valid(self) -> np.ndarray:
        if self._valid_rows is None:
            self._materialise()
        return self._valid_rows

    @property
    def _obs_pos(self) -> np.ndarray:
        """Position of each row of data among the observed rows (-1: not observed)."""
        if self._obs_pos_rows is None:
            rows = self.design.rows
            pos = np.full(self.n_rows, -1, dtype=np.int64)
            pos[rows] = np.arange(len(rows))
            self._obs_pos_rows = pos
        return self._obs_pos_rows

    def _X_rows(self, idx: np.ndarray) -> np.ndarray:
        """Design rows ``idx`` (positions in data), from the fit's X when all are observed."""
        X = self.design.X
        if idx is self.design.rows:
            return X  # every observed row in order (a fit): no copy
        pos = self._obs_pos[idx]
        if pos.size == X.shape[0] and pos.size and pos[0] == 0 and np.all(np.diff(pos) == 1):
            return X  # every observed row in order (a fit): no copy
        if np.all(pos >= 0):
            return X[pos]
        return self.X_all[idx]

    def _check_layout(self) -> None:
        """mmrm()'s checks on the rows with an observed outcome."""
        obs = self.design.rows  # positions of the observed rows (the _observed mask)
        scodes = self.subject_codes[obs]
        vpos = self.visit_codes[obs]
        self._obs_codes = (scodes, vpos)  # for the first _statistics (then dropped)
        T = len(self.visits)
        key = scodes * T
        key += vpos
        rep = _repeated(key)
        del key
        if rep.any():
            rows = self.design.data.index[rep].tolist()[:10]
            raise ModelSpecificationError(
                f"{int(rep.sum())} row(s) repeat a {self.subject!r} x {self.visit!r} combination "
                f"(first row labels: {rows}); each subject can have one row per visit"
            )
        G = len(self._levels)
        if self.group is not None:
            self._check_group(obs)
            # subject-level group code (the group of any of its rows)
            sg = np.zeros(len(self.subjects), dtype=np.int64)
            valid = (self.subject_codes >= 0) & (self.group_codes >= 0)
            sg[self.subject_codes[valid]] = self.group_codes[valid]
            vpos = self.group_codes[obs] * T + vpos
        else:  # one group: no pass over the group codes (all 0)
            sg = np.zeros(len(self.subjects), dtype=np.int64)
        self._subject_group = sg
        counts = np.bincount(vpos, minlength=G * T).reshape(G, T).astype(float)
        _check_visit_counts(counts, self)
        if scodes.size == 0 or scodes[0] == scodes[-1] and scodes.min() == scodes.max():
            raise ModelSpecificationError("an MMRM needs at least two subjects")
        p = len(self.columns)
        if obs.size - p <= 0:
            raise ModelSpecificationError(
                f"{obs.size} observations for {p} fixed effects: no residual degrees of freedom"
            )

    def _check_group(self, obs: np.ndarray) -> None:
        """``group`` constant within subject, and every group level with an observed outcome."""
        group = self.group
        valid = self.group_codes >= 0
        per_subj = pd.Series(self.group_codes[valid]).groupby(self.subject_codes[valid]).nunique()
        if (per_subj > 1).any():
            bad = self.subjects[per_subj.index[per_subj > 1]].tolist()[:10]
            raise ModelSpecificationError(
                f"group={group!r} must be constant within subject; it varies for {bad}"
            )
        present = np.flatnonzero(np.bincount(self.group_codes[obs], minlength=len(self._levels)))
        missing_g = [lev for i, lev in enumerate(self._levels) if i not in present]
        if missing_g:
            raise ModelSpecificationError(
                f"group level(s) {missing_g} of {group!r} have no observed outcome; their "
                "covariance parameters cannot be estimated"
            )

    def _size_text(self) -> str:
        n_obs = int(self._observed.sum())
        n_sub = int(np.count_nonzero(np.bincount(self.subject_codes[self._observed])))
        return (
            f"{n_obs} observations of {n_sub} participants, {len(self.columns)} fixed effects, "
            f"{self._grouped.n_params} covariance parameters (covariance={self.covariance!r} "
            f"across {len(self.visits)} visits)"
        )

    def _check_size(self) -> None:
        """Refuse, before fitting, data too small for the covariance (issue 24.6): REML
        estimates the covariance from n - p error contrasts, so it needs at least as many
        contrasts as covariance parameters."""
        n_obs, p, k = int(self._observed.sum()), len(self.columns), self._grouped.n_params
        if n_obs - p < k:
            raise InsufficientDataError(
                f"too little data for this model: {self._size_text()}. Estimating {k} "
                f"covariance parameters after {p} fixed effects needs at least {p + k} "
                "observations; collect more participants, or use a simpler covariance (cs, "
                "ar1) or fewer covariates"
            )

    # ---- statistics --------------------------------------------------------------------------
    def _statistics(self, rows: np.ndarray, y: np.ndarray, fw: np.ndarray | None) -> _Stats:
        """Pooled statistics of the rows ``rows`` (boolean) with outcome ``y``."""
        # the fit's own rows: their positions are the design's (no pass over the mask)
        idx = self.design.rows if rows is self._observed else np.flatnonzero(rows)
        codes = self.__dict__.pop("_obs_codes", None) if rows is self._observed else None
        scodes, vcodes = codes or (self.subject_codes[idx], self.visit_codes[idx])
        rw = None if self._row_weights is None else self._row_weights[idx]
        one_group = self.group is None
        # one BLAS thread also for the large cross products: on a shared 2-core machine a
        # second thread made them 2-10 times slower (1M x 4: 0.16 s on one thread)
        with blas_threads():
            classes, info = pattern_statistics(
                self._X_rows(idx),
                y[idx],
                scodes,
                vcodes,
                0 if one_group else self.group_codes[idx],
                rw,
                fw,
                units=(len(self.visits), self._grouped.n_params),
            )
        n_obs = float(idx.size) if fw is None else float(fw[scodes].sum())
        log_w = 0.0
        if rw is not None:
            f_row = np.ones(idx.size) if fw is None else fw[scodes]
            log_w = float(f_row @ np.log(rw))
        return _Stats(
            classes=classes,
            n_obs=n_obs,
            log_w=log_w,
            n_units=info["n_units"],
            units=info["units"],
        )

    def _counts_and_gram(self, classes: list[SizeClass], units=None) -> tuple:
        """Units observed at each pair of visits per group (G, T, T) and the pooled X'X
        (from the subjects' padded rows ``units`` when given: the pooled statistics are then
        not needed)."""
        G, T, p = len(self._levels), len(self.visits), len(self.columns)
        N = np.zeros((G, T, T))
        XtX = np.zeros((p, p))
        if units is not None:
            Xf = units.X.reshape(-1, p)
            XtX = Xf.T @ (Xf if units.weight is None else Xf * np.repeat(units.weight, T)[:, None])
        for sc in classes:
            gs = np.array([g for g, _ in sc.keys], dtype=np.int64)
            mask = np.zeros((len(sc.keys), T))
            mask[np.arange(len(sc.keys))[:, None], [vis for _, vis in sc.keys]] = 1.0
            np.add.at(N, gs, sc.counts[:, None, None] * mask[:, :, None] * mask[:, None, :])
            if units is None:
                j = np.arange(sc.m)
                XtX += sc.SXX[:, j, j].sum(axis=(0, 1))
        return N, XtX

    def _check_statistics(self, st: _Stats, N=None, XtX=None) -> None:
        """Visits, pairs (us) and rank from pooled statistics: what mmrm() checks on a data set.

        (With weights X'X is the weighted one: positive row weights do not change the rank.)
        """
        if st.n_units < 2:
            raise ModelSpecificationError("an MMRM needs at least two subjects")
        if N is None:
            N, XtX = self._counts_and_gram(st.classes, st.units)
        _check_visit_counts(np.diagonal(N, axis1=1, axis2=2), self)
        if self.covariance == "us":
            _check_pairs(N, self)
        p = len(self.columns)
        if not _clearly_full_rank(XtX):
            check_rank_gram(XtX, self.columns, int(round(st.n_obs)))
        if st.n_obs - p <= 0:
            raise ModelSpecificationError(
                f"{st.n_obs:g} observations for {p} fixed effects: no residual degrees of freedom"
            )

    def _engine(self, st: _Stats) -> REMLEngine:
        if st.pattern is not None:
            return REMLEngine(
                None,
                None,
                n_obs=st.n_obs,
                method=self.method,
                log_weight_sum=st.log_w,
                pattern=st.pattern,
            )
        covmodel = PatternCovariance(self._grouped, st.classes)
        return REMLEngine(
            st.classes,
            covmodel,
            n_obs=st.n_obs,
            method=self.method,
            log_weight_sum=st.log_w,
            units=st.units,
        )

    # ---- fits ------------------------------------------------------------------------------
    def fit(
        self,
        *,
        df: DfName = "satterthwaite",
        kr_information: Literal["observed", "expected"] = "observed",
    ) -> MixedModelResult:  # noqa: F821 - imported lazily
        """Fit the model to the data it was prepared with: exactly :func:`peerstats.mmrm`."""
        with blas_threads(), steady_pages():
            return self._fit(df, kr_information)

    def _fit(self, df, kr_information):

        t0 = time.perf_counter()
        df, kr_information = check_df_options(df, kr_information, self.method)
        engine = self._engine(self._stats)
        fit = engine.fit(self._initial_theta(engine, self._stats))
        st = fit["state"]
        _raise_unless_converged(fit, self.covariance, self._size_text())
        sigmas = self._grouped.sigmas(st.theta)
        _check_singular(sigmas, self._levels, self.group, fit["tried"], st.gradient)
        self._theta_hat = st.theta
        self._H_hat, self._H_hat_inv = fit["hessian"], None
        self._full_refit = _refit_from(st, sigmas, fit["iterations"])
        return build_result(
            self,
            engine,
            fit,
            df=df,
            kr_information=kr_information,
            seconds=self._seconds_prepare + time.perf_counter() - t0,
        )

    def _theta_start(self) -> np.ndarray:
        """The full fit's theta (fitted without inference on first use)."""
        if self._theta_hat is None:
            engine = self._engine(self._stats)
            fit = engine.fit(self._initial_theta(engine, self._stats))
            _raise_unless_converged(fit, self.covariance, self._size_text())
            st = fit["state"]
            sigmas = self._grouped.sigmas(st.theta)
            _check_singular(sigmas, self._levels, self.group, fit["tried"], st.gradient)
            self._theta_hat = st.theta
            self._H_hat, self._H_hat_inv = fit["hessian"], None
            self._full_refit = _refit_from(st, sigmas, fit["iterations"])
        return self._theta_hat

    def refit(
        self,
        y: np.ndarray | pd.Series | None = None,
        *,
        subject_weights: np.ndarray | Sequence[float] | None = None,
        drop: int | np.ndarray | Sequence[int] | Sequence[bool] | None = None,
        theta0: np.ndarray | None = None,
    ) -> Refit:
        """Refit on a new outcome, frequency weights per subject and/or without some subjects.

        Parameters
        ----------
        y : array (n_rows,), optional
            New outcome aligned with the rows of ``data`` (NaN = missing; the missingness
            patterns are recomputed). Default: the original outcome.
        subject_weights : array (n_subjects,), optional
            Non-negative frequency weights over ``subjects`` (e.g. bootstrap counts): a weight
            of 2 counts the subject twice, 0 leaves it out.
        drop : int, int array or boolean mask over ``subjects``, optional
            Subjects to leave out (e.g. the jackknife).
        theta0 : array, optional
            Starting covariance parameters (default: the full fit's).

        Returns
        -------
        Refit

        Raises
        ------
        ModelSpecificationError
            Bad ``y`` / weights / ``drop``, or a refit data set mmrm() would refuse (a visit
            without data, a rank-deficient design, fewer than two subjects...).
        ConvergenceError
            The optimisation did not converge or the covariance is singular.
        """
        fw = self._frequency_weights(subject_weights, drop)
        if y is None and fw is None:
            st = self._stats
        else:
            if y is None:
                y_new, rows = self.y_all, self._observed
            else:
                y_new, rows = self._check_y(y)
            if fw is not None:
                rows = rows & (fw[np.clip(self.subject_codes, 0, None)] > 0)
                rows &= self.subject_codes >= 0
            st = self._statistics(rows, y_new, fw)
            self._check_statistics(st)
        hessian = None
        if theta0 is None:
            theta0 = self._theta_start()
            hessian = self._H_hat
        else:
            theta0 = np.asarray(theta0, dtype=float)
            if theta0.shape != (self._grouped.n_params,) or not np.all(np.isfinite(theta0)):
                raise ModelSpecificationError(
                    f"theta0 must be {self._grouped.n_params} finite numbers (the covariance "
                    "parameters of a previous fit or refit)"
                )
        with blas_threads():
            return self._solve(st, theta0, self._H_hat_inverse() if hessian is not None else None)

    def _H_hat_inverse(self) -> np.ndarray | None:
        """Inverse of the full fit's observed Hessian (None unless positive definite)."""
        if getattr(self, "_H_hat_inv", None) is None and self._H_hat is not None:
            H = self._H_hat
            if np.all(np.isfinite(H)):
                w = np.linalg.eigvalsh(H)
                if w[0] > 1e-10 * max(abs(w[-1]), 1.0):
                    self._H_hat_inv = np.linalg.inv(H)
        return getattr(self, "_H_hat_inv", None)

    def _solve(self, st: _Stats, theta0: np.ndarray, hessian_inverse=None) -> Refit:
        engine = self._engine(st)
        fit = engine.refine(theta0, hessian_inverse=hessian_inverse)
        if not fit["converged"]:
            fit = engine.fit(fit["state"].theta if fit["state"] is not None else theta0)
        _raise_unless_converged(fit, self.covariance, self._size_text())
        s = fit["state"]
        sigmas = self._grouped.sigmas(s.theta)
        _check_singular(sigmas, self._levels, self.group, fit["tried"], s.gradient)
        return _refit_from(s, sigmas, fit["iterations"])

    def _frequency_weights(self, subject_weights, drop) -> np.ndarray | None:
        n = len(self.subjects)
        fw = None
        if subject_weights is not None:
            fw = np.asarray(subject_weights, dtype=float).copy()
            if fw.shape != (n,):
                raise ModelSpecificationError(
                    f"subject_weights must have one value per subject ({n}, the order of "
                    f"prep.subjects), not shape {fw.shape}"
                )
            if not np.all(np.isfinite(fw)) or np.any(fw < 0):
                raise ModelSpecificationError("subject_weights must be finite and non-negative")
        if drop is not None:
            d = np.asarray(drop)
            if d.dtype == bool:
                if d.shape != (n,):
                    raise ModelSpecificationError(
                        f"a boolean drop mask needs one value per subject ({n}), not shape "
                        f"{d.shape}"
                    )
                out = d
            else:
                if d.size and not np.issubdtype(d.dtype, np.integer):
                    raise ModelSpecificationError(
                        "drop must be an int index, int array or boolean mask over prep.subjects"
                    )
                d = d.astype(np.int64).reshape(-1)
                if d.size and (d.min() < -n or d.max() >= n):
                    raise ModelSpecificationError(
                        f"drop index out of range: there are {n} subjects (prep.subjects)"
                    )
                out = np.zeros(n, dtype=bool)
                out[d] = True
            fw = np.ones(n) if fw is None else fw
            fw[out] = 0.0
        return fw

    def _check_y(self, y) -> tuple[np.ndarray, np.ndarray]:
        y = (
            np.asarray(y, dtype=float).reshape(-1)
            if not isinstance(y, pd.Series)
            else (y.to_numpy(dtype=float, na_value=np.nan))
        )
        if y.shape != (self.n_rows,):
            raise ModelSpecificationError(
                f"y must have one value per row of data ({self.n_rows}), not shape {y.shape}"
            )
        if np.any(np.isinf(y)):
            raise ModelSpecificationError("y has infinite values")
        rows = ~np.isnan(y)
        bad = rows & ~self._valid
        if bad.any():
            raise ModelSpecificationError(
                f"{int(bad.sum())} row(s) with an outcome in y have a missing subject, visit, "
                f"covariate, group or weight (first row positions: "
                f"{np.flatnonzero(bad)[:10].tolist()})"
            )
        if not np.array_equal(rows, self._observed):
            T = len(self.visits)
            rep = _repeated(self.subject_codes[rows] * T + self.visit_codes[rows])
            if rep.any():
                raise ModelSpecificationError(
                    f"{int(rep.sum())} row(s) with an outcome in y repeat a subject x visit "
                    "combination; each subject can have one observed row per visit"
                )
        return y, rows

    # ---- jackknife ---------------------------------------------------------------------------
    def jackknife(self) -> list[Refit]:
        """Leave-one-subject-out refits, one per subject of ``subjects`` (in that order).

        Each refit subtracts that subject's cross products from the pooled statistics (and its
        unit from its pattern's count) and re-optimises from the full fit's theta. A subject
        without an observed outcome leaves the fit unchanged (its entry is the full fit).

        Raises
        ------
        ModelSpecificationError
            Leaving a subject out gives a data set mmrm() would refuse (e.g. a visit observed
            only in that subject).
        ConvergenceError
            A refit does not converge.
        """
        with blas_threads():
            return self._jackknife()

    def _jackknife(self) -> list[Refit]:
        theta_hat = self._theta_start()
        Hinv = self._H_hat_inverse()
        st0 = self._stats
        pl0 = PatternLikelihood(st0.classes, self._grouped, self.method)
        N0, XtX0 = self._counts_and_gram(st0.classes)
        keys = [key for sc in st0.classes for key in sc.keys]
        where = {key: b for b, key in enumerate(keys)}
        obs = np.flatnonzero(self._observed)
        scode = self.subject_codes[obs]
        order = np.lexsort((self.visit_codes[obs], scode))
        rows = obs[order]
        starts = np.searchsorted(scode[order], np.arange(len(self.subjects) + 1))
        out: list[Refit] = []
        for i in range(len(self.subjects)):
            r = rows[starts[i] : starts[i + 1]]
            if r.size == 0:
                out.append(self._full_refit)
                continue
            st, N, XtX = self._without_subject(r, where, st0, pl0, N0, XtX0)
            self._check_statistics(st, N, XtX)
            out.append(self._solve(st, theta_hat, Hinv))
        return out

    def _without_subject(self, r, where, st0, pl0, N0, XtX0):
        """The pooled statistics, pair counts and X'X without the subject whose rows are ``r``
        (its cross products subtracted from its pattern's, its unit from the count)."""
        p = len(self.columns)
        vis = tuple(int(v) for v in self.visit_codes[r])
        g = int(self.group_codes[r[0]])
        b = where[(g, vis)]
        m = len(vis)
        z = np.empty((m, p + 1))
        z[:, :p] = self._X_rows(r)
        z[:, p] = self.y_all[r]
        if self._row_weights is not None:
            z *= np.sqrt(self._row_weights[r])[:, None]
        zf = z.reshape(-1)
        Gi = np.outer(zf, zf).reshape(m, p + 1, m, p + 1).transpose(0, 2, 1, 3)
        sl = slice(pl0.bstart[b], pl0.bstart[b] + m * m)
        counts = pl0.counts.copy()
        counts[b] -= 1.0
        SXX, SXy, Syy = pl0.SXX.copy(), pl0.SXy.copy(), pl0.Syy.copy()
        if counts[b] <= 0:  # the subject was alone in its pattern
            counts[b] = 0.0
            SXX[sl] = SXy[sl] = Syy[sl] = 0.0
        else:
            SXX[sl] -= Gi[:, :, :p, :p].reshape(m * m, p * p)
            SXy[sl] -= Gi[:, :, :p, p].reshape(m * m, p)
            Syy[sl] -= Gi[:, :, p, p].reshape(m * m)
        N = N0.copy()
        N[g][np.ix_(vis, vis)] -= 1.0
        jj = np.arange(m)
        log_w = st0.log_w
        if self._row_weights is not None:
            log_w -= float(np.log(self._row_weights[r]).sum())
        st = _Stats(
            classes=None,
            n_obs=st0.n_obs - m,
            log_w=log_w,
            n_units=st0.n_units - 1,
            pattern=pl0.with_statistics(counts, SXX, SXy, Syy),
        )
        return st, N, XtX0 - Gi[jj, jj, :p, :p].sum(axis=0)

    # ---- designs for new data ----------------------------------------------------------------
    def design_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """The design matrix of ``newdata`` with the fit's columns and factor coding.

        ``newdata`` needs the formula's columns; factor values must be levels of the fit (e.g.
        the arm set to the reference arm, for reference-based imputation).
        """
        if not isinstance(newdata, pd.DataFrame):
            raise ModelSpecificationError(
                f"newdata must be a pandas DataFrame, not {type(newdata).__name__}"
            )
        design = self.design
        missing = [v for v in design.variables if v not in newdata.columns]
        if missing:
            raise ModelSpecificationError(
                f"newdata lacks column(s) {missing} of the formula {self.formula!r}"
            )
        conv = {}
        for v, values in design.factor_values.items():
            col = newdata[v]
            cat, known = _as_levels(col, values)
            unknown = col.notna().to_numpy() & ~known
            if unknown.any():
                bad = sorted({str(x) for x in col[unknown]})[:10]
                raise ModelSpecificationError(
                    f"{v!r} has value(s) {bad} that are not levels of the fit; levels are "
                    f"{[str(x) for x in values]}"
                )
            conv[v] = pd.Series(cat, index=newdata.index)
        nd = newdata[design.variables].assign(**conv) if conv else newdata[design.variables]
        X = design.matrix(nd)
        if X.shape != (len(newdata), len(self.columns)):  # pragma: no cover - formulaic contract
            raise ModelSpecificationError("newdata gives a design of the wrong shape")
        return X

    def __repr__(self) -> str:
        return (
            f"PreparedMMRM({self.formula!r}, covariance={self.covariance!r}, "
            f"{len(self.subjects)} subjects, {len(self.visits)} visits, "
            f"{int(self._observed.sum())} of {self.n_rows} rows observed)"
        )


def _refit_from(st, sigmas, iterations: int) -> Refit:
    return Refit(
        beta=st.beta,
        vcov=st.Minv,
        theta=st.theta,
        sigmas=list(sigmas),
        neg2loglik=float(st.objective),
        converged=True,
        iterations=int(iterations),
    )
