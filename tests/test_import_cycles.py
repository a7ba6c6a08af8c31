"""Imports run one way (issue 12, point 10): no module of peerstats imports, directly or
through others, a module that imports it back; imports inside functions and under
TYPE_CHECKING count too. The graph is read from the source with ast (nothing is imported).

The layer rule is checked too: the data layer (peerstats.data, io, instruments,
_identifiers) never imports models, missing, design, describe, figures or the pipeline; models
never import the pipeline.

No exceptions: the prepared model's machinery (models._prepared) sits below both
models.prepared (prepare_mmrm, which dispatches to the spatial subclass) and models.mmrm, and
the result building (models._mmrm_result) below models._prepared.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in (SRC / "peerstats").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n in files and n != mod and not files[n].name == "__init__.py":
                    graph[mod].add(n)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


# The layer rule (issue 23.5): the data layer (trial spec, loading, validation, Trial, readers,
# instruments, the privacy helpers) never imports anything above it; models never import the
# pipeline. Relative imports and imports inside functions count.
DATA_LAYER = ("peerstats.data", "peerstats.io", "peerstats.instruments", "peerstats._identifiers")
ABOVE_DATA = (
    "peerstats.models",
    "peerstats.missing",
    "peerstats.design",
    "peerstats.describe",
    "peerstats.figures",
    "peerstats.effects",
    "peerstats.survival",
    "peerstats.economics",
    "peerstats.datasets",
    "peerstats.pipeline",
    "peerstats.cli",
)


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _imported_names(mod: str, path: Path) -> set[str]:
    """Every module named by an import in ``path`` (relative imports resolved)."""
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.add(prefix)
            out.update(f"{prefix}.{a.name}" for a in node.names)
    return out


def _layer_violations(lower: tuple[str, ...], upper: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((SRC / "peerstats").rglob("*.py")):
        mod = _module(path)
        if not _within(mod, lower):
            continue
        for name in sorted(_imported_names(mod, path)):
            if _within(name, upper):
                bad.append(f"{mod} imports {name}")
    return bad


def test_the_data_layer_is_one_package():
    """The trial spec, loading, validation and Trial live in peerstats.data (no top-level copies)."""
    pkg = SRC / "peerstats"
    for name in ("trial_spec", "load", "trial", "validation"):
        assert (pkg / "data" / f"{name}.py").is_file(), name
    for old in ("spec.py", "trial.py", "_trial.py", "validation.py", "pipeline/spec.py"):
        assert not (pkg / old).exists(), old
    assert (pkg / "pipeline" / "analysis_spec.py").is_file()


def test_data_never_imports_models_or_the_pipeline():
    bad = _layer_violations(DATA_LAYER, ABOVE_DATA)
    assert not bad, "the data layer imports a layer above it: " + "; ".join(bad)


def test_models_never_import_the_pipeline():
    bad = _layer_violations(("peerstats.models",), ("peerstats.pipeline", "peerstats.cli"))
    assert not bad, "models import the pipeline: " + "; ".join(bad)


def test_the_layer_check_sees_a_violation(tmp_path):
    """The rule above can fail: a data module that imports models (even relatively) is caught."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..models import mmrm\n", encoding="utf-8")
    names = _imported_names("peerstats.data.x", path)
    assert _within("peerstats.models.mmrm", ABOVE_DATA) and "peerstats.models.mmrm" in names
    assert _within("peerstats.data.checks", DATA_LAYER)
    assert not _within("peerstats.models_extra", ("peerstats.models",))
