"""Run pure, seeded tasks on a dask.distributed client, surviving a dying worker.

Power simulations and tipping-point grids are lists of independent tasks, each a pure function
of its arguments and its own seed (``SeedSequence.spawn``), so running a task twice gives the
same answer. :func:`run_tasks` uses that (issue 24.13):

- every task may be retried (``retries``) when its worker dies, and the scheduler reschedules
  the tasks of a dead worker on the others;
- the shared payload is scattered once per call, to every worker (``broadcast``), so a dead
  worker's copy is not the only one;
- a run in which no task finishes for ``stall_timeout`` seconds (``PEERSTATS_DASK_STALL_TIMEOUT``,
  default 300) ends with a :class:`ScaleOutError` that says so, instead of hanging; a task
  whose workers died more often than the scheduler allows (``KilledWorker``) and lost
  connections end the same way, never as a traceback or a misleading "spec error".

The local path (``client=None``) is the same function called in a loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from peerstats.exceptions import PeerstatsError

__all__ = ["run_tasks", "ScaleOutError", "stall_timeout"]

DEFAULT_STALL_TIMEOUT = 300.0


class ScaleOutError(PeerstatsError, RuntimeError):
    """A dask.distributed run could not finish (workers died repeatedly, the scheduler was
    lost, or no task finished within the stall timeout)."""


def stall_timeout() -> float:
    """Seconds without a finished task before a run is given up
    (``PEERSTATS_DASK_STALL_TIMEOUT``, default 300)."""
    raw = os.environ.get("PEERSTATS_DASK_STALL_TIMEOUT", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_STALL_TIMEOUT
    except ValueError:
        value = DEFAULT_STALL_TIMEOUT
    return value if value > 0 else DEFAULT_STALL_TIMEOUT


def run_tasks(
    fn: Callable[..., Any],
    payload: Any,
    task_args: Sequence[tuple],
    *,
    client: Any = None,
    retries: int = 3,
    progress: Callable[[int, int], None] | None = None,
    what: str = "the simulation",
) -> list[Any]:
    """``[fn(payload, *args) for args in task_args]``, in order, locally or on ``client``.

    Raises
    ------
    ScaleOutError
        On a client: workers died more often than the scheduler allows for one task, the
        connection to the scheduler was lost, or no task finished for ``stall_timeout()`` s.
    """
    total = len(task_args)
    if client is None:
        out = []
        for i, args in enumerate(task_args):
            out.append(fn(payload, *args))
            if progress is not None:
                progress(i + 1, total)
        return out
    try:
        return _on_client(fn, payload, task_args, client, retries, progress, what)
    except ScaleOutError:
        raise
    except PeerstatsError:
        raise  # a task's own error (a model that cannot be fitted), as in-process
    except Exception as exc:
        import asyncio

        name = type(exc).__name__
        from_dask = type(exc).__module__.split(".")[0] in {"distributed", "dask", "tornado"}
        if from_dask or isinstance(exc, OSError | TimeoutError | asyncio.CancelledError):
            raise ScaleOutError(
                f"{what} on the Dask cluster failed ({name}): worker processes died or the "
                "scheduler was lost while it ran. The tasks are pure and seeded, so running it "
                "again (or without --workers) gives the same answer."
            ) from None
        raise


def _on_client(fn, payload, task_args, client, retries, progress, what) -> list[Any]:
    from distributed import wait

    [ref] = client.scatter([payload], broadcast=True, hash=False)
    futures = [client.submit(fn, ref, *args, pure=False, retries=retries) for args in task_args]
    pending = set(futures)
    limit = stall_timeout()
    total = len(futures)
    while pending:
        try:
            done, pending = wait(list(pending), timeout=limit, return_when="FIRST_COMPLETED")
        except TimeoutError:
            client.cancel(list(pending))
            raise ScaleOutError(
                f"{what} on the Dask cluster stalled: no task finished in {limit:.0f} s "
                f"({total - len(pending)} of {total} done). A worker may have died or the "
                "cluster be overloaded; run it again, or set PEERSTATS_DASK_STALL_TIMEOUT "
                "for slower tasks."
            ) from None
        for f in done:
            if f.status == "error":
                f.result()  # re-raises the task's exception (KilledWorker, a model error)
        if progress is not None:
            progress(total - len(pending), total)
    return client.gather(futures)
