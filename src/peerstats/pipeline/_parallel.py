"""The figures and the mechanisms of a run on the second core while the sensitivity analyses
run (issue 22).

``peerstats run`` is single-threaded Python; the machines it runs on have at least two cores.
The figures step (about 1.3 s of ``analyses/peer_recovery.yaml``) reads only the spec, the
trial, the fits, the effect records and the CONSORT flow, all complete after ``describe``; the
mechanisms step (subgroups, sites, mediation, multiplicity strategy; 0.4 s) reads the trial,
the fits and the records. The sensitivity and cost-effectiveness steps neither read nor change
what these two make (their own figures, the sensitivity forest, the tipping-point map, the CE
plane and CEAC, are drawn in their own steps), and the two read nothing those make. So both
run, figures first, in a worker process forked right after ``describe`` (the worker inherits
the run: nothing is pickled on the way in) while the parent runs ``sensitivity`` and
``economics``. The worker sends back what each step added to the run's dictionaries (SVG text,
captions, tables, results, warnings; pickled, about 1.3 MB), which is merged in the order of
the sequential run (figures' after what was there at the fork, mechanisms' after what the
parent added) before ``render``. The results are byte-identical to the sequential run's
(``tests/pipeline/test_parallel.py`` compares both in one process; ``benchmarks/
bench_run_jobs.py`` compares the output folders of the bundled analyses).

How many processes (:func:`jobs_wanted`): the ``jobs`` argument (``peerstats run --jobs N``),
else the environment variable ``PEERSTATS_JOBS``, else 2 where the ``fork`` start method is
safe (Linux and other POSIX systems but macOS, where forking a process that has loaded the
system's numerical libraries is not) and the process may use two CPUs; 1 is the sequential
run. Any failure of the worker (it could not start, it raised, it died, its result could not be
pickled) makes the parent run the steps itself, so an error in a figure surfaces exactly as
in the sequential run: same exception, message, traceback and exit status; when several steps
fail, the error the sequential run would have raised first wins (figures, then sensitivity and
economics, then mechanisms).
The worker ignores Ctrl-C (SIGINT goes to the whole process group); the parent terminates and
reaps it on any exception, including KeyboardInterrupt, so no process outlives the run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from peerstats.exceptions import SpecError

__all__ = ["jobs_wanted", "fork_available", "beside"]

#: the environment variable read when no ``jobs`` is given
JOBS_ENV = "PEERSTATS_JOBS"
_LABEL = "drawing the figures (second core)"
#: imported before forking: both processes draw figures and save them as SVG (about 0.3 s)
PRELOAD = (
    "matplotlib.pyplot",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_svg",
    "peerstats.pipeline._svg",
)


def fork_available() -> bool:
    """Whether a worker may be forked: POSIX with the ``fork`` start method, not macOS (where
    ``fork`` after Accelerate/Objective-C initialisation is unsafe; Python's default there is
    ``spawn``), and at least two CPUs usable by this process."""
    import multiprocessing

    if os.name != "posix" or sys.platform == "darwin":
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus >= 2


def jobs_wanted(jobs: int | str | None = None) -> int:
    """The number of processes of a run: ``jobs``, else ``PEERSTATS_JOBS``, else 2 where
    :func:`fork_available` (1 elsewhere). Values above 2 act as 2 (one step runs beside).

    Raises
    ------
    SpecError
        ``jobs`` (or the environment variable) is not a whole number >= 1.
    """
    where = "jobs"
    if jobs is None:
        jobs = os.environ.get(JOBS_ENV, "").strip() or None
        where = JOBS_ENV
    if jobs is None:
        return 2 if fork_available() else 1
    try:
        n = int(jobs)
        if isinstance(jobs, float | bool) or n < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise SpecError(f"{where} must be a whole number >= 1 (1: sequential), got {jobs!r}") from None
    return 2 if n >= 2 and fork_available() else 1


# ----------------------------------------------------------------------------- the worker
#: the run's dictionaries a step may fill (compared before and after each step)
DICTS = ("results", "tables", "figures", "figure_captions", "html_tables", "display_tables",
         "multiplicity_labels")
Steps = tuple[Callable[..., None], ...]


def _snapshot(run: Any) -> dict[str, Any]:
    """Shallow copies of what the steps fill, as they are now."""
    snap: dict[str, Any] = {name: dict(getattr(run, name)) for name in DICTS}
    snap["warnings"] = list(run.warnings)
    return snap


def _diff(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What was added or replaced between two snapshots (warnings: those appended)."""
    out: dict[str, Any] = {
        name: {k: v for k, v in now[name].items() if k not in before[name] or v is not before[name][k]}
        for name in DICTS
    }
    out["warnings"] = now["warnings"][len(before["warnings"]):]
    return out


