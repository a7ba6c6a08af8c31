"""Closed-form derivatives of the REML/ML criterion against finite differences (tests only).

The engine computes the observed Hessian of -2 log-likelihood in closed form on the pooled
statistics (Wolfinger, Tobias & Sall 1994) and d2 Sigma / dtheta2 per structure. Here each is
compared with central differences of an independent lower-order quantity:

- d2sigma: central differences (step 1e-5 relative) of dsigma, itself checked against complex
  steps of sigma;
- the observed Hessian: central differences (step 1e-5) of the analytic gradient (the same
  finite-difference Hessian the engine used before), for every structure, with and without
  group=, REML and ML, at a point away from the optimum (so that the residual terms matter);
- the gradient: central differences of the objective;
- the expected information and X'V^-1 dV V^-1 X: the generic per-size-class code path.

Tolerances: central differences with step h have truncation error O(h^2) ~ 1e-10 and rounding
error eps/h ~ 1e-11 relative to the largest entry; we allow 1e-7 relative to the largest entry
of each matrix (Hessian, d2sigma), 1e-6 for the gradient from differences of the objective
(rounding error eps |f| / h ~ 1e-8 relative), 1e-9 relative between the two exact code paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peerstats.models._covariance import STRUCTURES, d2sigma_by_differences, make_structure
from peerstats.models._reml import REMLEngine
from peerstats.models.prepared import prepare_mmrm

FEV = Path(__file__).parents[1] / "reference" / "sas_fev" / "fev_data.csv"
FD_TOL = 1e-7
GRAD_TOL = 1e-6
EXACT_TOL = 1e-9


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FEV)


@pytest.mark.parametrize("T", [1, 2, 4, 6])
@pytest.mark.parametrize("name", STRUCTURES)
def test_d2sigma_against_differences_of_dsigma(name, T):
    if name in ("cs", "csh") and T < 2:
        pytest.skip("needs two visits")
    st = make_structure(name, T)
    rng = np.random.default_rng(T)
    theta = rng.normal(0, 0.5, st.n_params)
    # dsigma itself against complex steps of sigma
    cs = np.stack(
        [st.sigma(theta + 1e-30j * np.eye(st.n_params)[k]).imag / 1e-30 for k in range(st.n_params)]
    )
    np.testing.assert_allclose(st.dsigma(theta), cs, atol=1e-12 * np.abs(cs).max())
    fd = d2sigma_by_differences(st, theta)
    d2 = st.d2sigma(theta)
    assert np.abs(d2 - fd).max() <= FD_TOL * max(1.0, np.abs(fd).max())
    W = rng.normal(size=(T, T))
    W = W + W.T
    dot = st.d2sigma_dot(theta, W)
    np.testing.assert_allclose(dot, np.einsum("klab,ab->kl", d2, W), atol=1e-10 * np.abs(dot).max())


class _Generic:
    """The same covariance model without the MMRM fast path (per-size-class code)."""

    def __init__(self, cov):
        self.cov = cov
        self.n_params = cov.n_params

    def block_covariances(self, theta):
        return self.cov.block_covariances(theta)


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("group", [None, "ARMCD"])
@pytest.mark.parametrize("covariance", STRUCTURES)
def test_observed_hessian_against_differences(fev, covariance, group, method):
    weights = "WEIGHT" if covariance in ("adh", "cs") else None
    prep = prepare_mmrm(
        "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
        fev,
        subject="USUBJID",
        visit="AVISIT",
        covariance=covariance,
        group=group,
        weights=weights,
        method=method,
        reference={"ARMCD": "PBO"},
    )
    engine = prep._engine(prep._stats)
    theta = prep._theta_start() + np.linspace(-0.1, 0.1, engine.cov.n_params)
    st, H, E = engine.second(theta)
    fd = engine.hessian_differences(theta, 1e-5)
    assert np.abs(H - fd).max() <= FD_TOL * np.abs(fd).max()
    # gradient against differences of the objective
    K = len(theta)
    g_fd = np.empty(K)
    for k in range(K):
        e = np.zeros(K)
        e[k] = 1e-5
        g_fd[k] = (
            engine.evaluate(theta + e).objective - engine.evaluate(theta - e).objective
        ) / 2e-5
    assert np.abs(st.gradient - g_fd).max() <= GRAD_TOL * max(1.0, np.abs(g_fd).max())
    # the generic per-size-class code path: objective, gradient, expected information, P_k
    gen = REMLEngine(
        engine.classes,
        _Generic(engine.cov),
        n_obs=engine.n_obs,
        method=method,
        log_weight_sum=engine.log_weight_sum,
    )
    sg = gen.evaluate(theta)
    assert abs(sg.objective - st.objective) <= EXACT_TOL * abs(st.objective)
    np.testing.assert_allclose(st.gradient, sg.gradient, atol=EXACT_TOL * np.abs(sg.gradient).max())
    Eg = gen.expected_information(theta)
    np.testing.assert_allclose(E, Eg, atol=EXACT_TOL * np.abs(Eg).max())
    Pg = gen.jacobian_terms(theta)
    np.testing.assert_allclose(engine.jacobian_terms(theta), Pg, atol=EXACT_TOL * np.abs(Pg).max())
    # the Hessian the fit returns is the closed form at the estimate, positive definite there
    fit = engine.fit(prep._theta_start())
    assert fit["converged"]
    Hfit = fit["hessian"]
    fd_fit = engine.hessian_differences(fit["state"].theta, 1e-5)
    assert np.abs(Hfit - fd_fit).max() <= FD_TOL * np.abs(fd_fit).max()
    assert np.linalg.eigvalsh(Hfit)[0] > 0
