"""Conditional mean imputation under MAR, JR, CR, CIR and LMCF against the closed form.

The expected values are derived here, independently of peerstats.missing, from Carpenter, Roger
& Kenward (2013) and Wolbers et al. (2022): the imputation model is the MMRM fitted by
``peerstats.mmrm`` (validated against SAS) to the MAR data; for a subject with an ICE at visit
k (observed visits 0..k-1, monotone dropout) and post-ICE visits P,

    E[y_P | y_pre] = m_P + C_P,pre C_pre,pre^-1 (y_pre - mu_own,pre)

where m_P is the strategy's mean (JR: mu_ref; CR: mu_ref and the reference's pre-ICE means in
the residual; CIR: mu_own[k-1] + mu_ref[P] - mu_ref[k-1]; LMCF: mu_own[k-1]) and C is the
covariance whose conditional law the strategy adopts (JR, CIR, CR: the reference arm's; MAR,
LMCF: the own arm's). Tolerance 1e-8 absolute (same parameters, different algebra).
"""

import numpy as np
import pandas as pd
import pytest
from tests.missing._trial import VISITS, ice_frame, make_trial

import peerstats

FORMULA = "y ~ arm * visit + base"
TOL = 1e-8


def _means(params, base, arm):
    b = params
    out = []
    for j, v in enumerate(VISITS):
        m = b["Intercept"] + b["base"] * base
        if j:
            m += b[f"visit[T.{v}]"]
        if arm == "peer":
            m += b["arm[T.peer]"] + (b[f"arm[T.peer]:visit[T.{v}]"] if j else 0.0)
        out.append(m)
    return np.array(out)


def _expected(df, drop, ice, fit, group):
    """Closed-form conditional means of every missing cell, by subject id."""
    params = fit.params
    cov = fit.covariance
    strat = dict(zip(ice["id"], ice["strategy"]))
    exp = {}
    for i, (sid, d) in enumerate(df.groupby("id", sort=False)):
        k = drop[i]
        if k == 3:
            continue
        arm, base = str(d["arm"].iloc[0]), float(d["base"].iloc[0])
        y = d["y"].to_numpy()
        own = _means(params, base, arm)
        ref = _means(params, base, "usual")
        s = strat.get(sid, "MAR")
        C_own = (cov[arm] if group else cov).to_numpy()
        C_ref = (cov["usual"] if group else cov).to_numpy()
        pre, post = np.arange(k), np.arange(k, 3)
        if s == "MAR":
            m, C, centre = own, C_own, own
        elif s == "JR":
            m, C, centre = ref, C_ref, own
        elif s == "CR":
            m, C, centre = ref, C_ref, ref
        elif s == "CIR":
            m = own.copy()
            m[post] = own[k - 1] + ref[post] - ref[k - 1]
            C, centre = C_ref, own
        else:  # LMCF
            m = own.copy()
            m[post] = own[k - 1]
            C, centre = C_own, own
        A = C[np.ix_(post, pre)] @ np.linalg.inv(C[np.ix_(pre, pre)])
        exp[sid] = m[post] + A @ (y[pre] - centre[pre])
    return exp


@pytest.mark.parametrize("group", [None, "arm"])
def test_condmean_strategies_closed_form(group):
    sp = np.array([[20.0, 9.0, 5.0], [9.0, 24.0, 10.0], [5.0, 10.0, 30.0]])
    df, drop = make_trial(n=80, seed=3, dropout=0.4, sigma_peer=sp if group else None)
    ice = ice_frame(df, drop, ["JR", "CR", "CIR", "LMCF", "MAR"])
    imp = peerstats.impute(
        FORMULA,
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-bootstrap",
        n_imputations=2,
        ice=ice,
        reference={"peer": "usual"},
        seed=1,
        group=group,
    )
    fit = peerstats.mmrm(FORMULA, df, subject="id", visit="visit", group=group)
    exp = _expected(df, drop, ice, fit, group)
    d0 = imp.datasets[0]
    got = d0.set_index(["id", "visit"])["y"]
    n_checked = 0
    for sid, vals in exp.items():
        k = 3 - len(vals)
        for j, v in enumerate(VISITS[k:]):
            assert got.loc[(sid, v)] == pytest.approx(vals[j], abs=TOL), (sid, v)
            n_checked += 1
    assert n_checked == int(imp.target.sum()) > 20
    # every strategy and both arms are exercised
    assert set(ice["strategy"]) == {"JR", "CR", "CIR", "LMCF", "MAR"}


