"""The design of a planned trial: :class:`TrialDesign` (and its YAML form).

A design says what the trial will look like before any data exist: visits, arms and allocation,
the outcome's SD and correlation across visits, the effect per visit, monotone dropout per arm,
how the baseline enters the analysis, and (for group-delivered interventions) the delivery
groups of the partially nested design. :mod:`peerstats.design.power` turns it into power and
sample size, analytically or by simulation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from peerstats.design._checks import check_groups_keys
from peerstats.design._checks import finite_number as _number
from peerstats.design._checks import spec_error as _err
from peerstats.design._text import design_repr, groups_line
from peerstats.exceptions import SpecError

__all__ = ["TrialDesign", "read_design", "design_spec_schema"]

BaselineRole = Literal["covariate", "response", "constrained"]
DfName = Literal["satterthwaite", "residual", "asymptotic"]
_CORR_STRUCTURES = ("cs", "ar1", "exchangeable")


@dataclass(frozen=True, eq=False)
class TrialDesign:
    """A planned two-arm (or single-arm) trial with repeated measures.

    Parameters
    ----------
    visits : sequence of str
        Visit names in time order; the first is the baseline (unless ``baseline=None``).
    arms : sequence of str
        ``[control, intervention]``, or one arm for a single-arm study (then ``effect`` is the
        mean change from baseline and the test is the within-arm change at ``primary``).
    sd : float, sequence or mapping
        Outcome SD: one value, one per visit, or ``{visit: sd}`` for every visit.
    correlation : float, pair or matrix
        A number (compound symmetry), a ``(structure, parameter)`` pair (``("cs", 0.5)``,
        ``("ar1", 0.6)``: correlation ``0.6 ** |i - j|`` between visits i and j), or a full
        correlation matrix over ``visits``.
    effect : float, sequence or mapping
        Intervention minus control mean difference per visit in outcome units (``{visit:
        diff}``; unlisted visits 0; a single number means that difference at every visit after
        the baseline). Single-arm: the mean change from baseline.
    dropout : mapping, optional
        Cumulative proportion missing per visit (monotone dropout, missing completely at
        random): ``{"post": 0.15, "fu3": 0.25}`` for both arms, ``{"usual": {...}, "peer":
        {...}}`` per arm, or a Weibull curve as powerlmm, ``{"weibull": {"proportion": 0.3,
        "rate": 1}}`` (retention ``(1 - proportion) ** ((t / t_max) ** rate)`` over the visit
        index t), optionally per arm. Unlisted visits carry the previous visit's value (the
        first visit 0). ``None``: no dropout.
    primary : str
        The visit whose contrast is tested, or ``"average"`` (the mean contrast over the
        visits after the baseline; every visit with ``baseline=None``).
    baseline : {"covariate", "response", "constrained"} or None
        ``"covariate"``: the first visit is a covariate of an MMRM on the later visits (a
        baseline slope per later visit, i.e. the exact conditional model), as the bundled
        analyses; ``"response"``: every visit is a response with unconstrained arm means (Lu,
        Luo & Chen 2008); ``"constrained"``: cLDA, a common baseline mean; ``None``: no baseline
        visit, every visit is a follow-up.
    allocation : float, optional
        Intervention : control ratio (``n`` counts the control arm; the intervention arm has
        ``round(allocation * n)``). Default 1.
    groups : mapping, optional
        Partially nested design: ``{"arm": "peer", "size": 10, "icc": 0.05}``; ``size`` may be
        a list (sizes used in turn), and ``variance`` (the delivery-group variance) may replace
        ``icc``. The ICC is the share of the post-baseline variance at ``primary`` that lies
        between delivery groups (the total SD stays ``sd``); the group effect is the same at
        every post-baseline visit and absent at baseline. The analysis model then has a random
        group intercept in that arm only and arm-specific residual covariances.
    alpha : float
        Two-sided significance level.
    df : {"satterthwaite", "residual", "asymptotic"}
        Degrees of freedom of the t test (``asymptotic``: normal).
    name, description : str
        Labels for tables and files.
    outcome : {"continuous", "binary", "count"}
        ``"binary"`` / ``"count"`` build a :class:`peerstats.design.binary.OutcomeDesign`
        instead (``control_rate``, ``effect={"odds_ratio": ...}``, ``dispersion``,
        ``exposure``, ``groups``; see that module).
    """

    visits: tuple[str, ...]
    arms: tuple[str, ...]
    sd: Any
    correlation: Any
    effect: Any
    dropout: Any = None
    primary: str | None = None
    baseline: BaselineRole | None = "covariate"
    allocation: float | None = None
    groups: Mapping[str, Any] | None = None
    alpha: float = 0.05
    df: DfName = "satterthwaite"
    name: str = "design"
    description: str = ""
    outcome: str = "continuous"
    # derived (filled in __post_init__)
    sds: np.ndarray = field(init=False, repr=False)
    corr: np.ndarray = field(init=False, repr=False)
    sigma: np.ndarray = field(init=False, repr=False)
    effects: np.ndarray = field(init=False, repr=False)
    retention: dict = field(init=False, repr=False)
    ratio: float = field(init=False, repr=False)
    group_arm: str | None = field(init=False, repr=False)
    group_sizes: tuple[int, ...] = field(init=False, repr=False)
    group_variance: float = field(init=False, repr=False)
    icc: float = field(init=False, repr=False)

    def __new__(cls, *args: Any, outcome: str = "continuous", **kwargs: Any):
        # issue 16.6: a binary or count primary outcome is a different design (closed-form
        # power, GLM/GEE simulation); TrialDesign(outcome=...) is the one entry point
        if outcome == "time_to_event":  # issue 17: design.survival.SurvivalDesign
            from peerstats.design.survival import SurvivalDesign

            return SurvivalDesign(*args, **kwargs)
        if outcome != "continuous":
            from peerstats.design.binary import OutcomeDesign

            return OutcomeDesign(*args, outcome=outcome, **kwargs)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        s = object.__setattr__
        self._check_layout()
        self._check_primary()
        self._check_covariance()
        self._check_effect()
        # ---- allocation --------------------------------------------------------------------
        ratio = 1.0 if self.allocation is None else _number(self.allocation, "allocation")
        if not 0.05 <= ratio <= 20:
            raise _err(
                "allocation", f"the intervention:control ratio must be in [0.05, 20], got {ratio}"
            )
        s(self, "ratio", ratio)

        # ---- dropout -----------------------------------------------------------------------
        s(self, "retention", self._retention(self.dropout))

        # ---- groups ------------------------------------------------------------------------
        self._groups()

    def _check_layout(self) -> None:
        """Outcome, visits, arms, baseline handling, df and alpha."""
        s = object.__setattr__
        if self.outcome != "continuous":  # pragma: no cover - __new__ dispatches these
            raise _err(
                "outcome", f"{self.outcome!r} is not valid; choose continuous, binary or count"
            )
        visits = self.visits
        if isinstance(visits, str) or not isinstance(visits, Sequence) or len(visits) < 1:
            raise _err("visits", f"a list of visit names, not {visits!r}")
        visits = tuple(str(v) for v in visits)
        if len(set(visits)) != len(visits):
            raise _err("visits", f"names must be unique, got {list(visits)}")
        s(self, "visits", visits)
        T = len(visits)
        arms = self.arms
        if isinstance(arms, str) or not isinstance(arms, Sequence) or len(arms) not in (1, 2):
            raise _err("arms", f"[control, intervention] or one arm, not {arms!r}")
        arms = tuple(str(a) for a in arms)
        if len(set(arms)) != len(arms):
            raise _err("arms", f"names must be unique, got {list(arms)}")
        s(self, "arms", arms)
        if self.baseline not in ("covariate", "response", "constrained", None):
            raise _err(
                "baseline",
                f"{self.baseline!r} is not valid; choose 'covariate', 'response', 'constrained' "
                "or None",
            )
        if len(arms) == 1 and self.baseline in ("covariate", "constrained"):
            # a single-arm study compares each visit with the baseline: baseline is a response
            s(self, "baseline", "response")
        if self.baseline is not None and T < 2:
            raise _err("visits", "a design with a baseline needs at least two visits")
        if self.df not in ("satterthwaite", "residual", "asymptotic"):
            raise _err(
                "df", f"{self.df!r} is not valid; choose satterthwaite, residual, asymptotic"
            )
        alpha = _number(self.alpha, "alpha")
        if not 0 < alpha < 1:
            raise _err("alpha", f"must be in (0, 1), got {alpha}")
        s(self, "alpha", alpha)

    def _check_primary(self) -> None:
        """The primary visit (the last post-baseline visit by default) or ``"average"``."""
        s = object.__setattr__
        post = self.post_visits
        primary = self.primary
        if primary is None:
            primary = post[-1]
        primary = str(primary)
        if primary != "average" and primary not in post:
            raise _err(
                "primary",
                f"{primary!r} is not a visit after the baseline; choose one of {list(post)} or "
                "'average'",
            )
        s(self, "primary", primary)

    def _check_covariance(self) -> None:
        """SDs and correlation: the covariance across visits, positive definite."""
        s = object.__setattr__
        sds = self._per_visit(self.sd, "sd", default=None)
        if np.any(sds <= 0):
            raise _err("sd", f"every SD must be positive, got {sds.tolist()}")
        s(self, "sds", sds)
        corr = self._correlation(self.correlation)
        s(self, "corr", corr)
        sigma = np.outer(sds, sds) * corr
        ev = np.linalg.eigvalsh(sigma)
        if ev[0] <= 1e-10 * ev[-1]:
            raise _err(
                "correlation",
                f"the covariance across visits is not positive definite (smallest eigenvalue "
                f"{ev[0]:.3g}); compound symmetry needs -1/(T-1) < rho < 1, AR(1) -1 < rho < 1",
            )
        s(self, "sigma", sigma)

    def _check_effect(self) -> None:
        """The effect per visit (0 at baseline)."""
        s = object.__setattr__
        visits, post = self.visits, self.post_visits
        eff = self.effect
        if isinstance(eff, int | float | np.integer | np.floating) and not isinstance(eff, bool):
            val = _number(eff, "effect")
            effects = np.array([0.0 if v not in post else val for v in visits])
        else:
            effects = self._per_visit(eff, "effect", default=0.0)
        if self.baseline is not None and effects[0] != 0:
            raise _err(
                "effect",
                f"the effect at baseline ({visits[0]!r}) must be 0 (randomised arms); got "
                f"{effects[0]}",
            )
        s(self, "effects", effects)

    # ------------------------------------------------------------------------------------
    @property
    def post_visits(self) -> tuple[str, ...]:
        """Visits after the baseline (every visit with ``baseline=None``)."""
        return self.visits if self.baseline is None else self.visits[1:]

    @property
    def analysis_visits(self) -> tuple[str, ...]:
        """The visits that are responses of the analysis model."""
        return self.visits[1:] if self.baseline == "covariate" else self.visits

    @property
    def single_arm(self) -> bool:
        return len(self.arms) == 1

    @property
    def partially_nested(self) -> bool:
        return self.group_arm is not None

    def n_per_arm(self, n: int) -> dict[str, int]:
        """Participants per arm for ``n`` (the control arm; the intervention arm follows the
        allocation ratio)."""
        if self.single_arm:
            return {self.arms[0]: int(n)}
        return {self.arms[0]: int(n), self.arms[1]: int(round(self.ratio * n))}

    def groups_of(self, n_arm: int) -> list[int]:
        """Delivery-group sizes for ``n_arm`` participants of the group-delivered arm (sizes in
        turn, the last group holding the remainder)."""
        out: list[int] = []
        left = int(n_arm)
        i = 0
        while left > 0:
            m = self.group_sizes[i % len(self.group_sizes)]
            out.append(min(m, left))
            left -= m
            i += 1
        return out

    def whole_groups(self, n: int) -> bool:
        """True when the group-delivered arm of ``n`` fills whole groups."""
        if not self.partially_nested:
            return True
        sizes = self.groups_of(self.n_per_arm(n)[self.group_arm])
        return not sizes or sizes[-1] == self.group_sizes[(len(sizes) - 1) % len(self.group_sizes)]

    def with_effect(self, effect: Any) -> TrialDesign:
        """A copy with another ``effect`` (e.g. 0 for the null hypothesis)."""
        return self.replace(effect=effect)

    def replace(self, **changes: Any) -> TrialDesign:
        """A copy with some parameters changed (checked again)."""
        kw = {k: getattr(self, k) for k in _INIT_FIELDS}
        kw.update(changes)
        return TrialDesign(**kw)

    def to_dict(self) -> dict:
        """The design as a plain dict (the YAML form)."""
        out: dict[str, Any] = {
            "name": self.name,
            "visits": list(self.visits),
            "arms": list(self.arms),
            "sd": [float(v) for v in self.sds],
            "correlation": self.corr.tolist(),
            "effect": {v: float(e) for v, e in zip(self.visits, self.effects)},
            "primary": self.primary,
            "baseline": self.baseline,
            "alpha": self.alpha,
            "df": self.df,
        }
        if self.description:
            out["description"] = self.description
        if self.allocation is not None:
            out["allocation"] = self.ratio
        if self.dropout is not None:
            out["dropout"] = copy.deepcopy(_plain(self.dropout))
        if self.groups is not None:
            out["groups"] = copy.deepcopy(_plain(self.groups))
        return out

    def summary(self) -> str:
        """A plain-text description of the design."""
        lines = [
            f"Design            {self.name}"
            + (f": {self.description}" if self.description else ""),
            f"Arms              {', '.join(self.arms)}"
            + ("" if self.single_arm else f" (allocation 1:{self.ratio:g})"),
            f"Visits            {', '.join(self.visits)} (baseline: {self.baseline})",
            f"SD                {', '.join(f'{v:g}' for v in self.sds)}",
            "Effect            "
            + ", ".join(f"{v}: {e:g}" for v, e in zip(self.visits, self.effects)),
            f"Primary           {self.primary}; alpha {self.alpha:g}, df {self.df}",
        ]
        for arm, r in self.retention.items():
            lines.append(f"Retention {arm:<8}" + ", ".join(f"{x:.3g}" for x in r))
        if self.partially_nested:
            note = f"group variance {self.group_variance:.4g}"
            lines.append(groups_line(self.group_arm, self.group_sizes, self.icc, note))
        return "\n".join(lines)

    __repr__ = design_repr

    # ------------------------------------------------------------------------------------
    def _per_visit(self, value: Any, name: str, default: float | None) -> np.ndarray:
        T = len(self.visits)
        if isinstance(value, Mapping):
            unknown = [str(k) for k in value if str(k) not in self.visits]
            if unknown:
                raise _err(name, f"{unknown} are not visits; visits are {list(self.visits)}")
            vals = {str(k): _number(v, f"{name}/{k}") for k, v in value.items()}
            if default is None:
                miss = [v for v in self.visits if v not in vals]
                if miss:
                    raise _err(name, f"give a value for every visit; missing {miss}")
            return np.array([vals.get(v, default) for v in self.visits], dtype=float)
        if isinstance(value, str) or value is None:
            raise _err(name, f"a number, a list over visits or a mapping, not {value!r}")
        if isinstance(value, Sequence) or isinstance(value, np.ndarray):
            vals = [_number(v, name) for v in value]
            if len(vals) != T:
                raise _err(
                    name, f"needs {T} values (one per visit {list(self.visits)}), got {len(vals)}"
                )
            return np.array(vals, dtype=float)
        return np.full(T, _number(value, name))

    def _correlation(self, value: Any) -> np.ndarray:
        T = len(self.visits)
        lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
        if isinstance(value, Mapping):
            value = (value.get("structure"), value.get("parameter"))
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool
        ):
            value = ("cs", value)
        arr = np.asarray(value, dtype=object)
        if arr.ndim == 1 and len(arr) == 2 and isinstance(arr[0], str):
            structure = str(arr[0]).lower()
            if structure not in _CORR_STRUCTURES:
                raise _err(
                    "correlation",
                    f"structure {arr[0]!r} is not known; choose one of ['cs', 'ar1'] or give a "
                    "full matrix",
                )
            rho = _number(arr[1], "correlation")
            if not -1 < rho < 1:
                raise _err("correlation", f"the correlation must be in (-1, 1), got {rho}")
            if structure == "ar1":
                return rho**lag
            return np.where(lag == 0, 1.0, rho)
        try:
            R = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise _err(
                "correlation", f"a number, a (structure, parameter) pair or a matrix, not {value!r}"
            ) from None
        if R.shape != (T, T):
            raise _err("correlation", f"a full matrix must be {T} x {T} (visits), got {R.shape}")
        if not np.all(np.isfinite(R)) or not np.allclose(R, R.T):
            raise _err("correlation", "the matrix must be finite and symmetric")
        if not np.allclose(np.diag(R), 1.0):
            raise _err("correlation", "the matrix must have ones on the diagonal")
        if np.any(np.abs(R) > 1):
            raise _err("correlation", "correlations must be in [-1, 1]")
        return R

    def _retention(self, dropout: Any) -> dict[str, np.ndarray]:
        T = len(self.visits)
        if dropout is None:
            return {a: np.ones(T) for a in self.arms}
        if not isinstance(dropout, Mapping):
            raise _err("dropout", f"a mapping (per visit, per arm, or weibull), not {dropout!r}")
        keys = [str(k) for k in dropout]
        if (
            set(keys)
            and set(keys) <= set(self.arms)
            and len(self.arms) > 1
            or (self.single_arm and keys == [self.arms[0]])
        ):
            miss = [a for a in self.arms if a not in keys]
            if miss:
                raise _err("dropout", f"per-arm dropout needs every arm; missing {miss}")
            return {a: self._one_retention(dropout[a], f"dropout/{a}") for a in self.arms}
        r = self._one_retention(dropout, "dropout")
        return {a: r.copy() for a in self.arms}

    def _one_retention(self, d: Any, name: str) -> np.ndarray:
        T = len(self.visits)
        if not isinstance(d, Mapping):
            raise _err(name, f"a mapping {{visit: cumulative proportion}} or weibull, not {d!r}")
        if "weibull" in d:
            w = d["weibull"]
            if not isinstance(w, Mapping) or set(w) - {"proportion", "rate"}:
                raise _err(f"{name}/weibull", "needs {proportion: p, rate: r}")
            p = _number(w.get("proportion"), f"{name}/weibull/proportion")
            rate = _number(w.get("rate", 1.0), f"{name}/weibull/rate")
            if not 0 <= p < 1:
                raise _err(f"{name}/weibull/proportion", f"must be in [0, 1), got {p}")
            if rate <= 0:
                raise _err(f"{name}/weibull/rate", f"must be positive, got {rate}")
            t = np.arange(T, dtype=float) / max(T - 1, 1)
            return (1 - p) ** (t**rate)
        unknown = [str(k) for k in d if str(k) not in self.visits]
        if unknown:
            raise _err(
                name,
                f"{unknown} are not visits (or arms); visits are {list(self.visits)}, arms "
                f"{list(self.arms)}",
            )
        vals = {str(k): _number(v, f"{name}/{k}") for k, v in d.items()}
        cum = np.zeros(T)
        prev = 0.0
        for i, v in enumerate(self.visits):
            x = vals.get(v, prev)
            if not 0 <= x < 1:
                raise _err(f"{name}/{v}", f"cumulative dropout must be in [0, 1), got {x}")
            if x < prev - 1e-12:
                raise _err(
                    f"{name}/{v}",
                    f"cumulative dropout must not decrease (monotone dropout): {x} after {prev} "
                    "at the previous visit; allowed range [{:g}, 1)".format(prev),
                )
            cum[i] = x
            prev = x
        if self.baseline == "covariate" and cum[0] > 0:
            raise _err(
                f"{name}/{self.visits[0]}",
                "with baseline='covariate' the baseline is observed for everyone; dropout there "
                "must be 0",
            )
        return 1.0 - cum

    def _groups(self) -> None:
        s = object.__setattr__
        g = self.groups
        if g is None:
            s(self, "group_arm", None)
            s(self, "group_sizes", ())
            s(self, "group_variance", 0.0)
            s(self, "icc", 0.0)
            return
        check_groups_keys(g, ("arm", "size", "icc", "variance"), "arm, size, icc")
        arm = self._group_arm(g)
        out = _group_sizes(g.get("size"))
        var, icc = self._group_variance(g)
        s(self, "group_arm", arm)
        s(self, "group_sizes", tuple(out))
        s(self, "group_variance", float(var))
        s(self, "icc", float(icc))
        ind = self.individual_sigma(arm)
        ev = np.linalg.eigvalsh(ind)
        if ev[0] <= 1e-10 * ev[-1]:
            raise _err(
                "groups/icc",
                f"ICC {icc:.3g} leaves a participant-level covariance that is not positive "
                "definite (the group variance exceeds a visit's variance or the covariance "
                "between post-baseline visits allows less); use a smaller ICC",
            )

    def _group_arm(self, g: Mapping) -> str:
        """The group-delivered arm (the intervention arm by default; a group-delivered control
        arm is allowed, e.g. group-based usual care)."""
        arm = str(g.get("arm", self.arms[0] if self.single_arm else self.arms[-1]))
        if arm not in self.arms:
            raise _err("groups/arm", f"{arm!r} is not an arm; arms are {list(self.arms)}")
        return arm

    def _group_variance(self, g: Mapping) -> tuple[float, float]:
        """(group variance, ICC) from exactly one of them, the ICC relative to the outcome
        variance at the primary visit (the mean over post-baseline visits for ``average``)."""
        if ("icc" in g) == ("variance" in g):
            raise _err("groups", "give exactly one of icc (in [0, 1)) or variance (>= 0)")
        ref = (
            float(self.sds[self.visits.index(self.primary)]) ** 2
            if self.primary != "average"
            else float(np.mean([self.sds[self.visits.index(v)] ** 2 for v in self.post_visits]))
        )
        if "icc" in g:
            icc = _number(g["icc"], "groups/icc")
            if not 0 <= icc < 1:
                raise _err("groups/icc", f"must be in [0, 1), got {icc}")
            return icc * ref, icc
        var = _number(g["variance"], "groups/variance")
        if var < 0:
            raise _err("groups/variance", f"must be >= 0, got {var}")
        icc = var / ref
        if icc >= 1:
            raise _err(
                "groups/variance",
                f"must be below the outcome variance at the primary visit ({ref:g}); ICC "
                f"would be {icc:.3g}, allowed range [0, 1)",
            )
        return var, icc

    def group_mask(self) -> np.ndarray:
        """(T,) 1 at the visits that carry the delivery-group effect (after baseline)."""
        T = len(self.visits)
        m = np.ones(T)
        if self.baseline is not None:
            m[0] = 0.0
        return m

    def individual_sigma(self, arm: str) -> np.ndarray:
        """Participant-level covariance across visits in ``arm`` (total minus group part)."""
        if arm != self.group_arm:
            return self.sigma
        e = self.group_mask()
        return self.sigma - self.group_variance * np.outer(e, e)

    # ---- YAML --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialDesign:
        """Build a design from its dict (YAML) form; see ``data_schemas/design-spec.schema.json``."""
        design, _ = _from_raw(dict(raw), where="design")
        return design

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrialDesign:
        """Read a design YAML file (see :func:`read_design` for the options it may carry)."""
        return read_design(path)[0]


_INIT_FIELDS = (
    "visits",
    "arms",
    "sd",
    "correlation",
    "effect",
    "dropout",
    "primary",
    "baseline",
    "allocation",
    "groups",
    "alpha",
    "df",
    "name",
    "description",
)


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


@cache
def design_spec_schema() -> dict:
    """Return the design-spec JSON Schema (``data_schemas/design-spec.schema.json``)."""
    text = (resources.files("peerstats") / "data_schemas" / "design-spec.schema.json").read_text(
        encoding="utf-8"
    )
    return json.loads(text)


def _from_raw(raw: dict, where: str) -> tuple[TrialDesign, dict]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(design_spec_schema())
    problems = []
    for err in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        loc = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        msg = err.message
        if err.validator == "additionalProperties":
            msg += f"; allowed keys are {sorted(err.schema.get('properties', {}))}"
        problems.append(f"{loc}: {msg}")
    from peerstats._identifiers import spec_identifier_problems
    from peerstats._yaml import non_finite_fields

    problems += non_finite_fields(raw) + spec_identifier_problems(raw)  # issue 24.1, 24.7
    if problems:
        raise SpecError(
            f"{len(problems)} problem(s) in the design spec {where}:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    kw = {k: raw[k] for k in _INIT_FIELDS if k in raw}
    corr = kw.get("correlation")
    if isinstance(corr, Mapping):
        kw["correlation"] = (corr["structure"], corr["parameter"])
    try:
        design = TrialDesign(**kw)
    except SpecError as exc:
        raise SpecError(f"design spec {where}: {exc}") from None
    options = {k: raw[k] for k in ("power", "n", "simulation") if k in raw}
    if "power" in options:
        check_power_target(options["power"], design.alpha, field_name="power")
    return design, options


def check_power_target(power: Any, alpha: float, field_name: str = "power") -> float:
    """A power target must lie in (alpha, 1)."""
    p = _number(power, field_name)
    if not alpha < p < 1:
        raise _err(field_name, f"the power target must be in (alpha, 1) = ({alpha:g}, 1), got {p}")
    return p


def read_design(path: str | Path) -> tuple[TrialDesign, dict]:
    """Read a design YAML file: the design and its options (``power`` target, ``n`` grid,
    ``simulation`` settings).

    Raises
    ------
    SpecError
        Missing file, invalid YAML, schema violations or a bad value (the message names the
        field and the allowed range).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"design file not found: {p}")
    from peerstats._yaml import YAMLRefusedError, load_yaml

    try:
        raw = load_yaml(p.read_text(encoding="utf-8"))  # alias expansion budget (issue 13.5)
    except (yaml.YAMLError, UnicodeDecodeError, YAMLRefusedError) as exc:
        raise SpecError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{p}: a design spec is a mapping (visits, arms, sd, correlation, ...)")
    raw.setdefault("name", p.stem)
    return _from_raw(raw, where=str(p))


def _group_sizes(size) -> list[int]:
    """Delivery-group sizes: one positive integer or a list of them."""
    sizes = size if isinstance(size, Sequence) and not isinstance(size, str) else [size]
    out = []
    for m in sizes:
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
            raise _err("groups/size", f"group sizes are positive integers, got {m!r}")
        out.append(int(m))
    if not out:
        raise _err("groups/size", "give at least one group size")
    return out
