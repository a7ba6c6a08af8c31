"""outcome_table with stand-in fits (the MMRM result interface) and hand-computed values."""

import math
import types

import numpy as np
import pandas as pd
import pytest

from peerstats.describe.outcome_table import outcome_table, pooled_sd

VISITS = ["baseline", "post"]


class StandInFit:
    """Returns fixed contrasts in the layout of peerstats' MixedModelResult.contrasts()."""

    visit = "visit"

    def __init__(self, outcome, estimate, se, p):
        self.formula = f"{outcome} ~ {outcome}_baseline + arm * visit"
        self._row = dict(estimate=estimate, std_error=se, p=p)

    def contrasts(self, arm, by=None, reference=None, level=0.95):
        e, se = self._row["estimate"], self._row["std_error"]
        return pd.DataFrame(
            [
                {
                    "visit": "post",
                    "contrast": "peer - usual",
                    "estimate": e,
                    "std_error": se,
                    "df": 40.0,
                    "statistic": e / se,
                    "p_value": self._row["p"],
                    "ci_lower": e - 2.0 * se,
                    "ci_upper": e + 2.0 * se,
                }
            ]
        )


def _trial():
    rows = []
    # baseline values: usual 10, 12, 14 (var 4); peer 11, 15, 19 (var 16)
    data = {
        "u1": ("usual", 10, 11),
        "u2": ("usual", 12, 12),
        "u3": ("usual", 14, np.nan),
        "p1": ("peer", 11, 15),
        "p2": ("peer", 15, 18),
        "p3": ("peer", 19, 24),
    }
    for s, (arm, b, p) in data.items():
        for out in ("y1", "y2", "y3"):
            rows.append({"subject": s, "arm": arm, "visit": "baseline", out: b})
            rows.append({"subject": s, "arm": arm, "visit": "post", out: p})
    a = pd.DataFrame(rows).groupby(["subject", "arm", "visit"], as_index=False).first()
    spec = {
        "arms": {"levels": ["usual", "peer"], "reference": "usual"},
        "visits": VISITS,
        "outcomes": {"y1": {}, "y2": {}, "y3": {}},
    }
    return types.SimpleNamespace(participants=None, assessments=a, spec=spec)


def test_observed_summaries_and_d_by_hand():
    t = outcome_table({"y1": StandInFit("y1", 4.0, 1.0, 0.001)}, _trial())
    row = t.data.iloc[0]
    assert (row.n_usual, row.n_peer) == (2, 3)
    assert row.mean_usual == pytest.approx(11.5) and row.sd_usual == pytest.approx(math.sqrt(0.5))
    assert row.mean_peer == pytest.approx(19.0)
    sd = math.sqrt((2 * 4 + 2 * 16) / 4)  # pooled baseline SD
    assert row.sd_baseline == pytest.approx(sd)
    assert row.d == pytest.approx(4.0 / sd)
    assert (row.d_ci_lower, row.d_ci_upper) == pytest.approx((2.0 / sd, 6.0 / sd))
    assert row.primary and np.isnan(row.p_adjusted)


def test_holm_and_bh_on_secondary_outcomes_by_hand():
    fits = [
        StandInFit("y1", 4.0, 1.0, 0.001),
        StandInFit("y2", 1.0, 1.0, 0.01),
        StandInFit("y3", 1.0, 1.0, 0.04),
    ]
    holm = outcome_table(fits, _trial(), adjust="holm").data.set_index("outcome")
    # secondary family {y2: 0.01, y3: 0.04}: Holm = (0.02, 0.04)
    assert holm.loc["y2", "p_adjusted"] == pytest.approx(0.02)
    assert holm.loc["y3", "p_adjusted"] == pytest.approx(0.04)
    assert np.isnan(holm.loc["y1", "p_adjusted"])
    bh = outcome_table(fits, _trial(), adjust="fdr_bh", primary="y3").data.set_index("outcome")
    # family {y1: 0.001, y2: 0.01}: BH = (0.002, 0.01)
    assert bh.loc["y1", "p_adjusted"] == pytest.approx(0.002)
    assert bh.loc["y2", "p_adjusted"] == pytest.approx(0.01)


