"""Issue 20.8: the Kenward-Roger variants can be named in the analysis spec's model section and
reach the model (their numbers are checked against SAS and R mmrm in tests/models)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _primary_se(df: str) -> tuple[str, float]:
    from peerstats.pipeline import run_analysis

    raw = yaml.safe_load((ROOT / "analyses" / "icbt_peer.yaml").read_text(encoding="utf-8"))
    raw["model"]["df"] = df
    raw.update(sensitivity=[], figures=[], tables=["outcomes"])
    run = run_analysis(raw)
    c = next(iter(run.results["primary"]["contrasts"].values()))
    return run.results["models"]["gad7"]["df_method"], c["std_error"]


def test_spec_kr_variants_reach_the_mmrm():
    """SAS kr and kr(linear) coincide for an unstructured covariance; R mmrm's default KR
    does not (it adjusts the covariance differently), so its SE differs."""
    kr = _primary_se("kenward-roger")
    lin = _primary_se("kenward-roger-linear")
    mm = _primary_se("kenward-roger-mmrm")
    assert (kr[0], lin[0], mm[0]) == ("kenward-roger", "kenward-roger-linear",
                                      "kenward-roger-mmrm")
    assert lin[1] == pytest.approx(kr[1], rel=1e-10)
    assert abs(mm[1] - kr[1]) > 1e-4


def test_an_unknown_df_is_a_spec_error():
    from peerstats.exceptions import SpecError
    from peerstats.pipeline import read_analysis_spec

    raw = yaml.safe_load((ROOT / "analyses" / "icbt_peer.yaml").read_text(encoding="utf-8"))
    raw["model"]["df"] = "kr2"
    with pytest.raises(SpecError, match="kr2"):
        read_analysis_spec(raw)
