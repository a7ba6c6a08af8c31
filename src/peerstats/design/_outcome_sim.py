"""Simulated power for binary and count designs (:class:`~peerstats.design.binary.OutcomeDesign`).

A task simulates ``n_sims`` trials of one size (vectorised over trials) and analyses each with
an independence GEE on the arm with cluster-robust (CR0) standard errors, clusters being the
delivery groups (participants of an ungrouped arm are their own cluster):

- binary: identity link, the risk difference p1_hat - p0_hat, Var = sum_a sum_g (sum_{i in g}
  (y_i - p_a_hat))^2 / n_a^2;
- count: log link with log exposure as offset, the log rate ratio, Var(log mu_a_hat) =
  sum_g (sum_{i in g} (y_i - mu_a_hat t_i))^2 / (sum_i mu_a_hat t_i)^2.

With the arm as the only covariate these are the closed forms of statsmodels' GEE (and of
:func:`peerstats.gee` with ``correlation="independence"``, robust SEs, z tests), which
tests/design/test_binary_power.py checks on a simulated trial. Data generation: binary,
a logistic random group intercept with the latent variance that gives the design's ICC and the
intercept that keeps each arm's marginal risk; count, negative binomial (gamma-Poisson) with a
gamma group multiplier of variance v = ICC (1/mu + k) and a within-group dispersion (k - v) /
(1 + v), so the total variance stays mu + k mu^2 and the between-group share is the ICC.
Seeds, chunks and dask follow :mod:`peerstats.design.simulate`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import expit

from peerstats.exceptions import SpecError

__all__ = ["run_outcome_chunk"]


def _latent_sd(icc_prop: float, p: float) -> float:
    """Latent SD of the logistic group intercept whose proportion-scale ICC at risk p is
    ``icc_prop``."""
    from peerstats.design.binary import latent_to_proportion_icc

    if icc_prop <= 0:
        return 0.0

    def gap(lat: float) -> float:
        return latent_to_proportion_icc(lat, p) - icc_prop

    lat = optimize.brentq(gap, 1e-10, 0.999, xtol=1e-12)
    return math.sqrt(lat / (1 - lat) * math.pi**2 / 3)


def _intercept(p: float, sd: float) -> float:
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    return optimize.brentq(lambda a: float(w @ (expit(a + sd * z))) - p, -50, 50)


def _clusters(design, arm: str, n_arm: int) -> np.ndarray:
    if arm in design.grouped_arms:
        return np.repeat(np.arange(len(design.groups_of(n_arm))), design.groups_of(n_arm))
    return np.arange(n_arm)


def _binary_arm(design, arm, rate, n_arm, n_sims, rng, u):
    cl = _clusters(design, arm, n_arm)
    sd = _latent_sd(design.icc_proportion(arm), rate)
    if sd == 0:
        return (u < rate).astype(float), cl
    a = _intercept(rate, sd)
    b = rng.standard_normal((n_sims, cl.max() + 1))[:, cl]
    return (u < expit(a + sd * b)).astype(float), cl


def _count_arm(design, arm, rate, n_arm, n_sims, rng):
    cl = _clusters(design, arm, n_arm)
    mu = rate * design.exposure
    k = design.dispersion
    icc = design.icc_proportion(arm)
    v = icc * (1 / mu + k)
    if v > k + 1e-12:
        raise SpecError(
            f"groups/icc: an ICC of {icc:g} needs a between-group variance above the total "
            f"overdispersion (dispersion {k:g}) at rate {rate:g}; allowed ICC <= "
            f"{k / (1 / mu + k):.4g} (increase dispersion or lower the ICC)"
        )
    kw = (k - v) / (1 + v)
    g = rng.gamma(1 / v, v, (n_sims, cl.max() + 1))[:, cl] if v > 0 else 1.0
    lam = mu * g * (rng.gamma(1 / kw, kw, (n_sims, n_arm)) if kw > 0 else 1.0)
    return rng.poisson(lam).astype(float), cl


def _cluster_sums(resid: np.ndarray, cl: np.ndarray) -> np.ndarray:
    """(sims, clusters) sums of ``resid`` over each cluster."""
    out = np.zeros((resid.shape[0], cl.max() + 1))
    np.add.at(out.T, cl, resid.T)
    return out


def _analyse(outcome: str, arms_y, arms_cl, exposure: float) -> tuple[np.ndarray, np.ndarray]:
    est, var = [], []
    for y, cl in zip(arms_y, arms_cl):
        m = y.mean(axis=1)
        s = _cluster_sums(y - m[:, None], cl)
        ss = (s**2).sum(axis=1)
        if outcome == "binary":
            est.append(m)
            var.append(ss / y.shape[1] ** 2)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                est.append(np.log(m / exposure))
                var.append(ss / (m * y.shape[1]) ** 2)
    return est[1] - est[0], np.sqrt(var[0] + var[1])


def run_outcome_chunk(design, n: int, n_sims: int, seed, effect_scale: float = 1.0) -> dict:
    """Simulate and analyse ``n_sims`` trials under the design (``alt_*``) and the null."""
    rng = np.random.default_rng(seed)
    sizes = design.n_per_arm(n)
    r0, r1 = design.rates
    if design.outcome == "binary":
        r1 = r0 + (r1 - r0) * effect_scale
    else:
        r1 = r0 * math.exp(math.log(r1 / r0) * effect_scale)
    out: dict[str, np.ndarray] = {}
    for which, rates in (("alt", (r0, r1)), ("null", (r0, r0))):
        ys, cls = [], []
        for arm, rate in zip(design.arms, rates):
            na = sizes[arm]
            if design.outcome == "binary":
                y, cl = _binary_arm(design, arm, rate, na, n_sims, rng, rng.random((n_sims, na)))
            else:
                y, cl = _count_arm(design, arm, rate, na, n_sims, rng)
            ys.append(y)
            cls.append(cl)
        est, se = _analyse(design.outcome, ys, cls, design.exposure)
        ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
        out[f"{which}_estimate"] = np.where(ok, est, 0.0)
        out[f"{which}_std_error"] = np.where(ok, se, 1.0)
        out[f"{which}_converged"] = ok
        out[f"{which}_df"] = np.full(n_sims, np.inf)
    target = r1 - r0 if design.outcome == "binary" else math.log(r1 / r0)
    out["target"] = np.array([target])
    return out
