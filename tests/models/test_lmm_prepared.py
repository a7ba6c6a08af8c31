"""The prepared LMM (models/_lmm_prepared.py): refitting the same partially nested model with a
new response must give exactly the numbers of a full ``peerstats.lmm`` call on that dataset.

Reference: ``peerstats.lmm`` itself, run on each dataset (this is a pure refactoring of its
data preparation; the LMM is validated against lme4/nlme in test_lmm_r.py). Data: the 20
completed datasets of tests/reference/r_sens_primary/datasets.csv.gz (SYNTHETIC PEER example).
Tolerance 1e-10 (relative to max(1, |value|)).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import peerstats
from peerstats.models._lmm_prepared import PreparedLMM

FORMULA = "qpr15 ~ qpr15_baseline + site + arm * visit + (1 | subject) + (0 + delivered | group)"
OPTIONS = {"subject": "subject", "df": "satterthwaite", "reference": {"arm": "usual"},
           "residual_by": "arm"}  # fmt: skip
TOL = 1e-10


@pytest.fixture(scope="module")
def datasets(sens_primary_sets):
    return sens_primary_sets[:8]


def _close(a, b, what):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, what
    err = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    assert np.all(np.isfinite(a) == np.isfinite(b)), what
    assert np.nanmax(err, initial=0.0) <= TOL, (what, np.nanmax(err))


def _same(fit, ref):
    _close(fit.coef["estimate"], ref.coef["estimate"], "estimate")
    _close(fit.coef["std_error"], ref.coef["std_error"], "std_error")
    _close(fit.coef["df"], ref.coef["df"], "df")
    _close(fit._theta, ref._theta, "theta")
    _close(fit.loglik, ref.loglik, "loglik")
    cf = fit.contrasts("arm", by="visit", reference="usual")
    cr = ref.contrasts("arm", by="visit", reference="usual")
    for c in ("estimate", "std_error", "df", "p_value", "ci_lower", "ci_upper"):
        _close(cf[c], cr[c], f"contrast {c}")
    vf, vr = fit.variance_components, ref.variance_components
    num = [c for c in vr.columns if pd.api.types.is_numeric_dtype(vr[c])]
    _close(vf[num], vr[num], "variance components")
    assert fit.singular == ref.singular and fit.n_obs == ref.n_obs


def test_prepared_refit_equals_lmm_on_imputed_datasets(datasets):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = PreparedLMM(FORMULA, datasets[0], **OPTIONS)
        start = None
        for i, d in enumerate(datasets):
            ref = peerstats.lmm(FORMULA, d, **OPTIONS)
            fit = prep.fit(d)
            _same(fit, ref)
            if i == 0:
                start = ref._theta
            # warm start as the sensitivity analyses do
            _same(prep.fit(d, start=start), peerstats.lmm(FORMULA, d, start=start, **OPTIONS))
    assert prep.n_reused == 2 * len(datasets)


def test_different_design_falls_back_to_lmm(datasets):
    """A changed covariate or a different set of observed rows is refitted from scratch."""
    prep = PreparedLMM(FORMULA, datasets[0], **OPTIONS)
    moved = datasets[1].assign(qpr15_baseline=datasets[1]["qpr15_baseline"] + 1.0)
    holes = datasets[1].copy()
    holes.loc[3, "qpr15"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in (moved, holes):
            assert not prep.same_design(d)
            _same(prep.fit(d), peerstats.lmm(FORMULA, d, **OPTIONS))
    assert prep.n_reused == 0
    assert prep.same_design(datasets[2])


def test_unknown_option_is_refused(datasets):
    with pytest.raises(peerstats.exceptions.ModelSpecificationError, match="unknown lmm option"):
        PreparedLMM(FORMULA, datasets[0], residuals="iid")
