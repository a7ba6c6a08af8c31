"""Multilevel multiple imputation for partially nested (group-delivered) trials, under MAR.

In a trial where the intervention is delivered in groups (PEER: courses of up to 10
participants) and the control arm is not, outcomes of participants of the same delivery group
are correlated. An imputation model without the group effect imputes the missing outcomes of
the intervention arm as if they were independent, which understates the between-group spread
of the completed data. :func:`impute_multilevel` draws the missing outcomes from a
multivariate (across visits) linear model with a delivery-group random effect in the
group-delivered arm(s) only, by Gibbs sampling (data augmentation), as the joint-model
imputation of R ``jomo`` (Quartagno & Carpenter) does with a random-effect design that is 1 in
the delivered arm and 0 elsewhere.

Model, for participant i (group g(i), arm a(i)) and the T post-baseline visits::

    y_i = B' x_i + d_i u_g(i) + e_i,   u_g ~ N_T(0, Omega),   e_i ~ N_T(0, Sigma_a(i))

with x_i the participant-level covariates of the formula (each with its own coefficient at
every visit: B is p x T), d_i = 1 in a group-delivered arm and 0 otherwise, Omega the
unstructured covariance of the group effects across visits and Sigma the unstructured residual
covariance (one per arm with ``residual_by="arm"``, as the recommended partially nested model;
one common matrix with ``residual_by=None``, as jomo). Priors as jomo's defaults: flat on B;
Omega ~ inverse Wishart with T degrees of freedom and identity scale; and jomo's full
conditional for the residual covariance, inverse Wishart(n - 1, I + E'E) (n the participants
sharing the matrix, E their residuals).

One Gibbs iteration draws, in jomo's order: B | u, Sigma, Y (normal, GLS form); each u_g | B,
Sigma, Omega, Y (normal); Omega | u (inverse Wishart(G + T, I + sum u_g u_g')); Sigma | B, u, Y;
then the missing outcomes | observed, B, u, Sigma (conditional normal per pattern). After
``burn`` iterations, every ``thin``-th completed dataset is one imputation.

In rbmi's four steps (see :mod:`peerstats.missing.impute`): :func:`draws_multilevel` is this
model's own draws step (the sampler imputes as it samples, as jomo's data augmentation does, so
its :class:`~peerstats.missing.impute.Draws` carries the imputed values); the impute
(:func:`~peerstats.missing.impute.impute_from_draws`), analyse and pool steps are those of
:func:`peerstats.impute`. :func:`impute_multilevel` is the composition.
Checked against R jomo on a synthetic partially nested trial in tests/reference/r_jomo/.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Required, TextIO, TypedDict, Unpack

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.missing import _lapack as _la
from peerstats.missing._inputs import _subject_visit_index

__all__ = ["impute_multilevel", "draws_multilevel", "BURN", "THIN"]

BURN = 300
THIN = 10


@lru_cache(maxsize=16)
def _bartlett_index(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions of the strict lower triangle and the diagonal of a T x T matrix, and
    0..T-1 (built once per T: the sampler draws thousands of Bartlett factors)."""
    il = np.tril_indices(T, -1)
    return il[0] * T + il[1], np.arange(T) * (T + 1), np.arange(T)


def _inv_wishart(nu: float, S: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of IW(nu, S) (mean S / (nu - T - 1)): Sigma = (L A A' L')^-1 with W = L A A' L'
    ~ Wishart(nu, S^-1) by the Bartlett decomposition (L the Cholesky factor of S^-1)."""
    T = S.shape[0]
    low, diag, ar = _bartlett_index(T)
    L = _la.cholesky(_la.inv(S))
    a = np.zeros(T * T)
    a[low] = rng.standard_normal(low.size)
    a[diag] = np.sqrt(rng.chisquare(nu - ar))
    A = a.reshape(T, T)
    LA = L @ A
    W = LA @ LA.T
    out = _la.inv(W)
    return (out + out.T) / 2


def _inv_wishart_many(nu: np.ndarray, S: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`_inv_wishart` for stacked scales S (R, T, T) with nu (R,): the same draws in the
    same order (matrix by matrix), the factorisations batched."""
    R, T, _ = S.shape
    low, diag, ar = _bartlett_index(T)
    L = _la.cholesky(_la.inv(S))
    W = np.empty((R, T, T))
    for r in range(R):
        a = np.zeros(T * T)
        a[low] = rng.standard_normal(low.size)
        a[diag] = np.sqrt(rng.chisquare(nu[r] - ar))
        LA = L[r] @ a.reshape(T, T)
        W[r] = LA @ LA.T
    out = _la.inv(W)
    return (out + out.transpose(0, 2, 1)) / 2


def _levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().astype(str))
        return [c for c in s.cat.categories if str(c) in present]
    return sorted(s.dropna().unique(), key=str)


