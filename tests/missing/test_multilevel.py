"""peerstats.impute_multilevel (partially nested MI under MAR) against R jomo.

Source of the numbers: tests/reference/r_jomo/jomo_reference.R (jomo 2.7.4, jomo1rancon with a
random-effect design that is 1 in the peer arm and 0 in usual care; 400 imputations, nburn
2000, nbetween 100; a 20000-iteration MCMCchain for posterior means) on the SYNTHETIC
partially nested trial tests/reference/r_jomo/pn_trial.csv (make_data.py). Both samplers
target the same posterior (jomo's priors); they share no random numbers, so they agree only up
to Monte-Carlo error.

Tolerance: |ours - jomo| <= 4 * MCSE, MCSE = sqrt(MCSE_ours^2 + MCSE_jomo^2), where the MCSE
of a mean over imputations is SD / sqrt(M) (both chains are thinned; the lag-1
autocorrelation of the per-imputation estimates is checked below 0.2) and the MCSE of a
posterior mean is by batch means (20 batches here, 50 in R). Quantities: the pooled
(Rubin) ANCOVA effect at each visit, the mean imputed value per arm and visit, and the
posterior means of the group-effect covariance (Omega) and the residual covariance (Sigma).
With the seed below the largest |z| is 2.1 (residual covariance post/fu3), the pooled
effects have |z| 1.5 and 1.1 (MCSE 0.031 and 0.042 points). Two separate long runs
(18000 iterations, thin 1, seeds 5 and 6) gave |z| <= 2.6 and <= 1.0 for the posterior means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).resolve().parents[1] / "reference" / "r_jomo"
Z_MAX = 4.0
M = 400


@pytest.fixture(scope="module")
def reference():
    return json.loads((REF / "jomo_reference.json").read_text())


@pytest.fixture(scope="module")
def long():
    d = pd.read_csv(REF / "pn_trial.csv")
    out = d.melt(
        id_vars=["id", "arm", "group", "baseline"],
        value_vars=["post", "fu3"],
        var_name="visit",
        value_name="y",
    )
    out["visit"] = pd.Categorical(out["visit"], categories=["post", "fu3"])
    out["arm"] = pd.Categorical(out["arm"], categories=["usual", "peer"])
    return out


@pytest.fixture(scope="module")
def imputed(long):
    return peerstats.impute_multilevel(
        "y ~ arm + baseline",
        long,
        subject="id",
        visit="visit",
        arm="arm",
        group="group",
        n_imputations=M,
        residual_by=None,
        burn=500,
        thin=5,
        seed=2,
    )


def _batch_se(x, nb=20):
    b = np.asarray(x)[: nb * (len(x) // nb)].reshape(nb, -1).mean(axis=1)
    return b.std(ddof=1) / np.sqrt(nb)


def _ancova(imp):
    """Per-imputation ANCOVA effect (y_v ~ peer + baseline) at each visit, by numpy lstsq."""
    Y = imp.completed()
    T = len(imp.visits)
    X = np.c_[
        np.ones(len(imp.subjects)),
        (imp.arm_of == 1).astype(float),
        imp.frame["baseline"].to_numpy()[::T],
    ]
    return {
        str(v): np.array([np.linalg.lstsq(X, Y[s, :, j], rcond=None)[0][1] for s in range(len(Y))])
        for j, v in enumerate(imp.visits)
    }


def test_pooled_effect_matches_jomo(imputed, reference):
    ours = _ancova(imputed)
    pooled = imputed.analyse(covariates=["baseline"]).set_index("visit")
    for v in ("post", "fu3"):
        e_ref = np.array(reference["estimates"][v])
        e = ours[v]
        assert abs(np.corrcoef(e[:-1], e[1:])[0, 1]) < 0.2
        np.testing.assert_allclose(pooled.loc[v, "estimate"], e.mean(), rtol=1e-10)
        mcse = np.sqrt(e.var(ddof=1) / len(e) + e_ref.var(ddof=1) / len(e_ref))
        assert abs(e.mean() - e_ref.mean()) <= Z_MAX * mcse, (v, e.mean(), e_ref.mean(), mcse)
        # the between-imputation spread agrees too (relative SE of an SD over 400 sets ~3.5%)
        assert e.std(ddof=1) == pytest.approx(e_ref.std(ddof=1), rel=Z_MAX * 0.05)


def test_imputed_means_match_jomo(imputed, reference):
    Y = imputed.completed()
    arm_txt = np.array(imputed.arm_levels)[imputed.arm_of]
    for j, v in enumerate(imputed.visits):
        for a in ("usual", "peer"):
            sel = imputed.missing[:, j] & (arm_txt == a)
            ours = Y[:, sel, j].mean(axis=1)
            ref = np.array(reference["imputed_means"][f"{a}|{v}"])
            mcse = np.sqrt(ours.var(ddof=1) / len(ours) + ref.var(ddof=1) / len(ref))
            assert abs(ours.mean() - ref.mean()) <= Z_MAX * mcse, (a, v, ours.mean(), ref.mean())


@pytest.mark.parametrize("which,key", [("Omega", "covu"), ("Sigma", "omega")])
def test_posterior_covariances_match_jomo(imputed, reference, which, key):
    draws = imputed.draws[which]
    if which == "Sigma":
        draws = draws[:, 0]
    for name, (i, j) in (("post", (0, 0)), ("fu3", (1, 1)), ("cov", (0, 1))):
        x = draws[:, i, j]
        ref = reference[key][name]
        mcse = np.sqrt(_batch_se(x) ** 2 + ref["mcse"] ** 2)
        assert abs(x.mean() - ref["mean"]) <= Z_MAX * mcse, (which, name, x.mean(), ref["mean"])


def test_counts_and_delta(imputed, long):
    """Imputations report what was imputed; a delta shifts the imputed values only."""
    n_miss = long.assign(m=long["y"].isna()).groupby(["arm", "visit"], observed=True)["m"].sum()
    counts = imputed.n_imputed.set_index(["arm", "visit"])["n_imputed"]
    for (a, v), k in n_miss.items():
        assert counts.loc[(a, v)] == k
    shifted = imputed.with_delta({"peer": -5.0})
    diff = shifted.completed() - imputed.completed()
    peer = np.array(imputed.arm_levels)[imputed.arm_of] == "peer"
    assert np.allclose(diff[:, peer & imputed.missing[:, 0], 0], -5.0)
    assert np.allclose(diff[:, ~imputed.missing], 0.0)
    assert imputed.info["n_groups"] == 15


def test_arm_specific_residuals_and_seed(long):
    kw = dict(
        subject="id",
        visit="visit",
        arm="arm",
        group="group",
        n_imputations=3,
        burn=20,
        thin=2,
        seed=7,
    )
    a = peerstats.impute_multilevel("y ~ arm + baseline", long, **kw)
    b = peerstats.impute_multilevel("y ~ arm + baseline", long, **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.draws["Sigma"].shape == (3, 2, 2, 2)  # one residual covariance per arm


def test_bad_input(long):
    kw = dict(subject="id", visit="visit", arm="arm", group="group")
    with pytest.raises(ModelSpecificationError, match="n_imputations=1 is too few"):
        peerstats.impute_multilevel("y ~ arm + baseline", long, n_imputations=1, **kw)
    with pytest.raises(ModelSpecificationError, match="names the visit 'visit'"):
        peerstats.impute_multilevel("y ~ arm * visit + baseline", long, **kw)
    with pytest.raises(ModelSpecificationError, match="group='cluster' is not a column"):
        peerstats.impute_multilevel("y ~ arm + baseline", long, **{**kw, "group": "cluster"})
    with pytest.raises(
        ModelSpecificationError, match=r"delivered arm\(s\) \['course'\] are not arms"
    ):
        peerstats.impute_multilevel("y ~ arm + baseline", long, delivered=["course"], **kw)
    with pytest.raises(ModelSpecificationError, match="residual_by='site' is not valid"):
        peerstats.impute_multilevel("y ~ arm + baseline", long, residual_by="site", **kw)
    with pytest.raises(ModelSpecificationError, match="must appear in the imputation formula"):
        peerstats.impute_multilevel("y ~ baseline", long, **kw)
    gone = long.assign(group=None)
    with pytest.raises(ModelSpecificationError, match="no arm is group-delivered"):
        peerstats.impute_multilevel("y ~ arm + baseline", gone, **kw)


@pytest.mark.parametrize(
    "values", [["g1", None, "g2", "g2", None, None], [3.0, np.nan, 7.0, 8.0, np.nan, np.nan]]
)
def test_first_group_as_pandas_first_non_missing(values):
    """The vectorised first delivery group of each participant (issue 22, speed) is pandas'
    first non-missing value per participant in row order; None without one."""
    from peerstats.missing.multilevel import _first_group

    col = pd.Series(values)
    si = np.array([1, 0, 1, 0, 2, 2])
    got = _first_group(col, si, 4)
    want = col.groupby(si).agg(lambda s: s.dropna().iloc[0] if s.notna().any() else None)
    want = want.reindex(np.arange(4)).to_numpy(dtype=object)
    assert [str(x) for x in got[~pd.isna(got)]] == [str(x) for x in want[~pd.isna(want)]]
    assert (pd.isna(got) == pd.isna(want)).all()
    assert pd.isna(got[2]) and pd.isna(got[3])
