""":func:`peerstats.mmrm_many`'s data side: the replicates stacked, their sufficient statistics in
the batched engine's layout, starting values and the screens that send a replicate to
:func:`peerstats.mmrm` itself.

One design matrix is built for every replicate at once (one formula pass; the factor coding is
the one ``mmrm`` would build on each replicate, as long as each replicate has every level, which
the rank screen checks), and one call of :func:`peerstats.models._reml.pattern_statistics` pools
the units of every replicate by (replicate, group, missingness pattern). The pooled statistics
are then laid out per replicate over the union of the (group, pattern) block types, with count 0
where a replicate lacks a pattern (:class:`peerstats.models._batch_blocks.PooledBlocks` with
``(S, B)`` counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peerstats.exceptions import ModelSpecificationError
from peerstats.models._batch_blocks import PooledBlocks
from peerstats.models._design import FixedDesign, as_categorical
from peerstats.models._reml import SizeClass, pattern_statistics

__all__ = ["REPLICATE", "stack_replicates", "Layout", "layout", "blocks", "start_values"]

REPLICATE = "replicate"


def _frames(data) -> list[tuple[object, pd.DataFrame]]:
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        items = list(enumerate(data))
    else:
        raise ModelSpecificationError(
            "data must be a DataFrame with a replicate column (replicate=), or a list / iterable "
            f"/ dict of DataFrames, not {type(data).__name__}"
        )
    if not items:
        raise ModelSpecificationError("data holds no replicates (an empty list of DataFrames)")
    for key, frame in items:
        if not isinstance(frame, pd.DataFrame):
            raise ModelSpecificationError(
                f"replicate {key!r} is a {type(frame).__name__}, not a pandas DataFrame"
            )
    return items


def frames_of(data) -> list[pd.DataFrame]:
    """The replicates of a list / dict of DataFrames, in order."""
    return [f for _, f in _frames(data)]


def stack_replicates(data, replicate: str | None) -> tuple[pd.DataFrame, str, list, list]:
    """One long frame with the replicates in a column; the column's name; the replicate labels
    (column values, list positions or dict keys) and the values in the column, both in order."""
    if isinstance(data, pd.DataFrame):
        if replicate is None:
            raise ModelSpecificationError(
                "data is one DataFrame: name its replicate column with replicate=, or pass a "
                "list of DataFrames (one per replicate)"
            )
        if replicate not in data.columns:
            raise ModelSpecificationError(
                f"replicate={replicate!r} is not a column of data; columns are {list(data.columns)}"
            )
        if data[replicate].isna().any():
            raise ModelSpecificationError(f"replicate column {replicate!r} has missing values")
        labels = list(pd.unique(data[replicate]))
        return data, replicate, labels, labels
    if replicate is not None:
        raise ModelSpecificationError(
            "replicate= names a column of one long DataFrame; with a list or dict of DataFrames "
            "the replicates are the list positions or dict keys"
        )
    items = _frames(data)
    name = REPLICATE
    while any(name in f.columns for _, f in items):
        name = "_" + name
    labels = [k for k, _ in items]
    long = pd.concat([f.assign(**{name: i}) for i, (_, f) in enumerate(items)], ignore_index=True)
    return long, name, labels, list(range(len(items)))


def replicates(data, replicate: str | None):
    """:func:`stack_replicates` and the original frames of a list / dict (None for one long
    frame)."""
    if not isinstance(data, pd.DataFrame | Mapping) and isinstance(data, Iterable):
        data = list(data)  # a generator is read once
    long, rep_col, labels, values = stack_replicates(data, replicate)
    originals = None if isinstance(data, pd.DataFrame) else frames_of(data)
    return long, rep_col, labels, values, originals


@dataclass
class Layout:
    """Codes of the observed rows: replicate, unit (replicate x subject), visit, group."""

    rep: np.ndarray
    unit: np.ndarray
    visit: np.ndarray
    group: np.ndarray
    n_reps: int
    G: int
    T: int
    duplicated: np.ndarray  # (S,) a (subject, visit) pair repeats, or group varies within subject


def layout(design: FixedDesign, data: pd.DataFrame, *, rep_col, values, subject, visit, group):
    """The codes of ``design``'s rows (the rows with an observed outcome)."""
    used = design.data
    rep = pd.Categorical(used[rep_col], categories=pd.Index(values))
    rep = np.asarray(rep.codes, dtype=np.int64)
    subj = pd.factorize(used[subject])[0].astype(np.int64)
    unit = pd.factorize(rep * (int(subj.max()) + 1 if subj.size else 1) + subj)[0]
    vcat = as_categorical(data[visit], name=visit)
    vcodes = pd.Categorical(used[visit], categories=vcat.cat.categories).codes
    if group is not None:
        gcat = as_categorical(data[group], name=group)
        gcodes = pd.Categorical(used[group], categories=gcat.cat.categories).codes
        G = len(gcat.cat.categories)
    else:
        gcodes, G = np.zeros(len(rep), dtype=np.int64), 1
    T = len(vcat.cat.categories)
    key = unit.astype(np.int64) * T + vcodes
    dup = np.zeros(len(values), dtype=bool)
    o = np.argsort(key, kind="stable")
    same = key[o[1:]] == key[o[:-1]]
    dup[np.unique(rep[o[1:]][same])] = True
    dup |= _group_varies(unit, np.asarray(gcodes, dtype=np.int64), rep, len(values))
    vcodes, gcodes = vcodes.astype(np.int64), np.asarray(gcodes, dtype=np.int64)
    return Layout(rep, unit, vcodes, gcodes, len(values), G, T, dup)


