"""Tail probabilities and quantiles of t, normal, F and chi-square without ``scipy.stats``.

Importing :mod:`scipy.stats` costs 0.5-2 s of cold start (issue 22), and even :mod:`scipy.special`
0.15-0.3 s (scipy's array-API layer), more than the whole MMRM fit of a 200-subject trial. The
model engine's everyday tests need only Student's t and the normal, so those are computed here
with :mod:`math` (``t_sf``, ``t_ppf``, ``norm_sf``, ``norm_ppf``); the F and chi-square wrappers
(``f_sf``, ``f_isf``, ``chi2_sf``, ``chi2_ppf``: multi-row F tests, SAS's covariance-parameter
limits) call the SAME :mod:`scipy.special` routines that ``scipy.stats`` calls (scipy 1.17
``_continuous_distns.py``: ``f._sf`` is ``fdtrc``, ``f._ppf`` is ``fdtri``, ``chi2._sf`` is
``chdtrc``, ``chi2._ppf`` is ``2 gammaincinv(df / 2, q)``), imported on first use, so their
numbers are bit-identical to scipy's.

Student's t (own code, no library has it without scipy's import cost): the upper tail is
sf(t) = I_x(nu/2, 1/2) / 2 with x = nu / (nu + t^2) (Abramowitz & Stegun 26.7.1, 26.5.27), the
regularised incomplete beta I_x(a, b) by its continued fraction (A&S 26.5.8, evaluated by the
modified Lentz method; Press et al., Numerical Recipes, 6.4) on the side where it converges,
I_x(a, b) = 1 - I_{1-x}(b, a) on the other. Its prefactor x^a (1-x)^b / B(a, b) is computed from
log1p and log Gamma(a + 1/2) / Gamma(a) (the Stirling series of the difference for a >= 20, so
no large log-gamma values cancel). Its relative error is below 1e-14 for nu < 1000 and grows
with nu (the continued fraction's recurrences cancel near x = 1: 6e-13 at nu = 1e4), so from
nu = 5000 on (1,000,000-subject fits) ``scipy.special.stdtr`` / ``stdtrit`` are imported and
called instead. The quantile solves sf(t) = p by
Newton's method on log sf(t) in log t, from the Cornish-Fisher expansion (A&S 26.7.5) and
inside a bracket whose upper end is the exact bound sf(t) <= C t^-nu. The normal: the upper tail
is erfc(x / sqrt 2) / 2 (:func:`math.erfc`), the quantile Wichura's AS 241 (PPND16, relative
error about 1e-16). They reproduce the argument handling of ``rv_continuous`` (NaN for invalid
degrees of freedom or probabilities, +-inf at probabilities 0 and 1) and return numpy floats for
scalars. ``tests/test_cold_start.py`` checks them against ``scipy.stats`` (relative difference
below 1e-12 over a grid of arguments and degrees of freedom; exact equality for the wrappers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["t_sf", "t_ppf", "norm_sf", "norm_ppf", "f_sf", "f_isf", "chi2_sf", "chi2_ppf"]

def _out(value: np.ndarray) -> Any:
    """Return a numpy float for 0-d results (as ``scipy.stats`` does), else the array."""
    return value[()] if value.ndim == 0 else value


def _valid(*dfs: Any) -> np.ndarray:
    ok = np.asarray(True)
    for d in dfs:
        ok = ok & (np.asarray(d, dtype=float) > 0)
    return ok


def _map(func, *args: Any) -> Any:
    """Apply the scalar ``func`` elementwise (numpy broadcasting); numpy float for scalars."""
    arrays = [np.asarray(a, dtype=float) for a in args]
    if all(a.ndim == 0 for a in arrays):
        return np.float64(func(*(float(a) for a in arrays)))
    with np.errstate(invalid="ignore"):  # comparisons with NaN set the flag
        out = np.frompyfunc(func, len(arrays), 1)(*arrays)
    return _out(np.asarray(out, dtype=float))


def t_sf(x: Any, df: Any) -> Any:
    """Upper tail of Student's t (``scipy.stats.t.sf``); ``df = inf`` gives the normal."""
    return _map(_t_sf, x, df)


def t_ppf(q: Any, df: Any) -> Any:
    """Quantile of Student's t (``scipy.stats.t.ppf``)."""
    return _map(_t_ppf, q, df)


def norm_sf(x: Any) -> Any:
    """Upper tail of the standard normal (``scipy.stats.norm.sf``)."""
    return _map(_norm_sf, x)


def norm_ppf(q: Any) -> Any:
    """Quantile of the standard normal (``scipy.stats.norm.ppf``)."""
    return _map(_norm_ppf, q)


# ---- the normal -------------------------------------------------------------------------------
def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0)) if not math.isnan(x) else math.nan


_AS241_A = (3.387132872796366608, 133.14166789178437745, 1971.5909503065514427,
            13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
            33430.575583588128105, 2509.0809287301226727)
_AS241_B = (1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
            21213.794301586595867, 39307.89580009271061, 28729.085735721942674,
            5226.495278852545925)
