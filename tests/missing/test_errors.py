"""Bad input to impute / tipping_point: a ModelSpecificationError that names the value and what
is allowed, raised before any fitting (the model preparation is replaced by a trap); failed
refits raise instead of pooling over fewer sets."""

import numpy as np
import pandas as pd
import pytest
from tests.missing._trial import ice_frame, make_trial

import peerstats
import peerstats.missing.impute as mi
from peerstats import ConvergenceError, ModelSpecificationError

F = "y ~ arm * visit + base"


@pytest.fixture(scope="module")
def trial():
    return make_trial(n=40, seed=31, dropout=0.4)


@pytest.fixture
def no_fit(monkeypatch):
    def trap(*a, **k):
        raise AssertionError("a model was prepared before the input was checked")

    monkeypatch.setattr(mi, "_prepare", trap)


def _imp(df, **kw):
    args = dict(subject="id", visit="visit", arm="arm", method="condmean-jackknife")
    args.update(kw)
    return peerstats.impute(F, df, **args)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda ice: ice.assign(id=["nobody"] + list(ice["id"][1:])), r"subject\(s\) \['nobody'\]"),
        (lambda ice: ice.assign(visit=["w99"] + list(ice["visit"][1:])), r"'w99'.*visits are"),
        (
            lambda ice: ice.assign(strategy=["J2R"] + list(ice["strategy"][1:])),
            r"\['J2R'\].*strategies are",
        ),
        (lambda ice: ice.assign(arm=["placebo"] * len(ice)), r"\['placebo'\].*arms of 'arm'"),
        (lambda ice: pd.concat([ice, ice.iloc[:1]]), "more than one row"),
        (lambda ice: ice.drop(columns="strategy"), "missing column"),
    ],
)
def test_bad_ice(trial, no_fit, change, match):
    df, drop = trial
    ice = ice_frame(df, drop, ["JR"])
    with pytest.raises(ModelSpecificationError, match=match):
        _imp(df, ice=change(ice), reference={"peer": "usual"})


def test_bad_reference(trial, no_fit):
    df, drop = trial
    ice = ice_frame(df, drop, ["JR"])
    with pytest.raises(ModelSpecificationError, match=r"reference arm 'control'.*does not exist"):
        _imp(df, ice=ice, reference={"peer": "control"})
    with pytest.raises(ModelSpecificationError, match=r"arm 'drug'.*not a level"):
        _imp(df, ice=ice, reference={"drug": "usual"})
    with pytest.raises(ModelSpecificationError, match="reference= is not given"):
        _imp(df, ice=ice)


def test_ice_before_first_visit(no_fit):
    df, drop = make_trial(n=20, seed=32, dropout=0.4)
    df["visit"] = df["visit"].map({"w4": 4, "w8": 8, "w12": 12}).astype(int)
    ice = pd.DataFrame({"id": [df["id"].iloc[0]], "visit": [0], "strategy": ["JR"]})
    with pytest.raises(ModelSpecificationError, match="before the first visit 4"):
        _imp(df, ice=ice, reference="usual")


def test_lmcf_at_first_visit(trial, no_fit):
    df, _ = trial
    ice = pd.DataFrame({"id": [df["id"].iloc[0]], "visit": ["w4"], "strategy": ["LMCF"]})
    with pytest.raises(ModelSpecificationError, match="LMCF.*first visit"):
        _imp(df, ice=ice)


def test_observed_after_jr_ice(trial, no_fit):
    df, drop = trial
    completer = df["id"].unique()[np.flatnonzero(drop == 3)[0]]
    ice = pd.DataFrame({"id": [completer], "visit": ["w8"], "strategy": ["CR"]})
    with pytest.raises(ModelSpecificationError, match=r"2 outcome value\(s\).*post_ice='error'"):
        _imp(df, ice=ice, reference="usual", post_ice="error")


def test_observed_after_ice_set_aside_counted(trial):
    df, drop = trial
    completer = df["id"].unique()[np.flatnonzero(drop == 3)[0]]
    ice = pd.DataFrame({"id": [completer], "visit": ["w8"], "strategy": ["JR"]})
    with pytest.warns(peerstats.DataWarning, match="set aside and imputed"):
        imp = peerstats.impute(
            F,
            df,
            subject="id",
            visit="visit",
            arm="arm",
            method="condmean-bootstrap",
            n_imputations=2,
            ice=ice,
            reference="usual",
            seed=1,
        )
    assert imp.n_imputed["n_set_aside"].sum() == 2
    assert "2 set aside" in imp.summary()


@pytest.mark.parametrize(
    "method, m", [("bayes", 1), ("approx-bayes", 0), ("condmean-bootstrap", 1)]
)
def test_too_few_imputations(trial, no_fit, method, m):
    with pytest.raises(ModelSpecificationError, match=f"n_imputations={m} is too small"):
        _imp(trial[0], method=method, n_imputations=m)


def test_other_options(trial, no_fit):
    df, _ = trial
    with pytest.raises(ModelSpecificationError, match="method='mice' is not valid"):
        _imp(df, method="mice")
    with pytest.raises(
        ModelSpecificationError, match="must be None for method='condmean-jackknife'"
    ):
        _imp(df, n_imputations=10)
    with pytest.raises(ModelSpecificationError, match="covariance='us'"):
        _imp(df, method="bayes", covariance="ar1")
    with pytest.raises(ModelSpecificationError, match="must appear in the imputation formula"):
        peerstats.impute(
            "y ~ visit + base", df, subject="id", visit="visit", arm="arm", method="bayes"
        )


@pytest.mark.parametrize(
    "delta, match",
    [
        ({"peer": np.inf}, "finite"),
        ({"peer": {"w12": np.nan}}, "finite"),
        ({"placebo": 1.0}, r"arm\(s\) \['placebo'\]"),
        (pd.DataFrame({"id": ["nobody"], "visit": ["w12"], "delta": [1.0]}), "nobody"),
    ],
)
def test_bad_delta(trial, no_fit, delta, match):
    with pytest.raises(ModelSpecificationError, match=match):
        _imp(trial[0], delta=delta)


def test_failed_refits_raise(trial, monkeypatch):
    real = mi._prepare

    def flaky(*a, **k):
        prep = real(*a, **k)
        orig = prep.refit
        calls = {"n": 0}

        def refit(*aa, **kk):
            r = orig(*aa, **kk)
            if kk.get("subject_weights") is not None:
                calls["n"] += 1
                if calls["n"] == 2:
                    from dataclasses import replace

                    return replace(r, converged=False)
            return r

        prep.refit = refit
        return prep

    monkeypatch.setattr(mi, "_prepare", flaky)
    with pytest.raises(ConvergenceError, match="failed to converge in 1 of 3"):
        _imp(trial[0], method="approx-bayes", n_imputations=3, seed=1)


def test_tipping_bad_input(trial):
    df, _ = trial
    imp = _imp(df, method="condmean-bootstrap", n_imputations=2, seed=1)
    with pytest.raises(ModelSpecificationError, match="'placebo' is not an arm"):
        peerstats.tipping_point(imp, {"placebo": [0, 1]})
    with pytest.raises(ModelSpecificationError, match="finite"):
        peerstats.tipping_point(imp, [0, np.nan])
    with pytest.raises(ModelSpecificationError, match="Imputations object"):
        peerstats.tipping_point(df, [0, 1])
