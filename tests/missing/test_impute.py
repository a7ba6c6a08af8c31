"""impute() on data shapes trials have: absent rows, three arms with a covariance per arm,
numeric visits; counts of imputed values; the summary."""

import numpy as np
import pandas as pd
from tests.missing._trial import ice_frame, make_trial

import peerstats


def test_absent_rows_are_added_and_imputed():
    df, drop = make_trial(n=40, seed=51, dropout=0.4)
    sparse = df[df["y"].notna()]  # the rows after dropout are absent, as in many exports
    imp_full = peerstats.impute(
        "y ~ arm * visit + base",
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-bootstrap",
        n_imputations=2,
        seed=1,
    )
    imp_sparse = peerstats.impute(
        "y ~ arm * visit + base",
        sparse,
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-bootstrap",
        n_imputations=2,
        seed=1,
    )
    np.testing.assert_allclose(imp_sparse.values, imp_full.values, rtol=1e-10)
    d0 = imp_sparse.datasets[0]
    assert len(d0) == 3 * 40 and not d0["y"].isna().any() and not d0["base"].isna().any()
    assert imp_sparse.n_imputed["n_missing"].sum() == int(df["y"].isna().sum())


def test_three_arms_group_covariance_numeric_visits():
    df, drop = make_trial(n=90, seed=52, dropout=0.3)
    ids = df["id"].unique()
    arm3 = {s: ["usual", "peer", "online"][k % 3] for k, s in enumerate(ids)}
    df["arm"] = pd.Categorical(df["id"].map(arm3), ["usual", "peer", "online"])
    df["visit"] = df["visit"].map({"w4": 4, "w8": 8, "w12": 12}).astype(int)
    ice = ice_frame(df.assign(visit=df["visit"]), drop, ["JR", "CIR"])
    ice["visit"] = ice["visit"].map({"w4": 4, "w8": 8, "w12": 12})
    imp = peerstats.impute(
        "y ~ arm * visit + base",
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="bayes",
        n_imputations=5,
        ice=ice,
        reference={"peer": "usual", "online": "usual"},
        seed=1,
        group="arm",
    )
    res = imp.analyse(covariates=["base"])
    assert list(res["contrast"].unique()) == ["peer - usual", "online - usual"]
    assert list(res["visit"].cat.categories) == [4, 8, 12]
    assert {"lsmean_usual", "lsmean_peer", "lsmean_online"} <= set(res.columns)
    assert imp.draws["sigma"].shape == (5, 3, 3, 3)  # draws x arms x visits x visits
    ls = imp.lsmeans(covariates=["base"])
    assert len(ls) == 9 and ls["std_error"].gt(0).all()
    tp = peerstats.tipping_point(imp, [-2.0, 0.0], arm="online", contrast="online - usual")
    assert tp.contrast == "online - usual" and tp.visit == "12"
