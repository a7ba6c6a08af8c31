"""power / sample_size / power_curve for binary and count designs (dispatched from
:mod:`peerstats.design.power`; the formulas are in :mod:`peerstats.design.binary`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from peerstats.design.binary import OutcomeDesign, analytic_power_outcome
from peerstats.exceptions import SpecError

__all__ = ["outcome_power", "outcome_sample_size", "outcome_power_curve"]


def check_n(design: OutcomeDesign, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise SpecError(f"n: the number of participants per arm is an integer, not {n!r}")
    sizes = design.n_per_arm(int(n))
    if min(sizes.values()) < 2:
        raise SpecError(f"n: every arm needs at least 2 participants; n={n} gives {sizes}")
    return int(n)


def _analytic(design: OutcomeDesign, n: int, seconds: float = 0.0):
    from peerstats.design.power import PowerResult

    r = analytic_power_outcome(design, n)
    return PowerResult(
        design=design, n=n, n_per_arm=design.n_per_arm(n), method="analytic",
        power=r["power"], effect=design.target, std_error=r["std_error"], df=float("inf"),
        alpha=design.alpha, seconds=seconds,
        extra={"design_effect": dict(zip(design.arms, r["design_effect"])),
               "formula": _formula(design)},
    )


def _formula(design: OutcomeDesign) -> str:
    if design.outcome == "count":
        return f"Zhu & Lakkis (2014) approach {design.approach}, negative binomial rates"
    return ("two proportions, arcsine (Cohen's h)" if design.test == "arcsine"
            else "two proportions, pooled null variance (Fleiss; R power.prop.test)")


def outcome_power(design, n, *, method, n_sims, seed, client, progress):
    """See :func:`peerstats.power`."""
    from peerstats.design.power import _check_method, _check_sims, _sim_result
    from peerstats.design.simulate import run_scenarios

    n = check_n(design, n)
    method = _check_method(method)
    t0 = time.perf_counter()
    if method == "analytic":
        return _analytic(design, n, time.perf_counter() - t0)
    n_sims = _check_sims(n_sims)
    merged, entropy = run_scenarios(design, [(n, 1.0)], n_sims=n_sims, seed=seed,
                                    client=client, progress=progress)
    return _sim_result(design, n, design.target, merged[0], n_sims, entropy,
                       time.perf_counter() - t0)


def outcome_sample_size(design, target: float, n_min: int, n_max: int):
    """Smallest n (controls) whose analytic power reaches ``target`` (power rises with n)."""
    from peerstats.design.power import SampleSize

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
    res = _analytic(design, hi)
    ng = sum(len(design.groups_of(design.n_per_arm(hi)[a])) for a in design.grouped_arms)
    return SampleSize(design=design, n=hi, n_per_arm=design.n_per_arm(hi), target=target,
                      power=res.power, n_groups=ng or None, result=res)


def outcome_power_curve(design, ns, *, method, n_sims, seed, client, progress):
    """Power over a grid of n (analytic, and simulated with ``method="simulation"``)."""
    from peerstats.design.power import PowerCurve, _check_method, _check_sims
    from peerstats.design.simulate import run_scenarios, summarise

    method = _check_method(method)
    ns = [check_n(design, k) for k in ns]
    if not ns:
        raise SpecError("n: give at least one sample size")
    rows = [analytic_power_outcome(design, k) for k in ns]
    table = pd.DataFrame({
        "n": ns, "n_total": [sum(design.n_per_arm(k).values()) for k in ns],
        "std_error": [r["std_error"] for r in rows],
        "power_analytic": [r["power"] for r in rows],
    })
    if method == "simulation":
        merged, _ = run_scenarios(design, [(k, 1.0) for k in ns], n_sims=_check_sims(n_sims),
                                  seed=seed, client=client, progress=progress)
        sums = [summarise(m, design.alpha) for m in merged]
        for col, key in (("power_simulation", "alt_rate"), ("mc_se", "alt_mc_se"),
                         ("type1_error", "null_rate"), ("bias", "alt_bias"),
                         ("coverage", "alt_coverage"), ("n_failed", "alt_failed")):
            table[col] = [s[key] for s in sums]
    return PowerCurve(design=design, table=table, over="n", method=method)
