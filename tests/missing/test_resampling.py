"""Jackknife standard error against a brute-force leave-one-out loop of peerstats.mmrm, and the
MAR multiple-imputation estimate against the MMRM estimate.

Brute force (written here, not through peerstats.missing): for each subject i, fit the MMRM
without i, impute the conditional means (JR closed form, see test_strategies.py), fit the
ANCOVA by numpy lstsq on the other n - 1 subjects, then se = sqrt((n-1)/n sum (t_i - mean)^2).
Tolerance 1e-6 relative (the refits converge to the REML optimum to about 1e-8).
"""

import numpy as np
import pytest
from tests.missing._trial import VISITS, ice_frame, make_trial
from tests.missing.test_strategies import FORMULA, _expected

import peerstats


def _ancova_arm(df_completed, visit):
    w = df_completed[df_completed["visit"] == visit]
    X = np.column_stack([np.ones(len(w)), (w["arm"] == "peer"), w["base"]]).astype(float)
    return np.linalg.lstsq(X, w["y"].to_numpy(), rcond=None)[0][1]


def _complete(df, drop, ice, fit):
    exp = _expected(df, drop, ice, fit, None)
    out = df.copy()
    for sid, vals in exp.items():
        k = 3 - len(vals)
        for j, v in enumerate(VISITS[k:]):
            out.loc[(out["id"] == sid) & (out["visit"] == v), "y"] = vals[j]
    return out


def test_jackknife_se_brute_force():
    df, drop = make_trial(n=24, seed=7, dropout=0.4)
    ice = ice_frame(df, drop, ["JR", "CIR"])
    imp = peerstats.impute(
        FORMULA,
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-jackknife",
        ice=ice,
        reference={"peer": "usual"},
    )
    res = imp.analyse(covariates=["base"])
    ids = df["id"].unique()
    est = []
    for sid in ids:
        keep = df["id"] != sid
        sub, sdrop = df[keep], drop[ids != sid]
        fit = peerstats.mmrm(FORMULA, sub, subject="id", visit="visit")
        comp = _complete(sub, sdrop, ice[ice["id"] != sid], fit)
        est.append([_ancova_arm(comp, v) for v in VISITS])
    est = np.array(est)
    n = len(ids)
    se = np.sqrt((n - 1) / n * ((est - est.mean(axis=0)) ** 2).sum(axis=0))
    full = _complete(df, drop, ice, peerstats.mmrm(FORMULA, df, subject="id", visit="visit"))
    np.testing.assert_allclose(res["estimate"], [_ancova_arm(full, v) for v in VISITS], rtol=1e-8)
    np.testing.assert_allclose(res["std_error"], se, rtol=1e-6)
    assert np.isinf(res["df"]).all()
    assert len(imp.datasets) == n + 1
    assert imp.datasets[1]["id"].nunique() == n - 1  # leave-one-out sets drop their subject


def test_mar_bayes_converges_to_mmrm():
    """MAR, no delta, M = 400 draws: |MI - MMRM| within 4 Monte-Carlo SEs (sqrt(b/M)) plus
    the O(1/n) gap between posterior mean and REML estimate (0.02 x the MMRM SE)."""
    df, _ = make_trial(n=200, seed=8, dropout=0.3)
    f = "y ~ (arm + base) * visit"
    imp = peerstats.impute(
        f, df, subject="id", visit="visit", arm="arm", method="bayes", n_imputations=400, seed=11
    )
    res = imp.analyse(covariates=["base"])
    fit = peerstats.mmrm(f, df, subject="id", visit="visit").contrasts("arm", by="visit")
    from peerstats.missing._analysis import ancova_design, ancova_many

    for j, v in enumerate(VISITS):
        fr = imp.frame.iloc[j::3]
        X, _, _ = ancova_design(fr, "arm", imp.arm_levels, "usual", ["base"])
        beta, *_ = ancova_many(X, imp.completed()[:, :, j], None, 1)
        mc = np.sqrt(beta[:, 1].var(ddof=1) / len(beta))
        diff = abs(res["estimate"][j] - fit["estimate"][j])
        assert diff < 4 * mc + 0.02 * fit["std_error"][j], (v, diff, mc)
        # pooled SE close to the model-based MMRM SE
        assert res["std_error"][j] == pytest.approx(fit["std_error"][j], rel=0.1)


@pytest.mark.parametrize(
    "method, m", [("condmean-bootstrap", 4), ("bootstrap-ml", (3, 2)), ("approx-bayes", 3)]
)
def test_user_analysis_through_datasets_matches_fast_path(method, m):
    """analyse(fn) on the lazily built DataFrames (bootstrap sets repeat subjects as drawn)
    pools to the same numbers as the vectorised per-visit ANCOVA."""
    df, drop = make_trial(n=40, seed=9, dropout=0.3)
    imp = peerstats.impute(
        FORMULA,
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method=method,
        n_imputations=m,
        ice=ice_frame(df, drop, ["CR"]),
        reference="usual",
        seed=3,
    )
    fast = imp.analyse(covariates=["base"], bootstrap="normal")
    if imp.weights is not None:
        d1 = imp.datasets[1]
        assert len(d1) == 3 * imp.weights[1].sum()
        assert d1.groupby("id").size().eq(3).all()

    def fn(d):
        w = d[d["visit"] == "w12"]
        X = np.column_stack([np.ones(len(w)), (w["arm"] == "peer"), w["base"]]).astype(float)
        y = w["y"].to_numpy()
        b, *_ = np.linalg.lstsq(X, y, rcond=None)
        s2 = ((y - X @ b) ** 2).sum() / (len(y) - 3)
        return b[1:2], s2 * np.linalg.inv(X.T @ X)[1, 1:2]

    slow = imp.analyse(fn, bootstrap="normal", df_complete=40 - 3)
    assert slow["estimate"][0] == pytest.approx(fast["estimate"].iloc[-1], rel=1e-10)
    assert slow["std_error"][0] == pytest.approx(fast["std_error"].iloc[-1], rel=1e-10)
