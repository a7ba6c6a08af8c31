"""REDCap exports (issue 21): read_redcap, source: {redcap: ...}, init --from-redcap, and a
round trip to a report with the dictionary's labels and no REDCap variable names.

The export is written by ``tests/io/redcap_export.py`` (SYNTHETIC data) in REDCap's formats:
the data dictionary's CSV header and choice syntax ``"1, Yes | 2, No"`` (Vanderbilt, "How to
Use a REDCap Data Dictionary"), checkbox columns ``<field>___<code>`` (redcapAPI manual,
``exportFieldNames``), ``redcap_event_name`` ``<event>_arm_<n>``, ``redcap_repeat_instrument``
and ``redcap_repeat_instance``. Expected values are read from the written CSV text, never from
peerstats.
"""

from __future__ import annotations

import csv
import html
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import DataValidationError
from peerstats.io.readers import ReadError
from peerstats.io.redcap import parse_choices, read_redcap_dictionary, visit_of_event

sys.path.insert(0, str(Path(__file__).parent))
import redcap_export as rx  # noqa: E402


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return rx.write_export(tmp_path_factory.mktemp("redcap"), n=60, seed=21)


@pytest.fixture(scope="module")
def tables(export):
    return peerstats.read_redcap(*export)


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_parse_choices_splits_at_the_first_comma():
    assert parse_choices("1, Yes | 2, No") == {"1": "Yes", "2": "No"}
    assert parse_choices("0, None, not at all | 9, Don't know") == {
        "0": "None, not at all",
        "9": "Don't know",
    }
    assert parse_choices("") == {}


def test_visit_drops_the_arm_suffix():
    assert visit_of_event("week_10_arm_2") == "week_10"
    assert visit_of_event("baseline") == "baseline"


def test_tables_and_shapes(tables, export):
    rows = _rows(export[0])
    records = {r["record_id"] for r in rows}
    plain = [r for r in rows if not r["redcap_repeat_instrument"]]
    sessions = [r for r in rows if r["redcap_repeat_instrument"] == "session"]
    assert set(tables) == {"participants", "assessments", "session"}
    assert len(tables["participants"]) == len(records)
    assert tables["participants"]["record_id"].is_unique
    assert len(tables["assessments"]) == len(plain)
    assert len(tables["session"]) == len(sessions)
    assert sorted(tables["assessments"]["visit"].unique()) == sorted(rx.VISITS)


def test_radio_and_dropdown_are_categoricals_of_choice_labels(tables, export):
    p = tables["participants"].set_index("record_id")
    rows = {
        r["record_id"]: r for r in _rows(export[0]) if r["redcap_event_name"].startswith("baseline")
    }
    gender = {"1": "Woman", "2": "Man", "3": "Other"}
    assert isinstance(p["koen"].dtype, pd.CategoricalDtype)
    assert list(p["koen"].cat.categories) == ["Woman", "Man", "Other"]
    assert all(p.loc[rid, "koen"] == gender[r["koen"]] for rid, r in rows.items())
    assert list(p["kommune"].cat.categories) == ["Aarhus", "Odense", "Vejle"]
    assert list(p["alloc"].cat.categories) == ["Peer support", "Usual services"]


def test_checkboxes_are_one_binary_column_per_choice_named_by_label(tables, export):
    p = tables["participants"].set_index("record_id")
    rows = {
        r["record_id"]: r for r in _rows(export[0]) if r["redcap_event_name"].startswith("baseline")
    }
    for code, label in {"1": "Depression", "2": "Anxiety disorder", "3": "Psychosis"}.items():
        assert label in p.columns and f"diag___{code}" not in p.columns
        expected = [int(rows[rid][f"diag___{code}"]) for rid in p.index]
        assert p[label].tolist() == expected
    a = tables["assessments"]
    assert {"Family", "Friends", "Professionals"} <= set(a.columns)
    assert set(a["Family"].dropna().unique()) <= {0, 1}


def test_identifier_fields_are_never_read(tables):
    for df in tables.values():
        assert not {"full_name", "email"} & set(df.columns)
        text = df.astype(str).to_string()
        assert "Person 1" not in text and "@example.org" not in text


def test_assessments_visit_and_values(tables, export):
    a = tables["assessments"]
    rows = [r for r in _rows(export[0]) if not r["redcap_repeat_instrument"]]
    assert "_arm_" not in " ".join(a["visit"])
    got = a.set_index(["record_id", "visit"])["qpr_tot"]
    for r in rows:
        key = (r["record_id"], visit_of_event(r["redcap_event_name"]))
        if r["qpr_tot"]:
            assert got[key] == int(r["qpr_tot"])
        else:
            assert pd.isna(got[key])
    assert (a["redcap_arm"] == a["record_id"].astype(int).mod(2).map({1: 1, 0: 2})).all()


