"""Issue 13: every hostile input of the corpus through every CLI command, in process.

For each case (``hostile_corpus.CASES``) a fresh copy of the bundled icbt_peer trial is edited
and ``peerstats validate`` / ``peerstats run`` are called through :func:`peerstats.cli.main`
(the code the console script runs): the exit code must be the stated one (0 or 1/2/3, never
an exception escaping), and no planted identifier may appear in what is printed or in any
file written (the ``--failures`` CSV, the result folder).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hostile_corpus import CASES, Case, copy_trial

from peerstats.cli import main


def _everything_written(root: Path) -> str:
    """The text of every file under ``root`` (binary files decoded leniently)."""
    parts = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            parts.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def _call(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, tmp_path, capsys):
    trial = copy_trial(tmp_path / "trial")
    case.edit(trial)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    failures = outputs / "failures.csv"
    code, text = _call(["validate", str(trial.spec), "--failures", str(failures)], capsys)
    assert code == case.codes["validate"], text[-3000:]
    printed = text
    if case.codes["validate"] == 1:
        assert failures.is_file()
        for s in case.must_say:
            assert s in text, (s, text[-3000:])
    code, text = _call(
        ["run", str(trial.analysis), "--out", str(outputs / "result"), "--quiet"], capsys
    )
    assert code == case.codes["run"], text[-3000:]
    printed += text
    if case.codes["run"] != 0:
        assert not (outputs / "result").exists()
        for s in case.must_say:
            assert s in text, (s, text[-3000:])
    assert "Traceback" not in printed
    assert len(printed) < 60_000  # every message is capped
    written = _everything_written(outputs)
    for s in case.forbidden:
        assert s not in printed, f"{s!r} printed"
        assert s not in written, f"{s!r} written"


def test_failures_csv_neutralises_formulas(tmp_path, capsys):
    """Issue 13.4: a cell starting with '=' reaches the --failures CSV as text (OWASP)."""
    case = next(c for c in CASES if c.name == "formula_in_arm")
    trial = copy_trial(tmp_path / "trial")
    case.edit(trial)
    failures = tmp_path / "failures.csv"
    code, _ = _call(["validate", str(trial.spec), "--failures", str(failures)], capsys)
    assert code == 1
    with failures.open(encoding="utf-8", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert any(c.startswith("'=cmd") for c in cells)
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)
    assert not any(
        c.startswith("-") and not c.lstrip("-").replace(".", "").isdigit() for c in cells
    )


def test_check_command_rerun_reports_data_problems(tmp_path, capsys):
    """``peerstats check SPEC.yaml`` re-runs the spec: a hostile input gives the run's code."""
    case = next(c for c in CASES if c.name == "diagnosis_phone")
    trial = copy_trial(tmp_path / "trial")
    case.edit(trial)
    expected = Path(__file__).resolve().parents[2] / "analyses" / "expected" / "icbt_peer.json"
    code, text = _call(["check", str(trial.analysis), "--against", str(expected), "-q"], capsys)
    assert code == 1 and "Traceback" not in text
    for s in case.forbidden:
        assert s not in text
