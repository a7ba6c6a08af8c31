"""`peerstats run`: every example analysis re-run against its committed expected results (the
CI re-run), the output folder, determinism, atomic writes, exit codes and progress lines.

Data: the bundled SYNTHETIC example trials. Expected results: ``analyses/expected/<name>.json``,
written by ``peerstats run`` when the analysis was signed off (regenerate with
``peerstats run analyses/<name>.yaml --out DIR`` and copy ``DIR/results.json`` after review).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import unescape
from pathlib import Path

import pytest
import yaml
from pipeline_support import ANALYSES, EXAMPLES, EXPECTED, write_analysis

from peerstats.cli import main
from peerstats.pipeline import compare_results, run_analysis, write_results
from peerstats.pipeline.check import ATOL, RTOL


# ---------------------------------------------------------------- the CI re-run of every example
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_matches_expected_results(example_runs, name):
    comp = compare_results(example_runs[name], EXPECTED / f"{name}.json", rtol=RTOL, atol=ATOL)
    assert comp.ok, "results drifted from analyses/expected:\n" + comp.to_text()
    assert comp.n_compared > 100


@pytest.mark.parametrize("name", EXAMPLES)
def test_output_folder_contents(example_runs, name):
    out = example_runs[name]
    assert {p.name for p in out.iterdir()} == {
        "report.html",
        "results.json",
        "manifest.json",
        "tables",
        "figures",
    }
    assert (out / "tables" / "outcomes.csv").stat().st_size > 0
    assert (out / "tables" / "consort.csv").is_file()
    svgs = sorted(p.name for p in (out / "figures").glob("*.svg"))
    assert "forest.svg" in svgs and "consort.svg" in svgs
    for svg in (out / "figures").glob("*.svg"):
        assert svg.read_text().lstrip().startswith("<?xml")
    assert not list(out.parent.glob(f".{name}.tmp-*")), "temporary folder left behind"


def test_primary_result_of_the_peer_example(example_runs):
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text())
    prim = res["primary"]
    assert (prim["outcome"], prim["visit"]) == ("qpr15", "post")
    (contrast,) = prim["contrasts"]
    assert contrast == "peer - usual"
    est = prim["contrasts"][contrast]
    assert est["ci_lower"] < est["estimate"] < est["ci_upper"]
    assert res["models"]["qpr15"]["model"] == "partially nested lmm"
    assert "icc" in res["models"]["qpr15"] and "design_effect" in res["models"]["qpr15"]
    # secondary outcomes carry Holm-adjusted p-values, the primary does not
    eff = res["effects"]
    assert eff["qpr15|post|peer - usual"]["p_adjusted"] is None
    assert eff["wsas|post|peer - usual"]["p_adjusted"] >= eff["wsas|post|peer - usual"]["p_value"]


def test_report_is_self_contained_and_leads_with_the_primary_result(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text()
    assert "<script" not in html.lower()
    for attr in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', html):
        assert attr.startswith(("data:", "#")), f"external reference in the report: {attr}"
    assert "http://" not in html.split("<style>")[0] and "@import" not in html
    sentence = unescape(re.search(r"data-primary-sentence>([^<]+)<", html).group(1))
    assert re.fullmatch(
        r"QPR-15 at post-treatment was \d+\.\d points higher \(95% CI -?\d+\.\d to \d+\.\d\) "
        r"with peer support than with usual services \(p [<=] [\d.]+, Cohen's d [\d.-]+\)"
        r"; higher is better on QPR-15, so the estimate favours peer support\.",
        sentence,
    ), sentence
    first = html.index("data-primary-sentence")
    assert first < html.index("id='consort'") < html.index("id='models'")
    for section in ("Table 1", "Model details", "Provenance", "warnings"):
        assert section in html
    # 8 figures + residual diagnostics + the sensitivity forest and tipping-point figures, the
    # forest of ratios (binary/count outcomes, issue 16), the cost-effectiveness plane and
    # CEAC (issue 18), and the "Heterogeneity and mechanisms" figures (issue 19: subgroup
    # forest, age effect curve, mediation sensitivity)
    assert html.count("data:image/svg+xml;base64,") == 17
    assert "id='mechanisms'" in html


def test_single_arm_report_shows_feasibility_and_change(example_runs):
    out = example_runs["icbt_feasibility"]
    res = json.loads((out / "results.json").read_text())
    assert res["trial"]["design"] == "single-arm"
    assert "feasibility" in res and "within_group_change" in res
    assert res["models"]["gad7"]["model"] == "single-arm mmrm"
    html = (out / "report.html").read_text()
    assert "than at baseline" in html and "not a comparison with a control group" in html
    assert "Feasibility" in html and "Within-group change" in html


def test_manifest_records_inputs_versions_and_times(example_runs):
    from peerstats import datasets

    out = example_runs["icbt_peer"]
    man = json.loads((out / "manifest.json").read_text())
    folder = datasets.path("icbt_peer").parent
    for role, fname in [
        ("trial_spec", "spec.yaml"),
        ("participants", "participants.csv"),
        ("assessments", "assessments.csv"),
        ("sessions", "sessions.csv"),
    ]:
        digest = hashlib.sha256((folder / fname).read_bytes()).hexdigest()
        assert man["inputs"][role]["sha256"] == digest
    spec_digest = hashlib.sha256((ANALYSES / "icbt_peer.yaml").read_bytes()).hexdigest()
    assert man["inputs"]["analysis_spec"]["sha256"] == spec_digest
    assert man["versions"]["peerstats"] and man["versions"]["numpy"] and man["versions"]["python"]
    assert man["platform"]["system"] and man["seed"] == 20200826
    assert man["started"] <= man["finished"]
    got = hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    assert man["outputs"]["results.json"] == got
    # the package's own files, hashed independently here
    import peerstats

    root = Path(peerstats.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.suffix in (".py", ".json", ".yaml") and "__pycache__" not in path.parts
                and not (rel.parts[0] == "datasets" and path.suffix != ".py")):
            h.update(rel.as_posix().encode())
            h.update(path.read_bytes())
    assert man["peerstats_source_sha256"] == h.hexdigest()
    # times live only in the manifest
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", (out / "results.json").read_text())


# ---------------------------------------------------------------- determinism
def test_same_inputs_give_byte_identical_results(example_runs, tmp_path):
    """A second run, in a fresh process with another hash seed, writes the same bytes."""
    import os
    import subprocess
    import sys

    again = tmp_path / "again"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "peerstats.cli", "run", str(ANALYSES / "icbt_feasibility.yaml")]
    done = subprocess.run(
        [*cmd, "--out", str(again), "-q"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    first = example_runs["icbt_feasibility"]
    assert (again / "results.json").read_bytes() == (first / "results.json").read_bytes()
    for sub in ("tables", "figures"):
        for p in sorted(q for q in (first / sub).rglob("*") if q.is_file()):
            rel = p.relative_to(first)
            assert (again / rel).read_bytes() == p.read_bytes(), rel


# ---------------------------------------------------------------- atomic output, --force
def test_existing_folder_needs_force(small_trial, tmp_path, capsys):
    spec = write_analysis(tmp_path, small_trial)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old"
    # --force replaces earlier results only, never a folder of other files
    assert main(["run", str(spec), "--out", str(out), "-q", "--force"]) == 2
    assert "not an earlier peerstats result folder" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old"
    (out / "keep.txt").unlink()
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 2  # exists (empty): needs --force
    assert main(["run", str(spec), "--out", str(out), "-q", "--force"]) == 0
    assert (out / "results.json").is_file()
    (out / "results.json").write_text("stale")
    assert main(["run", str(spec), "--out", str(out), "-q", "--force"]) == 0  # results: replaced
    assert (out / "results.json").read_text() != "stale"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_force_never_deletes_inputs_or_the_current_folder(small_trial, tmp_path, capsys,
                                                           monkeypatch):
    spec = write_analysis(tmp_path, small_trial)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    # the folder holding the trial's data
    data_dir = small_trial.parent
    assert main(["run", str(spec), "--out", str(data_dir), "-q", "--force"]) == 2
    # the current folder
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec), "--out", ".", "-q", "--force"]) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_failed_write_leaves_nothing_behind(small_trial, tmp_path):
    spec = write_analysis(tmp_path, small_trial)
    result = run_analysis(spec)

    def broken(root, run):
        (root / "results.json").write_text("{}")
        raise OSError("disk full")

    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        write_results(result, out, _writer=broken)
    assert not out.exists()
    # an existing result survives a failed --force replacement untouched
    write_results(result, out)
    before = (out / "results.json").read_bytes()
    with pytest.raises(OSError, match="disk full"):
        write_results(result, out, force=True, _writer=broken)
    assert (out / "results.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------- exit codes
def test_exit_1_when_data_validation_fails(small_trial, tmp_path, capsys):
    a = small_trial.parent / "assessments.csv"
    lines = a.read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = "9"  # gad_1 is 0-3
    lines[1] = ",".join(cells)
    a.write_text("\n".join(lines) + "\n")
    spec = write_analysis(tmp_path, small_trial)
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "data validation failed" in err and "out_of_range" in err and "gad_1" in err
    assert not out.exists()


def test_exit_2_on_a_spec_error(small_trial, tmp_path, capsys):
    spec = write_analysis(tmp_path, small_trial, primary={"outcome": "gad7", "visit": "week9"})
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 2
    assert "'week9' is not a visit" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml"), "--out", str(out), "-q"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("analysis: [unclosed\n")
    assert main(["run", str(bad), "--out", str(out), "-q"]) == 2
    assert not out.exists()


def test_exit_3_on_a_model_failure(tmp_path, capsys):
    spec = tmp_path / "a.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "analysis": {"name": "bad_model"},
                "trial": {"dataset": "icbt_peer"},
                "primary": {"outcome": "gad7", "visit": "post"},
                "model": {"type": "lmm", "random": "(1 | no_such_column)"},
                "figures": [],
                "tables": ["outcomes"],
            }
        )
    )
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 3
    assert "model failure" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- progress
def test_progress_lines_and_quiet(small_trial, tmp_path, capsys):
    spec = write_analysis(tmp_path, small_trial)
    assert main(["run", str(spec), "--out", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    assert "fitting the model of gad7 ... done" in cap.err  # plain lines: not a terminal
    assert "\r" not in cap.err
    assert cap.out.strip() == f"Report: {(tmp_path / 'a' / 'report.html').resolve()}"
    warned = [ln for ln in cap.err.splitlines() if ln.startswith("warning: ")]
    assert main(["run", str(spec), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    # quiet: no progress lines; the run's warnings are still printed (issue 24.5)
    assert capsys.readouterr().err.splitlines() == warned


def test_copy_of_a_trial_elsewhere_runs(tmp_path):
    """A spec that names its trial by a relative path (as users write them)."""
    from peerstats import datasets

    trial = tmp_path / "data"
    shutil.copytree(datasets.path("icbt_feasibility").parent, trial)
    spec = write_analysis(tmp_path, trial / "spec.yaml")
    text = spec.read_text().replace(str(trial / "spec.yaml"), "data/spec.yaml")
    spec.write_text(text)
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "-q"]) == 0


# ---------------------------------------------------------------- model section
def _effects(spec: dict) -> dict:
    base = {"figures": [], "tables": ["outcomes"]}
    return run_analysis({**base, **spec}).results["primary"]["contrasts"]


def test_explicit_models_reproduce_the_automatic_choice():
    """`model: {type: mmrm}` / `{type: lmm}` written out by hand give what `auto` picks."""
    common = {"analysis": {"name": "x"}}
    auto = _effects(
        {
            **common,
            "trial": {"dataset": "icbt_peer"},
            "primary": {"outcome": "gad7", "visit": "post"},
        }
    )
    mmrm = _effects(
        {
            **common,
            "trial": {"dataset": "icbt_peer"},
            "primary": {"outcome": "gad7", "visit": "post"},
            "model": {"type": "mmrm", "covariance": "us", "df": "satterthwaite"},
        }
    )
    assert mmrm["icbt_peer - icbt"]["estimate"] == pytest.approx(
        auto["icbt_peer - icbt"]["estimate"], rel=1e-6
    )
    assert mmrm["icbt_peer - icbt"]["df"] == pytest.approx(auto["icbt_peer - icbt"]["df"], rel=1e-4)
    auto = _effects(
        {
            **common,
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
        }
    )
    lmm = _effects(
        {
            **common,
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
            "model": {
                "type": "lmm",
                "random": "(1 | subject) + (0 + delivered | group)",
                "residual_by": "arm",
            },
        }
    )
    for key in ("estimate", "std_error", "ci_lower", "ci_upper"):
        assert lmm["peer - usual"][key] == pytest.approx(auto["peer - usual"][key], rel=1e-4)


def test_covariates_enter_the_model():
    res = run_analysis(
        {
            "analysis": {"name": "x"},
            "trial": {"dataset": "icbt_peer"},
            "primary": {"outcome": "gad7", "visit": "post"},
            "model": {"type": "mmrm", "covariance": "cs", "covariates": ["age"]},
            "figures": [],
            "tables": ["outcomes"],
        }
    ).results
    model = res["models"]["gad7"]
    assert model["formula"] == "gad7 ~ gad7_baseline + age + arm * visit"
    assert "age" in model["coefficients"] and model["covariance"].startswith("cs")


def test_progress_on_a_terminal_rewrites_the_step_line():
    import io

    from peerstats.pipeline import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with Progress(stream=stream).step("fitting"):
        pass
    text = stream.getvalue()
    assert text.startswith("\u2026 fitting") and "\r\u2713 fitting (" in text
    quiet = Tty()
    with Progress(enabled=False, stream=quiet).step("fitting"):
        pass
    assert quiet.getvalue() == ""


def test_make_demo_runs_the_primary_example_through_run():
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    import subprocess

    out = subprocess.run(
        [make, "-n", "demo"], cwd=ANALYSES.parent, capture_output=True, text=True, check=True
    ).stdout
    assert "peerstats run analyses/peer_recovery.yaml --out" in out


def test_exit_3_when_a_model_does_not_converge(small_trial, tmp_path, monkeypatch, capsys):
    import dataclasses

    import peerstats

    real = peerstats.analyze

    class NotConverged:
        def __init__(self, fit):
            self._fit = fit

        converged = False

        def __getattr__(self, name):
            return getattr(self._fit, name)

    def analyze(trial, **kw):
        res = real(trial, **kw)
        return dataclasses.replace(res, fit=NotConverged(res.fit))

    monkeypatch.setattr(peerstats, "analyze", analyze)
    spec = write_analysis(tmp_path, small_trial)
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 3
    assert "did not converge" in capsys.readouterr().err
    assert not out.exists()


def test_primary_sentence_for_a_negative_difference_states_a_positive_interval(example_runs):
    """icbt_peer: GAD-7 lower with peer support. "x points lower (95% CI a to b)" must give a
    and b on the same (lower-by) scale: a = -ci_upper, b = -ci_lower of the contrast."""
    res = json.loads((example_runs["icbt_peer"] / "results.json").read_text())
    (c,) = res["primary"]["contrasts"].values()
    assert c["estimate"] < 0 < -c["ci_upper"]
    html = (example_runs["icbt_peer"] / "report.html").read_text()
    m = re.search(r"was (\d+\.\d) points lower \(95% CI (-?\d+\.\d) to (-?\d+\.\d)\)", html)
    assert m, "primary sentence not found"
    est, lo, hi = (float(x) for x in m.groups())
    assert est == pytest.approx(-c["estimate"], abs=0.05)
    assert lo == pytest.approx(-c["ci_upper"], abs=0.05) and hi == pytest.approx(-c["ci_lower"], abs=0.05)


def test_two_responder_analyses_of_one_outcome_both_kept(small_trial, tmp_path):
    spec = write_analysis(
        tmp_path, small_trial,
        tables=["outcomes", "responders"],
        responders=[{"outcome": "gad7", "visit": "post"}, {"outcome": "gad7", "visit": "fu3"}],
    )
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 0
    tables = sorted(p.name for p in (out / "tables").glob("responders_*.csv"))
    assert tables == ["responders_gad7_fu3.csv", "responders_gad7_post.csv"]
    post = (out / "tables" / "responders_gad7_post.csv").read_text()
    fu3 = (out / "tables" / "responders_gad7_fu3.csv").read_text()
    assert "post" in post and "fu3" not in post and "fu3" in fu3
