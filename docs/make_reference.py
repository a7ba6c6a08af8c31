"""Write docs/guide/reference/*.md from the JSON Schemas the package checks specs against.

Run: .venv/bin/python docs/make_reference.py   (tests/test_guide.py regenerates the text and
compares it with the committed files, so the reference cannot drift from the schemas).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "src" / "peerstats" / "data_schemas"
OUT = ROOT / "docs" / "guide" / "reference"
PAGES = {
    "trial-spec.md": ("trial-spec.schema.json", "Trial spec reference"),
    "analysis-spec.md": ("analysis-spec.schema.json", "Analysis spec reference"),
}
INSTRUMENTS_PAGE = "instruments.md"


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


def _items(names: tuple) -> str:
    return f"`{names[0]}` ... `{names[-1]}`" if len(names) > 2 else ", ".join(f"`{n}`" for n in names)


def render_instruments() -> str:
    """The built-in instruments (``data_schemas/instruments/*.yaml``) as one page (issue 21)."""
    sys.path.insert(0, str(ROOT / "src"))
    from peerstats.instruments import get_instrument

    out = [
        "# Built-in instruments",
        "",
        "Generated from `src/peerstats/data_schemas/instruments/*.yaml` by",
        "`docs/make_reference.py`; do not edit by hand (a test regenerates it and compares).",
        "Use the short name as `instrument:` of an outcome in the trial spec; the item columns",
        "are named as listed unless the outcome lists its own `items:`.",
        "",
        "| instrument | `instrument:` | items (columns) | item range | total | higher is | "
        "reverse-keyed | missing items | subscales |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sources = []
    for path in sorted((SCHEMAS / "instruments").glob("*.yaml")):
        inst = get_instrument(path.stem)
        rule = inst.missing
        missing = f"{rule.method}" + (
            f", at least {rule.min_answered:.0%} answered" if rule.min_answered else ""
        )
        total = (
            f"{inst.total_min:g}-{inst.total_max:g} ({inst.scoring})"
            if inst.total_min is not None
            else inst.scoring
        )
        subs = ", ".join(
            sub.name + ("" if sub.verified else " (unverified)") for sub in inst.subscales
        )
        better = {True: "better", False: "worse", None: ""}[inst.higher_is_better]
        reverse = ", ".join(f"`{r}`" for r in inst.reverse) or "none"
        out.append(
            f"| {inst.name} | `{inst.short_name}` | {inst.n_items}: {_items(inst.items)} | "
            f"{inst.item_min:g}-{inst.item_max:g} | {total} | {better} | {reverse} | "
            f"{missing} | {subs or '-'} |"
        )
        sources.append(f"- **{inst.name}**: {' '.join(str(inst.reference).split())}")
    out += ["", "## Sources", "", *sources]
    return "\n".join(out).rstrip() + "\n"


def main(check: bool = False) -> int:
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    pages = {**{p: (lambda s=s, t=t: render(s, t)) for p, (s, t) in PAGES.items()},
             INSTRUMENTS_PAGE: render_instruments}
    for page, make in pages.items():
        text = make()
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
