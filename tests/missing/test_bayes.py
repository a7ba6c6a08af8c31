"""The Gibbs sampler of method="bayes" against the conjugate closed form.

With complete data and the visit-interacted design y_i' = x_i' B + e_i' (q = 3 subject-level
regressors, T = 3 visits), a flat prior on B and the Jeffreys prior on Sigma, the posterior is
(e.g. Gelman et al., BDA3 sec. 14.x / Box & Tiao 8.4):
Sigma | Y ~ inverse Wishart(n - q, S_hat), so E[Sigma] = S_hat / (n - q - T - 1), and
B | Sigma, Y ~ matrix normal(B_hat, (X'X)^-1, Sigma), so E[B] = B_hat and
Var(B_jt | Y) = (X'X)^-1_jj E[Sigma_tt]. Computed here with numpy only.
Tolerances (Monte Carlo, 3000 draws): posterior means within 4 MC SEs (effective sample size
taken as half the draws); posterior SDs within 8%.
"""

import numpy as np
import pandas as pd
from tests.missing._trial import VISITS, make_trial

import peerstats


def test_bayes_complete_data_conjugate():
    df, _ = make_trial(n=60, seed=21, dropout=0.0)
    imp = peerstats.impute(
        "y ~ (arm + base) * visit",
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="bayes",
        n_imputations=3000,
        seed=5,
    )
    wide = df.pivot(index="id", columns="visit", values="y")[VISITS]
    sub = df.drop_duplicates("id").set_index("id").loc[wide.index]
    X = np.column_stack([np.ones(len(sub)), (sub["arm"] == "peer"), sub["base"]]).astype(float)
    Y = wide.to_numpy()
    n, q, T = X.shape[0], X.shape[1], Y.shape[1]
    XtXi = np.linalg.inv(X.T @ X)
    Bhat = XtXi @ X.T @ Y
    Shat = (Y - X @ Bhat).T @ (Y - X @ Bhat)
    ESigma = Shat / (n - q - T - 1)
    sig = imp.draws["sigma"][:, 0]
    ess = sig.shape[0] / 2
    nu = n - q
    var_diag = 2 * np.diag(Shat) ** 2 / ((nu - T - 1) ** 2 * (nu - T - 3))
    got = sig.mean(axis=0)
    assert np.all(np.abs(np.diag(got) - np.diag(ESigma)) < 4 * np.sqrt(var_diag / ess))
    np.testing.assert_allclose(got, ESigma, rtol=0.05, atol=0.05 * ESigma.max())
    # the arm effect at each visit
    cols = imp.draws["columns"]
    b = imp.draws["beta"]
    arm_eff = [b[:, cols.index("arm[T.peer]")]]
    for v in VISITS[1:]:
        arm_eff.append(arm_eff[0] + b[:, cols.index(f"arm[T.peer]:visit[T.{v}]")])
    arm_eff = np.column_stack(arm_eff)
    sd = np.sqrt(XtXi[1, 1] * np.diag(ESigma))
    assert np.all(np.abs(arm_eff.mean(axis=0) - Bhat[1]) < 4 * sd / np.sqrt(ess))
    np.testing.assert_allclose(arm_eff.std(axis=0), sd, rtol=0.08)
    # no missing data: nothing imputed, every completed set is the data
    assert imp.target.sum() == 0
    assert imp.info["n_failed_draws"] == 0


def test_bayes_reproducible_and_counts():
    df, drop = make_trial(n=40, seed=22, dropout=0.3)
    kw = dict(subject="id", visit="visit", arm="arm", method="bayes", n_imputations=5)
    a = peerstats.impute("y ~ arm * visit + base", df, seed=3, **kw)
    b = peerstats.impute("y ~ arm * visit + base", df, seed=3, **kw)
    c = peerstats.impute("y ~ arm * visit + base", df, seed=4, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    counts = a.n_imputed
    assert counts["n_missing"].sum() == int(df["y"].isna().sum())
    assert isinstance(a.datasets[0], pd.DataFrame) and len(a.datasets) == 5
    assert not a.datasets[4]["y"].isna().any()
    assert "bayes" in repr(a) and "<table>" in a._repr_html_()
