"""Labels reach everything a person reads (issue 12, point 2).

The report of every bundled example, opened in headless Chromium, shows no raw code (arm,
visit, outcome, covariate names or 0/1 levels) outside the parts that quote the data verbatim
(the trial's own description, model formulas, warnings, provenance: ``[data-verbatim]``).
Chromium/playwright missing: that test is skipped with the reason (see tests/test_browser.py).
No numeric tolerances here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_support import ANALYSES, EXAMPLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_browser import LAUNCH_ARGS, _chromium_or_skip  # noqa: E402


def _codes(name: str) -> dict[str, str]:
    """Raw codes of an example that must not be shown: {code: its label}; codes that are a
    word of some label (``usual`` in "usual services") cannot be told apart and are left out."""
    import peerstats
    from peerstats.pipeline import read_analysis_spec
    from peerstats.pipeline._display import display_labels

    spec = read_analysis_spec(ANALYSES / f"{name}.yaml")
    trial = peerstats.load_trial(spec.trial_path)
    lab = display_labels(trial, spec)
    codes = {**lab.covariates, **lab.outcomes, **lab.visits, **lab.arms}
    everything = " ".join(codes.values())
    return {
        c: v
        for c, v in codes.items()
        if c.lower() != v.lower() and not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", everything)
    }


@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the Python package playwright is not installed (dev extra)"
    )
    return sync_api, _chromium_or_skip()


_VISIBLE_TEXT = """() => {
    const root = document.querySelector('main').cloneNode(true);
    root.querySelectorAll('[data-verbatim], code').forEach(e => e.remove());
    document.body.appendChild(root); root.style.position = 'absolute';
    const text = root.innerText; root.remove(); return text;
}"""
_TABLE1_CELLS = """() => Array.from(document.querySelectorAll('#table1 + div td:first-child'))
    .slice(0, 200).map(td => td.innerText.trim())"""


def test_labelled_reports_show_no_raw_codes(chromium, example_runs):
    sync_api, executable = chromium
    found = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            for name in EXAMPLES:
                page.goto((example_runs[name] / "report.html").as_uri(), wait_until="load")
                text = page.evaluate(_VISIBLE_TEXT)
                cells = page.evaluate(_TABLE1_CELLS)
                found[name] = (text, cells)
        finally:
            browser.close()
    for name, (text, cells) in found.items():
        codes = _codes(name)
        assert codes, name
        shown = [c for c in codes if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text)]
        assert not shown, f"{name}: raw codes {shown} in the report"
        assert not {"0", "1", "0.0", "1.0"} & set(cells), f"{name}: 0/1 levels in Table 1"
    text, cells = found["peer_recovery"]
    assert "Living alone, n (%)" in cells  # one "yes" row for a binary covariate
    assert "Lost to follow-up" not in text or "fu3" not in text


def test_display_tables_are_labelled(example_runs):
    folder = example_runs["peer_recovery"] / "tables"
    t1 = pd.read_csv(folder / "display" / "table_one.csv", dtype=str, keep_default_na=False)
    assert "usual services (n = 151)" in t1.columns
    assert "Living alone, n (%)" in set(t1["Characteristic"])
    assert not {"  0.0", "  1.0", "living_alone, n (%)"} & set(t1["Characteristic"])
    out = pd.read_csv(folder / "display" / "outcomes.csv", dtype=str, keep_default_na=False)
    assert set(out["Visit"]) == {"post-treatment", "3-month follow-up"}
    assert "peer support: n, mean (SD)" in out.columns
    consort = pd.read_csv(folder / "display" / "consort.csv", dtype=str, keep_default_na=False)
    assert "3-month follow-up" in set(consort["Visit"]) and "fu3" not in set(consort["Visit"])


def test_consort_follow_up_lines_use_visit_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import peerstats

    trial = peerstats.datasets.load("social_inclusion")
    flow = peerstats.consort(trial)
    fig = flow.plot(
        arm_labels={"peer": "peer support", "waitlist": "wait-list"},
        visit_labels={"m4": "4 months", "m8": "8 months"},
    )
    texts = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    plt.close(fig)
    assert "Lost to follow-up at 4 months" in texts
    assert "at m4" not in texts and "at m8" not in texts


def test_table_one_labels_levels_and_binary_rows():
    import peerstats

    trial = peerstats.datasets.load("peer_recovery")
    t = peerstats.table_one(
        trial,
        labels={"living_alone": "Living alone", "gender": "Gender"},
        level_labels={"gender": {"man": "Man", "woman": "Woman"}},
        arm_labels={"usual": "usual services", "peer": "peer support"},
    )
    d = t.display
    chars = list(d["Characteristic"])
    assert "Living alone, n (%)" in chars
    i = chars.index("Living alone, n (%)")
    # one row: the count of "yes" (1), no 0/1 level rows below it
    assert chars[i + 1].strip() not in ("0", "1", "0.0", "1.0")
    yes = t.data[
        (t.data.variable == "living_alone")
        & (t.data.level == "1.0")
        & (t.data.arm == "usual")
        & (t.data.statistic == "count")
    ].value.iloc[0]
    assert d.iloc[i]["usual services (n = 151)"].startswith(f"{int(yes)} (")
    assert "  Man" in chars and "  Woman" in chars
    assert any(n.startswith("SMD") and "usual services" in n for n in t.notes)


def test_spec_accepts_covariate_labels(tmp_path):
    from peerstats.pipeline import read_analysis_spec

    raw = yaml.safe_load((ANALYSES / "peer_recovery.yaml").read_text(encoding="utf-8"))
    raw["labels"]["covariates"] = {
        "living_alone": {"label": "Lives alone", "levels": {0: "no", 1: "yes"}}
    }
    spec = read_analysis_spec(raw, base_dir=ANALYSES)
    assert spec.label("covariates", "living_alone") == "Lives alone"
    assert spec.level_labels() == {"living_alone": {"0": "no", "1": "yes"}}
