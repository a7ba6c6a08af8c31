"""Closed-form REML/ML derivatives of peerstats.lmm (issue 22.1) against textbook formulas.

Source of the expected values: the dense n x n formulas of Harville (1977) and Wolfinger,
Tobias & Sall (1994) for V linear in psi, computed here with numpy on the full matrices (no
pooling, no blocks, no parameter maps):

    -2 l_REML = log|V| + log|X'V^-1X| + r'V^-1r (+ (n - p) log 2 pi)
    d/dpsi_k  = tr(P D_k) - y'P D_k P y
    d2/dpsi_k dpsi_l = -tr(P D_k P D_l) + 2 y'P D_k P D_l P y,  expected tr(P D_k P D_l)

with P = V^-1 - V^-1 X (X'V^-1X)^-1 X'V^-1 (ML: P = V^-1 and no log|X'V^-1X|). Tolerance 1e-9
relative (rounding only). The chain rule to the engine's theta is checked against central
differences of the objective (tolerance 1e-5 relative, the differencing error). The data are
synthetic (a small partially nested trial, simulated below).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import SingularFitWarning
from peerstats.models._lmm_fit import fit_covariance
from peerstats.models._lmm_likelihood import LinearBlockLikelihood
from peerstats.models._lmm_setup import check_options, prepare
from peerstats.models._lmm_units import RowLikelihood

REF = Path(__file__).parents[1] / "reference" / "r_lmm"


@pytest.fixture(scope="module")
def pn() -> pd.DataFrame:
    """30 controls (no group), 30 peer participants in 5 groups, 3 visits, some rows missing."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(60):
        peer = int(i >= 30)
        u, g = rng.normal(0, 2), (i % 5) * 0.8 if peer else 0.0
        for v, t in (("v1", 0.0), ("v2", 1.0), ("v3", 2.0)):
            if rng.random() < 0.15:
                continue
            rows.append(
                {"id": f"s{i}", "arm": "peer" if peer else "control", "peer": peer,
                 "group": f"g{i % 5}" if peer else None, "visit": v, "time": t,
                 "x": rng.normal(), "y": 10 + peer + u + g + rng.normal(0, 1 + 0.5 * peer)}
            )  # fmt: skip
    return pd.DataFrame(rows)


def _setup(formula, data, **kw):
    opts = dict(residual="iid", residual_by=None, subject=None, visit=None, method="reml",
                df="satterthwaite", reference=None, kr_information="observed", vcov="model")  # fmt: skip
    opts.update(kw)
    opt, fixed, terms = check_options(formula, data, **opts)
    d = prepare(data, opt, fixed, terms)
    return d, fit_covariance(d, opt.method)


