"""The figures drawn on a second core (``jobs=2``, :mod:`peerstats.pipeline._parallel`) give the
same run as the sequential pipeline (``jobs=1``), byte for byte, and fail the same way.

Reference: the sequential run of the same spec in the same process (the parallel mode is a
rearrangement of the same calls; any difference is a bug). Data: the bundled SYNTHETIC
example trials.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from pipeline_support import ANALYSES, write_analysis

from peerstats.exceptions import ModelSpecificationError, SpecError
from peerstats.pipeline import _figures, _parallel, steps
from peerstats.pipeline._common import AnalysisRun
from peerstats.pipeline._jsonio import dumps
from peerstats.pipeline.run import run_analysis, write_results

pytestmark = pytest.mark.skipif(
    not _parallel.fork_available(), reason="no fork (or one CPU): the run is sequential"
)


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before():
    """Children this test process already had (other tests in the same pytest-xdist worker may
    leave long-lived ones, e.g. a resource tracker); only new ones count as left behind."""
    _BEFORE.clear()
    _BEFORE.update(_all_children())


def _children() -> list[int]:
    """Processes whose parent is this one (running or zombie) that the test started."""
    return [p for p in _all_children() if p not in _BEFORE]


def _all_children() -> list[int]:
    me, out = os.getpid(), []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(p))
    return out


@pytest.fixture()
def small_two_arm(tmp_path, monkeypatch) -> Path:
    """icbt_peer with two quick sensitivity analyses (one draws its forest in the parent while
    the worker draws the rest) and a fixed start time (SOURCE_DATE_EPOCH)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    spec = yaml.safe_load((ANALYSES / "icbt_peer.yaml").read_text(encoding="utf-8"))
    spec["sensitivity"] = [
        {"name": "mi-mar", "method": "multiple-imputation", "imputation": "bayes",
         "strategy": "MAR", "n_imputations": 3},
        {"name": "complete-case", "method": "complete-case"},
    ]
    spec["figures"] = [f for f in spec["figures"] if f != "tipping_point"]
    spec["subgroups"] = {"by": ["age"]}  # the mechanisms step: in the worker after figures
    path = tmp_path / "icbt_peer_small.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_jobs_give_the_sequential_run_byte_for_byte(small_two_arm, tmp_path):
    one = run_analysis(small_two_arm, jobs=1)
    two = run_analysis(small_two_arm, jobs=2)
    assert list(two.figures.items()) == list(one.figures.items())  # same order too
    assert {"sensitivity_forest", "forest", "subgroups_forest"} <= set(two.figures)
    assert "subgroups" in two.tables and "heterogeneity_and_mechanisms" in two.results
    assert list(two.figure_captions.items()) == list(one.figure_captions.items())
    assert two.warnings == one.warnings
    assert dumps(two.results) == dumps(one.results)
    assert two.report_html == one.report_html
    assert list(two.tables) == list(one.tables)
    a = _files(write_results(one, tmp_path / "one"))
    b = _files(write_results(two, tmp_path / "two"))
    assert a.keys() == b.keys()
    for name in a:
        if name != "manifest.json":  # its outputs' hashes are compared through the files
            assert a[name] == b[name], name
    assert _children() == []


def _failing(run, flow=None, effects=None):
    raise ModelSpecificationError("the forest plot could not be drawn (test)")


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_error_in_the_worker_surfaces_as_in_the_sequential_run(small_trial, tmp_path,
                                                                   monkeypatch, jobs):
    spec = write_analysis(tmp_path, small_trial)
    monkeypatch.setattr(_figures, "draw_figures", _failing)
    with pytest.raises(ModelSpecificationError, match=r"^the forest plot could not be drawn"):
        run_analysis(spec, jobs=jobs)
    assert _children() == []