def _group_varies(unit: np.ndarray, group: np.ndarray, rep: np.ndarray, S: int) -> np.ndarray:
    """(S,) replicates where some subject's ``group`` is not constant (``mmrm`` says so)."""
    n_units = int(unit.max()) + 1 if unit.size else 0
    lo = np.full(n_units, np.iinfo(np.int64).max)
    hi = np.full(n_units, -1)
    np.minimum.at(lo, unit, group)
    np.maximum.at(hi, unit, group)
    out = np.zeros(S, dtype=bool)
    bad_units = np.nonzero(lo != hi)[0]
    if bad_units.size:
        urep = np.zeros(n_units, dtype=np.int64)
        urep[unit] = rep
        out[np.unique(urep[bad_units])] = True
    return out


def _tril(T: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(T) for j in range(i + 1)]


def _basis(G: int, T: int, g: int, vis: tuple[int, ...]) -> np.ndarray:
    """D_k of block type (group g, visits vis): the unit basis of Sigma_g's entries."""
    tri = _tril(T)
    nt = len(tri)
    m = len(vis)
    pos = {v: a for a, v in enumerate(vis)}
    D = np.zeros((G * nt, m, m))
    for t, (i, j) in enumerate(tri):
        if i in pos and j in pos:
            D[g * nt + t, pos[i], pos[j]] = 1.0
            D[g * nt + t, pos[j], pos[i]] = 1.0
    return D


