"""models/_memory.steady_pages: numpy's huge-page advice is off inside and restored after.

Why it exists (1,000,000-subject fits stalled in the kernel's page compaction) is measured in
benchmarks/README.md; here only the switch's contract is tested.
"""

import numpy as np
import pytest

import peerstats
from peerstats.models._memory import _toggle, steady_pages

multiarray = pytest.importorskip("numpy._core.multiarray")
get = getattr(multiarray, "_get_madvise_hugepage", None)
pytestmark = pytest.mark.skipif(_toggle() is None or get is None, reason="numpy has no switch")


@pytest.mark.parametrize("start", [True, False])
def test_off_inside_and_restored(start):
    before = multiarray._set_madvise_hugepage(start)
    try:
        with steady_pages():
            assert get() is False
        assert get() is start
    finally:
        multiarray._set_madvise_hugepage(before)


def test_restored_after_an_error():
    before = get()
    with pytest.raises(ValueError, match="boom"), steady_pages():
        raise ValueError("boom")
    assert get() is before


def test_mmrm_leaves_the_users_setting(monkeypatch):
    import pandas as pd

    rng = np.random.default_rng(3)
    n, T = 40, 3
    d = pd.DataFrame({
        "id": np.repeat(np.arange(n), T),
        "visit": np.tile(["v1", "v2", "v3"], n),
        "arm": np.repeat(rng.integers(0, 2, n), T).astype(str),
    })
    d["y"] = rng.normal(size=n * T) + (d["arm"] == "1") * 0.5
    seen = []
    real = peerstats.prepare_mmrm

    def spy(*a, **k):
        seen.append(get())
        return real(*a, **k)

    import importlib

    monkeypatch.setattr(importlib.import_module("peerstats.models.mmrm"), "prepare_mmrm", spy)
    before = get()
    peerstats.mmrm("y ~ arm * visit", d, subject="id", visit="visit", covariance="us")
    assert seen == [False]  # the model was prepared and fitted with the advice off
    assert get() is before
