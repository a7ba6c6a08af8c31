"""Power, sample size and power curves for a :class:`~peerstats.design.TrialDesign`.

``peerstats.power(design, n=...)`` gives the power of the primary contrast analytically (expected
information of the analysis model, Satterthwaite df, non-central t: :mod:`.analytic`) or by
simulation (trials generated from the design and fitted with the same model, in batches, scaled
out with dask: :mod:`.simulate`). ``sample_size`` finds the smallest n reaching a power target,
``power_curve`` evaluates a grid of n or of effects and plots it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from peerstats.design._model import AnalysisModel
from peerstats.design.analytic import analytic_power
from peerstats.design.binary import OutcomeDesign, analytic_power_outcome
from peerstats.design.design import TrialDesign, check_power_target
from peerstats.design.simulate import run_scenarios, summarise
from peerstats.exceptions import SpecError

__all__ = ["power", "sample_size", "power_curve", "PowerResult", "PowerCurve", "SampleSize"]

Method = Literal["analytic", "simulation"]


def _is_outcome(design: Any) -> bool:
    """A binary or count design (issue 16.6; the ``outcome_*`` functions at the end)."""
    return isinstance(design, OutcomeDesign)


def _check_design(design: Any) -> TrialDesign:
    if not isinstance(design, TrialDesign):
        raise SpecError(
            f"design must be a peerstats.TrialDesign (or read one with TrialDesign.from_yaml), "
            f"not {type(design).__name__}"
        )
    return design


def _check_n(design: TrialDesign, n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise SpecError(f"{name}: the number of participants per arm is an integer, not {n!r}")
    n = int(n)
    sizes = design.n_per_arm(n)
    small = {a: k for a, k in sizes.items() if k < 2}
    if small:
        raise SpecError(
            f"{name}: every arm needs at least 2 participants; n={n} gives {sizes} (allowed: n "
            ">= 2 with the allocation ratio keeping each arm >= 2)"
        )
    if design.partially_nested:
        na = sizes[design.group_arm]
        big = max(design.group_sizes)
        if big > na:
            raise SpecError(
                f"groups/size: a delivery group of {big} is larger than the arm "
                f"{design.group_arm!r} ({na} participants at n={n}); allowed: group size <= the "
                "participants of the arm"
            )
    return n


def _check_method(method: Any) -> str:
    if method not in ("analytic", "simulation"):
        raise SpecError(f"method={method!r} is not valid; choose 'analytic' or 'simulation'")
    return method


def _check_sims(n_sims: Any) -> int:
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 1:
        raise SpecError(f"n_sims: a positive integer, not {n_sims!r}")
    return int(n_sims)


# ---------------------------------------------------------------------------------------------
def _html(caption: str, frame: pd.DataFrame) -> str:
    """A caption and a table: the notebook view of the power results."""
    return (
        f"<div><p>{html.escape(caption)}</p>"
        + frame.to_html(index=False, float_format=lambda x: f"{x:.4g}")
        + "</div>"
    )


@dataclass(frozen=True, repr=False, eq=False)
class PowerResult:
    """Power of the primary contrast at one sample size (create with :func:`peerstats.power`).

    Attributes
    ----------
    power : float
        Analytic power, or the share of simulated trials with p < alpha.
    mc_se : float or None
        Monte-Carlo SE of the simulated power (None for analytic).
    std_error : float
        Expected SE of the primary contrast (analytic), or the mean model-based SE over the
        simulated trials.
    df : float
        Degrees of freedom used (analytic), or their mean over the simulated trials.
    type1_error, type1_mc_se, bias, bias_mc_se, coverage, sd_estimate, n_failed : float
        Simulation only: rejection rate under the null (same simulated noise without the
        effect), mean estimate minus the true contrast, CI coverage, empirical SD of the
        estimates, fits that did not converge (excluded).
    """

    design: TrialDesign
    n: int
    n_per_arm: dict
    method: str
    power: float
    effect: float
    std_error: float
    df: float
    alpha: float
    mc_se: float | None = None
    n_sims: int | None = None
    type1_error: float | None = None
    type1_mc_se: float | None = None
    bias: float | None = None
    bias_mc_se: float | None = None
    coverage: float | None = None
    sd_estimate: float | None = None
    n_failed: int | None = None
    seed: int | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def n_total(self) -> int:
        """Participants over all arms."""
        return int(sum(self.n_per_arm.values()))

    def to_frame(self) -> pd.DataFrame:
        """One row: n per arm, totals, power (and simulation summaries)."""
        row: dict[str, Any] = {"n": self.n}
        row.update({f"n_{a}": k for a, k in self.n_per_arm.items()})
        row.update(
            {
                "n_total": self.n_total,
                "method": self.method,
                "effect": self.effect,
                "std_error": self.std_error,
                "df": self.df,
                "power": self.power,
            }
        )
        if self.method == "simulation":
            row.update(
                {
                    "mc_se": self.mc_se,
                    "n_sims": self.n_sims,
                    "type1_error": self.type1_error,
                    "type1_mc_se": self.type1_mc_se,
                    "bias": self.bias,
                    "coverage": self.coverage,
                    "sd_estimate": self.sd_estimate,
                    "n_failed": self.n_failed,
                }
            )
        return pd.DataFrame([row])

    def summary(self) -> str:
        """A plain-text report."""
        arms = ", ".join(f"{a}: {k}" for a, k in self.n_per_arm.items())
        lines = [
            f"Design          {self.design.name} (primary: {self.design.primary})",
            f"Sample size     {arms} (total {self.n_total})",
            f"Method          {self.method}"
            + (f", {self.n_sims} simulated trials" if self.method == "simulation" else ""),
            f"Effect          {self.effect:.4g}; SE {self.std_error:.4g}; df {self.df:.4g}",
            f"Power           {self.power:.4f}"
            + (f" (MC SE {self.mc_se:.4f})" if self.mc_se is not None else "")
            + f" at two-sided alpha {self.alpha:g}",
        ]
        if self.method == "simulation":
            lines += [
                f"Type I error    {self.type1_error:.4f} (MC SE {self.type1_mc_se:.4f})",
                f"Bias            {self.bias:.4g} (MC SE {self.bias_mc_se:.3g}); CI coverage "
                f"{self.coverage:.4f}; SD of estimates {self.sd_estimate:.4g}",
                f"Failed fits     {self.n_failed}",
            ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(f"{self.design.name}: power {self.power:.4f}", self.to_frame())


@dataclass(frozen=True, repr=False, eq=False)
class PowerCurve:
    """Power over a grid of n (or of effects); ``.table`` has one row per point."""

    design: TrialDesign
    table: pd.DataFrame
    over: str  # "n" or "effect"
    method: str

    def to_frame(self) -> pd.DataFrame:
        """The curve (a copy)."""
        return self.table.copy()

    def plot(self, ax=None, *, target: float | None = None, label: str | None = None):
        """Plot power against n per arm (or effect); returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        t = self.table
        x = t[self.over]
        lab = label or self.method
        if "power_analytic" in t:
            ax.plot(x, t["power_analytic"], "-", label="analytic")
        if "power_simulation" in t:
            ax.errorbar(
                x,
                t["power_simulation"],
                yerr=2 * t["mc_se"],
                fmt="o",
                ms=4,
                capsize=2,
                label="simulation (±2 MC SE)",
            )
        elif "power" in t and "power_analytic" not in t:
            ax.plot(x, t["power"], "-o", ms=3, label=lab)
        if target is not None:
            ax.axhline(target, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(
            f"n per arm ({self.design.arms[0]})" if self.over == "n" else "effect at primary"
        )
        ax.set_ylabel("power")
        ax.set_title(f"{self.design.name}: power at {self.design.primary}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return ax

    def summary(self) -> str:
        return self.table.to_string(index=False, float_format=lambda x: f"{x:.4g}")

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda x: f"{x:.4g}")


@dataclass(frozen=True, repr=False, eq=False)
class SampleSize:
    """The smallest n (control arm) reaching the power target (create with
    :func:`peerstats.sample_size`)."""

    design: TrialDesign
    n: int
    n_per_arm: dict
    target: float
    power: float
    n_groups: int | None
    result: PowerResult

    @property
    def n_total(self) -> int:
        return int(sum(self.n_per_arm.values()))

    def summary(self) -> str:
        arms = ", ".join(f"{a}: {k}" for a, k in self.n_per_arm.items())
        g = f"; {self.n_groups} delivery groups" if self.n_groups else ""
        return (
            f"Sample size for power {self.target:g} ({self.design.name}, primary "
            f"{self.design.primary}): {arms} (total {self.n_total}{g}); power {self.power:.4f}"
        )

    def to_frame(self) -> pd.DataFrame:
        return self.result.to_frame().assign(target=self.target, n_groups=self.n_groups)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(self.summary(), self.to_frame())


# ---------------------------------------------------------------------------------------------
def power(
    design: TrialDesign,
    n: int,
    *,
    method: Method = "analytic",
    n_sims: int = 1000,
    seed: int | None = None,
    client=None,
    progress: Callable[[int, int], None] | None = None,
) -> PowerResult:
    """Power of the design's primary contrast with ``n`` participants per arm.

    Parameters
    ----------
    design : TrialDesign
    n : int
        Participants in the control arm (the intervention arm follows ``design.allocation``).
    method : {"analytic", "simulation"}
        ``analytic``: expected information of the analysis model (Lu, Luo & Chen 2008 for the
        MMRM with monotone dropout; the partially nested model with the delivery-group
        compositions enumerated), Satterthwaite df and the non-central t. ``simulation``:
        ``n_sims`` trials generated from the design and fitted by REML with the analysis model
        (batched; the same estimates, SEs and Satterthwaite df as :func:`peerstats.mmrm` /
        :func:`peerstats.lmm`), plus the same trials under the null for the type I error.
    n_sims : int
        Simulated trials (simulation only).
    seed : int, optional
        Root seed; each (scenario, chunk of 100 trials) task gets a ``SeedSequence.spawn``
        child, so the result does not depend on ``client`` or the number of workers.
    client : dask.distributed.Client, optional
        Run the chunks as tasks on this client (BLAS pinned to one thread per task).
    progress : callable, optional
        Called as ``progress(done, total)`` after each chunk.

    Returns
    -------
    PowerResult

    Raises
    ------
    SpecError
        Bad n (fewer than 2 per arm, a delivery group larger than its arm), method or n_sims.

    Notes
    -----
    Analytic power: v = l'(sum_u n_u E[X_u'V_u^-1X_u])^-1 l over unit types u (subjects by
    dropout pattern; delivery groups by their mix of patterns), power = P(|t_df(delta /
    sqrt(v))| > t_{df, 1-alpha/2}). Validated against longpower (Lu, Luo & Chen 2008 tables),
    statsmodels' TTestIndPower and closed forms (tests/design/, tests/reference/power/).
    """
    if getattr(design, "outcome", None) == "time_to_event":  # issue 17
        return design.power(n)
    if _is_outcome(design):
        return outcome_power(
            design, n, method=method, n_sims=n_sims, seed=seed, client=client, progress=progress
        )
    design = _check_design(design)
    n = _check_n(design, n)
    method = _check_method(method)
    t0 = time.perf_counter()
    model = AnalysisModel(design)
    if method == "analytic":
        r = analytic_power(model, [n])
        return PowerResult(
            design=design,
            n=n,
            n_per_arm=design.n_per_arm(n),
            method="analytic",
            power=float(r["power"][0]),
            effect=model.target,
            std_error=float(r["std_error"][0]),
            df=float(r["df"][0]),
            alpha=design.alpha,
            seconds=time.perf_counter() - t0,
        )
    n_sims = _check_sims(n_sims)
    merged, entropy = run_scenarios(
        design, [(n, 1.0)], n_sims=n_sims, seed=seed, client=client, progress=progress
    )
    return _sim_result(
        design, n, model.target, merged[0], n_sims, entropy, time.perf_counter() - t0
    )


def _sim_result(design, n, effect, res, n_sims, seed, seconds) -> PowerResult:
    s = summarise(res, design.alpha)
    return PowerResult(
        design=design,
        n=n,
        n_per_arm=design.n_per_arm(n),
        method="simulation",
        power=s["alt_rate"],
        effect=effect,
        std_error=s["alt_mean_se"],
        df=s["alt_mean_df"],
        alpha=design.alpha,
        mc_se=s["alt_mc_se"],
        n_sims=n_sims,
        type1_error=s["null_rate"],
        type1_mc_se=s["null_mc_se"],
        bias=s["alt_bias"],
        bias_mc_se=s["alt_bias_mc_se"],
        coverage=s["alt_coverage"],
        sd_estimate=s["alt_sd_estimate"],
        n_failed=s["alt_failed"],
        seed=seed,
        seconds=seconds,
        extra=s,
    )


def _curve_over_effect(design: TrialDesign, model: AnalysisModel, n, effect):
    """Analytic power at one n over effect values (the design's effects scaled)."""
    if not isinstance(n, int | np.integer):
        raise SpecError("n: a power curve over effect needs one n")
    n0 = _check_n(design, n)
    if model.target == 0:
        raise SpecError("effect: the design's effect at the primary contrast is 0; cannot scale it")
    vals = [float(e) for e in effect]
    scales = [v / model.target for v in vals]
    rows = []
    for v, sc in zip(vals, scales):
        r = analytic_power(model, [n0], effect_scale=sc)
        rows.append(
            {
                "effect": v,
                "n": n0,
                "std_error": r["std_error"][0],
                "df": r["df"][0],
                "power_analytic": r["power"][0],
            }
        )
    return pd.DataFrame(rows), [(n0, sc) for sc in scales], "effect"


def _curve_over_n(design: TrialDesign, model: AnalysisModel, n):
    """Analytic power over a grid of n."""
    ns = [n] if isinstance(n, int | np.integer) else list(n)
    if not ns:
        raise SpecError("n: give at least one sample size")
    ns = [_check_n(design, k) for k in ns]
    r = analytic_power(model, ns)
    table = pd.DataFrame(
        {
            "n": ns,
            "n_total": r["n_total"].astype(int),
            "std_error": r["std_error"],
            "df": r["df"],
            "power_analytic": r["power"],
        }
    )
    return table, [(k, 1.0) for k in ns], "n"


def _add_simulation(table: pd.DataFrame, design, scen, *, n_sims, seed, client, progress) -> None:
    """The simulated power of every grid point (scenarios of the scale-out), in place."""
    n_sims = _check_sims(n_sims)
    merged, _ = run_scenarios(
        design, scen, n_sims=n_sims, seed=seed, client=client, progress=progress
    )
    sums = [summarise(m, design.alpha) for m in merged]
    table["power_simulation"] = [s["alt_rate"] for s in sums]
    table["mc_se"] = [s["alt_mc_se"] for s in sums]
    table["type1_error"] = [s["null_rate"] for s in sums]
    table["bias"] = [s["alt_bias"] for s in sums]
    table["coverage"] = [s["alt_coverage"] for s in sums]
    table["n_failed"] = [s["alt_failed"] for s in sums]


def power_curve(
    design: TrialDesign,
    n: int | Sequence[int],
    *,
    effect: Sequence[float] | None = None,
    method: Method = "analytic",
    n_sims: int = 1000,
    seed: int | None = None,
    client=None,
    progress: Callable[[int, int], None] | None = None,
) -> PowerCurve:
    """Power over a grid of ``n`` (a sequence), or over ``effect`` values of the primary
    contrast at one ``n`` (the design's effects scaled proportionally).

    With ``method="simulation"`` the table holds the analytic power too (``power_analytic``)
    beside the simulated one (``power_simulation``, ``mc_se``, ``type1_error``, ...), and every
    grid point is a scenario of the scale-out (see :func:`power`).
    """
    if _is_outcome(design):
        if effect is not None:
            raise SpecError("effect: power curves over effect are for continuous designs")
        ns = [n] if isinstance(n, int | np.integer) else list(n)
        return outcome_power_curve(
            design, ns, method=method, n_sims=n_sims, seed=seed, client=client, progress=progress
        )
    design = _check_design(design)
    method = _check_method(method)
    model = AnalysisModel(design)
    if effect is not None:
        table, scen, over = _curve_over_effect(design, model, n, effect)
    else:
        table, scen, over = _curve_over_n(design, model, n)
    if method == "simulation":
        _add_simulation(
            table, design, scen, n_sims=n_sims, seed=seed, client=client, progress=progress
        )
    return PowerCurve(design=design, table=table, over=over, method=method)


def sample_size(
    design: TrialDesign,
    power: float = 0.8,
    *,
    n_min: int = 2,
    n_max: int = 100_000,
) -> SampleSize:
    """Smallest n (control arm) whose analytic power reaches ``power``.

    Respects the allocation ratio and, in a partially nested design, whole delivery groups (the
    group-delivered arm is a whole number of groups).

    Raises
    ------
    SpecError
        ``power`` outside (alpha, 1); the target not reached by ``n_max`` (the message gives the
        largest n tried and the power it reached).
    """
    if getattr(design, "outcome", None) == "time_to_event":  # issue 17
        return design.sample_size(power)
    if _is_outcome(design):
        target = check_power_target(power, design.alpha, field_name="power")
        return outcome_sample_size(design, target, n_min, n_max)
    design = _check_design(design)
    target = check_power_target(power, design.alpha, field_name="power")
    k = _SampleSearch(design, target, n_max).smallest(n_min)
    res = power_fn(design, k)
    ng = (
        len(design.groups_of(design.n_per_arm(k)[design.group_arm]))
        if design.partially_nested
        else None
    )
    return SampleSize(
        design=design,
        n=k,
        n_per_arm=design.n_per_arm(k),
        target=target,
        power=res.power,
        n_groups=ng,
        result=res,
    )


class _SampleSearch:
    """The search of :func:`sample_size` over n: valid n (every arm >= 2, whole delivery
    groups), doubling until the target is reached, bisection, then the next valid n."""

    def __init__(self, design: TrialDesign, target: float, n_max: int) -> None:
        self.design, self.target, self.n_max = design, target, n_max
        self.model = AnalysisModel(design)

    def holds_groups(self, k: int) -> bool:
        d = self.design
        sizes = d.n_per_arm(k)
        return min(sizes.values()) >= 2 and not (
            d.partially_nested and max(d.group_sizes) > sizes[d.group_arm]
        )

    def valid(self, k: int) -> bool:
        if not self.holds_groups(k):
            return False
        return self.design.whole_groups(k) if self.design.partially_nested else True

    def pw(self, k: int) -> float:
        return float(analytic_power(self.model, [k])["power"][0])

    def next_valid(self, k: int) -> int:
        while not self.valid(k) and k <= self.n_max:
            k += 1
        return k

    def smallest(self, n_min: int) -> int:
        lo = self.next_valid(max(2, int(n_min)))
        if lo > self.n_max:
            raise SpecError(f"n_max: no valid sample size in [{n_min}, {self.n_max}]")
        if self.pw(lo) >= self.target:
            return lo
        lo, hi = self._bracket(lo)
        return self._bisect(lo, hi)

    def _bracket(self, lo: int) -> tuple[int, int]:
        """Double n until the target is reached: (lo fails, hi reaches)."""
        hi, n_max, target = lo, self.n_max, self.target
        while True:
            nxt = self.next_valid(min(hi * 2, n_max))
            if nxt > n_max:
                nxt = hi
            if self.pw(nxt) >= target:
                return lo, nxt
            if nxt >= n_max or nxt == hi:
                reached = self.pw(nxt)
                raise SpecError(
                    f"power: the target {target:g} is not reachable up to n_max={n_max}: the "
                    f"largest n tried ({nxt} per arm) gives power {reached:.4f}; allowed range "
                    f"of the target here: ({self.design.alpha:g}, {reached:.4f}]"
                )
            lo, hi = nxt, nxt

    def _bisect(self, lo: int, hi: int) -> int:
        # bisection over n (lo fails, hi reaches); n that cannot hold a whole delivery group
        # count as failing; then the next n with whole groups that reaches the target
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if not self.holds_groups(mid) or self.pw(mid) < self.target:
                lo = mid
            else:
                hi = mid
        k = self.next_valid(hi)
        while k <= self.n_max and self.pw(k) < self.target:
            k = self.next_valid(k + 1)
        if k > self.n_max:
            raise SpecError(
                f"power: the target {self.target:g} is not reachable with whole delivery groups "
                f"up to n_max={self.n_max}"
            )
        return k


power_fn = power


# ---- binary and count designs (issue 16.6) ------------------------------------------------------
def _outcome_check_n(design: OutcomeDesign, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise SpecError(f"n: the number of participants per arm is an integer, not {n!r}")
    sizes = design.n_per_arm(int(n))
    if min(sizes.values()) < 2:
        raise SpecError(f"n: every arm needs at least 2 participants; n={n} gives {sizes}")
    return int(n)


def _outcome_analytic(design: OutcomeDesign, n: int, seconds: float = 0.0):
    r = analytic_power_outcome(design, n)
    return PowerResult(
        design=design,
        n=n,
        n_per_arm=design.n_per_arm(n),
        method="analytic",
        power=r["power"],
        effect=design.target,
        std_error=r["std_error"],
        df=float("inf"),
        alpha=design.alpha,
        seconds=seconds,
        extra={
            "design_effect": dict(zip(design.arms, r["design_effect"])),
            "formula": _outcome_formula(design),
        },
    )


def _outcome_formula(design: OutcomeDesign) -> str:
    if design.outcome == "count":
        return f"Zhu & Lakkis (2014) approach {design.approach}, negative binomial rates"
    return (
        "two proportions, arcsine (Cohen's h)"
        if design.test == "arcsine"
        else "two proportions, pooled null variance (Fleiss; R power.prop.test)"
    )


def outcome_power(design, n, *, method, n_sims, seed, client, progress):
    """See :func:`peerstats.power`."""
    n = _outcome_check_n(design, n)
    method = _check_method(method)
    t0 = time.perf_counter()
    if method == "analytic":
        return _outcome_analytic(design, n, time.perf_counter() - t0)
    n_sims = _check_sims(n_sims)
    merged, entropy = run_scenarios(
        design, [(n, 1.0)], n_sims=n_sims, seed=seed, client=client, progress=progress
    )
    return _sim_result(
        design, n, design.target, merged[0], n_sims, entropy, time.perf_counter() - t0
    )


def outcome_sample_size(design, target: float, n_min: int, n_max: int):
    """Smallest n (controls) whose analytic power reaches ``target`` (power rises with n)."""

    def pw(k: int) -> float:
        return analytic_power_outcome(design, k)["power"]

    lo = max(2, int(n_min))
    while min(design.n_per_arm(lo).values()) < 2:
        lo += 1
    if pw(n_max) < target:
        raise SpecError(
            f"power: the target {target:g} is not reachable up to n_max={n_max} (power "
            f"{pw(n_max):.4f} there)"
        )
    hi = n_max
    if pw(lo) >= target:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pw(mid) >= target else (mid, hi)
    res = _outcome_analytic(design, hi)
    ng = sum(len(design.groups_of(design.n_per_arm(hi)[a])) for a in design.grouped_arms)
    return SampleSize(
        design=design,
        n=hi,
        n_per_arm=design.n_per_arm(hi),
        target=target,
        power=res.power,
        n_groups=ng or None,
        result=res,
    )


def outcome_power_curve(design, ns, *, method, n_sims, seed, client, progress):
    """Power over a grid of n (analytic, and simulated with ``method="simulation"``)."""
    method = _check_method(method)
    ns = [_outcome_check_n(design, k) for k in ns]
    if not ns:
        raise SpecError("n: give at least one sample size")
    rows = [analytic_power_outcome(design, k) for k in ns]
    table = pd.DataFrame(
        {
            "n": ns,
            "n_total": [sum(design.n_per_arm(k).values()) for k in ns],
            "std_error": [r["std_error"] for r in rows],
            "power_analytic": [r["power"] for r in rows],
        }
    )
    if method == "simulation":
        merged, _ = run_scenarios(
            design,
            [(k, 1.0) for k in ns],
            n_sims=_check_sims(n_sims),
            seed=seed,
            client=client,
            progress=progress,
        )
        sums = [summarise(m, design.alpha) for m in merged]
        for col, key in (
            ("power_simulation", "alt_rate"),
            ("mc_se", "alt_mc_se"),
            ("type1_error", "null_rate"),
            ("bias", "alt_bias"),
            ("coverage", "alt_coverage"),
            ("n_failed", "alt_failed"),
        ):
            table[col] = [s[key] for s in sums]
    return PowerCurve(design=design, table=table, over="n", method=method)
