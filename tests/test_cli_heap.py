"""The CLI's run-time garbage-collector settings (issue 22) are undone when the run ends, so
an in-process caller of ``peerstats.cli.main`` keeps a normal collector; only the console
script (``main()`` without arguments, about to exit) leaves the heap frozen."""

from __future__ import annotations

import gc

from peerstats import cli


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
