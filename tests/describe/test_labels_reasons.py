"""Reasons and adverse-event terms relabelled by the analysis spec, and outcome codes in
CONSORT reasons named by their labels (issue 21). Data are made up."""

import pandas as pd

import peerstats
from peerstats.describe.labels import Labels, relabel
from peerstats.describe.render import Table


def test_reason_and_adverse_event_labels():
    lab = Labels(
        outcomes={"social_inkludering": "Social Inclusion Scale"},
        reasons={"flyttat": "moved away"},
        adverse_events={"sjukhusinläggning": "hospital admission"},
    )
    assert lab.reason("flyttat") == "moved away"
    assert lab.reason("  \u2013 flyttat") == "  \u2013 moved away"  # a CONSORT table line
    assert lab.reason("no post-baseline social_inkludering") == (
        "no post-baseline Social Inclusion Scale"
    )
    assert lab.adverse_event("  sjukhusinläggning") == "  hospital admission"
    disp = pd.DataFrame(
        {
            "Box": ["Randomised", "  \u2013 flyttat"],
            "Adverse events": ["Any", "  sjukhusinläggning"],
        }
    )
    out = relabel(Table(disp, disp), lab).display
    assert out["Box"].tolist() == ["Randomised", "  \u2013 moved away"]
    assert out["Adverse events"].tolist() == ["Any", "  hospital admission"]


def test_consort_flow_reasons_in_words():
    trial = peerstats.datasets.load("peer_recovery")
    flow = peerstats.consort(trial)
    reasons = [r for r in flow.counts["reason"] if isinstance(r, str)]
    assert reasons
    first = reasons[0]
    renamed = flow.relabelled({first: "REASON IN ENGLISH"})
    assert "REASON IN ENGLISH" in set(renamed.counts["reason"])
    assert first not in set(renamed.counts["reason"])
    assert list(renamed.counts["n"]) == list(flow.counts["n"])  # counts unchanged


def test_analysis_spec_labels_reasons_reach_the_display_labels():
    from peerstats.pipeline._display import display_labels
    from peerstats.pipeline.analysis_spec import read_analysis_spec

    spec = read_analysis_spec(
        {
            "analysis": {"name": "t"},
            "trial": {"dataset": "peer_recovery"},
            "primary": {"outcome": "qpr15", "visit": "post"},
            "labels": {"reasons": {"flyttat": "moved away"}, "adverse_events": {"fall": "a fall"}},
        }
    )
    lab = display_labels(peerstats.datasets.load("peer_recovery"), spec)
    assert lab.reason("flyttat") == "moved away" and lab.adverse_event("fall") == "a fall"
