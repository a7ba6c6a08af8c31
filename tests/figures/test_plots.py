"""Trajectory, forest, change and attendance plots: content checks with the Agg backend."""

import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from peerstats.figures.distributions import plot_attendance, plot_change
from peerstats.figures.forest import plot_forest
from peerstats.figures.palette import OKABE_ITO, arm_colors
from peerstats.figures.trajectories import observed_means, plot_trajectories


def _trial():
    rows = []
    vals = {  # subject: (arm, baseline, post)
        "u1": ("usual", 10.0, 12.0),
        "u2": ("usual", 14.0, 13.0),
        "u3": ("usual", 12.0, 14.0),
        "p1": ("peer", 11.0, 17.0),
        "p2": ("peer", 13.0, 19.0),
        "p3": ("peer", 15.0, 24.0),
    }
    for s, (arm, b, p) in vals.items():
        rows += [
            {"subject": s, "arm": arm, "visit": "baseline", "y": b},
            {"subject": s, "arm": arm, "visit": "post", "y": p},
        ]
    sessions = pd.DataFrame(
        [
            {"subject": s, "session": k, "attended": int(k <= m)}
            for s, m in {"p1": 10, "p2": 4, "p3": 7}.items()
            for k in range(1, 11)
        ]
    )
    part = pd.DataFrame({"subject": list(vals), "arm": [v[0] for v in vals.values()]})
    spec = {
        "arms": {"levels": ["usual", "peer"], "reference": "usual"},
        "visits": ["baseline", "post"],
        "outcomes": {"y": {"label": "QPR-15 total"}},
    }
    return types.SimpleNamespace(
        participants=part, assessments=pd.DataFrame(rows), sessions=sessions, spec=spec
    )


def _not_blank(fig, tmp_path):
    out = tmp_path / "f.png"
    fig.savefig(out, dpi=80)
    assert plt.imread(out).std() > 0.05


def test_palette_is_fixed_per_arm_order():
    assert arm_colors(["usual", "peer"]) == {"usual": OKABE_ITO[0], "peer": OKABE_ITO[1]}


def test_observed_means_t_interval():
    from scipy import stats

    m = observed_means(_trial().assessments, "y").set_index(["arm", "visit"])
    x = np.array([17.0, 19.0, 24.0])
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert m.loc[("peer", "post"), "mean"] == pytest.approx(20.0)
    assert m.loc[("peer", "post"), "ci_upper"] == pytest.approx(20.0 + half)


class _StandInFit:
    visit = "visit"

    def emmeans(self, specs, level=0.95):
        return pd.DataFrame(
            {
                "arm": ["usual", "usual", "peer", "peer"],
                "visit": ["baseline", "post"] * 2,
                "estimate": [12.0, 13.0, 13.0, 20.0],
                "ci_lower": [10.0, 11.0, 11.0, 18.0],
                "ci_upper": [14.0, 15.0, 15.0, 22.0],
            }
        )


def test_trajectories_content(tmp_path):
    ax = plot_trajectories(
        _trial(), "y", fit=_StandInFit(), spaghetti=True, arm_labels={"peer": "PEER"}
    )
    gids = [ln.get_gid() for ln in ax.lines]
    assert gids.count("spaghetti") == 6
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["usual (observed)", "PEER (observed)", "usual (model)", "PEER (model)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "post"]
    assert ax.get_ylabel() == "QPR-15 total, mean (95% CI)"
    # the observed peer line passes through the observed means (11+13+15)/3 and 20
    peer = next(c for c in ax.containers if c.get_label() == "PEER (observed)")
    y = peer.lines[0].get_ydata()
    assert list(y) == pytest.approx([13.0, 20.0])
    assert to_hex(peer.lines[0].get_color()) == OKABE_ITO[1].lower()
    _not_blank(ax.figure, tmp_path)
    plt.close(ax.figure)


def test_forest_content(tmp_path):
    eff = pd.DataFrame(
        {
            "outcome": ["QPR-15", "QPR-15", "MANSA"],
            "visit": ["post", "fu3", "fu3"],
            "estimate": [5.1, 4.0, 0.3],
            "ci_lower": [2.4, 1.0, -0.1],
            "ci_upper": [7.8, 7.0, 0.7],
        }
    )
    ax = plot_forest(eff, favours=("usual", "PEER"))
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["QPR-15", "   post", "   fu3", "MANSA", "   fu3"]
    assert sum(ln.get_gid() == "estimate" for ln in ax.lines) == 3
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "forest-annotation"]
    assert notes == ["5.10 (2.40 to 7.80)", "4.00 (1.00 to 7.00)", "0.30 (-0.10 to 0.70)"]
    lo, hi = ax.get_xlim()
    assert lo < -0.1 and hi > 7.8
    _not_blank(ax.figure, tmp_path)
    plt.close(ax.figure)


def test_change_and_attendance_plots(tmp_path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    assert plot_change(_trial(), "y", ax=a1) is a1
    assert [t.get_text() for t in a1.get_xticklabels()] == ["usual\n(n = 3)", "peer\n(n = 3)"]
    pts = [c for c in a1.collections if (c.get_gid() or "") == "points:peer"][0]
    assert sorted(pts.get_offsets()[:, 1]) == [6.0, 6.0, 9.0]
    plot_attendance(_trial(), ax=a2)
    bars = [p for p in a2.patches if p.get_height() > 0]
    assert sorted(round(p.get_x() + p.get_width() / 2) for p in bars) == [4, 7, 10]
    assert a2.get_xlabel() == "Sessions attended (of 10)"
    _not_blank(fig, tmp_path)
    plt.close(fig)


def test_trajectories_single_arm_overlays_per_visit_model_means():
    """Single-arm fit (no arm term): model means per visit are overlaid for the one arm; their
    values equal the observed means at each visit when every subject is complete (saturated
    visit model), which is checked against pandas."""
    import numpy as np
    import pandas as pd

    import peerstats

    rng = np.random.default_rng(3)
    n = 12
    long = pd.DataFrame({
        "subject": np.repeat([f"s{i}" for i in range(n)], 3),
        "arm": "peer",
        "visit": pd.Categorical(np.tile(["pre", "post", "fu"], n),
                                categories=["pre", "post", "fu"], ordered=True),
    })
    long["y"] = 10 + long["visit"].cat.codes * -1.5 + rng.normal(0, 2, len(long))
    fit = peerstats.mmrm("y ~ visit", long, subject="subject", visit="visit", covariance="us")
    ax = peerstats.plot_trajectories(long, "y", fit=fit)
    model = [c for c in ax.containers if c.lines[0].get_gid() == "model:peer"]
    assert len(model) == 1 and model[0].get_label() == "peer (model)"
    ys = model[0].lines[0].get_ydata()
    expected = long.groupby("visit", observed=True)["y"].mean().to_numpy()
    np.testing.assert_allclose(np.asarray(ys, float), expected, rtol=1e-8)
    other = long.rename(columns={"y": "z"}).assign(y=long["y"])
    with pytest.raises(peerstats.ModelSpecificationError, match="cannot be overlaid"):
        peerstats.plot_trajectories(other, "z", fit=fit)
