"""The hostile-input corpus of issue 24 (round 2), on the same copied icbt_peer trial.

Each case states the exit codes of ``validate`` and ``run`` and the strings that must never
appear in anything printed or written. Every identifier here is a published example number or
made up with valid check characters (not a real person).
"""

from __future__ import annotations

import math

from hostile_corpus import Case, Trial, _randomised_subject

FNR = "15076500565"  # NO fødselsnummer, the example of Norwegian Wikipedia's article
HETU = "131052-308T"  # FI henkilötunnus, the Population Register Centre's example
KENNITALA = "120174-3399"  # IS kennitala, Registers Iceland's example


def _withdrawn(value: str):
    def edit(t: Trial) -> None:
        s = _randomised_subject(t, 3)
        t.set_cell("participants", s, "withdrawn_reason", value)
        t.set_cell("participants", s, "last_visit", "fu3")

    return edit


def _free_text_hetu(t: Trial) -> None:
    _withdrawn(f"flyttade, hetu {HETU}")(t)
    t.edit_spec(lambda s: s.update(free_text=["withdrawn_reason"]))


def _nan_delta(t: Trial) -> None:
    def edit(a: dict) -> None:
        tp = next(s for s in a["sensitivity"] if s["method"] == "tipping-point")
        tp["delta"]["icbt_peer"][1] = math.nan

    t.edit_analysis(edit)


def _inf_delta(t: Trial) -> None:
    def edit(a: dict) -> None:
        tp = next(s for s in a["sensitivity"] if s["method"] == "tipping-point")
        tp["delta"]["icbt_peer"][0] = -math.inf

    t.edit_analysis(edit)


def _duplicate_primary(t: Trial) -> None:
    text = t.analysis.read_text(encoding="utf-8")
    t.analysis.write_text(text + "primary: {outcome: empowerment, visit: post}\n", "utf-8")


def _utf8_declared_cp1252(t: Trial) -> None:
    _withdrawn("flyttade till Åre, ångest")(t)
    t.edit_spec(
        lambda s: s["data"].update(participants={"path": "participants.csv", "encoding": "cp1252"})
    )


CASES2: list[Case] = [
    Case("withdrawn_reason_fnr", "24.4", _withdrawn(f"flyttet, fnr {FNR}"),
         {"validate": 1, "run": 1}, (FNR, "150765"), ("privacy",)),
    Case("withdrawn_reason_hetu", "24.4", _withdrawn(f"muutti, hetu {HETU}"),
         {"validate": 1, "run": 1}, (HETU, "131052"), ("privacy",)),
    Case("withdrawn_reason_kennitala", "24.4", _withdrawn(f"flutti, kt. {KENNITALA}"),
         {"validate": 1, "run": 1}, (KENNITALA, "120174"), ("privacy",)),
    Case("free_text_hetu_is_masked_everywhere", "24.4", _free_text_hetu,
         {"validate": 0, "run": 0}, (HETU, "131052", "308T")),
    Case("tipping_delta_nan", "24.7", _nan_delta, {"validate": 0, "run": 2},
         must_say=("delta.icbt_peer[1]", "not a finite number")),
    Case("tipping_delta_inf", "24.7", _inf_delta, {"validate": 0, "run": 2},
         must_say=("delta.icbt_peer[0]",)),
    Case("primary_written_twice", "24.9", _duplicate_primary, {"validate": 0, "run": 2},
         must_say=("'primary' is written twice",)),
    Case("utf8_file_declared_cp1252", "24.9", _utf8_declared_cp1252,
         {"validate": 1, "run": 1}, ("Ã…re", "Ã¥ngest,"), ("encoding: cp1252", "UTF-8")),
]


PNR = "19811218-9876"  # Skatteverket's documentation example
EMAIL = "anna.svensson@example.se"


def _analysis_text(path: list, value: str):
    def edit(t: Trial) -> None:
        def put(a: dict) -> None:
            node = a
            for k in path[:-1]:
                node = node.setdefault(k, {})
            node[path[-1]] = value

        t.edit_analysis(put)

    return edit


