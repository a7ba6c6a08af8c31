"""peerstats.lmm against R (lme4 + lmerTest + pbkrtest, nlme::lme) and hand calculations.

Source of the R numbers: tests/reference/r_lmm_extra/r_lmm_extra.json, written by
tests/reference/r_lmm_extra/make_r_lmm_extra.R from the CSV files beside it (README.md there).
No expected value comes from peerstats.

Tolerances (the issue's; measured agreement is far tighter, ~1e-6 relative or better):
- estimates, standard errors, variance components, contrasts, F statistics: 1e-4 relative;
- log-likelihood: 1e-4 relative and 1e-3 absolute on -2 loglik;
- degrees of freedom (Satterthwaite, Kenward-Roger): 1e-2 relative;
- BLUPs: 1e-4 relative to the SD of the random effect (absolute).
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import SingularFitWarning

REF = Path(__file__).parents[1] / "reference" / "r_lmm_extra"
R = json.loads((REF / "r_lmm_extra.json").read_text())
RTOL = 1e-4
DF_RTOL = 1e-2
F = "y ~ baseline + arm * visit"

# JSON key -> (formula, lmm keyword arguments, data file)
MODELS = {
    "ri_subject": (F + " + (1 | id)", {}, "lmm_data.csv"),
    "ri_subject_ml": (F + " + (1 | id)", {"method": "ml"}, "lmm_data.csv"),
    "subject_site": (F + " + (1 | site) + (1 | id)", {}, "lmm_data.csv"),
    "pn_hom": (F + " + (1 | id) + (0 + peer | group)", {}, "lmm_data.csv"),
    "pn_het": (F + " + (1 | id) + (0 + peer | group)", {"residual_by": "arm"}, "lmm_data.csv"),
    "slope": ("y ~ baseline + arm * time + (1 + time | id)", {}, "lmm_data.csv"),
    "singular": ("y ~ x + arm + visit + (1 | site) + (1 | id)", {}, "singular_data.csv"),
    "singular_slope": (
        "y ~ x + arm * time + (1 + time | id)",
        {},
        "singular_slope_data.csv",
    ),
    "site_us": (
        F + " + (1 | site)",
        {"residual": "us", "subject": "id", "visit": "visit"},
        "lmm_data.csv",
    ),
    "id_ar1": (
        F + " + (1 | id)",
        {"residual": "ar1", "subject": "id", "visit": "visit"},
        "lmm_data.csv",
    ),
}
LMER = [
    "ri_subject",
    "ri_subject_ml",
    "subject_site",
    "pn_hom",
    "slope",
    "singular",
    "singular_slope",
]
KR = ["ri_subject", "subject_site", "pn_hom", "slope"]
CONTRASTS = ["ri_subject", "ri_subject_ml", "subject_site", "pn_hom"]


@cache
def data(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / name)


@cache
def fit(key: str, df: str = "satterthwaite"):
    formula, kw, file = MODELS[key]
    if df == "kenward-roger":  # pbkrtest's convention (lmerTest ddf = "Kenward-Roger")
        kw = {**kw, "kr_information": "expected"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return peerstats.lmm(formula, data(file), df=df, **kw)


def r_term(term: str) -> str:
    """R coefficient name -> formulaic's (``armpeer:visitv2`` -> ``arm[T.peer]:visit[T.v2]``)."""
    out = []
    for part in term.split(":"):
        if part == "(Intercept)":
            out.append("Intercept")
        elif part.startswith("arm") and part != "arm":
            out.append(f"arm[T.{part[3:]}]")
        elif part.startswith("visit"):
            out.append(f"visit[T.{part[5:]}]")
        else:
            out.append(part)
    return ":".join(out)


def assert_rel(actual, expected, rtol, what):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0, err_msg=what)


def r_coef(table: dict) -> pd.DataFrame:
    return pd.DataFrame(table).assign(term=lambda d: d["term"].map(r_term)).set_index("term")


# ---- lme4 / lmerTest fits ---------------------------------------------------------------------
@pytest.mark.parametrize("key", LMER)
def test_loglik(key):
    assert abs(-2 * fit(key).loglik - (-2 * R[key]["loglik"])) < 1e-3
    assert_rel(fit(key).loglik, R[key]["loglik"], RTOL, "loglik")


