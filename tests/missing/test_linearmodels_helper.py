"""missing/_linearmodels.hidden_xarray (issue 22): linearmodels runs without importing xarray,
and xarray is importable again after the block. Synthetic data; the numbers of the 2SLS fits
themselves are checked against R in tests/missing/test_cace.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from peerstats.missing._linearmodels import hidden_xarray


def test_hidden_xarray_restores_sys_modules() -> None:
    had = "xarray" in sys.modules
    before = sys.modules.get("xarray")
    with hidden_xarray():
        if not had:
            assert sys.modules["xarray"] is None
    assert ("xarray" in sys.modules) == had
    assert sys.modules.get("xarray") is before


def test_hidden_xarray_restores_after_an_error() -> None:
    had = "xarray" in sys.modules
    try:
        with hidden_xarray():
            raise ValueError("boom")
    except ValueError:
        pass
    assert ("xarray" in sys.modules) == had


def test_iv2sls_in_a_fresh_process_leaves_xarray_unimported_and_importable() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import pandas as pd
        from peerstats.missing._linearmodels import hidden_xarray

        rng = np.random.default_rng(3)
        n = 200
        z = rng.integers(0, 2, n).astype(float)
        d = z * (rng.random(n) < 0.7)
        x = rng.normal(size=n)
        y = 1.0 + 0.5 * x + 2.0 * d + rng.normal(size=n)
        exog = pd.DataFrame({"const": 1.0, "x": x})
        with hidden_xarray():
            from linearmodels.iv import IV2SLS

            res = IV2SLS(pd.Series(y), exog, pd.Series(d, name="d"), pd.Series(z, name="z")).fit(
                cov_type="unadjusted", debiased=True
            )
            est = float(res.params["d"])
        assert "xarray" not in sys.modules, "xarray was imported"
        import importlib.util
        assert importlib.util.find_spec("xarray") is None or __import__("xarray")
        print(est)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout.strip()) - 2.0) < 0.5