def test_cli_error_and_exit_status_are_those_of_the_sequential_run(small_trial, tmp_path,
                                                                   monkeypatch, capsys):
    from peerstats.cli import main

    spec = write_analysis(tmp_path, small_trial)
    monkeypatch.setattr(_figures, "draw_figures", _failing)
    seen = []
    for jobs in ("1", "2"):
        code = main(["run", str(spec), "--out", str(tmp_path / f"out{jobs}"), "--quiet",
                     "--jobs", jobs])
        seen.append((code, capsys.readouterr().err))
    assert seen[0] == seen[1]
    assert seen[0][0] == 3 and "the forest plot could not be drawn" in seen[0][1]
    assert not (tmp_path / "out2").exists()
    assert _children() == []


def test_the_figures_error_wins_over_a_later_steps_error(small_two_arm, monkeypatch):
    """Sequentially the figures step fails before sensitivity runs: so does the parallel run."""
    def later(run, *, progress=None):
        raise ValueError("sensitivity failed (test)")

    monkeypatch.setattr(steps, "sensitivity", later)
    with pytest.raises(ValueError, match="sensitivity failed"):  # figures fine: its error
        run_analysis(small_two_arm, jobs=2)
    monkeypatch.setattr(_figures, "draw_figures", _failing)
    for jobs in (1, 2):
        with pytest.raises(ModelSpecificationError, match="forest plot could not be drawn"):
            run_analysis(small_two_arm, jobs=jobs)
    assert _children() == []


def test_the_mechanisms_error_comes_after_a_later_steps_error(small_two_arm, monkeypatch):
    """Sequentially mechanisms run after sensitivity: their error surfaces only when the
    sensitivity analyses succeed, with its own type and message."""
    def mechanisms(run, *, progress=None):
        raise SpecError("subgroups: no such column (test)")

    monkeypatch.setattr(steps, "mechanisms", mechanisms)
    for jobs in (1, 2):
        with pytest.raises(SpecError, match=r"^subgroups: no such column \(test\)$"):
            run_analysis(small_two_arm, jobs=jobs)
    def economics(run, *, progress=None):
        raise ValueError("economics failed (test)")

    monkeypatch.setattr(steps, "economics", economics)  # before mechanisms: its error wins
    for jobs in (1, 2):
        with pytest.raises(ValueError, match="economics failed"):
            run_analysis(small_two_arm, jobs=jobs)
    assert _children() == []


def test_a_worker_that_dies_is_replaced_by_drawing_here(small_trial, tmp_path, monkeypatch):
    spec = write_analysis(tmp_path, small_trial, figures=["forest", "consort"])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one = run_analysis(spec, jobs=1)
    parent, draw = os.getpid(), _figures.draw_figures

    def dies_in_the_worker(run, flow=None, effects=None):
        if os.getpid() != parent:
            os._exit(7)
        draw(run, flow, effects)

    monkeypatch.setattr(_figures, "draw_figures", dies_in_the_worker)
    two = run_analysis(spec, jobs=2)
    assert list(two.figures.items()) == list(one.figures.items())
    assert two.report_html == one.report_html
    assert _children() == []


def test_a_worker_that_cannot_start_means_a_sequential_run(small_trial, tmp_path, monkeypatch,
                                                          capsys):
    spec = write_analysis(tmp_path, small_trial, figures=["forest"])

    def no_fork(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_parallel, "_Worker", no_fork)
    from peerstats.pipeline.run import Progress

    run = run_analysis(spec, jobs=2, progress=Progress(enabled=True))
    assert "forest" in run.figures
    err = capsys.readouterr().err
    assert "drawing the figures ... done" in err and "second core" not in err


def test_ctrl_c_ends_the_worker_at_once():
    def slow(run, *, progress=None):
        time.sleep(60)

    def interrupted(run, *, progress=None):
        time.sleep(0.2)
        raise KeyboardInterrupt

    run = AnalysisRun(spec=None, trial=None)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        _parallel.run_steps(run, (slow, interrupted), beside=(slow,), jobs=2, preload=())
    assert time.perf_counter() - t0 < 10
    assert _children() == []