_AS241_C = (1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055,
            3.64784832476320460504, 1.27045825245236838258, 0.24178072517745061177,
            0.0227238449892691845833, 7.7454501427834140764e-4)
_AS241_D = (1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455,
            0.14810397642748007459, 0.0151986665636164571966, 5.475938084995344946e-4,
            1.05075007164441684324e-9)
_AS241_E = (6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358,
            0.29656057182850489123, 0.026532189526576123093, 0.0012426609473880784386,
            2.71155556874348757815e-5, 2.01033439929228813265e-7)
_AS241_F = (1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
            7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7,
            2.04426310338993978564e-15)


def _poly(c: tuple, x: float) -> float:
    r = 0.0
    for a in reversed(c):
        r = r * x + a
    return r


def _norm_ppf(q: float) -> float:
    """Wichura (1988), Algorithm AS 241 PPND16."""
    if not 0.0 <= q <= 1.0:  # also NaN
        return math.nan
    if q == 0.0 or q == 1.0:
        return -math.inf if q == 0.0 else math.inf
    d = q - 0.5
    if abs(d) <= 0.425:
        r = 0.180625 - d * d
        return d * _poly(_AS241_A, r) / _poly(_AS241_B, r)
    r = math.sqrt(-math.log(q if d < 0 else 1.0 - q))
    if r <= 5.0:
        r -= 1.6
        z = _poly(_AS241_C, r) / _poly(_AS241_D, r)
    else:
        r -= 5.0
        z = _poly(_AS241_E, r) / _poly(_AS241_F, r)
    return -z if d < 0 else z


# ---- Student's t ------------------------------------------------------------------------------
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188)
_LARGE_DF = 5e3  # from here on scipy.special.stdtr: the continued fraction loses digits


def _stirling_tail(z: float) -> float:
    """log Gamma(z) - [(z - 1/2) log z - z + log(2 pi) / 2], for z >= 20."""
    iz, iz2 = 1.0 / z, 1.0 / (z * z)
    return iz * (_STIRLING[0] + iz2 * (_STIRLING[1] + iz2 * (_STIRLING[2] + iz2 * (
        _STIRLING[3] + iz2 * _STIRLING[4]))))


def _log_gamma_ratio(a: float) -> float:
    """log(Gamma(a + 1/2) / Gamma(a)) for a > 0, without cancellation for large a."""
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    return (0.5 * math.log(a) + (a * math.log1p(0.5 / a) - 0.5)
            + _stirling_tail(a + 0.5) - _stirling_tail(a))


def _beta_cf(x: float, a: float, b: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz; Numerical Recipes betacf)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) <= 3e-16:
            break
    return h


def _t_logs(t: float, nu: float) -> tuple[float, float, float, float]:
    """x = nu / (nu + t^2), y = 1 - x, log(1 + t^2 / nu) and log(nu + t^2), for t >= 0
    (also where t^2 overflows)."""
    if t < 1e150:
        t2 = t * t
        return nu / (nu + t2), t2 / (nu + t2), math.log1p(t2 / nu), math.log(nu + t2)
    log_t2 = 2.0 * math.log(t)
    return math.exp(math.log(nu) - log_t2), 1.0, log_t2 - math.log(nu), log_t2


def _t_log_sf(t: float, nu: float) -> float:
    """log of the upper tail of t (t > 0, 0 < nu < _LARGE_DF)."""
    a = 0.5 * nu
    x, y, log1p_r, log_nt = _t_logs(t, nu)  # the tail is I_x(a, 1/2) / 2
    if x < (a + 1.0) / (a + 2.5):
        # I_x(a, 1/2) = x^a (1-x)^(1/2) / (a B(a, 1/2)) cf, 1/B(a, 1/2) = G(a+1/2)/(G(a) sqrt pi)
        log_front = (-a * log1p_r + math.log(t) - 0.5 * log_nt
                     + _log_gamma_ratio(a) - _LOG_SQRT_PI)
        return log_front + math.log(_beta_cf(x, a, 0.5) / a) - math.log(2.0)
    # I_x(a, 1/2) = 1 - I_y(1/2, a)
    if y == 0.0:
        return math.log(0.5)
    log_front = 0.5 * math.log(y) - a * log1p_r + _log_gamma_ratio(a) - _LOG_SQRT_PI
    i_y = math.exp(log_front) * _beta_cf(y, 0.5, a) / 0.5
    return math.log(0.5 * (1.0 - i_y))


def _t_log_pdf(t: float, nu: float) -> float:
    return (_log_gamma_ratio(0.5 * nu) - 0.5 * math.log(nu) - _LOG_SQRT_PI
            - 0.5 * (nu + 1.0) * _t_logs(t, nu)[2])


def _t_sf(t: float, nu: float) -> float:
    if math.isnan(t) or math.isnan(nu) or nu <= 0.0:
        return math.nan
    if math.isinf(nu):
        return _norm_sf(t)
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if nu >= _LARGE_DF:
        from scipy import special

        return float(special.stdtr(nu, -t))
    if t == 0.0:
        return 0.5
    tail = math.exp(_t_log_sf(abs(t), nu))
    return tail if t > 0 else 1.0 - tail


