"""The pipeline reads as short named steps (issue 23.2): no function of ``pipeline/`` over 100
lines of code, and none over 60 in the step, outcome-type, table, figure and report modules.
Lines of code: non-blank, non-comment lines of the function, its docstring not counted
(Python's ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "src" / "peerstats" / "pipeline"
STRICT = ("steps.py", "_tables.py", "_figures.py", "report.py", "_sensitivity_run.py")


def _loc(node: ast.AST, lines: list[str]) -> int:
    body = node.body
    doc: set[int] = set()
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            doc = set(range(first.lineno, first.end_lineno + 1))
    return sum(
        1
        for i in range(node.lineno, node.end_lineno + 1)
        if i not in doc and lines[i - 1].strip() and not lines[i - 1].strip().startswith("#")
    )


def _sizes():
    for path in sorted(PIPELINE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path, node.name, _loc(node, lines)


def test_no_pipeline_function_over_100_lines():
    long = [f"{p.name}::{n} {k}" for p, n, k in _sizes() if k > 100]
    assert not long, f"split these into named steps: {long}"


def test_steps_outcome_types_and_report_parts_at_most_60_lines():
    strict = [
        f"{p.relative_to(PIPELINE)}::{n} {k}"
        for p, n, k in _sizes()
        if k > 60 and (p.name in STRICT or p.parent.name == "outcomes")
    ]
    assert not strict, f"split these into named steps: {strict}"


def test_the_counter_counts_code_not_docstrings(tmp_path):
    src = 'def f():\n    """Doc\n    string."""\n    # comment\n\n    x = 1\n    return x\n'
    node = ast.parse(src).body[0]
    assert _loc(node, src.splitlines()) == 3  # def, x = 1, return
