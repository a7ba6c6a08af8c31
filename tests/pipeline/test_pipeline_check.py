"""`peerstats check`: comparison at stated tolerances and the drift table."""

from __future__ import annotations

import json

import pytest
from pipeline_support import ANALYSES, EXPECTED

from peerstats.cli import main
from peerstats.exceptions import SpecError
from peerstats.pipeline import compare_results
from peerstats.pipeline.check import flatten

EXPECTED_DOC = {
    "models": {"gad7": {"coefficients": {"arm[T.b]": {"estimate": 1.5, "p_value": 1e-12}}}},
    "primary": {"sentence": "GAD-7 was 1.5 points lower", "outcome": "gad7"},
    "warnings": ["one"],
}


def _perturbed(**changes):
    doc = json.loads(json.dumps(EXPECTED_DOC))
    coef = doc["models"]["gad7"]["coefficients"]["arm[T.b]"]
    coef.update(changes)
    return doc


def test_flatten_paths():
    flat = flatten(EXPECTED_DOC)
    assert flat["models/gad7/coefficients/arm[T.b]/estimate"] == 1.5
    assert flat["warnings/0"] == "one"
    assert "primary/sentence" not in flat  # display text derived from checked numbers


def test_identical_and_within_tolerance_match():
    assert compare_results(EXPECTED_DOC, EXPECTED_DOC).ok
    near = _perturbed(estimate=1.5 * (1 + 5e-5), p_value=2e-12)
    comp = compare_results(near, EXPECTED_DOC)
    assert comp.ok and comp.n_compared == 4
    assert "all match" in comp.to_text()


def test_drift_beyond_tolerance_is_reported_with_its_path():
    comp = compare_results(_perturbed(estimate=1.6), EXPECTED_DOC, rtol=1e-4)
    assert not comp.ok
    row = comp.drift.iloc[0]
    assert row["path"] == "models/gad7/coefficients/arm[T.b]/estimate"
    assert row["status"] == "changed"
    assert row["abs_diff"] == pytest.approx(0.1)
    assert row["rel_diff"] == pytest.approx(0.1 / 1.5)
    assert "1 drifted" in comp.to_text() and "arm[T.b]/estimate" in comp.to_text()
    # a looser tolerance accepts it
    assert compare_results(_perturbed(estimate=1.6), EXPECTED_DOC, rtol=0.1).ok


def test_missing_new_and_changed_text_are_drift():
    doc = _perturbed()
    del doc["models"]["gad7"]["coefficients"]["arm[T.b]"]["p_value"]
    doc["extra"] = 1
    doc["primary"]["outcome"] = "phq9"
    comp = compare_results(doc, EXPECTED_DOC)
    got = dict(zip(comp.drift["path"], comp.drift["status"]))
    assert got == {
        "models/gad7/coefficients/arm[T.b]/p_value": "missing",
        "primary/outcome": "changed",
        "extra": "new",
    }


def test_negative_tolerance_and_missing_file(tmp_path):
    with pytest.raises(SpecError):
        compare_results(EXPECTED_DOC, EXPECTED_DOC, rtol=-1)
    with pytest.raises(SpecError, match="no results file"):
        compare_results(tmp_path, EXPECTED_DOC)


def test_cli_check_exit_codes_and_drift_table(example_runs, tmp_path, capsys):
    out = example_runs["icbt_peer"]
    expected = EXPECTED / "icbt_peer.json"
    assert main(["check", str(out), "--against", str(expected)]) == 0
    assert "all match" in capsys.readouterr().out

    drifted = json.loads(expected.read_text())
    key = "gad7|post|icbt_peer - icbt"
    drifted["effects"][key]["estimate"] += 0.5
    bad = tmp_path / "expected.json"
    bad.write_text(json.dumps(drifted))
    csv = tmp_path / "drift.csv"
    assert (
        main(["check", str(out / "results.json"), "--against", str(bad), "--drift", str(csv)]) == 4
    )
    text = capsys.readouterr().out
    assert f"effects/{key}/estimate" in text and "changed" in text
    assert csv.read_text().count("\n") == 2  # header + one drifted value
    assert main(["check", str(tmp_path / "nope"), "--against", str(expected)]) == 2


def test_cli_check_reruns_an_analysis_spec(capsys):
    spec = ANALYSES / "icbt_feasibility.yaml"
    expected = EXPECTED / "icbt_feasibility.json"
    assert main(["check", str(spec), "--against", str(expected), "--quiet"]) == 0
    assert "all match" in capsys.readouterr().out


def test_cli_check_update_rewrites_expected(example_runs, tmp_path, capsys):
    expected = tmp_path / "expected.json"
    doc = json.loads((EXPECTED / "icbt_peer.json").read_text())
    doc["trial"]["n_assessed"] = 1
    expected.write_text(json.dumps(doc))
    out = example_runs["icbt_peer"]
    assert main(["check", str(out), "--against", str(expected), "--update"]) == 0
    assert "updated" in capsys.readouterr().out
    assert expected.read_bytes() == (out / "results.json").read_bytes()
    assert main(["check", str(out), "--against", str(expected)]) == 0


def test_non_finite_values_and_bools_are_compared_strictly():
    from peerstats.exceptions import SpecError
    from peerstats.pipeline import compare_results

    expected = {"a": 1.0, "b": float("inf"), "c": 1, "d": float("nan"), "e": 2.0}
    same = compare_results(dict(expected), expected)
    assert same.ok  # NaN == NaN and inf == inf count as unchanged
    drift = compare_results({"a": float("nan"), "b": 5.0, "c": True, "d": 0.0, "e": 2.0}, expected)
    assert sorted(drift.drift["path"]) == ["a", "b", "c", "d"]
    with pytest.raises(SpecError, match="finite"):
        compare_results(expected, expected, rtol=float("nan"))


def test_cli_check_update_through_a_symlink_updates_the_target(example_runs, tmp_path, capsys):
    """Issue 24.9: the link stays a link, and the file it points to gets the new results."""
    target = tmp_path / "store" / "expected.json"
    target.parent.mkdir()
    doc = json.loads((EXPECTED / "icbt_peer.json").read_text())
    doc["trial"]["n_assessed"] = 1
    target.write_text(json.dumps(doc))
    link = tmp_path / "expected.json"
    link.symlink_to(target)
    out = example_runs["icbt_peer"]
    assert main(["check", str(out), "--against", str(link), "--update"]) == 0
    assert link.is_symlink()
    assert target.read_bytes() == (out / "results.json").read_bytes()


def test_check_max_rows_zero_prints_only_the_count(example_runs, tmp_path, capsys):
    """``--max-rows 0`` crashed with a TypeError; it prints the count of differences."""
    expected = tmp_path / "expected.json"
    doc = json.loads((EXPECTED / "icbt_peer.json").read_text())
    doc["trial"]["n_assessed"] = 1
    expected.write_text(json.dumps(doc))
    out = example_runs["icbt_peer"]
    code = main(["check", str(out), "--against", str(expected), "--max-rows", "0"])
    text = capsys.readouterr().out
    assert code == 4 and "1 drifted." in text and "n_assessed" not in text
