"""Issue 20.6: the guide's Python recipe for "JR after discontinuation" and the pipeline's
`treatment policy` + `JR` give the same number, because both follow the estimand's handling of
outcomes observed after the intercurrent event (post_ice: keep for treatment policy, impute for
hypothetical). Before the fix the guide set them aside (6.58 in the issue's trial) while the
pipeline kept them (7.35) under the same label.

The recipe is executed from docs/guide/sensitivity.md (its block with post_ice="keep"), so the guide
cannot drift from the pipeline. Tolerance 1e-10 relative: the same deterministic conditional-mean
imputation (condmean-jackknife) on the same data, two code paths (the recipe's hand-built grid
and ICE frame against the pipeline's).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import peerstats
from peerstats.exceptions import ModelSpecificationError, SpecError
from peerstats.pipeline import read_analysis_spec, run_analysis

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "sensitivity.md"


def _spec(post_ice=None, strategy="treatment policy"):
    ev = {
        "event": "discontinued the PEER course",
        "column": "discontinued",
        "strategy": strategy,
        "missing_data": "JR",
    }
    if post_ice is not None:
        ev["post_ice"] = post_ice
    raw = {
        "analysis": {"name": "post_ice"},
        "trial": {"dataset": "peer_recovery"},
        "primary": {"outcome": "qpr15", "visit": "post"},
        "tables": ["outcomes"],
        "figures": [],
        "estimand": {"intercurrent_events": [ev]},
        "sensitivity": [
            {
                "name": "mi-jr",
                "method": "multiple-imputation",
                "imputation": "condmean-jackknife",
                "strategy": "estimand",
                "reference": "usual",
                # the guide's recipe analyses each visit with an ANCOVA (issue 20.3: the
                # pipeline's default refits the primary model)
                "analysis_model": "ancova",
            }
        ],
    }
    return read_analysis_spec(raw)


def _pipeline(post_ice=None, strategy="treatment policy"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_analysis(_spec(post_ice, strategy))
    rows = run.results["sensitivity"]["analyses"]
    return {v: rows[f"mi-jr|{v}|peer - usual"] for v in ("post", "fu3")}


@pytest.fixture(scope="module")
def guide_recipe():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    block = next(b for b in blocks if 'post_ice="keep"' in b)  # the JR recipe
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(block, str(GUIDE), "exec"), ns)  # noqa: S102 - our own guide
    return ns


def test_guide_recipe_equals_pipeline_treatment_policy(guide_recipe):
    jr = guide_recipe["jr"].set_index("visit")
    pipe = _pipeline()
    for v in ("post", "fu3"):
        assert jr.loc[v, "estimate"] == pytest.approx(pipe[v]["estimate"], rel=1e-10)
        assert jr.loc[v, "std_error"] == pytest.approx(pipe[v]["std_error"], rel=1e-10)


def test_keep_and_impute_differ_and_hypothetical_sets_aside(guide_recipe):
    """post_ice matters on these data: keep (treatment policy) and impute (hypothetical) give
    different numbers, and the spec's post_ice overrides the strategy's default."""
    keep = _pipeline()["post"]["estimate"]
    hypo = _pipeline(strategy="hypothetical")["post"]["estimate"]
    forced = _pipeline(post_ice="impute")["post"]["estimate"]
    assert abs(keep - hypo) > 0.05
    assert forced == pytest.approx(hypo, rel=1e-12)
    ns = guide_recipe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = peerstats.impute(
            "qpr15 ~ qpr15_baseline + site + arm * visit",
            ns["grid"],
            subject="subject",
            visit="visit",
            arm="arm",
            method="condmean-jackknife",
            ice=ns["ice"],
            reference={"peer": "usual"},
            post_ice="impute",
        )
    est = imp.analyse(covariates=["qpr15_baseline", "site"]).set_index("visit")
    assert est.loc["post", "estimate"] == pytest.approx(hypo, rel=1e-10)
    assert int(imp.n_imputed["n_set_aside"].sum()) > 0


def test_post_ice_error(guide_recipe):
    ns = guide_recipe
    with pytest.raises(ModelSpecificationError, match="post_ice='error'"):
        peerstats.impute(
            "qpr15 ~ qpr15_baseline + site + arm * visit",
            ns["grid"],
            subject="subject",
            visit="visit",
            arm="arm",
            method="condmean-jackknife",
            ice=ns["ice"],
            reference={"peer": "usual"},
            post_ice="error",
        )
    with pytest.raises(SpecError, match="post_ice: error"):
        _pipeline(post_ice="error")
    with pytest.raises(ModelSpecificationError, match="'keep', 'impute', 'error'"):
        peerstats.impute(
            "qpr15 ~ qpr15_baseline + arm * visit",
            ns["grid"],
            subject="subject",
            visit="visit",
            arm="arm",
            method="condmean-jackknife",
            post_ice="drop",
        )
