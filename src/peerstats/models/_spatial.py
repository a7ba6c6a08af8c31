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

The prepared-model side (block types per coordinate vector, refits, predictions) is
:class:`peerstats.models._spatial_prepared.SpatialPreparedMMRM`.

Validated against R ``nlme::gls`` (corExp, corGaus, corCAR1, 2-D corExp) and R mmrm
(Satterthwaite df), tests/reference/r_spatial/.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._covariance import GroupedCovariance

__all__ = [
    "SPATIAL",
    "SpatialStructure",
    "SpatialCovariance",
    "SpatialGroupedCovariance",
    "time_columns",
    "distances",
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


def distances(coords: np.ndarray) -> np.ndarray:
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
            self._blocks.append((g, distances(coords)))

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
        return self._block_second(theta, self.structure.d2sigma)

    def block_second_derivatives_sas(self, theta: np.ndarray) -> list[np.ndarray]:
        """As :meth:`block_second_derivatives` in SAS's parameters (rho, sigma^2) per group."""
        st = self.structure
        return self._block_second(theta, lambda th, D: st.d2sigma_sas(st.sas_parameters(th), D))

    def _block_second(self, theta: np.ndarray, d2sigma) -> list[np.ndarray]:
        """Per size class the (B, K, K, m, m) second derivatives, ``d2sigma(theta_g, D)`` per
        group's parameters ``theta_g``."""
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
                    ] = d2sigma(theta[s], D[sel])
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

    # per-level parameter blocks as in GroupedCovariance (the same structure and levels fields)
    n_params = GroupedCovariance.n_params
    slices = GroupedCovariance.slices

    def sigmas(self, theta: np.ndarray) -> list[np.ndarray]:
        D = distances(self.visit_coordinates[None])[0]
        return [self.structure.sigma(theta[s], D) for s in self.slices()]

    def sas_table(self, theta: np.ndarray) -> list[tuple[str, str | None, float]]:
        rows = []
        names = self.structure.sas_names()
        for lev, s in zip(self.levels, self.slices()):
            for n, v in zip(names, self.structure.sas_parameters(theta[s])):
                rows.append((n, lev if len(self.levels) > 1 else None, float(v)))
        return rows


def time_columns(data: pd.DataFrame, time, covariance: str) -> list[str]:
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
