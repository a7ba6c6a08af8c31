"""TrialDesign, its YAML form, and every bad input of issue 11 (a SpecError naming the field and
the allowed range)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import peerstats
from peerstats import SpecError, TrialDesign
from peerstats.design import read_design

ROOT = Path(__file__).resolve().parents[2]
DESIGNS = sorted((ROOT / "analyses" / "designs").glob("*.yaml"))

BASE = dict(
    visits=["baseline", "post", "fu3"],
    arms=["usual", "peer"],
    sd=10,
    correlation=0.5,
    effect={"post": 4, "fu3": 3},
    primary="post",
)


def test_bundled_designs_read_and_run():
    assert {p.stem for p in DESIGNS} == {"peer_groups", "icbt_feasibility"}
    for path in DESIGNS:
        design, options = read_design(path)
        assert design.name == path.stem
        r = peerstats.power(design, n=options["n"]["to"])
        assert 0.05 < r.power < 1
    peer = TrialDesign.from_yaml(ROOT / "analyses" / "designs" / "peer_groups.yaml")
    assert peer.partially_nested and peer.group_sizes == (10,) and peer.icc == 0.05
    single = TrialDesign.from_yaml(ROOT / "analyses" / "designs" / "icbt_feasibility.yaml")
    assert single.single_arm and single.baseline == "response"


def test_dict_round_trip():
    d = TrialDesign(
        **BASE,
        dropout={"usual": {"post": 0.1}, "peer": {"post": 0.2, "fu3": 0.3}},
        groups={"arm": "peer", "size": [8, 12], "icc": 0.05},
        allocation=1.5,
    )
    d2 = TrialDesign.from_dict(d.to_dict())
    assert peerstats.power(d2, n=80).power == pytest.approx(
        peerstats.power(d, n=80).power, rel=1e-12
    )
    np.testing.assert_allclose(d2.sigma, d.sigma)
    assert d.groups_of(30) == [8, 12, 8, 2]


def test_correlation_forms_and_retention():
    ar = TrialDesign(**{**BASE, "correlation": ("ar1", 0.6)})
    assert ar.corr[0, 2] == pytest.approx(0.36)
    cs = TrialDesign(**{**BASE, "correlation": {"structure": "cs", "parameter": 0.3}})
    assert cs.corr[0, 2] == pytest.approx(0.3)
    w = TrialDesign(**BASE, dropout={"weibull": {"proportion": 0.3, "rate": 1}})
    # powerlmm::dropout_weibull: retention (1 - p) ** ((t / t_max) ** rate)
    np.testing.assert_allclose(w.retention["peer"], [1, 0.7**0.5, 0.7])
    carry = TrialDesign(**BASE, dropout={"post": 0.2})
    np.testing.assert_allclose(carry.retention["usual"], [1, 0.8, 0.8])


@pytest.mark.parametrize(
    "change,field,allowed",
    [
        ({"dropout": {"post": -0.1}}, "dropout/post", "[0, 1)"),
        ({"dropout": {"post": 1.2}}, "dropout/post", "[0, 1)"),
        ({"dropout": {"post": 0.3, "fu3": 0.2}}, "dropout/fu3", "monotone"),
        (
            {"dropout": {"usual": {"post": 0.1}, "peer": {"post": 0.5, "fu3": 0.1}}},
            "dropout/peer/fu3",
            "must not decrease",
        ),
        ({"dropout": {"weibull": {"proportion": 1.0}}}, "dropout/weibull/proportion", "[0, 1)"),
        (
            {"correlation": [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]},
            "correlation",
            "not positive definite",
        ),
        ({"correlation": 1.0}, "correlation", "(-1, 1)"),
        ({"correlation": -0.6}, "correlation", "-1/(T-1) < rho < 1"),
        ({"sd": [10, -1, 3]}, "sd", "positive"),
        ({"groups": {"arm": "peer", "size": 10, "icc": 1.0}}, "groups/icc", "[0, 1)"),
        ({"groups": {"arm": "peer", "size": 10, "icc": -0.1}}, "groups/icc", "[0, 1)"),
        ({"groups": {"arm": "peer", "size": 10, "variance": 150}}, "groups/variance", "[0, 1)"),
        ({"groups": {"arm": "nobody", "size": 10, "icc": 0.1}}, "groups/arm", "not an arm"),
        ({"groups": {"arm": "peer", "size": 0, "icc": 0.1}}, "groups/size", "positive"),
        ({"primary": "week9"}, "primary", "'average'"),
        ({"alpha": 1.5}, "alpha", "(0, 1)"),
        ({"effect": {"baseline": 1, "post": 2}}, "effect", "must be 0"),
        ({"allocation": 0}, "allocation", "[0.05, 20]"),
    ],
)
def test_bad_design_input(change, field, allowed):
    with pytest.raises(SpecError) as exc:
        TrialDesign(**{**BASE, **change})
    msg = str(exc.value)
    assert msg.startswith(field + ":") and allowed in msg, msg


def test_group_larger_than_arm():
    d = TrialDesign(**BASE, groups={"arm": "peer", "size": 10, "icc": 0.05})
    with pytest.raises(
        SpecError,
        match=r"groups/size: a delivery group of 10 is larger than the arm 'peer' \(6 participants",
    ):
        peerstats.power(d, n=6)


@pytest.mark.parametrize("target", [0.05, 0.01, 1.0, 1.2])
def test_power_target_outside_alpha_1(target):
    d = TrialDesign(**BASE)
    with pytest.raises(
        SpecError, match=r"power: the power target must be in \(alpha, 1\) = \(0.05, 1\)"
    ):
        peerstats.sample_size(d, power=target)


def test_unreachable_sample_size_reports_largest_n_and_power():
    d = TrialDesign(**{**BASE, "effect": {"post": 0.5, "fu3": 0.5}})
    with pytest.raises(SpecError) as exc:
        peerstats.sample_size(d, power=0.9, n_max=200)
    msg = str(exc.value)
    assert "largest n tried (200 per arm)" in msg
    p200 = peerstats.power(d, n=200).power
    assert f"gives power {p200:.4f}" in msg


def test_bad_n_and_method():
    d = TrialDesign(**BASE)
    with pytest.raises(SpecError, match="n: every arm needs at least 2"):
        peerstats.power(d, n=1)
    with pytest.raises(SpecError, match="method="):
        peerstats.power(d, n=10, method="bootstrap")
    with pytest.raises(SpecError, match="n_sims"):
        peerstats.power(d, n=10, method="simulation", n_sims=0)


def test_yaml_schema_errors(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({**BASE, "visit_names": ["a"]}))
    with pytest.raises(SpecError, match="allowed keys are"):
        read_design(path)
    path.write_text(yaml.safe_dump({**BASE, "power": 0.02}))
    with pytest.raises(SpecError, match=r"power: the power target must be in \(alpha, 1\)"):
        read_design(path)
    path.write_text(yaml.safe_dump({**BASE, "dropout": {"post": 0.4, "fu3": 0.2}}))
    with pytest.raises(SpecError, match="dropout/fu3"):
        read_design(path)
    with pytest.raises(SpecError, match="not found"):
        read_design(tmp_path / "missing.yaml")


def test_result_objects_render():
    d = TrialDesign(**BASE, dropout={"post": 0.1})
    r = peerstats.power(d, n=50)
    assert "Power" in r.summary() and "<table" in r._repr_html_()
    assert list(r.to_frame().columns[:4]) == ["n", "n_usual", "n_peer", "n_total"]
    ss = peerstats.sample_size(d, 0.8)
    assert "Sample size for power 0.8" in repr(ss)
    curve = peerstats.power_curve(d, [20, 40, 60])
    import matplotlib

    matplotlib.use("Agg")
    ax = curve.plot(target=0.8)
    assert ax.get_ylabel() == "power"
