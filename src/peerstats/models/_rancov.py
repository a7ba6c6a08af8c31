"""Random-effect covariance models for the shared REML engine (``V_b = Z_b G Z_b' + R_b``).

The data are cut into independent *blocks*: the connected components of the graph that links
observations sharing a level of any random term (and, with a residual structure across visits,
observations of the same subject). In ``(1 | id)`` a block is a subject; in
``(1 | site) + (1 | id)`` with subjects nested in sites a block is a site; in the partially
nested ``(1 | id) + (0 + peer | group)`` each delivery group is a block and each control subject
its own block. Blocks with identical structure (same size, same random-effect design up to the
labelling of levels, same residual pattern) are pooled into one *block type* whose sufficient
statistics are sums over its members, so that the random-intercept model at 20,000 subjects
costs one small matrix per missingness pattern (see :mod:`peerstats.models._reml`).

Within a block type, ``Z G Z'`` is linear in the entries of each term's ``G_t``:

    Z G Z' = sum_t sum_{a,c} G_t[a, c] K_t[a, c],   K_t[a, c]_{ij} = z_ia z_jc [l_t(i) = l_t(j)]

(``l_t(i)`` the level of term t on row i; rows outside the term have ``z = 0``), so the
matrices ``K_t`` are built once and ``V`` and ``dV/dtheta`` cost a few tensor contractions.

Parameters ``theta``:

- per random term, the lower-triangular Cholesky factor ``L_t`` (row-wise, ``G_t = L_t L_t'``)
  with an *unconstrained* diagonal: a variance at zero is an interior point (L = 0), so singular
  fits converge as in lme4 (whose relative Cholesky factor is bounded at 0 instead);
- the residual: ``log sigma^2_g`` per level of ``residual_by`` (iid, nlme ``varIdent``), or the
  parameters of a :class:`~peerstats.models._covariance.GroupedCovariance` across visits.

Kenward-Roger needs the covariance in a parameterisation linear in V (pbkrtest uses the
variances and covariances themselves); :meth:`RandomCovariance.linear` gives that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._random import RandomDesign
from peerstats.models._reml import SizeClass, _gram_stats

__all__ = ["BlockLayout", "RandomCovariance", "LinearRandomCovariance", "build_blocks"]


@dataclass
class BlockLayout:
    """How observations are cut into blocks and pooled into block types (internal)."""

    classes: list[SizeClass]
    rows: list[list[np.ndarray]]  # per size class, per block type: (units, m) row indices
    K: list[list[np.ndarray]]  # per size class, per term: (B, q, q, m, m)
    res_code: list[np.ndarray]  # per size class: (B, m) residual level of each position
    position: list[np.ndarray]  # per size class: (B, m) visit position (structured residual)
    same_unit: list[np.ndarray]  # per size class: (B, m, m) same-subject indicator
    n_blocks: int
    n_block_types: int


def build_blocks(
    X: np.ndarray,
    y: np.ndarray,
    designs: list[RandomDesign],
    *,
    res_code: np.ndarray,
    subject: np.ndarray | None = None,
    position: np.ndarray | None = None,
    max_bytes: float = 2.0 * 2**30,
) -> BlockLayout:
    """Cut rows into independent blocks, pool identical blocks and compute their statistics.

    ``res_code`` is the residual level of each row (0 when there is one residual variance);
    ``subject`` and ``position`` (visit index) are given when the residual has a structure
    across visits (then rows of a subject must share a block). Refuses (ModelSpecificationError)
    when the pooled statistics would need more than ``max_bytes``.

    Steps: the blocks are the connected components of rows and levels (:func:`_components`);
    rows are sorted canonically within blocks (:func:`_row_order`); each row gets the features
    that define its block's structure (:func:`_structure_features`); blocks with the same
    features are one block type (:func:`_plan_types`), whose statistics are then pooled
    (:func:`_pool_types`).
    """
    n = X.shape[0]
    block = _components(designs, subject, n)
    unit = subject if subject is not None else np.zeros(n, dtype=np.int64)
    pos = position if position is not None else np.zeros(n, dtype=np.int64)
    order = _row_order(designs, block, unit, pos)
    b_sorted = block[order]
    starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
    sizes = np.diff(np.r_[starts, n])
    F = _structure_features(designs, order, starts, sizes, res_code, subject, pos)
    plan = _plan_types(F, starts, sizes, X.shape[1], max_bytes)
    layout = _pool_types(plan, order, X, y, designs, res_code, unit, pos)
    layout.n_blocks = int(block.max()) + 1 if n else 0
    return layout


def _components(designs: list[RandomDesign], subject: np.ndarray | None, n: int) -> np.ndarray:
    """Block (connected component of rows <-> random-effect levels <-> subjects) of each row,
    numbered 0.. in order of first appearance of the component labels."""
    offs = n
    r_idx, c_idx = [], []
    for d in designs:
        has = d.codes >= 0
        r_idx.append(np.flatnonzero(has))
        c_idx.append(offs + d.codes[has])
        offs += d.n_levels
    if subject is not None:
        r_idx.append(np.arange(n))
        c_idx.append(offs + subject)
        offs += int(subject.max()) + 1
    if r_idx:
        r = np.concatenate(r_idx)
        c = np.concatenate(c_idx)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(offs, offs))
    _, comp = connected_components(graph, directed=False)
    _, block = np.unique(comp[:n], return_inverse=True)
    return block.reshape(-1)


def _row_order(designs, block, unit, pos) -> np.ndarray:
    """Rows sorted by block, then level codes, term values, subject and visit position."""
    keys = [pos, unit]
    for d in reversed(designs):
        for j in reversed(range(d.Z.shape[1])):
            keys.append(d.Z[:, j])
    for d in reversed(designs):
        keys.append(d.codes)
    keys.append(block)
    return np.lexsort(keys)


def _within_rank(code: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Dense rank of ``code`` (rows in block order) within each block (1 when constant)."""
    n = code.size
    block_of_row = np.repeat(np.arange(len(starts)), sizes)
    if np.array_equal(code, code[starts][block_of_row]):
        return np.ones(n)
    frame = pd.DataFrame({"b": block_of_row, "c": code})
    return frame.groupby("b")["c"].rank(method="dense").to_numpy()


