"""Size rules of issue 23.6: no function over 100 lines of code, no module over 800 lines.

Lines of code of a function are its source lines that hold a token other than a comment or a
line break, minus the lines of any docstring (of the function, a nested function or class, or
the module); blank and comment-only lines are not counted. A module's size is its physical line
count. This is the counting of the issue's measurement script (``fsize.py``), copied here so
the test needs nothing outside the repository.

``ALLOWED`` lists the offenders that existed when the test was written, in areas other helpers
were still splitting: each may stay at (or below) its recorded count but must not grow. When
you split one of them, REMOVE its entry (the test fails on a stale entry, so the list can only
shrink).
"""

from __future__ import annotations

import ast
import functools
import io
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "peerstats"
MAX_FUNCTION = 100
MAX_MODULE = 800

#: Today's offenders outside the area of issue 23.6 (path relative to src/peerstats, then
#: ``::qualified name`` for functions): name -> current count. Remove entries as they are fixed.
ALLOWED: dict[str, int] = {}  # emptied after the issue-23 merges: no offender is left

#: Issue 23.6: "fewer than 20 over 60" lines of code.
MAX_LONG = 60
MAX_LONG_COUNT = 19


def _code_lines(source: str) -> set[int]:
    """Line numbers that hold a token other than a comment, line break or indentation."""
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def _docstring_lines(tree: ast.Module) -> set[int]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None) if isinstance(node, kinds) else None
        if body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _functions(tree: ast.Module, prefix: str = ""):
    """(qualified name, node) of every function, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


@functools.lru_cache(maxsize=4)
def measure(root: Path = SRC) -> dict[str, int]:
    """Lines of code of every function (``path::qualname``) and lines of every module (``path``)."""
    sizes: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        sizes[rel] = len(source.splitlines())
        tree = ast.parse(source)
        code = _code_lines(source) - _docstring_lines(tree)
        for name, node in _functions(tree):
            n = sum(1 for line in range(node.lineno, node.end_lineno + 1) if line in code)
            key = f"{rel}::{name}"
            sizes[key] = max(n, sizes.get(key, 0))
    return sizes


def _limit(key: str) -> int:
    return MAX_FUNCTION if "::" in key else MAX_MODULE


def _offenders(sizes: dict[str, int], allowed: dict[str, int]) -> dict[str, int]:
    """Over the limit and not allowlisted, or allowlisted and grown."""
    return {k: n for k, n in sizes.items() if n > _limit(k) and n > allowed.get(k, _limit(k))}


def test_offenders_are_new_ones_and_allowlisted_ones_that_grew():
    sizes = {"a.py::f": 101, "a.py::g": 100, "b.py::h": 150, "c.py::k": 151, "big.py": 801}
    allowed = {"b.py::h": 150, "c.py::k": 150}
    assert _offenders(sizes, allowed) == {"a.py::f": 101, "c.py::k": 151, "big.py": 801}


def test_no_function_over_100_lines_of_code_and_no_module_over_800_lines():
    sizes = measure()
    offenders = _offenders(sizes, ALLOWED)
    listing = "\n".join(
        f"  {k}: {n} (limit {_limit(k)}"
        + (f", allowlisted at {ALLOWED[k]}: it grew" if k in ALLOWED else "")
        + ")"
        for k, n in sorted(offenders.items(), key=lambda kv: -kv[1])
    )
    assert not offenders, (
        "functions over 100 lines of code (docstrings, blank and comment lines not counted) or "
        f"modules over 800 lines; split them into small named steps:\n{listing}"
    )


def test_allowlist_only_shrinks():
    sizes = measure()
    stale = sorted(k for k in ALLOWED if sizes.get(k, 0) <= _limit(k))
    assert not stale, (
        "these allowlisted offenders are now within the limit (or gone): remove them from "
        f"ALLOWED in tests/test_code_size.py so they cannot grow back: {stale}"
    )


def test_counting_ignores_docstrings_comments_and_blank_lines(tmp_path):
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "m.py").write_text(
        '"""Module doc."""\n'
        "def f(x):\n"
        '    """Doc\n\n    more doc.\n    """\n'
        "    # a comment\n"
        "\n"
        "    y = (x +\n"
        "         1)\n"
        "    def g():\n"
        '        """Inner doc."""\n'
        "        return 2\n"
        "    return y\n",
        encoding="utf-8",
    )
    sizes = measure(src)
    # f: def line, the two-line expression, def g, return 2, return y
    assert sizes["m.py::f"] == 6
    assert sizes["m.py::f.g"] == 2
    assert sizes["m.py"] == 14


def test_fewer_than_20_functions_over_60_lines_of_code():
    """Issue 23.6 asks for fewer than 20 functions over 60 lines; the list names them."""
    long = {k: n for k, n in measure().items() if "::" in k and n > MAX_LONG}
    assert len(long) <= MAX_LONG_COUNT, (
        f"{len(long)} functions have over {MAX_LONG} lines of code (at most {MAX_LONG_COUNT}): "
        + ", ".join(f"{k} ({n})" for k, n in sorted(long.items(), key=lambda kv: -kv[1]))
    )


#: Areas held to 60 lines of code per function (issues 23.2, 23.4, 23.5): the data layer, the
#: pipeline's steps, outcome types and report parts, and the engine's many-datasets path.
STRICT_AREAS = (
    "data/",
    "io/",
    "instruments/",
    "design/",
    "pipeline/outcomes/",
    "pipeline/steps.py",
    "pipeline/_tables.py",
    "pipeline/_figures.py",
    "pipeline/report.py",
    "pipeline/_sensitivity_run.py",
    "models/_batch.py",
    "models/_batch_blocks.py",
    "models/many.py",
    "models/_many_data.py",
)


def test_strict_areas_have_no_function_over_60_lines_of_code():
    sizes = measure()
    long = {
        k: n
        for k, n in sizes.items()
        if "::" in k and n > MAX_LONG and k.split("::")[0].startswith(STRICT_AREAS)
    }
    assert not long, f"functions over {MAX_LONG} lines of code in the strict areas: {long}"
    # the areas exist (a renamed folder must not silently drop out of the rule)
    for area in STRICT_AREAS:
        assert any(k.startswith(area) for k in sizes), area
