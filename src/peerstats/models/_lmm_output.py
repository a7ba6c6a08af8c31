"""``peerstats.lmm``, after the fit: singular-fit warnings, inference on the fixed effects,
random effects (BLUPs), variance components and ICCs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from peerstats.exceptions import SingularFitWarning
from peerstats.models._ddf import Inference, between_within, kenward_roger_vcov
from peerstats.models._lmm_engine import LMMEngine
from peerstats.models._lmm_fit import FittedCovariance
from peerstats.models._lmm_setup import LMMData, LMMOptions
from peerstats.models._rancov import LinearRandomCovariance
from peerstats.models._reml import REMLEngine
from peerstats.models._sandwich import layout_blocks, sandwich_inference

__all__ = ["singular_terms", "inference", "blups", "variance_components", "icc"]


def singular_terms(d: LMMData, Gs: list[np.ndarray]) -> tuple[list[str], list[str]]:
    """Names of the random terms whose covariance is singular, and one warning for each
    (issued as SingularFitWarning)."""
    names: list[str] = []
    msgs: list[str] = []
    for t, rd, G in zip(d.terms, d.rdesigns, Gs):
        ev = np.linalg.eigvalsh(G) if G.size else np.zeros(1)
        scale = max(float(np.max(np.diag(G))), 0.0)
        if scale == 0.0 or ev[0] <= 1e-8 * scale:
            names.append(str(t))
            what = (
                "the variance of {t} is estimated at zero"
                if rd.q == 1
                else "the covariance matrix of {t} is singular (a variance at zero or a "
                "correlation at +-1)"
            ).format(t=t)
            msgs.append(
                f"singular fit: {what}; the model is over-specified for these data (as lme4's "
                "isSingular)."
            )
    for msg in msgs:
        warnings.warn(msg, SingularFitWarning, stacklevel=4)
    return names, msgs


def _kenward_roger(fc: FittedCovariance, d: LMMData, opt: LMMOptions):
    """P, W and the adjusted covariance in the variance/covariance parameters psi."""
    st = fc.state
    lin = LinearRandomCovariance(fc.cov, st.theta)
    psi = lin.psi_hat
    if isinstance(fc.engine, LMMEngine):  # closed form
        terms = fc.engine.psi_terms(psi)
        P, Q, info = terms["P"], terms["Q"], terms[opt.kr_information]
    else:  # residual structure: the generic engine, observed Hessian by differences
        eng2 = REMLEngine(fc.layout.classes, lin, n_obs=d.n_obs, method=opt.method)
        P = eng2.jacobian_terms(psi)
        Q = eng2.second_order_terms(psi)
        if opt.kr_information == "expected":
            info = eng2.expected_information(psi)
        else:
            info = eng2.hessian(psi, h=1e-5 * max(float(np.max(np.abs(psi))), 1e-12))
    W = 2 * np.linalg.pinv(info)
    return P, W, kenward_roger_vcov(st.Minv, P, Q, None, W)


def inference(fc: FittedCovariance, d: LMMData, opt: LMMOptions) -> Inference:
    """Covariance, df and tests of the fixed effects for ``opt.df`` and ``opt.vcov``."""
    st = fc.state
    P = W = CA = bw = None
    if opt.vcov != "model":
        pass  # the empirical covariance's own df (see _sandwich)
    elif opt.df == "satterthwaite":
        W = 2 * np.linalg.inv(fc.fit["hessian"])
        P = fc.engine.jacobian_terms(st.theta)
    elif opt.df == "kenward-roger":
        P, W, CA = _kenward_roger(fc, d, opt)
    if opt.df == "between-within":
        bw = between_within(d.design.X, _block_of_rows(fc.layout, d.n_obs), d.design.term_columns)
    inf = Inference(
        beta=st.beta, C=st.Minv, P=P, W=W, method=opt.df, df_residual=float(d.n_obs - d.p),
        C_adj=CA, bw=bw,
    )  # fmt: skip
    if opt.vcov != "model":
        blocks = layout_blocks(
            d.design.X, d.design.y, st.beta, fc.layout.rows, fc.cov.block_covariances(st.theta)
        )
        inf = sandwich_inference(inf, opt.vcov, blocks)
    return inf


def _block_of_rows(layout, n: int) -> np.ndarray:
    """Independent cluster (block) of each row, from the block layout."""
    out = np.full(n, -1, dtype=np.int64)
    k = 0
    for rows_c in layout.rows:
        for rows in rows_c:
            u = rows.shape[0]
            out[rows] = (k + np.arange(u))[:, None]
            k += u
    return out


def blups(fc: FittedCovariance, d: LMMData, Gs) -> tuple[pd.DataFrame, np.ndarray]:
    """BLUPs b = G Z' V^-1 (y - X beta) per level, and diag(V) per row."""
    n = d.n_obs
    w = np.zeros(n)
    diagV = np.zeros(n)
    r_all = d.design.y - d.design.X @ fc.state.beta
    for c, (V, _) in enumerate(fc.cov.block_covariances(fc.state.theta)):
        rows_c = fc.layout.rows[c]  # per block type: (units, m) row indices
        rows = np.concatenate(rows_c)
        typ = np.repeat(np.arange(len(rows_c)), [r.shape[0] for r in rows_c])
        w[rows] = np.einsum("uj,ujl->ul", r_all[rows], np.linalg.inv(V)[typ])
        diagV[rows] = np.diagonal(V, axis1=1, axis2=2)[typ]
    cols: dict[str, list] = {"group": [], "level": [], "term": [], "estimate": []}
    for rd, G in zip(d.rdesigns, Gs):
        on = rd.codes >= 0
        U = np.zeros((rd.n_levels, rd.q))
        for a in range(rd.q):
            U[:, a] = np.bincount(rd.codes[on], weights=rd.Z[on, a] * w[on], minlength=rd.n_levels)
        B = U @ G  # G symmetric: b_l = G u_l
        for a, col in enumerate(rd.columns):
            cols["group"] += [rd.term.group] * rd.n_levels
            cols["level"] += list(rd.levels)
            cols["term"] += [col] * rd.n_levels
            cols["estimate"] += B[:, a].tolist()
    return pd.DataFrame(cols), diagV


