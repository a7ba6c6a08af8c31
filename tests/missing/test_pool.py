"""peerstats.pool and the Rubin pooling of Imputations.analyse against R mice.

Reference: tests/reference/r_mi/mice_pool.R (R 4.2.2, mice 3.15.0) wrote mice_pool.json:
mice::pool.scalar on fixed numbers, and mice::pool of lm(y_v ~ arm + base) fitted by mice on
its own completed datasets (m = 5). Tolerance: 1e-8 relative (JSON holds 15 digits).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.missing import Imputations

REF = json.loads((Path(__file__).parents[1] / "reference/r_mi/mice_pool.json").read_text())
RTOL = 1e-8


@pytest.mark.parametrize("case", ["finite", "infinite"])
def test_pool_scalar(case):
    sc = REF["scalar"]
    dfc = sc["n"] - sc["k"] if case == "finite" else None
    out = peerstats.pool(sc["Q"], sc["U"], df_complete=dfc).iloc[0]
    exp = sc[case]
    for ours, theirs in [
        ("estimate", "qbar"),
        ("ubar", "ubar"),
        ("b", "b"),
        ("t", "t"),
        ("df", "df"),
        ("riv", "r"),
        ("fraction_missing_info", "fmi"),
    ]:
        assert out[ours] == pytest.approx(exp[theirs], rel=RTOL), ours
    assert out["std_error"] == pytest.approx(np.sqrt(exp["t"]), rel=RTOL)


def _imputations():
    d = REF["data"]
    n = len(d["subject"])
    frames = []
    for c in REF["completed"]:
        rows = []
        for i in range(n):
            for v in REF["visits"]:
                rows.append(
                    {
                        "subject": d["subject"][i],
                        "arm": d["arm"][i],
                        "base": d["base"][i],
                        "visit": v,
                        "y": c[v][i],
                    }
                )
        f = pd.DataFrame(rows)
        f["arm"] = pd.Categorical(f["arm"], ["usual", "peer"])
        f["visit"] = pd.Categorical(f["visit"], REF["visits"])
        frames.append(f)
    miss = np.array([d[v][i] is None for i in range(n) for v in REF["visits"]])
    return Imputations.from_datasets(
        frames, outcome="y", subject="subject", visit="visit", arm="arm", missing=miss
    )


def test_analyse_matches_mice_pool():
    imp = _imputations()
    res = imp.analyse(covariates=["base"])
    for v in REF["visits"]:
        exp = {r["term"]: r for r in REF["pooled"][v]}["armpeer"]
        row = res[res["visit"] == v].iloc[0]
        assert row["contrast"] == "peer - usual"
        assert row["estimate"] == pytest.approx(exp["estimate"], rel=RTOL)
        assert row["std_error"] == pytest.approx(exp["std_error"], rel=RTOL)
        assert row["df"] == pytest.approx(exp["df"], rel=RTOL)
        assert row["fraction_missing_info"] == pytest.approx(exp["fmi"], rel=RTOL)


def test_analyse_fn_matches_mice_pool():
    """A user analysis (every lm coefficient) pooled with df_complete = n - p."""
    imp = _imputations()

    def fn(d):
        w = d[d["visit"] == "y2"]
        X = np.column_stack([np.ones(len(w)), (w["arm"] == "peer"), w["base"]]).astype(float)
        y = w["y"].to_numpy()
        b, *_ = np.linalg.lstsq(X, y, rcond=None)
        s2 = ((y - X @ b) ** 2).sum() / (len(y) - 3)
        return pd.Series(b, index=["(Intercept)", "armpeer", "base"]), s2 * np.diag(
            np.linalg.inv(X.T @ X)
        )

    res = imp.analyse(fn, df_complete=len(REF["data"]["subject"]) - 3).set_index("term")
    for r in REF["pooled"]["y2"]:
        assert res.loc[r["term"], "estimate"] == pytest.approx(r["estimate"], rel=RTOL)
        assert res.loc[r["term"], "std_error"] == pytest.approx(r["std_error"], rel=RTOL)
        assert res.loc[r["term"], "df"] == pytest.approx(r["df"], rel=RTOL)
        assert res.loc[r["term"], "fraction_missing_info"] == pytest.approx(r["fmi"], rel=RTOL)


def test_pool_dataframe_terms_and_errors():
    E = pd.DataFrame({"a": [1.0, 1.2, 0.9], "b": [2.0, 2.1, 2.3]})
    V = pd.DataFrame({"a": [0.1, 0.1, 0.12], "b": [0.2, 0.25, 0.2]})
    out = peerstats.pool(E, V, df_complete=50)
    assert list(out["term"]) == ["a", "b"]
    with pytest.raises(peerstats.ModelSpecificationError, match="at least 2"):
        peerstats.pool([1.0], [0.1])
    with pytest.raises(peerstats.ModelSpecificationError, match="finite"):
        peerstats.pool([1.0, np.nan], [0.1, 0.1])
    with pytest.raises(peerstats.ModelSpecificationError, match="same shape"):
        peerstats.pool([1.0, 2.0], [0.1, 0.1, 0.2])
