"""Issue 22, the console script's start and exit (peerstats/cli.py): it leaves with
``os._exit`` once the ``atexit`` callbacks ran and stdout/stderr are flushed, and it imports
``scipy.stats`` without scipy's docstring rewriting. Nothing it prints or returns may change:
each test runs the command as a separate process and checks the whole output, the exit status
and what an ordinary exit does (atexit callbacks, waiting for a non-daemon thread). No timing
here (benchmarks/bench_startup.py measures)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import peerstats

SPEC = str(peerstats.datasets.path("peer_recovery"))


def _script(body: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``body`` then the console script's ``sys.exit(main())`` with ``args``; stdout is a
    pipe and Python's buffering is on (PYTHONUNBUFFERED removed)."""
    code = textwrap.dedent(body) + "\nfrom peerstats.cli import main\nsys.exit(main())\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env)


def test_output_is_complete_and_atexit_callbacks_run():
    done = _script(
        """
        import atexit, sys
        atexit.register(lambda: print("atexit callback ran", file=sys.stderr))
        """,
        "validate", SPEC,
    )
    reference = subprocess.run(  # the same command, ended by the ordinary interpreter exit
        [sys.executable, "-c", "import sys; from peerstats.cli import main; "
         f"sys.exit(main(['validate', {SPEC!r}]))"], capture_output=True, text=True)
    assert done.returncode == reference.returncode == 0
    assert done.stdout == reference.stdout and done.stdout.startswith("Trial spec:")
    assert "atexit callback ran" in done.stderr


def test_exit_status_of_a_failure_is_kept():
    done = _script("import sys", "run", "no-such-analysis.yaml", "--out", "unused-folder")
    assert done.returncode == 2
    assert done.stderr.startswith("spec error:")


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    flag = tmp_path / "thread-finished"
    done = _script(
        f"""
        import sys, threading, time
        def late():
            time.sleep(0.3)
            open({str(flag)!r}, "w").close()
        threading.Thread(target=late, daemon=False).start()
        """,
        "validate", SPEC,
    )
    assert done.returncode == 0
    assert flag.exists()  # the process did not leave before the thread ended


def test_scipy_stats_imported_without_docstring_rewriting_is_whole():
    """After the lean import no module keeps the stand-in, scipy's FunctionDoc is back where
    it was, and the functions, signatures and numbers are scipy's."""
    probe = textwrap.dedent(
        """
        import inspect, sys
        from peerstats import _startup
        _startup.import_scipy_stats_lean()
        import scipy.stats
        from scipy._lib import _docscrape
        left = [n for n, m in list(sys.modules.items())
                if getattr(m, "__dict__", {}).get("FunctionDoc") is _startup._DocAsIs]
        print(left)
        print(scipy.stats._axis_nan_policy.FunctionDoc is _docscrape.FunctionDoc)
        r = scipy.stats.ttest_ind([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 7.0])
        print(repr(float(r.statistic)), repr(float(r.pvalue)), repr(scipy.stats.t.sf(2.1, 7)))
        print(inspect.signature(scipy.stats.ttest_ind))
        """
    )
    lean = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    plain = subprocess.run(
        [sys.executable, "-c", probe.replace("_startup.import_scipy_stats_lean()", "")],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert lean[0] == "[]" and lean[1] == "True"
    assert lean[2:] == plain[2:]  # the same numbers (repr: every digit) and signature


def test_matplotlib_imported_without_kwdoc_draws_the_same():
    """After the lean import ``kwdoc`` is matplotlib's again, the artists' ``set()``
    signatures are matplotlib's, and a figure saved as SVG is byte for byte the one drawn
    after an ordinary import."""
    probe = textwrap.dedent(
        """
        import hashlib, inspect, io
        from peerstats import _startup
        _startup.import_matplotlib_lean()
        import matplotlib
        matplotlib.use("Agg")
        matplotlib.rcParams["svg.hashsalt"] = "peerstats"
        import matplotlib.artist, matplotlib.lines, matplotlib.pyplot as plt
        print(matplotlib.artist.kwdoc(matplotlib.lines.Line2D).startswith("Properties:"))
        print(inspect.signature(matplotlib.lines.Line2D.set))
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1, 2], [1.0, 0.5, 2.0], marker="o", label="arm")
        ax.errorbar([1], [1.0], yerr=[0.3]); ax.set_title("Forest"); ax.legend()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        print(hashlib.sha256(buf.getvalue().encode()).hexdigest())
        """
    )
    lean = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    plain = subprocess.run(
        [sys.executable, "-c", probe.replace("_startup.import_matplotlib_lean()", "")],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert lean[0] == "True"
    assert lean == plain


def test_a_run_that_fails_on_its_data_reports_it_without_the_heavy_imports(tmp_path):
    """The console script imports scipy.stats and matplotlib for a run only once the trial has
    loaded and validated: a data error (exit 1) is reported without them."""
    import yaml

    from test_cli import write_trial

    write_trial(tmp_path, "id,visit,qpr15\n1,baseline,61\n2,baseline,28\n")  # 61 > max 60
    analysis = {"analysis": {"name": "bad"}, "trial": "trial.yaml",
                "primary": {"outcome": "qpr15", "visit": "post"}}
    (tmp_path / "analysis.yaml").write_text(yaml.safe_dump(analysis))
    done = _script(
        """
        import atexit, sys
        atexit.register(lambda: print("heavy:", sorted(m for m in ("scipy.stats", "matplotlib")
                                                      if m in sys.modules), file=sys.stderr))
        """,
        "run", str(tmp_path / "analysis.yaml"), "--out", str(tmp_path / "out"),
    )
    assert done.returncode == 1, done.stderr
    assert "data validation failed" in done.stderr
    assert "heavy: []" in done.stderr


def test_python_m_peerstats_is_the_console_script(tmp_path):
    """``python -m peerstats`` runs the CLI (same version line and exit status)."""
    done = subprocess.run([sys.executable, "-m", "peerstats", "--version"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("peerstats ")
    bad = subprocess.run([sys.executable, "-m", "peerstats", "no-such-command"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
