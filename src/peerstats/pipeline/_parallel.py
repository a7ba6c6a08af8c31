"""Part of a run's steps on the second core while the others run here (issue 22).

``peerstats run`` is single-threaded Python; the machines it runs on have at least two cores.
After ``estimate``, the steps of a run (``describe``, ``figures``, ``sensitivity``,
``economics``, ``mechanisms``) fall into two groups that never read what the other group makes:
``describe`` (tables, CONSORT), then ``figures`` (which reads the CONSORT flow) and
``mechanisms`` (subgroups, sites, mediation, multiplicity) read the spec, the trial, the fits
and the effect records; ``sensitivity`` and ``economics`` read the same and draw their own
figures (sensitivity forest, tipping-point map, CE plane and CEAC). :func:`run_steps` runs the
steps of one group (``beside``) in a worker process forked after ``estimate`` (the worker
inherits the run: nothing is pickled on the way in) while this process runs the others. Each
step's additions to the run's dictionaries (SVG text, captions, tables, results), its warnings
and the attributes it set (``consort_flow``) are recorded, in the worker pickled back (about
1.5 MB), and all are put together in the order of the sequential run before ``render``: a key
first added by a later step comes later, a warning an earlier step of the other process gave is
not repeated (as :func:`peerstats.pipeline._common._collect` does in one process). The results
are byte-identical to the sequential run's (``tests/pipeline/test_parallel.py`` compares both
in one process; ``benchmarks/bench_run_jobs.py`` compares the output folders of the bundled
analyses).

How many processes (:func:`jobs_wanted`): the ``jobs`` argument (``peerstats run --jobs N``),
else the environment variable ``PEERSTATS_JOBS``, else 2 where the ``fork`` start method is
safe (Linux and other POSIX systems but macOS, where forking a process that has loaded the
system's numerical libraries is not) and the process may use two CPUs; 1 is the sequential
run. Any failure of the worker (it could not start, it raised, it died, its result could not be
pickled) makes this process run the worker's unfinished steps itself, so an error in a figure
surfaces exactly as in the sequential run: same exception, message, traceback and exit status;
when steps of both processes fail, the error of the step that comes first in the sequential
order wins (a step after a failed one never counts, as it would never have run).
The worker ignores Ctrl-C (SIGINT goes to the whole process group); this process terminates
and reaps it on any exception, including KeyboardInterrupt, so no process outlives the run.
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

__all__ = ["jobs_wanted", "fork_available", "run_steps"]

#: the environment variable read when no ``jobs`` is given
JOBS_ENV = "PEERSTATS_JOBS"
#: imported before forking: both processes draw figures and save them as SVG (about 0.2 s)
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


# ----------------------------------------------------------------------------- recording
#: the run's dictionaries a step may fill (compared before and after each step)
DICTS = ("results", "tables", "figures", "figure_captions", "html_tables", "display_tables",
         "multiplicity_labels")
#: the run's other attributes a step may set
ATTRS = ("consort_flow",)
Step = Callable[..., None]
Steps = tuple[Step, ...]
#: the step lines of the worker's steps, for the line printed when it starts
NAMES = {"describe": "descriptive tables", "figures": "figures", "sensitivity": "sensitivity",
         "economics": "cost-effectiveness", "mechanisms": "mechanisms"}


def _snapshot(run: Any) -> dict[str, Any]:
    """Shallow copies of what the steps fill, as they are now."""
    snap: dict[str, Any] = {name: dict(getattr(run, name)) for name in DICTS}
    snap["warnings"] = list(run.warnings)
    snap["attrs"] = {name: getattr(run, name) for name in ATTRS}
    snap["objects"] = {name: getattr(run, name) for name in DICTS}  # a dict a step replaces
    return snap


def _diff(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What was added or replaced between two snapshots (warnings: those appended); a
    dictionary the step replaced by another is listed in ``replaced`` with all its entries."""
    out: dict[str, Any] = {"replaced": [n for n in DICTS if now["objects"][n] is not before["objects"][n]]}
    for name in DICTS:
        new, old = now[name], before[name]
        out[name] = dict(new) if name in out["replaced"] else {
            k: v for k, v in new.items() if k not in old or v is not old[k]}
    out["warnings"] = now["warnings"][len(before["warnings"]):]
    out["attrs"] = {k: v for k, v in now["attrs"].items() if v is not before["attrs"][k]}
    return out


def _copy(run: Any, snap: dict[str, Any]) -> Any:
    """A run like ``run`` whose dictionaries, warnings and attributes are those of ``snap``."""
    import dataclasses

    return dataclasses.replace(run, **{name: dict(snap[name]) for name in DICTS},
                               warnings=list(snap["warnings"]), **snap["attrs"])


