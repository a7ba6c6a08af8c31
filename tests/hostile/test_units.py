"""Issue 13, one defect per test at the level of the function that fixes it."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from hostile_corpus import (
    CPR,
    CPR_BARE,
    EMAIL_IDN,
    PHONE_SE,
    PNR,
    PNR_SPACE,
    SAMORDNING,
    copy_trial,
)

from peerstats import DataValidationError, ModelSpecificationError, SpecError
from peerstats._identifiers import looks_identifying, mask_identifiers, mask_value
from peerstats._safe import safe_cell, safe_frame, write_csv
from peerstats._yaml import YAMLBudgetError, load_yaml

# --- identifiers (13.1, 13.2) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kind",
    [
        (PNR, "personnummer"),
        (PNR_SPACE, "personnummer"),
        (SAMORDNING, "personnummer"),
        (CPR, "CPR number"),
        (CPR_BARE, "CPR number"),
        (PHONE_SE, "phone number"),
        ("+46 70 123 45 67", "phone number"),
        (EMAIL_IDN, "e-mail address"),
        (f"moved away, new phone {PHONE_SE}", "phone number"),
        (f"withdrew consent (CPR {CPR_BARE})", "CPR number"),
        (f"skriv till {EMAIL_IDN} tack", "e-mail address"),
    ],
)
def test_identifier_forms_are_recognised(value, kind):
    assert looks_identifying(value)[0] == kind


@pytest.mark.parametrize(
    "value", ["2024-03-01", "visit 2024-03-01, score 12345678", "panic disorder", "12.5", "007"]
)
def test_ordinary_values_are_not_identifiers(value):
    assert looks_identifying(value) is None


def test_masking_hides_the_birth_date_too():
    assert mask_value(PNR) == "********-****"
    assert mask_value(PNR_SPACE) == "****** ****"
    assert mask_value(CPR) == "******-****"
    assert mask_identifiers(f"ring {PHONE_SE} idag") == "ring 070-*** ** ** idag"
    assert mask_value(EMAIL_IDN) == "a***@förening.se"
    assert mask_value("a\x00b") == "a\\x00b"  # control characters shown as escapes


# --- formula injection (13.4) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("  @SUM(A1)", "'  @SUM(A1)"),  # an indented level: spaces may be trimmed on import
        ("  -1.5", "  -1.5"),
        ("-1.5", "-1.5"),  # a number in text is not a formula
        ("+3", "+3"),
        ("peer", "peer"),
        (-1.5, -1.5),
        (None, None),
    ],
)
def test_safe_cell(cell, expected):
    assert safe_cell(cell) == expected


def test_safe_frame_touches_text_cells_and_headers_only(tmp_path):
    df = pd.DataFrame(
        {
            "estimate": [-1.5, 2.0],
            "label": ["=1+1", "ok"],
            "level": pd.Categorical(["@x", "b"]),
            "=bad": ["a", "b"],
            "n": pd.array([-3, 4], dtype="Int64"),
        }
    )
    out = safe_frame(df)
    assert out["estimate"].tolist() == [-1.5, 2.0] and out["n"].tolist() == [-3, 4]
    assert out["label"].tolist() == ["'=1+1", "ok"]
    assert out["level"].astype(str).tolist() == ["'@x", "b"]
    assert list(out.columns)[3] == "'=bad"
    assert df["label"].tolist() == ["=1+1", "ok"]  # the input is not changed
    write_csv(df, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1] == "-1.5,'=1+1,'@x,a,-3"


def test_drift_csv_of_check_is_neutralised(tmp_path, capsys):
    """``peerstats check --drift`` writes through the same helper."""
    import json

    from peerstats.cli import main

    here = tmp_path / "a.json"
    there = tmp_path / "b.json"
    doc = {"format": "peerstats-results/1", "=1+1": 1.0}
    here.write_text(json.dumps(doc), encoding="utf-8")
    doc["=1+1"] = 2.0
    there.write_text(json.dumps(doc), encoding="utf-8")
    code = main(["check", str(here), "--against", str(there), "--drift", str(tmp_path / "d.csv")])
    capsys.readouterr()
    assert code == 4
    text = (tmp_path / "d.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1].startswith("'=1+1,")
    assert not any(line.startswith("=") for line in text.splitlines())


# --- YAML (13.5) --------------------------------------------------------------------------------


def _bomb(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for k in range(levels):
        name = f"l{k}"
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly():
    t0 = time.perf_counter()
    with pytest.raises(YAMLBudgetError, match="aliases"):
        load_yaml(_bomb(12))
    assert time.perf_counter() - t0 < 2.0


def test_recursive_alias_is_refused():
    with pytest.raises(YAMLBudgetError, match="refers to itself"):
        load_yaml("a: &a [*a]\n")


def test_ordinary_anchors_still_work():
    doc = load_yaml("items: &i [a, b]\nagain: *i\n")
    assert doc == {"items": ["a", "b"], "again": ["a", "b"]}
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml("x: !!python/object/apply:os.system ['echo hi']\n")


def test_trial_spec_alias_bomb_is_a_short_spec_error(tmp_path):
    from peerstats.data.trial_spec import read_spec

    p = tmp_path / "spec.yaml"
    p.write_text(_bomb(9), encoding="utf-8")
    with pytest.raises(SpecError) as err:
        read_spec(p)
    assert len(str(err.value)) < 1000


def test_every_error_message_is_capped():
    from peerstats.exceptions import MAX_MESSAGE

    assert len(str(SpecError("x" * (10 * MAX_MESSAGE)))) < MAX_MESSAGE + 100
    f = pd.DataFrame(
        [dict(table="t", row=1, column="c", value="v", check="k", message="m" * 10**5)]
    )
    assert len(str(DataValidationError(f))) < 1000


# --- readers (13.3, 13.6) -----------------------------------------------------------------------


def test_xlsx_formula_without_saved_value_is_a_failure_naming_the_cell(tmp_path):
    from openpyxl import Workbook

    from peerstats import validate

    trial = copy_trial(tmp_path / "trial")
    rows = trial.rows("participants")
    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append([int(v) if v.isdigit() else (v or None) for v in r])
    age = rows[0].index("age")
    ws.cell(row=3, column=age + 1, value="=1+1")  # openpyxl saves no cached value
    wb.save(trial.folder / "participants.xlsx")
    trial.edit_spec(lambda s: s["data"].update(participants="participants.xlsx"))
    report = validate(trial.spec)
    f = report.failures[report.failures["check"] == "formula_without_value"]
    assert list(zip(f["row"], f["column"])) == [(2, "age")]
    assert "cell G3" in f["message"].iloc[0]


def test_unnamed_columns_without_values_are_dropped_with_values_refused(tmp_path):
    from peerstats.data.trial_spec import DataSource
    from peerstats.io.readers import ReadError, read_table

    p = tmp_path / "p.csv"
    p.write_text("id,arm,,\n1,a,,\n2,b,,\n", encoding="utf-8")
    assert list(read_table(DataSource(p), "participants").data.columns) == ["id", "arm"]
    p.write_text("id,arm,,\n1,a,x,y\n", encoding="utf-8")
    with pytest.raises(ReadError, match=r"column\(s\) \[3, 4\].*no name"):
        read_table(DataSource(p), "participants")


def test_declared_covariates_in_the_spec(tmp_path):
    from peerstats import validate

    trial = copy_trial(tmp_path / "trial")
    trial.edit_spec(
        lambda s: s.update(
            covariates={
                "age": {"type": "integer", "min": 16, "max": 110},
                "gender": {"type": "category", "levels": ["woman", "man", "non-binary"]},
                "diagnosis": None,
            }
        )
    )
    good = validate(trial.spec)
    assert good.ok, good.failures
    assert good.trial.spec.covariates == ("age", "gender", "diagnosis")
    assert isinstance(good.trial.participants["gender"].dtype, pd.CategoricalDtype)
    trial.set_cell("participants", "IP002", "age", "31.5")
    trial.set_cell("participants", "IP003", "gender", "femal")
    f = validate(trial.spec).failures
    assert sorted(zip(f["check"], f["row"])) == [("non_integer", 2), ("unknown_label", 3)]
    trial.edit_spec(lambda s: s.update(covariates={"age": {"type": "number", "min": 9, "max": 1}}))
    with pytest.raises(SpecError, match=r"min \(9\) is larger than max \(1\)"):
        validate(trial.spec)
    trial.edit_spec(lambda s: s.update(covariates={"age": {"type": "numeric"}}))
    with pytest.raises(SpecError, match="covariates"):
        validate(trial.spec)


# --- models (13.6) ----------------------------------------------------------------------------


def test_mmrm_on_one_arm_data_names_the_dropped_term():
    import peerstats

    rng = np.random.default_rng(1)
    n = 20
    d = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(n), 2),
            "visit": pd.Categorical(["post", "fu3"] * n, categories=["post", "fu3"]),
            "arm": pd.Categorical(["icbt"] * (2 * n), categories=["icbt", "icbt_peer"]),
            "base": np.repeat(rng.normal(size=n), 2),
            "y": rng.normal(size=2 * n),
        }
    )
    with pytest.raises(ModelSpecificationError, match=r"\['arm', 'arm:visit'\].*one level"):
        peerstats.mmrm("y ~ base + arm * visit", d, subject="subject", visit="visit")


def test_analyze_on_one_arm_data_is_a_model_error_not_a_key_error(tmp_path):
    from hostile_corpus import _one_arm

    import peerstats

    trial = copy_trial(tmp_path / "trial")
    _one_arm(trial)
    t = peerstats.load_trial(trial.spec)
    with pytest.raises(peerstats.PeerstatsError):
        peerstats.analyze(t, outcome="gad7")


# --- CLI (13.6, 13.9) ---------------------------------------------------------------------------


def test_validate_failures_refuses_an_input_file_and_overwriting(tmp_path, capsys):
    from hostile_corpus import _cell

    from peerstats.cli import main

    trial = copy_trial(tmp_path / "trial")
    _cell("diagnosis", "x\x00y")(trial)
    data = trial.table("participants").read_bytes()
    for target in (trial.table("participants"), trial.spec):
        assert main(["validate", str(trial.spec), "--failures", str(target)]) == 2
        assert "input of the trial spec" in capsys.readouterr().err
    assert trial.table("participants").read_bytes() == data
    out = tmp_path / "f.csv"
    out.write_text("keep", encoding="utf-8")
    assert main(["validate", str(trial.spec), "--failures", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err and out.read_text() == "keep"
    assert main(["validate", str(trial.spec), "--failures", str(out), "--force"]) == 1
    assert "control_character" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("case_name", ["two_empty_headers", "yaml_alias_bomb_analysis"])
def test_the_console_command_shows_no_traceback(tmp_path, case_name):
    """The one place the CLI is spawned: what a user sees in a terminal."""
    from hostile_corpus import CASES

    case = next(c for c in CASES if c.name == case_name)
    trial = copy_trial(tmp_path / "trial")
    case.edit(trial)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "peerstats.cli",
            "run",
            str(trial.analysis),
            "--out",
            str(tmp_path / "out"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == case.codes["run"], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout


# --- layers (issue 12 item 10) ------------------------------------------------------------------


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_validation_trial_and_instruments_import_downwards_only():
    """data.validation -> data.trial (data class, assembly) -> instruments -> _identifiers; the
    public ``peerstats.data.load`` sits on top. No module imports one above it (not even lazily)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "peerstats"
    for p in [src / "data" / "validation.py", *(src / "data" / "checks").glob("*.py")]:
        assert "peerstats.data.load" not in _imports(p), p.name
    for p in [
        src / "data" / "trial.py",
        *(src / "data" / "checks").glob("*.py"),
        *(src / "instruments").glob("*.py"),
    ]:
        assert not {"peerstats.data.validation", "peerstats.data.load"} & _imports(p), p.name
    assert _imports(src / "_identifiers.py") <= {
        "__future__",
        "datetime",
        "re",
        "collections.abc",
        "typing",
    }