def test_repeating_instrument_one_row_per_instance(tables, export):
    s = tables["session"]
    assert s["redcap_repeat_instance"].tolist() == [
        int(r["redcap_repeat_instance"]) for r in _rows(export[0]) if r["redcap_repeat_instrument"]
    ]
    assert set(s["sess_attended"].unique()) <= {0, 1}
    assert pd.api.types.is_datetime64_any_dtype(s["sess_date"])
    assert set(s["visit"]) == {"week_10"}


def test_labels_and_types_come_from_the_dictionary(tables):
    p = tables["participants"]
    assert p.attrs["labels"]["alder"] == "Age (years)"
    assert p.attrs["labels"]["koen"] == "Gender"  # the <b> tag of the label is dropped
    assert p.attrs["types"]["alder"] == ("integer", 18.0, 90.0)
    assert tables["assessments"].attrs["types"]["trivsel"] == ("number", 0.0, 10.0)


def test_dataframes_and_api_metadata_names_are_read(export):
    rec = pd.read_csv(export[0], dtype=str, keep_default_na=False)
    dd = pd.read_csv(export[1], dtype=str, keep_default_na=False)
    api = dd.rename(
        columns={
            "Variable / Field Name": "field_name",
            "Form Name": "form_name",
            "Field Type": "field_type",
            "Field Label": "field_label",
            "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
            "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
            "Text Validation Min": "text_validation_min",
            "Text Validation Max": "text_validation_max",
            "Identifier?": "identifier",
        }
    )
    t = peerstats.read_redcap(rec, api)
    assert len(t["participants"]) == rec["record_id"].nunique()
    assert read_redcap_dictionary(api).identifiers == ("full_name", "email")


def test_unknown_choice_code_is_one_failure_with_count_and_rows(export, tmp_path):
    rec = pd.read_csv(export[0], dtype=str, keep_default_na=False)
    base = rec["redcap_event_name"].str.startswith("baseline")
    rec.loc[base[base].index[:7], "koen"] = "9"
    with pytest.raises(DataValidationError) as err:
        peerstats.read_redcap(rec, export[1])
    f = err.value.failures
    assert len(f) == 1 and f.iloc[0]["check"] == "unknown_code"
    assert "7 rows" in f.iloc[0]["message"] and "'9'" in f.iloc[0]["message"]


def test_missing_record_id_and_missing_files_are_read_errors(export, tmp_path):
    rec = pd.read_csv(export[0], dtype=str, keep_default_na=False).drop(columns="record_id")
    with pytest.raises(ReadError, match="record ID"):
        peerstats.read_redcap(rec, export[1])
    with pytest.raises(ReadError, match="not found"):
        peerstats.read_redcap(tmp_path / "nope.csv", export[1])
    bad = pd.DataFrame({"name": ["x"]})
    with pytest.raises(ReadError, match="Variable / Field Name"):
        peerstats.read_redcap(export[0], bad)


# --------------------------------------------------------------------------------------------
# the trial spec and the pipeline
# --------------------------------------------------------------------------------------------


def _init(folder: Path) -> Path:
    from peerstats.cli import main

    code = main(
        [
            "init",
            "--from-redcap",
            str(folder / "dictionary.csv"),
            "--records",
            str(folder / "records.csv"),
            "--out",
            str(folder / "trial.yaml"),
            "--name",
            "peer_trial",
        ]
    )
    assert code == 0
    return folder / "trial.yaml"


def test_init_drafts_a_spec_that_validates(tmp_path):
    rx.write_export(tmp_path, n=30, seed=3)
    spec_path = _init(tmp_path)
    text = spec_path.read_text(encoding="utf-8")
    assert "records: records.csv" in text  # relative to the spec
    spec = peerstats.read_spec(spec_path)
    assert spec.visits == rx.VISITS
    assert spec.arms.levels == ("Peer support", "Usual services")
    assert spec.arms.reference == "Usual services"
    assert spec.covariate_types["alder"].min == 18 and spec.covariate_types["alder"].max == 90
    assert spec.outcome("qpr_tot").max == 60
    trial = peerstats.load_trial(spec)
    assert trial.labels["covariates"]["alder"] == "Age (years)"
    assert trial.sessions is not None and len(trial.sessions) == 15 * rx.N_SESSIONS
    from peerstats.cli import main

    assert (
        main(["init", "--from-redcap", str(tmp_path / "dictionary.csv"), "--out", str(spec_path)])
        == 2
    )  # exists, no --force


