"""Issue 20.3: the imputation-based sensitivity analyses use the PRIMARY analysis model.

Reference: tests/reference/r_sens_primary/ (nlme::lme, the same random terms and varIdent by
arm, on the same 20 completed datasets of the PEER example's mi-jr analysis, SYNTHETIC data;
Rubin's rules by hand, Barnard-Rubin df from mice::pool.scalar).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.exceptions import SpecError
from peerstats.pipeline import run_analysis
from peerstats.pipeline._sensitivity_model import pool_primary, primary_analyser

REF = Path(__file__).parents[1] / "reference" / "r_sens_primary"


def _spec(sensitivity=None, **extra):
    spec = {
        "analysis": {"name": "sens", "title": "sensitivity (synthetic)"},
        "trial": {"dataset": "peer_recovery"},
        "primary": {"outcome": "qpr15", "visit": "post"},
        "tables": [],
        "figures": [],
        "seed": 179,
    }
    if sensitivity is not None:
        spec["sensitivity"] = sensitivity
    spec.update(extra)
    return spec


@pytest.fixture(scope="module")
def primary_run():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_analysis(_spec())


@pytest.fixture(scope="module")
def r_reference():
    return json.loads((REF / "r_sens_primary.json").read_text())


@pytest.fixture(scope="module")
def pooled_on_r_datasets(primary_run):
    d = pd.read_csv(REF / "datasets.csv.gz", dtype={"subject": str, "group": str})
    sets = [g.drop(columns="imputation").reset_index(drop=True) for _, g in d.groupby("imputation")]
    missing = sets[0]["imputed"].to_numpy(bool)
    for g in sets:
        g["visit"] = pd.Categorical(g["visit"], categories=["post", "fu3"])
        g["arm"] = pd.Categorical(g["arm"], categories=["usual", "peer"])
    imp = peerstats.Imputations.from_datasets(
        sets, outcome="qpr15", subject="subject", visit="visit", arm="arm", missing=missing
    )
    an = primary_analyser(primary_run, "qpr15", "usual", "primary model")
    return pool_primary(imp, an).set_index("visit")


def test_primary_model_pooled_equals_nlme_rubin(pooled_on_r_datasets, r_reference):
    """Rubin's rules over nlme::lme fits of the same model on the same completed datasets:
    estimate to 1e-8 and SE to 1e-6 relative (measured: 5e-10 and 1.9e-7; nlme stops at its
    tolerance, and one dataset has its group variance at zero, where nlme stops at a tiny
    positive value)."""
    for row in r_reference["pooled"]:
        got = pooled_on_r_datasets.loc[row["visit"]]
        assert got["estimate"] == pytest.approx(row["estimate"], rel=1e-8)
        assert got["std_error"] == pytest.approx(row["std_error"], rel=1e-6)


def test_barnard_rubin_df_with_the_mean_complete_data_df(pooled_on_r_datasets, r_reference):
    """df: mice::pool.scalar's Barnard-Rubin df with dfcom = the mean Satterthwaite df of the
    contrast over the completed datasets (the R script states that input), to 1e-5 relative
    (measured 2e-7)."""
    for row in r_reference["pooled"]:
        got = pooled_on_r_datasets.loc[row["visit"]]
        assert got["df"] == pytest.approx(row["df"], rel=1e-5)


def test_rows_say_their_model_and_the_ancova_stays_an_option():
    """The MAR MI row with the primary (partially nested) model names it; the ANCOVA option
    stays and says that it has no group effect. Fails on the old pipeline (ANCOVA
    only, no analysis_model key)."""
    sens = [
        {
            "name": "mi-primary",
            "method": "multiple-imputation",
            "strategy": "MAR",
            "n_imputations": 5,
        },
        {
            "name": "mi-ancova",
            "method": "multiple-imputation",
            "strategy": "MAR",
            "n_imputations": 5,
            "analysis_model": "ancova",
        },
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_analysis(_spec(sens))
    t = run.tables["sensitivity"].set_index(["analysis", "visit"])
    prim, anc = t.loc[("mi-primary", "post")], t.loc[("mi-ancova", "post")]
    assert prim["model"].startswith("partially nested linear mixed model")
    assert "as the primary analysis" in prim["model"] and "Rubin's rules" in prim["model"]
    assert anc["model"].startswith("per-visit ANCOVA")
    assert "no delivery-group effect" in anc["model"]
    assert prim["estimate"] != anc["estimate"]  # two analyses, two numbers (values: R test)


def test_unknown_analysis_model_is_a_spec_error():
    sens = [{"method": "multiple-imputation", "strategy": "MAR", "analysis_model": "lmm"}]
    with pytest.raises(SpecError, match=r"analysis_model.*'primary' or 'ancova'"):
        run_analysis(_spec(sens))


def test_analysis_model_does_not_apply_to_complete_cases():
    sens = [{"method": "complete-case", "analysis_model": "ancova"}]
    with pytest.raises(SpecError, match="do not apply"):
        run_analysis(_spec(sens))


def test_tipping_point_with_the_primary_model_refits_every_cell():
    """Two deltas x 3 imputations: delta 0 equals the MAR MI row of the same imputations; a
    large negative delta moves the estimate down."""
    sens = [
        {
            "name": "tp",
            "method": "tipping-point",
            "strategy": "MAR",
            "n_imputations": 3,
            "delta": {"peer": [-20, 0]},
        },
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_analysis(_spec(sens))
    tp = run.results["tipping_point"]["tp"]
    assert tp["model"].startswith("partially nested linear mixed model")
    tab = {r["delta_peer"]: r for r in tp["table"]}
    assert tab[-20.0]["estimate"] < tab[0.0]["estimate"] - 2
    assert np.isfinite(tab[0.0]["df"]) and tab[0.0]["std_error"] > 0
    # the report's tipping-point sentence names the analysis model
    assert "Analysis model: partially nested linear mixed model" in run.report_html
