"""Mediation's designs without formulaic (issue 22, speed) give formulaic's numbers bit for bit:
the same effects, draws and sensitivity with the fast layout as with formulaic building every
design (the reference: ``_fast_matrix`` switched off, so formulaic builds them, as before).
Data: the bundled SYNTHETIC peer_recovery trial, one row per participant. Tolerance: none.
The mediation estimates themselves are validated against R in ``test_mediation.py``."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.pipeline.mechanisms import wide_frame

# the module (peerstats.effects.mediation is also the name of the function)
med_mod = importlib.import_module("peerstats.effects.mediation")


@pytest.fixture(scope="module")
def wide():
    trial = peerstats.datasets.load("peer_recovery")
    cols = [("empowerment", "post"), ("qpr15", "fu3"), ("empowerment", "baseline"),
            ("qpr15", "baseline")]
    wide = wide_frame(trial, cols, ["age", "gender"])
    # a categorical column, levels not in sorted order: formulaic's own coding (not the layout)
    two = wide["gender"].where(wide["gender"].isin(["woman", "man"]))
    return wide.assign(sex=pd.Categorical(two, categories=["woman", "man"]))


FORMULAS = {
    "numeric": ("empowerment_post ~ treated + empowerment_baseline + qpr15_baseline",
                "qpr15_fu3 ~ treated + empowerment_post + qpr15_baseline"),
    "interaction": ("empowerment_post ~ treated + empowerment_baseline + age",
                    "qpr15_fu3 ~ treated * empowerment_post + qpr15_baseline"),
    "text factor": ("empowerment_post ~ treated + gender",
                    "qpr15_fu3 ~ treated * gender + empowerment_post"),
    "categorical (formulaic)": ("empowerment_post ~ treated + sex",
                                "qpr15_fu3 ~ treated + empowerment_post + sex"),
}


def _run(wide):
    def go(f_m, f_y):
        return peerstats.mediation(wide, mediator_formula=f_m, outcome_formula=f_y,
                                   treatment="treated", mediator="empowerment_post", sims=200,
                                   seed=3)
    return go


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_fast_designs_equal_formulaic(wide, kind, monkeypatch):
    f_m, f_y = FORMULAS[kind]
    fast = _run(wide)(f_m, f_y)
    assert (fast._med.layout is not None) == (kind != "categorical (formulaic)")
    monkeypatch.setattr(med_mod, "_fast_matrix", lambda rhs, data: (None, None))
    slow = _run(wide)(f_m, f_y)
    assert slow._med.layout is None and fast._med.names == slow._med.names
    pd.testing.assert_frame_equal(fast.effects, slow.effects, check_exact=True)
    pd.testing.assert_frame_equal(fast.draws, slow.draws, check_exact=True)
    for a, b in zip([*fast._designs.xm, *fast._designs.a, *fast._designs.b],
                    [*slow._designs.xm, *slow._designs.a, *slow._designs.b], strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.flags["F_CONTIGUOUS"] == b.flags["F_CONTIGUOUS"]
    if kind == "numeric":
        s_fast, s_slow = fast.sensitivity(), slow.sensitivity()
        np.testing.assert_array_equal(s_fast.acme, s_slow.acme)
        assert s_fast.rho_at_zero == s_slow.rho_at_zero


def test_design_of_data_the_layout_cannot_code_goes_to_formulaic(wide):
    """Missing values: the layout refuses them, formulaic's spec (made on first need) raises as
    it did for every design before."""
    f_m, f_y = FORMULAS["numeric"]
    res = _run(wide)(f_m, f_y)
    d = res._data.head(3).copy()
    np.testing.assert_array_equal(res._out.design(d), res._out.X[:3])
    assert res._out.spec is None
    d.loc[d.index[0], "qpr15_baseline"] = np.nan
    with pytest.raises(ValueError, match="null values"):
        res._out.design(d)
    assert res._out.spec is not None


def test_linear_mediation_imports_neither_formulaic_nor_statsmodels():
    """Cold start (issue 22): a linear mediation on numeric columns needs neither."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, pandas as pd, peerstats\n"
        "rng = np.random.default_rng(0); n = 200; t = rng.integers(0, 2, n)\n"
        "x = rng.normal(size=n); m = 0.5 * t + x + rng.normal(size=n)\n"
        "d = pd.DataFrame({'t': t, 'x': x, 'm': m, 'y': m + t + rng.normal(size=n)})\n"
        "peerstats.mediation(d, mediator_formula='m ~ t + x', outcome_formula='y ~ t + m + x',"
        " treatment='t', mediator='m', sims=50, seed=1).sensitivity()\n"
        "print(sorted(k for k in ('formulaic', 'statsmodels') if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
