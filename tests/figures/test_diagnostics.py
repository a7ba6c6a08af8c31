"""Residual diagnostics figure (issue 12, point 5): QQ and residual vs fitted per visit.

Check of the Pearson residuals: for an MMRM the raw residual y - X beta divided by the model SD
of its visit (sqrt of the covariance diagonal), computed here from fit.params, fit.covariance
and the data directly; tolerance 1e-10 absolute.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.figures.diagnostics import model_residuals


@pytest.fixture(scope="module")
def fit():
    d = pd.read_csv(
        __import__("pathlib").Path(__file__).resolve().parents[1]
        / "reference"
        / "r_mmrm"
        / "fev_data.csv"
    )
    d["AVISIT"] = pd.Categorical(d["AVISIT"], categories=["VIS1", "VIS2", "VIS3", "VIS4"])
    return peerstats.mmrm(
        "FEV1 ~ FEV1_BL + ARMCD * AVISIT", d, subject="USUBJID", visit="AVISIT", covariance="us"
    ), d


def test_one_row_per_visit_with_qq_and_residual_vs_fitted(fit):
    f, _ = fit
    fig = peerstats.plot_diagnostics(f, visit_labels={"VIS1": "Visit 1"})
    assert len(fig.axes) == 8
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0] == "Visit 1: normal QQ" and titles[1] == "Visit 1: residual vs fitted"
    n = sum(len(c.get_offsets()) for ax in fig.axes[::2] for c in ax.collections)
    assert n == f.n_obs
    plt.close(fig)


def test_pearson_residuals_by_hand(fit):
    f, d = fit
    r = model_residuals(f, "pearson")
    obs = d[d["FEV1"].notna()].reset_index(drop=True)
    p = f.params
    arm = (obs["ARMCD"] == "TRT").astype(float)
    mu = p["Intercept"] + p["FEV1_BL"] * obs["FEV1_BL"] + p["ARMCD[T.TRT]"] * arm
    for v in ("VIS2", "VIS3", "VIS4"):
        isv = (obs["AVISIT"] == v).astype(float)
        mu = mu + p[f"AVISIT[T.{v}]"] * isv + p[f"ARMCD[T.TRT]:AVISIT[T.{v}]"] * isv * arm
    sd = np.sqrt(np.diag(f.covariance.to_numpy()))
    sd_row = obs["AVISIT"].cat.codes.map(dict(enumerate(sd)))
    expected = (obs["FEV1"] - mu) / sd_row
    assert set(r["type"]) == {"pearson"}
    assert np.abs(r["residual"].to_numpy() - expected.to_numpy()).max() < 1e-10
