"""``peerstats run``: an analysis spec in, a reproducible result folder out.

:func:`run_analysis` computes everything in memory through the public API (load and validate
the trial, fit the models, CONSORT, Table 1, outcome table, responders, feasibility, figures);
:func:`write_results` writes the folder atomically; :func:`run` does both.

The folder::

    report.html        one self-contained page (figures embedded, no network requests)
    results.json       every estimate, unrounded, stable keys; byte-identical for the same inputs
    tables/*.csv       the tidy tables (codes, unrounded)
    tables/*.docx      the tables as they read (labels, rounded), in Word
    tables/display/*.csv   the same as CSV (display-shaped)
    figures/*.svg      the figures
    manifest.json      SHA-256 of every input, versions, platform, seed, start and end time

Nothing here computes statistics of its own: every number comes from a public peerstats
function; this module only arranges the calls and the output.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from peerstats.exceptions import SpecError
from peerstats.pipeline._common import (  # noqa: F401  (re-exported: older imports)
    AnalysisRun,
    FittedOutcome,
    _collect,
    _digits,
    _fmt_p,
    _responder_name,
    _svg,
    coefficients,
    outcome_label,
    primary_sentences,
)
from peerstats.pipeline._jsonio import dumps
from peerstats.pipeline._manifest import (  # noqa: F401  (re-exported: older imports)
    DEPENDENCIES,
    RESULTS_FORMAT,
    _package_digest,
    _sha256,
)
from peerstats.pipeline.analysis_spec import AnalysisSpec

__all__ = [
    "run",
    "run_analysis",
    "write_results",
    "AnalysisRun",
    "Progress",
    "RESULTS_FORMAT",
    "OutputBusyError",
    "output_lock",
    "clean_stale_folders",
]


# ----------------------------------------------------------------------------- progress
class Progress:
    """Step lines on a stream (stderr by default).

    On a terminal each step shows ``… step`` while it runs and is rewritten as
    ``✓ step (1.2 s)`` when done; elsewhere (logs, CI) one plain line per finished step.
    ``enabled=False`` is silent (``--quiet``).
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time one step and report it."""
        t0 = time.perf_counter()
        if self.enabled and self.tty:
            self.stream.write(f"\u2026 {label}")
            self.stream.flush()
        try:
            yield
        except BaseException:
            if self.enabled:
                self.stream.write(("\r" if self.tty else "") + f"\u2717 {label}: failed\n")
                self.stream.flush()
            raise
        dt = time.perf_counter() - t0
        if self.enabled:
            if self.tty:
                self.stream.write(f"\r\u2713 {label} ({dt:z.1f} s)\033[K\n")
            else:
                self.stream.write(f"{label} ... done ({dt:z.1f} s)\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- main
def run_analysis(
    spec: str | Path | dict | AnalysisSpec,
    *,
    progress: Progress | None = None,
    blinded: bool = False,
    key: str | Path | None = None,
    jobs: int | None = None,
) -> AnalysisRun:
    """Run an analysis spec in memory: the named steps of :mod:`peerstats.pipeline.steps`.

    Parameters
    ----------
    spec : path, dict or AnalysisSpec
        The analysis spec (see :func:`peerstats.pipeline.read_analysis_spec`).
    progress : Progress, optional
        Where step lines go (default: none).
    blinded : bool
        The data-monitoring committee's open report (arms coded, no comparisons).
    jobs : int, optional
        Processes: 2 runs the descriptive tables, the figures and the mechanisms step in a
        forked worker while the sensitivity analyses and the economics run, 1 is sequential; default ``PEERSTATS_JOBS``, else 2 where ``fork`` is safe
        (:mod:`peerstats.pipeline._parallel`). The results are the same either way.

    Returns
    -------
    AnalysisRun

    Raises
    ------
    SpecError
        The analysis or trial spec is malformed, or they do not fit each other.
    DataValidationError
        The trial data failed validation (``.failures`` lists every problem).
    ModelSpecificationError, ConvergenceError, ReconciliationError
        A model could not be fitted, did not converge, or disagrees with the CONSORT flow.
    """
    from peerstats.pipeline import steps
    from peerstats.pipeline._parallel import jobs_wanted, run_steps

    jobs_wanted(jobs)  # a bad value fails before the work
    progress = progress or Progress(enabled=False)
    started = _now()
    spec, trial = steps.load(spec, progress=progress)
    run = steps.validate(spec, trial, blinded=blinded, started=started, key=key)
    if blinded:
        from peerstats.pipeline._blind import closed_run, run_blinded

        run = run_blinded(run, progress)
        if key is not None:  # the closed report, by arm with the code (issue 20.1)
            run.closed = closed_run(run, spec, trial, key, progress)
        return run
    steps.estimate(run, progress=progress)
    order = (steps.describe, steps.figures, steps.sensitivity, steps.economics, steps.mechanisms)
    # on the second core while the sensitivity analyses and the economics run here
    second = (steps.describe, steps.figures, steps.mechanisms)
    run_steps(run, order, beside=second, progress=progress, jobs=jobs, idle=(_warm_word,))
    steps.render(run, progress=progress)
    return run


def _warm_word() -> None:
    """The Word templates made ahead of the first table (:func:`~peerstats.describe.word.warm_up`),
    while the second core finishes."""
    from peerstats.describe.word import warm_up

    warm_up()


def _now() -> _dt.datetime:
    """The time to record: ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return _dt.datetime.now(_dt.UTC)


