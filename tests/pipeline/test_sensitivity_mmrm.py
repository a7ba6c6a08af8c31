"""Imputation analyses with an MMRM primary model by one peerstats.mmrm_many call
(pipeline/_sensitivity_mmrm.py, issue 22) against the plain path (peerstats.mmrm per completed
data frame) on the bundled social_inclusion trial (SYNTHETIC data).

Self-consistency of a fast path; mmrm_many is validated against R mmrm in
tests/models/test_mmrm_many.py. Tolerances: estimate and standard error 1e-6, df 1e-4 relative
(mmrm_many's batched Fisher scoring stops at its own tolerance; measured 3e-8 and 2.4e-6 on the
bundled analysis).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import peerstats.pipeline._sensitivity_mmrm as smm
from peerstats.exceptions import ModelSpecificationError
from peerstats.pipeline import run_analysis

SENS = [{"name": "tp", "method": "tipping-point", "imputation": "bayes", "strategy": "MAR",
         "n_imputations": 4, "delta": {"peer": [-8, 0]}},
        {"name": "mi", "method": "multiple-imputation", "imputation": "bayes",
         "strategy": "MAR", "n_imputations": 4}]  # fmt: skip


def _run(monkeypatch=None, plain=False):
    spec = {
        "analysis": {"name": "mmrm-fast", "title": "MMRM fast path (synthetic)"},
        "trial": {"dataset": "social_inclusion"},
        "primary": {"outcome": "sis", "visit": "m4"},
        "model": {"type": "mmrm", "covariance": "us", "df": "satterthwaite"},
        "tables": [],
        "figures": [],
        "seed": 7,
        "sensitivity": SENS,
    }
    if plain:
        monkeypatch.setattr(smm, "_eligible", lambda *a: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_analysis(spec)


@pytest.fixture(scope="module")
def fast_run():
    return _run()


def test_mmrm_many_path_equals_the_plain_path(fast_run, monkeypatch):
    plain = _run(monkeypatch, plain=True)
    a, b = fast_run.tables["sensitivity"], plain.tables["sensitivity"]
    ta, tb = fast_run.tables["tipping_point_tp"], plain.tables["tipping_point_tp"]
    for x, y in ((a, b), (ta, tb)):
        for c, tol in (("estimate", 1e-6), ("std_error", 1e-6), ("df", 1e-4)):
            u, v = x[c].to_numpy(float), y[c].to_numpy(float)
            assert np.max(np.abs(u - v) / np.abs(v)) < tol, c
    assert len(a) == len(b) and list(a["analysis"]) == list(b["analysis"])


def test_a_failed_replicate_is_reported_naming_the_set(monkeypatch):
    import peerstats

    real = peerstats.mmrm_many

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        res.failures = pd.DataFrame(
            [{"replicate": 6, "error": "ConvergenceError", "message": "did not converge"}]
        )
        return res

    monkeypatch.setattr(peerstats, "mmrm_many", failing)
    with pytest.raises(ModelSpecificationError, match=r"failed on 1 of 8 completed datasets "
                       r"\(first: set 2: ConvergenceError: did not converge\)"):  # fmt: skip
        _run()
