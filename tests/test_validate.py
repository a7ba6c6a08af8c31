"""Every validation check with the input that trips it. All data are synthetic; fake
personnummer / CPR numbers are generated here with a valid check digit, never real ones."""

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats import DataValidationError, SpecError
from peerstats.data.validation import looks_identifying, mask_value, validate

PARTICIPANTS = """id,arm,site,group,randomised,age
001,usual,A,,1,34
002,peer,A,g1,1,45
003,peer,B,g1,1,51
004,,B,,0,29
"""
ASSESSMENTS = """id,visit,qpr15
001,baseline,30
001,post,35
002,baseline,28
002,post,40
003,baseline,33
004,baseline,20
"""


def spec_dict(**over):
    d = {
        "trial": {"name": "Tiny (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {
            "subject": "id",
            "arm": "arm",
            "visit": "visit",
            "site": "site",
            "group": "group",
            "randomised": "randomised",
        },
        "arms": {"reference": "usual", "levels": ["usual", "peer"], "group_delivered": ["peer"]},
        "visits": ["baseline", "post"],
        "covariates": ["age"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60, "higher_is_better": True}},
    }
    d.update(over)
    return d


def run(tmp_path, participants=PARTICIPANTS, assessments=ASSESSMENTS, **over):
    (tmp_path / "p.csv").write_text(participants)
    (tmp_path / "a.csv").write_text(assessments)
    return validate(spec_dict(**over), base_dir=tmp_path)


def only(report, check):
    f = report.failures
    return f[f["check"] == check]


def luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def fake_personnummer(yyyymmdd="19811218", nnn="987", valid=True) -> str:
    c = luhn_digit(yyyymmdd[2:] + nnn)
    if not valid:
        c = str((int(c) + 1) % 10)
    return f"{yyyymmdd}-{nnn}{c}"


def test_clean_data_pass(tmp_path):
    report = run(tmp_path)
    assert report.ok and report.trial is not None
    assert report.n_rows == {"participants": 4, "assessments": 6}
    assert "Validation passed" in str(report)
    report.raise_for_failures()  # no error


def test_all_problems_are_collected_in_one_error(tmp_path):
    p = PARTICIPANTS.replace("002,peer,A", "002,peeer,A").replace("003,peer,B,g1", "002,peer,B,g1")
    a = ASSESSMENTS.replace("002,post,40", "002,pots,40").replace("001,post,35", "001,post,3.5x")
    (tmp_path / "p.csv").write_text(p)
    (tmp_path / "a.csv").write_text(a)
    with pytest.raises(DataValidationError) as exc:
        peerstats.load_trial(spec_dict(), base_dir=tmp_path)
    checks = set(exc.value.failures["check"])
    assert {"unknown_label", "duplicate_subject", "non_numeric", "unknown_subject"} <= checks
    assert isinstance(exc.value, ValueError)
    assert "[unknown_label] participants row 2, column 'arm'" in str(exc.value)


def test_empty_files(tmp_path):
    report = run(tmp_path, participants="id,arm,site,group,randomised,age\n", assessments="")
    f = only(report, "empty_file")
    assert sorted(f["table"]) == ["assessments", "participants"]
    assert report.trial is None


def test_unreadable_file(tmp_path):
    (tmp_path / "p.xlsx").write_bytes(b"this is not a spreadsheet")
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    d = spec_dict()
    d["data"]["participants"] = "p.xlsx"
    report = validate(d, base_dir=tmp_path)
    f = only(report, "unreadable")
    assert list(f["table"]) == ["participants"] and "cannot read p.xlsx" in f["message"].iloc[0]


def test_missing_required_columns_with_suggestion(tmp_path):
    p = PARTICIPANTS.replace("id,arm,site", "id,Arm,site").replace(",age", ",agee")
    report = run(tmp_path, participants=p, assessments=ASSESSMENTS.replace("qpr15", "qpr"))
    f = only(report, "missing_column")
    assert sorted(f["column"]) == ["age", "arm", "qpr15"]
    msg = f.set_index("column")["message"]
    assert "did you mean 'Arm'?" in msg["arm"] and "did you mean 'agee'?" in msg["age"]


def test_missing_subject_and_visit(tmp_path):
    a = ASSESSMENTS.replace("003,baseline,33", ",baseline,33").replace("004,baseline,20", "004,,20")
    f = only(run(tmp_path, assessments=a), "missing_value")
    assert sorted(zip(f["row"], f["column"])) == [(5, "id"), (6, "visit")]