def test_delta_shift_exact_under_condmean():
    """delta on the imputed values of one arm shifts the contrast by delta x (imputed / n)
    in that arm without covariates; with covariates by delta x the arm coefficient of the
    least-squares projection of the imputed-cell indicator (computed here with lstsq)."""
    df, drop = make_trial(n=60, seed=4, dropout=0.4)
    ice = ice_frame(df, drop, ["JR"])
    kw = dict(
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-bootstrap",
        n_imputations=3,
        ice=ice,
        reference={"peer": "usual"},
        seed=2,
    )
    imp0 = peerstats.impute(FORMULA, df, **kw)
    d = 2.5
    imp1 = imp0.with_delta({"peer": d})
    r0, r1 = imp0.analyse(), imp1.analyse()
    counts = imp0.n_imputed.set_index(["arm", "visit"])
    for j, v in enumerate(VISITS):
        prop = counts.loc[("peer", v), "n_imputed"] / counts.loc[("peer", v), "n_subjects"]
        assert r1["estimate"][j] - r0["estimate"][j] == pytest.approx(d * prop, abs=1e-10)
    # with a covariate
    r0c, r1c = imp0.analyse(covariates=["base"]), imp1.analyse(covariates=["base"])
    w = df[df["visit"] == "w12"]
    X = np.column_stack([np.ones(len(w)), (w["arm"] == "peer"), w["base"]]).astype(float)
    ind = (imp0.target[:, 2] & (imp0.arm_of == 1)).astype(float)
    coef = np.linalg.lstsq(X, d * ind, rcond=None)[0][1]
    assert r1c["estimate"][2] - r0c["estimate"][2] == pytest.approx(coef, abs=1e-10)
    # the same delta given per subject and visit
    cells = [(s, v) for s, v in zip(df["id"], df["visit"])]
    t = imp0.target.reshape(-1) & np.repeat(imp0.arm_of == 1, 3)
    per = pd.DataFrame(
        {"id": [c[0] for c in cells], "visit": [c[1] for c in cells], "delta": np.where(t, d, 0.0)}
    )
    r2 = imp0.with_delta(per).analyse()
    np.testing.assert_allclose(r2["estimate"], r1["estimate"], atol=1e-12)


def test_mar_condmean_equals_mmrm():
    """Under MAR with a model congenial to the per-visit ANCOVA, conditional mean imputation
    reproduces the MMRM contrast exactly (Wolbers et al. 2022)."""
    df, _ = make_trial(n=80, seed=5, dropout=0.35)
    f = "y ~ (arm + base) * visit"
    imp = peerstats.impute(
        f,
        df,
        subject="id",
        visit="visit",
        arm="arm",
        method="condmean-bootstrap",
        n_imputations=2,
        seed=1,
    )
    fit = peerstats.mmrm(f, df, subject="id", visit="visit")
    ref = fit.contrasts("arm", by="visit")
    res = imp.analyse(covariates=["base"])
    np.testing.assert_allclose(res["estimate"], ref["estimate"], rtol=1e-6)


def test_batched_conditioning_equals_engine_conditional_moments():
    """The draw-batched conditioning of peerstats.missing equals the engine's
    conditional_moments (validated against R mmrm predict) draw by draw."""
    from peerstats.missing.strategies import compute_sigma, conditional_impute, strategy_means
    from peerstats.models._predict import conditional_moments

    rng = np.random.default_rng(0)
    n, T, D = 30, 3, 4
    y = rng.normal(size=(n, T))
    k = rng.integers(0, 4, n)
    for i in range(n):
        y[i, k[i] :] = np.nan
    y[0, 1] = np.nan  # an intermittent gap
    strat = np.array(["JR", "CIR", "CR", "MAR", "JR"] * 6, dtype=object)
    strat[(strat == "CIR") & (k == 0)] = "JR"
    A = rng.normal(size=(D, 2, T, T))
    sig = A @ np.swapaxes(A, -1, -2) + 3 * np.eye(T)
    own, ref = rng.normal(size=(D, n, T)), rng.normal(size=(D, n, T))
    mu = strategy_means(own, ref, k, strat)
    g = (np.arange(n) % 2).astype(int)  # two covariance groups, reference group 0
    covs, key = {}, np.empty(n, dtype=int)
    per_subject = np.empty((D, n, T, T))
    for i in range(n):
        if strat[i] in ("JR", "CIR") and k[i] < T:
            S = compute_sigma(sig[:, g[i]], sig[:, 0], int(k[i]))
        elif strat[i] == "CR" and k[i] < T:
            S = sig[:, 0]
        else:
            S = sig[:, g[i]]
        covs[i], key[i] = S, i
        per_subject[:, i] = S
    cond = ~np.isnan(y)
    got = conditional_impute(mu, y, cond, ~cond, key, covs, None)
    sc, vc = np.repeat(np.arange(n), T), np.tile(np.arange(T), n)
    for d in range(D):
        mean, _ = conditional_moments(mu[d].reshape(-1), y.reshape(-1), sc, vc, per_subject[d])
        np.testing.assert_allclose(got[d], mean.reshape(n, T)[~cond], rtol=1e-10, atol=1e-10)