def _structure_features(designs, order, starts, sizes, res_code, subject, pos) -> np.ndarray:
    """Per row (in block order) the features that define its block's structure: level codes
    relabelled within the block, term values, residual level, subject rank and visit."""
    feats = []
    for d in designs:
        code = d.codes[order]
        rank = _within_rank(np.where(code >= 0, code, -1), starts, sizes)
        feats.append(np.where(code >= 0, rank, -1.0)[:, None])
        feats.append(d.Z[order])
    feats.append(res_code[order][:, None].astype(float))
    if subject is not None:
        feats.append(_within_rank(subject[order], starts, sizes)[:, None])
        feats.append(pos[order][:, None].astype(float))
    return np.concatenate(feats, axis=1) if feats else np.zeros((order.size, 0))


def _plan_types(F, starts, sizes, p: int, max_bytes: float) -> list[tuple]:
    """Block types per block size: (m, row positions (blocks, m), first block of each type,
    type of each block); refuses when their statistics would need more than ``max_bytes``."""
    plan = []
    need = 0.0
    nf = F.shape[1]
    for m in np.unique(sizes):
        bsel = np.flatnonzero(sizes == m)
        idx = starts[bsel][:, None] + np.arange(m)[None, :]  # positions in sorted order
        first, inverse = _row_types(F[idx].reshape(len(bsel), m * nf))
        plan.append((int(m), idx, first, inverse))
        need += 2 * len(first) * float(m) ** 2 * (p + 1) ** 2 * 8  # stats + Gram temporary
    if need > max_bytes:
        m_big = max(m for m, *_ in plan)
        raise ModelSpecificationError(
            f"the random effects make independent blocks of up to {m_big} observations (a "
            "grouping factor such as site links all observations within it); their sufficient "
            f"statistics would need {need / 2**30:.1f} GiB (limit {max_bytes / 2**30:.1f} GiB). "
            "Fit the large grouping factor as a fixed effect (as stratification factors are in "
            "a trial's primary model) or use a subset of the data."
        )
    return plan


