"""CONSORT counts against flows built by hand, reconciliation with a fit, and the drawing.

Every expected count below is written out by hand from the small frames in this file.
"""

import types

import numpy as np
import pandas as pd
import pytest

from peerstats import ReconciliationError
from peerstats.figures.consort import COUNT_COLUMNS, consort

VISITS = ["baseline", "post", "fu3"]


def _trial():
    # 10 people assessed: 3 not randomised (2 ineligible: 1 with a reason, 1 without; 1 declined)
    part = pd.DataFrame(
        {
            "subject": [f"s{i}" for i in range(1, 11)],
            "arm": [None, None, None, "usual", "usual", "usual", "peer", "peer", "peer", "peer"],
            "randomised": [0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
            "eligible": [0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
            "exclusion_reason": [
                "age under 18",
                None,
                "declined",
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            "received": [None, None, None, 1, 1, 1, 1, 0, 0, 1],
            "not_received_reason": [None] * 7 + ["moved away", None, None],
            "discontinued": [None, None, None, 0, 0, 0, 0, 0, 0, 1],
            "discontinued_reason": [None] * 9 + ["too stressful"],
            "lost_post_reason": [None] * 5 + ["illness"] + [None] * 4,
            "group": [None] * 6 + ["g1", "g1", "g2", "g2"],
            "peer": [None] * 6 + ["p1;p2", "p1;p2", "p3;p2", "p3;p2"],
        }
    )
    # observed qpr15 (x = observed, . = missing):
    #        baseline post fu3
    #  s4     x        x    x
    #  s5     x        x    .      -> lost at fu3 (no reason column -> not recorded)
    #  s6     x        .    .      -> lost at post (illness) and fu3; not analysed
    #  s7     x        x    x
    #  s8     .        x    x      -> no baseline; not analysed
    #  s9     x        .    x      -> lost at post
    #  s10    x        x    x
    obs = {
        "s4": (1, 1, 1),
        "s5": (1, 1, 0),
        "s6": (1, 0, 0),
        "s7": (1, 1, 1),
        "s8": (0, 1, 1),
        "s9": (1, 0, 1),
        "s10": (1, 1, 1),
    }
    arm = dict(zip(part.subject, part.arm))
    rows = []
    for s, flags in obs.items():
        for v, f in zip(VISITS, flags):
            rows.append({"subject": s, "arm": arm[s], "visit": v, "qpr15": 30.0 if f else np.nan})
    a = pd.DataFrame(rows)
    base = a[a.visit == "baseline"].set_index("subject")["qpr15"]
    a["qpr15_baseline"] = a.subject.map(base)
    spec = {
        "design": "parallel",
        "arms": {"levels": ["usual", "peer"], "reference": "usual", "group_delivered": ["peer"]},
        "visits": VISITS,
        "outcomes": {"qpr15": {"min": 0, "max": 60}},
    }
    return types.SimpleNamespace(participants=part, assessments=a, spec=spec)


def test_counts_columns_and_enrolment():
    flow = consort(_trial())
    assert list(flow.counts.columns) == COUNT_COLUMNS
    assert set(flow.counts.stage) == {"enrolment", "allocation", "follow-up", "analysis"}
    assert flow.n("assessed") == 10
    assert flow.n("excluded") == 3
    assert flow.reasons("excluded") == {
        "age under 18": 1,
        "declined": 1,
        "not meeting inclusion criteria": 1,
    }
    assert flow.n("randomised") == 7
    assert flow.counts.loc[flow.counts.stage == "enrolment", "arm"].isna().all()


def test_allocation_received_and_reasons():
    flow = consort(_trial())
    assert flow.n("allocated", "usual") == 3 and flow.n("allocated", "peer") == 4
    assert flow.n("received", "usual") == 3 and flow.n("received", "peer") == 2
    assert flow.n("not_received", "peer") == 2
    assert flow.reasons("not_received", "peer") == {"moved away": 1, "reason not recorded": 1}


def test_lost_to_follow_up_per_visit_and_discontinued():
    flow = consort(_trial())
    assert flow.n("lost_to_follow_up", "usual", visit="post") == 1
    assert flow.reasons("lost_to_follow_up", "usual", "post") == {"illness": 1}
    assert flow.n("lost_to_follow_up", "usual", visit="fu3") == 2
    assert flow.reasons("lost_to_follow_up", "usual", "fu3") == {}  # no reason column for fu3
    assert flow.n("lost_to_follow_up", "peer", visit="post") == 1
    assert flow.n("lost_to_follow_up", "peer", visit="fu3") == 0
    assert flow.n("discontinued", "peer") == 1
    assert flow.reasons("discontinued", "peer") == {"too stressful": 1}
    with pytest.raises(KeyError):
        flow.n("lost_to_follow_up", "usual")  # one count per visit: visit= is needed


def test_analysis_set_and_exclusion_reasons():
    flow = consort(_trial())
    assert flow.n("analysed", "usual") == 2  # s4, s5
    assert flow.reasons("excluded_from_analysis", "usual") == {"no post-baseline qpr15": 1}
    assert flow.n("analysed", "peer") == 3  # s7, s9, s10
    assert flow.reasons("excluded_from_analysis", "peer") == {"no baseline qpr15": 1}


def test_reason_rows_sum_to_box_totals():
    c = consort(_trial()).counts
    tot = c[c.reason.isna()].set_index(["box", "arm", "visit"], drop=False)
    for (box, arm, visit), grp in c[c.reason.notna()].groupby(
        ["box", "arm", "visit"], dropna=False
    ):
        sel = (c.box == box) & c.reason.isna()
        sel &= c.arm.isna() if arm is None or arm != arm else c.arm == arm
        sel &= c.visit.isna() if visit is None or visit != visit else c.visit == visit
        assert grp.n.sum() == c.loc[sel, "n"].iloc[0]
    assert len(tot) > 0


def test_cluster_extension():
    cl = consort(_trial()).clusters.set_index("arm")
    assert list(cl.index) == ["peer"]
    assert cl.loc["peer", "n_groups"] == 2
    assert cl.loc["peer", "n_peers"] == 3  # p1, p2, p3
    assert cl.loc["peer", "group_size_mean"] == 2.0
    assert cl.loc["peer", "group_size_min"] == 2 and cl.loc["peer", "group_size_max"] == 2


def test_single_arm_pilot_layout():
    part = pd.DataFrame(
        {
            "subject": ["a", "b", "c", "d", "e"],
            "randomised": [0, 1, 1, 1, 1],
            "exclusion_reason": ["declined", None, None, None, None],
            "received": [None, 1, 1, 1, 0],
            "not_received_reason": [None, None, None, None, "no time"],
        }
    )
    a = pd.DataFrame(
        {
            "subject": ["b", "b", "b", "c", "c", "d", "d", "e"],
            "visit": ["pre", "post", "fu", "pre", "post", "pre", "fu", "pre"],
            "gad7": [10, 8, 6, 12, 9, 14, 7, 11],
        }
    )
    spec = {
        "design": "single-arm",
        "arms": {"levels": ["icbt"]},
        "visits": ["pre", "post", "fu"],
        "outcomes": {"gad7": {}},
    }
    flow = consort(types.SimpleNamespace(participants=part, assessments=a, spec=spec))
    assert flow.layout == "single-arm"
    assert flow.n("approached") == 5 and flow.n("consented") == 4
    assert flow.reasons("excluded") == {"declined": 1}
    assert flow.n("started", "icbt") == 3 and flow.reasons("not_started", "icbt") == {"no time": 1}
    assert [flow.n("completed", "icbt", visit=v) for v in ["pre", "post", "fu"]] == [4, 2, 2]
    assert flow.n("lost_to_follow_up", "icbt", visit="post") == 2
    assert flow.n("analysed", "icbt") == 3  # b, c, d: baseline and a later visit


def test_single_arm_consented_but_not_enrolled_is_not_lost():
    """'e' consented but was never enrolled (randomised 0, no reason): the pilot layout's
    'Consented and enrolled' box would drop them silently, so it is an error."""
    part = pd.DataFrame(
        {
            "subject": ["a", "b", "c", "e"],
            "consented": [0, 1, 1, 1],
            "randomised": [0, 1, 1, 0],
            "exclusion_reason": ["declined", None, None, None],
        }
    )
    a = pd.DataFrame({"subject": ["b", "c"], "visit": ["pre", "pre"], "gad7": [10, 12]})
    spec = {"design": "single-arm", "arms": {"levels": ["icbt"]}, "visits": ["pre", "post"],
            "outcomes": {"gad7": {}}}
    trial = types.SimpleNamespace(participants=part, assessments=a, spec=spec)
    with pytest.raises(ReconciliationError, match="1 participant\\(s\\) differ between 'consented'"):
        consort(trial)
    part.loc[3, "consented"] = 0  # consistent: e did not consent
    assert consort(trial).n("consented") == 2


class _StandInFit:
    """Minimal stand-in for an MMRM result: the subjects the model used."""

    def __init__(self, subjects, outcome="qpr15"):
        self.subjects = subjects
        self.outcome = outcome
        self.n_subjects = len(subjects)


def test_fit_reconciles_when_it_used_the_analysis_set():
    flow = consort(_trial(), fit=_StandInFit(["s4", "s5", "s7", "s9", "s10"]))
    assert flow.reconciled_with_fit
    assert flow.n("analysed", "usual") == 2 and flow.n("analysed", "peer") == 3


def test_fit_mismatch_is_a_reconciliation_error():
    with pytest.raises(ReconciliationError, match="did not use"):
        consort(_trial(), fit=_StandInFit(["s4", "s7", "s9", "s10"]))  # s5 dropped
    with pytest.raises(ReconciliationError, match="not randomised"):
        consort(_trial(), fit=_StandInFit(["s1", "s4", "s5", "s7", "s9", "s10"]))
    with pytest.raises(ReconciliationError, match="without baseline"):
        consort(_trial(), fit=_StandInFit(["s4", "s5", "s6", "s7", "s9", "s10"]))


def test_fit_with_counts_only():
    fit = types.SimpleNamespace(n_subjects=5, outcome="qpr15")
    assert consort(_trial(), fit=fit).n("analysed", "peer") == 3
    with pytest.raises(ReconciliationError, match="analysed 6"):
        consort(_trial(), fit=types.SimpleNamespace(n_subjects=6, outcome="qpr15"))
    by_arm = types.SimpleNamespace(n_subjects_by_arm={"usual": 2, "peer": 4}, outcome="qpr15")
    with pytest.raises(ReconciliationError, match="arm 'peer'"):
        consort(_trial(), fit=by_arm)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_plot_contains_every_box_and_no_overlaps(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    flow = consort(_trial())
    fig = flow.plot(arm_labels={"peer": "PEER", "usual": "Usual services"})
    texts = _texts(fig)
    for expected in [
        "Assessed for eligibility (n = 10)",
        "Excluded (n = 3)",
        "Randomised (n = 7)",
        "Allocated to Usual services (n = 3)",
        "Allocated to PEER (n = 4)",
        "Lost to follow-up at post (n = 1)",
        "\u2013 illness (1)",
        "Discontinued intervention (n = 1)",
        "Analysed (n = 2)",
        "Analysed (n = 3)",
        "Delivered in 2 groups by 3 peers",
        "Enrolment",
        "Analysis",
    ]:
        assert expected in texts, expected
    boxes = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("consort-box")]
    assert len(boxes) == 3 + 3 * 2  # enrolment boxes + 3 rows x 2 arms
    # no two boxes overlap
    ext = [
        (b.get_x(), b.get_y(), b.get_x() + b.get_width(), b.get_y() + b.get_height()) for b in boxes
    ]
    for i in range(len(ext)):
        for j in range(i + 1, len(ext)):
            a, b = ext[i], ext[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (i, j)
    # every text line lies inside its box (measured with the renderer)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes_by_key = {b.get_gid().split(":", 1)[1]: b for b in boxes}
    for t in ax.texts:
        gid = t.get_gid() or ""
        if not gid.startswith("consort-text:"):
            continue
        box = boxes_by_key[gid.split(":", 1)[1]]
        tb = t.get_window_extent(r)
        bb = box.get_window_extent(r)
        assert tb.x0 >= bb.x0 - 0.5 and tb.x1 <= bb.x1 + 0.5, t.get_text()
        assert tb.y0 >= bb.y0 - 0.5 and tb.y1 <= bb.y1 + 0.5, t.get_text()
    assert isinstance(boxes[0], FancyBboxPatch)
    out = tmp_path / "consort.png"
    fig.savefig(out, dpi=100)
    img = plt.imread(out)
    assert img.std() > 0.05  # not blank
    plt.close(fig)


def test_plot_single_arm_and_into_given_axes():
    import matplotlib.pyplot as plt

    part = pd.DataFrame({"subject": ["a", "b"], "randomised": [1, 1]})
    a = pd.DataFrame(
        {"subject": ["a", "a", "b"], "visit": ["pre", "post", "pre"], "gad7": [10, 8, 12]}
    )
    spec = {
        "design": "single-arm",
        "arms": {"levels": ["icbt"]},
        "visits": ["pre", "post"],
        "outcomes": {"gad7": {}},
    }
    flow = consort(types.SimpleNamespace(participants=part, assessments=a, spec=spec))
    fig, ax = plt.subplots(figsize=(4, 3))
    out = flow.plot(ax=ax)
    assert out is fig
    texts = _texts(fig)
    assert "Completed post assessment (n = 1)" in texts
    assert "Consented and enrolled (n = 2)" in texts
    plt.close(fig)


def test_withdrawal_reasons_use_last_visit_and_returns():
    part = pd.DataFrame(
        {
            "subject": ["a", "b", "c", "d"],
            "arm": ["usual", "usual", "usual", "usual"],
            # a withdrew after baseline; b withdrew after post; c missed post and came back;
            # d was not assessed at fu3 without any recorded reason
            "withdrawn_reason": ["moved away", "too unwell", None, None],
            "last_visit": ["baseline", "post", None, None],
        }
    )
    obs = {"a": (1, 0, 0), "b": (1, 1, 0), "c": (1, 0, 1), "d": (1, 1, 0)}
    rows = [
        {"subject": s, "arm": "usual", "visit": v, "y": 1.0 if f else np.nan}
        for s, flags in obs.items()
        for v, f in zip(VISITS, flags)
    ]
    spec = {
        "arms": {"levels": ["usual"]},
        "design": "parallel",
        "visits": VISITS,
        "outcomes": {"y": {}},
    }
    flow = consort(
        types.SimpleNamespace(participants=part, assessments=pd.DataFrame(rows), spec=spec)
    )
    assert flow.reasons("lost_to_follow_up", "usual", "post") == {
        "moved away": 1,
        "missed visit, returned later": 1,
    }
    assert flow.reasons("lost_to_follow_up", "usual", "fu3") == {
        "moved away": 1,
        "too unwell": 1,
        "reason not recorded": 1,
    }


def test_no_screening_data_leaves_out_the_assessed_box():
    t = _trial()
    part = t.participants[t.participants.randomised == 1].drop(
        columns=["randomised", "eligible", "exclusion_reason"]
    )
    flow = consort(types.SimpleNamespace(participants=part, assessments=t.assessments, spec=t.spec))
    assert "assessed" not in set(flow.counts.box) and "excluded" not in set(flow.counts.box)
    assert flow.n("randomised") == 7
    fig = flow.plot()
    texts = _texts(fig)
    assert "Randomised (n = 7)" in texts
    assert not any(t.startswith("Assessed") for t in texts)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize(
    "suffix,magic", [(".svg", b"<?xml"), (".pdf", b"%PDF"), (".png", b"\x89PNG")]
)
def test_save_formats(tmp_path, suffix, magic):
    path = tmp_path / f"consort{suffix}"
    consort(_trial()).save(str(path), dpi=72)
    assert path.read_bytes()[: len(magic)] == magic


def test_counts_render_as_a_table():
    t = consort(_trial()).to_table()
    md = t.to_markdown()
    assert "| Randomised" in md and "–" in md
    assert t.data.equals(consort(_trial()).counts)
    assert "<table" in consort(_trial())._repr_html_()


def test_blank_column_for_a_whole_arm_is_not_applicable():
    t = _trial()
    part = t.participants.copy()
    part.loc[part.arm == "usual", "discontinued"] = None
    flow = consort(types.SimpleNamespace(participants=part, assessments=t.assessments, spec=t.spec))
    assert flow.n("discontinued", "peer") == 1
    with pytest.raises(KeyError):
        flow.n("discontinued", "usual")
