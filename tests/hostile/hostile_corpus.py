"""The hostile-input corpus of issue 13: variations of the bundled icbt_peer trial.

Each :class:`Case` copies the bundled SYNTHETIC ``icbt_peer`` trial (data + trial spec) and
the committed analysis spec ``analyses/icbt_peer.yaml`` into a folder, applies one small edit
(the hostile input), and states what ``peerstats`` must do with it: the exit code of the
command and the strings that must never appear in anything it prints or writes. Every
identifier planted here is made up (valid check digits, not real people).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from peerstats import datasets

REPO = Path(__file__).resolve().parents[2]
ANALYSIS = REPO / "analyses" / "icbt_peer.yaml"

# made-up identifiers (valid check digits / dates); masked forms must never show them
PNR = "19811218-9876"  # personnummer (Skatteverket's documentation example)
PNR_SPACE = "811218 9876"  # the same, written with a space
SAMORDNING = "19811278-9873"  # samordningsnummer: day 18 + 60
CPR = "180381-1234"
CPR_BARE = "1803811234"
PHONE_SE = "070-123 45 67"
PHONE_SE2 = "070-1234567"
PHONE_INT = "+45 12 34 56 78"
EMAIL = "anna.svensson@example.se"
EMAIL_IDN = "anna@förening.se"


@dataclass
class Trial:
    """A copied trial: ``folder`` holds participants/assessments/sessions.csv and spec.yaml,
    ``analysis`` the analysis spec pointing at it."""

    folder: Path

    @property
    def spec(self) -> Path:
        return self.folder / "spec.yaml"

    @property
    def analysis(self) -> Path:
        return self.folder / "analysis.yaml"

    def table(self, name: str) -> Path:
        return self.folder / f"{name}.csv"

    # -- editing helpers ----------------------------------------------------------------------
    def rows(self, name: str) -> list[list[str]]:
        with self.table(name).open(encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh))

    def write_rows(self, name: str, rows: list[list[str]], delimiter: str = ",") -> None:
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
        self.table(name).write_text(buf.getvalue(), encoding="utf-8")

    def set_cell(self, name: str, subject: str, column: str, value: str, visit: str | None = None):
        rows = self.rows(name)
        k = rows[0].index(column)
        for r in rows[1:]:
            if r[0] == subject and (visit is None or r[1] == visit):
                r[k] = value
                break
        else:  # pragma: no cover - a corpus bug
            raise KeyError(subject)
        self.write_rows(name, rows)

    def set_column(self, name: str, column: str, fn: Callable[[int, list[str]], str]) -> None:
        rows = self.rows(name)
        k = rows[0].index(column)
        for i, r in enumerate(rows[1:]):
            r[k] = fn(i, r)
        self.write_rows(name, rows)

    def rename_column(self, name: str, old: str, new: str) -> None:
        rows = self.rows(name)
        rows[0][rows[0].index(old)] = new
        self.write_rows(name, rows)

    def edit_spec(self, fn: Callable[[dict], None]) -> None:
        spec = yaml.safe_load(self.spec.read_text(encoding="utf-8"))
        fn(spec)
        self.spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    def edit_analysis(self, fn: Callable[[dict], None]) -> None:
        spec = yaml.safe_load(self.analysis.read_text(encoding="utf-8"))
        fn(spec)
        self.analysis.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def copy_trial(dest: Path) -> Trial:
    """A fresh copy of the bundled icbt_peer trial and its analysis spec in ``dest``."""
    src = datasets.path("icbt_peer").parent
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("participants.csv", "assessments.csv", "sessions.csv", "spec.yaml"):
        shutil.copyfile(src / f, dest / f)
    analysis = yaml.safe_load(ANALYSIS.read_text(encoding="utf-8"))
    analysis["trial"] = "spec.yaml"
    (dest / "analysis.yaml").write_text(yaml.safe_dump(analysis, sort_keys=False), "utf-8")
    return Trial(dest)


@dataclass
class Case:
    """One hostile input: ``edit`` changes a fresh copy; ``command`` is run on it."""

    name: str
    defect: str  # the item of issue 13
    edit: Callable[[Trial], None]
    codes: dict[str, int]  # command ("validate", "run", "check") -> expected exit code
    forbidden: tuple[str, ...] = ()
    must_say: tuple[str, ...] = ()  # strings the printed output must contain (failing runs)


def _randomised_subject(t: Trial, k: int = 0, arm: str | None = None) -> str:
    rows = t.rows("participants")
    h = rows[0]
    picks = [
        r[0]
        for r in rows[1:]
        if r[h.index("randomised")] == "1" and (arm is None or r[h.index("arm")] == arm)
    ]
    return picks[k]


def _unrandomised_subject(t: Trial) -> str:
    rows = t.rows("participants")
    h = rows[0]
    return next(r[0] for r in rows[1:] if r[h.index("randomised")] == "0")


def _withdrawn(value: str) -> Callable[[Trial], None]:
    def edit(t: Trial) -> None:
        s = _randomised_subject(t, 3)
        t.set_cell("participants", s, "withdrawn_reason", value)
        t.set_cell("participants", s, "last_visit", "fu3")

    return edit


def _cell(column: str, value: str, k: int = 5) -> Callable[[Trial], None]:
    def edit(t: Trial) -> None:
        t.set_cell("participants", _randomised_subject(t, k), column, value)

    return edit


def _header(old: str, new: str) -> Callable[[Trial], None]:
    return lambda t: t.rename_column("participants", old, new)


def _extra_header(name: str) -> Callable[[Trial], None]:
    def edit(t: Trial) -> None:
        rows = t.rows("participants")
        rows[0].append(name)
        for r in rows[1:]:
            r.append("x")
        t.write_rows("participants", rows)

    return edit


def _short_row(t: Trial) -> None:
    text = t.table("assessments").read_text(encoding="utf-8")
    t.table("assessments").write_text(text + "IP001,fu3,1,0,1\n", encoding="utf-8")


def _decimal_comma(t: Trial) -> None:
    rows = t.rows("participants")
    k = rows[0].index("age")
    for i, r in enumerate(rows[1:]):
        if i % 3 == 0:
            r[k] = f"{r[k]},5"
    t.write_rows("participants", rows, delimiter=";")
    t.edit_spec(
        lambda s: s["data"].update(participants={"path": "participants.csv", "delimiter": ";"})
    )


def _declared_age(t: Trial) -> None:
    t.edit_spec(
        lambda s: s.update(
            covariates={
                "age": {"type": "number", "min": 16, "max": 110},
                "gender": {"type": "category"},
                "diagnosis": None,
            }
        )
    )
    t.set_cell("participants", _randomised_subject(t, 1), "age", "-5")
    t.set_cell("participants", _randomised_subject(t, 2), "age", "250")


def _one_arm(t: Trial) -> None:
    t.set_column("participants", "arm", lambda i, r: "icbt" if r[1] == "1" else r[4])
    t.set_column("participants", "peer", lambda i, r: "")


def _huge_outcome(t: Trial) -> None:
    def spec(s: dict) -> None:
        s["outcomes"]["empowerment"] = {"column": "es_1"}

    t.edit_spec(spec)
    t.set_column("assessments", "es_1", lambda i, r: f"{1 + (i % 7) * 0.3:.1f}e300")


def _empty_headers(t: Trial) -> None:
    rows = t.rows("participants")
    rows[0] += ["", ""]
    for r in rows[1:]:
        r += ["a", "b"]
    t.write_rows("participants", rows)


def _nul(t: Trial) -> None:
    t.set_cell("participants", _randomised_subject(t, 2), "diagnosis", "panic\x00disorder")


def _bidi(t: Trial) -> None:
    t.set_cell("participants", _randomised_subject(t, 2), "gender", "wo\u202eman")


def _alias_bomb(t: Trial) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    t.spec.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _analysis_alias_bomb(t: Trial) -> None:
    _alias_bomb(t)
    shutil.copyfile(t.spec, t.analysis)


def _formula_label(t: Trial) -> None:
    t.set_cell("participants", _randomised_subject(t, 0), "arm", "=cmd|' /C calc'!A0")


CASES: list[Case] = [
    # 1. identifiers in free-text / categorical cells
    Case(
        "withdrawn_reason_phone",
        "13.1",
        _withdrawn(f"moved away, new phone {PHONE_SE}"),
        {"validate": 1, "run": 1},
        (PHONE_SE, "123 45 67"),
        ("privacy", "free_text"),
    ),
    Case(
        "withdrawn_reason_cpr_bare",
        "13.1",
        _withdrawn(f"withdrew consent (CPR {CPR_BARE})"),
        {"validate": 1, "run": 1},
        (CPR_BARE, "180381"),
        ("privacy",),
    ),
    Case(
        "diagnosis_phone",
        "13.1",
        _cell("diagnosis", PHONE_SE2),
        {"validate": 1, "run": 1},
        (PHONE_SE2, "1234567"),
        ("privacy",),
    ),
    Case(
        "exclusion_reason_pnr_space",
        "13.2",
        lambda t: t.set_cell(
            "participants",
            _unrandomised_subject(t),
            "exclusion_reason",
            f"declined, pnr {PNR_SPACE}",
        ),
        {"validate": 1, "run": 1},
        (PNR_SPACE, "811218"),
        ("privacy",),
    ),
    Case(
        "peer_samordningsnummer",
        "13.1",
        _cell("peer", SAMORDNING, k=0),
        {"validate": 1, "run": 1},
        (SAMORDNING, "19811278", "811278"),
        ("privacy",),
    ),
    Case(
        "gender_cpr",
        "13.1",
        _cell("gender", CPR),
        {"validate": 1, "run": 1},
        (CPR, "180381"),
        ("privacy",),
    ),
    Case(
        "diagnosis_email_idn",
        "13.2",
        _cell("diagnosis", EMAIL_IDN),
        {"validate": 1, "run": 1},
        (EMAIL_IDN, "anna@"),
        ("privacy",),
    ),
    Case(
        "not_received_reason_int_phone",
        "13.1",
        _cell("not_received_reason", f"ring {PHONE_INT}"),
        {"validate": 1, "run": 1},
        (PHONE_INT, "12 34 56 78"),
        ("privacy",),
    ),
    Case(
        "session_note_email",
        "13.1",
        lambda t: t.set_column("sessions", "attended", lambda i, r: f"{EMAIL}" if i == 7 else r[2]),
        {"validate": 1, "run": 1},
        (EMAIL, "anna.svensson"),
        ("privacy",),
    ),
    # 2. identifier headers: flagged, never echoed (missing_column lists the columns)
    Case(
        "header_pnr_replaces_age",
        "13.2",
        _header("age", PNR),
        {"validate": 1, "run": 1},
        (PNR, "19811218", "811218"),
        ("privacy", "missing_column"),
    ),
    Case(
        "header_email_replaces_age",
        "13.2",
        _header("age", EMAIL),
        {"validate": 1, "run": 1},
        (EMAIL, "anna.svensson"),
        ("privacy", "missing_column"),
    ),
    Case(
        "header_pnr_extra",
        "13.2",
        _extra_header(PNR_SPACE),
        {"validate": 1, "run": 1},
        (PNR_SPACE, "811218"),
        ("privacy",),
    ),
    # 3. values that would change silently
    Case("short_csv_row", "13.3b", _short_row, {"validate": 1, "run": 1}, (), ("fewer fields",)),
    Case(
        "decimal_comma_age",
        "13.3c",
        _decimal_comma,
        {"validate": 1, "run": 1},
        (),
        ("decimal: ','",),
    ),
    Case(
        "declared_age_range",
        "13.3c",
        _declared_age,
        {"validate": 1, "run": 1},
        (),
        ("out_of_range", "-5", "250", "16 to 110"),
    ),
    # 4. formula injection in the --failures CSV (checked cell by cell in test_corpus.py)
    Case(
        "formula_in_arm", "13.4", _formula_label, {"validate": 1, "run": 1}, (), ("unknown_label",)
    ),
    # 5. YAML alias bomb (trial spec, analysis spec)
    Case(
        "yaml_alias_bomb_trial",
        "13.5",
        _alias_bomb,
        {"validate": 2, "run": 2},
        ("lol', 'lol",),
        ("aliases",),
    ),
    Case(
        "yaml_alias_bomb_analysis",
        "13.5",
        _analysis_alias_bomb,
        {"validate": 2, "run": 2},
        ("lol', 'lol",),
        ("aliases",),
    ),
    # 6. crashes
    Case("one_arm", "13.6", _one_arm, {"validate": 0, "run": 3}, (), ("arm",)),
    Case("outcome_1e300", "13.6", _huge_outcome, {"validate": 1, "run": 1}, (), ("out_of_range",)),
    Case("two_empty_headers", "13.6", _empty_headers, {"validate": 1, "run": 1}, (), ("no name",)),
    # 8. control characters
    Case("nul_in_cell", "13.8", _nul, {"validate": 1, "run": 1}, ("\x00",), ("control_character",)),
    Case(
        "bidi_override_in_cell",
        "13.8",
        _bidi,
        {"validate": 1, "run": 1},
        ("\u202e",),
        ("control_character",),
    ),
]
