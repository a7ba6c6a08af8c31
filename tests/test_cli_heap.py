"""The CLI's run-time garbage-collector settings (issue 22) are undone when the run ends, so
an in-process caller of ``peerstats.cli.main`` keeps a normal collector; only the console
script (``main()`` without arguments, about to exit) leaves the heap frozen."""

from __future__ import annotations

import gc

from peerstats import _startup, cli


def test_the_collector_is_put_back_after_a_run():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with cli._long_lived_heap() as progress_class:
        assert gc.get_threshold()[0] > before[0]  # young collections less often in the run
        assert gc.get_freeze_count() >= frozen
        assert progress_class is not None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0 or gc.get_freeze_count() == frozen


def test_the_collector_is_put_back_when_the_run_fails():
    before = gc.get_threshold()
    try:
        with cli._long_lived_heap():
            raise RuntimeError("a failing step")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_main_with_arguments_leaves_the_heap_unfrozen(capsys):
    gc.unfreeze()
    assert cli.main(["demo", "--summary"]) == 0  # in-process: argv given
    assert gc.get_freeze_count() == 0


def test_imports_of_a_run_pause_the_collector_and_leave_it_as_it_was():
    """Issue 22: no collection while a run's modules are imported; what they made is frozen
    (the run's _long_lived_heap unfreezes it at the end); the collector's on/off state is
    put back, also when an import fails (then nothing stays frozen)."""
    gc.unfreeze()
    assert gc.isenabled()
    with _startup.collector_paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # noqa: F841 - objects allocated meanwhile
    assert gc.isenabled() and gc.get_freeze_count() > 0
    with cli._long_lived_heap():
        pass
    assert gc.get_freeze_count() == 0
    try:
        with _startup.collector_paused():
            raise ImportError("a missing module")
    except ImportError:
        pass
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with _startup.collector_paused():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()
        gc.unfreeze()
