"""Issue 20.9: "−0.00" is never printed. A value that rounds to zero is shown as 0.00, in the
formatted tables (format_value), in Word / display CSV cells (display_text, which also turns
already formatted text such as a CI "-0.00 (-0.12 to 0.10)" into "0.00 (−0.12 to 0.10)"), and in
the report's sentences (fixed-point formats use Python's "z" option)."""

from __future__ import annotations

import pytest

from peerstats.describe._format import format_value
from peerstats.describe.word import display_text


@pytest.mark.parametrize("x", [-0.0004, -0.0, -0.004999])
def test_format_value_has_no_negative_zero(x):
    assert format_value(x) == "0.00"
    assert display_text(x) == "0.00"


def test_display_text_drops_the_sign_of_a_formatted_zero_only():
    assert display_text("-0.00 (-0.12 to -0.0)") == "0.00 (\u22120.12 to 0.0)"
    assert display_text("-0.5") == "\u22120.5"
    assert display_text("-0.001") == "\u22120.001"


def test_report_sentence_formats_have_no_negative_zero():
    from peerstats.pipeline import report

    assert report._num(-0.0) == "0.00"
    # every fixed-point format of the rendering code uses the "z" option
    import re
    from pathlib import Path

    root = Path(report.__file__).resolve().parents[1]
    bad = [
        f"{p.relative_to(root)}:{i + 1}"
        for sub in ("pipeline", "describe", "figures")
        for p in sorted((root / sub).rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines())
        if re.search(r":\.(\{?\w+\}?)f\}", line)
    ]
    assert not bad, f"fixed-point formats without 'z' (may print -0.00): {bad}"
