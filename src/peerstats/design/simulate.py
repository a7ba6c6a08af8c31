"""Power by simulation: generate trials from a design and fit the analysis model to each.

Work is split into *tasks*: one (scenario, chunk) pair each, a scenario being one sample size (or
effect) and a chunk :data:`CHUNK` simulated trials that share one draw of the dropout patterns and
are fitted together by the batched REML fitter (:mod:`peerstats.models._batch`). Every task gets
its own seed, a child of ``numpy.random.SeedSequence(seed)`` spawned per scenario and then per
chunk, and runs with BLAS pinned to one thread; so the answer is the same bit for bit whether
the tasks run in this process or on any number of ``dask.distributed`` workers, in any order.
Under the null the same simulated noise is refitted without the effect (common random numbers),
giving the type I error alongside the power.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from peerstats._scaleout import run_tasks
from peerstats.design._model import AnalysisModel
from peerstats.design.design import TrialDesign

__all__ = ["CHUNK", "run_chunk", "run_scenarios", "summarise"]

#: simulated trials per task (and per shared draw of the dropout patterns)
CHUNK = 100


def _blas_one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def run_chunk(
    design: TrialDesign,
    n: int,
    n_sims: int,
    seed: np.random.SeedSequence,
    effect_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Simulate and fit ``n_sims`` trials of size ``n``: arrays over the trials of estimate,
    std_error, df and converged, under the design (``alt_*``) and under the null (``null_*``).
    A task of the scale-out; runs with BLAS on one thread."""
    if getattr(design, "outcome", "continuous") != "continuous":  # binary / count (issue 16.6)
        from peerstats.design._outcome_sim import run_outcome_chunk

        return run_outcome_chunk(design, n, n_sims, seed, effect_scale)
    with _blas_one_thread():
        model = AnalysisModel(design if effect_scale == 1.0 else _scaled(design, effect_scale))
        rng = np.random.default_rng(seed)
        raw = model.draw(int(n), int(n_sims), rng)
        out: dict[str, np.ndarray] = {}
        for which in ("alt", "null"):
            fitter = model.build(raw[f"y_{which}"], raw)
            res = fitter.fit(model.psi_true, model.ell, df=design.df)
            dfs = res["df"]
            if design.df == "residual":
                dfs = np.full_like(dfs, fitter_nobs(fitter) - model.p)
            for key in ("estimate", "std_error", "converged"):
                out[f"{which}_{key}"] = res[key]
            out[f"{which}_df"] = dfs
        out["target"] = np.array([model.target])
        return out


def fitter_nobs(fitter) -> float:
    n = sum(float(b.counts @ np.full(len(b.counts), b.D.shape[-1])) for b in fitter.pooled)
    n += sum(b.D.shape[0] * b.D.shape[-1] for b in fitter.rows)
    return n


def _scaled(design: TrialDesign, scale: float) -> TrialDesign:
    eff = {v: float(e) * scale for v, e in zip(design.visits, design.effects)}
    return design.replace(effect=eff)


def _chunks(n_sims: int) -> list[int]:
    sizes = [CHUNK] * (n_sims // CHUNK)
    if n_sims % CHUNK:
        sizes.append(n_sims % CHUNK)
    return sizes


def run_scenarios(
    design: TrialDesign,
    scenarios: Sequence[tuple[int, float]],
    *,
    n_sims: int,
    seed: int | np.random.SeedSequence | None,
    client=None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, np.ndarray]], int]:
    """Run every (n, effect_scale) scenario with ``n_sims`` simulated trials.

    Returns the concatenated chunk results per scenario (in chunk order) and the root entropy.
    """
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    sizes = _chunks(n_sims)
    scen_seeds = root.spawn(len(scenarios))
    tasks = []
    for (n, scale), ss in zip(scenarios, scen_seeds):
        for size, cs in zip(sizes, ss.spawn(len(sizes))):
            tasks.append((n, size, cs, scale))
    # pure seeded tasks: retried when a worker dies, bounded when the cluster stalls (24.13)
    results = run_tasks(
        run_chunk, design, [(n, size, cs, scale) for (n, size, cs, scale) in tasks],
        client=client, progress=progress, what="the power simulation",
    )
    per = len(sizes)
    merged = []
    for i in range(len(scenarios)):
        parts = results[i * per : (i + 1) * per]
        merged.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    return merged, int(root.entropy) if isinstance(root.entropy, int) else 0


def summarise(res: dict[str, np.ndarray], alpha: float) -> dict[str, float]:
    """Power, type I error, bias, coverage and their Monte-Carlo SEs from one scenario."""
    target = float(res["target"][0])
    out: dict[str, float] = {}
    for which in ("alt", "null"):
        ok = res[f"{which}_converged"].astype(bool)
        est = res[f"{which}_estimate"][ok]
        se = res[f"{which}_std_error"][ok]
        df = res[f"{which}_df"][ok]
        t = est / se
        with np.errstate(invalid="ignore"):
            crit = np.where(
                np.isfinite(df),
                stats.t.ppf(1 - alpha / 2, np.where(np.isfinite(df), df, 1.0)),
                stats.norm.ppf(1 - alpha / 2),
            )
        reject = np.abs(t) > crit
        n_ok = int(ok.sum())
        rate = float(reject.mean()) if n_ok else float("nan")
        truth = target if which == "alt" else 0.0
        cover = np.abs(est - truth) <= crit * se
        out[f"{which}_rate"] = rate
        out[f"{which}_mc_se"] = float(np.sqrt(rate * (1 - rate) / n_ok)) if n_ok else float("nan")
        out[f"{which}_n"] = n_ok
        out[f"{which}_failed"] = int((~ok).sum())
        out[f"{which}_bias"] = float(est.mean() - truth) if n_ok else float("nan")
        out[f"{which}_bias_mc_se"] = (
            float(est.std(ddof=1) / np.sqrt(n_ok)) if n_ok > 1 else float("nan")
        )
        out[f"{which}_coverage"] = float(cover.mean()) if n_ok else float("nan")
        out[f"{which}_mean_se"] = float(se.mean()) if n_ok else float("nan")
        out[f"{which}_sd_estimate"] = float(est.std(ddof=1)) if n_ok > 1 else float("nan")
        out[f"{which}_mean_df"] = (
            float(np.mean(df[np.isfinite(df)])) if np.isfinite(df).any() else float("inf")
        )
    out["target"] = target
    return out