def _write_word(root: Path, run: AnalysisRun, writer: Any = None) -> None:
    """A .docx for every table (tidy ones shaped for display), and all in one tables.docx in
    report order (issue 21). ``writer``: the folder's Word writer (it lays out each table once
    for its own file and tables.docx, issue 22)."""
    from peerstats.describe.render import tidy_display
    from peerstats.describe.word import _Writer

    writer = writer if writer is not None else _Writer(run.spec.paper)
    words = dict(run.display_tables)
    for name, df in run.tables.items():
        if name not in words and hasattr(df, "columns") and len(df.columns):
            words[name] = tidy_display(df, name)
            writer.table(words[name], root / "tables" / f"{name}.docx")
    if words:
        order = ["consort", "table_one", "outcomes", "ls_means"]
        names = sorted(words, key=lambda n: order.index(n) if n in order else 99)
        writer.tables([words[n] for n in names], root / "tables" / "tables.docx")


def _write_tree(root: Path, run: AnalysisRun) -> None:
    from peerstats._safe import write_csv
    from peerstats.describe.word import _Writer

    writer = _Writer(run.spec.paper)
    (root / "tables").mkdir()
    (root / "figures").mkdir()
    for name, df in run.tables.items():  # text cells that a spreadsheet would run are quoted
        write_csv(df, root / "tables" / f"{name}.csv")
    if run.display_tables:
        (root / "tables" / "display").mkdir()
    for name, table in run.display_tables.items():  # as the table reads: CSV and Word
        writer.csv(table, root / "tables" / "display" / f"{name}.csv")
        writer.table(table, root / "tables" / f"{name}.docx")
    _write_word(root, run, writer)
    for name, svg in run.figures.items():
        (root / "figures" / f"{name}.svg").write_text(svg, encoding="utf-8")
    (root / "results.json").write_text(dumps(run.results), encoding="utf-8")
    (root / "report.html").write_text(run.report_html, encoding="utf-8")
    outputs = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            outputs[p.relative_to(root).as_posix()] = _sha256(p)
    manifest = dict(run.manifest)
    manifest["outputs"] = outputs
    finished = _now()
    manifest["finished"] = finished.isoformat(timespec="seconds")
    started = _dt.datetime.fromisoformat(manifest["started"])
    manifest["duration_seconds"] = round((finished - started).total_seconds())
    (root / "manifest.json").write_text(dumps(manifest), encoding="utf-8")