def test_spec_with_bad_sessions_instrument_is_a_failure(tmp_path):
    rx.write_export(tmp_path, n=10, seed=4)
    spec = peerstats.read_spec(_init(tmp_path)).to_dict()
    spec["source"]["redcap"]["sessions"] = "visits"
    report = peerstats.validate(spec, base_dir=tmp_path)
    assert not report.ok
    assert "'visits' is not a repeating instrument" in report.failures["message"].iloc[0]


def _report_text(path: Path) -> str:
    t = path.read_text(encoding="utf-8")
    t = re.sub(r"<style.*?</style>|<script.*?</script>", " ", t, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t)))


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory) -> Path:
    """The export written here -> ``init --from-redcap`` -> ``peerstats run``: the result
    folder (run once for the tests below)."""
    tmp_path = tmp_path_factory.mktemp("round_trip")
    rx.write_export(tmp_path, n=60, seed=21)
    _init(tmp_path)
    (tmp_path / "analysis.yaml").write_text(
        "analysis: {name: rc, title: Peer support trial (synthetic)}\n"
        "trial: trial.yaml\n"
        "primary: {outcome: qpr_tot, visit: week_10}\n"
        "secondary: {outcomes: [trivsel]}\n"
        "tables: [consort, table_one, outcomes, ls_means]\n"
        "figures: [consort, trajectories]\n"
        "labels: {visits: {baseline: Baseline, week_10: Week 10, month_6: Month 6}}\n"
        "table_one: {digits: {alder: 0, default: 1}, statistic: {alder: median_iqr},"
        " missing: count, strata: true}\n"
        "word: {paper: letter}\n",
        encoding="utf-8",
    )
    from peerstats.cli import main

    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "analysis.yaml"), "--out", str(out), "-q"]) == 0
    return out


# the dictionary's labels that the report must show, and the REDCap names it must not
ROUND_TRIP_LABELS = (
    "Age (years)",
    "Gender",
    "Personal recovery (QPR-15 total)",
    "Well-being score",
    "Diagnoses: Depression",
    "Lives alone",
    "Peer support",
    "Usual services",
    "Week 10",
)
REDCAP_NAMES = [f[0] for f in rx.FIELDS] + ["redcap_", "_arm_", "week_10", "month_6", "diag___"]


def _redcap_names_in(text: str) -> list[str]:
    found = []
    for name in REDCAP_NAMES:
        end = "" if name.endswith("_") else r"(?!\w)"
        if re.search(rf"(?<![\w-]){re.escape(name)}{end}", text):
            found.append(name)
    return found


def test_round_trip_report_has_labels_and_no_redcap_names(round_trip):
    out = round_trip
    # the whole report, the Model details appendix included (formulas in words, issue 21)
    body = _report_text(out / "report.html")
    for label in ROUND_TRIP_LABELS:
        assert label in body, label
    assert not _redcap_names_in(body)
    # every table also in one Word document, numbered (issue 21)
    import docx

    combined = docx.Document(str(out / "tables" / "tables.docx"))
    singles = [p for p in (out / "tables").glob("*.docx") if p.name != "tables.docx"]
    assert len(combined.tables) == len(singles) >= 4
    assert any(p.text.startswith("Table 4") for p in combined.paragraphs)
    page = combined.sections[0]
    assert round(page.page_width.inches, 2) == 8.5 and round(page.page_height.inches, 2) == 11
    # Table 1 as the spec's table_one: says (issue 21)
    t1 = pd.read_csv(out / "tables" / "display" / "table_one.csv", dtype=str).fillna("")
    age = t1[t1.iloc[:, 0] == "Age (years), median [Q1, Q3]"]
    assert len(age) == 1 and re.fullmatch(r"\d+ \[\d+, \d+\]", age.iloc[0, 1])
    missing = t1[t1.iloc[:, 0].str.strip() == "missing"]
    assert len(missing) and all(
        re.fullmatch(r"\d+", c) for c in missing.iloc[:, 1:3].values.ravel()
    )
    svgs = " ".join(p.read_text(encoding="utf-8") for p in (out / "figures").glob("*.svg"))
    for name in ("qpr_tot", "trivsel", "week_10", "_arm_"):
        assert name not in svgs, name


