"""Property: corrupting valid trial data at random always gives either a Trial holding every
input row or a DataValidationError naming rows that exist, never another exception and never a
silent drop. All data synthetic."""

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerstats.data.validation import validate

PARTICIPANTS = pd.DataFrame(
    {
        "id": ["01", "02", "03", "04", "05", "06"],
        "arm": ["usual", "peer", "peer", "usual", "", "peer"],
        "site": ["A", "A", "B", "B", "A", "B"],
        "group": ["", "g1", "g1", "", "", "g2"],
        "randomised": ["1", "1", "1", "1", "0", "1"],
    }
)
ASSESSMENTS = pd.DataFrame(
    {
        "id": ["01", "01", "02", "02", "03", "03", "04", "05", "06", "06"],
        "visit": [
            "baseline",
            "post",
            "baseline",
            "post",
            "baseline",
            "post",
            "baseline",
            "baseline",
            "baseline",
            "post",
        ],
        "qpr15": ["30", "35", "28", "40", "33", "", "20", "25", "41.5", "44"],
    }
)
SPEC = {
    "trial": {"name": "Property (synthetic)", "design": "parallel", "synthetic": True},
    "data": {"participants": "p.csv", "assessments": "a.csv"},
    "columns": {
        "subject": "id",
        "arm": "arm",
        "visit": "visit",
        "site": "site",
        "group": "group",
        "randomised": "randomised",
    },
    "arms": {"reference": "usual", "levels": ["usual", "peer"], "group_delivered": ["peer"]},
    "visits": ["baseline", "post"],
    "sites": ["A", "B"],
    "outcomes": {"qpr15": {"column": "qpr15", "min": 0, "max": 60}},
}

VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "x",
            "3.5x",
            "999",
            "-1",
            "peeer",
            "Peer",
            "pots",
            "C",
            "01",
            "07",
            "1e1",
            "60",
            "baseline",
            "post",
            "peer",
            "usual",
            "g1",
            "1",
            "0",
            "2",
            "A",
        ]
    ),
    st.text(alphabet="abc019.-+", min_size=1, max_size=4).filter(lambda s: s != "."),
)
OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("edit"),
            st.sampled_from(["p", "a"]),
            st.integers(0, 20),
            st.integers(0, 4),
            VALUES,
        ),
        st.tuples(st.just("delete"), st.sampled_from(["p", "a"]), st.integers(0, 20)),
        st.tuples(st.just("duplicate"), st.sampled_from(["p", "a"]), st.integers(0, 20)),
    ),
    max_size=4,
)


def corrupt(ops):
    frames = {"p": PARTICIPANTS.copy(), "a": ASSESSMENTS.copy()}
    for op in ops:
        f = frames[op[1]]
        if len(f) == 0:
            continue
        i = op[2] % len(f)
        if op[0] == "edit":
            f.iloc[i, op[3] % f.shape[1]] = op[4]
        elif op[0] == "delete":
            frames[op[1]] = f.drop(index=f.index[i]).reset_index(drop=True)
        else:
            frames[op[1]] = pd.concat([f, f.iloc[[i]]], ignore_index=True)
    return frames["p"], frames["a"]


def non_blank(frame):
    return int((frame.apply(lambda col: col.str.strip() != "")).any(axis=1).sum())


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_corrupted_data_is_kept_whole_or_reported(ops):
    p, a = corrupt(ops)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        p.to_csv(base / "p.csv", index=False)
        a.to_csv(base / "a.csv", index=False)
        report = validate(SPEC, base_dir=base)
    n_p, n_a = non_blank(p), non_blank(a)
    if report.ok:
        trial = report.trial
        assert len(trial.participants) == n_p
        assert sorted(trial.participants["subject"]) == sorted(p["id"])
        got = pd.concat([trial.assessments, trial.unrandomised_assessments])
        assert len(got) == n_a
        assert sorted(zip(got["subject"], got["visit"].astype(str))) == sorted(
            zip(a["id"], a["visit"])
        )
        assert got["qpr15"].between(0, 60).sum() + got["qpr15"].isna().sum() == n_a
    else:
        assert report.trial is None and len(report.failures) > 0
        sizes = {"participants": len(p), "assessments": len(a)}
        for rec in report.failures.itertuples():
            assert rec.table in sizes
            if not pd.isna(rec.row):
                assert 1 <= rec.row <= sizes[rec.table]
        assert report.failures["message"].str.len().gt(0).all()
        err = report.error()
        assert isinstance(err, ValueError) and len(err.failures) == len(report.failures)


def test_unchanged_data_are_valid():
    with tempfile.TemporaryDirectory() as d:
        PARTICIPANTS.to_csv(Path(d) / "p.csv", index=False)
        ASSESSMENTS.to_csv(Path(d) / "a.csv", index=False)
        report = validate(SPEC, base_dir=Path(d))
    assert report.ok, str(report)
    assert len(report.trial.assessments) == 9 and len(report.trial.unrandomised_assessments) == 1
