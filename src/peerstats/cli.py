"""The ``peerstats`` command.

``peerstats validate SPEC`` checks a trial's data and prints the report (exit 0 when clean,
1 when the data have problems, 2 when the spec itself is wrong);
``peerstats run ANALYSIS --out DIR`` runs an analysis spec and writes the report, results,
tables, figures and manifest (exit 0 ok, 1 data validation failed, 2 spec error, 3 model
failure); ``peerstats check DIR --against EXPECTED`` compares results with stored ones (exit 0
match, 4 drift, plus the codes of ``run`` when it re-runs a spec); ``peerstats power DESIGN`` prints the power of a planned
trial over a grid of n and writes a CSV and a power-curve SVG (exit 0 ok, 2 spec error, 3 model
failure); ``peerstats demo`` loads the
bundled synthetic example trial and prints its summary (``make demo`` runs the example
analysis ``analyses/peer_recovery.yaml`` through ``peerstats run``); ``peerstats --version``.
The CLI only calls the public API; it computes nothing of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import peerstats
from peerstats.exceptions import DataValidationError, PeerstatsError, SpecError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_INVALID, EXIT_SPEC, EXIT_MODEL, EXIT_DRIFT = 0, 1, 2, 3, 4
DEMO_TRIAL = "peer_recovery"


def _shown(exc: object, limit: int = 5000) -> str:
    """An exception's (or path's) text safe to print: identifiers masked, control characters
    escaped, length capped at ``limit`` (0: not capped). Every message the CLI prints goes
    through here (issue 24.1-3: values typed into specs or file names included)."""
    from peerstats._identifiers import cap_text, escape_controls, mask_identifiers

    text = escape_controls(mask_identifiers(str(exc)))
    return cap_text(text, limit) if limit else text


def _refused(message: str, code: int = EXIT_SPEC) -> int:
    """Print ``message`` on stderr; return the exit status ``code``."""
    print(message, file=sys.stderr)
    return code


def _write_all(frame: Any, path: Path, what: str) -> None:
    """Write every row of ``frame`` (``what``: the rows, in words) to the CSV ``path``."""
    from peerstats._safe import write_csv

    write_csv(frame, path, lineterminator=None)
    print(f"All {len(frame)} {what} written to {path}")


def _exit_code(exc: BaseException) -> int:
    """Exit status of a failed ``run``: 1 data, 2 spec, 3 model."""
    from peerstats.exceptions import InsufficientDataError

    if isinstance(exc, DataValidationError | InsufficientDataError):
        return EXIT_INVALID
    if isinstance(exc, SpecError):
        return EXIT_SPEC
    return EXIT_MODEL


@contextlib.contextmanager
def _long_lived_heap(after_first_step: Any = None):
    """Run a pipeline with the garbage collector skipping what earlier steps left alive.

    A run imports pandas, scipy, matplotlib and friends and keeps its results: a heap of
    millions of objects that every full collection rescans (about 0.5 s of a ``peerstats run``,
    including statsmodels' explicit ``gc.collect()`` in Holm's method). Objects alive at the
    start and at the end of each step are moved to the permanent generation
    (:func:`gc.freeze`), and put back (:func:`gc.unfreeze`) when the run ends, so an in-process
    caller keeps a normal collector. The young generation is also collected less often
    during the run (threshold 20 000 allocations instead of 700: about 850 collections and
    0.2 s of a ``peerstats run`` become about 20 and 0.07 s, issue 22), and the thresholds are
    put back at the end. Yields the progress class to use. ``after_first_step``: called once,
    when the run's first step (loading and validating the trial) has succeeded. No number
    changes."""
    import gc

    from peerstats.pipeline import Progress

    pending = [after_first_step] if after_first_step is not None else []

    class _FreezingProgress(Progress):
        @contextlib.contextmanager
        def step(self, label: str):
            with super().step(label):
                yield
            while pending:
                pending.pop()()
            gc.freeze()

    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    try:
        yield _FreezingProgress
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


#: True in the ``peerstats`` console script (``main()`` without arguments), not in-process calls
_CONSOLE = False


def _run_spec(
    spec: Path | str,
    out: Path,
    *,
    force: bool,
    quiet: bool,
    blinded: bool = False,
    key: Path | None = None,
    jobs: int | None = None,
) -> tuple[int, Path | None]:
    from peerstats import _startup

    with _startup.collector_paused():
        from peerstats.pipeline import run
    # the console script imports scipy.stats and matplotlib once the trial is loaded and valid
    # (a spec or data error is reported without them)
    warm = _startup.import_for_run if _CONSOLE else None
    try:
        with _long_lived_heap(after_first_step=warm) as progress_class:
            path = run(
                spec,
                out,
                force=force,
                progress=progress_class(enabled=not quiet),
                blinded=blinded,
                key=key,
                jobs=jobs,
            )
    except DataValidationError as exc:
        failed = f"data validation failed; nothing was written.\n{_shown(exc, 0)}"
        return _refused(failed, EXIT_INVALID), None
    except SpecError as exc:
        return _refused(f"spec error: {_shown(exc)}"), None
    except PeerstatsError as exc:  # ModelSpecificationError, ConvergenceError, Reconciliation
        failure = f"model failure ({type(exc).__name__}): {_shown(exc)}"
        return _refused(failure, _exit_code(exc)), None
    except (OSError, UnicodeError) as exc:  # unreadable spec/trial file, unwritable --out
        return _refused(f"spec error ({type(exc).__name__}): {_shown(exc)}"), None
    except Exception as exc:  # a numerical failure no check foresaw: still no traceback
        return _refused(f"model failure ({type(exc).__name__}): {_shown(exc)}", EXIT_MODEL), None
    return EXIT_OK, path


def _cmd_run(args: argparse.Namespace) -> int:
    code, path = _run_spec(
        args.spec,
        args.out,
        force=args.force,
        quiet=args.quiet,
        blinded=args.blinded,
        key=getattr(args, "key", None),
        jobs=getattr(args, "jobs", None),
    )
    if path is not None:
        print(f"Report: {path / 'report.html'}")
    return code


def _cmd_check(args: argparse.Namespace) -> int:
    import tempfile

    from peerstats.pipeline import compare_results, load_results

    target = Path(args.results)
    try:
        expected = load_results(args.against)
        if target.suffix.lower() in (".yaml", ".yml"):
            with tempfile.TemporaryDirectory(prefix="peerstats-check-") as tmp:
                code, path = _run_spec(target, Path(tmp) / "out", force=False, quiet=args.quiet)
                if path is None:
                    return code
                actual = load_results(path)
        else:
            actual = load_results(target)
        comp = compare_results(actual, expected, rtol=args.rtol, atol=args.atol)
    except (SpecError, OSError, UnicodeError) as exc:
        return _refused(f"spec error: {_shown(exc)}")
    print(comp.to_text(max_rows=args.max_rows))
    if args.drift is not None and not comp.ok:
        _write_all(comp.drift, args.drift, "differences")
    if args.update and not comp.ok:
        from peerstats.pipeline._jsonio import dumps

        dest = Path(args.against)
        dest = dest / "results.json" if dest.is_dir() else dest
        # a symbolic link: update the file it points to, not the link (issue 24.9)
        dest = dest.resolve() if dest.is_symlink() else dest
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(dumps(actual), encoding="utf-8")
        tmp.replace(dest)  # atomic: never a half-written expected file
        print(f"{dest} updated with the new results (review the differences above)")
        return EXIT_OK
    return EXIT_OK if comp.ok else EXIT_DRIFT


def _failures_target(path: Path, spec: object, force: bool) -> str | None:
    """Why ``--failures PATH`` may not be written (``None`` when it may): it is one of the
    spec's inputs (data files, the spec itself), or it exists and ``--force`` was not given."""
    target = Path(path).resolve()
    inputs = [getattr(spec, "source", None)]
    for role in ("participants", "assessments", "sessions"):
        src = getattr(spec, role, None)
        if src is not None:
            inputs.append(src.path)
    if any(p is not None and Path(p).resolve() == target for p in inputs):
        return f"--failures {path} is an input of the trial spec; choose another file"
    if target.is_dir():
        return f"--failures {path} is a folder; give a file name"
    if target.exists() and not force:
        return f"--failures {path} exists; pass --force to overwrite it"
    return None