def test_round_trip_report_in_headless_chromium(round_trip):
    """The report as a browser renders it (headless Chromium, see tests/test_browser.py):
    the dictionary's field and choice labels are in the rendered text, and no REDCap variable
    name (field names, ``redcap_event_name``, ``<field>___<code>``, event names)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Python package playwright is not installed (dev extra)"
    )
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_browser import LAUNCH_ARGS, _chromium_or_skip

    executable = _chromium_or_skip()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto((round_trip / "report.html").as_uri(), wait_until="load")
            text = page.evaluate("() => document.body.innerText")
            title = page.title()
        finally:
            browser.close()
    text = re.sub(r"\s+", " ", text)
    assert "Model details" in text  # the whole page, the appendix included
    for label in ROUND_TRIP_LABELS:
        assert label in text, label
    for choice in ("Aarhus", "Woman", "Depression"):  # choice labels of the dictionary
        assert choice in text, choice
    assert not _redcap_names_in(text + " " + title)


def test_manifest_records_the_data_dictionary(round_trip):
    """manifest.json lists the REDCap data dictionary like the other inputs: its path relative
    to the analysis spec and the SHA-256 of its bytes (computed here with hashlib)."""
    import hashlib
    import json

    man = json.loads((round_trip / "manifest.json").read_text(encoding="utf-8"))
    entry = man["inputs"]["redcap_dictionary"]
    assert entry["path"] == "dictionary.csv"
    raw = (round_trip.parent / "dictionary.csv").read_bytes()
    assert entry["sha256"] == hashlib.sha256(raw).hexdigest()
    assert man["inputs"]["participants"]["path"] == "records.csv"


def test_manifest_dictionary_digest_is_of_the_bytes_read(tmp_path):
    """A dictionary replaced after it was read: the digest remembered is of the bytes read."""
    import hashlib

    from peerstats._provenance import digest

    rx.write_export(tmp_path, n=10, seed=7)
    path = tmp_path / "dictionary.csv"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    read_redcap_dictionary(path)
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert digest(path) == before


def test_dictionary_ranges_are_declared_types_in_the_spec(tmp_path):
    """Validation min/max of the dictionary (age 18-90, QPR 0-60) become the declared ranges
    when the spec lists a covariate or outcome without them: an age of 150 is refused."""
    rx.write_export(tmp_path, n=10, seed=5)
    spec = peerstats.read_spec(_init(tmp_path)).to_dict()
    spec["covariates"] = ["alder", "koen", "Depression"]
    spec["outcomes"]["qpr_tot"] = {"column": "qpr_tot"}
    parsed = peerstats.load_trial(spec, base_dir=tmp_path).spec
    assert parsed.covariate_types["alder"].max == 90
    assert parsed.covariate_types["koen"].levels == ("Woman", "Man", "Other")
    assert (parsed.outcome("qpr_tot").min, parsed.outcome("qpr_tot").max) == (0, 60)
    rows = _rows(tmp_path / "records.csv")
    rows[0]["alder"] = "150"
    with (tmp_path / "records.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = peerstats.validate(spec, base_dir=tmp_path)
    bad = report.failures[report.failures["check"] == "out_of_range"]
    assert list(bad["column"]) == ["alder"] and "18 to 90" in bad["message"].iloc[0]


def test_classic_project_and_data_access_groups(export):
    """A project without events (classic): every non-repeating field is a participant field;
    the data access group is kept as a column of the participants."""
    rec = pd.read_csv(export[0], dtype=str, keep_default_na=False)
    rec = rec[
        rec["redcap_event_name"].str.startswith("baseline")
        | (rec["redcap_repeat_instrument"] != "")
    ]
    rec = rec.drop(columns="redcap_event_name").assign(redcap_data_access_group="uppsala")
    t = peerstats.read_redcap(rec, export[1])
    p = t["participants"]
    assert len(p) == rec["record_id"].nunique()
    assert {"alder", "qpr_tot", "Depression", "Family"} <= set(p.columns)
    assert set(p["redcap_data_access_group"]) == {"uppsala"}
    assert len(t["session"]) == (rec["redcap_repeat_instrument"] == "session").sum()


def test_spec_with_data_and_redcap_source_is_refused(tmp_path):
    rx.write_export(tmp_path, n=5, seed=6)
    spec = peerstats.read_spec(_init(tmp_path)).to_dict()
    spec["data"] = {"participants": "records.csv", "assessments": "records.csv"}
    with pytest.raises(peerstats.SpecError, match="drop data:"):
        peerstats.read_spec(spec, base_dir=tmp_path)


def test_failures_name_the_row_of_the_records_export(tmp_path):
    rx.write_export(tmp_path, n=10, seed=7)
    spec = _init(tmp_path)
    rows = _rows(tmp_path / "records.csv")
    k = next(i for i, r in enumerate(rows) if r["redcap_event_name"] == "month_6_arm_2")
    rows[k]["qpr_tot"] = "99"
    with (tmp_path / "records.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = peerstats.validate(spec)
    bad = report.failures[report.failures["check"] == "out_of_range"]
    assert list(bad["row"]) == [k + 1]  # 1-based data row of records.csv