def test_duplicate_subject(tmp_path):
    p = PARTICIPANTS + "002,peer,A,g1,1,45\n"
    f = only(run(tmp_path, participants=p), "duplicate_subject")
    assert list(f["row"]) == [5] and "already on row 2" in f["message"].iloc[0]


def test_duplicate_subject_visit(tmp_path):
    a = ASSESSMENTS + "001,post,36\n"
    f = only(run(tmp_path, assessments=a), "duplicate_subject_visit")
    assert list(f["row"]) == [7] and "already on row 2" in f["message"].iloc[0]


def test_unknown_arm_visit_and_site_labels_suggest_the_closest(tmp_path):
    p = PARTICIPANTS.replace("002,peer,A", "002,Peer,A").replace("003,peer,B", "003,peer,Bb")
    a = ASSESSMENTS.replace("002,post,40", "002,pots,40")
    report = run(tmp_path, participants=p, assessments=a, sites=["A", "B"])
    f = only(report, "unknown_label").set_index("column")
    assert f.loc["arm", "row"] == 2 and "did you mean 'peer'?" in f.loc["arm", "message"]
    assert f.loc["visit", "row"] == 4 and "did you mean 'post'?" in f.loc["visit", "message"]
    assert f.loc["site", "row"] == 3 and "valid labels are ['A', 'B']" in f.loc["site", "message"]


def test_sites_are_free_when_spec_lists_none(tmp_path):
    p = PARTICIPANTS.replace("003,peer,B", "003,peer,Zz")
    assert run(tmp_path, participants=p).ok


def test_scores_out_of_range_and_non_numeric(tmp_path):
    a = ASSESSMENTS.replace("002,post,40", "002,post,61").replace("001,post,35", "001,post,-1")
    a = a.replace("003,baseline,33", "003,baseline,3.5x").replace(
        "004,baseline,20", '004,baseline,"2,5"'
    )
    report = run(tmp_path, assessments=a)
    rng = only(report, "out_of_range")
    assert (
        sorted(rng["row"]) == [2, 4]
        and "outside the declared range 0 to 60" in rng["message"].iloc[0]
    )
    bad = only(report, "non_numeric").set_index("row")
    assert sorted(bad.index) == [5, 6]
    assert bad.loc[5, "value"] == "3.5x"
    assert "decimal comma" in bad.loc[6, "message"]


