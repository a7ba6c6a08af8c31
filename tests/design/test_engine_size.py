"""Size rule of issue 23 for the engine's many-datasets path and design/: no function over 60
lines of code (docstrings, comments and blank lines not counted)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "peerstats"
FILES = sorted(SRC.glob("design/*.py")) + [
    SRC / "models" / name for name in ("_batch.py", "_batch_blocks.py", "many.py", "_many_data.py")
]
LIMIT = 60


def _code_lines(text: str) -> set[int]:
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in skip and tok.type != tokenize.ENDMARKER:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def _docstring_lines(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.update(range(body[0].lineno, body[0].end_lineno + 1))
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_function_over_the_limit(path):
    text = path.read_text()
    tree = ast.parse(text)
    code = _code_lines(text) - _docstring_lines(tree)
    long = {
        node.name: n
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (n := len(code & set(range(node.lineno, node.end_lineno + 1)))) > LIMIT
    }
    assert not long, f"{path.name}: functions over {LIMIT} lines of code: {long}"