def variance_components(fc: FittedCovariance, d: LMMData, Gs, opt: LMMOptions) -> list[tuple]:
    """Rows ``group, term, term2, variance, sd`` as lme4's ``as.data.frame(VarCorr(fit))``."""
    rows: list[tuple] = []
    for t, rd, G in zip(d.terms, d.rdesigns, Gs):
        q = rd.q
        for a in range(q):
            rows.append(
                (t.group, rd.columns[a], None, float(G[a, a]), float(np.sqrt(max(G[a, a], 0.0))))
            )
        for a in range(q):
            for b in range(a + 1, q):
                den = np.sqrt(G[a, a] * G[b, b])
                corr = float(G[a, b] / den) if den > 0 else float("nan")
                rows.append((t.group, rd.columns[a], rd.columns[b], float(G[a, b]), corr))
    if opt.residual == "iid":
        s2 = fc.cov.residual_variances(fc.theta_full)
        for g, lev in enumerate(d.res_levels):
            term = f"{opt.residual_by}={lev}" if opt.residual_by is not None else None
            rows.append(("Residual", term, None, float(s2[g]), float(np.sqrt(s2[g]))))
    return rows


def icc(d: LMMData, Gs, diagV) -> list[tuple[str, float]]:
    """Per term: mean Z G Z' over the rows it applies to / mean diag(V) there."""
    out: list[tuple[str, float]] = []
    terms = d.terms
    names = {
        str(t): t.group if sum(u.group == t.group for u in terms) == 1 else str(t) for t in terms
    }
    for t, rd, G in zip(terms, d.rdesigns, Gs):
        on = (rd.codes >= 0) & (np.abs(rd.Z).sum(axis=1) > 0)
        if not on.any():
            continue
        zgz = np.einsum("na,ab,nb->n", rd.Z[on], G, rd.Z[on])
        out.append((names[str(t)], float(zgz.mean() / diagV[on].mean())))
    return out
