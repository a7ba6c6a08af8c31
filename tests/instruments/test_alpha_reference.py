"""Cronbach's alpha against an outside reference (issue 22.3: computed without pingouin).

Reference: ``tests/reference/r_cronbach_alpha/cronbach_alpha.R``, base R's ``var()`` and
``qf()`` (Cronbach 1951 alpha with listwise deletion; Feldt, Woodruff & Salih 1987 F interval)
on SYNTHETIC items made up by the script with ``set.seed``; the items and the results are in
``cronbach_alpha.json``. Tolerance: 1e-12 absolute (the same sums of squares in a different
order; R and numpy both use IEEE double precision).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from peerstats.instruments import cronbach_alpha, get_instrument

REF = json.loads(
    (
        Path(__file__).resolve().parents[1]
        / "reference"
        / "r_cronbach_alpha"
        / "cronbach_alpha.json"
    ).read_text(encoding="utf-8")
)
TOL = 1e-12


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: c["name"])
def test_alpha_and_interval_equal_base_r(case: dict) -> None:
    inst = get_instrument(case["name"])
    items = pd.DataFrame(
        {
            name: np.array([np.nan if v is None else v for v in col], dtype=float)
            for name, col in zip(inst.items, case["items"])
        }
    )
    res = cronbach_alpha(items, inst, ci=case["level"])
    assert res["n"] == case["n"]
    assert res["alpha"] == pytest.approx(case["alpha"], abs=TOL)
    assert res["ci_lower"] == pytest.approx(case["ci_lower"], abs=TOL)
    assert res["ci_upper"] == pytest.approx(case["ci_upper"], abs=TOL)


def test_fewer_than_three_complete_cases_give_nan() -> None:
    inst = get_instrument("GAD-7")
    items = pd.DataFrame({name: [1.0, 2.0] for name in inst.items})
    res = cronbach_alpha(items, inst)
    assert res["n"] == 2 and np.isnan(res["alpha"]) and np.isnan(res["ci_lower"])


def test_bad_level_is_a_spec_error() -> None:
    from peerstats.exceptions import SpecError

    inst = get_instrument("GAD-7")
    items = pd.DataFrame({name: [1.0, 2.0, 0.0] for name in inst.items})
    with pytest.raises(SpecError, match="ci must be between 0 and 1"):
        cronbach_alpha(items, inst, ci=1.5)
