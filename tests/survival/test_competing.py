"""cumulative_incidence and fine_gray against R cmprsk 2.2.11 (cuminc + timepoints, crr).
Source: tests/reference/r_survival/reference.json (synthetic trial, make_reference.R)."""

from __future__ import annotations

import numpy as np
import pytest

import peerstats


@pytest.fixture(scope="module")
def cif(trial):
    return peerstats.cumulative_incidence(trial, time="time", event="status", arm="arm",
                                          times=[3, 6, 12, 18])


def test_cif_and_variance(cif, ref):
    r = ref["cuminc"]
    tab = cif.table
    assert list(tab.columns) == ["cause", "arm", "time", "cif", "variance", "ci_lower",
                                 "ci_upper"]
    for k, row in enumerate(r["rows"]):
        arm, cause = row.split()
        sub = tab[(tab.arm == arm) & (tab.cause == int(cause))]
        np.testing.assert_allclose(sub.cif, r["est"][k], rtol=1e-10)
        np.testing.assert_allclose(sub.variance, r["var"][k], rtol=1e-10)


def test_cif_ci_is_log_minus_log(cif):
    """Our convention (cmprsk gives none): F^exp(+-z se / (F log F)), checked by hand."""
    row = cif.table.iloc[2]
    f, se = row.cif, np.sqrt(row.variance)
    k = 1.959963984540054 * se / (f * np.log(f))
    assert row.ci_lower == pytest.approx(f ** np.exp(-k), rel=1e-9)
    assert row.ci_upper == pytest.approx(f ** np.exp(k), rel=1e-9)
    assert 0 < row.ci_lower < f < row.ci_upper < 1


def test_gray_test(cif, ref):
    r = ref["cuminc"]
    np.testing.assert_allclose(cif.gray_test.statistic, r["gray_stat"], rtol=1e-10)
    np.testing.assert_allclose(cif.gray_test.p_value, r["gray_p"], rtol=1e-8)
    assert list(cif.gray_test.index) == [1, 2]


@pytest.mark.parametrize("cause", [1, 2])
def test_fine_gray_matches_crr(trial, ref, cause):
    """crr stops when the gradient is below gtol = 1e-6 (relative); we run to the optimum, so
    coefficients agree to 5e-5 relative (our log pseudo-likelihood is >= crr's), SEs 1e-5."""
    fit = peerstats.fine_gray("arm + age", trial, time="time", event="status", cause=cause)
    r = ref[f"crr_cause{cause}"]
    np.testing.assert_allclose(fit.coef.estimate, r["estimate"], rtol=5e-5)
    np.testing.assert_allclose(fit.coef.std_error, r["std_error"], rtol=1e-5)
    assert fit.loglik >= r["loglik"] - 1e-9
    (rec,) = fit.effect_records(outcome="readmission")
    assert rec.scale == "subdistribution_hazard_ratio"


def test_cif_plot(cif):
    import matplotlib

    matplotlib.use("Agg")
    ax = cif.plot(cause=2)
    assert "cause 2" in ax.get_ylabel()
    assert "Number at risk" in [t.get_text() for t in ax.texts]


def test_four_groups_three_causes(trial, ref):
    """R: cuminc(time, status3, site) with cause 2 split in two by age: 4 groups, 3 causes."""
    r = ref["cuminc_sites"]
    data = trial.assign(st=trial.status.where(~((trial.status == 2) & (trial.age > 45)), 3))
    cif = peerstats.cumulative_incidence(data, time="time", event="st", arm="site", times=[5, 10])
    np.testing.assert_allclose(cif.gray_test.statistic, r["gray_stat"], rtol=1e-10)
    np.testing.assert_allclose(cif.gray_test.df, r["gray_df"])
    tab = cif.table
    for k, row in enumerate(r["rows"]):
        site, cause = row.split()
        sub = tab[(tab.arm == site) & (tab.cause == int(cause))]
        np.testing.assert_allclose(sub.cif, r["est"][k], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(sub.variance, r["var"][k], rtol=1e-9, atol=1e-14)
