"""Issue 20.9: decimals follow the instrument's scale. One decimal hid a difference on the 1-4
Empowerment Scale ("2.6 (0.3) vs 2.6 (0.3)"); narrow scales get 2, wide totals 1, and the
spec's ``table_one: {digits: ...}`` still wins."""

import re

import pytest

from peerstats.pipeline import run_analysis


def _t1(digits=None):
    spec = {
        "analysis": {"name": "digits", "title": "digits (synthetic)"},
        "trial": {"dataset": "peer_recovery"},
        "primary": {"outcome": "qpr15", "visit": "post"},
        "tables": ["table_one"],
        "figures": [],
    }
    if digits is not None:
        spec["table_one"] = {"digits": digits}
    run = run_analysis(spec)
    rows = run.display_tables["table_one"].display
    return {str(r.iloc[0]).strip(): str(r.iloc[1]) for _, r in rows.iterrows()}


def _decimals(cell: str) -> int:
    return len(re.match(r"[−-]?\d+\.(\d+)", cell).group(1))


@pytest.fixture(scope="module")
def default_cells():
    return _t1()


def test_narrow_scales_get_two_decimals_wide_ones_one(default_cells):
    emp = next(v for k, v in default_cells.items() if k.startswith("Empowerment Scale (baseline)"))
    qpr = next(v for k, v in default_cells.items() if k.startswith("QPR-15 (baseline)"))
    assert _decimals(emp) == 2 and _decimals(qpr) == 1


def test_the_spec_digits_win():
    cells = _t1({"default": 1, "empowerment (baseline)": 3})
    emp = next(v for k, v in cells.items() if k.startswith("Empowerment Scale (baseline)"))
    assert _decimals(emp) == 3