CASES2 += [
    Case("analysis_title_pnr", "24.1", _analysis_text(["analysis", "title"], f"PEER {PNR}"),
         {"validate": 0, "run": 2}, (PNR, "811218"), ("analysis.title", "personnummer")),
    Case("arm_label_email", "24.1", _analysis_text(["labels", "arms", "icbt"], EMAIL),
         {"validate": 0, "run": 2}, (EMAIL, "svensson"), ("labels.arms.icbt", "e-mail")),
    Case("sensitivity_name_phone", "24.1",
         lambda t: t.edit_analysis(lambda a: a["sensitivity"][0].update(name="ring 070-123 45 67")),
         {"validate": 0, "run": 2}, ("123 45 67",), ("sensitivity[0].name",)),
    Case("trial_name_email", "24.1",
         lambda t: t.edit_spec(lambda s: s["trial"].update(name=f"trial of {EMAIL}")),
         {"validate": 2, "run": 2}, (EMAIL, "svensson"), ("trial.name", "e-mail")),
    Case("registration_number_is_not_an_identifier", "24.1",
         _analysis_text(["analysis", "title"], "iCBT (NCT04639167, ISRCTN26008944)"),
         {"validate": 0, "run": 0}),
]

CASES2 += [
    Case("arm_label_right_to_left_override", "24.12",
         _analysis_text(["labels", "arms", "icbt"], "iCBT \u202eenola"),
         {"validate": 0, "run": 2}, ("\u202e",), ("labels.arms.icbt", "U+202E")),
]


def _three_participants(t: Trial) -> None:
    rows = t.rows("participants")
    h = rows[0]
    keep = [r[0] for r in rows[1:] if r[h.index("randomised")] == "1"][:3]
    t.write_rows("participants", [h] + [
        r for r in rows[1:] if r[0] in keep or r[h.index("randomised")] == "0"
    ])
    for name in ("assessments", "sessions"):
        rs = t.rows(name)
        t.write_rows(name, [rs[0]] + [r for r in rs[1:] if r[0] in keep])


CASES2 += [
    Case("three_participants", "24.6", _three_participants, {"validate": 0, "run": 1},
         must_say=("6 observations of 3 participants", "needs at least 8 observations")),
]


def _age(value: str):
    return lambda t: t.set_cell("participants", _randomised_subject(t, 2), "age", value)


CASES2 += [
    Case("age_negative", "24.9", _age("-5"), {"validate": 1, "run": 1},
         must_say=("not plausible as an age",)),
    Case("age_250", "24.9", _age("250"), {"validate": 1, "run": 1},
         must_say=("not plausible as an age",)),
]


def _pnr_file_name(t: Trial) -> None:
    name = f"deltagare_{PNR}.csv"
    t.table("participants").rename(t.folder / name)
    t.edit_spec(lambda s: s["data"].update(participants=name))


def _missing_pnr_file(t: Trial) -> None:
    t.edit_spec(lambda s: s["data"].update(participants=f"saknas_{PNR}.csv"))


CASES2 += [
    Case("data_file_name_holds_pnr", "24.3", _pnr_file_name, {"validate": 0, "run": 0},
         (PNR, "811218")),
    Case("missing_file_name_holds_pnr", "24.3", _missing_pnr_file, {"validate": 2, "run": 2},
         (PNR, "811218"), ("file not found",)),
]


def blank_gad7_at_fu3(t: Trial) -> None:
    """Every GAD-7 item at the 3-month follow-up missing (a visit nobody was observed at;
    GAD-7 is scored from its items)."""
    rows = t.rows("assessments")
    h = rows[0]
    items = [h.index(f"gad_{k}") for k in range(1, 8)]
    for r in rows[1:]:
        if r[h.index("visit")] == "fu3":
            for k in items:
                r[k] = ""
    t.write_rows("assessments", rows)
