"""The EQ-5D value-set schema is checked once here, not on every call (issue 22): it must be a
valid JSON Schema, and a spec it refuses must get jsonschema.validate's own message (the
reference: ``best_match`` of the errors)."""

from __future__ import annotations

import importlib

import jsonschema
import pytest
from jsonschema.validators import validator_for

from peerstats.exceptions import SpecError

eq5d = importlib.import_module(
    "peerstats.economics.eq5d"
)  # the module (the package exports the function)


def test_the_shipped_schema_is_valid():
    schema = eq5d._schema()
    validator_for(schema).check_schema(schema)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"levels": 3},
        {"levels": "three", "model": "lookup"},
        {"levels": 5, "model": "no such model", "name": "x"},
    ],
)
def test_a_refused_value_set_has_jsonschemas_message(spec):
    with pytest.raises(jsonschema.ValidationError) as reference:
        jsonschema.validate(spec, eq5d._schema())
    with pytest.raises(SpecError) as ours:
        eq5d._from_dict(spec, "value set")
    assert str(ours.value).endswith(f"not a valid EQ-5D value set: {reference.value.message}")