def check_output_dir(out: str | Path, *, force: bool = False) -> Path:
    """Check that ``out`` may be written; returns it resolved.

    Raises
    ------
    SpecError
        ``out`` exists and ``force`` is false, or it is a file.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise SpecError(f"{out} exists and is not a folder")
    _check_creatable(out)
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise SpecError(f"{out} is the current folder or contains it; choose a results folder")
    if out.exists() and not force:
        raise SpecError(f"{out} exists; pass --force (force=True) to replace it")
    if out.exists() and any(out.iterdir()) and not _is_results_folder(out):
        # --force replaces earlier results, never a folder of other files (inputs, a project)
        raise SpecError(
            f"{out} is not an earlier peerstats result folder (no peerstats manifest.json); "
            "--force only replaces results. Choose another --out or empty it yourself."
        )
    return out


def _check_creatable(out: Path) -> None:
    """The nearest existing folder above ``out`` must be a writable folder (issue 24.10: a
    parent that is a file failed with a FileExistsError after the whole analysis ran)."""
    above = out.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise SpecError(f"cannot create {out}: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise SpecError(f"cannot create {out}: the folder {above} is not writable")


def _is_results_folder(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("results_format", "")).startswith(
        "peerstats-results/"
    )


def _inputs_inside(run: AnalysisRun, out: Path) -> list[str]:
    """Input files of the run that lie inside ``out`` (replacing it would delete them), as the
    manifest shows them (relative to the analysis spec's folder, identifiers masked)."""
    spec = getattr(run, "spec", None)
    base = Path(spec.source).parent if getattr(spec, "source", None) else Path.cwd()
    out = Path(out).resolve()
    inside = []
    for item in run.manifest.get("inputs", {}).values():
        shown = item.get("path", "") if isinstance(item, dict) else ""
        if not shown:
            continue
        path = Path(shown) if Path(shown).is_absolute() else base / shown
        path = path.resolve()
        if path == out or out in path.parents:
            inside.append(shown)
    return inside


def write_results(
    run: AnalysisRun,
    out: str | Path,
    *,
    force: bool = False,
    _writer: Callable[[Path, AnalysisRun], None] | None = None,
) -> Path:
    """Write a run's folder atomically.

    Everything is written to a temporary folder next to ``out`` that is renamed to ``out`` at
    the end; a failure leaves ``out`` as it was (absent, or the previous results). The rename
    never replaces a folder that appeared while the run was writing (``RENAME_NOREPLACE``
    where the system has it); with ``force`` only earlier peerstats results are replaced. A
    lock per output folder (``.<out>.lock`` beside it) keeps two runs from writing the same
    folder; temporary folders left by runs that died are removed (see
    :func:`clean_stale_folders`).

    Parameters
    ----------
    run : AnalysisRun
    out : path
    force : bool
        Replace an existing ``out`` (earlier results only).

    Returns
    -------
    Path
        ``out`` (resolved).

    Raises
    ------
    SpecError
        ``out`` exists (without ``force``), is not a results folder, appeared while writing,
        or holds input files; :class:`OutputBusyError` when another run writes it.
    """
    out = check_output_dir(out, force=force)
    inside = _inputs_inside(run, out)
    if inside:
        raise SpecError(f"--out {out} contains input files of the analysis: {inside[:5]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        clean_stale_folders(out)
        out = check_output_dir(out, force=force)  # again, under the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        try:
            (_writer or _write_tree)(tmp, run)
            os.chmod(tmp, 0o755)
            _move_into_place(tmp, out, force=force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _move_into_place(tmp: Path, out: Path, *, force: bool) -> None:
    """Rename the written folder ``tmp`` to ``out`` without ever replacing a folder that is
    not earlier peerstats results (checked at the last moment, not only before the run)."""
    appeared = (
        f"{out} appeared while this run was writing; it was left as it is and nothing was "
        "written. Choose another --out"
    )
    if out.exists() or out.is_symlink():
        if not force:
            raise SpecError(appeared + " (or pass --force to replace earlier results)")
        if (
            not out.is_dir()
            or out.is_symlink()
            or (any(out.iterdir()) and not _is_results_folder(out))
        ):
            raise SpecError(
                f"{out} is not an earlier peerstats result folder; --force only replaces "
                "results. Choose another --out or empty it yourself."
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        old.rmdir()
        _rename_noreplace(out, old)
        try:
            _rename_noreplace(tmp, out)
        except FileExistsError:
            raise SpecError(appeared + f"; the earlier results are kept in {old}") from None
        except BaseException:
            _rename_noreplace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        _rename_noreplace(tmp, out)
    except FileExistsError:
        raise SpecError(appeared) from None


def _renameat2(src: Path, dst: Path) -> bool:
    """``renameat2(..., RENAME_NOREPLACE)`` on Linux; False when unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_noreplace = -100, 1
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # the file system cannot: fall back
    if err in (errno.EEXIST, errno.ENOTEMPTY):
        raise FileExistsError(err, os.strerror(err), str(dst))
    raise OSError(err, os.strerror(err), str(src))


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError when ``dst`` exists (never replaced)."""
    if _renameat2(src, dst):
        return
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} exists")
    try:
        # POSIX rename may still replace an *empty* folder that appeared in the last
        # microseconds (nothing is lost); a non-empty one makes it fail
        os.rename(src, dst)
    except OSError as exc:
        if dst.exists():
            raise FileExistsError(f"{dst} exists") from exc
        raise


class OutputBusyError(SpecError):
    """Another peerstats run is writing the same output folder."""


_HELD: dict[Path, int] = {}  # output folder -> thread holding its lock in this process
#: temporary folders older than this are removed even when their pid looks alive (reused pid)
STALE_AGE_SECONDS = 24 * 3600


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe check: age alone decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def output_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of output folder ``out`` (``.<name>.lock`` beside it; re-entrant).

    Raises
    ------
    OutputBusyError
        Another process holds it.
    """
    import threading

    out = Path(out).resolve()
    me = threading.get_ident()
    if _HELD.get(out) == me:
        yield
        return
    lock = out.parent / f".{out.name}.lock"
    fd = _acquire(lock, out)
    _HELD[out] = me
    try:
        yield
    finally:
        _HELD.pop(out, None)
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def _busy(lock: Path, out: Path) -> OutputBusyError:
    try:
        holder = lock.read_text(encoding="ascii").strip() or "unknown"
    except (OSError, UnicodeError):
        holder = "unknown"
    return OutputBusyError(
        f"{out} is being written by another peerstats run (pid {holder}); wait until it has "
        f"finished or choose another --out (a lock file {lock.name} marks it)"
    )


def _acquire(lock: Path, out: Path) -> int:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: an exclusive create instead
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                age = time.time() - lock.stat().st_mtime
                if age > STALE_AGE_SECONDS:
                    lock.unlink(missing_ok=True)
                    continue
                raise _busy(lock, out) from None
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        raise _busy(lock, out) from None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(lock, out) from None
        try:  # the lock file we hold must still be the one at the path (a finishing run
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino  # unlinks it)
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def clean_stale_folders(out: str | Path) -> list[Path]:
    """Remove ``.<out>.tmp-<pid>-*`` and ``.<out>.old-<pid>-*`` folders of runs that died
    (their process no longer exists, or they are older than a day); returns those removed.
    Call it holding :func:`output_lock` of ``out``."""
    import re

    out = Path(out).resolve()
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(?:(\d+)-)?")
    removed = []
    now = time.time()
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink():
            continue
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        pid = int(m.group(2)) if m.group(2) else None
        if pid == os.getpid():
            continue
        dead = (pid is not None and not _pid_alive(pid)) or (pid is None and age > 3600)
        if dead or age > STALE_AGE_SECONDS:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def run(
    spec: str | Path | dict | AnalysisSpec,
    out: str | Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    blinded: bool = False,
    key: str | Path | None = None,
    jobs: int | None = None,
) -> Path:
    """Run an analysis spec and write its result folder (see the module docstring);
    ``blinded=True`` writes the data-monitoring committee's open report (arms coded A/B,
    no between-arm comparisons; see :mod:`peerstats.pipeline._blind`). ``jobs``: see
    :func:`run_analysis`.

    Returns
    -------
    Path
        The folder written; ``<out>/report.html`` is the report.
    """
    resolved = check_output_dir(out, force=force)  # fail before the work, not after
    # hold the folder's lock for the whole run: a second run on the same --out is told at
    # once that the folder is busy, rather than racing this one at the end
    lock = output_lock(resolved) if resolved.parent.is_dir() else contextlib.nullcontext()
    with lock:
        result = run_analysis(spec, progress=progress, blinded=blinded, key=key, jobs=jobs)
        progress = progress or Progress(enabled=False)
        with progress.step(f"writing {out}"):
            written = write_results(result, out, force=force)
            if result.closed is not None:  # never inside the open folder (issue 20.1)
                write_results(result.closed, closed_folder(written), force=force)
    _print_warnings(result.warnings)
    return written


def closed_folder(out: Path) -> Path:
    """Where ``peerstats run --blinded --key`` writes the closed DMC report: ``<out>-closed``
    beside the open folder (not inside it, so the open folder can be sent as it is)."""
    return out.parent / f"{out.name}-closed"


def _print_warnings(found: list[str], stream: TextIO | None = None) -> None:
    """The run's warnings on stderr, also when progress is quiet: a warning in the report and
    results.json only is one a user of the command line never sees (issue 24.5)."""
    from peerstats._identifiers import escape_controls, mask_identifiers

    stream = stream if stream is not None else sys.stderr
    for w in found:
        print(f"warning: {escape_controls(mask_identifiers(str(w)))}", file=stream)