def test_jobs_values(monkeypatch):
    monkeypatch.delenv(_parallel.JOBS_ENV, raising=False)
    assert _parallel.jobs_wanted() == 2
    assert _parallel.jobs_wanted(1) == 1
    assert _parallel.jobs_wanted(8) == 2
    monkeypatch.setenv(_parallel.JOBS_ENV, "1")
    assert _parallel.jobs_wanted() == 1
    assert _parallel.jobs_wanted(2) == 2  # the argument wins over the environment
    monkeypatch.setenv(_parallel.JOBS_ENV, "two")
    with pytest.raises(SpecError, match=r"PEERSTATS_JOBS must be a whole number >= 1"):
        _parallel.jobs_wanted()
    with pytest.raises(SpecError, match=r"jobs must be a whole number >= 1.*got 0"):
        _parallel.jobs_wanted(0)


def test_sequential_where_fork_is_unsafe(monkeypatch):
    monkeypatch.delenv(_parallel.JOBS_ENV, raising=False)
    monkeypatch.setattr(_parallel.sys, "platform", "darwin")
    assert _parallel.jobs_wanted() == 1
    assert _parallel.jobs_wanted(2) == 1


# ----------------------------------------------------------------------------- any split
def _adds(key, warning=None, attr=None):
    """A step that adds ``key`` to the tables and figures, maybe a warning and CONSORT."""
    def step(run, *, progress=None):
        run.tables[key] = f"table {key}"
        run.figures[key] = f"<svg>{key}</svg>"
        run.results.setdefault("order", None)  # present once: keeps its first place
        run.results[key] = len(run.tables)  # what this process saw before it
        if warning is not None and warning not in run.warnings:  # as _collect does
            run.warnings.append(warning)
        if attr is not None:
            run.consort_flow = attr
    step.__name__ = f"step_{key}"
    return step


def _bare():
    run = AnalysisRun(spec=None, trial=None)
    run.tables["before"] = "was there"
    run.warnings.append("data: old")
    return run


def test_any_split_merges_in_the_sequential_order():
    """Worker and parent steps interleaved (w p w p w): keys, warnings (a repeated one once,
    where the sequential run has it) and the attribute the worker set come out in order."""
    a, b = _adds("a", "same", attr={"n": 3}), _adds("b", "same")
    c, d, e = _adds("c", "c said"), _adds("d", "d said"), _adds("e", "same")
    order = (a, b, c, d, e)
    one, two = _bare(), _bare()
    _parallel.run_steps(one, order, beside=(a, c, e), jobs=1, preload=())
    _parallel.run_steps(two, order, beside=(a, c, e), jobs=2, preload=())
    assert list(one.tables) == ["before", "a", "b", "c", "d", "e"]
    assert list(two.tables.items()) == list(one.tables.items())
    assert list(two.figures.items()) == list(one.figures.items())
    assert one.warnings == ["data: old", "same", "c said", "d said"]
    assert two.warnings == one.warnings
    assert two.consort_flow == {"n": 3}
    assert list(two.results) == ["order", "a", "b", "c", "d", "e"]
    # each process counted only its own tables: the values differ, the layout does not
    assert two.results["e"] == 4 and one.results["e"] == 6
    assert _children() == []


def _raises(exc):
    def step(run, *, progress=None):
        raise exc
    return step


def test_a_dictionary_a_step_replaces_is_replaced_in_the_merge():
    """A worker step that sets ``run.multiplicity_labels`` to a new dictionary (as the
    mechanisms step does) drops what earlier steps of either process put there."""
    def labels_here(run, *, progress=None):
        run.multiplicity_labels["H0"] = "from an earlier step here"

    def replaces(run, *, progress=None):
        run.multiplicity_labels = {"H1": "the strategy's"}

    def labels_after(run, *, progress=None):
        run.multiplicity_labels["H2"] = "a later step here"

    order = (labels_here, replaces, labels_after)
    one, two = _bare(), _bare()
    _parallel.run_steps(one, order, beside=(replaces,), jobs=1, preload=())
    _parallel.run_steps(two, order, beside=(replaces,), jobs=2, preload=())
    assert one.multiplicity_labels == {"H1": "the strategy's", "H2": "a later step here"}
    assert list(two.multiplicity_labels.items()) == list(one.multiplicity_labels.items())


