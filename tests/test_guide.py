"""The user guide (issue 12, point 1): its Python blocks run, its spec blocks pass the schemas,
and the schema reference is what docs/make_reference.py generates today."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))
SCHEMAS = ROOT / "src" / "peerstats" / "data_schemas"


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(_blocks(page, "python")):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "yaml")], ids=lambda p: p.name)
def test_spec_blocks_pass_their_schema(page):
    schemas = {
        "# trial spec": json.loads((SCHEMAS / "trial-spec.schema.json").read_text("utf-8")),
        "# analysis spec": json.loads((SCHEMAS / "analysis-spec.schema.json").read_text("utf-8")),
    }
    checked = 0
    for block in _blocks(page, "yaml"):
        first = block.splitlines()[0].strip()
        if first in schemas:
            jsonschema.validate(yaml.safe_load(block), schemas[first])
            checked += 1
    assert checked


def test_reference_is_generated_from_the_schemas():
    ns = runpy.run_path(str(ROOT / "docs" / "make_reference.py"))
    for page, (schema, title) in ns["PAGES"].items():
        committed = (GUIDE / "reference" / page).read_text(encoding="utf-8")
        assert committed == ns["render"](schema, title), (
            f"docs/guide/reference/{page} is stale: run docs/make_reference.py"
        )


def test_readme_links_the_guide_and_names_the_cli():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/guide/README.md" in readme
    assert ".venv/bin/peerstats" in readme
    assert "../shared/ARCHITECTURE.md" not in readme


def test_instrument_page_is_generated_from_the_instrument_files():
    """docs/guide/reference/instruments.md lists every built-in instrument as the YAML files
    in data_schemas/instruments/ define it today (issue 21)."""
    ns = runpy.run_path(str(ROOT / "docs" / "make_reference.py"))
    committed = (GUIDE / "reference" / ns["INSTRUMENTS_PAGE"]).read_text(encoding="utf-8")
    assert committed == ns["render_instruments"](), (
        "docs/guide/reference/instruments.md is stale: run docs/make_reference.py"
    )
    files = sorted((ROOT / "src" / "peerstats" / "data_schemas" / "instruments").glob("*.yaml"))
    rows = [ln for ln in committed.splitlines() if ln.startswith("| ") and "`" in ln]
    assert len(rows) - 1 == len(files)  # the header, then one row per instrument file
