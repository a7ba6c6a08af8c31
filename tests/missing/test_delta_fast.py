"""missing/_inputs._arm_constants (issue 22): a tipping-point delta ``{arm: number}`` is turned
into the imputed cells' shifts without building a delta frame; the shifts (and the errors) are
those of the general path, bit for bit (the reference: the general path with the shortcut
switched off). Synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from peerstats.missing import _inputs

CASES = [
    {"peer": -2.0},
    {"peer": 3},
    {"peer": np.float64(1.5), "usual": -1},
    {"other": -0.0},
    {"peer": True},
    {"peer": "2"},
    {"nope": 1.0},
    {"peer": np.nan},
    {"peer": {"w1": 1.0}},
    {},
]


def _shifts(delta, arm_levels):
    rng = np.random.default_rng(0)
    subjects = np.array([f"s{i}" for i in range(40)], dtype=object)
    arm_of = rng.integers(0, len(arm_levels), 40)
    target = rng.random((40, 3)) < 0.4
    args = (subjects, ["w1", "w2", "w3"], arm_levels, arm_of, "id", "visit", "arm", target)
    try:
        return _inputs._parse_delta(delta, *args)
    except Exception as exc:  # noqa: BLE001 - the same error both ways
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("delta", CASES)
@pytest.mark.parametrize("arms", [["usual", "peer", "other"], [0, 1, 2]])
def test_arm_constants_equal_the_general_path(delta, arms, monkeypatch):
    fast = _shifts(delta, arms)
    monkeypatch.setattr(_inputs, "_arm_constants", lambda *a: None)
    slow = _shifts(delta, arms)
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
    else:
        assert np.array_equal(fast, slow) and np.array_equal(np.signbit(fast), np.signbit(slow))
