"""vcov="empirical" with df="between-within" against SAS PROC MIXED EMPIRICAL (issue 10.3/10.4).

Source of every expected number: tests/reference/sas_empirical/ (SAS listings and ODS output of
the R package mmrm, design/Robust/; see its README): FEV1 = ARMCD, REPEATED with eight covariance
types, REML, EMPIRICAL, without and with a WEIGHT statement; SAS's df method is Between-Within.
No expected value comes from peerstats.

Tolerances. SAS stops at its relative Hessian convergence criterion, so its covariance
parameters sit slightly off the exact optimum (as in tests/models/test_mmrm_sas.py):
- the empirical covariance matrix (ODS CovB, full precision): max |ours - SAS| at most 2e-4 x
  max |SAS| (we observe <= 7e-5);
- the TRT - PBO difference (ODS Diffs, full precision): estimate, standard error and 95% limits
  relative 2e-4;
- Between-Within df: exact (SAS: 195 for every effect, the intercept included).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats

REF = Path(__file__).parents[1] / "reference"
SAS = REF / "sas_empirical"
TYPES = {
    "us": "us",
    "cs": "cs",
    "csh": "csh",
    "ar1": "ar1",
    "arh1": "ar1h",
    "adh": "adh",
    "toep": "toep",
    "toeph": "toeph",
}
RUNS = [(t, w) for t in TYPES for w in (False, True)]


@cache
def fitted(sas_type: str, weighted: bool):
    fev = pd.read_csv(REF / "sas_fev" / "fev_data.csv")
    return peerstats.mmrm(
        "FEV1 ~ ARMCD",
        fev,
        subject="USUBJID",
        visit="AVISIT",
        covariance=TYPES[sas_type],
        weights="WEIGHT" if weighted else None,
        reference={"ARMCD": "PBO"},
        vcov="empirical",
        df="between-within",
    )


def _name(sas_type: str, weighted: bool) -> str:
    return f"empirical_{sas_type}" + ("_weighted" if weighted else "")


def _solution_df(sas_type: str, weighted: bool) -> dict[str, int]:
    """DF column of "Solution for Fixed Effects" in the listing."""
    text = (SAS / f"{_name(sas_type, weighted)}.txt").read_text()
    block = text.split("Solution for Fixed Effects", 1)[1].split("Covariance Matrix", 1)[0]
    out = {}
    for line in block.splitlines():
        parts = line.split()
        if parts[:1] == ["Intercept"]:
            out["Intercept"] = int(parts[3])
        elif parts[:2] == ["ARMCD", "TRT"]:
            out["ARMCD[T.TRT]"] = int(parts[4])
    return out


@pytest.mark.parametrize("sas_type,weighted", RUNS)
def test_empirical_covariance(sas_type, weighted):
    cb = pd.read_csv(SAS / f"{_name(sas_type, weighted)}_covb.csv")
    V = cb[["Col1", "Col2"]].to_numpy()[:2]
    ours = fitted(sas_type, weighted).vcov.to_numpy()
    assert np.max(np.abs(ours - V)) <= 2e-4 * np.max(np.abs(V))


@pytest.mark.parametrize("sas_type,weighted", RUNS)
def test_difference_of_lsmeans(sas_type, weighted):
    ref = pd.read_csv(SAS / f"{_name(sas_type, weighted)}_lsmean.csv").iloc[0]
    row = fitted(sas_type, weighted).contrasts("ARMCD").iloc[0]
    assert row["contrast"] == "TRT - PBO"
    assert abs(row["estimate"] - ref["Estimate"]) <= 2e-4 * abs(ref["Estimate"])
    assert abs(row["std_error"] - ref["StdErr"]) <= 2e-4 * ref["StdErr"]
    assert row["df"] == ref["DF"]
    for ours, theirs in (("ci_lower", "Lower"), ("ci_upper", "Upper")):
        assert abs(row[ours] - ref[theirs]) <= 2e-4 * abs(ref[theirs])


@pytest.mark.parametrize("sas_type,weighted", RUNS)
def test_between_within_df_of_the_solution(sas_type, weighted):
    """Both effects are constant within subject: between-subject df, intercept included."""
    expected = _solution_df(sas_type, weighted)
    assert set(expected) == {"Intercept", "ARMCD[T.TRT]"}
    coef = fitted(sas_type, weighted).coef
    for term, df in expected.items():
        assert coef.loc[term, "df"] == df
    assert fitted(sas_type, weighted).anova().loc["ARMCD", "den_df"] == expected["ARMCD[T.TRT]"]
