"""Read YAML specs safely: no Python tags, and an expansion budget for aliases.

``yaml.safe_load`` refuses ``!!python/...`` tags but expands aliases: a few hundred bytes of
nested aliases (the "billion laughs" document) become gigabytes once a spec is turned into
Python values or an error message formats it. :func:`load_yaml` composes the document first
(aliases stay shared nodes, which is cheap), counts the nodes the expanded document would
have, and refuses it when that exceeds ``max_nodes`` (default 100 000: a trial spec has a few
hundred). Anchors and aliases used as intended (a reused item list) are fine.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_yaml", "YAMLBudgetError", "MAX_NODES"]

MAX_NODES = 100_000


class YAMLBudgetError(ValueError):
    """A YAML document expands to too many nodes (nested aliases)."""


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


def load_yaml(text: str, *, max_nodes: int = MAX_NODES) -> Any:
    """Parse YAML ``text`` like ``yaml.safe_load`` within an expansion budget.

    Raises
    ------
    yaml.YAMLError
        Not valid YAML (or a tag the safe loader refuses).
    YAMLBudgetError
        The document would expand to more than ``max_nodes`` nodes, or is recursive.
    """
    import yaml

    loader = yaml.SafeLoader(text)
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
        return loader.construct_document(node)
    except RecursionError as exc:
        raise YAMLBudgetError("the YAML document is nested too deeply") from exc
    finally:
        loader.dispose()
