"""Issue 20.9: an NNT is never printed without its interval; for a non-significant risk
difference the interval runs from an NNTH through infinity to an NNTB (Altman DG, "Confidence
intervals for the number needed to treat", BMJ 1998;317:1309-12, whose format
"NNTB 10.0 (NNTH 21.9 to \u221e to NNTB 4.5)" is reproduced from RD 0.10 (-0.0457 to 0.2222):
1/0.0457 = 21.9, 1/0.2222 = 4.5; closed form)."""

from __future__ import annotations

from peerstats.describe.responder import _nnt_label


def test_non_significant_nnt_runs_through_infinity():
    assert _nnt_label("improved", 1 / 0.10, -0.0457, 0.2222) == (
        "NNTB 10.0 (NNTH 21.9 to \u221e to NNTB 4.5)"
    )


def test_significant_nnt_interval_and_harmful_category():
    assert _nnt_label("improved", 5.0, 0.08, 0.32) == "NNTB 5.0 (3.1 to 12.5)"
    # fewer deteriorations with the intervention is a benefit
    assert _nnt_label("deteriorated", -5.0, -0.32, -0.08) == "NNTB 5.0 (3.1 to 12.5)"
    assert _nnt_label("improved", -5.0, -0.32, -0.08) == "NNTH 5.0 (3.1 to 12.5)"