def chunks(lay: Layout, p: int, budget: float = 2e7):
    """Replicates in chunks whose pooled statistics take about ``budget`` numbers (at most
    2^T patterns, capped at 32, per group): (rows, layout of the chunk) for each."""
    per_rep = lay.T * lay.T * (p + 1) ** 2 * min(2**lay.T, 32) * lay.G
    size = max(2, int(budget // per_rep))
    if size >= lay.n_reps:
        yield np.arange(len(lay.rep)), lay
        return
    order = np.argsort(lay.rep, kind="stable")
    bounds = np.searchsorted(lay.rep[order], np.arange(0, lay.n_reps + size, size))
    for c, a in enumerate(range(0, lay.n_reps, size)):
        rows = order[bounds[c] : bounds[c + 1]]
        b = min(a + size, lay.n_reps)
        unit = pd.factorize(lay.unit[rows])[0]
        yield (
            rows,
            Layout(
                lay.rep[rows] - a,
                unit,
                lay.visit[rows],
                lay.group[rows],
                b - a,
                lay.G,
                lay.T,
                lay.duplicated[a:b],
            ),
        )


def blocks(X: np.ndarray, y: np.ndarray, lay: Layout) -> tuple[list[PooledBlocks], list[list]]:
    """Pooled statistics of every replicate in the batched layout, and the keys (g, visits) of
    each size class's block types."""
    classes, _ = pattern_statistics(X, y, lay.unit, lay.visit, lay.rep * lay.G + lay.group)
    S, G, T = lay.n_reps, lay.G, lay.T
    pooled, keys = [], []
    for sc in classes:
        types = sorted({(int(rg) % G, vis) for rg, vis in sc.keys})
        index = {k: b for b, k in enumerate(types)}
        B, m, p = len(types), sc.m, sc.SXX.shape[-1]
        counts = np.zeros((S, B))
        SXX, SXy, Syy = (
            np.zeros((S, B, m, m, p, p)),
            np.zeros((S, B, m, m, p)),
            np.zeros((S, B, m, m)),
        )
        for i, (rg, vis) in enumerate(sc.keys):
            s, b = int(rg) // G, index[(int(rg) % G, vis)]
            counts[s, b], SXX[s, b], SXy[s, b], Syy[s, b] = (
                sc.counts[i],
                sc.SXX[i],
                sc.SXy[i],
                sc.Syy[i],
            )
        D = np.stack([_basis(G, T, g, vis) for g, vis in types])
        pooled.append(PooledBlocks(D, counts, SXX, SXy, Syy))
        keys.append(types)
    return pooled, keys


def replicate_classes(pooled: list[PooledBlocks], keys: list[list], s: int) -> list[SizeClass]:
    """Replicate ``s``'s statistics as the single-fit engine's size classes."""
    return [
        SizeClass(
            m=b.D.shape[-1], counts=b.counts[s], SXX=b.SXX[s], SXy=b.SXy[s], Syy=b.Syy[s], keys=k
        )
        for b, k in zip(pooled, keys)
    ]


def pair_counts(pooled: list[PooledBlocks], keys: list[list], G: int, T: int) -> np.ndarray:
    """(S, G, T, T): units of each replicate with outcomes at both visits i and j."""
    S = pooled[0].counts.shape[0] if pooled else 0
    N = np.zeros((S, G, T, T))
    for b, types in zip(pooled, keys):
        for j, (g, vis) in enumerate(types):
            N[:, g, np.array(vis)[:, None], np.array(vis)[None, :]] += b.counts[:, j, None, None]
    return N


def gram(pooled: list[PooledBlocks]) -> np.ndarray:
    """(S, p, p): X'X of every replicate."""
    out = None
    for b in pooled:
        j = np.arange(b.D.shape[-1])
        part = b.SXX[:, :, j, j].sum(axis=(1, 2))
        out = part if out is None else out + part
    return out


def start_values(pooled, keys, G: int, T: int) -> np.ndarray:
    """(S, K) starting psi: per replicate the pairwise covariance of OLS residuals, as the
    single-fit engine starts (:func:`peerstats.models._mmrm_result.empirical_covariances`, here
    for every replicate at once); its diagonal when that is not positive definite."""
    XtX = gram(pooled)
    Xty = sum(
        b.SXy[:, :, np.arange(b.D.shape[-1]), np.arange(b.D.shape[-1])].sum(axis=(1, 2))
        for b in pooled
    )
    beta = np.linalg.solve(XtX, Xty[..., None])[..., 0]
    S = beta.shape[0]
    R_sum, N = np.zeros((S, G, T, T)), pair_counts(pooled, keys, G, T)
    bb = np.einsum("sp,sq->spq", beta, beta)
    for b, types in zip(pooled, keys):
        Sb = np.einsum("sbijp,sp->sbij", b.SXy, beta)
        R = b.Syy - Sb - np.swapaxes(Sb, 2, 3) + np.einsum("sbijpq,spq->sbij", b.SXX, bb)
        for j, (g, vis) in enumerate(types):
            R_sum[:, g, np.array(vis)[:, None], np.array(vis)[None, :]] += R[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(N >= 2, R_sum / N, 0.0)
    d = np.einsum("sgii->sgi", C)
    C = np.where(_positive_definite(C)[..., None, None], C, d[..., None] * np.eye(T))
    tri = _tril(T)
    rows, cols = np.array([i for i, _ in tri]), np.array([j for _, j in tri])
    return C[:, :, rows, cols].reshape(S, G * len(tri))


def _positive_definite(C: np.ndarray) -> np.ndarray:
    ev = np.linalg.eigvalsh(C)
    return ev[..., 0] > 0


def sigmas(psi: np.ndarray, G: int, T: int) -> np.ndarray:
    """(S, G, T, T) covariance matrices from psi."""
    tri = _tril(T)
    out = np.zeros((psi.shape[0], G, T, T))
    for g in range(G):
        for t, (i, j) in enumerate(tri):
            out[:, g, i, j] = out[:, g, j, i] = psi[:, g * len(tri) + t]
    return out
