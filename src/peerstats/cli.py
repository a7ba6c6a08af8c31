"""The ``peerstats`` command.

``peerstats validate SPEC`` checks a trial's data and prints the report (exit 0 when clean,
1 when the data have problems, 2 when the spec itself is wrong); ``peerstats demo`` loads the
bundled synthetic example trial and prints its summary; ``peerstats --version``.
The CLI only calls the public API; it computes nothing of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import peerstats
from peerstats.exceptions import DataValidationError, PeerstatsError, SpecError

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_INVALID, EXIT_SPEC = 0, 1, 2
DEMO_TRIAL = "peer_recovery"


def _cmd_validate(args: argparse.Namespace) -> int:
    from peerstats.validation import validate

    try:
        report = validate(args.spec)
    except SpecError as exc:
        print(f"spec error: {exc}", file=sys.stderr)
        return EXIT_SPEC
    print(report.to_text(max_shown=args.max_problems))
    if args.failures is not None and not report.ok:
        report.failures.to_csv(args.failures, index=False)
        print(f"All {len(report.failures)} problems written to {args.failures}")
    return EXIT_OK if report.ok else EXIT_INVALID


def _cmd_demo(args: argparse.Namespace) -> int:
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
        print(f"the bundled example {args.trial!r} failed validation:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except PeerstatsError as exc:
        print(f"peerstats demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_SPEC if isinstance(exc, SpecError) else EXIT_INVALID
    print(f"Example trial {args.trial!r} (synthetic data) loaded and validated.\n")
    print(trial.summary())
    spec_path = trial.spec.source or trial.spec.base_dir
    print(f"\nThe trial spec is {spec_path}")
    print(f"Validate it yourself: peerstats validate {Path(str(spec_path))}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``validate`` and ``demo``; ``run`` and ``check``
    are reserved for the analysis pipeline)."""
    parser = argparse.ArgumentParser(
        prog="peerstats",
        description="Statistical analysis of randomised trials of peer support in mental health.",
    )
    parser.add_argument("--version", action="version", version=f"peerstats {peerstats.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check a trial's data against its spec and print the report",
        description="Check a trial's data against its spec. Exit status: 0 clean, "
        "1 data problems, 2 spec error.",
    )
    p.add_argument("spec", type=Path, help="trial spec (YAML)")
    p.add_argument(
        "--max-problems",
        type=int,
        default=50,
        metavar="N",
        help="problems to print (default 50; all are counted)",
    )
    p.add_argument(
        "--failures",
        type=Path,
        default=None,
        metavar="CSV",
        help="write every problem to this CSV file",
    )
    p.set_defaults(func=_cmd_validate)

    d = sub.add_parser(
        "demo", help="load the bundled synthetic example trial and print its summary"
    )
    d.add_argument("--trial", default=DEMO_TRIAL, help=f"bundled example (default {DEMO_TRIAL})")
    d.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peerstats`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_SPEC
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
