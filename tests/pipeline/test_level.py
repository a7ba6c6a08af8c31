"""``model: {level: 0.9}`` reaches every interval (issue 12, point 3).

Check: the 90% interval of the primary estimate equals estimate +- t(0.95, df) * SE from the
same results.json (scipy's t quantile, not peerstats); tolerance 1e-9 relative.
"""

from __future__ import annotations

import json
import re

import pytest
from pipeline_support import write_analysis
from scipy import stats


def test_level_090_everywhere(small_trial, tmp_path):
    from peerstats.cli import main

    spec = write_analysis(
        tmp_path,
        small_trial,
        model={"level": 0.9},
        tables=["outcomes", "feasibility", "within_group_change", "model_coefficients"],
        figures=["forest", "trajectories"],
    )
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "-q"]) == 0
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["primary"]["level"] == 0.9
    (c,) = res["primary"]["contrasts"].values()
    t = stats.t.ppf(0.95, c["df"])
    assert c["ci_lower"] == pytest.approx(c["estimate"] - t * c["std_error"], rel=1e-9)
    assert c["ci_upper"] == pytest.approx(c["estimate"] + t * c["std_error"], rel=1e-9)
    coef = res["models"]["gad7"]["coefficients"]
    for row in coef.values():
        t = stats.t.ppf(0.95, row["df"])
        assert row["ci_upper"] == pytest.approx(row["estimate"] + t * row["std_error"], rel=1e-9)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "90% CI" in html
    assert not re.search(r"95\s*%", html), re.search(r".{60}95\s*%.{30}", html).group(0)
    for name in ("outcomes", "feasibility"):
        head = (out / "tables" / "display" / f"{name}.csv").read_text(encoding="utf-8")
        assert "90% CI" in head.splitlines()[0], head.splitlines()[0]


def test_level_out_of_range_is_a_spec_error(small_trial, tmp_path):
    from peerstats.cli import main

    spec = write_analysis(tmp_path, small_trial, model={"level": 95})
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "-q"]) == 2
