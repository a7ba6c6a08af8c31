"""Report content a reviewer asks for (issue 12, point 7): model-estimated means, harms from
an optional adverse_events table, sign conventions, relative paths in the provenance.

LS means: checked against fit.emmeans (the SAS/R-validated marginal means) and the harms counts
against pandas on the raw adverse_events.csv; exact equality (counts) / 1e-12 relative.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from peerstats import datasets


def test_ls_means_and_harms_in_results_and_report(example_runs):
    folder = example_runs["peer_recovery"]
    res = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "<h3>Model-estimated means</h3>" in html and "<h2 id='harms'>Harms</h2>" in html
    lsm = res["ls_means"]
    assert {k.split("|")[0] for k in lsm} == {"qpr15", "empowerment", "mansa", "wsas"}
    # the difference of LS means at post is the primary contrast
    peer, usual = lsm["qpr15|post|peer"], lsm["qpr15|post|usual"]
    (prim,) = res["primary"]["contrasts"].values()
    assert peer["estimate"] - usual["estimate"] == pytest.approx(prim["estimate"], rel=1e-9)
    # harms: counts from the raw file
    ae = pd.read_csv(datasets.path("peer_recovery").parent / "adverse_events.csv")
    part = pd.read_csv(datasets.path("peer_recovery").parent / "participants.csv")
    arm = dict(zip(part["id"], part["arm"]))
    ae["arm"] = ae["id"].map(arm)
    for a in ("usual", "peer"):
        h = res["harms"][f"any|{a}"]
        assert h["participants"] == ae.loc[ae["arm"] == a, "id"].nunique()
        assert h["events"] == int((ae["arm"] == a).sum())
        assert h["denominator"] == int(((part["arm"] == a) & (part["randomised"] == 1)).sum())
        s = res["harms"][f"serious|{a}"]
        assert s["events"] == int(((ae["arm"] == a) & (ae["serious"] == 1)).sum())


def test_sign_convention_and_relative_paths(example_runs):
    html = (example_runs["peer_recovery"] / "report.html").read_text(encoding="utf-8")
    assert "Cohen's d has the same sign" in html
    prov = html[html.index("id='provenance'") :]
    assert "peerstats/datasets/data/peer_recovery/participants.csv" in prov
    assert "/work/" not in prov and "site-packages" not in prov
