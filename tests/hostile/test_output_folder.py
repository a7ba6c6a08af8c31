"""Issue 13.7 and 13.10: the result folder is written atomically, never replacing a folder
that appeared meanwhile; one run at a time per folder; leftovers of dead runs are removed.

The writer is replaced by a hook (``write_results(..., _writer=...)``) that writes one file and
can act while "the run is writing", so no analysis is needed here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from peerstats.exceptions import SpecError
from peerstats.pipeline.run import (
    AnalysisRun,
    OutputBusyError,
    _acquire,
    clean_stale_folders,
    output_lock,
    write_results,
)

MANIFEST = '{"results_format": "peerstats-results/1"}'


def _run() -> AnalysisRun:
    return AnalysisRun(spec=None, trial=None)


def _writer(also=None, pause: float = 0.0):
    def write(root: Path, run: AnalysisRun) -> None:
        (root / "manifest.json").write_text(MANIFEST, encoding="utf-8")
        (root / "report.html").write_text("<p>new</p>", encoding="utf-8")
        if pause:
            time.sleep(pause)
        if also is not None:
            also()

    return write


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_folder_that_appears_while_writing_is_not_replaced(tmp_path):
    out = tmp_path / "out"

    def appear():
        out.mkdir()
        (out / "thesis.docx").write_text("mine", encoding="utf-8")

    with pytest.raises(SpecError, match="appeared while this run was writing"):
        write_results(_run(), out, _writer=_writer(appear))
    assert (out / "thesis.docx").read_text(encoding="utf-8") == "mine"
    assert _leftovers(tmp_path) == []


def test_an_empty_folder_that_appears_is_not_replaced_either(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SpecError, match="appeared"):
        write_results(_run(), out, _writer=_writer(out.mkdir))
    assert out.is_dir() and list(out.iterdir()) == []


def test_force_replaces_results_but_not_a_folder_that_appeared_meanwhile(tmp_path):
    out = tmp_path / "out"

    def appear():
        out.mkdir()
        (out / "data.csv").write_text("id\n1\n", encoding="utf-8")

    with pytest.raises(SpecError, match="not an earlier peerstats result folder"):
        write_results(_run(), out, force=True, _writer=_writer(appear))
    assert (out / "data.csv").is_file()
    # earlier results are replaced with --force
    (out / "data.csv").unlink()
    (out / "manifest.json").write_text(MANIFEST, encoding="utf-8")
    (out / "report.html").write_text("<p>old</p>", encoding="utf-8")
    write_results(_run(), out, force=True, _writer=_writer())
    assert (out / "report.html").read_text(encoding="utf-8") == "<p>new</p>"
    assert _leftovers(tmp_path) == []


def test_a_busy_folder_is_reported_clearly(tmp_path):
    out = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    fd = _acquire(lock, out)  # as another run would hold it
    try:
        with pytest.raises(
            OutputBusyError, match=rf"being written by another peerstats run \(pid {os.getpid()}\)"
        ):
            write_results(_run(), out, _writer=_writer())
    finally:
        os.close(fd)
    assert not out.exists()
    write_results(_run(), out, _writer=_writer())  # free again
    assert not lock.exists()  # the lock file goes with the run


def test_concurrent_force_writers_succeed_or_are_told_the_folder_is_busy(tmp_path):
    out = tmp_path / "out"
    outcomes: list[str] = []

    def one():
        try:
            write_results(_run(), out, force=True, _writer=_writer(pause=0.2))
            outcomes.append("ok")
        except OutputBusyError:
            outcomes.append("busy")
        except BaseException as exc:  # pragma: no cover - the defect
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert set(outcomes) <= {"ok", "busy"} and "ok" in outcomes, outcomes
    assert "busy" in outcomes  # they overlapped: the others were told
    assert (out / "report.html").is_file() and _leftovers(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_folders_of_dead_runs_are_removed_by_pid_and_age(tmp_path):
    out = tmp_path / "out"
    dead = tmp_path / f".out.tmp-{_dead_pid()}-abc"
    old_dead = tmp_path / f".out.old-{_dead_pid()}-def"
    alive = tmp_path / f".out.tmp-{os.getppid()}-ghi"  # a live process, recent: kept
    aged = tmp_path / f".out.tmp-{os.getppid()}-jkl"  # live pid but two days old: pid reused
    legacy = tmp_path / ".out.tmp-x1y2z3"  # an older version's name (no pid), two hours old
    other = tmp_path / ".other.tmp-1-abc"  # another output folder's: not ours to touch
    for p in (dead, old_dead, alive, aged, legacy, other):
        p.mkdir()
        (p / "report.html").write_text("partial", encoding="utf-8")
    two_days, two_hours = time.time() - 2 * 86400, time.time() - 7200
    os.utime(aged, (two_days, two_days))
    os.utime(legacy, (two_hours, two_hours))
    write_results(_run(), out, _writer=_writer())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", alive.name, other.name])
    with output_lock(out):
        assert clean_stale_folders(out) == []  # nothing more to remove


def test_the_lock_is_reentrant_within_one_thread(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        with output_lock(out):
            pass
        write_results(_run(), out, _writer=_writer())  # run() holds it while writing
    assert (out / "report.html").is_file()
