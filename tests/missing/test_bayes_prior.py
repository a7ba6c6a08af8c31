"""method="bayes" with prior="rbmi" (inverse Wishart(T + 2, Sigma_REML), issue 20.8) against the
conjugate closed form.

Source of the prior: R rbmi vignette stat_specs.Rmd ("We choose S equal to the estimated
covariance matrix from the frequentist REML fit and nu = J + 2") and rbmi
inst/stan/covariance_priors/us_default.stan (``Sigma[g] ~ inv_wishart(n_visit+2, Sigma_par[g])``).
With complete data, the visit-interacted design y_i' = x_i' B + e_i' (q regressors, T visits) and
a flat prior on B, the posterior is Sigma | Y ~ IW(n - q + T + 2, S_hat + S0) (Box & Tiao 8.4
with the conjugate prior), S0 the REML estimate S_hat / (n - q), so
E[Sigma | Y] = (S_hat + S0) / (n - q + 1). Computed here with numpy only.
Tolerance (Monte Carlo, 3000 draws): relative 5% (as tests/missing/test_bayes.py).
"""

import numpy as np
import pytest
from tests.missing._trial import VISITS, make_trial

import peerstats
from peerstats.exceptions import ModelSpecificationError


def test_bayes_rbmi_prior_complete_data_conjugate():
    df, _ = make_trial(n=30, seed=21, dropout=0.0)
    kw = dict(subject="id", visit="visit", arm="arm", method="bayes", n_imputations=3000, seed=5)
    imp = peerstats.impute("y ~ (arm + base) * visit", df, prior="rbmi", **kw)
    wide = df.pivot(index="id", columns="visit", values="y")[VISITS]
    sub = df.drop_duplicates("id").set_index("id").loc[wide.index]
    X = np.column_stack([np.ones(len(sub)), (sub["arm"] == "peer"), sub["base"]]).astype(float)
    Y = wide.to_numpy()
    n, q, T = X.shape[0], X.shape[1], Y.shape[1]
    Bhat = np.linalg.solve(X.T @ X, X.T @ Y)
    Shat = (Y - X @ Bhat).T @ (Y - X @ Bhat)
    S0 = Shat / (n - q)
    expected = (Shat + S0) / (n - q + 1)
    got = imp.draws["sigma"][:, 0].mean(axis=0)
    np.testing.assert_allclose(got, expected, rtol=0.05, atol=0.05 * expected.max())
    assert imp.info["prior"] == "rbmi"
    # the Jeffreys posterior mean S_hat / (n - q - T - 1) is 20% larger here: the test can fail
    jeff = Shat / (n - q - T - 1)
    assert np.all(np.diag(jeff) > 1.15 * np.diag(expected))


def test_prior_only_with_bayes():
    df, _ = make_trial(n=30, seed=21, dropout=0.0)
    kw = dict(subject="id", visit="visit", arm="arm", n_imputations=2, seed=5)
    with pytest.raises(ModelSpecificationError, match="jeffreys"):
        peerstats.impute("y ~ arm * visit", df, method="approx-bayes", prior="rbmi", **kw)
    with pytest.raises(ModelSpecificationError, match="rbmi"):
        peerstats.impute("y ~ arm * visit", df, method="bayes", prior="flat", **kw)
