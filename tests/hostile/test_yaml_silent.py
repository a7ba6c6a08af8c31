"""Issue 24.9: YAML habits that would change a spec silently are refused or turned off."""

import pytest

from peerstats._yaml import YAMLDuplicateKeyError, YAMLRefusedError, load_yaml


def test_a_key_written_twice_is_refused_naming_the_key_and_both_lines():
    text = "title: x\nprimary: qpr15\nvisits: [a, b]\nprimary: empowerment\n"
    with pytest.raises(YAMLDuplicateKeyError, match=r"'primary' is written twice .*lines 2 and 4"):
        load_yaml(text)


def test_a_nested_duplicate_inside_a_list_is_refused_too():
    text = "outcomes:\n  - name: a\n    visit: post\n    visit: follow_up\n"
    with pytest.raises(YAMLRefusedError, match="'visit'"):
        load_yaml(text)


def test_the_same_key_in_different_mappings_and_merge_keys_are_fine():
    text = (
        "base: &b {model: mmrm, df: kr}\n"
        "a: {<<: *b, name: a}\n"
        "c: {<<: *b, name: c}\n"
    )
    got = load_yaml(text)
    assert got["a"] == {"model": "mmrm", "df": "kr", "name": "a"}
    assert got["c"]["name"] == "c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("site: 010", "010"),  # YAML 1.1 would read octal 8
        ("site: 0x1F", "0x1F"),
        ("time: 1:30", "1:30"),  # YAML 1.1 would read base 60: 90
        ("site: 10", 10),
        ("delta: -3", -3),
        ("n: 1_000", 1000),
        ("sd: 0.5", 0.5),
        ("zero: 0", 0),
    ],
)
def test_numbers_follow_yaml_1_2(text, expected):
    value = next(iter(load_yaml(text).values()))
    assert value == expected and type(value) is type(expected)


def test_a_duplicate_key_in_a_trial_spec_is_a_spec_error(tmp_path):
    from peerstats.data.trial_spec import read_spec
    from peerstats.exceptions import SpecError

    spec = tmp_path / "trial.yaml"
    spec.write_text("name: t\nname: u\n", encoding="utf-8")
    with pytest.raises(SpecError, match="'name' is written twice"):
        read_spec(spec)
