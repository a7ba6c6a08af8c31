"""Write docs/guide/reference/*.md from the JSON Schemas the package checks specs against.

Run: .venv/bin/python docs/make_reference.py   (tests/test_guide.py regenerates the text and
compares it with the committed files, so the reference cannot drift from the schemas).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "src" / "peerstats" / "data_schemas"
OUT = ROOT / "docs" / "guide" / "reference"
PAGES = {
    "trial-spec.md": ("trial-spec.schema.json", "Trial spec reference"),
    "analysis-spec.md": ("analysis-spec.schema.json", "Analysis spec reference"),
}


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        target = dict(root["$defs"][ref.split("/")[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return target
    return node


def _kind(node: dict, root: dict) -> str:
    node = _resolve(node, root)
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_kind(n, root) for n in node.get("oneOf", node.get("anyOf", [])))
    t = node.get("type")
    if isinstance(t, list):
        t = " or ".join(t)
    if t == "array":
        items = node.get("items")
        return f"list of {_kind(items, root)}" if isinstance(items, dict) else "list"
    if t == "object" and "properties" not in node and isinstance(
        node.get("additionalProperties"), dict
    ):
        return f"mapping of name to {_kind(node['additionalProperties'], root)}"
    bounds = []
    for key, word in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            bounds.append(f"{word} {node[key]}")
    return (t or "any") + (f" ({', '.join(bounds)})" if bounds else "")


def _rows(node: dict, root: dict, path: str, out: list[str]) -> None:
    node = _resolve(node, root)
    for alt in node.get("oneOf", []):
        alt = _resolve(alt, root)
        if alt.get("type") == "object" and "properties" in alt:
            node = alt
    props = node.get("properties", {})
    required = set(node.get("required", []))
    for name, sub in props.items():
        full = f"{path}.{name}" if path else name
        subr = _resolve(sub, root)
        desc = str(subr.get("description", "")).replace("|", "\\|").replace("\n", " ")
        req = "yes" if name in required else ""
        out.append(f"| `{full}` | {_kind(sub, root).replace('|', '/')} | {req} | {desc} |")
        if subr.get("type") == "object" or "properties" in subr or any(
            _resolve(a, root).get("properties") for a in subr.get("oneOf", [])
        ):
            _rows(subr, root, full, out)
        items = subr.get("items")
        if isinstance(items, dict) and _resolve(items, root).get("properties"):
            _rows(items, root, f"{full}[]", out)
        extra = subr.get("additionalProperties")
        if isinstance(extra, dict) and _resolve(extra, root).get("properties"):
            _rows(extra, root, f"{full}.<name>", out)


def render(schema_file: str, title: str) -> str:
    root = json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8"))
    out = [
        f"# {title}",
        "",
        f"Generated from `src/peerstats/data_schemas/{schema_file}` by `docs/make_reference.py`;",
        "do not edit by hand (a test regenerates it and compares).",
        "",
        str(root.get("description", "")),
        "",
        "| key | value | required | meaning |",
        "|---|---|---|---|",
    ]
    _rows(root, root, "", out)
    return "\n".join(out).rstrip() + "\n"


def main(check: bool = False) -> int:
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for page, (schema, title) in PAGES.items():
        text = render(schema, title)
        path = OUT / page
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(page)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale reference pages: {stale}; run docs/make_reference.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