def test_display_and_render():
    t = outcome_table({"y1": StandInFit("y1", 4.0, 1.0, 0.0004)}, _trial(), labels={"y1": "QPR-15"})
    d = t.display.iloc[0]
    assert d["Outcome"] == "QPR-15 (primary)"
    assert d["Difference (95% CI)"] == "4.00 (2.00 to 6.00)"
    assert d["p"] == "<0.001"
    assert list(t.display.columns)[2:4] == ["usual: n, mean (SD)", "peer: n, mean (SD)"]
    assert "QPR-15" in t.to_latex()


def test_pooled_sd_matches_formula():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([3.0, 7.0, 8.0, 10.0])
    expected = math.sqrt((2 * a.var(ddof=1) + 3 * b.var(ddof=1)) / 5)
    assert pooled_sd([a, b]) == pytest.approx(expected)


def test_with_the_mmrm_engine_if_available():
    mmrm = pytest.importorskip("peerstats.models.mmrm").mmrm
    rng = np.random.default_rng(3)
    n = 40
    arm = np.repeat(["usual", "peer"], n // 2)
    base = rng.normal(30, 6, n)
    rows = []
    for i in range(n):
        for v, shift in (("post", 2.0), ("fu3", 1.0)):
            y = base[i] + (3.0 if arm[i] == "peer" else 0.0) + shift + rng.normal(0, 4)
            rows.append(
                {"subject": f"s{i}", "arm": arm[i], "visit": v, "y": y, "y_baseline": base[i]}
            )
    d = pd.DataFrame(rows)
    d["arm"] = pd.Categorical(d.arm, ["usual", "peer"])
    d["visit"] = pd.Categorical(d.visit, ["post", "fu3"])
    fit = mmrm("y ~ y_baseline + arm * visit", d, subject="subject", visit="visit")
    t = outcome_table(fit)
    con = fit.contrasts(arm="arm", by="visit")
    assert t.data.estimate.tolist() == pytest.approx(con.estimate.tolist())
    sd = pooled_sd([base[:20], base[20:]])  # baseline SD per arm from the model's data
    assert t.data.d.tolist() == pytest.approx((con.estimate / sd).tolist())
    assert t.data.n_peer.tolist() == [20, 20]


def test_primary_not_fitted_makes_every_fit_secondary():
    """Spec outcomes [y1, y2, y3] with fits for y2, y3 only: y1 is the primary, so both fitted
    outcomes are secondary and Holm-adjusted: p (0.01, 0.04) -> (0.02, 0.04)."""
    fits = {"y2": StandInFit("y2", 1.0, 1.0, 0.01), "y3": StandInFit("y3", 1.0, 1.0, 0.04)}
    t = outcome_table(fits, _trial(), adjust="holm").data.set_index("outcome")
    assert not t["primary"].any()
    assert t.loc["y2", "p_adjusted"] == pytest.approx(0.02)
    assert t.loc["y3", "p_adjusted"] == pytest.approx(0.04)


def test_level_is_passed_to_the_fits():
    seen = []

    class Recording(StandInFit):
        def contrasts(self, arm, by=None, reference=None, level=0.95):
            seen.append(level)
            return super().contrasts(arm, by=by, reference=reference, level=level)

    t = outcome_table({"y1": Recording("y1", 4.0, 1.0, 0.001)}, _trial(), level=0.90)
    assert seen == [0.90]
    assert any("90% CI" in note for note in t.notes)


def test_fit_with_a_single_post_visit_has_no_visit_term():
    """An outcome observed at one post-baseline visit is fitted without a visit term; the table
    names that visit instead of failing. Difference checked against OLS by hand (numpy)."""
    import peerstats

    trial = _trial()
    a = trial.assessments
    post = a[a["visit"] == "post"].dropna(subset=["y1"]).copy()
    base = a[a["visit"] == "baseline"].set_index("subject")["y1"]
    post["y1_baseline"] = post["subject"].map(base)
    post["arm"] = pd.Categorical(post["arm"], categories=["usual", "peer"])
    fit = peerstats.mmrm("y1 ~ y1_baseline + arm", post, subject="subject", visit="visit",
                         covariance="us")
    t = outcome_table({"y1": fit}, trial)
    row = t.data.iloc[0]
    assert row["visit"] == "post"
    X = np.column_stack([np.ones(len(post)), post["y1_baseline"], post["arm"] == "peer"])
    beta = np.linalg.lstsq(X.astype(float), post["y1"].to_numpy(float), rcond=None)[0]
    assert row["estimate"] == pytest.approx(beta[2], rel=1e-6)