def test_check_refuses_a_json_that_is_not_results(tmp_path, capsys):
    from peerstats.cli import main

    p = tmp_path / "list.json"
    p.write_text("[1, 2]", encoding="utf-8")
    assert main(["check", str(p), "--against", str(p)]) == 2
    assert "not a peerstats results file" in capsys.readouterr().err


def test_identifiers_in_value_labels_are_failures(tmp_path):
    """SPSS/Stata value labels become Table 1 levels: they are checked like cells."""
    pyreadstat = pytest.importorskip("pyreadstat")
    from peerstats import validate

    trial = copy_trial(tmp_path / "trial")
    p = pd.read_csv(trial.table("participants"), dtype=str, keep_default_na=False)
    p["gender"] = p["gender"].map({"woman": 1.0, "man": 2.0}).astype(float)
    p["age"] = pd.to_numeric(p["age"], errors="coerce")
    for c in p.columns:
        if p[c].dtype == object:
            p[c] = p[c].astype(str)
    pyreadstat.write_sav(
        p,
        str(trial.folder / "participants.sav"),
        variable_value_labels={"gender": {1.0: "woman", 2.0: f"ring {PHONE_SE}"}},
    )
    trial.edit_spec(lambda s: s["data"].update(participants="participants.sav"))
    f = validate(trial.spec).failures
    hits = f[(f["check"] == "privacy") & (f["column"] == "gender")]
    assert len(hits) == 1 and PHONE_SE not in f.to_string()
