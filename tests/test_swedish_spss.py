"""A Swedish SPSS file as a statistician receives it (issue 21), SYNTHETIC data written here:
Swedish column names and variable labels, ja/nej attendance, a decimal comma in a text
variable, a duplicate id, an impossible GAD-7 item, and a birth-date column.

The messages must be one line per kind of problem and column, and the trial must load after
the fixes the messages name.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats import DataValidationError

pyreadstat = pytest.importorskip("pyreadstat")

N = 40
VISITS = ["baslinje", "efter", "uppfoljning"]


def _write(folder, *, duplicate=True, impossible=True):
    rng = np.random.default_rng(2021)
    ids = [f"S{k:03d}" for k in range(1, N + 1)]
    part = pd.DataFrame(
        {
            "deltagar_id": ids,
            "grupp": [1 + k % 2 for k in range(N)],
            "kommun": ["Uppsala", "Örebro", "Västerås", "Umeå"] * (N // 4),
            "ålder": rng.integers(19, 70, N).astype(float),
            "födelsedatum": [f"19{60 + k % 30}-0{1 + k % 9}-1{k % 9}" for k in range(N)],
        }
    )
    if duplicate:
        part.loc[N - 1, "deltagar_id"] = ids[N - 2]
    rows = []
    for s in ids:
        for v in VISITS:
            rows.append(
                {
                    "deltagar_id": s,
                    "besok": v,
                    "livskvalitet": f"{rng.normal(60, 10):.1f}".replace(".", ","),
                    **{f"gad_{i}": float(rng.integers(0, 4)) for i in range(1, 8)},
                }
            )
    assess = pd.DataFrame(rows)
    if impossible:
        assess.loc[5, "gad_4"] = 7.0
    sess = pd.DataFrame(
        [
            {"deltagar_id": s, "session": k, "narvaro": "ja" if rng.random() < 0.7 else "nej"}
            for s in ids[::2]
            for k in range(1, 9)
        ]
    )
    pyreadstat.write_sav(
        part,
        str(folder / "deltagare.sav"),
        column_labels={"ålder": "Ålder (år)", "kommun": "Kommun", "grupp": "Grupp"},
        variable_value_labels={"grupp": {1: "kamratstöd", 2: "sedvanlig vård"}},
    )
    pyreadstat.write_sav(
        assess, str(folder / "bedomningar.sav"), column_labels={"livskvalitet": "Livskvalitet"}
    )
    pyreadstat.write_sav(sess, str(folder / "sessioner.sav"))


def _spec(**over):
    spec = {
        "trial": {"name": "Kamratstöd (syntetiska data)", "design": "parallel", "synthetic": True},
        "data": {
            "participants": "deltagare.sav",
            "assessments": "bedomningar.sav",
            "sessions": "sessioner.sav",
        },
        "columns": {
            "subject": "deltagar_id",
            "arm": "grupp",
            "visit": "besok",
            "site": "kommun",
            "attended": "narvaro",
        },
        "arms": {"levels": ["kamratstöd", "sedvanlig vård"], "reference": "sedvanlig vård"},
        "visits": VISITS,
        "covariates": ["ålder"],
        "outcomes": {
            "livskvalitet": {"column": "livskvalitet", "min": 0, "max": 100},
            "angest": {"instrument": "gad7"},
        },
    }
    spec.update(over)
    return spec


def test_messages_one_line_per_kind_and_column_then_fixes_pass(tmp_path):
    _write(tmp_path)
    with pytest.raises(DataValidationError) as err:
        peerstats.load_trial(_spec(), base_dir=tmp_path)
    text = str(err.value)
    lines = [ln for ln in text.splitlines() if ln.startswith("  - [")]
    keys = [
        re.match(r"  - \[(\w+)\] (\w+)(?: row \d+)?(?:, column '([^']*)')?", ln).groups()
        for ln in lines
    ]
    assert len(keys) == len(set(keys)), text  # one line per kind of problem and column
    checks = set(err.value.failures["check"])
    assert {"duplicate_subject", "out_of_range", "non_numeric", "privacy"} <= checks, text
    assert "non_binary" not in checks  # ja/nej is a yes/no vocabulary
    assert "decimal: ','" in text and "drop:" in text and "födelsedatum" in text
    assert len(lines) <= 6, text

    # the fixes the messages name
    _write(tmp_path, duplicate=False, impossible=False)
    spec = _spec(drop=["födelsedatum"])
    spec["data"]["assessments"] = {"path": "bedomningar.sav", "decimal": ","}
    trial = peerstats.load_trial(spec, base_dir=tmp_path)
    assert trial.sessions["attended"].sum() > 0
    assert trial.labels["covariates"]["ålder"] == "Ålder (år)"
    assert trial.labels["outcomes"]["livskvalitet"] == "Livskvalitet"
    assert "födelsedatum" not in trial.participants.columns


def test_declared_yes_no_words_replace_the_default(tmp_path):
    _write(tmp_path, duplicate=False, impossible=False)
    spec = _spec(drop=["födelsedatum"], binary={"yes": ["närvarande"], "no": ["frånvarande"]})
    spec["data"]["assessments"] = {"path": "bedomningar.sav", "decimal": ","}
    report = peerstats.validate(spec, base_dir=tmp_path)
    bad = report.failures[report.failures["check"] == "non_binary"]
    assert len(bad) > 0 and "binary:" in bad["message"].iloc[0]
    assert "närvarande" in bad["message"].iloc[0]
    line = [ln for ln in str(report.error()).splitlines() if "non_binary" in ln]
    assert len(line) == 1 and "rows" in line[0]  # one line with the count, not one per row
