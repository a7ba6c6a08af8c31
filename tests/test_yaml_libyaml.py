"""Specs are scanned by libyaml when PyYAML has it (issue 22): the values must be those of
PyYAML's pure-Python SafeLoader with the same YAML 1.2 integer rule (the reference), for every
YAML file of the repository and for the corner cases of YAML 1.1 typing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from peerstats import _yaml

ROOT = Path(__file__).resolve().parents[1]
CORNERS = [
    "a: 010\nb: 0x1F\nc: 1:30\nd: 1_000\ne: -0\nf: +5\ng: 0o17\n",
    "x: yes\ny: No\nz: on\nw: ~\nv: null\n",
    "t: 2001-12-14t21:59:43.10-05:00\nd: 2002-12-14\n",
    "f: .inf\ng: -.Inf\nh: .NaN\ni: 1e3\nj: 6.8523015e+5\nk: 1.\n",
    "\ufeffa: 1\n",
    "s: 'it''s'\nq: \"tab\\there \\u00e9\"\nm: |\n  line1\n  line2\nn: >\n  folded\n  text\n",
    "- &a {x: 1}\n- *a\n- <<: *a\n  y: 2\n",
    "émoji: 😀\n'012': x\n",
    "",
]


def _reference_loader() -> type:
    class Reference(yaml.SafeLoader):
        pass

    Reference.yaml_implicit_resolvers = _yaml._loader_class().yaml_implicit_resolvers
    return Reference


def _load(cls: type, text: str):
    loader = cls(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _texts():
    for pattern in ("src/**/*.yaml", "analyses/**/*.yaml", "tests/**/*.yaml", "tests/**/*.yml"):
        for path in sorted(ROOT.glob(pattern)):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")
    for k, text in enumerate(CORNERS):
        yield f"corner {k}", text


def test_libyaml_is_used_when_available():
    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml: the pure-Python loader is used")
    assert issubclass(_yaml._loader_class(), yaml.CSafeLoader)


def test_the_same_values_as_the_pure_python_loader():
    reference = _reference_loader()
    n = 0
    for name, text in _texts():
        ours = _yaml.load_yaml(text)
        assert _same(ours, _load(reference, text)), name
        n += 1
    assert n > 20  # the bundled specs, instruments and analyses were compared


@pytest.mark.parametrize("text", ["a:\n\t- 1\n", "k: [1, 2\n", "a: b: c\n", "x: \x07\n"])
def test_invalid_yaml_is_a_yaml_error_as_before(text):
    with pytest.raises(yaml.YAMLError):
        _load(_reference_loader(), text)
    with pytest.raises(yaml.YAMLError):
        _yaml.load_yaml(text)
