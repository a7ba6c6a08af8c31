"""The JSON-schema errors of a spec, as the spec readers list them (internal)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from peerstats._identifiers import cap_text

__all__ = ["schema_errors"]


def schema_errors(raw: Any, schema: dict) -> Iterator[tuple[Any, str, str]]:
    """Every error of ``raw`` against ``schema`` (JSON Schema 2020-12), in path order, as
    ``(error, where, message)``: ``where`` the slash path ("(top level)" for the root), the
    message capped (it formats the offending value)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        yield err, where, cap_text(err.message, 300)
