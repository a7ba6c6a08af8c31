"""No column code reaches the report text (issue 21.2): model formulas and coefficient terms in
the Model details appendix read in words, with the spec's and the source's labels; the exact
formulas stay in ``results.json``.

The scan reads the whole report text (every section, verbatim parts included) of each bundled
SYNTHETIC example. The codes looked for are the outcome and covariate columns that have a label
different from the column name; a code that is also a word of some label (``usual`` in "usual
services") cannot be told apart and is left out, as in test_report_labels.py. No numeric
tolerances here.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from pipeline_support import ANALYSES, EXAMPLES

from peerstats.describe.labels import Labels
from peerstats.pipeline.report_words import formula_words, notes_words


def _text(path) -> str:
    t = path.read_text(encoding="utf-8")
    t = re.sub(r"<style.*?</style>|<script.*?</script>", " ", t, flags=re.S)
    # the spec writer's own prose (analysis and trial descriptions) is quoted as written
    t = re.sub(r"<p [^>]*data-spec-text[^>]*>.*?</p>", " ", t, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", t)))


def _labelled_codes(name: str) -> dict[str, str]:
    import peerstats
    from peerstats.pipeline import read_analysis_spec
    from peerstats.pipeline._display import display_labels

    spec = read_analysis_spec(ANALYSES / f"{name}.yaml")
    trial = peerstats.load_trial(spec.trial_path)
    lab = display_labels(trial, spec)
    codes = {**lab.covariates, **lab.outcomes}
    for o in lab.outcomes:
        codes[f"{o}_baseline"] = f"{lab.outcomes[o]} (baseline)"
    everything = " ".join(codes.values())
    return {
        c: v
        for c, v in codes.items()
        if c.lower() != v.lower()
        and not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", everything)
    }


LAB = Labels(
    arms={"peer": "Peer support", "usual": "Usual services"},
    visits={"m4": "4 months"},
    outcomes={"social_inkludering": "Social Inclusion Scale"},
    covariates={"kommun": "Municipality", "alder": "Age (years)"},
)


def test_formula_in_words_uses_labels():
    got = formula_words(
        "social_inkludering ~ social_inkludering_baseline + kommun + alder + arm * visit", LAB
    )
    assert got == (
        "Social Inclusion Scale ~ Social Inclusion Scale (baseline) + Municipality + "
        "Age (years) + Arm × Visit (with both main effects)"
    )


def test_random_terms_offsets_and_outcome_name():
    got = formula_words(
        "readmitted_12m ~ arm + kommun + offset(log(followup_days)) + (1 | subject) "
        "+ (0 + delivered | group)",
        LAB,
        outcome="Readmission within 12 months",
    )
    assert got.startswith("Readmission within 12 months ~ Arm + Municipality + ")
    assert "offset: log(Followup days)" in got
    assert "random intercept per participant" in got
    assert "random delivery group intercept for participants receiving group-delivered" in got
    assert "readmitted_12m" not in got and "kommun " not in got


def test_bracketed_words_are_kept():
    got = formula_words("social_inkludering ~ visit  [all visits, unstructured covariance]", LAB)
    assert got == "Social Inclusion Scale ~ Visit [all visits, unstructured covariance]"


def test_notes_replace_whole_codes_only():
    codes = {"alder": "Age (years)", "kommun": "Municipality"}
    assert (
        notes_words("alder and kommuner; kommun", codes) == "Age (years) and kommuner; Municipality"
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_labelled_column_code_in_the_report_text(name, example_runs):
    text = _text(example_runs[name] / "report.html")
    codes = _labelled_codes(name)
    assert codes, name
    shown = {
        c: text[max(0, m.start() - 60) : m.end() + 60]
        for c in codes
        if (m := re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text))
    }
    assert not shown, f"{name}: column codes in the report: {shown}"
    assert "Model details" in text or name == "icbt_feasibility"


def test_results_json_keeps_the_exact_formula(example_runs):
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text("utf-8"))
    assert res["models"]["qpr15"]["formula"].startswith("qpr15 ~ qpr15_baseline + site + ")
    text = _text(example_runs["peer_recovery"] / "report.html")
    assert "qpr15_baseline" not in text


def test_model_details_name_model_df_and_convergence_in_words(example_runs):
    """The appendix's key facts read as words: the model's name, the df method and yes/no,
    not the codes results.json keeps ("partially nested lmm", "satterthwaite", True)."""
    text = _text(example_runs["peer_recovery"] / "report.html")
    details = text[text.index("Model details") :]
    assert "Model partially nested linear mixed model Formula QPR-15 ~" in details
    assert "REML / Satterthwaite" in details and "Converged yes" in details
    for code in ("partially nested lmm", "/ satterthwaite", "Converged True"):
        assert code not in details, code
    res = json.loads((example_runs["peer_recovery"] / "results.json").read_text("utf-8"))
    assert res["models"]["qpr15"]["model"] == "partially nested lmm"
    assert res["models"]["qpr15"]["df_method"] == "satterthwaite"
