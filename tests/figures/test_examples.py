"""Every reporting function runs on every bundled example trial (smoke + reconciliation)."""

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

import peerstats

DATA = Path(__file__).parents[2] / "src/peerstats/datasets/data"
TRIALS = ["peer_recovery", "icbt_peer", "icbt_feasibility", "social_inclusion"]


@pytest.fixture(scope="module", params=TRIALS)
def trial(request):
    spec = DATA / request.param / "spec.yaml"
    if not spec.exists():
        pytest.skip(f"bundled example {request.param} not generated yet")
    return peerstats.load_trial(spec)


def test_consort_table_and_figures_on_example(trial):
    flow = peerstats.consort(trial)
    part = trial.participants
    rand = part["randomised"] == 1 if "randomised" in part.columns else part["subject"].notna()
    n_rand = int(rand.sum())
    first = "consented" if flow.layout == "single-arm" else "randomised"
    assert flow.n(first) == n_rand
    # analysed + excluded from analysis = allocated, per arm
    for arm in flow.arms:
        alloc = int((part.loc[rand, "arm"].astype(str) == arm).sum()) if "arm" in part else n_rand
        assert flow.n("analysed", arm) + flow.n("excluded_from_analysis", arm) == alloc
    fig = flow.plot()
    assert len(fig.axes[0].texts) > 8
    plt.close(fig)
    t1 = peerstats.table_one(trial)
    assert len(t1.display) > 2 and "<table" in t1.to_html()
    outcome = trial.spec.outcome_names[0]
    ax = peerstats.plot_trajectories(trial, outcome, spaghetti=True)
    assert ax.get_legend() is not None
    plt.close(ax.figure)
    ax = peerstats.plot_change(trial, outcome)
    plt.close(ax.figure)
    feas = peerstats.feasibility(trial)
    assert (feas.data.proportion.between(0, 1)).all()
    wgc = peerstats.within_group_change(trial, outcome)
    assert len(wgc.data) >= 1
    if trial.sessions is not None:
        ax = peerstats.plot_attendance(trial)
        plt.close(ax.figure)


def test_consort_reconciles_with_the_primary_mmrm_fit():
    spec = DATA / "peer_recovery" / "spec.yaml"
    if not spec.exists():
        pytest.skip("bundled example peer_recovery not generated yet")
    trial = peerstats.load_trial(spec)
    a = trial.assessments
    d = a[a["visit"] != "baseline"].dropna(subset=["qpr15_baseline"]).copy()
    d["visit"] = d["visit"].cat.remove_unused_categories()
    fit = peerstats.mmrm(
        "qpr15 ~ qpr15_baseline + site + arm * visit", d, subject="subject", visit="visit"
    )
    flow = peerstats.consort(trial, fit=fit)
    assert flow.reconciled_with_fit
    assert sum(flow.n("analysed", arm) for arm in flow.arms) == fit.n_subjects
    # a fit on fewer participants than the data support is an error, not a footnote
    some = d["subject"].drop_duplicates().iloc[:5]
    fit2 = peerstats.mmrm(
        "qpr15 ~ qpr15_baseline + site + arm * visit",
        d[~d["subject"].isin(some)],
        subject="subject",
        visit="visit",
    )
    with pytest.raises(peerstats.ReconciliationError):
        peerstats.consort(trial, fit=fit2)
