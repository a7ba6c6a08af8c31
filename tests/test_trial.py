"""The Trial object: frames, standard names, baseline values, scoring, summary. Synthetic data."""

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.data.trial import Trial

PARTICIPANTS = """id,arm,site,group,peer,randomised,eligible,exclusion_reason,age
001,usual,A,,,1,1,,34
002,peer,A,g1,P1,1,1,,45
003,peer,B,g1,P1,1,1,,51
004,,B,,,0,0,declined,29
005,usual,B,,,1,1,,38
"""
ASSESSMENTS = """id,visit,qpr15
002,post,40
001,baseline,30
001,post,35
002,baseline,28
003,baseline,33
004,baseline,20
003,fu3,31
005,post,22
"""
SESSIONS = """id,session,attended
002,1,1
002,2,0
003,1,1
"""


def spec(**over):
    d = {
        "trial": {"name": "PEER mini (synthetic)", "design": "parallel", "synthetic": True},
        "data": {"participants": "p.csv", "assessments": "a.csv", "sessions": "s.csv"},
        "columns": {
            "subject": "id",
            "arm": "arm",
            "visit": "visit",
            "site": "site",
            "group": "group",
            "peer": "peer",
            "randomised": "randomised",
            "eligible": "eligible",
            "exclusion_reason": "exclusion_reason",
        },
        "arms": {"reference": "usual", "levels": ["usual", "peer"], "group_delivered": ["peer"]},
        "visits": ["baseline", "post", "fu3"],
        "strata": ["site"],
        "covariates": ["age"],
        "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60, "higher_is_better": True}},
    }
    d.update(over)
    return d


@pytest.fixture
def trial(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    (tmp_path / "s.csv").write_text(SESSIONS)
    return peerstats.load_trial(spec(), base_dir=tmp_path)


def test_participants_frame(trial):
    p = trial.participants
    assert p.columns.tolist()[:6] == ["subject", "arm", "site", "group", "peer", "randomised"]
    assert p["subject"].tolist() == ["001", "002", "003", "004", "005"]
    assert p["arm"].cat.ordered and list(p["arm"].cat.categories) == ["usual", "peer"]
    assert p["arm"].isna().tolist() == [False, False, False, True, False]
    assert p["randomised"].tolist() == [True, True, True, False, True]
    assert p["eligible"].tolist() == [True, True, True, False, True]
    assert p["exclusion_reason"].iloc[3] == "declined"
    assert p["age"].tolist() == [34.0, 45.0, 51.0, 29.0, 38.0]
    assert len(trial.randomised) == 4


def test_assessments_long_sorted_with_baseline(trial):
    a = trial.assessments
    assert a.columns.tolist() == [
        "subject",
        "arm",
        "visit",
        "site",
        "group",
        "qpr15",
        "qpr15_baseline",
    ]
    assert list(zip(a["subject"], a["visit"])) == [
        ("001", "baseline"),
        ("001", "post"),
        ("002", "baseline"),
        ("002", "post"),
        ("003", "baseline"),
        ("003", "fu3"),
        ("005", "post"),
    ]
    assert a["visit"].cat.ordered and list(a["visit"].cat.categories) == ["baseline", "post", "fu3"]
    assert a["arm"].tolist() == ["usual", "usual", "peer", "peer", "peer", "peer", "usual"]
    np.testing.assert_array_equal(a["qpr15_baseline"], [30, 30, 28, 28, 33, 33, np.nan])
    assert a["group"].tolist()[2:6] == ["g1"] * 4


def test_every_input_row_is_kept(trial):
    assert len(trial.assessments) + len(trial.unrandomised_assessments) == 8
    u = trial.unrandomised_assessments
    assert u["subject"].tolist() == ["004"] and u["arm"].isna().all()


def test_sessions(trial):
    s = trial.sessions
    assert s.columns.tolist() == ["subject", "arm", "session", "attended"]
    assert s["attended"].tolist() == [1, 0, 1] and s["arm"].tolist() == ["peer"] * 3


def test_trial_is_read_only(trial):
    with pytest.raises(AttributeError, match="read-only"):
        trial.assessments = None
    a = trial.assessments
    a.loc[0, "qpr15"] = -99
    assert trial.assessments.loc[0, "qpr15"] == 30
    with pytest.raises(TypeError, match="load_trial"):
        Trial(
            spec=trial.spec,
            participants=None,
            assessments=None,
            unrandomised_assessments=None,
            sessions=None,
            scoring={},
            warnings=[],
        )


def test_summary_and_repr(trial):
    text = trial.summary()
    assert "Participants: 5 (4 randomised, 1 not randomised)" in text
    assert "Randomised per arm: usual 2, peer 2" in text
    assert "Sites: 2 (A 2, B 2)" in text
    assert "Delivery groups in peer: 1 (participants per group: mean 2.0, range 2-2)" in text
    assert "SYNTHETIC" in text and "Sessions: 3 rows, 2 attended, 2 participants" in text
    lines = text.splitlines()
    qpr = next(ln for ln in lines if ln.strip().startswith("qpr15"))
    assert qpr.split()[1:] == ["3", "3", "1"]
    assert repr(trial).startswith("<Trial 'PEER mini (synthetic)': 5 participants, 4 randomised")
    assert "<pre>" in trial._repr_html_()


def test_single_arm_without_arm_column(tmp_path):
    (tmp_path / "p.csv").write_text("id\n1\n2\n")
    (tmp_path / "a.csv").write_text("id,visit,gad\n1,pre,10\n2,pre,12\n2,post,6\n")
    d = {
        "trial": {"name": "Feasibility (synthetic)", "design": "single-arm"},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "visit": "visit"},
        "arms": {"levels": ["icbt_peer"]},
        "visits": ["pre", "post"],
        "outcomes": {"gad": {"column": "gad", "min": 0, "max": 21}},
    }
    t = peerstats.load_trial(d, base_dir=tmp_path)
    assert t.participants["arm"].tolist() == ["icbt_peer"] * 2
    assert t.assessments["gad_baseline"].tolist() == [10, 12, 12]