def _check_options(
    formula, data, *, subject, visit, arm, group, n_imputations, burn, thin, residual_by
) -> tuple[str, str, list]:
    """(outcome, right-hand side, its variables), every option checked."""
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecificationError(
            f"formula {formula!r} must be 'outcome ~ terms', e.g. 'y ~ arm + y_baseline'"
        )
    for role, col in (("subject", subject), ("visit", visit), ("arm", arm), ("group", group)):
        if col not in data.columns:
            raise ModelSpecificationError(
                f"{role}={col!r} is not a column of data; columns are {list(data.columns)}"
            )
    if isinstance(n_imputations, bool) or not isinstance(n_imputations, int | np.integer):
        raise ModelSpecificationError(f"n_imputations={n_imputations!r} must be a whole number")
    if n_imputations < 2:
        raise ModelSpecificationError(
            f"n_imputations={n_imputations} is too few: Rubin's rules need at least 2"
        )
    for name, v, lo in (("burn", burn, 0), ("thin", thin, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ModelSpecificationError(f"{name}={v!r} must be a whole number >= {lo}")
    if residual_by not in (None, "arm"):
        raise ModelSpecificationError(
            f"residual_by={residual_by!r} is not valid; choose 'arm' or None (one common matrix)"
        )
    return _formula_parts(formula, data, visit=visit, arm=arm)


def _formula_parts(formula, data, *, visit, arm) -> tuple[str, str, list]:
    outcome = formula.split("~", 1)[0].strip()
    if outcome not in data.columns:
        raise ModelSpecificationError(f"outcome {outcome!r} is not a column of data")
    from peerstats.models._design import required_variables

    rhs = formula.split("~", 1)[1]
    rhs_vars = list(required_variables(rhs))
    if visit in rhs_vars:
        raise ModelSpecificationError(
            f"the formula {formula!r} names the visit {visit!r}: every term of the multilevel "
            "imputation model already has its own coefficient at every visit; leave visit out"
        )
    if arm not in rhs_vars:
        raise ModelSpecificationError(
            f"arm={arm!r} must appear in the imputation formula {formula!r}"
        )
    absent_cols = [c for c in rhs_vars if c not in data.columns]
    if absent_cols:
        raise ModelSpecificationError(
            f"column(s) {absent_cols} of the formula are not in data; columns are {list(data.columns)}"
        )
    return outcome, rhs, rhs_vars


@dataclass
class _Participants:
    """The participant x visit grid: outcomes (n, T) and one row of covariates per participant."""

    subjects: pd.Index
    visits: list
    arm_levels: list
    Y: np.ndarray
    subj_frame: pd.DataFrame
    arm_of: np.ndarray
    si: np.ndarray
    vi: np.ndarray


def _participants(data, *, subject, visit, arm, outcome) -> _Participants:
    visits = _levels(data[visit])
    arm_levels = [str(a) for a in _levels(data[arm])]
    if data[arm].isna().any():
        raise ModelSpecificationError(
            f"arm {arm!r} is missing on {int(data[arm].isna().sum())} row(s)"
        )
    subjects, si, vi = _subject_visit_index(data, subject, visit, visits, who="participant")
    n, T = len(subjects), len(visits)
    Y = np.full((n, T), np.nan)
    Y[si, vi] = pd.to_numeric(data[outcome], errors="coerce").to_numpy(dtype=float)
    first = data.groupby(si, sort=True).head(1)
    first = first.iloc[np.argsort(subjects.get_indexer(first[subject]))]
    subj_frame = first.reset_index(drop=True)
    if (data.groupby(si)[arm].nunique() > 1).any():
        raise ModelSpecificationError(f"arm {arm!r} must be constant within participant")
    arm_of = pd.Index(arm_levels).get_indexer(subj_frame[arm].astype(str).to_numpy())
    return _Participants(subjects, visits, arm_levels, Y, subj_frame, arm_of, si, vi)


def _delivery_groups(data, parts: _Participants, *, arm, group, delivered):
    """(delivered arms, in a delivered arm (n,), group code (n,; -1 none), number of groups)."""
    arm_levels, n = parts.arm_levels, len(parts.subjects)
    if delivered is None:
        has_group = data.loc[data[group].notna(), arm].astype(str).unique().tolist()
        delivered = [a for a in arm_levels if a in has_group]
    delivered = [str(a) for a in delivered]
    bad = [a for a in delivered if a not in arm_levels]
    if bad:
        raise ModelSpecificationError(f"delivered arm(s) {bad} are not arms; arms are {arm_levels}")
    if not delivered:
        raise ModelSpecificationError(
            f"no arm is group-delivered (no {group!r} recorded); use peerstats.impute for a "
            "model without delivery groups"
        )
    d_i = np.isin(parts.subj_frame[arm].astype(str).to_numpy(), delivered)
    grp = _first_group(data[group], parts.si, n)
    lone = d_i & pd.isna(grp)
    grp = np.where(lone, np.array(["_single:" + str(s) for s in parts.subjects], dtype=object), grp)
    g_labels, g_codes = np.unique(grp[d_i].astype(str), return_inverse=True)
    g_of = np.full(n, -1, dtype=np.int64)
    g_of[d_i] = g_codes
    return delivered, d_i, g_of, len(g_labels)


def _first_group(col: pd.Series, si: np.ndarray, n: int) -> np.ndarray:
    """Each participant's first recorded delivery group in row order (None when none): (n,)
    object array; vectorised (one pass, no per-participant Python call)."""
    rows = np.flatnonzero(col.notna().to_numpy())
    who, first = np.unique(si[rows], return_index=True)
    grp = np.full(n, None, dtype=object)
    grp[who] = col.iloc[rows[first]].to_numpy(dtype=object)
    return grp


def _covariates(parts: _Participants, *, formula, rhs, rhs_vars, subject, arm) -> np.ndarray:
    """The participant-level design (n, p), full rank, and every visit observed somewhere."""
    import formulaic

    sf = parts.subj_frame
    na = sf[[c for c in rhs_vars]].isna().any(axis=1)
    if na.any():
        raise ModelSpecificationError(
            f"the imputation model needs its covariates for every participant; "
            f"{int(na.sum())} participant(s) miss some of {rhs_vars} (first: "
            f"{sf.loc[na, subject].astype(str).tolist()[:5]})"
        )
    xf = sf.copy()
    xf[arm] = pd.Categorical(xf[arm].astype(str), categories=parts.arm_levels)
    X = np.asarray(formulaic.model_matrix(rhs, xf, na_action="raise"), dtype=float)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ModelSpecificationError(
            f"the imputation design of {formula!r} is rank deficient (collinear terms)"
        )
    return X


def _missing_cells(Y, visits, outcome) -> np.ndarray:
    """(n, T) missing outcomes; every visit needs an observation (participants with no
    post-baseline value are imputed from their covariates)."""
    miss = np.isnan(Y)
    if miss.all(axis=0).any():
        empty = [str(visits[j]) for j in range(Y.shape[1]) if miss[:, j].all()]
        raise ModelSpecificationError(f"visit(s) {empty} have no observed {outcome!r}")
    return miss


class _Sampler:
    """The Gibbs sampler's state and its fixed structures (built once); ``step`` is one
    iteration in jomo's order (module docstring)."""

    def __init__(self, X, Y, res_groups, d_i, g_of, G):
        n, T = Y.shape
        p = X.shape[1]
        R = int(res_groups.max()) + 1
        self.X, self.p, self.T, self.R, self.G = X, p, T, R, G
        self.miss = np.isnan(Y)
        # starting values
        self.Yc = np.where(self.miss, np.nanmean(Y, axis=0)[None, :], Y)
        B = np.linalg.lstsq(X, self.Yc, rcond=None)[0]
        E = self.Yc - X @ B
        self.Sig = np.stack(
            [np.cov(E[res_groups == r].T).reshape(T, T) + 1e-6 * np.eye(T) for r in range(R)]
        )
        self.Om = 0.1 * np.diag(np.diag(self.Sig.mean(axis=0)))
        self.B = B
        self.I_T = np.eye(T)
        self.n_r = np.bincount(res_groups, minlength=R)
        self.deliv_idx = np.flatnonzero(d_i)
        self.g_of = g_of
        self.XtX = [X[res_groups == r].T @ X[res_groups == r] for r in range(R)]
        self.in_r = [np.flatnonzero(res_groups == r) for r in range(R)]
        self.X_r = [X[ix] for ix in self.in_r]  # the design rows of each group, copied once
        # A[r, g, i] = 1 when participant i is in group g and residual group r
        A = np.zeros((R, G, n))
        A[res_groups[self.deliv_idx], g_of[self.deliv_idx], self.deliv_idx] = 1.0
        self.A, self.counts = A, A.sum(axis=2).T  # (G, R)
        self.blocks = self._pattern_blocks(res_groups)
        self.Uext = np.zeros((n, T))

    def _pattern_blocks(self, res_groups) -> list:
        """(missing visits, observed visits, residual groups, rows of each) per pattern with
        something missing; one pattern's residual groups share their solves and Cholesky
        factors (one batched call each)."""
        patterns, pat_of = np.unique(self.miss, axis=0, return_inverse=True)
        pat_of = pat_of.reshape(-1)
        blocks = []
        for k, pat in enumerate(patterns):
            if not pat.any():
                continue
            rows = np.flatnonzero(pat_of == k)
            rs = np.unique(res_groups[rows])
            members = [rows[res_groups[rows] == r][:, None] for r in rs]
            blocks.append((np.flatnonzero(pat), np.flatnonzero(~pat), rs.astype(np.intp), members))
        return blocks

    def _draw_B(self, rng) -> np.ndarray:
        """B | u, Sigma (flat prior): precision sum_r Sigma_r^-1 (x) X_r'X_r. Returns XB."""
        p, T = self.p, self.T
        Rm = self.Yc - self.Uext
        Sinv = _la.inv(self.Sig)
        P = np.zeros((p * T, p * T))
        b = np.zeros(p * T)
        for r in range(self.R):
            # np.kron(Sinv[r], XtX[r]) by broadcasting: the same products, less overhead
            P += (Sinv[r][:, None, :, None] * self.XtX[r][None, :, None, :]).reshape(p * T, p * T)
            b += (self.X_r[r].T @ Rm[self.in_r[r]] @ Sinv[r]).reshape(-1, order="F")
        Lp = _la.cholesky(P)
        mean = _la.solve(Lp.T, _la.solve(Lp, b))
        vecB = mean + _la.solve(Lp.T, rng.standard_normal(p * T))
        self.B = vecB.reshape(p, T, order="F")
        self._Sinv = Sinv
        return self.X @ self.B

    def _draw_u(self, XB, rng) -> None:
        """u_g | B, Sigma, Omega: precision Omega^-1 + sum_i Sigma_r(i)^-1; then Omega | u."""
        Sinv, G, T = self._Sinv, self.G, self.T
        E0 = self.Yc - XB  # residual before the group effect
        prec = _la.inv(self.Om)[None] + np.einsum("gr,rst->gst", self.counts, Sinv)
        lin = np.einsum("rgt,rts->gs", self.A @ E0, Sinv)
        Lg = _la.cholesky(prec)
        mu_g = _la.solve(prec, lin[..., None])[..., 0]
        z = rng.standard_normal((G, T))
        U = mu_g + _la.solve(Lg.transpose(0, 2, 1), z[..., None])[..., 0]
        # Omega | u ~ IW(G + T, I + sum u u')
        self.Om = _inv_wishart(G + T, self.I_T + U.T @ U, rng)
        self.Uext[self.deliv_idx] = U[self.g_of[self.deliv_idx]]

    def _impute(self, M, rng) -> None:
        """Missing y | observed, B, u, Sigma (conditional normal per pattern and residual
        group, drawn in that order)."""
        Yc = self.Yc
        for mi_, ob, rs, members in self.blocks:
            S = self.Sig[rs]  # (k, T, T): the pattern's residual groups
            S_mm = S[:, mi_[:, None], mi_]
            if len(ob):
                S_om = S[:, ob[:, None], mi_]
                K = _la.solve(S[:, ob[:, None], ob], S_om)  # (k, o, m)
                C = S_mm - S_om.transpose(0, 2, 1) @ K
            else:
                C = S_mm
            LcT = _la.cholesky((C + C.transpose(0, 2, 1)) / 2).transpose(0, 2, 1)
            for j, rr in enumerate(members):
                mu = M[rr, mi_]
                if len(ob):
                    mu = mu + (Yc[rr, ob] - M[rr, ob]) @ K[j]
                Yc[rr, mi_] = mu + rng.standard_normal(mu.shape) @ LcT[j]

    def step(self, rng) -> None:
        """One iteration: B, u and Omega, Sigma (jomo's full conditional), missing y."""
        XB = self._draw_B(rng)
        self._draw_u(XB, rng)
        # Sigma_r | B, u ~ IW(n_r - 1, I + E_r'E_r)  (jomo's full conditional)
        M = XB + self.Uext
        E = self.Yc - M
        scale = np.stack([self.I_T + E[ix].T @ E[ix] for ix in self.in_r])
        self.Sig = _inv_wishart_many(self.n_r - 1, scale, rng)
        self._impute(M, rng)


def _run_sampler(sampler: _Sampler, *, n_imputations, burn, thin, rng, stream) -> dict:
    """Burn in, then keep every ``thin``-th state: imputed values and parameter draws."""
    kept = {"values": [], "B": [], "Omega": [], "Sigma": []}
    with _la.lapack_block():  # LAPACK without np.linalg's per-call overhead: same numbers
        for it in range(1, burn + thin * n_imputations + 1):
            sampler.step(rng)
            if it > burn and (it - burn) % thin == 0:
                kept["values"].append(sampler.Yc[sampler.miss].copy())
                kept["B"].append(sampler.B.copy())
                kept["Omega"].append(sampler.Om.copy())
                kept["Sigma"].append(sampler.Sig.copy())
                if stream is not None:
                    stream.write(f"multilevel imputation {len(kept['B'])} of {n_imputations}\n")
                    stream.flush()
    return {k: np.stack(v) for k, v in kept.items()}


class MultilevelOptions(TypedDict, total=False):
    """The keyword arguments of :func:`impute_multilevel`, which :func:`draws_multilevel` takes."""

    subject: Required[str]
    visit: Required[str]
    arm: Required[str]
    group: Required[str]
    delivered: Sequence[str] | None
    n_imputations: int
    residual_by: str | None
    burn: int
    thin: int
    seed: int | np.random.SeedSequence | None
    progress: TextIO | bool | None


_DEFAULTS = {
    "delivered": None,
    "n_imputations": 20,
    "residual_by": "arm",
    "burn": BURN,
    "thin": THIN,
    "seed": None,
    "progress": None,
}


def draws_multilevel(formula: str, data: pd.DataFrame, **options: Unpack[MultilevelOptions]) -> Any:
    """The draws step of multilevel imputation: the Gibbs sampler (step 1 of 4, its own draws).

    Parameters
    ----------
    formula : str
        ``outcome ~ participant-level terms``, as :func:`impute_multilevel`.
    data : DataFrame
        Long data, one row per participant and visit.
    **options
        The keyword arguments of :func:`impute_multilevel` (``subject``, ``visit``, ``arm``,
        ``group`` required; ``delivered``, ``n_imputations``, ``residual_by``, ``burn``,
        ``thin``, ``seed``, ``progress``), with the same meaning and defaults:
        ``impute_multilevel(...)`` is ``impute_from_draws(draws_multilevel(...))``.

    Returns
    -------
    Draws
        The data, the kept draws of ``B``, ``Omega`` (group effects) and ``Sigma`` in
        ``parameters``, and the values the sampler imputed (``values``: data augmentation
        imputes as it samples, as jomo), which :func:`peerstats.missing.impute_from_draws`
        takes as they are.

    Raises
    ------
    ModelSpecificationError
        As :func:`impute_multilevel`.
    """
    from peerstats.missing.impute import Draws, _data_fields, _grid_frame, _options

    t0 = time.perf_counter()
    o = _options(options, _DEFAULTS, ("subject", "visit", "arm", "group"), "draws_multilevel")
    subject, visit, arm, group = o["subject"], o["visit"], o["arm"], o["group"]
    residual_by = o["residual_by"]
    cols = {"subject": subject, "visit": visit, "arm": arm}
    sampling = {k: o[k] for k in ("n_imputations", "burn", "thin")}
    outcome, rhs, rhs_vars = _check_options(
        formula, data, group=group, residual_by=residual_by, **cols, **sampling
    )
    parts = _participants(data, outcome=outcome, **cols)
    delivered, d_i, g_of, G = _delivery_groups(
        data, parts, arm=arm, group=group, delivered=o["delivered"]
    )
    X = _covariates(parts, formula=formula, rhs=rhs, rhs_vars=rhs_vars, subject=subject, arm=arm)
    Y, visits, n, T = parts.Y, parts.visits, len(parts.subjects), len(parts.visits)
    miss = _missing_cells(Y, visits, outcome)
    res_groups = parts.arm_of.copy() if residual_by == "arm" else np.zeros(n, dtype=np.int64)
    seed, progress = o["seed"], o["progress"]
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    stream = sys.stderr if progress is True else (progress or None)
    sampler = _Sampler(X, Y, res_groups, d_i, g_of, G)
    kept = _run_sampler(sampler, rng=rng, stream=stream, **sampling)
    frame = _grid_frame(data, parts.subjects, visits, parts.si, parts.vi, subject, visit, outcome)
    mar = {"y": Y, "target": miss, "missing": miss, "set_aside": np.zeros((n, T), dtype=bool)}
    mar.update(ice_visit=np.full(n, T), strategy=np.array(["MAR"] * n, dtype=object))
    info = {
        "source": "impute_multilevel",
        "model": "multivariate linear model with a delivery-group random effect in "
        f"{delivered} (Gibbs sampler, jomo priors)",
        "delivered": delivered,
        "n_groups": G,
        "residual_by": residual_by,
        "burn": o["burn"],
        "thin": o["thin"],
        "seconds": time.perf_counter() - t0,
    }
    return Draws(
        method="bayes",
        outcome=outcome,
        **cols,
        **_data_fields(parts.subjects, visits, parts.arm_levels, frame, parts.arm_of),
        **mar,
        delta=np.zeros((n, T)),
        parameters={k: kept[k] for k in ("B", "Omega", "Sigma")},
        seed=ss.entropy,
        values=kept["values"],
        info=info,
    )


def impute_multilevel(
    formula: str,
    data: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    group: str,
    delivered: Sequence[str] | None = None,
    n_imputations: int = 20,
    residual_by: str | None = "arm",
    burn: int = BURN,
    thin: int = THIN,
    seed: int | np.random.SeedSequence | None = None,
    progress: TextIO | bool | None = None,
) -> Any:
    """Multiple imputation under MAR with a delivery-group random effect (partially nested).

    Parameters
    ----------
    formula : str
        ``outcome ~ participant-level terms``, e.g. ``"qpr15 ~ arm + qpr15_baseline + site"``.
        Every term gets its own coefficient at every visit (do not write ``visit``). Must
        contain ``arm``.
    data : DataFrame
        Long data, one row per participant and visit (absent rows are added).
    subject, visit, arm : str
        Columns (visit order: the Categorical order, else sorted).
    group : str
        The delivery-group column (empty in arms that are not group-delivered).
    delivered : list of str, optional
        The group-delivered arm(s); default: the arms in which ``group`` is recorded.
        Participants of these arms without a group form groups of one.
    n_imputations : int
        Completed datasets (at least 2).
    residual_by : "arm" or None
        One residual covariance per arm (the partially nested model's arm-specific residual
        variance) or one common matrix (as jomo).
    burn, thin : int
        Gibbs iterations discarded at the start, and between two imputations.
    seed : int or SeedSequence, optional
    progress : stream or bool, optional
        Progress lines ("imputation k of M") on this stream (True: stderr).

    Returns
    -------
    Imputations
        As :func:`peerstats.impute` (method ``"bayes"``): ``datasets``, ``analyse()`` pooled by
        Rubin's rules with Barnard-Rubin df, ``with_delta()`` for tipping points. ``draws``
        holds the kept draws of ``Omega`` (group effects), ``Sigma`` and ``B``; ``info`` the
        sampler settings.

    Raises
    ------
    ModelSpecificationError
        Unknown columns or arms, ``visit`` in the formula, a covariate missing for a
        participant, fewer than 2 imputations, no delivery group, a visit with no observation.

    Notes
    -----
    ``impute_multilevel(...)`` is ``impute_from_draws(draws_multilevel(...))``: the sampler
    is this model's draws step; impute, analyse and pool are shared with
    :func:`peerstats.impute`. The sampler and its priors are described in the module docstring
    (``peerstats.missing.multilevel``). Validated against R ``jomo::jomo1rancon`` on a
    synthetic partially nested trial (``tests/reference/r_jomo/``): pooled effects and mean
    imputed values agree within Monte-Carlo error.
    """
    options = dict(locals())  # the arguments, as given: draws_multilevel takes them all
    from peerstats.missing.impute import impute_from_draws

    return impute_from_draws(
        draws_multilevel(options.pop("formula"), options.pop("data"), **options)
    )