@pytest.mark.parametrize("key", LMER)
def test_coef_satterthwaite(key):
    ref = r_coef(R[key]["coef_satterthwaite"])
    got = fit(key).coef.loc[ref.index]
    assert_rel(got["estimate"], ref["estimate"], RTOL, "estimate")
    assert_rel(got["std_error"], ref["std_error"], RTOL, "std_error")
    assert_rel(got["df"], ref["df"], DF_RTOL, "df")
    assert_rel(got["p_value"], ref["p_value"], 1e-3, "p_value")


@pytest.mark.parametrize("key", KR)
def test_coef_kenward_roger(key):
    ref = r_coef(R[key]["coef_kenward_roger"])
    got = fit(key, "kenward-roger").coef.loc[ref.index]
    assert_rel(got["estimate"], ref["estimate"], RTOL, "estimate")
    assert_rel(got["std_error"], ref["std_error"], RTOL, "KR-adjusted std_error")
    assert_rel(got["df"], ref["df"], DF_RTOL, "KR df")


@pytest.mark.parametrize("key", LMER)
def test_variance_components(key):
    ref = pd.DataFrame(R[key]["varcomp"])
    vc = fit(key).variance_components
    grp = {"grp_all": "group"}
    for r in ref.itertuples():
        g = grp.get(r.grp, r.grp)
        if g == "Residual":
            row = vc[vc.group == "Residual"]
        elif r.var2:
            row = vc[(vc.group == g) & (vc.term == r.var1) & (vc.term2 == r.var2)]
        else:
            row = vc[(vc.group == g) & (vc.term == r.var1) & vc.term2.isna()]
        assert len(row) == 1, (g, r.var1, r.var2)
        if r.vcov == 0:
            assert row["variance"].iloc[0] == 0.0
        else:
            assert_rel(row["variance"], [r.vcov], RTOL, f"{g} {r.var1} {r.var2}")
            assert_rel(row["sd"], [r.sdcor], RTOL, f"{g} {r.var1} {r.var2} sd/cor")


@pytest.mark.parametrize("key", CONTRASTS)
def test_contrasts_per_visit(key):
    got = fit(key).contrasts("arm", by="visit")
    ref = pd.DataFrame(R[key]["contrasts_satterthwaite"])
    assert list(got["visit"].astype(str)) == list(ref["visit"])
    for col in ("estimate", "std_error", "ci_lower", "ci_upper"):
        assert_rel(got[col], ref[col], RTOL, col)
    assert_rel(got["df"], ref["df"], DF_RTOL, "df")


@pytest.mark.parametrize("key", ["ri_subject", "subject_site", "pn_hom"])
def test_contrasts_kenward_roger(key):
    got = fit(key, "kenward-roger").contrasts("arm", by="visit")
    ref = pd.DataFrame(R[key]["contrasts_kenward_roger"])
    assert_rel(got["std_error"], ref["std_error"], RTOL, "std_error")
    assert_rel(got["df"], ref["df"], DF_RTOL, "df")


@pytest.mark.parametrize("key", ["ri_subject", "subject_site", "pn_hom", "slope"])
def test_anova_type3(key):
    ref = pd.DataFrame(R[key]["anova_satterthwaite"]).set_index("term")
    got = fit(key).anova().loc[ref.index]
    assert_rel(got["num_df"], ref["num_df"], 0, "num_df")
    assert_rel(got["statistic"], ref["F"], RTOL, "F")
    assert_rel(got["den_df"], ref["den_df"], DF_RTOL, "den_df")


@pytest.mark.parametrize("key", ["ri_subject", "subject_site", "pn_hom", "slope"])
def test_random_effects(key):
    ref = pd.DataFrame(R[key]["ranef"]).rename(columns={"grpvar": "group", "grp": "level"})
    ref["group"] = ref["group"].replace({"grp_all": "group"})
    got = fit(key).random_effects
    m = ref.merge(got, on=["group", "level", "term"], how="inner")
    # every R level of a term that is not identically zero is present (controls in pn_hom are
    # R-only singleton levels with effect 0)
    assert len(m) == int((ref["condval"] != 0).sum()) or len(m) == len(ref)
    scale = m.groupby(["group", "term"])["condval"].transform("std")
    np.testing.assert_allclose(m["estimate"], m["condval"], rtol=0, atol=1e-4 * scale.max())


def test_singular_fit_reported():
    formula, kw, file = MODELS["singular"]
    with pytest.warns(SingularFitWarning, match=r"\(1 \| site\)"):
        res = peerstats.lmm(formula, data(file), **kw)
    assert R["singular"]["singular"] is True
    assert res.singular
    assert res.singular_components == ("(1 | site)",)
    vc = res.variance_components
    assert vc.loc[vc.group == "site", "variance"].iloc[0] == 0.0
    assert "singular" in res.summary()