def test_scored_outcome_from_items_with_proration(tmp_path):
    (tmp_path / "p.csv").write_text("id,arm\n1,usual\n2,peer\n3,peer\n")
    items = [f"qpr_{k}" for k in range(1, 16)]
    rows = [
        ["1", "baseline"] + ["2"] * 15,
        ["2", "baseline"] + ["4"] * 13 + ["", "1"],  # 14 answered: prorated
        ["3", "baseline"] + ["1"] * 10 + [""] * 5,
    ]  # 10 of 15 answered: missing
    text = "\n".join(",".join(r) for r in [["id", "visit", *items], *rows]) + "\n"
    (tmp_path / "a.csv").write_text(text)
    d = {
        "trial": {"name": "Items (synthetic)", "design": "parallel"},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline"],
        "outcomes": {"qpr15": {"instrument": "QPR-15"}},
    }
    t = peerstats.load_trial(d, base_dir=tmp_path)
    a = t.assessments
    # hand calculation: 15 x 2 = 30; (13 x 4 + 1) / 14 x 15 = 56.7857...; too few items -> missing
    np.testing.assert_allclose(a["qpr15"].to_numpy(), [30.0, 53 / 14 * 15, np.nan])
    assert a["qpr_14"].isna().tolist() == [False, True, True]
    assert t.scoring["qpr15"]["n_prorated"] == 1 and t.scoring["qpr15"]["n_missing"] == 1
    assert "Scoring qpr15:" in t.summary()


def test_subscales_become_columns(tmp_path):
    from peerstats.instruments import get_instrument

    inst = get_instrument("SIS")
    if not inst.subscales:
        pytest.skip("SIS definition has no subscales")
    (tmp_path / "p.csv").write_text("id,arm\n1,usual\n")
    items = list(inst.items)
    (tmp_path / "a.csv").write_text(
        "id,visit," + ",".join(items) + "\n1,baseline," + ",".join(["2"] * len(items)) + "\n"
    )
    d = {
        "trial": {"name": "SIS (synthetic)", "design": "parallel"},
        "data": {"participants": "p.csv", "assessments": "a.csv"},
        "columns": {"subject": "id", "arm": "arm", "visit": "visit"},
        "arms": {"reference": "usual", "levels": ["usual", "peer"]},
        "visits": ["baseline"],
        "outcomes": {"sis": {"instrument": "SIS"}},
    }
    a = peerstats.load_trial(d, base_dir=tmp_path).assessments
    for sub in inst.subscales:
        assert a[f"sis_{sub.name}"].iloc[0] == 2 * len(sub.items)


def test_load_trial_from_yaml_path(tmp_path):
    import yaml

    (tmp_path / "p.csv").write_text(PARTICIPANTS)
    (tmp_path / "a.csv").write_text(ASSESSMENTS)
    (tmp_path / "s.csv").write_text(SESSIONS)
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(spec()))
    t = peerstats.load_trial(str(tmp_path / "trial.yaml"))
    assert t.spec.source == (tmp_path / "trial.yaml").resolve()
    assert f"Spec: {t.spec.source}" in t.summary()
    pd.testing.assert_frame_equal(
        t.assessments, peerstats.load_trial(spec(), base_dir=tmp_path).assessments
    )


def test_baseline_cronbach_alpha_reported_per_instrument():
    """Alpha at baseline equals the textbook formula computed here with numpy (QPR-15 has no
    reverse-keyed items): k/(k-1) * (1 - sum item variances / variance of the sum)."""

    import peerstats

    trial = peerstats.datasets.load("peer_recovery")
    items = [f"qpr_{k}" for k in range(1, 16)]
    base = trial.assessments.loc[trial.assessments["visit"] == "baseline", items]
    x = base.apply(pd.to_numeric, errors="coerce").dropna().to_numpy(float)
    k = x.shape[1]
    expected = k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    got = trial.scoring["qpr15"]["alpha_baseline"]
    assert got["n"] == x.shape[0]
    assert abs(got["alpha"] - expected) < 1e-10
    assert got["ci_lower"] < got["alpha"] < got["ci_upper"]
