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

__all__ = ["ZeroObjective"]


def _count_logpmf(family, y, eta, extra):
    """log f(y) and log f(0) of the count distribution."""
    if family.name == "poisson":
        mu = np.exp(eta)
        return y * eta - mu - special.gammaln(y + 1.0), -mu
    th = float(np.exp(extra[0]))
    lth = np.logaddexp(np.log(th), eta)
    lf = (
        special.gammaln(y + th)
        - special.gammaln(th)
        - special.gammaln(y + 1.0)
        + th * np.log(th)
        + y * eta
        - (y + th) * lth
    )
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
