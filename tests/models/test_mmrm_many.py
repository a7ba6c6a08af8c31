"""peerstats.mmrm_many: the same MMRM on many replicates (issue 22.5).

Sources and tolerances:
- R mmrm 0.3.18 (tests/reference/mmrm_many/mmrm_many.R wrote mmrm_many.json from the synthetic
  replicates.csv, made by make_data.py): estimates within 1e-4 of their SE, SEs 1e-4 relative,
  Satterthwaite df 1e-3 relative, p-values 1e-4 absolute. R mmrm stops slightly short of the
  optimum (its -2 REML log-likelihood is ~1e-6 above peerstats.mmrm's on every replicate, and
  peerstats.mmrm itself differs from R by the same 2-8e-5 SE), hence 1e-4 and not tighter. Replicate 5 has
  6 subjects: R mmrm fails ("No optimizer led to a successful model fit"); mmrm_many must list
  it as a failure, not raise.
- peerstats.mmrm on each replicate alone (validated against SAS and R in test_mmrm_sas.py /
  test_mmrm_r.py): estimate 1e-6 in SE units, SE 1e-6 relative, df 1e-4 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError

REF = Path(__file__).parents[1] / "reference" / "mmrm_many"
FORMULA = "y ~ base + arm * visit"
AVG = {"avg": {"arm[T.usual]:visit[T.w2]": 0.5, "arm[T.usual]:visit[T.w3]": 0.5}}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "replicates.csv")


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "mmrm_many.json").read_text())["fits"]


@pytest.fixture(scope="module")
def fits(data):
    return {
        model: peerstats.mmrm_many(
            FORMULA,
            data,
            subject="id",
            visit="visit",
            replicate="rep",
            group="arm" if model == "us_group" else None,
            contrasts=AVG,
        )
        for model in ("us", "us_group")
    }


@pytest.mark.parametrize("model", ["us", "us_group"])
@pytest.mark.parametrize("rep", [1, 2, 3, 4])
def test_equals_r_mmrm(fits, ref, model, rep):
    r = ref[f"{model}_{rep}"]
    assert r["converged"]
    res = fits[model]
    ours = res.coef[res.coef.replicate == rep].set_index("term")
    assert res.engine[rep] == "batched"
    coef = ours.iloc[: len(r["terms"])]  # same model-matrix column order as R
    se = np.array(r["std_error"])
    assert np.all(np.abs(coef["estimate"] - r["estimate"]) < 1e-4 * se)
    assert np.allclose(coef["std_error"], se, rtol=1e-4)
    assert np.allclose(coef["df"], r["df"], rtol=1e-3)
    assert np.allclose(coef["p_value"], r["p_value"], rtol=0, atol=1e-4)
    avg = ours.loc["avg"]
    assert avg["estimate"] == pytest.approx(r["avg"]["estimate"], abs=1e-4 * r["avg"]["std_error"])
    assert avg["std_error"] == pytest.approx(r["avg"]["std_error"], rel=1e-4)
    assert avg["df"] == pytest.approx(r["avg"]["df"], rel=1e-3)


def test_too_little_data_is_reported_not_raised(fits, ref):
    assert "error" in ref["us_5"]  # R mmrm cannot fit it either
    res = fits["us"]
    assert list(res.failures["replicate"]) == [5]
    assert res.failures["error"].iloc[0] in {
        "ModelSpecificationError",
        "InsufficientDataError",
        "ConvergenceError",
    }
    bad = res.coef[res.coef.replicate == 5]
    assert not bad["converged"].any() and bad["estimate"].isna().all()
    assert res.coef[res.coef.replicate != 5]["converged"].all()
    with pytest.raises(peerstats.PeerstatsError):
        peerstats.mmrm_many(
            FORMULA, _rep(5), subject="id", visit="visit", replicate="rep", errors="raise"
        )


def _rep(rep):
    return pd.read_csv(REF / "replicates.csv").query("rep == @rep")


@pytest.mark.parametrize("group", [None, "arm"])
def test_each_replicate_equals_mmrm(data, fits, group):
    res = fits["us_group" if group else "us"]
    for rep in (1, 2, 3, 4):
        one = data[data.rep == rep].drop(columns="rep")
        fit = peerstats.mmrm(FORMULA, one, subject="id", visit="visit", group=group)
        ours = res.coef[res.coef.replicate == rep].set_index("term").loc[fit.coef.index]
        se = fit.coef["std_error"].to_numpy()
        assert np.all(np.abs(ours["estimate"] - fit.coef["estimate"]) < 1e-6 * se)
        assert np.allclose(ours["std_error"], se, rtol=1e-6)
        assert np.allclose(ours["df"], fit.coef["df"], rtol=1e-4)
        assert np.all(np.abs(ours["ci_lower"] - fit.coef["ci_lower"]) < 1e-5 * se)
        ell = np.zeros(len(se))
        ell[[list(fit.coef.index).index(t) for t in AVG["avg"]]] = 0.5
        t = fit.test(ell).iloc[0]
        avg = res.coef[(res.coef.replicate == rep) & (res.coef.term == "avg")].iloc[0]
        assert avg["std_error"] == pytest.approx(t["std_error"], rel=1e-6)
        assert avg["df"] == pytest.approx(t["df"], rel=1e-4)


def test_list_of_frames_and_the_mmrm_engine_agree(data):
    frames = [data[data.rep == r].drop(columns="rep") for r in (1, 2)]
    batched = peerstats.mmrm_many(FORMULA, frames, subject="id", visit="visit", df="residual")
    looped = peerstats.mmrm_many(
        FORMULA, frames, subject="id", visit="visit", df="residual", engine="mmrm"
    )
    assert list(batched.engine) == ["batched", "batched"]
    assert list(looped.engine) == ["mmrm", "mmrm"]
    assert list(batched.coef.replicate.unique()) == [0, 1]
    np.testing.assert_allclose(batched.coef["df"], looped.coef["df"])  # n_obs - p
    np.testing.assert_allclose(batched.coef["std_error"], looped.coef["std_error"], rtol=1e-6)


def test_options_the_batched_engine_lacks_loop_over_mmrm(data):
    two = data[data.rep <= 2]
    res = peerstats.mmrm_many(
        FORMULA, two, subject="id", visit="visit", replicate="rep", covariance="ar1"
    )
    assert set(res.engine) == {"mmrm"}
    fit = peerstats.mmrm(
        FORMULA,
        two[two.rep == 2].drop(columns="rep"),
        subject="id",
        visit="visit",
        covariance="ar1",
    )
    ours = res.coef[res.coef.replicate == 2].set_index("term").loc[fit.coef.index]
    np.testing.assert_allclose(ours["estimate"], fit.coef["estimate"], rtol=1e-12)
    with pytest.raises(ModelSpecificationError, match="engine='batched' cannot fit covariance"):
        peerstats.mmrm_many(
            FORMULA,
            two,
            subject="id",
            visit="visit",
            replicate="rep",
            covariance="ar1",
            engine="batched",
        )


def test_bad_inputs_give_clear_errors(data):
    kw = dict(subject="id", visit="visit")
    with pytest.raises(ModelSpecificationError, match="replicate="):
        peerstats.mmrm_many(FORMULA, data, **kw)
    with pytest.raises(ModelSpecificationError, match="not a column"):
        peerstats.mmrm_many(FORMULA, data, replicate="sim", **kw)
    with pytest.raises(ModelSpecificationError, match="no replicates"):
        peerstats.mmrm_many(FORMULA, [], **kw)
    with pytest.raises(ModelSpecificationError, match="not a pandas DataFrame"):
        peerstats.mmrm_many(FORMULA, [data, "x"], **kw)
    with pytest.raises(ModelSpecificationError, match="not coefficients"):
        peerstats.mmrm_many(FORMULA, data, replicate="rep", contrasts={"a": {"arm": 1}}, **kw)
    with pytest.raises(ModelSpecificationError, match="choose one of"):
        peerstats.mmrm_many(FORMULA, data, replicate="rep", engine="fast", **kw)


def test_summary_and_power(fits):
    res = fits["us"]
    text = repr(res)
    assert "5 replicates" in text and "failed: 1" in text
    rate = res.power(0.05)
    assert rate["arm[T.usual]:visit[T.w3]"] == pytest.approx(
        (res.coef.query("term == 'arm[T.usual]:visit[T.w3]'")["p_value"] < 0.05).sum() / 5
    )


def test_a_replicate_mmrm_would_reject_is_reported_with_mmrms_message(data):
    two = data[data.rep <= 2].copy()
    switch = (two.rep == 2) & (two.id == "s000") & (two.visit == "w3")
    two.loc[switch, "arm"] = "usual"  # group= must be constant within subject
    res = peerstats.mmrm_many(
        FORMULA, two, subject="id", visit="visit", replicate="rep", group="arm"
    )
    assert res.engine.to_dict() == {1: "batched", 2: "mmrm"}
    assert list(res.failures.replicate) == [2]
    assert "constant within subject" in res.failures.message.iloc[0]


def test_replicates_in_chunks_give_the_same_numbers(data, fits, monkeypatch):
    from functools import partial

    from peerstats.models import _many_data

    # chunks of 2 replicates (the memory bound of a large study), including the failing one
    monkeypatch.setattr(_many_data, "chunks", partial(_many_data.chunks, budget=60_000))
    res = peerstats.mmrm_many(
        FORMULA, data, subject="id", visit="visit", replicate="rep", contrasts=AVG
    )
    # the same optimum; rounding differs with the block types a chunk holds (sums of other
    # length), which moves the forward-difference Hessian of the df by ~1e-8
    pd.testing.assert_frame_equal(res.coef, fits["us"].coef, check_exact=False, rtol=1e-6)
    assert list(res.failures.replicate) == [5]


def test_a_replicate_the_batched_engine_does_not_settle_is_fitted_by_mmrm(data, monkeypatch):
    from peerstats.models import many

    original = many.BatchREML.fit_contrasts

    def first_not_converged(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out["converged"] = out["converged"].copy()
        out["converged"][0] = False  # as if Fisher scoring had stopped short on replicate 1
        return out

    monkeypatch.setattr(many.BatchREML, "fit_contrasts", first_not_converged)
    two = data[data.rep <= 2]
    res = peerstats.mmrm_many(FORMULA, two, subject="id", visit="visit", replicate="rep")
    assert res.engine.to_dict() == {1: "mmrm", 2: "batched"}
    fit = peerstats.mmrm(FORMULA, two[two.rep == 1], subject="id", visit="visit")
    ours = res.coef[res.coef.replicate == 1].set_index("term").loc[fit.coef.index]
    np.testing.assert_allclose(ours["estimate"], fit.coef["estimate"], rtol=1e-12)
    assert res.failures.empty and res.coef["converged"].all()
