"""Issue 20.9 (rest): decimals in the outcome tables follow each instrument's scale, as Table 1
does (2 for narrow ranges such as the 1-4 Empowerment Scale, 1 for wide totals such as QPR-15,
0-60), and the spec's ``outcome_table: {digits: ...}`` wins. Before, every outcome had 2."""

import re
import warnings

import pytest

from peerstats.exceptions import SpecError
from peerstats.pipeline import run_analysis


def _cells(digits=None):
    spec = {
        "analysis": {"name": "digits", "title": "digits (synthetic)"},
        "trial": {"dataset": "peer_recovery"},
        "primary": {"outcome": "qpr15", "visit": "post"},
        "secondary": {"outcomes": ["empowerment"]},
        "tables": ["outcomes"],
        "figures": [],
    }
    if digits is not None:
        spec["outcome_table"] = {"digits": digits}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_analysis(spec)
    disp = run.display_tables["outcomes"].display
    return {(row["Outcome"].split(" (")[0], row["Visit"]): row for _, row in disp.iterrows()}


def _decimals(cell: str) -> set[int]:
    return {len(m) for m in re.findall(r"\d+\.(\d+)", cell.split(",", 1)[-1])}


@pytest.fixture(scope="module")
def default_cells():
    return _cells()


def _row(cells, label):
    return next(v for k, v in cells.items() if k[0].startswith(label))


def test_wide_total_one_decimal_narrow_scale_two(default_cells):
    qpr = _row(default_cells, "QPR-15")
    emp = _row(default_cells, "Empowerment")
    diff = next(c for c in qpr.index if c.startswith("Difference"))
    means = [c for c in qpr.index if c.endswith("mean (SD)")]
    assert _decimals(qpr[diff]) == {1} and all(_decimals(qpr[c]) == {1} for c in means)
    assert _decimals(emp[diff]) == {2} and all(_decimals(emp[c]) == {2} for c in means)
    d_col = next(c for c in qpr.index if c.startswith("d ("))
    assert _decimals(qpr[d_col]) == {2}  # Cohen's d keeps 2


def test_the_spec_digits_win():
    cells = _cells({"qpr15": 3, "default": 0})
    qpr, emp = _row(cells, "QPR-15"), _row(cells, "Empowerment")
    diff = next(c for c in qpr.index if c.startswith("Difference"))
    assert _decimals(qpr[diff]) == {3}
    assert _decimals(emp[diff]) == set()  # 0 decimals: no decimal point


def test_digits_for_an_unknown_outcome_is_a_spec_error():
    with pytest.raises(SpecError, match="outcome_table/digits: 'qpr' is not an outcome"):
        _cells({"qpr": 2})
