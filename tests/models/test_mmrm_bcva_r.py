"""The MMRM on real data with many missingness patterns against R mmrm (issue 22.2).

Source of every expected number: tests/reference/r_mmrm_bcva/r_mmrm_bcva.json, written by
tests/reference/r_mmrm_bcva/make_bcva.R (R 4.2.2, mmrm 0.3.18, emmeans 1.8.4.1) on mmrm's BCVA
data (benchmarks/data/bcva_data.csv: 1,000 subjects x 10 visits, 107 missingness patterns),
``BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT``, unstructured covariance, REML, Satterthwaite.
This data set takes the engine's subject path (P_k and u_k from V^-1 X per subject, see
peerstats.models._pattern_likelihood); the pooled path is checked on the same fit too.

Tolerances: R mmrm stops its optimiser at a looser gradient than peerstats (whose -2 log
likelihood is at or below R's), so estimates agree to ~1e-5 relative: estimates and SEs rtol
1e-4, -2 log-likelihood atol 1e-4, covariance within 1e-4 of its largest entry, Satterthwaite df rtol 1e-3 (df depend
on the Hessian at the optimum, the most sensitive to where the optimiser stopped).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.models.prepared import prepare_mmrm

ROOT = Path(__file__).resolve().parents[2]
REF = json.loads((ROOT / "tests/reference/r_mmrm_bcva/r_mmrm_bcva.json").read_text())
FORMULA = "BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT"


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(ROOT / "benchmarks/data/bcva_data.csv")
    for c in ("AVISIT", "ARMCD", "RACE"):
        d[c] = d[c].astype("category")
    return d


@pytest.fixture(scope="module")
def fit(data):
    return peerstats.mmrm(FORMULA, data, subject="USUBJID", visit="AVISIT", covariance="us")


def _r_name(col: str) -> str:
    return "(Intercept)" if col == "Intercept" else col.replace("[T.", "").replace("]", "")


def test_subject_path_is_used(data):
    prep = prepare_mmrm(FORMULA, data, subject="USUBJID", visit="AVISIT", covariance="us")
    assert prep._stats.units is not None  # 107 patterns: the subject path is the cheaper one


def test_estimates_and_se(fit):
    ours = fit.coef.set_index(fit.coef.index.map(_r_name))
    names = REF["coef_names"]
    np.testing.assert_allclose(ours.loc[names, "estimate"], REF["estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.loc[names, "std_error"], REF["std_error"], rtol=1e-4)
    np.testing.assert_allclose(ours.loc[names, "df"], REF["df"], rtol=1e-3)


def test_loglik_and_covariance(fit):
    assert abs(-2 * fit.loglik - REF["neg2loglik"]) < 1e-4
    S = np.array(REF["covariance"])
    np.testing.assert_allclose(np.asarray(fit.covariance), S, rtol=1e-4, atol=1e-4 * np.abs(S).max())


def test_contrasts(fit):
    ct = fit.contrasts("ARMCD", by="AVISIT")
    np.testing.assert_allclose(ct["estimate"], REF["contrast_estimate"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ct["std_error"], REF["contrast_se"], rtol=1e-4)
    np.testing.assert_allclose(ct["df"], REF["contrast_df"], rtol=1e-3)


def test_pooled_and_subject_paths_agree(data):
    """The two ways of forming P_k, u_k and X'V^-1X give the same second-order evaluation."""
    prep = prepare_mmrm(FORMULA, data, subject="USUBJID", visit="AVISIT", covariance="us")
    eng = prep._engine(prep._stats)
    theta = prep._initial_theta(eng, prep._stats) + 0.01
    a = eng._pl.evaluate(theta, order=2)
    eng._pl.units = None
    b = eng._pl.evaluate(theta, order=2)
    for k in ("hessian", "expected", "P", "gradient", "beta"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-9 * np.abs(b[k]).max())
    assert abs(a["objective"] - b["objective"]) < 1e-7 * abs(b["objective"])