def _apply(run: Any, diff: dict[str, Any]) -> None:
    """Put one step's recorded additions into ``run`` (on a copy, as the step would have)."""
    for name in DICTS:
        if name in diff["replaced"]:
            getattr(run, name).clear()
        getattr(run, name).update(diff[name])
    run.warnings.extend(diff["warnings"])
    for name, value in diff["attrs"].items():
        setattr(run, name, value)


def _recorded(run: Any, step: Step, progress: Any) -> dict[str, Any]:
    """Run one step on ``run``; what it added."""
    before = _snapshot(run)
    step(run, progress=progress)
    return _diff(_snapshot(run), before)


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


# ----------------------------------------------------------------------------- the worker
def _work(run: Any, there: Steps, snap: dict[str, Any]) -> dict[str, Any]:
    """The steps ``there`` on a copy of ``run`` made of ``snap``, in order, up to the first
    that raises: what each added (``diffs``), the index of the failed one (``failed``, None)
    and other warnings (e.g. matplotlib's) as records to re-issue."""
    copy = _copy(run, snap)
    rec = _Recorder()
    diffs: list[dict[str, Any]] = []
    failed = None
    # recorded under the filters in force (as the sequential run shows them: "default" once
    # per place, "error" raises in the step, which is then rerun here and raises in order)
    with warnings.catch_warnings(record=True) as other:
        for i, step in enumerate(there):
            try:
                diffs.append(_recorded(copy, step, rec))
            except Exception:  # noqa: BLE001 - the parent reruns it and raises it itself
                failed = i
                break
    return {
        "diffs": diffs,
        "failed": failed,
        "steps": rec.done,
        "other": [(w.category, str(w.message), w.filename, w.lineno) for w in other],
    }