def _cmd_validate(args: argparse.Namespace) -> int:
    from peerstats.data.trial_spec import read_spec
    from peerstats.data.validation import validate

    try:
        spec = read_spec(args.spec)
        if args.failures is not None:
            refused = _failures_target(args.failures, spec, args.force)
            if refused:
                return _refused(f"spec error: {refused}")
        report = validate(spec)
    except SpecError as exc:
        return _refused(f"spec error: {_shown(exc)}")
    print(report.to_text(max_shown=args.max_problems))
    if args.failures is not None and not report.ok:
        _write_all(report.failures, args.failures, "problems")
    return EXIT_OK if report.ok else EXIT_INVALID


def _demo_spec(trial: str) -> Path | dict:
    """The example analysis of a bundled trial: ``analyses/<trial>.yaml`` of a source checkout
    (what ``make demo`` runs), else the same plan in its simplest form."""
    root = Path(__file__).resolve().parents[2]
    path = root / "analyses" / f"{trial}.yaml"
    if path.is_file():
        return path
    from peerstats import datasets

    spec = datasets.load(trial).spec
    visits = [str(v) for v in spec.visits]
    outcomes = list(spec.outcome_names)
    return {
        "analysis": {"name": f"{trial}_demo", "title": f"Example analysis of {trial} (synthetic)"},
        "trial": {"dataset": trial},
        "primary": {"outcome": outcomes[0], "visit": visits[1]},
        "secondary": {"outcomes": outcomes[1:]},
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    code = _demo_summary(args)
    if code != EXIT_OK or args.summary:
        return code
    out = Path(args.out) if args.out is not None else Path("peerstats-demo") / args.trial
    force = out.is_dir() and (out / "manifest.json").is_file()  # replace an earlier demo only
    print(f"\nRunning the example analysis into {out} ...")
    code, path = _run_spec(_demo_spec(args.trial), out, force=force, quiet=args.quiet)
    if path is not None:
        print(f"Report: {path / 'report.html'}")
    return code


def _demo_summary(args: argparse.Namespace) -> int:
    try:
        from peerstats import datasets

        load = datasets.load
    except (ImportError, AttributeError):
        print(
            "peerstats demo: the bundled example trials are not available in this install "
            "(peerstats.datasets.load is missing).",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        trial = load(args.trial)
    except DataValidationError as exc:
        print(
            f"the bundled example {args.trial!r} failed validation:\n{_shown(exc, 0)}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    except PeerstatsError as exc:
        print(f"peerstats demo: {type(exc).__name__}: {_shown(exc)}", file=sys.stderr)
        return EXIT_SPEC if isinstance(exc, SpecError) else EXIT_INVALID
    print(f"Example trial {args.trial!r} (synthetic data) loaded and validated.\n")
    print(trial.summary())
    spec_path = trial.spec.source or trial.spec.base_dir
    print(f"\nThe trial spec is {spec_path}")
    print(f"Validate it yourself: peerstats validate {Path(str(spec_path))}")
    return EXIT_OK


def _parse_n_grid(text: str) -> list[int]:
    """``100:400:20`` (from:to:by, inclusive), ``100,150,200`` or ``120``."""
    try:
        if ":" in text:
            parts = [int(x) for x in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            lo, hi = parts[0], parts[1]
            by = parts[2] if len(parts) == 3 else 1
            if by <= 0 or hi < lo:
                raise ValueError
            return list(range(lo, hi + 1, by))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SpecError(
            f"--n {text!r}: give FROM:TO[:BY] (e.g. 100:400:20), a list 100,150 or one number"
        ) from None


class _Bar:
    """A one-line progress bar on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        k = int(width * done / max(total, 1))
        sys.stderr.write(f"\rsimulating [{'#' * k}{'.' * (width - k)}] {done}/{total} chunks")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_power(args: argparse.Namespace) -> int:
    """``peerstats power design.yaml``: power table, CSV and power-curve SVG."""
    from peerstats.design.design import read_design
    from peerstats.design.power import power_curve

    client = cluster = None
    try:
        design, options = read_design(args.design)
        target = float(options.get("power", 0.8))
        ns = _power_grid(design, options, args.n, target)
        sim = options.get("simulation", {})
        n_sims = args.simulate
        seed = args.seed if args.seed is not None else sim.get("seed")
        if n_sims is not None and n_sims < 1:
            raise SpecError(f"--simulate: a positive number of simulated trials, not {n_sims}")
        if args.workers is not None and args.workers < 1:
            raise SpecError(f"--workers: at least 1 worker process, not {args.workers}")
        if n_sims is not None and (args.workers or args.scheduler):
            client, cluster = _power_client(args.scheduler, args.workers)
        curve = power_curve(
            design,
            ns,
            method="simulation" if n_sims else "analytic",
            n_sims=n_sims or 1,
            seed=seed,
            client=client,
            progress=_Bar(not args.quiet) if n_sims else None,
        )
    except SpecError as exc:
        return _refused(f"spec error: {_shown(exc)}")
    except PeerstatsError as exc:
        return _refused(f"model failure ({type(exc).__name__}): {_shown(exc)}", EXIT_MODEL)
    except (OSError, UnicodeError, TimeoutError) as exc:  # unreadable file, unreachable scheduler
        return _refused(f"spec error ({type(exc).__name__}): {_shown(exc)}")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(design.summary())
    print()
    print(curve.table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return _write_power_outputs(curve, design, target, Path(args.out))


def _power_grid(design, options: dict, n_arg: str | None, target: float) -> list[int]:
    """The n grid: ``--n``, else the design's ``n``, else around the sample size for the
    power target (whole delivery groups only in a partially nested design)."""
    from peerstats.design.power import sample_size

    if n_arg is not None:
        ns = _parse_n_grid(n_arg)
    elif "n" in options:
        g = options["n"]
        ns = list(g) if isinstance(g, list) else list(range(g["from"], g["to"] + 1, g.get("by", 1)))
    else:
        ss = sample_size(design, target)
        step = max(1, ss.n // 10)
        if design.partially_nested:
            step = max(step, design.group_sizes[0])
        ns = [k for k in range(max(2, ss.n - 5 * step), ss.n + 5 * step + 1, step)]
        if design.partially_nested:  # whole delivery groups only
            ns = [next(j for j in range(k, k + 10_000) if design.whole_groups(j)) for k in ns]
            ns = [k for k in ns if max(design.group_sizes) <= design.n_per_arm(k)[design.group_arm]]
        ns = sorted(set(ns) | {ss.n})
    if not ns:
        raise SpecError("--n: no sample size in the grid")
    return ns


def _power_client(scheduler: str | None, workers: int | None):
    """A dask client on ``scheduler``, else on a local cluster of ``workers`` processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def _write_power_outputs(curve, design, target: float, out: Path) -> int:
    """``<name>_power.csv`` and ``<name>_power.svg`` in ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        csv_path = out / f"{design.name}_power.csv"
        svg_path = out / f"{design.name}_power.svg"
        from peerstats._safe import write_csv

        write_csv(curve.table, csv_path, lineterminator=None)  # text cells quoted (issue 13.4)
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ax = curve.plot(target=target)
        ax.figure.savefig(svg_path, format="svg", bbox_inches="tight")
        plt.close(ax.figure)
    except OSError as exc:
        return _refused(f"cannot write to {_shown(out)}: {_shown(exc)}")
    print(f"\nWritten: {csv_path}, {svg_path}")
    return EXIT_OK


def _subcommand(sub: Any, name: str, func: Any, help: str, description: str | None = None):
    """A subcommand's parser, running ``func(args)``."""
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def _option(p: Any, flag: str, metavar: str, help: str, **kw: Any) -> None:
    """An option taking a value: its flag, the value's name in the help, the help text."""
    p.add_argument(flag, metavar=metavar, help=help, **kw)


def _flag(p: Any, *flags: str, help: str) -> None:
    """An on/off option (``store_true``)."""
    p.add_argument(*flags, action="store_true", help=help)


def _add_validate(sub: Any) -> None:
    """The ``validate`` subcommand."""
    p = _subcommand(
        sub, "validate", _cmd_validate,
        help="check a trial's data against its spec and print the report",
        description="Check a trial's data against its spec. Exit status: 0 clean, "
        "1 data problems, 2 spec error.",
    )
    p.add_argument("spec", type=Path, help="trial spec (YAML)")
    _option(p, "--max-problems", "N", "problems to print (default 50; all are counted)",
            type=int, default=50)
    _option(p, "--failures", "CSV",
            "write every problem to this CSV file (never an input file of the spec)",
            type=Path, default=None)
    _flag(p, "--force", help="overwrite an existing --failures file")


def _add_run(sub: Any) -> None:
    """The ``run`` subcommand."""
    r = _subcommand(
        sub, "run", _cmd_run,
        help="run an analysis spec: report.html, results.json, tables, figures, manifest",
        description="Run an analysis spec (analyses/<name>.yaml) and write DIR/report.html, "
        "results.json, tables/*.csv, figures/*.svg and manifest.json. The folder appears only "
        "when everything succeeded. Exit status: 0 ok, 1 data validation failed, 2 spec error "
        "(also: DIR exists without --force), 3 model failure.",
    )
    r.add_argument("spec", type=Path, help="analysis spec (YAML)")
    _option(r, "--out", "DIR", "output folder", type=Path, required=True)
    _flag(r, "--force", help="replace DIR if it exists")
    _flag(r, "--quiet", "-q", help="no progress lines")
    _flag(r, "--blinded", help="open report for a data-monitoring committee: arms coded A/B "
          "everywhere, between-arm comparisons omitted")
    _option(r, "--key", "FILE", "with --blinded: the closed key file holding the secret of the "
            "A/B coding (created if absent; an existing FILE reproduces the same coding). Keep "
            "it out of the open report. The closed report (by arm, with the code) goes to "
            "<out>-closed", type=Path)
    _option(r, "--jobs", "N", "processes: 2 makes the descriptive tables and figures (and runs "
            "subgroups/mediation) on a second core while the sensitivity analyses run, 1 is "
            "sequential (same results; default: "
            "PEERSTATS_JOBS, else 2 where fork is available)", type=int)


def _add_check(sub: Any) -> None:
    """The ``check`` subcommand."""
    c = _subcommand(
        sub, "check", _cmd_check,
        help="compare results with stored expected results and print what drifted",
        description="Compare RESULTS (a result folder, a results.json, or an analysis spec "
        "YAML, which is re-run first) with EXPECTED (a results.json). Numbers match when "
        "|actual - expected| <= atol + rtol * |expected|. Exit status: 0 match, 4 drift, "
        "2 spec error; a re-run can also end 1 or 3 as `peerstats run`.",
    )
    c.add_argument("results", help="result folder, results.json or analysis spec (YAML)")
    _option(c, "--against", "EXPECTED", "expected results.json", required=True)
    c.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    c.add_argument("--atol", type=float, default=1e-8, help="absolute tolerance (default 1e-8)")
    _option(c, "--max-rows", "N", "differences to print (0: only their count)",
            type=int, default=50)
    _option(c, "--drift", "CSV", "write every difference to this CSV file",
            type=Path, default=None)
    _flag(c, "--quiet", "-q", help="no progress lines when re-running")
    _flag(c, "--update", help="after printing the differences, replace EXPECTED with the new "
          "results (for a reviewed, intended change)")


def _add_power(sub: Any) -> None:
    """The ``power`` subcommand."""
    pw = _subcommand(
        sub, "power", _cmd_power,
        help="power and sample size of a planned trial (design YAML)",
        description="Power of a planned trial over a grid of n per arm (control arm), analytic "
        "and optionally by simulation. Prints a table, writes <name>_power.csv and "
        "<name>_power.svg to --out. Exit status: 0 ok, 2 spec error, 3 model failure.",
    )
    pw.add_argument("design", type=Path, help="design spec (YAML, see analyses/designs/)")
    _option(pw, "--n", "GRID", "n per arm: FROM:TO[:BY] (e.g. 100:400:20) or a list 100,150 "
            "(default: the design's n grid, else around the sample size for its power target)",
            default=None)
    _option(pw, "--simulate", "N_SIMS",
            "also simulate N_SIMS trials per grid point (progress bar on stderr)",
            type=int, default=None)
    pw.add_argument("--seed", type=int, default=None, help="root seed of the simulation")
    grp = pw.add_mutually_exclusive_group()
    _option(grp, "--workers", "N",
            "run the simulation on a local dask cluster of N worker processes",
            type=int, default=None)
    _option(grp, "--scheduler", "ADDRESS", "run the simulation on this dask.distributed "
            "scheduler", default=None)
    _option(pw, "--out", "DIR", "folder for the CSV and SVG (default: current folder)",
            type=Path, default=Path("."))
    _flag(pw, "--quiet", "-q", help="no progress bar")


def _add_demo(sub: Any) -> None:
    """The ``demo`` subcommand."""
    d = _subcommand(
        sub, "demo", _cmd_demo, "load the bundled synthetic example trial and print its summary"
    )
    d.add_argument("--trial", default=DEMO_TRIAL, help=f"bundled example (default {DEMO_TRIAL})")
    _option(d, "--out", "DIR",
            "output folder (default peerstats-demo/<trial>; an earlier demo there is replaced)",
            type=Path, default=None)
    _flag(d, "--summary", help="only print the trial summary")
    _flag(d, "--quiet", "-q", help="no progress lines")


def _add_init(sub: Any) -> None:
    """The ``init`` subcommand."""
    i = _subcommand(
        sub, "init", _cmd_init,
        help="draft a trial spec from a REDCap data dictionary",
        description="Draft a trial spec (YAML) for a REDCap project from its data dictionary: "
        "labels, choices, validation ranges and identifier flags come from the dictionary. "
        "Edit the draft before use; guesses are marked '# check'. Exit status: 0 written, "
        "2 the dictionary cannot be read or OUT exists without --force.",
    )
    _option(i, "--from-redcap", "DICTIONARY", "the REDCap data dictionary (CSV)",
            required=True, type=Path)
    _option(i, "--records", "CSV",
            "the records export: gives the events (visits), outcomes and sessions",
            type=Path, default=None)
    _option(i, "--out", "FILE", "write the draft here (default: print it)",
            type=Path, default=None)
    i.add_argument("--name", default="my_trial", help="the trial's name in the draft")
    _flag(i, "--force", help="overwrite an existing --out file")




def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands validate, run, check, power, demo, init)."""
    parser = argparse.ArgumentParser(
        prog="peerstats",
        description="Statistical analysis of randomised trials of peer support in mental health.",
    )
    parser.add_argument("--version", action="version", version=f"peerstats {peerstats.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_validate(sub)
    _add_run(sub)
    _add_check(sub)
    _add_power(sub)
    _add_demo(sub)
    _add_init(sub)
    return parser


def _cmd_init(args: argparse.Namespace) -> int:
    from peerstats.io.redcap_spec import draft_trial_spec

    out = args.out
    if out is not None and out.exists() and not args.force:
        return _refused(f"spec error: {out} exists; pass --force to overwrite it")
    try:
        text = draft_trial_spec(
            args.from_redcap,
            records=args.records,
            name=args.name,
            spec_dir=out.resolve().parent if out is not None else None,
        )
    except PeerstatsError as exc:
        return _refused(f"spec error: {_shown(exc)}")
    if out is None:
        print(text, end="")
        return EXIT_OK
    out.write_text(text, encoding="utf-8")
    print(f"Draft trial spec written to {out}; edit it, then: peerstats validate {out}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peerstats`` console script; returns the exit status.

    Called without ``argv`` (the console script, ``python -m peerstats.cli``) the process
    ends right after: the heap is frozen (:func:`gc.freeze`) so that the interpreter's last
    garbage collection does not walk the millions of objects a run leaves (about 0.4 s of a
    ``peerstats run``, issue 22), and then the process leaves at once (:func:`_leave`): the
    ``atexit`` work is done and the output streams are flushed, the interpreter's teardown
    of every module and object is skipped. Called with ``argv`` (tests, scripts) it only
    returns the exit status."""
    global _CONSOLE
    _CONSOLE = argv is None
    code = _main(argv)
    if argv is None:
        import gc

        gc.freeze()
        _leave(code)
    return code


def _leave(code: int) -> None:
    """End the process now with exit status ``code``, as the interpreter would but without
    its teardown (freeing the modules and objects a run leaves: 0.05-0.1 s, issue 22).

    What matters of an ordinary exit is done first: the ``atexit`` callbacks (multiprocessing
    reaps its children and runs its finalizers, logging flushes its handlers, temporary
    folders are removed), then stdout and stderr are flushed. When another (non-daemon)
    thread still runs, or a stream cannot be flushed (a reader that left), this returns and
    the interpreter exits the ordinary way: it waits for the thread, or reports the stream,
    as before."""
    import atexit
    import os
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None:  # pragma: no cover - not CPython
        return
    run_exitfuncs()  # each callback runs once: the interpreter would not repeat them
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_SPEC
    try:
        return args.func(args)
    except BrokenPipeError:
        # `peerstats validate spec.yaml | head -3`: the reader left; stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C: no traceback; 130 as a shell reports SIGINT
        print(f"peerstats {args.command}: interrupted", file=sys.stderr)
        return 130
    except PeerstatsError as exc:  # a command let one through: report it by its kind
        return _refused(f"{type(exc).__name__}: {_shown(exc)}", _exit_code(exc))
    except Exception as exc:  # no input may end in a traceback (exit 3: could not compute)
        print(
            f"peerstats {args.command}: unexpected {type(exc).__name__}: {_shown(exc)}\n"
            "This is a bug in peerstats; please report it with the command you ran.",
            file=sys.stderr,
        )
        return EXIT_MODEL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