def test_singular_random_slope_reported():
    # lme4: correlation of intercept and slope estimated at +1 (relative Cholesky theta_3 = 0)
    formula, kw, file = MODELS["singular_slope"]
    with pytest.warns(SingularFitWarning, match=r"covariance matrix of \(1 \+ time \| id\)"):
        res = peerstats.lmm(formula, data(file), **kw)
    assert R["singular_slope"]["singular"] is True
    assert res.singular
    vc = res.variance_components
    assert vc.loc[vc.term2 == "time", "sd"].iloc[0] == pytest.approx(1.0, abs=1e-12)


# ---- nlme fits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pn_het", "site_us", "id_ar1"])
def test_nlme_estimates(key):
    ref = pd.DataFrame(R[key]["coef"])
    ref["term"] = ref["term"].map(r_term)
    ref = ref.set_index("term")
    got = fit(key).coef.loc[ref.index]
    assert_rel(fit(key).loglik, R[key]["loglik"], RTOL, "loglik")
    assert abs(fit(key).loglik - R[key]["loglik"]) < 5e-4
    assert_rel(got["estimate"], ref["estimate"], RTOL, "estimate")
    assert_rel(got["std_error"], ref["std_error"], RTOL, "std_error")
    if "df_satterthwaite" in ref:
        assert_rel(got["df"], ref["df_satterthwaite"], DF_RTOL, "Satterthwaite df")


def test_pn_het_variance_components_and_icc():
    res = fit("pn_het")
    ref = R["pn_het"]["varcomp"]
    vc = res.variance_components.set_index(["group", "term"])["variance"]
    assert_rel(vc[("group", "peer")], ref["group_var"], RTOL, "group")
    assert_rel(vc[("id", "(Intercept)")], ref["id_var"], RTOL, "id")
    assert_rel(vc[("Residual", "arm=control")], ref["resid_var_control"], RTOL, "res control")
    assert_rel(vc[("Residual", "arm=peer")], ref["resid_var_peer"], RTOL, "res peer")
    # ICC among peer-arm participants of one group, from the R variance components
    icc = ref["group_var"] / (ref["group_var"] + ref["id_var"] + ref["resid_var_peer"])
    assert_rel(res.icc["group"], icc, RTOL, "icc")


def test_pn_het_contrasts():
    got = fit("pn_het").contrasts("arm", by="visit")
    ref = pd.DataFrame(R["pn_het"]["contrasts_satterthwaite"])
    assert_rel(got["estimate"], ref["estimate"], RTOL, "estimate")
    assert_rel(got["std_error"], ref["std_error"], RTOL, "std_error")
    assert_rel(got["df"], ref["df"], DF_RTOL, "df")


def test_pn_het_single_visit():
    d = data("lmm_data.csv")
    d1 = d[d.visit == "v3"]
    res = peerstats.lmm("y ~ baseline + arm + (0 + peer | group)", d1, residual_by="arm")
    ref = R["pn_het_single"]
    assert_rel(res.loglik, ref["loglik"], RTOL, "loglik")
    c = pd.DataFrame(ref["coef"])
    assert_rel(res.coef["estimate"], c["estimate"], RTOL, "estimate")
    assert_rel(res.coef["std_error"], c["std_error"], RTOL, "std_error")
    assert_rel(res.coef["df"], c["df_satterthwaite"], DF_RTOL, "df")
    vc = res.variance_components.set_index(["group", "term"])["variance"]
    assert_rel(vc[("group", "peer")], ref["varcomp"]["group_var"], RTOL, "group var")
    assert_rel(vc[("Residual", "arm=peer")], ref["varcomp"]["resid_var_peer"], RTOL, "peer")


def test_residual_structures():
    us = fit("site_us")
    assert_rel(us.covariance.to_numpy().ravel(), R["site_us"]["resid_cov"], 1e-3, "us cov")
    vc = us.variance_components
    assert_rel(vc.loc[vc.group == "site", "variance"], [R["site_us"]["site_var"]], 1e-3, "site")
    ar = fit("id_ar1")
    pars = ar.cov_parameters.set_index("parameter")["estimate"]
    assert_rel(pars["Variance"], R["id_ar1"]["sigma2"], 1e-3, "sigma2")
    assert_rel(pars["AR(1)"], R["id_ar1"]["phi"], 1e-3, "phi")
    assert_rel(ar.variance_components["variance"].iloc[0], R["id_ar1"]["id_var"], 1e-3, "id")


