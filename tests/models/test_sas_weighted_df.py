"""Why SAS's Satterthwaite df in sas_weighted.txt (WEIGHT + TYPE=UN) are not ours (issue 10.9).

Source of the expected numbers: tests/reference/sas_fev/sas_weighted.txt (SAS PROC MIXED, REML,
``MODEL FEV1 = RACE SEX ARMCD AVISIT ARMCD*AVISIT / ddfm=satterthwaite``, ``REPEATED AVISIT /
subject=USUBJID type=un``, ``WEIGHT WEIGHT``), transcribed in sas_fev.json, and
sas_weighted_ante1.json (SAS's weighted ANTE(1) runs). No expected value comes from peerstats.

Finding. With the WEIGHT statement the model is V_i = W_i^-1/2 R_i(psi) W_i^-1/2 (SAS
documentation of the WEIGHT statement). The Satterthwaite df of l'beta is 2 (l'Cl)^2 / g'Ag
with g_k = l'C X'V^-1 (dV/dpsi_k) V^-1 X C l and A the inverse observed information. Every df
that listing prints is reproduced by that formula when dV/dpsi_k is taken as the *unweighted*
dR/dpsi_k (the 0/1 index matrix of UN(i,j)) instead of W^-1/2 dR/dpsi_k W^-1/2, and the result
is truncated at the residual df n - rank(X) = 526: the 9 differences SAS prints with 526 df
are those for which that formula gives 554 to 699. The fit itself (estimates, SEs, covariance
parameters and their limits, -2 log-likelihood) is weighted correctly by SAS and agrees with
ours. SAS's own weighted ANTE(1) runs do not do this: their df (187 REML, 188 ML) are the
correctly weighted ones (ours), while the unweighted-derivative formula would give about 486.
So SAS's df with WEIGHT depend on the covariance structure's code path (UN, whose derivative
matrices are constant, drops the weights); R mmrm and nlme agree with ours (openpharma/mmrm
issue 132). peerstats keeps the df of the model it fits; the 14 df tests of that listing in
test_mmrm_sas.py stay xfail with this reason, and this module checks the explanation.

The computation below is written from the definitions with numpy (REML criterion, its Hessian
by central differences, per-subject sums), independently of peerstats' df code; peerstats
supplies only the design matrix (SAS's reference levels) and, for the last check, its fit.

Tolerances: SAS prints df as integers computed at its (rounded, 4-5 significant digits)
covariance estimates; we evaluate at those printed estimates and require |ours - SAS| <= 1
(0.2% of ~500; the largest difference seen is 0.54). Agreement of the from-definition correctly
weighted df with peerstats: relative 2e-3 (the central-difference Hessian).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.models.emmeans import emmeans_matrix

REF = Path(__file__).parents[1] / "reference" / "sas_fev"
SAS = json.loads((REF / "sas_fev.json").read_text())["sas_weighted"]
ANTE = json.loads((REF / "sas_weighted_ante1.json").read_text())["runs"]
T = 4


@cache
def fev() -> pd.DataFrame:
    return pd.read_csv(REF / "fev_data.csv")


class Weighted:
    """REML quantities of y_i ~ N(X_i beta, W_i^-1/2 Sigma(psi)[v_i, v_i] W_i^-1/2), with the
    subjects batched by their pattern of visits."""

    def __init__(self, fit, sigma_of_psi, method="reml"):
        d = fit._design
        used = d.data
        X, y = d.X, d.y
        w = used["WEIGHT"].to_numpy(float)
        visits = list(fit.visits)
        vis = np.array([visits.index(str(v)) for v in used["AVISIT"]])
        subj = pd.factorize(used["USUBJID"])[0]
        by_pattern: dict = {}
        for s in range(subj.max() + 1):
            rows = np.flatnonzero(subj == s)
            rows = rows[np.argsort(vis[rows])]
            by_pattern.setdefault(tuple(vis[rows]), []).append(rows)
        self.blocks = []
        for pat, rows in by_pattern.items():
            r = np.array(rows)  # (U, m)
            self.blocks.append((np.array(pat), X[r], y[r], np.sqrt(w[r])))
        self.p = X.shape[1]
        self.sigma = sigma_of_psi
        self.reml = method == "reml"

    def _batches(self, psi):
        S = self.sigma(psi)
        for v, Xb, yb, s in self.blocks:
            V = S[np.ix_(v, v)][None] / (s[:, :, None] * s[:, None, :])
            yield v, Xb, yb, s, V, np.linalg.inv(V)

    def m2ll(self, psi):
        p = self.p
        M, Xy, yVy, ld = np.zeros((p, p)), np.zeros(p), 0.0, 0.0
        for _, Xb, yb, _, V, Vi in self._batches(psi):
            XV = np.swapaxes(Xb, 1, 2) @ Vi
            M += (XV @ Xb).sum(axis=0)
            Xy += np.einsum("upm,um->p", XV, yb)
            yVy += np.einsum("um,umn,un->", yb, Vi, yb)
            ld += np.linalg.slogdet(V)[1].sum()
        b = np.linalg.solve(M, Xy)
        return ld + (np.linalg.slogdet(M)[1] if self.reml else 0.0) + yVy - b @ Xy

    def hessian(self, psi, h=1e-4):
        K = len(psi)
        H = np.zeros((K, K))
        step = h * np.maximum(np.abs(psi), 1.0)
        for a in range(K):
            for b in range(a, K):
                ea, eb = np.zeros(K), np.zeros(K)
                ea[a], eb[b] = step[a], step[b]
                f = self.m2ll
                H[a, b] = H[b, a] = (
                    f(psi + ea + eb) - f(psi + ea - eb) - f(psi - ea + eb) + f(psi - ea - eb)
                ) / (4 * step[a] * step[b])
        return H

    def df_function(self, psi, *, weighted_derivative: bool):
        """l -> Satterthwaite df at psi, with dV/dpsi_k = W^-1/2 dR_k W^-1/2 (weighted) or
        dR_k (SAS's UN listing)."""
        K, p = len(psi), self.p
        dS = []
        for k in range(K):  # complex step: exact derivatives of Sigma(psi)
            z = psi.astype(complex)
            z[k] += 1e-30j
            dS.append(self.sigma(z).imag / 1e-30)
        M = np.zeros((p, p))
        P = np.zeros((K, p, p))
        for v, Xb, _, s, _, Vi in self._batches(psi):
            XV = np.swapaxes(Xb, 1, 2) @ Vi  # (U, p, m)
            M += (XV @ Xb).sum(axis=0)
            for k in range(K):
                dV = dS[k][np.ix_(v, v)][None]
                if weighted_derivative:
                    dV = dV / (s[:, :, None] * s[:, None, :])
                P[k] += (XV @ dV @ np.swapaxes(XV, 1, 2)).sum(axis=0)
        C = np.linalg.inv(M)
        A = 2 * np.linalg.inv(self.hessian(psi))

        def df(ell):
            Cl = C @ ell
            gk = np.einsum("p,kpq,q->k", Cl, P, Cl)
            return 2 * (ell @ C @ ell) ** 2 / (gk @ A @ gk)

        return df


UN_INDEX = [(i, j) for i in range(T) for j in range(i + 1)]


def sigma_un(psi):
    S = np.zeros((T, T), dtype=np.result_type(psi.dtype, float))
    for k, (i, j) in enumerate(UN_INDEX):
        S[i, j] = S[j, i] = psi[k]
    return S


@cache
def un_fit():
    ref = {"RACE": "Asian", "AVISIT": "VIS4", "SEX": "Male", "ARMCD": "PBO"}
    return peerstats.mmrm(
        "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
        fev(),
        subject="USUBJID",
        visit="AVISIT",
        covariance="us",
        weights="WEIGHT",
        reference=ref,
    )


@cache
def sas_rows():
    """(printed df, contrast vector) for the solution, LSMEANS and their differences."""
    fit = un_fit()
    names = list(fit.params.index)
    out = []
    for rec in SAS["solution"]:
        if rec["df"] is None:
            continue
        lev = rec["levels"]
        if rec["effect"] == "Intercept":
            col = "Intercept"
        elif rec["effect"] == "AVISIT*ARMCD":
            col = f"ARMCD[T.{lev['ARMCD']}]:AVISIT[T.{lev['AVISIT']}]"
        else:
            (var, val), *_ = lev.items()
            col = f"{var}[T.{val}]"
        ell = np.zeros(len(names))
        ell[names.index(col)] = 1.0
        out.append((rec["df"], ell))
    frame, L = emmeans_matrix(fit._design, ["AVISIT", "ARMCD"])
    key = {(str(a), str(b)): L[i] for i, (a, b) in enumerate(zip(frame.AVISIT, frame.ARMCD))}
    for rec in SAS["lsmeans"]:
        out.append((rec["df"], key[(rec["AVISIT"], rec["ARMCD"])]))
    for rec in SAS["diffs"]:
        ell = key[(rec["AVISIT"], rec["ARMCD"])] - key[(rec["_AVISIT"], rec["_ARMCD"])]
        out.append((rec["df"], ell))
    return out


@cache
def sas_psi():
    S = np.zeros((T, T))
    for c in SAS["cov_parms"]:
        i, j = map(int, c["parm"][3:-1].split(","))
        S[i - 1, j - 1] = S[j - 1, i - 1] = c["estimate"]
    return np.array([S[i, j] for i, j in UN_INDEX])


@cache
def sas_formula_df():
    model = Weighted(un_fit(), sigma_un)
    df = model.df_function(sas_psi(), weighted_derivative=False)
    return [(printed, df(ell)) for printed, ell in sas_rows()]


def test_every_printed_df_is_the_unweighted_derivative_formula_truncated_at_residual_df():
    fit = un_fit()
    residual_df = fit.n_obs - fit.n_fixed
    assert residual_df == 526
    rows = sas_formula_df()
    assert len(rows) == 47  # 11 coefficients, 8 LSMEANS, 28 differences
    for printed, computed in rows:
        assert abs(min(computed, residual_df) - printed) <= 1.0, (printed, computed)


def test_the_526_rows_are_the_truncated_ones():
    rows = sas_formula_df()
    capped = [c for p, c in rows if p == 526]
    others = [c for p, c in rows if p != 526]
    assert len(capped) == 9
    assert min(capped) > 540 and max(others) < 526


def test_correctly_weighted_derivative_gives_peerstats_df():
    """The same code with dV = W^-1/2 dR W^-1/2, at our estimate: peerstats' df (130-190)."""
    fit = un_fit()
    psi = np.array([fit.covariance.to_numpy()[i, j] for i, j in UN_INDEX])
    df = Weighted(fit, sigma_un).df_function(psi, weighted_derivative=True)
    ours = fit.coef["df"].to_numpy()
    rows = sas_rows()[: len(ours)]
    mine = np.array([df(ell) for _, ell in rows])
    assert np.max(np.abs(mine - ours) / ours) <= 2e-3
    assert ours.max() < 200 and min(p for p, _ in rows) > 350


def sigma_ante(psi):
    sd = np.sqrt(psi[:T])
    rho = psi[T:]
    S = np.zeros((T, T), dtype=np.result_type(psi.dtype, float))
    for i in range(T):
        for j in range(T):
            a, b = min(i, j), max(i, j)
            S[i, j] = sd[i] * sd[j] * np.prod(rho[a:b])
    return S


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_sas_weighted_ante1_uses_the_weighted_derivative(method):
    """SAS's weighted ANTE(1) runs print the correctly weighted df (as peerstats)."""
    ref = ANTE[method]
    data = fev().copy()
    data["AVISIT"] = pd.Categorical(data["AVISIT"], categories=["VIS1", "VIS2", "VIS3", "VIS4"])
    fit = peerstats.mmrm(
        "FEV1 ~ 1",
        data,
        subject="USUBJID",
        visit="AVISIT",
        covariance="adh",
        weights="WEIGHT",
        method=method,
    )
    psi = np.array([c["estimate"] for c in ref["cov_parms"]])
    model = Weighted(fit, sigma_ante, method)
    printed = ref["solution"][0]["df"]
    ell = np.ones(1)
    right = model.df_function(psi, weighted_derivative=True)(ell)
    wrong = model.df_function(psi, weighted_derivative=False)(ell)
    assert abs(right - printed) <= 1.0
    assert wrong - printed > 250
