"""Analysis specs: schema, cross-checks against the trial spec, every example spec valid."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from pipeline_support import ANALYSES, EXAMPLES

import peerstats
from peerstats.exceptions import SpecError
from peerstats.pipeline import analysis_spec_schema, read_analysis_spec


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(analysis_spec_schema())


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_specs_are_valid_and_fit_their_trials(name):
    spec = read_analysis_spec(ANALYSES / f"{name}.yaml")
    assert spec.name == name
    assert spec.dataset == name
    trial_spec = peerstats.read_spec(spec.trial_path)
    spec.check_against(trial_spec)  # raises on any problem
    assert spec.primary_outcome == trial_spec.outcome_names[0]


def test_every_example_analysis_has_expected_results():
    for name in EXAMPLES:
        expected = json.loads((ANALYSES / "expected" / f"{name}.json").read_text())
        assert expected["analysis"]["name"] == name


def test_schema_problems_are_all_reported(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "analysis": {"name": "x"},
                "trial": {"dataset": "peer_recovery"},
                "primary": {"outcome": "qpr15", "visit": "post"},
                "model": {"type": "glm", "df": "satterthwaite"},
                "multiplicity": {"method": "sidak"},
                "colour": "blue",
            }
        )
    )
    with pytest.raises(SpecError) as exc:
        read_analysis_spec(path)
    msg = str(exc.value)
    assert "model/type" in msg and "'glm' is not one of" in msg
    assert "multiplicity/method" in msg
    assert "colour" in msg and "allowed keys are" in msg
    assert "3 problems" in msg


def test_relative_trial_path_and_missing_file(tmp_path):
    from peerstats import datasets

    spec = {
        "analysis": {"name": "x"},
        "trial": str(datasets.path("icbt_peer")),
        "primary": {"outcome": "gad7", "visit": "post"},
    }
    assert read_analysis_spec(spec).trial_path == datasets.path("icbt_peer")
    spec["trial"] = "nowhere/spec.yaml"
    with pytest.raises(SpecError, match="file not found"):
        read_analysis_spec(spec, base_dir=tmp_path)
    spec["trial"] = {"dataset": "no_such_trial"}
    with pytest.raises(SpecError, match="not a bundled dataset"):
        read_analysis_spec(spec)


def test_cross_checks_against_the_trial_spec():
    spec = read_analysis_spec(
        {
            "analysis": {"name": "x"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr", "visit": "baseline"},
            "secondary": {"outcomes": ["wsas", "hope"]},
            "model": {"type": "auto", "covariance": "ar1", "covariates": ["age"]},
            "responders": [{"outcome": "qpr15", "visit": "week2"}],
        }
    )
    with pytest.raises(SpecError) as exc:
        spec.check_against(peerstats.read_spec(spec.trial_path))
    msg = str(exc.value)
    assert "primary/outcome: 'qpr' is not an outcome" in msg
    assert "secondary/outcomes/1: 'hope' is not an outcome" in msg
    assert "'baseline' is the baseline" in msg
    assert "set model/type to 'mmrm' to use 'ar1'" in msg
    assert "model/covariates" in msg
    assert "responders/0/visit" in msg


def test_single_arm_rejects_comparative_models():
    spec = read_analysis_spec(
        {
            "analysis": {"name": "x"},
            "trial": {"dataset": "icbt_feasibility"},
            "primary": {"outcome": "gad7", "visit": "post"},
            "model": {"type": "mmrm"},
        }
    )
    with pytest.raises(SpecError, match="single-arm study"):
        spec.check_against(peerstats.read_spec(spec.trial_path))


def test_lmm_needs_random_terms():
    spec = read_analysis_spec(
        {
            "analysis": {"name": "x"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
            "model": {"type": "lmm"},
        }
    )
    with pytest.raises(SpecError, match="needs random terms"):
        spec.check_against(peerstats.read_spec(spec.trial_path))


def test_numeric_visits_in_the_analysis_spec(tmp_path):
    """A trial with visits [0, 8] (numbers in YAML): ``visit: 8`` and label keys 0/8 work."""
    (tmp_path / "p.csv").write_text("id,arm\n1,usual\n2,peer\n")
    (tmp_path / "a.csv").write_text("id,visit,y\n1,0,1\n1,8,2\n2,0,3\n2,8,4\n")
    (tmp_path / "trial.yaml").write_text(
        "trial: {name: Numeric visits (synthetic), design: parallel, synthetic: true}\n"
        "data: {participants: p.csv, assessments: a.csv}\n"
        "columns: {subject: id, arm: arm, visit: visit}\n"
        "arms: {reference: usual, levels: [usual, peer]}\n"
        "visits: [0, 8]\n"
        "outcomes: {y: {column: y, min: 0, max: 10}}\n"
    )
    (tmp_path / "analysis.yaml").write_text(
        "analysis: {name: numeric}\ntrial: trial.yaml\nprimary: {outcome: y, visit: 8}\n"
        "labels: {visits: {0: baseline, 8: 8 weeks}}\n"
    )
    spec = read_analysis_spec(tmp_path / "analysis.yaml")
    assert spec.primary_visit == "8"
    assert spec.label("visits", "8") == "8 weeks" and spec.label("visits", "0") == "baseline"
