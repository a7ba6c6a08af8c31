"""The analysis model a design implies: fixed effects, contrast, linear covariance parameters.

For a :class:`~peerstats.design.TrialDesign` the analysis is a marginal Gaussian model on the
*analysis visits* (the visits after baseline with ``baseline="covariate"``, else every visit):

- fixed effects per arm and visit (``visit`` + ``arm:visit``; with ``baseline="covariate"`` also
  a baseline slope per visit, ``baseline:visit``: the exact conditional model of the later
  visits given the baseline; ``"constrained"`` drops the arm effect at baseline; a single-arm
  design has visit means only and tests the change from baseline);
- covariance: unstructured across the analysis visits (MMRM, SAS ``type=UN``), shared by the
  arms; in a partially nested design a delivery-group random intercept on the post-baseline
  visits of the group-delivered arm and one unstructured participant-level covariance per arm
  (``peerstats.lmm(... + (0 + delivered | group), residual="us", residual_by="arm")``; with one
  analysis visit the heteroscedastic partially nested model of Candlish et al. 2018).

The covariance is written linearly in its parameters psi (the entries of each unstructured
matrix, then the group variance), ``V = sum_k psi_k D_k``, which is what the batched fitter and
the expected information use.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from scipy.special import gammaln

from peerstats.design.design import TrialDesign
from peerstats.models._batch import BatchREML, GroupBlocks, PooledBlocks

__all__ = ["AnalysisModel"]


def _tril(T: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(T) for j in range(i + 1)]


@dataclass
class AnalysisModel:
    design: TrialDesign

    def __post_init__(self) -> None:
        d = self.design
        T = len(d.visits)
        self.T = T
        self.A = np.arange(1, T) if d.baseline == "covariate" else np.arange(T)
        self.TA = len(self.A)
        self.n_arms = len(d.arms)
        arm_cols = self._fixed_effects()
        self._contrast(arm_cols)
        self._covariance()
        self._unit_bases()

    def _fixed_effects(self) -> list[int]:
        """Columns (``visit``, ``arm:visit``, ``baseline:visit``) and the per-arm rows ``c``;
        returns the analysis-visit positions with an arm effect."""
        d, TA, n_arms = self.design, self.TA, self.n_arms
        cols: list[str] = [f"visit[{d.visits[j]}]" for j in self.A]
        arm_cols: list[int] = []  # analysis-visit positions with an arm effect
        if n_arms == 2:
            for pos, j in enumerate(self.A):
                if d.baseline == "constrained" and j == 0:
                    continue
                arm_cols.append(pos)
                cols.append(f"{d.arms[1]}:visit[{d.visits[j]}]")
        base_cols = 0
        if d.baseline == "covariate":
            cols += [f"baseline:visit[{d.visits[j]}]" for j in self.A]
            base_cols = TA
        p = self.p = len(cols)
        self.columns = cols
        c = np.zeros((n_arms, TA, p))
        for a in range(n_arms):
            for pos in range(TA):
                c[a, pos, pos] = 1.0
        for i, pos in enumerate(arm_cols):
            c[1, pos, TA + i] = 1.0
        self.c = c
        self.dvec = None
        if base_cols:
            dv = np.zeros((TA, p))
            for pos in range(TA):
                dv[pos, p - TA + pos] = 1.0
            self.dvec = dv
        self.var0 = float(d.sigma[0, 0])
        return arm_cols

    def _contrast(self, arm_cols: list[int]) -> None:
        """The tested contrast ``ell`` and its true value ``target``."""
        d, TA, n_arms = self.design, self.TA, self.n_arms
        ell = np.zeros(self.p)
        post_pos = [pos for pos, j in enumerate(self.A) if d.visits[j] in d.post_visits]
        use = (
            post_pos
            if d.primary == "average"
            else [int(np.nonzero(self.A == d.visits.index(d.primary))[0][0])]
        )
        if n_arms == 2:
            for pos in use:
                ell[TA + arm_cols.index(pos)] += 1.0 / len(use)
        else:  # single arm: change from baseline (visit 0 is an analysis visit)
            for pos in use:
                ell[pos] += 1.0 / len(use)
            ell[0] -= 1.0
        self.ell = ell
        eff = d.effects[self.A]
        self.target = (
            float(np.mean(eff[use])) if n_arms == 2 else float(np.mean(eff[use]) - d.effects[0])
        )

    def _conditional_sigmas(self) -> list[np.ndarray]:
        """Per arm the covariance of the analysis visits (given the baseline with a covariate)."""
        d = self.design
        cond = []
        for arm in d.arms:
            S = d.individual_sigma(arm)
            if d.baseline == "covariate":
                S0A = S[0, 1:]
                cond.append(S[1:, 1:] - np.outer(S0A, S0A) / S[0, 0])
            else:
                cond.append(S.copy())
        return cond

    def _covariance(self) -> None:
        """The linear covariance parameters psi: [group variance] + unstructured per arm."""
        d, n_arms = self.design, self.n_arms
        self.gmask = d.group_mask()[self.A]
        self.slopes = d.sigma[0, 1:] / d.sigma[0, 0] if d.baseline == "covariate" else None
        cond = self.cond = self._conditional_sigmas()
        tri = self.tri = _tril(self.TA)
        nt = len(tri)
        if d.partially_nested:
            self.arm_offset = [1 + a * nt for a in range(n_arms)]
            K, self.group_index = 1 + n_arms * nt, 0
        else:
            self.arm_offset = [0] * n_arms
            K, self.group_index = nt, None
        self.K = K
        psi = np.zeros(K)
        names: list[str] = []
        if d.partially_nested:
            psi[0] = d.group_variance
            names.append("group variance")
        for a in range(n_arms if d.partially_nested else 1):
            for t, (i, j) in enumerate(tri):
                psi[self.arm_offset[a] + t] = cond[a][i, j]
                vi, vj = d.visits[self.A[i]], d.visits[self.A[j]]
                lab = f"UN({vi},{vj})" + (f" [{d.arms[a]}]" if d.partially_nested else "")
                names.append(lab)
        self.psi_true = psi
        self.param_names = names
        self.nonneg = np.zeros(K, dtype=bool)
        if self.group_index is not None:
            self.nonneg[self.group_index] = True
        self.group_arm_index = d.arms.index(d.group_arm) if d.partially_nested else None

    def _unit_bases(self) -> None:
        """Unit bases for one subject with k observed analysis visits, per arm."""
        self._Dsub = {}
        for a in range(self.n_arms):
            for k in range(1, self.TA + 1):
                D = np.zeros((self.K, k, k))
                for t, (i, j) in enumerate(self.tri):
                    if i < k and j < k:
                        D[self.arm_offset[a] + t, i, j] = 1.0
                        D[self.arm_offset[a] + t, j, i] = 1.0
                self._Dsub[a, k] = D

    # ------------------------------------------------------------------------------------
    def pattern_probs(self, a: int) -> np.ndarray:
        """P(k analysis visits observed), k = 0..TA, for arm index ``a`` (monotone dropout)."""
        cache = self.__dict__.setdefault("_pp_cache", {})
        if a in cache:
            return cache[a]
        r = np.append(self.design.retention[self.design.arms[a]], 0.0)
        last = r[:-1] - r[1:]  # P(last observed visit = i)
        out = np.zeros(self.TA + 1)
        out[0] += 1 - r[0]
        for i, pr in enumerate(last):
            k = i if self.design.baseline == "covariate" else i + 1
            out[k] += pr
        cache[a] = np.clip(out, 0, None)
        return cache[a]

    def group_block_basis(self, ks: list[int]) -> np.ndarray:
        """(K, m, m) basis of one delivery group whose members observe ks[i] analysis visits."""
        a = self.group_arm_index
        m = int(sum(ks))
        D = np.zeros((self.K, m, m))
        gm = np.concatenate([self.gmask[:k] for k in ks]) if m else np.zeros(0)
        D[self.group_index] = np.outer(gm, gm)
        o = 0
        for k in ks:
            if k:
                D[:, o : o + k, o : o + k] += self._Dsub[a, k]
            o += k
        return D

    def subject_basis(self, a: int, k: int) -> np.ndarray:
        return self._Dsub[a, k]

    # ---- simulation --------------------------------------------------------------------
    def simulate_batch(
        self, n: int, n_sims: int, rng: np.random.Generator
    ) -> tuple[BatchREML, BatchREML]:
        """Simulate ``n_sims`` trials of size ``n`` sharing one draw of the dropout patterns;
        return the batched fitters under the design's effect and under the null (same noise)."""
        raw = self.draw(n, n_sims, rng)
        return self.build(raw["y_alt"], raw), self.build(raw["y_null"], raw)

    def draw(self, n: int, n_sims: int, rng: np.random.Generator) -> dict:
        """Raw simulated outcomes: per arm (S, n_arm, T) under the effect and the null, the
        number of observed analysis visits per participant and the delivery group ids."""
        d = self.design
        S = n_sims
        sizes = d.n_per_arm(n)
        T = self.T
        TA = self.TA
        mu = [np.zeros(T) for _ in d.arms]
        mu[-1] = d.effects.copy()
        y_alt: list[np.ndarray] = []
        y_null: list[np.ndarray] = []
        ks: list[np.ndarray] = []
        group_of: list[np.ndarray | None] = []
        for a, arm in enumerate(d.arms):
            na = sizes[arm]
            L = np.linalg.cholesky(d.individual_sigma(arm))
            noise = rng.standard_normal((S, na, T)) @ L.T
            gid = None
            if a == self.group_arm_index:
                gs = d.groups_of(na)
                gid = np.repeat(np.arange(len(gs)), gs)
                u = rng.standard_normal((S, len(gs))) * np.sqrt(d.group_variance)
                noise = noise + u[:, gid, None] * d.group_mask()[None, None, :]
            pr = self.pattern_probs(a)
            k = rng.choice(TA + 1, size=na, p=pr / pr.sum())
            y_null.append(noise)
            y_alt.append(noise + mu[a])
            ks.append(k)
            group_of.append(gid)
        return {"y_alt": y_alt, "y_null": y_null, "ks": ks, "group_of": group_of, "n": n}

    def to_frame(self, raw: dict, s: int = 0, which: str = "y_alt"):
        """Trial ``s`` of a draw as long data: subject, arm, group, visit, y (NaN after
        dropout), delivered (1 in the group-delivered arm), baseline (with a baseline covariate).
        """
        import pandas as pd

        d = self.design
        frames = []
        off = 0
        for a, arm in enumerate(d.arms):
            Y = raw[which][a][s]  # (na, T)
            na = Y.shape[0]
            k = raw["ks"][a]
            nvis = k + (1 if d.baseline == "covariate" else 0)  # observed visits incl. baseline
            obs = np.arange(self.T)[None, :] < nvis[:, None]
            yv = np.where(obs, Y, np.nan)
            gid = raw["group_of"][a]
            df = pd.DataFrame(
                {
                    "subject": np.repeat(np.arange(off, off + na), self.T),
                    "arm": arm,
                    "group": np.repeat(gid, self.T).astype(float) if gid is not None else np.nan,
                    "visit": np.tile(np.array(d.visits, dtype=object), na),
                    "y": yv.reshape(-1),
                    "delivered": float(a == self.group_arm_index),
                }
            )
            if d.baseline == "covariate":
                df["baseline"] = np.repeat(Y[:, 0], self.T)
            frames.append(df)
            off += na
        out = pd.concat(frames, ignore_index=True)
        out["arm"] = pd.Categorical(out["arm"], categories=list(d.arms))
        out["visit"] = pd.Categorical(out["visit"], categories=list(d.visits), ordered=True)
        return out

    def build(self, Y: list[np.ndarray], raw: dict) -> BatchREML:
        """The batched fitter for outcomes Y (per arm (S, n_arm, T)) of a draw."""
        pooled_by_m: dict[int, list] = {}
        groups: list[GroupBlocks] = []
        for a in range(len(self.design.arms)):
            Ya = Y[a]  # (S, na, T)
            base = Ya[:, :, 0] if self.dvec is not None else None
            if a == self.group_arm_index:
                groups.append(self._group_blocks(a, Ya, base, raw["group_of"][a], raw["ks"][a]))
                continue
            for k, item in self._pooled_items(a, Ya, base, raw["ks"][a]):
                pooled_by_m.setdefault(k, []).append(item)
        pooled = [
            PooledBlocks(
                D=np.stack([it[0] for it in items]),
                counts=np.array([it[1] for it in items]),
                SXX=np.stack([it[2] for it in items], axis=1),
                SXy=np.stack([it[3] for it in items], axis=1),
                Syy=np.stack([it[4] for it in items], axis=1),
            )
            for _, items in sorted(pooled_by_m.items())
        ]
        return BatchREML(pooled, groups, K=self.K, p=self.p, nonneg=self.nonneg)

    def _group_blocks(self, a: int, Ya, base, gid: np.ndarray, ks: np.ndarray) -> GroupBlocks:
        """The delivery groups of arm ``a``: X and y per member and visit (zero padding)."""
        S, TA = Ya.shape[0], self.TA
        Gn = int(gid.max()) + 1 if gid.size else 0
        sizes_g = np.bincount(gid, minlength=Gn)
        Mm = int(sizes_g.max()) if Gn else 0
        slot = np.arange(gid.size) - np.r_[0, np.cumsum(sizes_g)[:-1]][gid]
        obs = np.zeros((Gn, Mm, TA), dtype=bool)
        obs[gid, slot] = np.arange(TA)[None, :] < ks[:, None]
        Xg = np.zeros((S, Gn, Mm, TA, self.p))
        Xg[:, gid, slot] = self.c[a][None, None]
        if base is not None:
            Xg[:, gid, slot] += base[:, :, None, None] * self.dvec[None, None]
        Xg *= obs[None, :, :, :, None]
        yg = np.zeros((S, Gn, Mm, TA))
        yg[:, gid, slot] = Ya[:, :, self.A]
        yg *= obs[None]
        F = self.subject_basis(a, TA).copy()
        return GroupBlocks(F=F, gidx=self.group_index, gvec=self.gmask.copy(), obs=obs, X=Xg, y=yg)

    def _pooled_items(self, a: int, Ya, base, ks: np.ndarray):
        """Per number k of observed analysis visits in arm ``a``: (k, (basis, count, SXX, SXy,
        Syy)) with the cross products of every simulated trial."""
        S, A = Ya.shape[0], self.A
        for k in range(1, self.TA + 1):
            idx = np.nonzero(ks == k)[0]
            if idx.size == 0:
                continue
            nb = idx.size
            q = self.p + 1
            Z = np.empty((S, nb, k, q))
            Z[..., : self.p] = self.c[a, :k]
            if base is not None:
                Z[..., : self.p] += base[:, idx, None, None] * self.dvec[:k]
            Z[..., self.p] = Ya[:, idx][:, :, A[:k]]
            Zf = Z.reshape(S, nb, k * q)
            G = np.swapaxes(Zf, 1, 2) @ Zf
            G = G.reshape(S, k, q, k, q).transpose(0, 1, 3, 2, 4)
            p = self.p
            yield (
                k,
                (self.subject_basis(a, k), float(nb), G[..., :p, :p], G[..., :p, p], G[..., p, p]),
            )

    # ---- expected information ----------------------------------------------------------
    def aggregates(self, n: int) -> list[tuple[float, tuple]]:
        """The trial of size ``n`` as counts of aggregate units: (number of subjects,
        ("subject", arm)) per non-grouped arm and (number of groups, ("group", arm, m)) per
        delivery-group size m."""
        d = self.design
        sizes = d.n_per_arm(n)
        out: list[tuple[float, tuple]] = []
        for a, arm in enumerate(d.arms):
            if a == self.group_arm_index:
                gs = d.groups_of(sizes[arm])
                for m, cnt in zip(*np.unique(gs, return_counts=True)):
                    out.append((float(cnt), ("group", a, int(m))))
            else:
                out.append((float(sizes[arm]), ("subject", a)))
        return out

    def aggregate_units(self, key: tuple) -> list[tuple[float, tuple, np.ndarray, list]]:
        """The unit types of an aggregate with their probabilities (dropout patterns of a
        subject; pattern mixes of a delivery group)."""
        if key[0] == "subject":
            a = key[1]
            probs = self.pattern_probs(a)
            return [
                (float(probs[k]), (a, (k,)), *self._unit((a, (k,))))
                for k in range(1, self.TA + 1)
                if probs[k] > 0
            ]
        _, a, m = key
        return [(pr, (a, kk), *self._unit((a, kk))) for pr, kk in self._group_compositions(m, a)]

    def _group_compositions(self, m: int, a: int) -> list[tuple[float, tuple[int, ...]]]:
        cache = self.__dict__.setdefault("_comp_cache", {})
        if (m, a) not in cache:
            cache[m, a] = [
                (pr, tuple(kk)) for pr, kk in _compositions(m, self.pattern_probs(a)) if sum(kk) > 0
            ]
        return cache[m, a]

    def _unit(self, key: tuple) -> tuple[np.ndarray, list[np.ndarray]]:
        cache = self.__dict__.setdefault("_unit_cache", {})
        if key not in cache:
            a, kk = key
            s0 = np.sqrt(self.var0)
            D = (
                self.group_block_basis(list(kk))
                if a == self.group_arm_index
                else self.subject_basis(a, kk[0])
            )
            cache[key] = (D, self._virtual(a, list(kk), s0))
        return cache[key]

    def _virtual(self, a: int, ks: list[int], s0: float) -> list[np.ndarray]:
        m = int(sum(ks))
        Xbar = np.concatenate([self.c[a, :k] for k in ks if k]) if m else np.zeros((0, self.p))
        Xs = [Xbar]
        if self.dvec is not None:
            o = 0
            for k in ks:
                if k:
                    Dl = np.zeros((m, self.p))
                    Dl[o : o + k] = s0 * self.dvec[:k]
                    Xs.append(Dl)
                o += k
        return Xs


def _compositions(m: int, probs: np.ndarray, max_types: int = 400):
    """Multinomial compositions of a group of m members over patterns 0..TA with their
    probabilities; tiny ones dropped (renormalised) when there are many."""
    TA1 = len(probs)
    nz = [k for k in range(TA1) if probs[k] > 0]
    if len(nz) == 1:
        yield 1.0, [nz[0]] * m
        return
    combos = []
    logp = np.log(np.where(probs > 0, probs / probs.sum(), 1.0))
    lgm = gammaln(m + 1)
    for comb in combinations_with_replacement(nz, m):
        cnt = np.bincount(comb, minlength=TA1)
        pr = float(np.exp(lgm - gammaln(cnt + 1).sum() + (cnt * logp).sum()))
        combos.append((pr, sorted(comb, reverse=True)))
    combos.sort(key=lambda x: -x[0])
    if len(combos) > max_types:
        combos = combos[:max_types]
    tot = sum(c[0] for c in combos)
    for pr, comb in combos:
        yield pr / tot, list(comb)