def test_decimal_comma_option(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text("id;visit;qpr15\n001;baseline;30,5\n")
    d = spec_dict()
    d["data"]["assessments"] = {"path": "a.csv", "delimiter": ";", "decimal": ","}
    trial = validate(d, base_dir=tmp_path).trial
    assert trial.assessments["qpr15"].tolist() == [30.5]


def test_assessments_for_subjects_absent_from_participants(tmp_path):
    a = ASSESSMENTS + "009,baseline,12\n"
    f = only(run(tmp_path, assessments=a), "unknown_subject")
    assert list(f["row"]) == [7] and list(f["value"]) == ["009"]


def test_randomised_without_arm(tmp_path):
    p = PARTICIPANTS.replace("004,,B,,0,29", "004,,B,,1,29")
    f = only(run(tmp_path, participants=p), "missing_arm")
    assert list(f["row"]) == [4]


def test_arm_for_participant_not_randomised(tmp_path):
    p = PARTICIPANTS.replace("004,,B,,0,29", "004,usual,B,,0,29")
    f = only(run(tmp_path, participants=p), "arm_not_randomised")
    assert list(f["row"]) == [4]


def test_randomised_must_be_binary_and_given(tmp_path):
    p = PARTICIPANTS.replace("003,peer,B,g1,1", "003,peer,B,g1,2").replace("004,,B,,0", "004,,B,,")
    report = run(tmp_path, participants=p)
    assert list(only(report, "non_binary")["row"]) == [3]
    assert list(only(report, "missing_value")["row"]) == [4]


def test_group_in_arm_not_group_delivered(tmp_path):
    p = PARTICIPANTS.replace("001,usual,A,,1", "001,usual,A,g7,1")
    f = only(run(tmp_path, participants=p), "group_not_group_delivered")
    assert list(f["row"]) == [1] and "'usual', which is not group-delivered" in f["message"].iloc[0]


def test_missing_group_in_group_arm_is_a_warning(tmp_path):
    p = PARTICIPANTS.replace("003,peer,B,g1", "003,peer,B,")
    report = run(tmp_path, participants=p)
    assert report.ok and any("no delivery group" in w for w in report.warnings)


def test_assessments_disagreeing_with_participants(tmp_path):
    a = "id,visit,qpr15,arm\n001,baseline,30,usual\n002,baseline,28,usual\n"
    f = only(run(tmp_path, assessments=a), "inconsistent")
    assert list(f["row"]) == [2] and "participants row 2" in f["message"].iloc[0]


def test_covariate_with_a_stray_text_value(tmp_path):
    p = (
        PARTICIPANTS.replace("003,peer,B,g1,1,51", "003,peer,B,g1,1,5l")
        + "005,usual,A,,1,40\n006,usual,A,,1,41\n"
    )
    f = only(run(tmp_path, participants=p), "non_numeric")
    assert list(f["row"]) == [3] and list(f["column"]) == ["age"]


def test_sessions_checks(tmp_path):
    (tmp_path / "s.csv").write_text(
        "id,session,attended\n002,1,1\n002,1,0\n003,1,yes\n003,2,maybe\n009,1,1\n"
    )
    d = spec_dict()
    d["data"]["sessions"] = "s.csv"
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    report = validate(d, base_dir=tmp_path)
    got = sorted(zip(report.failures["check"], report.failures["row"]))
    assert got == [("duplicate_subject_session", 2), ("non_binary", 4), ("unknown_subject", 5)]


def test_blank_rows_are_skipped_with_a_warning_and_rows_keep_file_numbers(tmp_path):
    a = "id,visit,qpr15\n001,baseline,30\n\n001,post,99\n"
    report = run(tmp_path, assessments=a)
    assert list(only(report, "out_of_range")["row"]) == [3]
    assert any("blank row" in w for w in report.warnings)


def test_excel_rows_are_data_rows(tmp_path):
    pd.DataFrame(
        {"id": ["001", "002"], "visit": ["baseline", "bsaeline"], "qpr15": [1, 2]}
    ).to_excel(tmp_path / "a.xlsx", index=False)
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    d = spec_dict()
    d["data"]["assessments"] = "a.xlsx"
    f = only(validate(d, base_dir=tmp_path), "unknown_label")
    assert list(f["row"]) == [2]


# --- privacy ----------------------------------------------------------------------------------


def with_column(name, values):
    lines = PARTICIPANTS.strip().split("\n")
    out = [lines[0] + f",{name}"] + [ln + f",{v}" for ln, v in zip(lines[1:], values)]
    return "\n".join(out) + "\n"


def test_valid_personnummer_is_flagged_and_masked(tmp_path):
    pnr = fake_personnummer("19811218", "987")
    report = run(tmp_path, participants=with_column("pnr", [pnr, "", "", ""]))
    f = only(report, "privacy")
    assert list(f["column"]) == ["pnr"] and list(f["row"]) == [1]
    assert f["value"].iloc[0] == "********-****"  # issue 13.1: the birth date is masked too
    text = report.failures.to_string() + str(report)
    assert pnr not in text and pnr[-4:] not in f["message"].iloc[0]


def test_invalid_luhn_is_not_a_personnummer(tmp_path):
    bad = fake_personnummer("19811218", "987", valid=False)
    assert looks_identifying(bad) is None
    assert run(tmp_path, participants=with_column("ref", [bad, "", "", ""])).ok


@pytest.mark.parametrize(
    "value_maker",
    [
        lambda: fake_personnummer("19811218", "987")[2:],  # YYMMDD-NNNC
        lambda: fake_personnummer("19811218", "987").replace("-", ""),  # 12 digits
        lambda: fake_personnummer("19811278", "123"),  # samordningsnummer (day + 60)
    ],
)
def test_personnummer_forms(value_maker):
    assert looks_identifying(value_maker())[0] == "personnummer"


def test_samordningsnummer_needs_a_real_day():
    assert looks_identifying(fake_personnummer("19811299", "123")) is None  # day 39 after -60


def test_cpr_email_and_phone_are_flagged(tmp_path):
    p = with_column("cpr", ["180281-1234", "", "", ""])
    p = p.replace("\n", "\n", 1)
    report = run(tmp_path, participants=p)
    assert list(only(report, "privacy")["value"]) == ["******-****"]  # date masked (13.1)
    mail = run(tmp_path, participants=with_column("contact", ["kim.test@example.org", "", "", ""]))
    f = only(mail, "privacy")
    assert list(f["value"]) == ["k***@example.org"] and "kim.test" not in mail.failures.to_string()
    phone = run(tmp_path, participants=with_column("tel", ["+46 70 123 45 67", "", "", ""]))
    assert only(phone, "privacy")["value"].iloc[0] == "+46 ** *** ** **"


def test_domestic_numbers_in_text_columns_are_flagged_cell_by_cell(tmp_path):
    """A column of phone numbers is one failure; a single domestic number in a text column is
    a failure naming its row too (issue 13.1; it was accepted and reached the outputs)."""
    p = with_column("tel", ["070-1234567", "08-12345678", "0470-123456", ""])
    assert len(only(run(tmp_path, participants=p), "privacy")) == 1
    p = with_column("code", ["070-1234567", "x1", "x2", "x3"])
    f = only(run(tmp_path, participants=p), "privacy")
    assert list(zip(f["row"], f["column"], f["value"])) == [(1, "code", "070-*******")]


def test_dates_and_scores_are_not_identifying():
    for v in ["2020-01-15", "15-01-2020", "12.5", "007", "1234", "peer"]:
        assert looks_identifying(v) is None, v


def test_dropped_columns_are_not_checked(tmp_path):
    pnr = fake_personnummer("19900101", "234")
    report = run(tmp_path, participants=with_column("pnr", [pnr, "", "", ""]), drop=["pnr"])
    assert report.ok and "pnr" not in report.trial.participants.columns


def test_identifying_subject_ids_are_masked_everywhere(tmp_path):
    pnr = fake_personnummer("19700312", "456")
    a = ASSESSMENTS + f"{pnr},baseline,12\n"
    report = run(tmp_path, assessments=a)
    assert pnr not in report.failures.to_string()
    assert pnr not in str(report)
    assert set(report.failures["check"]) == {"privacy", "unknown_subject"}


def test_mask_value_leaves_ordinary_values_and_shortens_long_text():
    assert mask_value("peer") == "peer"
    assert mask_value(None) is None
    assert mask_value("x" * 100).endswith("...") and len(mask_value("x" * 100)) == 40


# --- spec problems are not data problems -------------------------------------------------------


def test_unknown_instrument_is_a_spec_error(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    d = spec_dict(outcomes={"x": {"instrument": "NO-SUCH-SCALE"}})
    with pytest.raises(SpecError, match="outcome 'x'"):
        validate(d, base_dir=tmp_path)


def test_wrong_number_of_items_is_a_spec_error(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    d = spec_dict(outcomes={"gad": {"instrument": "GAD-7", "items": ["a", "b"]}})
    with pytest.raises(SpecError, match="has 7 items, the spec lists 2"):
        validate(d, base_dir=tmp_path)


def test_items_checked_against_the_instrument_range(tmp_path):
    cols = [f"gad_{k}" for k in range(1, 8)]
    rows = [
        "001,baseline," + ",".join(["1"] * 7),
        "002,baseline,4,1,1,1,1,1,1",
        "003,baseline,1.5,1,1,1,1,1,1",
        "004,baseline,x,1,1,1,1,1,1",
    ]
    a = "id,visit," + ",".join(cols) + "\n" + "\n".join(rows) + "\n"
    report = run(tmp_path, assessments=a, outcomes={"gad7": {"instrument": "GAD-7"}})
    got = sorted(zip(report.failures["check"], report.failures["row"], report.failures["column"]))
    assert got == [
        ("non_integer", 3, "gad_1"),
        ("non_numeric", 4, "gad_1"),
        ("out_of_range", 2, "gad_1"),
    ]
    assert "0 to 3" in only(report, "out_of_range")["message"].iloc[0]


def test_validate_is_callable_from_the_package(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    import peerstats.data.validation  # noqa: F401  (importing the module must not hide the function)

    assert peerstats.validate(spec_dict(), base_dir=tmp_path).ok


def test_unknown_subject_hints_at_leading_zeros(tmp_path):
    a = ASSESSMENTS + "3,post,12\n"
    f = only(run(tmp_path, assessments=a), "unknown_subject")
    assert "did you mean '003' (leading zeros)?" in f["message"].iloc[0]


def test_last_visit_labels_are_checked(tmp_path):
    p = with_column("last_visit", ["baseline", "", "psot", ""])
    f = only(run(tmp_path, participants=p), "unknown_label")
    assert list(zip(f["row"], f["column"])) == [(3, "last_visit")]
    trial = run(
        tmp_path, participants=with_column("last_visit", ["baseline", "", "post", ""])
    ).trial
    lv = trial.participants["last_visit"]
    assert lv.cat.ordered and lv.tolist()[:3] == ["baseline", np.nan, "post"]


def test_last_visit_column_can_be_mapped_under_another_name(tmp_path):
    cols = {**spec_dict()["columns"], "last_visit": "sista_besok"}
    bad = run(tmp_path, participants=with_column("sista_besok", ["", "psot", "", ""]),
              columns=cols)
    f = only(bad, "unknown_label")
    assert list(zip(f["row"], f["column"])) == [(2, "sista_besok")]
    assert "did you mean 'post'" in f["message"].iloc[0]
    good = run(tmp_path, participants=with_column("sista_besok", ["", "post", "", ""]),
               columns=cols)
    assert good.ok, good.failures
    lv = good.trial.participants["last_visit"]
    assert lv.cat.ordered and lv.tolist()[:2] == [np.nan, "post"]
    assert "sista_besok" not in good.trial.participants.columns


def test_identifier_in_a_score_column_is_not_echoed(tmp_path):
    pnr = fake_personnummer("19650704", "321").replace("-", "")
    a = ASSESSMENTS.replace("003,baseline,33", f"003,baseline,{pnr}")
    report = run(tmp_path, assessments=a)
    assert set(report.failures["check"]) == {"privacy", "out_of_range"}
    assert pnr not in report.failures.to_string() and pnr not in str(report)


def test_column_with_a_standard_name_mapped_elsewhere_is_ambiguous(tmp_path):
    p = with_column("subject", ["a", "b", "c", "d"])
    f = only(run(tmp_path, participants=p), "ambiguous_column")
    assert list(f["column"]) == ["subject"] and "maps subject to 'id'" in f["message"].iloc[0]


def test_personnummer_inside_free_text_is_flagged_and_masked(tmp_path):
    pnr = fake_personnummer("19811218", "987")
    note = f"called {pnr} about the visit"
    report = run(tmp_path, participants=with_column("notes", ["", note, "", ""]))
    f = only(report, "privacy")
    assert list(f["column"]) == ["notes"] and list(f["row"]) == [2]
    assert f["value"].iloc[0] == "called ********-**** about the visit"
    assert pnr not in report.failures.to_string() + str(report)
    # short form without century, and an international phone number, inside text
    short = pnr[2:]
    assert looks_identifying(f"pnr: {short}") == ("personnummer", True)
    assert looks_identifying("ring +46 70 123 45 67 imorgon") == ("phone number", True)
    # ordinary text with dates and numbers is not an identifier
    assert looks_identifying("visit 2024-03-01, score 12345678") is None
    bad = fake_personnummer("19811218", "987", valid=False)
    assert looks_identifying(f"ref {bad} in text") is None


@pytest.mark.parametrize("text", ["1e400", "-1e400"])
def test_overflowing_number_is_non_numeric_not_infinite(tmp_path, text):
    a = ASSESSMENTS.replace("001,baseline,30", f"001,baseline,{text}")
    f = only(run(tmp_path, assessments=a), "non_numeric")
    assert list(zip(f["row"], f["column"])) == [(1, "qpr15")]


def test_empty_attendance_cell_is_a_failure_not_not_attended(tmp_path):
    (tmp_path / "s.csv").write_text("id,session,attended\n002,1,1\n002,2,\n003,1,0\n")
    spec = spec_dict(data={"participants": "p.csv", "assessments": "a.csv", "sessions": "s.csv"})
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    f = only(validate(spec, base_dir=tmp_path), "missing_value")
    assert list(zip(f["table"], f["row"], f["column"])) == [("sessions", 2, "attended")]


def test_outcome_after_recorded_withdrawal_is_inconsistent(tmp_path):
    """001 withdrew after baseline (last_visit baseline) yet has a post score: a failure naming
    the assessment row; 003 withdrew after post and has no later visit: fine."""
    p = PARTICIPANTS.strip().split("\n")
    p[0] += ",withdrawn_reason,last_visit"
    p[1] += ",moved away,baseline"
    p[2] += ",,"
    p[3] += ",too unwell,post"
    p[4] += ",,"
    cols = {**spec_dict()["columns"], "withdrawn_reason": "withdrawn_reason"}
    report = run(tmp_path, participants="\n".join(p) + "\n", columns=cols)
    f = only(report, "inconsistent")
    assert list(zip(f["table"], f["row"], f["value"])) == [("assessments", 2, "post")]
    assert "records withdrawal after 'baseline'" in f["message"].iloc[0]


def test_codes_with_leading_zeros_stay_text(tmp_path):
    report = run(tmp_path, participants=with_column("postcode", ["01234", "22100", "", "00999"]))
    assert report.ok
    assert report.trial.participants["postcode"].tolist()[:2] == ["01234", "22100"]
    numeric = run(tmp_path, participants=with_column("score", ["0.5", "12", "", "0"]))
    assert numeric.trial.participants["score"].tolist()[:2] == [0.5, 12.0]
