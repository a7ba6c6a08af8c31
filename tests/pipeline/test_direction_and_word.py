"""Direction of each outcome (instrument definitions) in the outcome table, forest plot and
headline; every table also as Word (issue 12, point 6). No numeric tolerances.
"""

from __future__ import annotations

import docx
import pandas as pd

import peerstats
from peerstats.describe.word import display_text, safe_cell


def test_outcome_table_direction_column(example_runs):
    out = pd.read_csv(
        example_runs["peer_recovery"] / "tables" / "display" / "outcomes.csv",
        dtype=str,
        keep_default_na=False,
    )
    by = dict(zip(out["Outcome"].str.replace(" (primary)", ""), out["Direction"]))
    assert by["QPR-15"] == "higher is better"
    assert by["WSAS"] == "lower is better"  # WSAS: higher is worse (instrument definition)


def test_headline_and_forest_state_the_direction(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text(encoding="utf-8")
    assert "higher is better on QPR-15, so the estimate favours peer support" in html
    svg = (example_runs["peer_recovery"] / "figures" / "forest.svg").read_text(encoding="utf-8")
    assert svg.count('id="favours-row') == 8  # left and right, per outcome


def test_every_table_is_written_to_word(example_runs):
    folder = example_runs["peer_recovery"] / "tables"
    words = sorted(p.stem for p in folder.glob("*.docx"))
    assert {"table_one", "outcomes", "consort", "responders_qpr15_post"} <= set(words)
    doc = docx.Document(str(folder / "table_one.docx"))
    header = [c.text for c in doc.tables[0].rows[0].cells]
    assert header[1] == "usual services (n = 151)"
    # cells of numbers use no-break spaces so that a CI never wraps (issue 21)
    body = [[c.text.replace("\u00a0", " ") for c in r.cells] for r in doc.tables[0].rows[1:]]
    assert ["Living alone, n (%)"] == [r[0] for r in body if r[0].startswith("Living")]


def test_word_and_display_csv_cells_are_formula_safe(tmp_path):
    from peerstats.describe.render import Table

    disp = pd.DataFrame(
        {"Characteristic": ['=HYPERLINK("x")', "@SUM(A1)"], "Diff": ["-1.5 (-2 to 1)", "2"]}
    )
    t = Table(disp, disp, caption="+caption")
    t.to_docx(tmp_path / "t.docx")
    doc = docx.Document(str(tmp_path / "t.docx"))
    cells = [c.text.replace("\u00a0", " ") for r in doc.tables[0].rows for c in r.cells]
    assert '\'=HYPERLINK("x")' in cells and "'@SUM(A1)" in cells
    assert "\u22121.5 (\u22122 to 1)" in cells  # a minus sign, not a formula prefix
    assert doc.paragraphs[0].text == "'+caption"
    csv = t.to_csv()
    assert "'=HYPERLINK" in csv and "\n'@SUM" in csv
    assert safe_cell("-1.5") == "-1.5" and display_text("-1.5") == "\u22121.5"


def test_every_describe_table_renders_to_docx():
    trial = peerstats.datasets.load("icbt_feasibility")
    for t in (
        peerstats.table_one(trial),
        peerstats.feasibility(trial, outcome="gad7"),
        peerstats.within_group_change(trial, "gad7"),
        peerstats.consort(trial).to_table(),
    ):
        data = t.to_docx()
        assert data[:2] == b"PK" and len(data) > 5000