# ---- hand calculations --------------------------------------------------------------------
def balanced_one_way():
    """a = 6 groups of n = 4; y values chosen by hand."""
    y = np.array(
        [
            [10, 12, 11, 13],
            [15, 14, 16, 17],
            [9, 8, 10, 9],
            [12, 13, 15, 12],
            [18, 16, 17, 19],
            [11, 10, 12, 13],
        ],
        dtype=float,
    )
    a, n = y.shape
    df = pd.DataFrame({"y": y.ravel(), "g": np.repeat([f"g{i}" for i in range(a)], n)})
    return y, a, n, df


def test_balanced_one_way_anova_by_hand():
    # REML for the balanced one-way random-effects model has the ANOVA solution:
    # sigma_e^2 = MSW, sigma_a^2 = (MSB - MSW) / n, SE(mu) = sqrt(MSB / (a n)), df = a - 1
    y, a, n, df = balanced_one_way()
    grand = y.mean()
    msb = n * ((y.mean(axis=1) - grand) ** 2).sum() / (a - 1)
    msw = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum() / (a * (n - 1))
    res = peerstats.lmm("y ~ 1 + (1 | g)", df)
    vc = res.variance_components.set_index("group")["variance"]
    assert_rel(vc["Residual"], msw, 1e-7, "sigma_e^2")
    assert_rel(vc["g"], (msb - msw) / n, 1e-7, "sigma_a^2")
    c = res.coef.loc["Intercept"]
    assert_rel(c["estimate"], grand, 1e-10, "mu")
    assert_rel(c["std_error"], np.sqrt(msb / (a * n)), 1e-7, "se")
    assert_rel(c["df"], a - 1, 1e-5, "df")
    s2a = (msb - msw) / n
    assert_rel(res.icc["g"], s2a / (s2a + msw), 1e-7, "icc")
    # BLUP: shrunken group mean deviation n s2a / (n s2a + s2e) (ybar_i - mu)
    k = n * s2a / (n * s2a + msw)
    blup = res.random_effects.set_index("level")["estimate"]
    np.testing.assert_allclose(blup.to_numpy(), k * (y.mean(axis=1) - grand), rtol=1e-6, atol=1e-10)
    assert res.n_groups["g"] == a


def test_pooling_random_intercept():
    # 300 subjects with 1, 2 or 3 observations: three block types, whatever the number of subjects
    rng = np.random.default_rng(1)
    rows = []
    for i in range(300):
        for v in range(1 + i % 3):
            rows.append(
                {"id": f"s{i}", "visit": f"v{v}", "x": rng.normal(), "y": rng.normal() + (i % 7)}
            )
    d = pd.DataFrame(rows)
    res = peerstats.lmm("y ~ x + (1 | id)", d)
    assert res.fit_info["n_block_types"] == 3
    assert res.fit_info["n_blocks"] == 300
    assert res.n_obs == len(d)


def test_partially_nested_na_groups_equal_singletons():
    # controls with group NaN (peerstats convention) or a group of their own (R's coding)
    d = data("lmm_data.csv")
    d2 = d.copy()
    d2["group"] = d2["group"].where(d2["group"].notna(), "c_" + d2["id"])
    a = peerstats.lmm(F + " + (0 + peer | group)", d, residual_by="arm")
    b = peerstats.lmm(F + " + (0 + peer | group)", d2, residual_by="arm")
    np.testing.assert_allclose(a.coef.to_numpy(), b.coef.to_numpy(), rtol=1e-6)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)


def test_result_interface():
    res = fit("pn_hom")
    assert isinstance(res.summary(), str) and "Variance components" in res.summary()
    assert "<table>" in res._repr_html_()
    assert repr(res) == res.summary()
    assert list(res.to_frame().columns)[:2] == ["term", "estimate"]
    em = res.emmeans(["arm", "visit"])
    assert len(em) == 6
    assert res.covariance is None
    assert not res.singular
    assert np.isfinite(res.aic) and np.isfinite(res.bic)
    # lme4 convention: AIC = -2 loglik + 2 (p + number of covariance parameters)
    assert res.aic == pytest.approx(-2 * res.loglik + 2 * (7 + 3))
