"""Conditional moments of a subject's missing visits given its observed ones (multivariate normal).

For subject i with observed rows o and missing rows m (visits), marginal means mu and covariance
Sigma_i over the visits:

    E[y_m | y_o] = mu_m + Sigma_mo Sigma_oo^-1 (y_o - mu_o)
    Var[y_m | y_o] = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om

(a subject with no observed row: mu_m and Sigma_mm). Subjects are grouped by their pattern of
(observed, missing) visits and each group is solved as one batched array, so the cost is a few
array operations per pattern, not per subject. This is SAS PROC MIXED's ``outp=`` conditional
mean and R mmrm's ``predict(conditional = TRUE)``; conditional-mean imputation and joint draws
(multiple imputation) use the same moments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from peerstats.exceptions import ModelSpecificationError

__all__ = ["conditional_moments", "conditional_design", "ConditionalBlocks", "PatternBlock"]


@dataclass(frozen=True)
class PatternBlock:
    """Subjects sharing one pattern: their missing rows and conditional covariances.

    ``subjects`` (n,), ``rows`` (n, k) row positions of the missing rows (in visit order),
    ``cov`` (n, k, k) the conditional covariance of those rows given the observed ones.
    """

    subjects: np.ndarray
    rows: np.ndarray
    cov: np.ndarray


class ConditionalBlocks(Mapping):
    """Per subject code: ``(rows, cov)`` of its missing rows (a Mapping over subject codes).

    ``.blocks`` holds the same content grouped by pattern (:class:`PatternBlock`), the fast
    form for joint draws: ``mean[b.rows] + (cholesky(b.cov) @ z[..., None])[..., 0]``.
    """

    def __init__(self, blocks: list[PatternBlock]) -> None:
        self.blocks = blocks
        self._where = {}
        for j, b in enumerate(blocks):
            for i, s in enumerate(b.subjects):
                self._where[int(s)] = (j, i)

    def __getitem__(self, subject: int) -> tuple[np.ndarray, np.ndarray]:
        j, i = self._where[int(subject)]
        b = self.blocks[j]
        return b.rows[i], b.cov[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def _patterns(y, sc, vc, n_subj: int, T: int):
    """Subjects with a missing row, grouped by (observed visits, missing visits).

    Yields (subjects, observed visits, missing visits) per pattern, plus the (n_subj, T) row
    position table as the first item.
    """
    valid = (sc >= 0) & (vc >= 0)
    rows = np.flatnonzero(valid)
    miss = np.isnan(y[rows])
    bit = np.left_shift(np.int64(1), vc[rows])
    omask = np.zeros(n_subj, dtype=np.int64)
    mmask = np.zeros(n_subj, dtype=np.int64)
    np.bitwise_or.at(omask, sc[rows[~miss]], bit[~miss])
    np.bitwise_or.at(mmask, sc[rows[miss]], bit[miss])
    pos = np.full((n_subj, T), -1, dtype=np.int64)
    key = sc[rows] * T + vc[rows]
    if len(np.unique(key)) < len(key):
        raise ModelSpecificationError("a subject has two rows at the same visit")
    pos[sc[rows], vc[rows]] = rows
    has_missing = np.flatnonzero(mmask)
    groups = []
    if has_missing.size:
        ukeys, inv = np.unique(
            np.stack([omask[has_missing], mmask[has_missing]], axis=1), axis=0, return_inverse=True
        )
        inv = inv.reshape(-1)
        for u in range(len(ukeys)):
            subs = has_missing[inv == u]
            om, mm = int(ukeys[u, 0]), int(ukeys[u, 1])
            ov = np.array([t for t in range(T) if om >> t & 1], dtype=np.int64)
            mv = np.array([t for t in range(T) if mm >> t & 1], dtype=np.int64)
            groups.append((subs, ov, mv))
    return pos, groups


def _regression(S, ov, mv):
    """Kt = Soo^-1 Som (n, o, k) and the conditional covariance (n, k, k) of a pattern."""
    Smm = S[:, mv[:, None], mv[None, :]]
    if not ov.size:
        return None, np.array(Smm, copy=True)
    Soo = S[:, ov[:, None], ov[None, :]]
    Smo = S[:, mv[:, None], ov[None, :]]
    Kt = np.linalg.solve(Soo, np.swapaxes(Smo, 1, 2))
    cov = Smm - Smo @ Kt
    return Kt, (cov + np.swapaxes(cov, 1, 2)) / 2


def _sigma_array(sigma_of_subject, subs, n_subj):
    if callable(sigma_of_subject):
        return np.stack([np.asarray(sigma_of_subject(int(s)), dtype=float) for s in subs])
    sig = np.asarray(sigma_of_subject, dtype=float)
    if sig.ndim == 2:
        return np.broadcast_to(sig, (len(subs), *sig.shape))
    return sig[subs]


def conditional_design(X, y, subject_codes, visit_codes, sigma_of_subject):
    """For each row with missing y: the adjusted design Z and offset c with
    E[y_m | y_o] = Z beta + c, i.e. Z = X_m - Sigma_mo Sigma_oo^-1 X_o and
    c = Sigma_mo Sigma_oo^-1 y_o (R mmrm's predict; Var of the prediction from beta_hat is
    diag(Z cov(beta) Z')). Returns (rows, Z, c); rows without codes are left out."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    sc = np.asarray(subject_codes, dtype=np.int64).reshape(-1)
    vc = np.asarray(visit_codes, dtype=np.int64).reshape(-1)
    valid = (sc >= 0) & (vc >= 0)
    n_subj = int(sc[valid].max()) + 1 if valid.any() else 0
    sig0 = None if callable(sigma_of_subject) else np.asarray(sigma_of_subject)
    T = int(vc[valid].max()) + 1 if valid.any() else 0
    if sig0 is not None:
        T = max(T, sig0.shape[-1])
    pos, groups = _patterns(y, sc, vc, n_subj, T)
    rows_out, Z_out, c_out = [], [], []
    for subs, ov, mv in groups:
        S = _sigma_array(sigma_of_subject, subs, n_subj)
        Kt, _ = _regression(S, ov, mv)
        r_m = pos[subs][:, mv]
        Z = X[r_m]  # (n, k, p)
        c = np.zeros(r_m.shape)
        if Kt is not None:
            r_o = pos[subs][:, ov]
            K = np.swapaxes(Kt, 1, 2)  # (n, k, o)
            Z = Z - K @ X[r_o]
            c = (K @ y[r_o][:, :, None])[:, :, 0]
        rows_out.append(r_m.reshape(-1))
        Z_out.append(Z.reshape(-1, X.shape[1]))
        c_out.append(c.reshape(-1))
    if not rows_out:
        return np.zeros(0, dtype=np.int64), np.zeros((0, X.shape[1])), np.zeros(0)
    return np.concatenate(rows_out), np.concatenate(Z_out), np.concatenate(c_out)


def conditional_moments(
    mu: np.ndarray,
    y: np.ndarray,
    subject_codes: np.ndarray,
    visit_codes: np.ndarray,
    sigma_of_subject: Callable[[int], np.ndarray] | np.ndarray,
) -> tuple[np.ndarray, ConditionalBlocks]:
    """Conditional means and covariances of the missing rows given each subject's observed rows.

    Parameters
    ----------
    mu : array (n_rows,)
        Marginal mean of every row (e.g. ``X_all @ beta``).
    y : array (n_rows,)
        Outcome, NaN where missing (the rows to predict).
    subject_codes, visit_codes : int arrays (n_rows,)
        Subject code (0..n_subjects-1) and visit position (0..T-1) of each row; rows with a
        negative code are left out (their mean is NaN).
    sigma_of_subject : callable or array
        ``sigma_of_subject(code) -> (T, T)``, an array (n_subjects, T, T), or one (T, T) matrix
        for every subject: each subject's covariance over all visits.

    Returns
    -------
    mean : array (n_rows,)
        ``y`` where observed, the conditional mean where missing (NaN for rows without codes).
    cov_blocks : ConditionalBlocks
        Per subject with a missing row: the row positions and conditional covariance (k, k).

    Notes
    -----
    Validated against R mmrm ``predict(conditional = TRUE)`` on the FEV data
    (tests/reference/r_predict/).
    """
    mu = np.asarray(mu, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    sc = np.asarray(subject_codes, dtype=np.int64).reshape(-1)
    vc = np.asarray(visit_codes, dtype=np.int64).reshape(-1)
    n = len(y)
    if not (len(mu) == len(sc) == len(vc) == n):
        raise ModelSpecificationError("mu, y, subject_codes and visit_codes must have equal length")
    valid = (sc >= 0) & (vc >= 0)
    mean = np.where(np.isnan(y), np.nan, y)
    mean[~valid] = np.nan
    n_subj = int(sc[valid].max()) + 1 if valid.any() else 0
    T = int(vc[valid].max()) + 1 if valid.any() else 0
    if callable(sigma_of_subject):
        sig = None
    else:
        sig = np.asarray(sigma_of_subject, dtype=float)
        if sig.ndim == 2:
            T = max(T, sig.shape[0])
        elif sig.ndim == 3:
            if sig.shape[0] < n_subj:
                raise ModelSpecificationError(
                    f"sigma_of_subject has {sig.shape[0]} subjects; codes go up to {n_subj - 1}"
                )
            T = max(T, sig.shape[1])
        else:
            raise ModelSpecificationError("sigma_of_subject must be (T, T) or (n_subjects, T, T)")
    if T > 62:
        raise ModelSpecificationError("at most 62 visits")
    pos, groups = _patterns(y, sc, vc, n_subj, T)
    blocks: list[PatternBlock] = []
    for subs, ov, mv in groups:
        S = _sigma_array(sigma_of_subject, subs, n_subj)
        Kt, cov = _regression(S, ov, mv)
        r_m = pos[subs][:, mv]  # (n, k)
        cm = mu[r_m]
        if Kt is not None:
            r_o = pos[subs][:, ov]
            cm = cm + np.einsum("nok,no->nk", Kt, y[r_o] - mu[r_o])
        mean[r_m] = cm
        blocks.append(PatternBlock(subjects=subs, rows=r_m, cov=cov))
    return mean, ConditionalBlocks(blocks)


# ---- predictions, fitted values and residuals of an mmrm() fit -------------------------------
def _layout(prep, data):
    """X, y, subject / visit / group codes of ``data`` under a prepared model's coding."""
    import pandas as pd

    from peerstats.models._design import _as_levels

    if data is None:
        return prep.X_all, prep.y_all, prep.subject_codes, prep.visit_codes, prep.group_codes
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    need = [prep.subject, prep.visit] + ([prep.group] if prep.group else [])
    missing = [c for c in need if c not in data.columns]
    if missing:
        raise ModelSpecificationError(
            f"data lacks column(s) {missing}; columns are {list(data.columns)}"
        )
    design = prep.design
    ok = data[[*design.variables, *need]].notna().all(axis=1).to_numpy()
    X = np.full((len(data), len(prep.columns)), np.nan)
    if ok.any():
        X[ok] = prep.design_matrix(data.iloc[np.flatnonzero(ok)])
    y = (
        pd.to_numeric(data[design.outcome], errors="coerce").to_numpy(dtype=float)
        if design.outcome in data.columns
        else np.full(len(data), np.nan)
    )
    sc = pd.factorize(data[prep.subject], sort=False)[0].astype(np.int64)
    cat, known = _as_levels(data[prep.visit], prep._visit_values)
    bad = data[prep.visit].notna().to_numpy() & ~known
    if bad.any():
        raise ModelSpecificationError(
            f"{prep.visit!r} has value(s) {sorted(map(str, data[prep.visit][bad].unique()))[:10]}"
            f" that are not visits of the fit; visits are {list(prep.visits)}"
        )
    vc = np.asarray(cat.codes, dtype=np.int64)
    if prep.group is not None:
        gcat, gknown = _as_levels(data[prep.group], list(prep._group_values))
        gbad = data[prep.group].notna().to_numpy() & ~gknown
        if gbad.any():
            raise ModelSpecificationError(
                f"{prep.group!r} has level(s) not in the fit; levels are {list(prep._levels)}"
            )
        gc = np.asarray(gcat.codes, dtype=np.int64)
    else:
        gc = np.zeros(len(data), dtype=np.int64)
    invalid = ~ok | (vc < 0) | (gc < 0)
    sc = np.where(invalid, -1, sc)
    vc = np.where(invalid, -1, vc)
    return X, y, sc, vc, gc


def _subject_sigmas(sigmas, sc, gc):
    """(n_subjects, T, T): each subject's covariance (its group's), checking one group each."""
    valid = sc >= 0
    n_subj = int(sc[valid].max()) + 1 if valid.any() else 0
    sg = np.full(n_subj, -1, dtype=np.int64)
    sg[sc[valid]] = gc[valid]
    check = np.zeros(n_subj, dtype=np.int64)
    np.maximum.at(check, sc[valid], gc[valid])
    if np.any(check != sg):
        raise ModelSpecificationError("the group column must be constant within subject")
    S = np.stack(sigmas)
    return S[np.clip(sg, 0, None)]


def predict_frame(result, data=None, *, conditional: bool = True, interval: str = "confidence"):
    """The DataFrame of :meth:`MixedModelResult.predict` (see there)."""
    import pandas as pd

    prep = result._prepared
    X, y, sc, vc, gc = _layout(prep, data)
    beta = np.asarray(result._inference.beta)
    C = np.asarray(result._inference.vcov)
    index = prep.index if data is None else data.index
    pred = X @ beta
    se = np.sqrt(np.einsum("np,pq,nq->n", X, C, X))
    y_cond = y if conditional else np.full_like(y, np.nan)
    if conditional or interval == "prediction":
        Ssub = None
        if (sc >= 0).any() and hasattr(prep, "sigmas_at"):
            # spatial structures (issue 10.5): each subject's covariance at its own times
            Ssub, sc = prep.sigmas_at(result._theta, data, y_cond, sc, vc, gc)
        elif (sc >= 0).any():
            Ssub = _subject_sigmas(result._sigmas, sc, gc)
    if conditional:
        obs = ~np.isnan(y) & (sc >= 0)
        pred = np.where(obs, y, pred)
        se = np.where(obs, 0.0, se)
        if (sc >= 0).any():
            rows, Z, c = conditional_design(X, y, sc, vc, Ssub)
            pred[rows] = Z @ beta + c
            se[rows] = np.sqrt(np.einsum("np,pq,nq->n", Z, C, Z))
        pred[sc < 0] = np.nan
        se[sc < 0] = np.nan
    if interval == "prediction":
        se = _prediction_se(se, X @ beta, y_cond, sc, vc, Ssub)
    return pd.DataFrame({"prediction": pred, "std_error": se}, index=index)


def _prediction_se(se_mean, mu, y, sc, vc, Ssub):
    """sqrt(se_mean^2 + Var[y_m | y_o]) on rows without an observed outcome (R mmrm
    ``h_get_prediction``'s ``var`` at theta_hat); observed rows keep se_mean (0 when
    conditional); rows without codes are NaN."""
    se = np.array(se_mean, dtype=float)
    if Ssub is None:
        se[:] = np.nan
        return se
    _, blocks = conditional_moments(mu, y, sc, vc, Ssub)
    for b in blocks.blocks:
        cvar = np.diagonal(b.cov, axis1=1, axis2=2)
        se[b.rows] = np.sqrt(se[b.rows] ** 2 + cvar)
    se[sc < 0] = np.nan
    return se


def fitted_series(result):
    """X beta on the rows used in the fit (observed outcome), indexed as the data."""
    import pandas as pd

    d = result._design
    return pd.Series(d.X @ np.asarray(result._inference.beta), index=d.data.index, name="fitted")


def residual_series(result, kind: str = "raw"):
    """Residuals of the rows used in the fit: raw y - X beta, pearson (raw / sd of the row,
    weights included), or normalized (L_i^-1 r_i with L_i the lower Cholesky factor of the
    subject's (weighted) covariance over its observed visits, in visit order), as R mmrm's
    ``residuals(type = "response" | "pearson" | "normalized")``."""
    import pandas as pd

    if kind not in ("raw", "pearson", "normalized"):
        raise ModelSpecificationError(
            f"type={kind!r} is not valid; choose one of ['raw', 'pearson', 'normalized']"
        )
    prep = result._prepared
    d = result._design
    r = d.y - d.X @ np.asarray(result._inference.beta)
    rows = d.rows
    w = np.ones(len(rows)) if prep._row_weights is None else prep._row_weights[rows]
    sc = prep.subject_codes[rows]
    vc = prep.visit_codes[rows]
    gc = prep.group_codes[rows]
    S = np.stack(result._sigmas)
    if hasattr(prep, "subject_sigmas"):  # spatial (issue 10.5): each subject at its own times
        S, gc = prep.subject_sigmas(result._theta), sc
    if kind == "raw":
        out = r
    elif kind == "pearson":
        out = r * np.sqrt(w) / np.sqrt(S[gc, vc, vc])
    else:
        out = np.empty_like(r)
        order = np.lexsort((vc, sc))
        sc_o = sc[order]
        starts = np.flatnonzero(np.r_[True, sc_o[1:] != sc_o[:-1]])
        ends = np.r_[starts[1:], len(order)]
        # group subjects by (group, visits) and solve each pattern in one batch
        keys = {}
        for s0, e0 in zip(starts, ends):
            idx = order[s0:e0]
            keys.setdefault((int(gc[idx[0]]), tuple(vc[idx].tolist())), []).append(idx)
        for (g, vis), lst in keys.items():
            idx = np.stack(lst)  # (n, m)
            v = np.array(vis)
            L = np.linalg.cholesky(S[g][np.ix_(v, v)])
            z = r[idx] * np.sqrt(w[idx])
            out[idx] = np.linalg.solve(L, z.T).T
    return pd.Series(out, index=d.data.index, name=f"residual_{kind}")
