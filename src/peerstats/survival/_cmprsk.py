"""Numerical kernels of R ``cmprsk`` 2.2 (Gray 1988; Fine & Gray 1999), rewritten in numpy.

Why our own: no Python library has Gray's test, cmprsk's variance of the cumulative incidence or
``crr``'s sandwich variance (which corrects for the estimated censoring distribution);
lifelines' ``AalenJohansenFitter`` uses another variance. The Fortran of cmprsk
(``cinc``, ``crst``, ``crrfsv``, ``crrvv``; GPL, by Robert Gray) was read and the same sums
written with cumulative sums (``cinc``, ``crr``) or a loop over distinct times (``crst``).
Validated against cmprsk 2.2.11 in tests/reference/r_survival/.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cinc", "gray_statistic", "crr_fit"]


def cinc(time: np.ndarray, status: np.ndarray, cause: int):
    """Cumulative incidence and cmprsk's variance at each distinct time of one group.

    Returns (times, F, var) with F and var right-continuous step values (var changes only at
    times of ``cause``), as ``cmprsk:::cinc`` (Aalen-Johansen; Gray's variance).
    """
    ut, inv = np.unique(time, return_inverse=True)
    nd1 = np.bincount(inv, weights=(status == cause).astype(float))
    nd2 = np.bincount(inv, weights=((status > 0) & (status != cause)).astype(float))
    cnt = np.bincount(inv).astype(float)
    rs = cnt[::-1].cumsum()[::-1]
    nd = nd1 + nd2
    fkn = np.cumprod(1 - nd / rs)
    fk = np.r_[1.0, fkn[:-1]]
    f = np.cumsum(fk * nd1 / rs)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_fkn = np.where(fkn > 0, 1 / fkn, 0.0)
        t5a = np.where(nd2 > 1, 1 - (nd2 - 1) / (rs - 1), 1.0)
        t6a = np.where((nd2 > 0) & (fkn > 0), fk * fk * t5a * nd2 / rs**2, 0.0)
        t5b = np.where(nd1 > 1, 1 - (nd1 - 1) / (rs - 1), 1.0)
        t6b = np.where(nd1 > 0, fk * fk * t5b * nd1 / rs**2, 0.0)
    t4a = f * inv_fkn
    t4b = 1 + inv_fkn * f
    v1 = np.cumsum(t4a * t4a * t6a + t4b * t4b * t6b)
    v2 = np.cumsum(inv_fkn * t4a * t6a + inv_fkn * t4b * t6b)
    v3 = np.cumsum(inv_fkn**2 * t6a + inv_fkn**2 * t6b)
    v_at = v1 + f * f * v3 - 2 * f * v2
    jump = nd1 > 0
    idx = np.maximum.accumulate(np.where(jump, np.arange(ut.size), -1))
    var = np.where(idx >= 0, v_at[np.maximum(idx, 0)], 0.0)
    return ut, f, var


def gray_statistic(time, status, group, cause: int, strata=None, rho: float = 0.0):
    """Gray's (1988) K-sample test for ``cause`` (R ``cuminc(...)$Tests``): (stat, df)."""
    gcodes, g = np.unique(group, return_inverse=True)
    ng = gcodes.size
    st = np.zeros(time.size, int) if strata is None else np.unique(strata, return_inverse=True)[1]
    m = np.where(status == cause, 1, np.where(status > 0, 2, 0))
    s = np.zeros(ng - 1)
    v = np.zeros((ng - 1, ng - 1))
    for k in np.unique(st):
        sel = st == k
        o = np.argsort(time[sel], kind="stable")
        ss, vv = _crst(time[sel][o], m[sel][o], g[sel][o], ng, rho)
        s += ss
        v += vv
    stat = float(s @ np.linalg.solve(v, s))
    return stat, ng - 1


def _crst(y, m, ig, ng, rho):
    """One stratum of cmprsk's ``crst`` (Fortran), a loop over distinct times."""
    ng1 = ng - 1
    rs = np.bincount(ig, minlength=ng).astype(float)
    s = np.zeros(ng1)
    v = np.zeros((ng1, ng1))
    f1m, f1 = np.zeros(ng), np.zeros(ng)
    skmm, skm = np.ones(ng), np.ones(ng)
    v3, v2 = np.zeros(ng), np.zeros((ng1, ng))
    c = np.zeros((ng, ng))
    fm = f = 0.0
    ut, start = np.unique(y, return_index=True)
    ends = np.r_[start[1:], y.size]
    for lo, hi in zip(start, ends, strict=True):
        d = np.zeros((3, ng))
        np.add.at(d, (m[lo:hi], ig[lo:hi]), 1.0)
        nd1, nd2 = d[1].sum(), d[2].sum()
        if nd1 > 0 or nd2 > 0:
            pos = rs > 0
            td = d[1] + d[2]
            skm = np.where(pos, skmm * (rs - td) / np.where(pos, rs, 1), skm)
            f1 = np.where(pos, f1m + skmm * d[1] / np.where(pos, rs, 1), f1)
            tr = np.sum(np.where(pos, rs / skmm, 0))
            tq = np.sum(np.where(pos, rs * (1 - f1m) / skmm, 0))
            f = fm + nd1 / tr
            fb = (1 - fm) ** rho
            t1 = np.where(pos, rs / skmm, 0)
            a = -fb * np.outer(t1, t1) / tr
            np.fill_diagonal(a, fb * t1 * (1 - t1 / tr))
            a[~pos, :] = 0
            a[:, ~pos] = 0
            c += a * nd1 / (tr * (1 - fm))
            s += np.where(pos, fb * (d[1] - nd1 * rs * (1 - f1m) / (skmm * tq)), 0)[:ng1]
            if nd1 > 0:
                t4 = np.where(skm > 0, 1 - (1 - f) / np.where(skm > 0, skm, 1), 1.0)
                t5 = 1 - (nd1 - 1) / (tr * skmm - 1) if nd1 > 1 else np.ones(ng)
                t3 = np.where(pos, t5 * skmm * nd1 / (tr * np.where(pos, rs, 1)), 0)
                v3 += t4 * t4 * t3
                t1m = a[:ng1, :] - t4 * c[:ng1, :]
                v2 += t1m * t4 * t3
                v += (t1m * t3) @ t1m.T
            if nd2 > 0:
                ok = (skm > 0) & (d[2] > 0)
                t4 = np.where(ok, (1 - f) / np.where(skm > 0, skm, 1), 0)
                t5 = np.where(d[2] > 1, 1 - (d[2] - 1) / np.maximum(rs - 1, 1), 1.0)
                t3 = np.where(ok, t5 * skmm**2 * d[2] / np.where(pos, rs, 1) ** 2, 0)
                v3 += t4 * t4 * t3
                t1m = t4 * c[:ng1, :]
                v2 -= t1m * t4 * t3
                v += (t1m * t3) @ t1m.T
        if hi >= y.size:
            break
        rs -= np.bincount(ig[lo:hi], minlength=ng)
        fm = f
        f1m, skmm = f1.copy(), skm.copy()
    cc = c[:ng1, :]
    v += (cc * v3) @ cc.T + cc @ v2.T + v2 @ cc.T
    return s, v


def _censoring_km_left(t: np.ndarray, cens: np.ndarray) -> np.ndarray:
    """G(t-): Kaplan-Meier of censoring just before each time (cmprsk's ``uuu``)."""
    ut, inv = np.unique(t, return_inverse=True)
    c = np.bincount(inv, weights=cens)
    n_at = np.bincount(inv)[::-1].cumsum()[::-1]
    g = np.cumprod(1 - c / n_at)
    return np.r_[1.0, g[:-1]][inv]


class _FGData:
    """Sorted Fine-Gray data: times, codes (1 cause, 2 competing, 0 censored), G(t-)."""

    def __init__(self, t, code, x):
        o = np.argsort(t, kind="stable")
        self.t, self.code, self.x = t[o], code[o], x[o]
        self.g = _censoring_km_left(self.t, (self.code == 0).astype(float))
        self.tau, first = np.unique(self.t[self.code == 1], return_index=True)
        ev = np.flatnonzero(self.code == 1)
        self.d = np.bincount(np.searchsorted(self.tau, self.t[ev]), minlength=self.tau.size)
        self.g_tau = self.g[ev][first]
        self.comp = self.code == 2


def _fg_sums(fg: _FGData, beta):
    w = np.exp(fg.x @ beta)
    # at risk with weight 1: t >= tau;  competing with t < tau: weight w G(tau-)/G(t-)
    wx = w[:, None] * fg.x
    pos = np.searchsorted(fg.t, fg.tau, side="left")  # first row with t >= tau
    rc0 = np.r_[np.cumsum(w[::-1])[::-1], 0.0]
    rc1 = np.vstack([np.cumsum(wx[::-1], axis=0)[::-1], np.zeros(fg.x.shape[1])])
    cw = np.where(fg.comp, w / fg.g, 0.0)
    c0 = np.r_[0.0, np.cumsum(cw)]
    c1 = np.vstack([np.zeros(fg.x.shape[1]), np.cumsum(cw[:, None] * fg.x, axis=0)])
    s0 = rc0[pos] + fg.g_tau * c0[pos]
    s1 = rc1[pos] + fg.g_tau[:, None] * c1[pos]
    return w, s0, s1 / s0[:, None], pos


def _fg_at_risk(fg: _FGData, q: np.ndarray):
    """For every row: sum over event times of c_km q_m (c = 1 or G(tau-)/G(t-))."""
    k = np.searchsorted(fg.tau, fg.t, side="right")  # event times <= t
    cum = np.vstack([np.zeros(q.shape[1]), np.cumsum(q, axis=0)])
    later = np.vstack([np.cumsum((fg.g_tau[:, None] * q)[::-1], axis=0)[::-1],
                       np.zeros(q.shape[1])])
    out = cum[k]
    out[fg.comp] += later[k[fg.comp]] / fg.g[fg.comp][:, None]
    return out


def _fg_eval(fg: _FGData, beta):
    w, s0, xbar, _ = _fg_sums(fg, beta)
    eta = fg.x @ beta
    ev = fg.code == 1
    loglik = float(eta[ev].sum() - fg.d @ np.log(s0))
    score = fg.x[ev].sum(axis=0) - fg.d @ xbar
    a = _fg_at_risk(fg, (fg.d / s0)[:, None])[:, 0]
    info = (fg.x * (w * a)[:, None]).T @ fg.x - (xbar * fg.d[:, None]).T @ xbar
    return loglik, score, info


def _fg_sandwich(fg: _FGData, beta, info):
    """cmprsk ``crrvv``: score residuals plus the censoring-martingale term, sandwiched."""
    w, s0, xbar, pos = _fg_sums(fg, beta)
    ev = fg.code == 1
    a = _fg_at_risk(fg, (fg.d / s0)[:, None])[:, 0]
    b = _fg_at_risk(fg, xbar * (fg.d / s0)[:, None])
    eta_res = -(w[:, None] * (fg.x * a[:, None] - b))
    k = np.searchsorted(fg.tau, fg.t[ev])
    eta_res[ev] += fg.x[ev] - xbar[k]
    # censoring term: q(u) at each censoring time u
    ut, first = np.unique(fg.t, return_index=True)
    n_at = fg.t.size - first
    ncens = np.bincount(np.searchsorted(ut, fg.t), weights=(fg.code == 0), minlength=ut.size)
    cw = np.where(fg.comp, w / fg.g, 0.0)
    c0 = np.r_[0.0, np.cumsum(cw)][first]  # competing rows before u
    c1 = np.vstack([np.zeros(fg.x.shape[1]), np.cumsum(cw[:, None] * fg.x, axis=0)])[first]
    m = np.searchsorted(fg.tau, ut, side="left")  # event times >= u start at m
    h0 = np.r_[np.cumsum((fg.d * fg.g_tau / s0)[::-1])[::-1], 0.0][m]
    h1 = np.vstack([np.cumsum((xbar * (fg.d * fg.g_tau / s0)[:, None])[::-1], axis=0)[::-1],
                    np.zeros(fg.x.shape[1])])[m]
    q = c1 * h0[:, None] - c0[:, None] * h1
    ss2 = -np.cumsum(q * (ncens / n_at**2)[:, None], axis=0)
    j = np.searchsorted(ut, fg.t)
    psi = ss2[j] + np.where(fg.code == 0, 1.0, 0.0)[:, None] * q[j] / n_at[j][:, None]
    u = eta_res + psi
    hinv = np.linalg.inv(info)
    return hinv @ (u.T @ u) @ hinv


def crr_fit(t, code, x):
    """Fine-Gray fit: (beta, variance, loglik, iterations, converged)."""
    from ._engine import newton

    fg = _FGData(np.asarray(t, float), np.asarray(code), np.asarray(x, float))
    beta, ll, _, info, it, ok = newton(lambda b: _fg_eval(fg, b), np.zeros(x.shape[1]))
    var = _fg_sandwich(fg, beta, info)
    return beta, var, ll, it, ok
