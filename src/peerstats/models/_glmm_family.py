"""Conditional response distributions of the GLMM: log-likelihood and its eta-derivatives.

Each family gives, per observation and as functions of the linear predictor eta,

* ``ll``  the conditional log-likelihood (with every constant, as R's ``logLik``);
* ``s``   d ll / d eta;
* ``h``   -d^2 ll / d eta^2 (the observed information, used for Newton steps to the mode);
* ``w``   the weight in the Laplace determinant log|I + Lambda' Z' W Z Lambda|.

``w`` follows the reference each family is validated against: glmer's penalised IRLS uses the
Fisher (expected) weight ``(dmu/deta)^2 / V(mu)`` (binomial, Poisson; equal to ``h`` for the
canonical links), glmmTMB's exact Laplace uses the observed ``h`` (negative binomial).
The negative binomial is NB2 with ``Var(y) = mu + mu^2 / theta`` and carries one extra
parameter, ``log(theta)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["Family", "make_family", "FAMILIES", "LINKS"]

FAMILIES = ("binomial", "poisson", "negative_binomial")
LINKS = {
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "negative_binomial": ("log",),
}


def _sm_link(name: str):
    from statsmodels.genmod.families import links

    return {
        "logit": links.Logit(),
        "probit": links.Probit(),
        "cloglog": links.CLogLog(),
        "log": links.Log(),
    }[name]


def _binom_parts(link: str, eta: np.ndarray):
    """log mu, log(1 - mu), dmu/deta, d2mu/deta2 computed stably for each binomial link."""
    if link == "logit":
        lm = -np.logaddexp(0.0, -eta)
        l1m = -np.logaddexp(0.0, eta)
        mu = np.exp(lm)
        d1 = mu * np.exp(l1m)
        d2 = d1 * (1.0 - 2.0 * mu)
    elif link == "probit":
        lm = special.log_ndtr(eta)
        l1m = special.log_ndtr(-eta)
        d1 = np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
        d2 = -eta * d1
    else:  # cloglog: mu = 1 - exp(-exp(eta))
        e = np.exp(np.minimum(eta, 700.0))
        l1m = -e
        lm = np.log(-np.expm1(-e))
        d1 = e * np.exp(-e)
        d2 = d1 * (1.0 - e)
    return lm, l1m, d1, d2


@dataclass(frozen=True)
class Family:
    """A conditional distribution with its link (see the module docstring)."""

    name: str
    link_name: str

    @property
    def link(self):
        """The statsmodels link instance (``inverse``, ``inverse_deriv``)."""
        return _sm_link(self.link_name)

    @property
    def n_extra(self) -> int:
        return 1 if self.name == "negative_binomial" else 0

    def mean(self, eta: np.ndarray) -> np.ndarray:
        return np.asarray(self.link.inverse(eta), dtype=float)

    def derivs(self, y, eta, extra, trials, pw, *, need_w: bool = True):
        """(ll, s, h, w) per observation."""
        if self.name == "binomial":
            return self._binomial(y, eta, trials, pw, need_w)
        if self.name == "poisson":
            mu = np.exp(eta)
            ll = pw * (y * eta - mu - special.gammaln(y + 1.0))
            s = pw * (y - mu)
            h = pw * mu
            return ll, s, h, h
        return self._nb(y, eta, extra, pw)

    def _binomial(self, y, eta, n, pw, need_w):
        k = y
        if self.link_name == "logit":
            sp = np.logaddexp(0.0, eta)  # log(1 + e^eta)
            mu = np.exp(eta - sp)
            ll = k * eta - n * sp
            s = k - n * mu
            h = n * mu * (1.0 - mu)
            w = h
        else:
            lm, l1m, d1, d2 = _binom_parts(self.link_name, eta)
            mu = np.exp(lm)
            omu = np.exp(l1m)
            ll = k * lm + (n - k) * l1m
            a = k / mu - (n - k) / omu
            s = a * d1
            da = -k / mu**2 - (n - k) / omu**2
            h = -(da * d1 * d1 + a * d2)
            w = n * d1 * d1 / (mu * omu)
        if np.all(n == 1.0):  # 0/1 outcomes: log C(1, k) = 0
            return pw * ll, pw * s, pw * h, pw * w
        const = special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
        return pw * (ll + const), pw * s, pw * h, pw * w

    def _nb(self, y, eta, extra, pw):
        th = float(np.exp(extra[0]))
        mu = np.exp(eta)
        lth = np.logaddexp(np.log(th), eta)  # log(theta + mu)
        ll = nb2_logpmf(y, eta, th, lth)
        r = th / (th + mu)
        s = r * (y - mu)
        h = r * mu * (y + th) / (th + mu)
        return pw * ll, pw * s, pw * h, pw * h

    def loglik(self, y, eta, extra, trials, pw) -> np.ndarray:
        return self.derivs(y, eta, extra, trials, pw, need_w=False)[0]


def nb2_logpmf(y, eta, th, lth):
    """log f(y) of the NB2 with mean exp(eta), size ``th`` and ``lth = log(th + mu)``."""
    return (
        special.gammaln(y + th)
        - special.gammaln(th)
        - special.gammaln(y + 1.0)
        + th * np.log(th)
        + y * eta
        - (y + th) * lth
    )


def make_family(family: str, link: str | None) -> Family:
    from peerstats.exceptions import ModelSpecificationError

    if not isinstance(family, str) or family.lower() not in FAMILIES:
        raise ModelSpecificationError(
            f"family={family!r} is not valid; choose one of {list(FAMILIES)}"
        )
    family = family.lower()
    links = LINKS[family]
    link = links[0] if link is None else link
    if not isinstance(link, str) or link.lower() not in links:
        raise ModelSpecificationError(
            f"link={link!r} is not available for family={family!r}; choose one of {list(links)}"
        )
    return Family(family, link.lower())
