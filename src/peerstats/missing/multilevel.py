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
Checked against R jomo on a synthetic partially nested trial in tests/reference/r_jomo/.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError

__all__ = ["impute_multilevel", "BURN", "THIN"]

BURN = 300
THIN = 10


def _inv_wishart(nu: float, S: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of IW(nu, S) (mean S / (nu - T - 1)): Sigma = (L A A' L')^-1 with W = L A A' L'
    ~ Wishart(nu, S^-1) by the Bartlett decomposition (L the Cholesky factor of S^-1)."""
    T = S.shape[0]
    L = np.linalg.cholesky(np.linalg.inv(S))
    A = np.zeros((T, T))
    A[np.tril_indices(T, -1)] = rng.standard_normal(T * (T - 1) // 2)
    A[np.diag_indices(T)] = np.sqrt(rng.chisquare(nu - np.arange(T)))
    LA = L @ A
    W = LA @ LA.T
    out = np.linalg.inv(W)
    return (out + out.T) / 2


def _levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().astype(str))
        return [c for c in s.cat.categories if str(c) in present]
    return sorted(s.dropna().unique(), key=str)


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
    The sampler and its priors are described in the module docstring
    (``peerstats.missing.multilevel``). Validated against R ``jomo::jomo1rancon`` on a
    synthetic partially nested trial (``tests/reference/r_jomo/``): pooled effects and mean
    imputed values agree within Monte-Carlo error.
    """
    from peerstats.missing.impute import Imputations

    t0 = time.perf_counter()
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

    # ---- the participant x visit grid ----------------------------------------------------------
    visits = _levels(data[visit])
    arm_levels_raw = _levels(data[arm])
    arm_levels = [str(a) for a in arm_levels_raw]
    if data[arm].isna().any():
        raise ModelSpecificationError(
            f"arm {arm!r} is missing on {int(data[arm].isna().sum())} row(s)"
        )
    subjects = pd.Index(pd.unique(data[subject]))
    n, T = len(subjects), len(visits)
    si = subjects.get_indexer(data[subject])
    vi = pd.Index([str(v) for v in visits]).get_indexer(data[visit].astype(str))
    key = si.astype(np.int64) * T + vi
    if pd.Series(key).duplicated().any():
        raise ModelSpecificationError(
            f"data repeat a {subject!r} x {visit!r} combination; one row per participant and visit"
        )
    Y = np.full((n, T), np.nan)
    Y[si, vi] = pd.to_numeric(data[outcome], errors="coerce").to_numpy(dtype=float)
    first = data.groupby(si, sort=True).head(1)
    first = first.iloc[np.argsort(subjects.get_indexer(first[subject]))]
    subj_frame = first.reset_index(drop=True)
    if (data.groupby(si)[arm].nunique() > 1).any():
        raise ModelSpecificationError(f"arm {arm!r} must be constant within participant")
    arm_txt = subj_frame[arm].astype(str).to_numpy()
    arm_of = pd.Index(arm_levels).get_indexer(arm_txt)
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
    d_i = np.isin(arm_txt, delivered)
    grp_by_subj = data.groupby(si)[group].agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else None
    )
    grp = grp_by_subj.reindex(np.arange(n)).to_numpy(dtype=object)
    lone = d_i & pd.isna(grp)
    grp = np.where(lone, np.array(["_single:" + str(s) for s in subjects], dtype=object), grp)
    g_labels, g_codes = np.unique(grp[d_i].astype(str), return_inverse=True)
    G = len(g_labels)
    g_of = np.full(n, -1, dtype=np.int64)
    g_of[d_i] = g_codes

    # covariates: one row per participant
    import formulaic

    na = subj_frame[[c for c in rhs_vars]].isna().any(axis=1)
    if na.any():
        raise ModelSpecificationError(
            f"the imputation model needs its covariates for every participant; "
            f"{int(na.sum())} participant(s) miss some of {rhs_vars} (first: "
            f"{subj_frame.loc[na, subject].astype(str).tolist()[:5]})"
        )
    xf = subj_frame.copy()
    xf[arm] = pd.Categorical(xf[arm].astype(str), categories=arm_levels)
    X = np.asarray(formulaic.model_matrix(rhs, xf, na_action="raise"), dtype=float)
    p = X.shape[1]
    if np.linalg.matrix_rank(X) < p:
        raise ModelSpecificationError(
            f"the imputation design of {formula!r} is rank deficient (collinear terms)"
        )
    miss = np.isnan(Y)
    if miss.all(axis=0).any():
        empty = [str(visits[j]) for j in range(T) if miss[:, j].all()]
        raise ModelSpecificationError(f"visit(s) {empty} have no observed {outcome!r}")
    if (miss.all(axis=1)).any():
        pass  # participants with no post-baseline value are imputed from their covariates

    res_groups = arm_of.copy() if residual_by == "arm" else np.zeros(n, dtype=np.int64)
    R = int(res_groups.max()) + 1

    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    stream = sys.stderr if progress is True else (progress or None)

    # ---- starting values ----------------------------------------------------------------------
    Yc = np.where(miss, np.nanmean(Y, axis=0)[None, :], Y)
    B = np.linalg.lstsq(X, Yc, rcond=None)[0]
    E = Yc - X @ B
    Sig = np.stack(
        [np.cov(E[res_groups == r].T).reshape(T, T) + 1e-6 * np.eye(T) for r in range(R)]
    )
    Om = 0.1 * np.diag(np.diag(Sig.mean(axis=0)))
    U = np.zeros((G, T))
    patterns, pat_of = np.unique(miss, axis=0, return_inverse=True)
    pat_of = pat_of.reshape(-1)
    I_T = np.eye(T)
    n_r = np.bincount(res_groups, minlength=R)
    deliv_idx = np.flatnonzero(d_i)
    # fixed structures of the sampler, built once
    XtX = [X[res_groups == r].T @ X[res_groups == r] for r in range(R)]
    in_r = [np.flatnonzero(res_groups == r) for r in range(R)]
    A = np.zeros((R, G, n))  # A[r, g, i] = 1 when participant i is in group g and residual group r
    A[res_groups[deliv_idx], g_of[deliv_idx], deliv_idx] = 1.0
    counts = A.sum(axis=2).T  # (G, R)
    blocks = []  # (rows, missing visits, observed visits, residual group) per pattern and group
    for k, pat in enumerate(patterns):
        if not pat.any():
            continue
        rows = np.flatnonzero(pat_of == k)
        for r in np.unique(res_groups[rows]):
            rr = rows[res_groups[rows] == r]
            blocks.append((rr[:, None], np.flatnonzero(pat), np.flatnonzero(~pat), int(r)))
    draws_B, draws_Om, draws_Sig, values = [], [], [], []
    total = burn + thin * n_imputations
    kept = 0
    Uext = np.zeros((n, T))
    for it in range(1, total + 1):
        # 1. B | u, Sigma (flat prior): precision sum_r Sigma_r^-1 (x) X_r'X_r
        Rm = Yc - Uext
        Sinv = np.linalg.inv(Sig)
        P = np.zeros((p * T, p * T))
        b = np.zeros(p * T)
        for r in range(R):
            P += np.kron(Sinv[r], XtX[r])
            b += (X[in_r[r]].T @ Rm[in_r[r]] @ Sinv[r]).reshape(-1, order="F")
        Lp = np.linalg.cholesky(P)
        mean = np.linalg.solve(Lp.T, np.linalg.solve(Lp, b))
        vecB = mean + np.linalg.solve(Lp.T, rng.standard_normal(p * T))
        B = vecB.reshape(p, T, order="F")
        XB = X @ B
        # 2. u_g | B, Sigma, Omega: precision Omega^-1 + sum_i Sigma_r(i)^-1
        E0 = Yc - XB  # residual before the group effect
        prec = np.linalg.inv(Om)[None] + np.einsum("gr,rst->gst", counts, Sinv)
        lin = np.einsum("rgt,rts->gs", A @ E0, Sinv)
        Lg = np.linalg.cholesky(prec)
        mu_g = np.linalg.solve(prec, lin[..., None])[..., 0]
        z = rng.standard_normal((G, T))
        U = mu_g + np.linalg.solve(np.swapaxes(Lg, 1, 2), z[..., None])[..., 0]
        # 3. Omega | u ~ IW(G + T, I + sum u u')
        Om = _inv_wishart(G + T, I_T + U.T @ U, rng)
        # 4. Sigma_r | B, u ~ IW(n_r - 1, I + E_r'E_r)  (jomo's full conditional)
        Uext[deliv_idx] = U[g_of[deliv_idx]]
        M = XB + Uext
        E = Yc - M
        Sig = np.stack(
            [_inv_wishart(n_r[r] - 1, I_T + E[in_r[r]].T @ E[in_r[r]], rng) for r in range(R)]
        )
        # 5. missing y | observed, B, u, Sigma (conditional normal per pattern)
        for rr, mi_, ob, r in blocks:
            S = Sig[r]
            mu = M[rr, mi_]
            if len(ob):
                S_oo = S[ob[:, None], ob]
                S_om = S[ob[:, None], mi_]
                K = np.linalg.solve(S_oo, S_om)  # (o, m)
                mu = mu + (Yc[rr, ob] - M[rr, ob]) @ K
                C = S[mi_[:, None], mi_] - S_om.T @ K
            else:
                C = S[mi_[:, None], mi_]
            Lc = np.linalg.cholesky((C + C.T) / 2)
            Yc[rr, mi_] = mu + rng.standard_normal(mu.shape) @ Lc.T
        if it > burn and (it - burn) % thin == 0:
            values.append(Yc[miss].copy())
            draws_B.append(B.copy())
            draws_Om.append(Om.copy())
            draws_Sig.append(Sig.copy())
            kept += 1
            if stream is not None:
                stream.write(f"multilevel imputation {kept} of {n_imputations}\n")
                stream.flush()

    # ---- the Imputations object ---------------------------------------------------------------
    from peerstats.missing.impute import _grid_frame

    frame = _grid_frame(data, subjects, visits, si, vi, subject, visit, outcome)
    arm_of_frame = arm_of
    return Imputations(
        method="bayes",
        outcome=outcome,
        subject=subject,
        visit=visit,
        arm=arm,
        subjects=subjects,
        visits=tuple(visits),
        arm_levels=tuple(arm_levels),
        frame=frame,
        y=Y,
        target=miss,
        missing=miss,
        set_aside=np.zeros((n, T), dtype=bool),
        values=np.stack(values),
        weights=None,
        arm_of=arm_of_frame,
        ice_visit=np.full(n, T),
        strategy=np.array(["MAR"] * n, dtype=object),
        delta=np.zeros((n, T)),
        D=None,
        seed=ss.entropy,
        draws={"B": np.stack(draws_B), "Omega": np.stack(draws_Om), "Sigma": np.stack(draws_Sig)},
        info={
            "source": "impute_multilevel",
            "model": "multivariate linear model with a delivery-group random effect in "
            f"{delivered} (Gibbs sampler, jomo priors)",
            "delivered": delivered,
            "n_groups": G,
            "residual_by": residual_by,
            "burn": burn,
            "thin": thin,
            "seconds": time.perf_counter() - t0,
        },
    )
