"""Designs with a binary or count primary outcome: analytic power and its checks.

``TrialDesign(outcome="binary", control_rate=0.38, effect={"odds_ratio": 0.66})`` and
``TrialDesign(outcome="count", control_rate=1.5, effect={"rate_ratio": 0.6}, dispersion=0.8,
exposure=1.0)`` build an :class:`OutcomeDesign`, which :func:`peerstats.power`,
:func:`peerstats.sample_size` and :func:`peerstats.power_curve` accept as they accept a
continuous design.

Analytic power (closed forms; scipy only, nothing to fit):

- binary: the two-proportion z test, variance under H0 from the pooled proportion and under H1
  from the two risks (Fleiss, Levin & Paik 2003, eq. 4.14; R ``power.prop.test``):
  power = Phi((|p1 - p0| - z_{1-a/2} sqrt(V0)) / sqrt(V1)), V1 = DE_0 p0 q0 / n0 + DE_1 p1 q1 /
  n1, V0 the same with pbar = (n0 p0 + n1 p1) / (n0 + n1) in both arms; or
  ``test="arcsine"``: Cohen's h = 2 asin sqrt(p1) - 2 asin sqrt(p0), variance DE_0/n0 + DE_1/n1
  (statsmodels ``NormalIndPower`` with ``proportion_effectsize``);
- count: the Wald test of log(lambda1 / lambda0) for negative binomial rates (Zhu & Lakkis 2014,
  Statist. Med. 33:376-387): V1 = DE_0 (1/(t lambda0) + k) + DE_1 (1/(t lambda1) + k) / r and
  V0 by their approach 1, 2 or 3 (3, the default, uses the rates restricted by the null ML);
  power = Phi((sqrt(n0) |log RR| - z_{1-a/2} sqrt(V0)) / sqrt(V1)), k the NB2 dispersion
  (Var = mu + k mu^2; 0 = Poisson), t the mean exposure, r = n1 / n0.

Delivery groups (``groups={"arm": "peer", "size": 10, "icc": 0.05, "scale": "proportion"}``;
``arm: "both"`` for a cluster trial) inflate the variance of that arm by the design effect
DE = 1 + (m_w - 1) ICC, m_w = sum m^2 / sum m over the groups (equal sizes: m; Eldridge, Ashby &
Kerry 2006). The ICC is on the proportion scale (``scale="proportion"``, the default), or on
the latent logistic scale (``scale="latent"``: sigma_b^2 / (sigma_b^2 + pi^2 / 3)), converted
to the proportion scale at each arm's risk by Gauss-Hermite integration. For counts the ICC is
the share of the count variance between groups, so DE applies to the variance as above.

Validated against R ``power.prop.test`` (with n / DE for a fully clustered trial) and
``MKmisc::power.nb.test`` (tests/reference/power/binary_count_reference.json) and statsmodels
``NormalIndPower`` (tests/design/test_binary_power.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats
from scipy.special import expit

from peerstats.design._checks import check_groups_keys
from peerstats.design._checks import finite_number as _num
from peerstats.design._checks import spec_error as _err
from peerstats.design._text import design_repr, groups_line

__all__ = ["OutcomeDesign", "analytic_power_outcome", "latent_to_proportion_icc"]

_BINARY_EFFECTS = ("odds_ratio", "risk_ratio", "risk_difference")
_COUNT_EFFECTS = ("rate_ratio",)




def latent_to_proportion_icc(icc_latent: float, p: float) -> float:
    """The proportion-scale ICC of a logistic random-intercept model with latent ICC
    ``icc_latent`` and marginal risk ``p``: Var_b(p_j) / (p (1 - p)), the intercept chosen so
    that E_b[p_j] = p (Gauss-Hermite, 60 nodes)."""
    if icc_latent <= 0:
        return 0.0
    s = math.sqrt(icc_latent / (1 - icc_latent) * math.pi**2 / 3)
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()

    def mean_p(a: float) -> float:
        return float(w @ (expit(a + s * z)))

    a = optimize.brentq(lambda a: mean_p(a) - p, -50, 50, xtol=1e-14)
    pj = expit(a + s * z)
    return float((w @ pj**2 - p**2) / (p * (1 - p)))


@dataclass(frozen=True, eq=False)
class OutcomeDesign:
    """A planned two-arm trial with a binary or count primary outcome (build it with
    ``TrialDesign(outcome="binary" | "count", ...)``; see the module docstring)."""

    outcome: str
    control_rate: float
    effect: Mapping[str, float]
    arms: tuple[str, ...] = ("control", "intervention")
    allocation: float | None = None
    dispersion: float = 0.0
    exposure: float = 1.0
    groups: Mapping[str, Any] | None = None
    alpha: float = 0.05
    test: str = "pooled"
    approach: int = 3
    name: str = "design"
    description: str = ""
    primary: str = "end of follow-up"
    rates: tuple[float, float] = field(init=False)
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.outcome not in ("binary", "count"):
            raise _err("outcome", f"{self.outcome!r} is not valid; choose continuous, binary or count")
        arms = tuple(str(a) for a in self.arms)
        if len(arms) != 2 or arms[0] == arms[1]:
            raise _err("arms", f"[control, intervention] (two distinct names), not {self.arms!r}")
        s(self, "arms", arms)
        alpha = _num(self.alpha, "alpha")
        if not 0 < alpha < 1:
            raise _err("alpha", f"must be in (0, 1), got {alpha}")
        s(self, "alpha", alpha)
        ratio = 1.0 if self.allocation is None else _num(self.allocation, "allocation")
        if not 0.05 <= ratio <= 20:
            raise _err("allocation", f"the intervention:control ratio must be in [0.05, 20], got {ratio}")
        s(self, "ratio", ratio)
        s(self, "rates", self._rates())
        self._check_count_options()
        self._check_groups()

    # ---- checks ----------------------------------------------------------------------------
    def _rates(self) -> tuple[float, float]:
        r0 = _num(self.control_rate, "control_rate")
        allowed = _BINARY_EFFECTS if self.outcome == "binary" else _COUNT_EFFECTS
        eff = self.effect
        if not isinstance(eff, Mapping) or len(eff) != 1 or next(iter(eff)) not in allowed:
            raise _err("effect", f"one of {{{', '.join(allowed)}: value}}, not {eff!r}")
        kind, val = next(iter(eff.items()))
        val = _num(val, f"effect/{kind}")
        if self.outcome == "count":
            if r0 <= 0 or val <= 0:
                raise _err("control_rate", "the control rate and the rate ratio must be > 0")
            return r0, r0 * val
        if not 0 < r0 < 1:
            raise _err("control_rate", f"a risk in (0, 1), got {r0}")
        if kind == "odds_ratio":
            if val <= 0:
                raise _err("effect/odds_ratio", f"must be > 0, got {val}")
            o = r0 / (1 - r0) * val
            r1 = o / (1 + o)
        else:
            r1 = r0 * val if kind == "risk_ratio" else r0 + val
        if not 0 < r1 < 1:
            raise _err(f"effect/{kind}", f"gives an intervention risk {r1:g} outside (0, 1)")
        return r0, r1

    def _check_count_options(self) -> None:
        k = _num(self.dispersion, "dispersion")
        t = _num(self.exposure, "exposure")
        if k < 0:
            raise _err("dispersion", f"the NB2 dispersion k (Var = mu + k mu^2) is >= 0, got {k}")
        if t <= 0:
            raise _err("exposure", f"the mean follow-up (exposure) must be > 0, got {t}")
        if self.test not in ("pooled", "arcsine"):
            raise _err("test", f"{self.test!r} is not valid; choose 'pooled' or 'arcsine'")
        if self.approach not in (1, 2, 3):
            raise _err("approach", f"Zhu & Lakkis approach 1, 2 or 3, not {self.approach!r}")

    def _check_groups(self) -> None:
        g = self.groups
        if g is None:
            return
        check_groups_keys(g, ("arm", "size", "icc", "scale"), "arm, size, icc, scale")
        arm = str(g.get("arm", self.arms[1]))
        if arm not in (*self.arms, "both"):
            raise _err("groups/arm", f"{arm!r} is not an arm; arms are {list(self.arms)} or 'both'")
        if g.get("scale", "proportion") not in ("proportion", "latent"):
            raise _err("groups/scale", "the ICC scale is 'proportion' or 'latent'")
        if g.get("scale") == "latent" and self.outcome == "count":
            raise _err("groups/scale", "a latent-scale ICC is defined for binary outcomes only")
        icc = _num(g.get("icc"), "groups/icc")
        if not 0 <= icc < 1:
            raise _err("groups/icc", f"must be in [0, 1), got {icc}")
        for m in self.group_sizes:
            if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
                raise _err("groups/size", f"group sizes are positive integers, got {m!r}")

    # ---- derived -----------------------------------------------------------------------------
    @property
    def group_sizes(self) -> tuple[int, ...]:
        if self.groups is None:
            return ()
        size = self.groups.get("size")
        return tuple(size) if isinstance(size, Sequence) and not isinstance(size, str) else (size,)

    @property
    def grouped_arms(self) -> tuple[str, ...]:
        if self.groups is None:
            return ()
        arm = str(self.groups.get("arm", self.arms[1]))
        return self.arms if arm == "both" else (arm,)

    @property
    def partially_nested(self) -> bool:
        return len(self.grouped_arms) == 1

    def n_per_arm(self, n: int) -> dict[str, int]:
        """Participants per arm: ``n`` in control, ``round(allocation * n)`` in intervention."""
        return {self.arms[0]: int(n), self.arms[1]: int(round(self.ratio * n))}

    def icc_proportion(self, arm: str) -> float:
        """The arm's ICC on the proportion (or count) scale."""
        if arm not in self.grouped_arms:
            return 0.0
        icc = float(self.groups["icc"])
        if self.groups.get("scale", "proportion") == "latent":
            return latent_to_proportion_icc(icc, self.rates[self.arms.index(arm)])
        return icc

    def design_effect(self, arm: str, n_arm: int) -> float:
        """1 + (m_w - 1) ICC over the arm's delivery groups (1 without groups)."""
        if arm not in self.grouped_arms:
            return 1.0
        m = np.array(self.groups_of(n_arm), dtype=float)
        mw = float((m**2).sum() / m.sum())
        return 1.0 + (mw - 1.0) * self.icc_proportion(arm)

    def groups_of(self, n_arm: int) -> list[int]:
        """Group sizes for ``n_arm`` participants (sizes in turn, the last the remainder)."""
        out, left, i = [], int(n_arm), 0
        sizes = self.group_sizes
        while left > 0:
            m = int(sizes[i % len(sizes)])
            out.append(min(m, left))
            left -= m
            i += 1
        return out

    @property
    def target(self) -> float:
        """The effect on the analysis scale: risk difference (binary) or log rate ratio."""
        r0, r1 = self.rates
        return r1 - r0 if self.outcome == "binary" else math.log(r1 / r0)

    def replace(self, **changes: Any) -> OutcomeDesign:
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__ if self.__dataclass_fields__[k].init}
        kw.update(changes)
        return OutcomeDesign(**kw)

    def summary(self) -> str:
        r0, r1 = self.rates
        what = "risk" if self.outcome == "binary" else "rate per unit exposure"
        lines = [
            f"Design            {self.name} ({self.outcome} outcome)",
            f"Arms              {', '.join(self.arms)} (allocation 1:{self.ratio:g})",
            f"Control {what:<10}{r0:.4g}; intervention {r1:.4g} ({self.effect})",
            f"Alpha             {self.alpha:g} (two-sided)",
        ]
        if self.outcome == "count":
            lines.append(f"Dispersion k      {self.dispersion:g}; mean exposure {self.exposure:g}")
        if self.groups is not None:
            scale = self.groups.get("scale", "proportion")
            icc = float(self.groups["icc"])
            lines.append(
                groups_line(", ".join(self.grouped_arms), self.group_sizes, icc, f"{scale} scale")
            )
        return "\n".join(lines)

    __repr__ = design_repr


