"""Issue 13: what ``peerstats run`` writes, for a trial with hostile text that is allowed.

One copy of the bundled icbt_peer trial gets identifiers in its CONSORT reason columns
(declared ``free_text:``, so they are masked on load) and formula-like text in categorical
cells (allowed, but neutralised in every CSV). It is run twice: a scan of every file written
(report, results.json, tables, figures, manifest) finds none of the planted identifiers, no
CSV cell would run as a formula, and the two folders are byte-identical (report.html always;
manifest.json too under SOURCE_DATE_EPOCH).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hostile_corpus import CPR_BARE, EMAIL_IDN, PHONE_INT, PHONE_SE, copy_trial

PLANTED = {
    ("IP013", "withdrawn_reason"): f"moved away, new phone {PHONE_SE}",
    ("IP027", "withdrawn_reason"): f"withdrew consent (CPR {CPR_BARE})",
    ("IP121", "exclusion_reason"): f"not meeting criteria, call {PHONE_INT} or {EMAIL_IDN}",
    ("IP001", "discontinued_reason"): '=HYPERLINK("http://x.example","click")',
    ("IP002", "diagnosis"): "@SUM(1+1)",
    ("IP003", "gender"): "-x",
}
FORBIDDEN = (
    PHONE_SE,
    "123 45 67",
    CPR_BARE,
    "180381",
    PHONE_INT,
    "12 34 56 78",
    EMAIL_IDN,
    "anna@",
)
EPOCH = "1700000000"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path]:
    """Two result folders of the same planted trial, run in process."""
    import matplotlib

    matplotlib.use("Agg")
    from peerstats.pipeline import run

    base = tmp_path_factory.mktemp("planted")
    trial = copy_trial(base / "trial")
    for (subject, column), value in PLANTED.items():
        trial.set_cell("participants", subject, column, value)
    trial.edit_spec(lambda s: s.update(free_text=["withdrawn_reason", "exclusion_reason"]))
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    try:
        first = run(trial.analysis, base / "out1")
        second = run(trial.analysis, base / "out2")
    finally:
        mp.undo()
    return first, second


def _text_of(name: str, data: bytes) -> str:
    """The text of an output file; a Word file is a zip of XML parts."""
    if name.endswith(".docx"):
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as z:
            parts = [n for n in z.namelist() if n.endswith((".xml", ".rels"))]  # not the thumbnail
            return "\n".join(z.read(n).decode("utf-8") for n in parts)
    return data.decode("utf-8")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_output_file_is_scanned_and_holds_no_planted_identifier(planted):
    files = _files(planted[0])
    assert {"report.html", "results.json", "manifest.json"} <= set(files)
    assert any(k.startswith("tables/") for k in files) and any(
        k.startswith("figures/") for k in files
    )
    for name, data in files.items():
        text = _text_of(name, data)
        for s in FORBIDDEN:
            assert s not in text, (name, s)


def test_masked_reasons_still_reach_consort(planted):
    consort = (planted[0] / "tables" / "consort.csv").read_text(encoding="utf-8")
    assert "moved away, new phone 070-*** ** **" in consort
    results = (planted[0] / "results.json").read_text(encoding="utf-8")
    assert "identifier(s) masked in the free-text column 'withdrawn_reason'" in results


def test_no_csv_cell_runs_as_a_formula(planted):
    seen_quoted = set()
    negative_numbers = 0
    for path in sorted((planted[0] / "tables").rglob("*.csv")):  # tidy and display tables
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    bare = cell.lstrip(" ")
                    assert not bare.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)
                    if bare.startswith("-"):  # only numbers may start with a minus
                        assert re.fullmatch(r"-\d+(\.\d*)?([eE][+-]?\d+)?", bare), cell
                        negative_numbers += 1
                    if cell.startswith("'"):
                        seen_quoted.add(cell)
    assert "'@SUM(1+1)" in seen_quoted  # table_one
    assert "'-x" in seen_quoted
    assert '\'=HYPERLINK("http://x.example","click")' in seen_quoted  # consort
    assert negative_numbers > 0  # negative estimates stay numbers


def test_reruns_are_byte_identical(planted):
    first, second = (_files(p) for p in planted)
    assert first.keys() == second.keys()
    different = [k for k in first if first[k] != second[k]]
    assert different == []  # report.html, and manifest.json too under SOURCE_DATE_EPOCH
    manifest = (planted[0] / "manifest.json").read_text(encoding="utf-8")
    assert '"started": "2023-11-14T22:13:20+00:00"' in manifest


def test_report_holds_no_time(planted):
    report = (planted[0] / "report.html").read_text(encoding="utf-8")
    assert "2023-11-14" not in report and "Started" not in report


def test_no_word_table_cell_runs_as_a_formula(planted):
    """The Word tables (tables/*.docx) pass their cells through the same helper."""
    docx = pytest.importorskip("docx")
    files = sorted((planted[0] / "tables").glob("*.docx"))
    if not files:
        pytest.skip("this version writes no Word tables")
    cells = []
    for path in files:
        for table in docx.Document(str(path)).tables:
            cells += [c.text for row in table.rows for c in row.cells]
    assert cells
    assert not [c for c in cells if c.lstrip(" ").startswith(("=", "+", "@", "\t", "\r", "-"))]
    assert "'  @SUM(1+1)" in cells  # an indented level of Table 1