class _Recorder:
    """The progress of the worker: records each step's label and seconds (printed by the
    parent when it collects the result)."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.done.append((label, time.perf_counter() - t0))


def _work(run: Any, first: Callable[..., None], after: Steps, snap: dict[str, Any],
          progress: Any = None) -> dict[str, Any]:
    """``first`` then ``after`` on a copy of ``run`` made of ``snap``; what each part added
    (other warnings, e.g. matplotlib's, are returned as records to re-issue)."""
    import dataclasses

    copy = dataclasses.replace(run, **{name: dict(snap[name]) for name in DICTS},
                               warnings=list(snap["warnings"]))
    rec = _Recorder() if progress is None else progress
    with warnings.catch_warnings(record=True) as other:
        warnings.simplefilter("always")
        first(copy, progress=rec)
        mid = _snapshot(copy)
        for step in after:
            step(copy, progress=rec)
    return {
        "first": _diff(mid, snap),
        "after": _diff(_snapshot(copy), mid),
        "steps": getattr(rec, "done", []),
        "other": [(w.category, str(w.message), w.filename, w.lineno) for w in other],
    }


def _child(run: Any, first: Callable[..., None], after: Steps, snap: dict, conn: Any) -> None:
    """The worker: run the steps, send the result (or a failure note), exit without cleanup
    of the parent's state (``os._exit`` in multiprocessing's fork bootstrap)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    try:
        done = _work(run, first, after, snap)
        payload = pickle.dumps(("ok", done), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - the parent reruns and raises it itself
        payload = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
    with contextlib.suppress(OSError):
        conn.send_bytes(payload)
    conn.close()


class _Worker:
    """A forked process running the steps; :meth:`result` waits for it and reaps it."""

    def __init__(self, run: Any, first: Callable[..., None], after: Steps, snap: dict) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conn, child_end = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(run, first, after, snap, child_end),
                                daemon=True, name="peerstats-figures")
        for stream in (sys.stdout, sys.stderr):  # no buffered text copied into the child
            with contextlib.suppress(Exception):
                stream.flush()
        with warnings.catch_warnings():  # Python >= 3.12 warns on forking with threads
            warnings.filterwarnings("ignore", ".*fork.*", DeprecationWarning)
            try:
                self.proc.start()
            finally:
                child_end.close()

    def result(self) -> dict[str, Any] | None:
        """The worker's result; None when it failed in any way."""
        import pickle

        try:
            status, value = pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError, ValueError):
            status, value = "failed", None
        finally:
            self.proc.join(timeout=10)  # it exits right after sending
            self.stop()
        return value if status == "ok" else None

    def stop(self) -> None:
        """End the worker (if still running) and reap it."""
        self.conn.close()
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()


# ----------------------------------------------------------------------------- merging
def _merge(run: Any, snap: dict[str, Any], done: dict[str, Any]) -> None:
    """Put the worker's additions into ``run`` where the sequential run has them: the first
    step's after what was there at the fork, the later steps' after what the parent added."""
    first, after = done["first"], done["after"]
    for name in DICTS:
        now, before = getattr(run, name), snap[name]
        merged = dict(before)
        merged.update(first[name])
        merged.update((k, v) for k, v in now.items() if k not in before or v is not before[k])
        merged.update(after[name])
        now.clear()
        now.update(merged)
    n = len(snap["warnings"])
    parent = [w for w in run.warnings[n:] if w not in first["warnings"]]  # _collect: no repeats
    run.warnings[n:] = first["warnings"] + parent + [
        w for w in after["warnings"] if w not in parent
    ]
    for category, message, filename, lineno in done["other"]:
        warnings.warn_explicit(message, category, filename, lineno)


def _say(progress: Any, text: str) -> None:
    """A line on the progress stream (nothing when quiet or without one)."""
    stream = getattr(progress, "stream", None)
    if stream is None or not getattr(progress, "enabled", False):
        return
    stream.write(text + "\n")
    stream.flush()


def _started(progress: Any) -> None:
    tty = getattr(progress, "tty", False)
    _say(progress, f"\u2026 {_LABEL}" if tty else f"{_LABEL} ... started")


def _finished(progress: Any, done: list[tuple[str, float]]) -> None:
    tty = getattr(progress, "tty", False)
    for label, seconds in done:
        label = f"{label} (second core)"
        _say(progress, f"\u2713 {label} ({seconds:z.1f} s)" if tty else
             f"{label} ... done ({seconds:z.1f} s)")


def _start(run: Any, first: Callable[..., None], after: Steps, snap: dict) -> _Worker | None:
    """The worker, or None when it cannot start (the parent then runs the steps)."""
    try:
        return _Worker(run, first, after, snap)
    except Exception:  # noqa: BLE001 - fork refused (memory, process limits), or this is a
        return None  # daemonic multiprocessing worker (no children allowed): sequential


@contextlib.contextmanager
def beside(run: Any, first: Callable[..., None], *, after: Steps = (), progress: Any = None,
           jobs: int | str | None = None,
           preload: tuple[str, ...] = PRELOAD) -> Iterator[None]:
    """Run ``first(run, progress=...)`` (the figures step) and then the steps ``after`` (the
    mechanisms step) in a forked worker while the body runs; merge what they made into
    ``run`` as if ``first`` had run before the body and ``after`` after it.

    With one job (see :func:`jobs_wanted`), or when the worker cannot start, the steps run
    here, in that order, as in the sequential pipeline. Before forking, the modules
    ``preload`` are imported here: both processes need them (the parent draws the
    sensitivity and economics figures), so they are imported once, not twice. When the
    worker failed, the steps run here (``first`` on the run as it was at the fork) and raise
    their own errors; the error the sequential run would raise first wins: ``first``'s,
    then the body's, then ``after``'s.
    """
    worker = None
    if jobs_wanted(jobs) >= 2:
        for module in preload:  # imported once, here, rather than in both processes
            importlib.import_module(module)
        snap = _snapshot(run)
        worker = _start(run, first, after, snap)
    if worker is None:
        first(run, progress=progress)
        yield
        for step in after:
            step(run, progress=progress)
        return
    _started(progress)
    failure = None
    try:
        yield
    except Exception as exc:  # the worker's outcome decides which error the run raises
        failure = exc
    except BaseException:  # KeyboardInterrupt, SystemExit: end the worker at once
        worker.stop()
        raise
    done = worker.result()
    rerun = done is None
    if rerun:  # raises first's own error (the sequential run's first) if any
        done = _work(run, first, (), snap, progress=progress)
    elif failure is None:
        _finished(progress, done["steps"])
    if failure is not None:
        raise failure
    _merge(run, snap, done)
    for step in after if rerun else ():
        step(run, progress=progress)
