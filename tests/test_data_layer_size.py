"""The data layer reads as small named steps (issue 23.5): no function of ``data/``, ``io/``
or ``instruments/`` over 60 lines of code, no module over 800 lines. Lines of code: non-blank,
non-comment lines of the function, its docstring not counted (Python's ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "peerstats"
DATA_LAYER = [PKG / "data", PKG / "io", PKG / "instruments"]


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


def _files() -> list[Path]:
    return sorted(p for d in DATA_LAYER for p in d.rglob("*.py"))


def test_no_data_layer_function_over_60_lines():
    long = []
    for path in _files():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _loc(node, lines)
                if n > 60:
                    long.append(f"{path.relative_to(PKG)}::{node.name} {n}")
    assert not long, f"split these into named steps: {long}"


def test_no_data_layer_module_over_800_lines():
    big = [
        f"{p.relative_to(PKG)} {n}"
        for p in _files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800
    ]
    assert not big, f"split these modules: {big}"


def test_the_size_rule_counts_code_not_docstrings():
    src = 'def f():\n    """doc\n\n    more doc\n    """\n    # a comment\n\n    return 1\n'
    node = ast.parse(src).body[0]
    assert _loc(node, src.splitlines()) == 2  # the def line and the return
