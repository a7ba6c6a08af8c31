"""Power and sample size for a time-to-event primary outcome (issue 17, item 5).

``TrialDesign(outcome="time_to_event", ...)`` returns a :class:`SurvivalDesign`; ``power`` and
``sample_size`` dispatch to it. Analytic, for the log-rank test / Cox hazard ratio:

* events needed, Schoenfeld (1983): ``D = (z_{1-a/2} + z_{1-b})^2 / (p (1 - p) log(HR)^2)``,
  p the proportion allocated to the intervention; power ``Phi(sqrt(D p (1-p)) |log HR| - z)``;
* Freedman (1982): ``D = (z_{1-a/2} + z_{1-b})^2 (1 + k HR)^2 / (k (1 - HR)^2)``, k the
  intervention:control ratio; power ``Phi(sqrt(k D) |1 - HR| / (1 + k HR) - z)``;
* participants: ``n = D / P(event)``, with exponential survival (hazard ``log 2 / median`` in
  the control arm, ``HR`` times it in the intervention arm), uniform accrual over ``accrual``,
  further ``follow_up`` after the last participant, and exponential loss to follow-up (hazard
  ``dropout_hazard``, or from ``dropout`` = proportion lost by ``dropout_time``):
  ``P = l / (l + e) * (1 - (exp(-(l + e) f) - exp(-(l + e)(a + f))) / ((l + e) a))``
  (Collett 2015, section 10.2, with the competing loss).

Validated against R powerSurvEpi 0.1.5 (``numDEpi.default``, ``powerEpi.default``,
``ssizeCT.default``, ``powerCT.default``) and numerical integration in R:
tests/reference/power_survival/. Simulation for frailty and competing-risk designs is not built
yet (issue 17: left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from peerstats.exceptions import SpecError

__all__ = ["SurvivalDesign", "SurvivalPower"]

Method = Literal["schoenfeld", "freedman"]


def _positive(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{name}: must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise SpecError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return v


@dataclass(frozen=True)
class SurvivalPower:
    """Result of :meth:`SurvivalDesign.power` / ``sample_size``."""

    n: int
    events: float
    power: float
    method: str
    p_event: tuple[float, float]  # control, intervention

    def __repr__(self) -> str:
        return (f"SurvivalPower(n={self.n}, expected events={self.events:.1f}, "
                f"power={self.power:.4f}, method={self.method!r})")


@dataclass(frozen=True)
class SurvivalDesign:
    """A two-arm trial with a time-to-event primary outcome (exponential planning model).

    Parameters
    ----------
    hazard_ratio : float
        Intervention vs control (< 1: the intervention delays events).
    control_median : float, optional
        Median time to event in the control arm (give this or ``control_event_rate``).
    control_event_rate : float, optional
        Proportion of the control arm with an event by ``rate_time``.
    rate_time : float
        Time at which ``control_event_rate`` holds.
    accrual, follow_up : float
        Recruitment period (uniform) and follow-up after the last participant (same unit).
    dropout : float
        Proportion lost to follow-up by ``dropout_time`` (exponential), or 0.
    dropout_time : float
    allocation : float
        Proportion allocated to the intervention (0.5: 1:1).
    alpha : float
        Two-sided significance level.
    method : {"schoenfeld", "freedman"}
    arms : pair of str
        Labels ``(control, intervention)``.
    """

    hazard_ratio: float
    control_median: float | None = None
    control_event_rate: float | None = None
    rate_time: float = 12.0
    accrual: float = 12.0
    follow_up: float = 12.0
    dropout: float = 0.0
    dropout_time: float = 12.0
    allocation: float = 0.5
    alpha: float = 0.05
    method: Method = "schoenfeld"
    arms: tuple[str, str] = ("control", "intervention")
    name: str = "design"
    outcome: str = "time_to_event"

    def __post_init__(self) -> None:
        hr = _positive("hazard_ratio", self.hazard_ratio)
        if hr == 1:
            raise SpecError("hazard_ratio: 1 means no effect; power is alpha at any n")
        if (self.control_median is None) == (self.control_event_rate is None):
            raise SpecError("give one of control_median or control_event_rate")
        if self.control_event_rate is not None and not 0 < self.control_event_rate < 1:
            raise SpecError(f"control_event_rate: must be in (0, 1), not "
                            f"{self.control_event_rate!r}")
        for name in ("rate_time", "accrual", "dropout_time"):
            _positive(name, getattr(self, name))
        _positive("follow_up", self.follow_up, allow_zero=True)
        if not 0 <= self.dropout < 1:
            raise SpecError(f"dropout: must be in [0, 1), not {self.dropout!r}")
        if not 0 < self.allocation < 1:
            raise SpecError(f"allocation: must be in (0, 1), not {self.allocation!r}")
        if not 0 < self.alpha < 1:
            raise SpecError(f"alpha: must be in (0, 1), not {self.alpha!r}")
        if self.method not in ("schoenfeld", "freedman"):
            raise SpecError(f"method: {self.method!r} is not one of ['schoenfeld', 'freedman']")

    # -- planning model ------------------------------------------------------------------
    @property
    def control_hazard(self) -> float:
        """Exponential hazard of the control arm."""
        if self.control_median is not None:
            return math.log(2) / _positive("control_median", self.control_median)
        return -math.log(1 - self.control_event_rate) / self.rate_time

    @property
    def dropout_hazard(self) -> float:
        """Exponential hazard of loss to follow-up."""
        return -math.log(1 - self.dropout) / self.dropout_time

    def p_event(self, hazard: float) -> float:
        """Probability of an observed event (uniform accrual, exponential loss)."""
        a, f, e = self.accrual, self.follow_up, self.dropout_hazard
        r = hazard + e
        return hazard / r * (1 - (math.exp(-r * f) - math.exp(-r * (a + f))) / (r * a))

    @property
    def p_events(self) -> tuple[float, float]:
        """P(event) in the control and intervention arms."""
        lam = self.control_hazard
        return self.p_event(lam), self.p_event(lam * self.hazard_ratio)

    # -- events and power -----------------------------------------------------------------
    def events_required(self, power: float = 0.8) -> float:
        """Events needed for ``power`` (unrounded)."""
        z = stats.norm.ppf(1 - self.alpha / 2) + stats.norm.ppf(power)
        hr, p = self.hazard_ratio, self.allocation
        if self.method == "schoenfeld":
            return z**2 / (p * (1 - p) * math.log(hr) ** 2)
        k = p / (1 - p)
        return z**2 * (1 + k * hr) ** 2 / (k * (1 - hr) ** 2)

    def power_from_events(self, events: float) -> float:
        """Power of the two-sided test with ``events`` events."""
        za = stats.norm.ppf(1 - self.alpha / 2)
        hr, p = self.hazard_ratio, self.allocation
        if self.method == "schoenfeld":
            t = math.sqrt(events * p * (1 - p)) * abs(math.log(hr))
        else:
            k = p / (1 - p)
            t = math.sqrt(k * events) * abs(1 - hr) / (1 + k * hr)
        return float(stats.norm.cdf(t - za))

    def expected_events(self, n: int) -> float:
        """Expected events among ``n`` participants."""
        pc, pi = self.p_events
        return n * ((1 - self.allocation) * pc + self.allocation * pi)

    def power(self, n: int) -> SurvivalPower:
        """Power with ``n`` participants in total."""
        d = self.expected_events(n)
        return SurvivalPower(int(n), d, self.power_from_events(d), self.method, self.p_events)

    def sample_size(self, power: float = 0.8) -> SurvivalPower:
        """Smallest total n whose expected events reach ``power``."""
        if not 0 < power < 1:
            raise SpecError(f"power: must be in (0, 1), not {power!r}")
        pc, pi = self.p_events
        per = (1 - self.allocation) * pc + self.allocation * pi
        n = math.ceil(self.events_required(power) / per - 1e-9)
        return self.power(n)