def _child(run: Any, there: Steps, snap: dict, conn: Any) -> None:
    """The worker: run the steps, send the result (or a failure note), exit without cleanup
    of the parent's state (``os._exit`` in multiprocessing's fork bootstrap)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    try:
        done = _work(run, there, snap)
        payload = pickle.dumps(("ok", done), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - the parent reruns and raises it itself
        payload = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
    with contextlib.suppress(OSError):
        conn.send_bytes(payload)
    conn.close()


class _Worker:
    """A forked process running the steps; :meth:`result` waits for it and reaps it."""

    def __init__(self, run: Any, there: Steps, snap: dict) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conn, child_end = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(run, there, snap, child_end),
                                daemon=True, name="peerstats-second-core")
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
        except BaseException:  # Ctrl-C while waiting: end the worker now (it ignores SIGINT)
            self.stop()
            raise
        self.proc.join(timeout=10)  # it exits right after sending
        self.stop()
        return value if status == "ok" else None

    def stop(self) -> None:
        """End the worker (if still running) and reap it."""
        self.conn.close()
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()


def _start(run: Any, there: Steps, snap: dict) -> _Worker | None:
    """The worker, or None when it cannot start (the parent then runs the steps)."""
    try:
        return _Worker(run, there, snap)
    except Exception:  # noqa: BLE001 - fork refused (memory, process limits), or this is a
        return None  # daemonic multiprocessing worker (no children allowed): sequential


# ----------------------------------------------------------------------------- progress
def _say(progress: Any, text: str) -> None:
    """A line on the progress stream (nothing when quiet or without one)."""
    stream = getattr(progress, "stream", None)
    if stream is None or not getattr(progress, "enabled", False):
        return
    stream.write(text + "\n")
    stream.flush()


def _started(progress: Any, there: Steps) -> None:
    names = [NAMES.get(getattr(s, "__name__", ""), getattr(s, "__name__", "steps")) for s in there]
    what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    label = f"{what} (second core)"
    _say(progress, f"\u2026 {label}" if getattr(progress, "tty", False) else f"{label} ... started")


def _finished(progress: Any, done: list[tuple[str, float]]) -> None:
    tty = getattr(progress, "tty", False)
    for label, seconds in done:
        label = f"{label} (second core)"
        _say(progress, f"\u2713 {label} ({seconds:z.1f} s)" if tty else
             f"{label} ... done ({seconds:z.1f} s)")


# ----------------------------------------------------------------------------- the split
def run_steps(run: Any, order: Steps, *, beside: Steps = (), progress: Any = None,
              jobs: int | str | None = None, preload: tuple[str, ...] = PRELOAD,
              idle: tuple[Callable[[], None], ...] = ()) -> None:
    """Run the steps ``order`` on ``run`` as the sequential pipeline does, those in ``beside``
    in a forked worker while this process runs the others.

    Each step is called as ``step(run, progress=progress)``. The steps in ``beside`` must not
    read what the other steps make, nor the other way round (see the module notes), and they
    pass on only what they put into the run's dictionaries :data:`DICTS` (added, replaced, or
    a dictionary replaced whole), its warnings and the attributes :data:`ATTRS`: a change
    made inside an object that existed at the fork (a fit, a nested results entry) stays in
    the worker (``tests/pipeline/test_parallel.py`` checks the bundled steps' runs field by
    field against the sequential run). With one
    job (see :func:`jobs_wanted`), no step ``beside``, or when the worker cannot start, all
    run here in order. Before forking, the modules ``preload`` are imported here: both
    processes need them, so they are imported once, not twice. The calls ``idle`` (work
    that only prepares what comes later, such as the Word templates) run here when this
    process's steps are done and the worker is not, one after the other until it reports;
    an error in one is left for the later work to meet.

    Raises
    ------
    Exception
        The error of the first step, in the order ``order``, that failed (raised here by that
        step itself, also when it failed in the worker).
    """
    there = tuple(s for s in order if s in beside)
    worker = None
    if there and jobs_wanted(jobs) >= 2:
        for module in preload:  # imported once, here, rather than in both processes
            importlib.import_module(module)
        snap = _snapshot(run)
        worker = _start(run, there, snap)
    if worker is None:
        for step in order:
            step(run, progress=progress)
        return
    _started(progress, there)
    here: dict[int, dict[str, Any]] = {}
    failure, failed_at = None, len(order)
    try:
        for i, step in enumerate(order):
            if step not in there:
                try:
                    here[i] = _recorded(run, step, progress)
                except Exception as exc:  # the worker's outcome decides which error is raised
                    failure, failed_at = exc, i
                    break
        if failure is None:
            _while_waiting(worker, idle)
    except BaseException:  # KeyboardInterrupt, SystemExit: end the worker at once
        worker.stop()
        raise
    done = worker.result()
    diffs = _worker_diffs(run, order, there, snap, done, failed_at, progress)
    if failure is not None:
        raise failure
    _merge(run, snap, order, there, here, diffs)
    for category, message, filename, lineno in (done or {}).get("other", ()):
        warnings.warn_explicit(message, category, filename, lineno)


def _while_waiting(worker: _Worker, idle: tuple[Callable[[], None], ...]) -> None:
    """The calls ``idle`` while the worker has not reported (each skipped once it has)."""
    for call in idle:
        if worker.conn.poll(0):
            return
        with contextlib.suppress(Exception):
            call()


def _worker_diffs(run: Any, order: Steps, there: Steps, snap: dict[str, Any],
                  done: dict[str, Any] | None, failed_at: int, progress: Any
                  ) -> list[dict[str, Any]]:
    """What the worker's steps added; those it did not finish (it raised, or died) are run
    here on a copy of the run at the fork, so that their own error is raised here, unless a
    step of this process that comes earlier in ``order`` failed (then they never ran)."""
    diffs = list(done["diffs"]) if done is not None else []
    if done is not None:
        _finished(progress, done["steps"])
    missing = [s for s in there[len(diffs):] if order.index(s) < failed_at]
    if missing:
        copy = _copy(run, snap)
        for d in diffs:
            _apply(copy, d)
        for step in missing:
            diffs.append(_recorded(copy, step, progress))
    return diffs


def _merge(run: Any, snap: dict[str, Any], order: Steps, there: Steps,
           here: dict[int, dict[str, Any]], diffs: list[dict[str, Any]]) -> None:
    """Put every step's additions into ``run`` in the order of the sequential run: dictionary
    keys in the order they were first added; a warning that a step of the other process gave
    earlier is not repeated."""
    merged = {name: dict(snap[name]) for name in DICTS}
    said = list(snap["warnings"])
    by: dict[str, set[str]] = {"here": set(), "there": set()}
    theirs = iter(diffs)
    for i, step in enumerate(order):
        side = "there" if step in there else "here"
        diff = next(theirs) if side == "there" else here[i]
        other = by["here" if side == "there" else "there"]
        for name in DICTS:
            if name in diff["replaced"]:  # as the step did: what was there is gone
                merged[name].clear()
            merged[name].update(diff[name])
        for w in diff["warnings"]:
            if w not in other:
                said.append(w)
                by[side].add(w)
        for name, value in diff["attrs"].items():
            setattr(run, name, value)
    for name in DICTS:
        now = getattr(run, name)
        now.clear()
        now.update(merged[name])
    run.warnings[:] = said
