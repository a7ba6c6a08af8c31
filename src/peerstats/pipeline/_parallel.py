"""The figures of a run drawn on the second core while the sensitivity analyses run (issue 22).

``peerstats run`` is single-threaded Python; the machines it runs on have at least two cores.
The figures step (about 1.3 s of ``analyses/peer_recovery.yaml``) reads only the spec, the
trial, the fits, the effect records and the CONSORT flow, all complete after ``describe``; the
sensitivity and cost-effectiveness steps neither read nor change what it draws (their own
figures, the sensitivity forest, the tipping-point map, the CE plane and CEAC, are drawn in
their own steps). So the figures step runs in a worker process forked right after
``describe`` (the worker inherits the run: nothing is pickled on the way in) while the parent
runs ``sensitivity`` and ``economics``; the worker sends back the SVG text, captions and
warnings it made (pickled, about 1 MB), which are merged into the run in the order the
sequential run gives, before ``mechanisms`` and ``render``. The results are byte-identical to
the sequential run's (``tests/pipeline/test_parallel.py`` compares both in one process).

How many processes (:func:`jobs_wanted`): the ``jobs`` argument (``peerstats run --jobs N``),
else the environment variable ``PEERSTATS_JOBS``, else 2 where the ``fork`` start method is
safe (Linux and other POSIX systems but macOS, where forking a process that has loaded the
system's numerical libraries is not) and the process may use two CPUs; 1 is the sequential
run. Any failure of the worker (it could not start, it raised, it died, its result could not be
pickled) makes the parent draw the figures itself, so an error in a figure surfaces exactly as
in the sequential run: same exception, message, traceback and exit status; when the parent's
own steps fail too, the error the sequential run would have raised first (the figures') wins.
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
def _snapshot(run: Any) -> tuple[dict, dict, list]:
    """What the figures step changes, as it is before the step."""
    return dict(run.figures), dict(run.figure_captions), list(run.warnings)


def _draw(run: Any, step: Callable[..., None], snap: tuple[dict, dict, list],
          progress: Any = None) -> dict[str, Any]:
    """Run ``step`` on a copy of ``run`` whose figures, captions and warnings are ``snap``;
    return what it added (other warnings, e.g. matplotlib's, are returned as records)."""
    import dataclasses

    figures, captions, found = (dict(snap[0]), dict(snap[1]), list(snap[2]))
    copy = dataclasses.replace(run, figures=figures, figure_captions=captions, warnings=found)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as other:
        warnings.simplefilter("always")
        step(copy, progress=progress)
    return {
        "figures": figures,
        "captions": captions,
        "warnings": found[len(snap[2]):],
        "other": [(w.category, str(w.message), w.filename, w.lineno) for w in other],
        "seconds": time.perf_counter() - t0,
    }


def _child(run: Any, step: Callable[..., None], snap: tuple, conn: Any) -> None:
    """The worker: draw, send the result (or a failure note), exit without cleanup of the
    parent's state (``os._exit`` in multiprocessing's fork bootstrap)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    try:
        payload = pickle.dumps(("ok", _draw(run, step, snap)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - the parent redraws and raises it itself
        payload = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
    with contextlib.suppress(OSError):
        conn.send_bytes(payload)
    conn.close()


class _Worker:
    """A forked process drawing the figures; :meth:`result` waits for it and reaps it."""

    def __init__(self, run: Any, step: Callable[..., None], snap: tuple) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conn, child_end = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(run, step, snap, child_end), daemon=True,
                                name="peerstats-figures")
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
def _merge(run: Any, snap: tuple[dict, dict, list], drawn: dict[str, Any]) -> None:
    """Put the worker's figures, captions and warnings into ``run`` where the sequential run
    has them: after what was there at the fork, before what the parent added since."""
    for name, before, added in (("figures", snap[0], drawn["figures"]),
                                ("figure_captions", snap[1], drawn["captions"])):
        now = getattr(run, name)
        merged = dict(before)
        merged.update((k, v) for k, v in added.items() if k not in before or v is not before[k])
        merged.update((k, v) for k, v in now.items() if k not in before or v is not before[k])
        now.clear()
        now.update(merged)
    n = len(snap[2])
    later = [w for w in run.warnings[n:] if w not in drawn["warnings"]]  # _collect skips repeats
    run.warnings[n:] = drawn["warnings"] + later
    for category, message, filename, lineno in drawn["other"]:
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


def _finished(progress: Any, seconds: float) -> None:
    tty = getattr(progress, "tty", False)
    _say(progress, f"\u2713 {_LABEL} ({seconds:z.1f} s)" if tty else
         f"{_LABEL} ... done ({seconds:z.1f} s)")


def _start(run: Any, step: Callable[..., None], snap: tuple) -> _Worker | None:
    """The worker, or None when it cannot start (the parent then draws)."""
    try:
        return _Worker(run, step, snap)
    except (OSError, ValueError, RuntimeError):  # fork refused (memory, process limits)
        return None


@contextlib.contextmanager
def beside(run: Any, step: Callable[..., None], *, progress: Any = None,
           jobs: int | str | None = None,
           preload: tuple[str, ...] = PRELOAD) -> Iterator[None]:
    """Run ``step(run, progress=...)`` (the figures step) in a forked worker while the body
    runs, and merge its result into ``run`` at the end, as if it had run before the body.

    With one job (see :func:`jobs_wanted`), or when the worker cannot start, ``step`` runs
    here first, as in the sequential pipeline. Before forking, the modules ``preload`` are
    imported here: both processes need them (the parent draws the sensitivity and economics
    figures), and imported before the fork they are imported once, not twice in parallel. When the worker failed, the step runs here
    (after the body) and raises its own error; when the body raises and the worker failed,
    the step's error wins, as the sequential run would have raised it first.
    """
    worker = None
    if jobs_wanted(jobs) >= 2:
        for module in preload:  # imported once, here, rather than in both processes
            importlib.import_module(module)
        snap = _snapshot(run)
        worker = _start(run, step, snap)
    if worker is None:
        step(run, progress=progress)
        yield
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
    drawn = worker.result()
    if drawn is None:  # raises the step's own error (the sequential run's first) if any
        drawn = _redraw(run, step, snap, progress)
    elif failure is None:
        _finished(progress, drawn["seconds"])
    if failure is not None:
        raise failure
    _merge(run, snap, drawn)


def _redraw(run: Any, step: Callable[..., None], snap: tuple, progress: Any) -> dict[str, Any]:
    """The step in this process, on the run as it was at the fork (after a worker failure)."""
    return _draw(run, step, snap, progress=progress)