def _t_ppf(q: float, nu: float) -> float:
    if math.isnan(q) or math.isnan(nu) or nu <= 0.0 or not 0.0 <= q <= 1.0:
        return math.nan
    if q == 0.0 or q == 1.0:
        return -math.inf if q == 0.0 else math.inf
    if math.isinf(nu):
        return _norm_ppf(q)
    if nu >= _LARGE_DF:
        from scipy import special

        return float(special.stdtrit(nu, q))
    if q == 0.5:
        return 0.0
    p = 1.0 - q if q > 0.5 else q  # the smaller tail (exact: Sterbenz for q > 0.5)
    t = _t_isf_small(p, nu)
    return t if q > 0.5 else -t


def _t_isf_small(p: float, nu: float) -> float:
    """The t > 0 with sf(t) = p < 1/2: Newton on log sf in u = log t, kept inside a bracket."""
    log_p = math.log(p)
    # sf(t) <= C t^-nu with C = pdf-constant * nu^((nu+1)/2) / nu: its root bounds t above
    log_c = (_log_gamma_ratio(0.5 * nu) - 0.5 * math.log(nu) - _LOG_SQRT_PI
             + 0.5 * (nu - 1.0) * math.log(nu))
    lo, hi = -math.inf, (log_c - log_p) / nu  # bracket of u = log t
    if hi > 709.0:
        if _t_log_sf(math.exp(709.0), nu) > log_p:
            return math.inf  # beyond the largest float
        hi = 709.0
    u = hi
    if nu >= 3.0:  # Cornish-Fisher (A&S 26.7.5) from the normal quantile
        z = -_norm_ppf(p)
        z2 = z * z
        g1 = (z2 + 1.0) * z / 4.0
        g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
        g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
        guess = z + g1 / nu + g2 / nu**2 + g3 / nu**3
        if guess > 0.0 and math.log(guess) < hi:
            u = math.log(guess)
    for _ in range(400):
        t = math.exp(u)
        log_sf = _t_log_sf(t, nu)
        if log_sf > log_p:
            lo = u
        else:
            hi = u
        step = (log_sf - log_p) * math.exp(log_sf - _t_log_pdf(t, nu)) / t
        if abs(step) < 1e-11:  # quadratic convergence: this step leaves an error ~1e-22
            return math.exp(u + step)
        new = u + step
        if not lo < new < hi:
            new = hi - 1.0 if lo == -math.inf else 0.5 * (lo + hi)
        if not lo < new < hi:  # the bracket has closed (to rounding)
            return math.exp(new)
        u = new
    return math.exp(u)


def _sf_nonneg(x: np.ndarray, ok: np.ndarray, tail: np.ndarray) -> Any:
    """Apply rv_continuous's rules on support [0, inf): 1 below it, NaN for bad args or x."""
    res = np.where(x < 0, 1.0, tail)
    res = np.where(ok & ~np.isnan(x), res, np.nan)
    return _out(np.asarray(res, dtype=float))


def f_sf(x: Any, dfn: Any, dfd: Any) -> Any:
    """Upper tail of the F distribution (``scipy.stats.f.sf``)."""
    x = np.asarray(x, dtype=float)
    dfn = np.asarray(dfn, dtype=float)
    dfd = np.asarray(dfd, dtype=float)
    from scipy import special

    with np.errstate(invalid="ignore"):
        tail = special.fdtrc(dfn, dfd, np.where(x < 0, 0.0, x))
    return _sf_nonneg(x, _valid(dfn, dfd), tail)


def f_isf(q: Any, dfn: Any, dfd: Any) -> Any:
    """Inverse upper tail of F (``scipy.stats.f.isf``: ``fdtri(dfn, dfd, 1 - q)``)."""
    q = np.asarray(q, dtype=float)
    dfn = np.asarray(dfn, dtype=float)
    dfd = np.asarray(dfd, dtype=float)
    from scipy import special

    ok = _valid(dfn, dfd) & (q >= 0) & (q <= 1)
    res = np.where(q == 0, np.inf, np.where(q == 1, 0.0, special.fdtri(dfn, dfd, 1.0 - q)))
    return _out(np.where(ok, res, np.nan))


def chi2_ppf(q: Any, df: Any) -> Any:
    """Quantile of chi-square (``scipy.stats.chi2.ppf``: ``2 gammaincinv(df / 2, q)``)."""
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    from scipy import special

    ok = _valid(df) & (q >= 0) & (q <= 1)
    res = np.where(q == 1, np.inf, 2.0 * special.gammaincinv(df / 2.0, q))
    return _out(np.where(ok, res, np.nan))


def chi2_sf(x: Any, df: Any) -> Any:
    """Upper tail of chi-square (``scipy.stats.chi2.sf``)."""
    x = np.asarray(x, dtype=float)
    df = np.asarray(df, dtype=float)
    from scipy import special

    with np.errstate(invalid="ignore"):
        tail = special.chdtrc(df, np.where(x < 0, 0.0, x))
    return _sf_nonneg(x, _valid(df), tail)
