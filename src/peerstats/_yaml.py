"""Read YAML specs safely: no Python tags, and an expansion budget for aliases.

``yaml.safe_load`` refuses ``!!python/...`` tags but expands aliases: a few hundred bytes of
nested aliases (the "billion laughs" document) become gigabytes once a spec is turned into
Python values or an error message formats it. :func:`load_yaml` composes the document first
(aliases stay shared nodes, which is cheap), counts the nodes the expanded document would
have, and refuses it when that exceeds ``max_nodes`` (default 100 000: a trial spec has a few
hundred). Anchors and aliases used as intended (a reused item list) are fine.

Two YAML 1.1 habits change a spec silently, so they are refused or turned off here:

- a key written twice in one mapping (PyYAML keeps the last value: ``primary:`` twice made the
  headline analysis another outcome) is a :class:`YAMLDuplicateKeyError` naming the key and
  both lines;
- numbers with a leading zero (``010``, read as octal 8), ``0x``/``0b`` forms and
  sexagesimal ``1:30`` (read as 90) stay text, as YAML 1.2 reads them: a site code ``010``
  is the text "010".
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "load_yaml",
    "YAMLRefusedError",
    "YAMLBudgetError",
    "YAMLDuplicateKeyError",
    "MAX_NODES",
    "non_finite_fields",
]

MAX_NODES = 100_000

#: YAML 1.2 core integers: no leading zeros, no octal/hex/binary, no base 60
_INT_12 = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$")


class YAMLRefusedError(ValueError):
    """Valid YAML that a spec reader refuses (too large once expanded, duplicate keys)."""


class YAMLBudgetError(YAMLRefusedError):
    """A YAML document expands to too many nodes (nested aliases)."""


class YAMLDuplicateKeyError(YAMLRefusedError):
    """A mapping in a YAML document has the same key twice."""


def _expanded_size(root: Any, limit: int) -> int:
    import yaml

    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:  # a recursive alias (&a [*a]): infinite once expanded
            raise YAMLBudgetError("the YAML document refers to itself through an alias")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        active.discard(key)
        memo[key] = total
        return total

    return size(root)


def _loader_class() -> type:
    """SafeLoader with YAML 1.2 integers (built once, on first use); libyaml's parser
    (``CSafeLoader``: the same nodes, marks, resolvers and constructors, scanned in C, several
    times faster: a ``peerstats run`` reads a dozen YAML files; issue 22) when PyYAML has it."""
    global _LOADER
    if _LOADER is None:
        import yaml

        base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

        class SpecLoader(base):  # type: ignore[valid-type, misc]
            pass

        SpecLoader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        SpecLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))
        _LOADER = SpecLoader
    return _LOADER


_LOADER: type | None = None


def _duplicate_keys(root: Any) -> None:
    """Raise :class:`YAMLDuplicateKeyError` for the first mapping with a key written twice."""
    import yaml

    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if k.value in first:
                        raise YAMLDuplicateKeyError(
                            f"the key {k.value!r} is written twice in one mapping (lines "
                            f"{first[k.value]} and {line}); YAML would keep only the last "
                            "value: delete one of them"
                        )
                    first[k.value] = line
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def load_yaml(text: str, *, max_nodes: int = MAX_NODES) -> Any:
    """Parse YAML ``text`` like ``yaml.safe_load`` within an expansion budget.

    Raises
    ------
    yaml.YAMLError
        Not valid YAML (or a tag the safe loader refuses).
    YAMLBudgetError
        The document would expand to more than ``max_nodes`` nodes, or is recursive.
    YAMLDuplicateKeyError
        A mapping has the same key twice.
    """
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_size(node, max_nodes)
        if n > max_nodes:
            raise YAMLBudgetError(
                f"the YAML document expands to more than {max_nodes} values through aliases "
                "(*name); a spec needs far fewer: write the values out or reduce the aliases"
            )
        _duplicate_keys(node)
        return loader.construct_document(node)
    except RecursionError as exc:
        raise YAMLBudgetError("the YAML document is nested too deeply") from exc
    finally:
        loader.dispose()


def non_finite_fields(obj: Any, where: str = "") -> list[str]:
    """Spec problems for every NaN or infinite number in ``obj`` (``.nan``/``.inf`` in YAML).

    JSON Schema's ``number`` admits them, and a NaN delta or bound would flow into an analysis
    and fail there (or worse, compare as false everywhere). Each problem names the field
    (``sensitivity[2].delta.peer[1]``) and is meant for a :class:`~peerstats.SpecError`.
    """
    import math

    out: list[str] = []
    if isinstance(obj, float) and not math.isfinite(obj):
        out.append(f"{where or '(top level)'}: {obj!r} is not a finite number; give a number")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += non_finite_fields(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out += non_finite_fields(v, f"{where}[{i}]")
    return out