def _row_types(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of F: the first row of each type, and the type of every row (types
    numbered in order of first appearance; rows compared bit for bit)."""
    F = np.ascontiguousarray(F)
    seen: dict[bytes, int] = {}
    inverse = np.fromiter(
        (seen.setdefault(row.tobytes(), len(seen)) for row in F), dtype=np.int64, count=len(F)
    )
    return np.unique(inverse, return_index=True)[1], inverse


def _term_products(designs: list[RandomDesign], rep: np.ndarray) -> list[np.ndarray]:
    """K_t[a, c]_ij = z_ia z_jc [same level] of each term for representative blocks ``rep``."""
    Ks = []
    for d in designs:
        Zr = d.Z[rep]  # (B, m, q)
        cr = d.codes[rep]  # (B, m)
        same = (cr[:, :, None] == cr[:, None, :]) & (cr[:, :, None] >= 0)
        Ks.append(np.einsum("bia,bjc->bacij", Zr, Zr) * same[:, None, None])
    return Ks


def _pool_types(plan, order, X, y, designs, res_code, unit, pos) -> BlockLayout:
    """Pooled statistics, term products and residual layout of every block type."""
    p = X.shape[1]
    Zall = np.concatenate([X, y[:, None]], axis=1)
    lay = BlockLayout([], [], [], [], [], [], 0, 0)
    for m, idx, first, inverse in plan:
        B = len(first)
        lay.n_block_types += B
        SXX = np.empty((B, m, m, p, p))
        SXy = np.empty((B, m, m, p))
        Syy = np.empty((B, m, m))
        by_type = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[by_type], np.arange(B + 1))
        rows_b = []
        for t in range(B):
            members = order[idx[by_type[bounds[t] : bounds[t + 1]]]]  # (units, m) row indices
            rows_b.append(members)
            SXX[t], SXy[t], Syy[t] = _gram_stats(Zall[members], int(m), p)
        rep = order[idx[first]]  # (B, m) rows of a representative block
        counts = np.diff(bounds).astype(float)
        lay.classes.append(
            SizeClass(m=int(m), counts=counts, SXX=SXX, SXy=SXy, Syy=Syy, keys=list(range(B)))
        )
        lay.rows.append(rows_b)
        lay.K.append(_term_products(designs, rep))
        lay.res_code.append(res_code[rep].astype(np.int64))
        lay.position.append(pos[rep].astype(np.int64))
        ur = unit[rep]
        lay.same_unit.append((ur[:, :, None] == ur[:, None, :]).astype(float))
    return lay


def linear_basis(layout: BlockLayout, qs: list[int], n_res: int, c: int) -> np.ndarray:
    """dV/dpsi of size class ``c`` for independent residuals, (B, K, m, m): per term the
    entries of G_t (lower triangle row-wise; an off-diagonal entry counts K[a, c] + K[c, a]),
    then one residual variance per level."""
    sc = layout.classes[c]
    B, m = len(sc.counts), sc.m
    K = sum(q * (q + 1) // 2 for q in qs) + n_res
    D = np.zeros((B, K, m, m))
    k = 0
    for t, q in enumerate(qs):
        Kt = layout.K[c][t]
        for i, j in _tril_index(q):
            D[:, k] = Kt[:, i, i] if i == j else Kt[:, i, j] + Kt[:, j, i]
            k += 1
    rc = layout.res_code[c]
    ii = np.arange(m)
    for g in range(n_res):
        D[:, k + g, ii, ii] = (rc == g).astype(float)
    return D


def _tril_index(q: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(q) for j in range(i + 1)]


def cholesky_factor(values: np.ndarray, q: int) -> np.ndarray:
    """The q x q lower-triangular factor whose entries are ``values`` (row-wise)."""
    L = np.zeros((q, q))
    L[np.tril_indices(q)] = values
    return L


class RandomCovariance:
    """Covariance model ``V_b = sum_t Z_bt G_t Z_bt' + R_b`` for :class:`REMLEngine`.

    ``qs`` are the numbers of columns of the random terms; ``n_res`` the number of residual
    levels (iid, one ``log sigma^2`` each) or, with ``structure`` (a ``GroupedCovariance``),
    the residual covariance across visits with its own parameters.
    """

    def __init__(
        self,
        layout: BlockLayout,
        qs: list[int],
        *,
        n_res: int = 1,
        structure=None,
        fixed_zero: tuple[int, ...] = (),
    ) -> None:
        self.layout = layout
        self.qs = list(qs)
        self.n_res = n_res
        self.structure = structure
        self.n_g = [q * (q + 1) // 2 for q in self.qs]
        self.n_re = int(sum(self.n_g))
        n_r = structure.n_params if structure is not None else n_res
        self.n_full = self.n_re + n_r
        # parameters fixed at zero (singular variance components), removed from theta
        self.fixed_zero = tuple(sorted(fixed_zero))
        self.free = np.array(
            [k for k in range(self.n_full) if k not in self.fixed_zero], dtype=np.int64
        )
        self.n_params = len(self.free)

    # ---- parameter maps ---------------------------------------------------------------------
    def full(self, theta: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_full)
        out[self.free] = theta
        return out

    def _factors(self, theta_full: np.ndarray) -> list[np.ndarray]:
        """Each term's Cholesky factor L_t from the full parameter vector."""
        out = []
        k = 0
        for q, ng in zip(self.qs, self.n_g):
            out.append(cholesky_factor(theta_full[k : k + ng], q))
            k += ng
        return out

    def G_list(self, theta_full: np.ndarray) -> list[np.ndarray]:
        """G_t for each term from the full parameter vector."""
        return [L @ L.T for L in self._factors(theta_full)]

    def dG_list(self, theta_full: np.ndarray) -> list[np.ndarray]:
        """dG_t/dtheta for each term's own parameters, (n_g, q, q)."""
        out = []
        for L in self._factors(theta_full):
            q = L.shape[0]
            idx = _tril_index(q)
            D = np.empty((len(idx), q, q))
            for r, (i, j) in enumerate(idx):
                E = np.zeros((q, q))
                E[i, j] = 1.0
                EL = E @ L.T
                D[r] = EL + EL.T
            out.append(D)
        return out

    def residual_variances(self, theta_full: np.ndarray) -> np.ndarray:
        return np.exp(theta_full[self.n_re :])

    # ---- engine interface -------------------------------------------------------------------
    def block_covariances(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        th = self.full(np.asarray(theta, dtype=float))
        Gs = self.G_list(th)
        dGs = self.dG_list(th)
        lay = self.layout
        out = []
        if self.structure is not None:
            sig = np.stack(self.structure.sigmas(th[self.n_re :]))
            dsig = self.structure.dsigmas(th[self.n_re :])
            Kg = dsig[0].shape[0]
            Gn = sig.shape[0]
            T = sig.shape[1]
            Dres = np.zeros((Gn, self.n_full - self.n_re, T, T))
            for g in range(Gn):
                Dres[g, g * Kg : (g + 1) * Kg] = dsig[g]
        else:
            s2 = self.residual_variances(th)
        for c, sc in enumerate(lay.classes):
            B, m = len(sc.counts), sc.m
            V = np.zeros((B, m, m))
            dV = np.zeros((B, self.n_full, m, m))
            k = 0
            for t, (G, dG) in enumerate(zip(Gs, dGs)):
                Kt = lay.K[c][t]
                V += np.tensordot(G, Kt, axes=([0, 1], [1, 2]))
                dV[:, k : k + len(dG)] = np.moveaxis(
                    np.tensordot(dG, Kt, axes=([1, 2], [1, 2])), 0, 1
                )
                k += len(dG)
            rc = lay.res_code[c]
            if self.structure is None:
                diag = s2[rc]  # (B, m)
                ii = np.arange(m)
                V[:, ii, ii] += diag
                for g in range(self.n_res):
                    dV[:, self.n_re + g, ii, ii] = np.where(rc == g, s2[g], 0.0)
            else:
                pos = lay.position[c]
                same = lay.same_unit[c]
                rows = pos[:, :, None]
                cols = pos[:, None, :]
                gsel = rc[:, :, None]
                V += sig[gsel, rows, cols] * same
                dR = Dres[
                    gsel[:, None],
                    np.arange(Dres.shape[1])[None, :, None, None],
                    rows[:, None],
                    cols[:, None],
                ]
                dV[:, self.n_re :] = dR * same[:, None]
            out.append((V, dV[:, self.free]))
        return out


class LinearRandomCovariance:
    """The same V in a parameterisation linear in V (variances and covariances), for K-R.

    ``psi`` = entries of each G_t (lower triangle, row-wise), then the residual variances (iid)
    or the structure's SAS parameters (only for structures linear in them: us, cs, toep), so
    that V(psi) = sum_k psi_k D_k with constant D_k. Kenward-Roger's second-derivative term then
    vanishes (pbkrtest; SAS for these structures). ``psi_hat`` is the estimate corresponding to
    ``theta`` of the base model; :meth:`block_covariances` evaluates V at any psi, so the
    engine's observed Hessian and expected information can be taken in psi directly.
    """

    def __init__(self, base: RandomCovariance, theta: np.ndarray) -> None:
        self.base = base
        th = base.full(theta)
        Gs = base.G_list(th)
        psi = [G[i, j] for G in Gs for i, j in _tril_index(G.shape[0])]
        if base.structure is None:
            psi += list(base.residual_variances(th))
        else:
            st = base.structure.structure
            for sl in base.structure.slices():
                psi += list(st.sas_parameters(th[base.n_re :][sl]))
        self.psi_hat = np.array(psi, dtype=float)
        self.n_params = len(self.psi_hat)
        self.D = [self._basis(c) for c in range(len(base.layout.classes))]

    def _basis(self, c: int) -> np.ndarray:
        base = self.base
        if base.structure is None:
            return linear_basis(base.layout, base.qs, base.n_res, c)
        lay = base.layout
        D = np.zeros((len(lay.classes[c].counts), self.n_params, lay.classes[c].m, lay.classes[c].m))
        D[:, : base.n_re] = linear_basis(base.layout, base.qs, 0, c)
        st = base.structure.structure
        rc, pos, same = lay.res_code[c], lay.position[c], lay.same_unit[c]
        basis = _sas_linear_basis(st.name, st.n_visits)
        Ks = len(basis)
        for g in range(len(base.structure.levels)):
            sel = rc == g
            msk = sel[:, :, None] & sel[:, None, :]
            for r in range(Ks):
                D[:, base.n_re + g * Ks + r] = (
                    basis[r][pos[:, :, None], pos[:, None, :]] * same * msk
                )
        return D

    def block_covariances(self, psi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        psi = np.asarray(psi, dtype=float)
        return [(np.einsum("k,bkij->bij", psi, D), D) for D in self.D]


def _sas_linear_basis(name: str, T: int) -> list[np.ndarray]:
    """dSigma/dpsi for structures linear in SAS's parameters (us, cs, toep)."""
    out = []
    if name == "us":
        for i in range(T):
            for j in range(i + 1):
                E = np.zeros((T, T))
                E[i, j] = E[j, i] = 1.0
                out.append(E)
        return out
    if name == "cs":
        return [np.ones((T, T)), np.eye(T)]
    if name == "toep":
        lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
        return [(lag == k).astype(float) for k in range(1, T)] + [np.eye(T)]
    raise ValueError(name)
