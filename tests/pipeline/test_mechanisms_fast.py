"""The mechanisms step reuses the run's primary fit for the subgroups' overall row only when it
is the fit ``peerstats.subgroups`` would make itself (issue 22): ``model: auto`` with
Satterthwaite df, model-based covariance and no extra covariates, a continuous outcome.
(That the report's numbers stay the same is checked on the bundled analyses by
``peerstats check`` against analyses/expected/ and in tests/effects/test_subgroups_fast.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from peerstats.pipeline.mechanisms import _primary_fit


def _run(**model):
    m = {"type": "auto", "df": "satterthwaite", "vcov": "model", "covariates": (), **model}
    spec = SimpleNamespace(model=SimpleNamespace(**m),
                           outcome_type=lambda o: "binary" if o == "readmission" else "continuous")
    fitted = SimpleNamespace(contrasts=object())
    return SimpleNamespace(spec=spec, fits={"qpr15": fitted, "readmission": fitted}), fitted


def test_same_model_is_reused():
    run, fitted = _run()
    assert _primary_fit(run, "qpr15") is fitted


@pytest.mark.parametrize("change", [{"df": "kenward-roger"}, {"vcov": "empirical"},
                                    {"type": "mmrm"}, {"covariates": ("age",)}])
def test_another_model_is_refitted(change):
    run, _ = _run(**change)
    assert _primary_fit(run, "qpr15") is None


def test_not_continuous_or_not_fitted_is_refitted():
    run, _ = _run()
    assert _primary_fit(run, "readmission") is None
    assert _primary_fit(run, "mansa") is None
    run.fits["qpr15"].contrasts = None
    assert _primary_fit(run, "qpr15") is None