# ---- analytic power -------------------------------------------------------------------------
def _binary_power(d: OutcomeDesign, n0: int, n1: int, de0: float, de1: float, scale: float):
    p0, p1 = d.rates
    if scale != 1.0:
        p1 = p0 + (p1 - p0) * scale
    z = stats.norm.ppf(1 - d.alpha / 2)
    if d.test == "arcsine":
        h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
        se = math.sqrt(de0 / n0 + de1 / n1)
        delta = abs(h) / se
        return stats.norm.cdf(delta - z) + stats.norm.cdf(-delta - z), se
    v1 = de0 * p0 * (1 - p0) / n0 + de1 * p1 * (1 - p1) / n1
    pbar = (n0 * p0 + n1 * p1) / (n0 + n1)
    v0 = pbar * (1 - pbar) * (de0 / n0 + de1 / n1)
    return stats.norm.cdf((abs(p1 - p0) - z * math.sqrt(v0)) / math.sqrt(v1)), math.sqrt(v1)


def _count_power(d: OutcomeDesign, n0: int, n1: int, de0: float, de1: float, scale: float):
    l0, l1 = d.rates
    if scale != 1.0:
        l1 = l0 * math.exp(math.log(l1 / l0) * scale)
    t, k, r = d.exposure, d.dispersion, n1 / n0
    v1 = de0 * (1 / (t * l0) + k) + de1 * (1 / (t * l1) + k) / r
    kk = de0 * k + de1 * k / r
    if d.approach == 1:
        v0 = (de0 + de1 / r) / (t * l0) + kk
    elif d.approach == 2:
        v0 = v1
    else:  # the rates restricted by the null ML: (l0 + r l1) / (1 + r) in both arms
        lbar = (l0 + r * l1) / (1 + r)
        v0 = (de0 + de1 / r) / (t * lbar) + kk
    z = stats.norm.ppf(1 - d.alpha / 2)
    lrr = abs(math.log(l1 / l0))
    return stats.norm.cdf((math.sqrt(n0) * lrr - z * math.sqrt(v0)) / math.sqrt(v1)), math.sqrt(
        v1 / n0
    )


def analytic_power_outcome(d: OutcomeDesign, n: int, effect_scale: float = 1.0) -> dict:
    """Power and the SE of the effect (risk difference or log rate ratio) with ``n`` controls."""
    sizes = d.n_per_arm(n)
    n0, n1 = sizes[d.arms[0]], sizes[d.arms[1]]
    de0, de1 = d.design_effect(d.arms[0], n0), d.design_effect(d.arms[1], n1)
    fn = _binary_power if d.outcome == "binary" else _count_power
    pw, se = fn(d, n0, n1, de0, de1, effect_scale)
    return {"power": float(pw), "std_error": float(se), "design_effect": (de0, de1)}