@pytest.mark.parametrize("wait", ["worker", "idle"])
def test_ctrl_c_while_waiting_for_the_worker_ends_it_at_once(wait, monkeypatch):
    """Ctrl-C while this process waits for the worker (in the result, or in idle work)."""
    import signal
    import threading

    def slow(run, *, progress=None):
        time.sleep(30)

    def quick(run, *, progress=None):
        pass

    idle = (lambda: time.sleep(5),) if wait == "idle" else ()
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _parallel.run_steps(_bare(), (slow, quick), beside=(slow,), jobs=2, preload=(),
                            idle=idle)
    assert time.perf_counter() - t0 < 5
    assert _children() == []


def test_other_warnings_of_the_worker_come_once_per_place_as_in_one_process(recwarn):
    import warnings

    def warns(run, *, progress=None):
        for _ in range(3):
            warnings.warn("a library's warning (test)", UserWarning, stacklevel=1)

    for jobs in (1, 2):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            _parallel.run_steps(_bare(), (warns,), beside=(warns,), jobs=jobs, preload=())
        assert [str(w.message) for w in seen] == ["a library's warning (test)"], jobs


@pytest.mark.parametrize("worker_first", [True, False])
def test_the_first_failing_step_in_order_wins_whichever_process(worker_first):
    there = _raises(LookupError("in the worker (test)"))
    here = _raises(ArithmeticError("here (test)"))
    order = (there, here) if worker_first else (here, there)
    want = LookupError if worker_first else ArithmeticError
    for jobs in (1, 2):
        with pytest.raises(want, match=r"\(test\)$"):
            _parallel.run_steps(_bare(), order, beside=(there,), jobs=jobs, preload=())
    assert _children() == []


def test_the_worker_carries_consort_back(small_two_arm):
    """``describe`` runs in the worker: the CONSORT flow it made is the run's, as sequentially;
    and every other field of the run is the sequential run's too."""
    one = run_analysis(small_two_arm, jobs=1)
    two = run_analysis(small_two_arm, jobs=2)
    assert two.consort_flow is not None
    assert two.consort_flow.counts.equals(one.consort_flow.counts)
    assert list(two.display_tables) == list(one.display_tables)
    for name in two.display_tables:
        assert two.display_tables[name].render("html") == one.display_tables[name].render("html")
    assert two.html_tables == one.html_tables
    assert two.multiplicity_labels == one.multiplicity_labels
    assert [repr(r) for r in two.records] == [repr(r) for r in one.records]  # NaN != NaN
    assert (two.effects is None) == (one.effects is None)
    if one.effects is not None:
        assert two.effects.equals(one.effects)
    assert dumps(two.manifest) == dumps(one.manifest)
    assert list(two.fits) == list(one.fits)
    for name, table in one.tables.items():
        other = two.tables[name]
        assert other.equals(table) if hasattr(table, "equals") else other == table, name


def test_idle_work_runs_only_while_the_worker_is_busy():
    """``idle`` calls fill the wait for a slow worker; an error in one is not the run's; none
    runs once the worker has reported."""
    seen = []

    def slow(run, *, progress=None):
        time.sleep(1.0)

    def quick(run, *, progress=None):
        pass

    def broken():
        seen.append("broken")
        raise RuntimeError("idle work failed (test)")

    _parallel.run_steps(_bare(), (slow, quick), beside=(slow,), jobs=2, preload=(),
                        idle=(broken, lambda: seen.append("warmed")))
    assert seen == ["broken", "warmed"]
    seen.clear()

    def fast(run, *, progress=None):
        pass

    def waits(run, *, progress=None):
        time.sleep(1.0)

    _parallel.run_steps(_bare(), (fast, waits), beside=(fast,), jobs=2, preload=(),
                        idle=(lambda: seen.append("warmed"),))
    assert seen == []
    assert _children() == []