def _dense(d, psi, method):
    """Objective, gradient, observed Hessian and expected information from the n x n formulas."""
    X, y, n = d.design.X, d.design.y, d.n_obs
    Ds = []
    for rd in d.rdesigns:
        for a in range(rd.q):
            for c in range(a + 1):
                Za = np.zeros((n, rd.n_levels))
                Zc = np.zeros((n, rd.n_levels))
                on = rd.codes >= 0
                Za[np.flatnonzero(on), rd.codes[on]] = rd.Z[on, a]
                Zc[np.flatnonzero(on), rd.codes[on]] = rd.Z[on, c]
                Ds.append(Za @ Zc.T if a == c else Za @ Zc.T + Zc @ Za.T)
    Ds += [np.diag((d.res_code == g).astype(float)) for g in range(len(d.res_levels))]
    V = sum(p * D for p, D in zip(psi, Ds))
    Vi = np.linalg.inv(V)
    M = X.T @ Vi @ X
    P = Vi - Vi @ X @ np.linalg.solve(M, X.T @ Vi) if method == "reml" else None
    beta = np.linalg.solve(M, X.T @ Vi @ y)
    r = y - X @ beta
    obj = np.linalg.slogdet(V)[1] + r @ Vi @ r
    if method == "reml":
        obj += np.linalg.slogdet(M)[1]
    else:  # ML: beta profiled, P acts as V^-1 on the residual and in the traces
        P = Vi
    Py = P @ y if method == "reml" else Vi @ r
    PD = [P @ D for D in Ds]
    g = np.array([np.trace(A) - Py @ D @ Py for A, D in zip(PD, Ds)])
    E = np.array([[np.trace(A @ B) for B in PD] for A in PD])
    Hy = np.array([[2 * Py @ Dk @ P @ Dl @ Py for Dl in Ds] for Dk in Ds])
    if method == "ml":  # beta depends on psi: d beta/dpsi adds -2 u' C u
        C = np.linalg.inv(M)
        u = np.array([X.T @ Vi @ D @ Vi @ r for D in Ds])
        Hy -= 2 * u @ C @ u.T
    return obj, g, -E + Hy, E


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize(
    "formula,residual_by",
    [("y ~ x + arm * visit + (1 | id) + (0 + peer | group)", "arm"),
     ("y ~ x + arm * time + (1 + time | id)", None)],
)  # fmt: skip
def test_closed_form_matches_dense_formulas(pn, method, formula, residual_by):
    d, fc = _setup(formula, pn, residual_by=residual_by, method=method)
    psi_hat = fc.engine.theta_map.psi(fc.theta_full)
    for psi in (psi_hat, psi_hat * np.linspace(0.6, 1.7, psi_hat.size)):
        obj, g, H, E = _dense(d, psi, method)
        for lik in (
            LinearBlockLikelihood(fc.layout, fc.cov.qs, fc.cov.n_res, method),
            RowLikelihood(fc.layout, d.design.X, d.design.y, fc.cov.qs, fc.cov.n_res, method),
        ):
            r = lik.evaluate(psi, order=2)
            scale = max(np.abs(g).max(), 1.0)
            assert r["objective"] == pytest.approx(obj, rel=1e-10)
            np.testing.assert_allclose(r["gradient"], g, rtol=0, atol=1e-9 * scale)
            np.testing.assert_allclose(r["hessian"], H, rtol=1e-9, atol=1e-9 * np.abs(H).max())
            np.testing.assert_allclose(r["expected"], E, rtol=1e-9, atol=1e-9 * np.abs(E).max())


def test_theta_derivatives_match_differences(pn):
    _, fc = _setup("y ~ x + arm * time + (1 + time | id) + (0 + peer | group)", pn)
    eng = fc.engine
    theta = fc.state.theta * 0.8 + 0.05
    _, H, _ = eng.second(theta)
    g = eng.evaluate(theta).gradient
    h = 1e-5
    g_fd = np.empty_like(theta)
    H_fd = np.empty((theta.size, theta.size))
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        g_fd[k] = (eng.evaluate(theta + e).objective - eng.evaluate(theta - e).objective) / (2 * h)
        H_fd[:, k] = (eng.evaluate(theta + e).gradient - eng.evaluate(theta - e).gradient) / (2 * h)
    np.testing.assert_allclose(g, g_fd, rtol=1e-5, atol=1e-5 * np.abs(g).max())
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-5 * np.abs(H).max())


def test_singular_fit_reaches_the_boundary_in_few_evaluations():
    """The singular reference of tests/reference/r_lmm (lme4: group variance exactly 0)."""
    R = json.loads((REF / "r_lmm_reference.json").read_text())["fits"]["singular"]
    d = pd.read_csv(REF / "singular_data.csv")
    with pytest.warns(SingularFitWarning, match=r"variance of \(0 \+ peer \| group\)"):
        fit = peerstats.lmm("qpr ~ baseline + arm + (0 + peer | group)", d)
    assert fit.singular_components == ("(0 + peer | group)",)
    vc = fit.variance_components.set_index("group")["variance"]
    assert vc["group"] == 0.0 and R["variance_components"]["variance"][0] == 0
    assert vc["Residual"] == pytest.approx(R["variance_components"]["variance"][1], rel=1e-6)
    # projected Newton: the variance is held at its bound, no crawl along L -> 0
    assert fit.fit_info["n_evaluations"] <= 20


def test_regular_fit_needs_no_fallback(pn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = peerstats.lmm(
            "y ~ x + arm * visit + (1 | id) + (0 + peer | group)", pn, residual_by="arm"
        )
    assert fit.fit_info["tried"] == [
        "projected Newton-Raphson in the variances (analytic observed Hessian)"
    ]
    assert fit.fit_info["n_evaluations"] <= 15
