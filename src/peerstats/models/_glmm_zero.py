"""Zero-inflated and hurdle Poisson / NB2 likelihoods without random effects (internal).

Parameters ``phi = (beta, gamma, extra)``: count part ``mu = exp(X beta + offset)``, zero part
``pi = expit(X_zero gamma)`` and, for the NB2, ``log(theta)``.

* zero-inflated (Lambert 1992; pscl ``zeroinfl``, glmmTMB ``ziformula``): ``pi`` is the
  probability of a structural zero, ``P(0) = pi + (1 - pi) f(0)``,
  ``P(y) = (1 - pi) f(y)`` for ``y > 0``.
* hurdle (Mullahy 1986): ``pi`` is the probability of a zero, ``P(0) = pi``,
  ``P(y) = (1 - pi) f(y) / (1 - f(0))`` for ``y > 0``. This is glmmTMB's convention
  (``ziformula`` with a truncated family); pscl's ``hurdle`` models ``P(y > 0)``, so its zero
  coefficients are ours with the sign changed.

The likelihood is maximised with the same optimiser as the GLMM (finite-difference gradient;
the Hessian by second differences gives the Wald standard errors).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from peerstats.models._glmm_family import nb2_logpmf

__all__ = ["ZeroObjective"]


def _count_logpmf(family, y, eta, extra):
    """log f(y) and log f(0) of the count distribution."""
    if family.name == "poisson":
        mu = np.exp(eta)
        return y * eta - mu - special.gammaln(y + 1.0), -mu
    th = float(np.exp(extra[0]))
    lth = np.logaddexp(np.log(th), eta)
    lf = nb2_logpmf(y, eta, th, lth)
    return lf, th * (np.log(th) - lth)


class ZeroObjective:
    """Minus the log-likelihood of a zero-inflated or hurdle count model."""

    def __init__(self, problem, Xz: np.ndarray, kind: str):
        self.pr = problem
        self.Xz = Xz
        self.kind = kind
        self.pz = Xz.shape[1]

    def split(self, phi):
        p = self.pr.p
        return phi[:p], phi[p : p + self.pz], phi[p + self.pz :]

    def value(self, phi) -> float:
        return -float(self.loglik_obs(phi).sum())

    def loglik_obs(self, phi) -> np.ndarray:
        pr = self.pr
        beta, gamma, extra = self.split(phi)
        eta = pr.X @ beta + pr.offset
        ez = self.Xz @ gamma
        lpi = -np.logaddexp(0.0, -ez)  # log pi
        l1pi = -np.logaddexp(0.0, ez)  # log (1 - pi)
        lf, lf0 = _count_logpmf(pr.family, pr.y, eta, extra)
        zero = pr.y == 0
        if self.kind == "zero_inflation":
            ll = np.where(zero, np.logaddexp(lpi, l1pi + lf0), l1pi + lf)
        else:
            log1mf0 = np.log(-np.expm1(np.minimum(lf0, -1e-300)))
            ll = np.where(zero, lpi, l1pi + lf - log1mf0)
        return pr.pw * ll

    def grad(self, phi):
        return None

    def mean(self, phi, X, offset, Xz) -> np.ndarray:
        """E(y): (1 - pi) mu for zero inflation, (1 - pi) mu / (1 - f(0)) for a hurdle."""
        beta, gamma, extra = self.split(phi)
        eta = X @ beta + offset
        pi = special.expit(Xz @ gamma)
        mu = np.exp(eta)
        if self.kind == "zero_inflation":
            return (1.0 - pi) * mu
        _, lf0 = _count_logpmf(self.pr.family, np.zeros_like(eta), eta, extra)
        return (1.0 - pi) * mu / (-np.expm1(lf0))


def _lf0_derivs(family, eta, extra):
    """log f(0; eta) and its first two eta-derivatives (Poisson or NB2, log link)."""
    mu = np.exp(eta)
    if family.name == "poisson":
        return -mu, -mu, -mu
    th = float(np.exp(extra[0]))
    lth = np.logaddexp(np.log(th), eta)
    a = th * (np.log(th) - lth)
    d1 = -th * mu / (th + mu)
    d2 = -(th**2) * mu / (th + mu) ** 2
    return a, d1, d2


class ZeroFamily:
    """A zero-inflated or hurdle count distribution seen as a function of the count part's
    linear predictor, so that the Laplace engine can integrate random effects of the count part
    (the zero part has fixed effects only). Extra parameters: ``(gamma, [log theta])``.
    Derivatives in eta are analytic; the Laplace weight is the observed information (exact
    Laplace, as glmmTMB)."""

    def __init__(self, base, Xz: np.ndarray, kind: str):
        self.base = base
        self.Xz = np.asarray(Xz, dtype=float)
        self.kind = kind
        self.pz = self.Xz.shape[1]
        self.name = base.name
        self.link_name = base.link_name

    @property
    def link(self):
        return self.base.link

    @property
    def n_extra(self) -> int:
        return self.pz + self.base.n_extra

    def _pi(self, extra):
        ez = self.Xz @ extra[: self.pz]
        return -np.logaddexp(0.0, -ez), -np.logaddexp(0.0, ez)

    def derivs(self, y, eta, extra, trials, pw, *, need_w: bool = True):
        ex = extra[self.pz :]
        lpi, l1pi = self._pi(extra)
        lf, s_b, h_b, _ = self.base.derivs(y, eta, ex, trials, np.ones_like(eta))
        a, a1, a2 = _lf0_derivs(self.base, eta, ex)
        zero = y == 0
        if self.kind == "zero_inflation":
            ll0 = np.logaddexp(lpi, l1pi + a)
            q = np.exp(l1pi + a - ll0)
            ll = np.where(zero, ll0, l1pi + lf)
            s = np.where(zero, q * a1, s_b)
            h = np.where(zero, -(q * a2 + q * (1 - q) * a1 * a1), h_b)
        else:
            r = 1.0 / np.expm1(-np.minimum(a, -1e-300))  # f0 / (1 - f0)
            log1mf0 = np.log(-np.expm1(np.minimum(a, -1e-300)))
            ll = np.where(zero, lpi, l1pi + lf - log1mf0)
            s = np.where(zero, 0.0, s_b + r * a1)
            h = np.where(zero, 0.0, h_b - (r * (a2 + a1 * a1) + r * r * a1 * a1))
        return pw * ll, pw * s, pw * h, pw * h

    def loglik(self, y, eta, extra, trials, pw):
        return self.derivs(y, eta, extra, trials, pw)[0]

    def mean(self, eta, Xz, extra):
        """E(y) given eta (count part) and the zero design Xz."""
        ex = extra[self.pz :]
        pi = special.expit(Xz @ extra[: self.pz])
        mu = np.exp(eta)
        if self.kind == "zero_inflation":
            return (1.0 - pi) * mu
        a, _, _ = _lf0_derivs(self.base, eta, ex)
        return (1.0 - pi) * mu / (-np.expm1(a))
