"""Trial specs: parsing, schema checks, rules that span fields. All data synthetic."""

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from peerstats import SpecError
from peerstats.data.trial_spec import TrialSpec, read_spec, trial_spec_schema


def minimal(tmp_path: Path) -> dict:
    (tmp_path / "participants.csv").write_text("id,arm\n1,usual\n")
    (tmp_path / "assessments.csv").write_text("id,visit,qpr15\n1,baseline,3\n")
    return {
        "trial": {"name": "PEER example (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "participants.csv", "assessments": "assessments.csv"},
        "columns": {
            "subject": "id",
            "arm": "arm",
            "visit": "visit",
            "site": "site",
            "group": "group",
        },
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline", "post", "fu3"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60, "higher_is_better": True}},
    }


def test_minimal_dict_spec_parses_with_base_dir(tmp_path):
    spec = read_spec(minimal(tmp_path), base_dir=tmp_path)
    assert isinstance(spec, TrialSpec)
    assert spec.visits == ("baseline", "post", "fu3")
    assert spec.baseline == "baseline"
    assert spec.arms.levels == ("usual", "peer") and spec.arms.reference == "usual"
    assert spec.participants.path == tmp_path.resolve() / "participants.csv"
    assert spec.assessments.layout == "long"
    assert spec.outcome("qpr15").max == 60 and not spec.outcome("qpr15").scored
    assert spec.columns.renames()["id"] == "subject"
    assert spec.synthetic is True and spec.source is None


def test_dict_paths_default_to_cwd(tmp_path, monkeypatch):
    d = minimal(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert read_spec(d).assessments.path == tmp_path / "assessments.csv"


def test_yaml_paths_are_relative_to_the_spec_file(tmp_path, monkeypatch):
    d = minimal(tmp_path)
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(d))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = read_spec(tmp_path / "trial.yaml")
    assert spec.participants.path == (tmp_path / "participants.csv").resolve()
    assert spec.source == (tmp_path / "trial.yaml").resolve()
    assert spec.to_dict() == d


def test_integer_labels_become_strings(tmp_path):
    d = minimal(tmp_path)
    d["arms"] = {"reference": 0, "levels": [0, 1]}
    d["visits"] = [0, 10]
    spec = read_spec(d, base_dir=tmp_path)
    assert spec.arms.levels == ("0", "1") and spec.visits == ("0", "10")


def test_schema_errors_list_every_problem(tmp_path):
    d = minimal(tmp_path)
    d["trial"]["design"] = "crossover"
    del d["visits"]
    d["outcomes"]["bad"] = {"column": "x", "instrument": "QPR-15"}
    with pytest.raises(SpecError) as exc:
        read_spec(d, base_dir=tmp_path)
    msg = str(exc.value)
    assert "3 problems" in msg
    assert "crossover" in msg and "'visits' is a required property" in msg
    assert "exactly one of 'column'" in msg


def test_unknown_key_lists_allowed_keys(tmp_path):
    d = minimal(tmp_path)
    d["columns"]["subjet"] = "id"
    with pytest.raises(SpecError, match="allowed keys are .*'subject'"):
        read_spec(d, base_dir=tmp_path)


def test_parallel_design_needs_two_arms_and_a_reference(tmp_path):
    d = minimal(tmp_path)
    d["arms"] = {"levels": ["peer"]}
    with pytest.raises(SpecError) as exc:
        read_spec(d, base_dir=tmp_path)
    assert "'reference' is a required property" in str(exc.value)
    assert "too short" in str(exc.value)


def test_rules_spanning_fields_are_all_listed(tmp_path):
    d = minimal(tmp_path)
    d["arms"] = {"reference": "control", "levels": ["usual", "peer"], "group_delivered": ["peers"]}
    d["outcomes"]["qpr15"]["min"] = 70
    d["data"]["sessions"] = "sessions.csv"  # does not exist
    with pytest.raises(SpecError) as exc:
        read_spec(d, base_dir=tmp_path)
    msg = str(exc.value)
    assert "4 problems" in msg
    assert "'control' is not an arm; arms are ['usual', 'peer']" in msg
    assert "'peers' is not an arm" in msg
    assert "min (70) is larger than max (60)" in msg
    assert "file not found" in msg and "sessions.csv" in msg


def test_unsupported_file_type(tmp_path):
    d = minimal(tmp_path)
    (tmp_path / "p.json").write_text("{}")
    d["data"]["participants"] = "p.json"
    with pytest.raises(SpecError, match="unsupported file type.*'.csv'"):
        read_spec(d, base_dir=tmp_path)


def test_long_layout_needs_a_visit_column(tmp_path):
    d = minimal(tmp_path)
    del d["columns"]["visit"]
    with pytest.raises(SpecError, match="long assessments need the visit column"):
        read_spec(d, base_dir=tmp_path)
    d["data"]["assessments"] = {"path": "assessments.csv", "layout": "wide", "sep": "_"}
    assert read_spec(d, base_dir=tmp_path).assessments.layout == "wide"


def test_wide_layout_only_for_assessments(tmp_path):
    d = minimal(tmp_path)
    d["data"]["participants"] = {"path": "participants.csv", "layout": "wide"}
    with pytest.raises(SpecError, match="only assessments can have layout 'wide'"):
        read_spec(d, base_dir=tmp_path)


def test_outcome_names_must_not_clash_with_standard_names(tmp_path):
    d = minimal(tmp_path)
    d["outcomes"]["visit"] = {"column": "v"}
    d["outcomes"]["qpr_baseline"] = {"column": "w"}
    with pytest.raises(SpecError) as exc:
        read_spec(d, base_dir=tmp_path)
    assert "outcomes/visit" in str(exc.value) and "outcomes/qpr_baseline" in str(exc.value)


def test_single_arm_design(tmp_path):
    d = minimal(tmp_path)
    d["trial"]["design"] = "single-arm"
    d["arms"] = {"levels": ["peer"]}
    del d["columns"]["arm"]
    assert read_spec(d, base_dir=tmp_path).arms.levels == ("peer",)
    d["arms"] = {"levels": ["peer", "usual"]}
    with pytest.raises(SpecError, match="single-arm trial has one arm"):
        read_spec(d, base_dir=tmp_path)


def test_missing_spec_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        read_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trial: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        read_spec(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecError, match="a trial spec is a mapping"):
        read_spec(scalar)
    with pytest.raises(SpecError, match="a spec is a path or a dict"):
        read_spec(42)


def test_unknown_outcome_lists_outcomes(tmp_path):
    spec = read_spec(minimal(tmp_path), base_dir=tmp_path)
    with pytest.raises(SpecError, match=r"'qpr' is not an outcome; outcomes are \['qpr15'\]"):
        spec.outcome("qpr")


def test_spec_is_frozen(tmp_path):
    spec = read_spec(minimal(tmp_path), base_dir=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


def test_schema_is_a_valid_json_schema_and_published():
    schema = trial_spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    published = Path(__file__).parents[1] / "data_schemas" / "trial-spec.schema.json"
    assert json.loads(published.read_text()) == schema
